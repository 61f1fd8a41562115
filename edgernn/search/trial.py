"""One trial, as a Ray Tune function: train -> int8 -> simulator accuracy -> native C -> firmware run.

Runs in a Ray worker (any node). It reads the data splits the driver wrote under ``OUT/data/``
and writes its model, flatbuffer and firmware under ``OUT/trials/<trial id>/``, so on a
multi-machine cluster ``OUT`` must be storage every node mounts at the same path (as Ray
Tune's own storage). It reports once per training epoch (the float validation accuracy, for
ASHA) and once at the end with everything measured; ``score`` is what the search maximises:

* the int8 accuracy on the validation split when the firmware fits the flash, RAM and
  instruction budgets (``min_accuracy`` is a pass/fail threshold, not a penalty);
* minus how far the firmware overshoots its worst budget (``-0.25`` = 25 % over) when it does
  not, so Optuna learns where the budgets are;
* for a model refused before training, minus how far its parameter count (or its cell's
  smallest firmware) overshoots.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

from ..data import load_dataset
from ..errors import EdgeRNNError
from .config import Budget, Floors, count_params

_DATA_CACHE: dict = {}


def _data(path: str):
    key = (path, os.path.getmtime(path))
    if key not in _DATA_CACHE:
        _DATA_CACHE.clear()
        _DATA_CACHE[key] = load_dataset(path, require_y=True)
    return _DATA_CACHE[key]


def int8_accuracy(tflite: bytes, ds) -> float:
    """Top-1 accuracy of an int8 flatbuffer on a labelled dataset, with the bit-exact simulator."""
    from ..simulate import Simulator

    sim = Simulator.from_bytes(tflite)
    y = sim.run(sim.quantize_input(ds.x))
    return float(np.mean(np.argmax(y.reshape(len(ds.x), -1), axis=1) == ds.y))


def emit_options(budget: Budget, settings: dict) -> dict:
    """How each trial's firmware is emitted: `edgernn emit MODEL.tflite -o DIR` with these options
    and the validation split as --test-data gives the same project, and the same figures."""
    return dict(backend="native", target=budget.measured_as, samples=settings["samples"])


def measure(tflite_path, out_dir, budget: Budget, settings: dict, test_data) -> dict:
    """Emit native C for the target, build and run it: exact flash, RAM and instructions."""
    from ..emit import emit
    from ..firmware import run_project

    emit(tflite_path, out_dir, test_data=test_data, **emit_options(budget, settings))
    res = run_project(out_dir, timeout=settings["timeout"])
    if not res.passed:
        raise EdgeRNNError(f"{out_dir}: the firmware's outputs differ from the simulator's on vectors "
                           f"{res.failed_vectors}")
    parts = res.sizes.ram_parts
    m = dict(flash=int(res.sizes.flash), ram=int(res.sizes.ram), instructions=None, latency_ms=None,
             ram_reserved=int(parts.get("stack", 0) + parts.get("heap", 0)))
    perf = res.perf
    if perf is not None and perf.unit == "instructions":
        m["instructions"] = int(perf.per_inference)
        if budget.cpu_hz:
            m["latency_ms"] = perf.per_inference / budget.cpu_hz * 1000
    elif perf is not None:
        m["latency_ms"] = perf.per_inference * 1000
    return m


def over_budget(m: dict, budget: Budget) -> tuple[list[str], float]:
    """The budgets a measured trial breaks (reasons) and its worst overshoot ratio (0 = fits)."""
    reasons, worst = [], 0.0
    checks = [("flash", m.get("flash"), budget.max_flash, "max_flash"), ("RAM", m.get("ram"), budget.max_ram, "max_ram")]
    if budget.counts_instructions:
        checks.append(("instructions", m.get("instructions"), budget.max_instructions, "max_instructions"))
        if budget.cpu_hz:
            checks.append(("latency ms", m.get("latency_ms"), budget.max_latency_ms, "max_latency_ms"))
    else:
        checks.append(("host latency ms", m.get("latency_ms"), budget.max_latency_ms, "max_latency_ms"))
    for what, value, limit, key in checks:
        if limit is not None and value is not None and value > limit:
            reasons.append(f"{what} {value:,.4g} > {key} {limit:,}" if isinstance(value, float)
                           else f"{what} {value:,} > {key} {limit:,}")
            worst = max(worst, value / limit - 1)
    return reasons, worst


def refusal(params: dict, settings: dict, budget: Budget) -> tuple[str, float] | None:
    """Why a model cannot fit before training it (parameter count, its cell's floor), or None."""
    n = count_params(params["cell"], params["units"], params["layers"], params["bidirectional"],
                     settings["features"], settings["classes"])
    if budget.max_flash is not None and n > budget.max_flash:
        return (f"{n:,} int8 parameters need at least {n:,} bytes of flash > max_flash {budget.max_flash:,}",
                -(n / budget.max_flash - 1))
    floors = Floors(settings.get("floors") or {})
    why = floors.broken(params["cell"], budget)
    if why:
        f = floors.per_cell[params["cell"]]
        _, worst = over_budget(f, budget)
        return why, -max(worst, 1e-6)
    return None


def _threads() -> None:
    """One TensorFlow thread per trial: a worker per core, not a worker per core times cores."""
    import tensorflow as tf

    for fn in (tf.config.threading.set_intra_op_parallelism_threads,
               tf.config.threading.set_inter_op_parallelism_threads):
        try:
            fn(1)
        except RuntimeError:  # already initialised (a reused worker): it kept the first setting
            pass


def log_event(out, **record) -> None:
    """One JSON line in OUT/events.jsonl: which trial started or ended, where and when."""
    line = json.dumps(dict(record, time=time.time()), default=str) + "\n"
    fd = os.open(Path(out) / "events.jsonl", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _report(tune, metrics: dict, tdir: Path) -> None:
    """The final result, with a tiny checkpoint: Tune then snapshots the experiment at once, so an
    interrupted search never runs a finished trial again."""
    tmp = tdir / ".result.json.tmp"
    tmp.write_text(json.dumps(metrics, indent=2, default=str))
    os.replace(tmp, tdir / "result.json")  # whole or absent: a resumed search trusts it
    with tempfile.TemporaryDirectory(prefix="edgernn-ckpt-") as d:
        Path(d, "result.json").write_text(json.dumps(metrics, default=str))
        tune.report(metrics, checkpoint=tune.Checkpoint.from_directory(d))


def _finished(ckpt, tdir: Path) -> dict | None:
    """The final result of a trial that already finished: from Tune's checkpoint, or from the
    trial's own result.json when the search was stopped before Tune persisted the checkpoint
    (the trial id, and so ``tdir``, stays the same across a resume)."""
    if ckpt is not None:
        with ckpt.as_directory() as d:
            return json.loads(Path(d, "result.json").read_text())
    f = tdir / "result.json"
    if f.exists():
        metrics = json.loads(f.read_text())
        if metrics.get("phase") in ("done", "refused", "error"):
            return metrics
    return None


def run_trial(config: dict, settings: dict) -> None:
    """The Ray Tune trainable (``tune.with_parameters(run_trial, settings=...)``)."""
    import ray
    from ray import tune

    t0 = time.time()
    ctx = tune.get_context()
    trial_id = ctx.get_trial_id()
    tdir = Path(settings["out"]) / "trials" / trial_id
    metrics = _finished(tune.get_checkpoint(), tdir)
    if metrics is not None:  # finished, but stopped before Tune recorded it: report the same result again
        log_event(settings["out"], event="restored", trial=trial_id, phase=metrics.get("phase"))
        tune.report(metrics)
        return
    budget = Budget(**settings["budget"])
    params = {**settings["fixed"], **config}
    shutil.rmtree(tdir, ignore_errors=True)  # a restarted (unfinished) trial starts afresh
    tdir.mkdir(parents=True)
    base = dict(params, trial_id=trial_id, node=ray.util.get_node_ip_address(),
                node_id=ray.get_runtime_context().get_node_id(), epoch=0,
                n_params=count_params(params["cell"], params["units"], params["layers"], params["bidirectional"],
                                    settings["features"], settings["classes"]))
    log_event(settings["out"], event="start", trial=trial_id, node=base["node"], pid=os.getpid(), config=params,
              code=str(Path(__file__).resolve().parents[1]))
    refused = refusal(params, settings, budget)
    if refused:
        _report(tune, dict(base, phase="refused", score=refused[1], fits=False, reason=refused[0],
                           seconds=time.time() - t0), tdir)
        log_event(settings["out"], event="end", trial=trial_id, phase="refused")
        return

    import keras

    _threads()
    keras.backend.clear_session()
    data = settings["data"]
    fit, val = _data(data["fit"]), _data(data["val"])
    last = {"epoch": 0}

    class EpochReport(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            logs = logs or {}
            last["epoch"] = epoch + 1
            tune.report(dict(base, phase="train", epoch=epoch + 1, score=float(logs.get("val_accuracy", 0.0)),
                             val_loss=float(logs.get("val_loss", float("nan"))), seconds=time.time() - t0))

    metrics = dict(base)
    try:
        from ..convert import convert
        from ..train import train

        res = train(fit, cell=params["cell"], units=params["units"], layers=params["layers"],
                    bidirectional=params["bidirectional"], epochs=params["epochs"], learning_rate=params["lr"],
                    batch_size=settings["batch_size"], patience=settings["patience"], seed=settings["seed"],
                    qat=params["qat"], qat_epochs=settings["qat_epochs"], validation=val,
                    callbacks=[EpochReport()], output=tdir / "model.keras", progress=False)
        metrics.update(epochs_run=res.epochs_run, train_seconds=time.time() - t0,
                       float_accuracy=float(res.model.evaluate(val.x, val.y, verbose=0, return_dict=True)["accuracy"]))
        conv = convert(res.path, fit, tdir / "model.tflite")
        metrics["accuracy"] = int8_accuracy(conv.tflite, val)
        metrics.update(measure(conv.path, tdir / "firmware", budget, settings, data["val"]))
        reasons, worst = over_budget(metrics, budget)
        below = budget.min_accuracy is not None and metrics["accuracy"] < budget.min_accuracy
        if below:
            reasons.append(f"accuracy {metrics['accuracy']:.4f} < min_accuracy {budget.min_accuracy}")
        metrics.update(phase="done", fits=not reasons, reason="; ".join(reasons),
                       score=metrics["accuracy"] if worst == 0 else -worst)
    except EdgeRNNError as exc:
        metrics.update(phase="error", fits=False, reason=str(exc), score=-1.0)
    except Exception as exc:  # a bug or a tool failing on one config must not end the whole search
        metrics.update(phase="error", fits=False, reason=f"{type(exc).__name__}: {exc}"[:500], score=-1.0)
    metrics.update(epoch=last["epoch"], seconds=time.time() - t0)
    log_event(settings["out"], event="end", trial=trial_id, phase=metrics["phase"])
    _report(tune, metrics, tdir)
