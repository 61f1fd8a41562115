"""The driver: the output directory, the data splits, the preflight floors, and Ray Tune.

``OUT/`` holds ``.edgernn-search`` (the marker ``--resume`` looks for), ``search.toml`` (the
config as given) and ``search.json`` (as resolved: plain JSON, everything a resume needs
besides Tune's own state), ``data/`` (the fit / validation / test splits every trial reads),
``ray/search/`` (Ray Tune's experiment: trials, searcher and scheduler state) and
``trials/<id>/`` (each trial's model, flatbuffer and firmware).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np

from .._version import __version__
from ..data import Dataset, load_dataset
from ..errors import EdgeRNNError
from . import progress
from .config import LogRange, SearchConfig, smallest_per_cell
from .trial import measure

MARKER = ".edgernn-search"
EXPERIMENT = "search"
FORMAT = 1

# Quiet, offline Ray: no usage reports, no per-trial TensorBoard/CSV loggers, Tune prints nothing
# itself (the driver draws its own progress line).
_RAY_ENV = {"RAY_USAGE_STATS_ENABLED": "0", "RAY_AIR_NEW_OUTPUT": "0", "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS": "1",
            "TUNE_WARN_EXCESSIVE_EXPERIMENT_CHECKPOINT_SYNC_THRESHOLD_S": "0", "RAY_DEDUP_LOGS": "0"}
# What every worker runs with: one thread per trial for TensorFlow and numba, no GPU probing.
WORKER_ENV = {"TF_CPP_MIN_LOG_LEVEL": "3", "TF_NUM_INTRAOP_THREADS": "1", "TF_NUM_INTEROP_THREADS": "1",
              "NUMBA_NUM_THREADS": "1", "CUDA_VISIBLE_DEVICES": "", "PYTHONWARNINGS": "ignore"}


def check_new_out(out: Path) -> None:
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        if (out / MARKER).exists():
            raise EdgeRNNError(f"{out}: holds a search already; continue it with `edgernn search --resume {out}` "
                               "or choose a new directory")
        raise EdgeRNNError(f"{out}: exists and is not empty; choose a new or empty directory for the search")


def check_resumable(out: Path) -> dict:
    """The resolved settings of the search in ``out``; refuses directories edgernn search did not write."""
    marker, state = out / MARKER, out / "search.json"
    if not marker.exists() or not state.exists():
        raise EdgeRNNError(f"{out}: not a search directory (no {MARKER}); --resume takes the -o directory of an "
                           "earlier `edgernn search` on this machine")
    try:
        saved = json.loads(state.read_text())
    except json.JSONDecodeError as exc:
        raise EdgeRNNError(f"{state}: not valid JSON ({exc}); start a new search") from None
    if saved.get("format") != FORMAT:
        raise EdgeRNNError(f"{state}: format {saved.get('format')!r}; this edgernn resumes format {FORMAT}")
    if not (out / "ray" / EXPERIMENT / "tuner.pkl").exists():
        raise EdgeRNNError(f"{out}: Ray Tune's state (ray/{EXPERIMENT}/tuner.pkl) is missing; start a new search")
    return saved


def _stratified(y: np.ndarray, fraction: float, rng) -> tuple[np.ndarray, np.ndarray]:
    """(held, rest) indices: ``fraction`` of every class held out (at least one sample in all)."""
    held, rest = [], []
    for c in np.unique(y):
        idx = rng.permutation(np.flatnonzero(y == c))
        k = int(round(len(idx) * fraction))
        held.append(idx[:k])
        rest.append(idx[k:])
    held, rest = np.concatenate(held), np.concatenate(rest)
    if len(held) == 0:
        held, rest = rest[:1], rest[1:]
    return np.sort(held), np.sort(rest)


def write_splits(cfg: SearchConfig, data_dir: Path) -> dict:
    """fit / val / test .npz files: the test file or a held-out part of train, then a validation split."""
    rng = np.random.default_rng(cfg.settings["seed"])
    ds = load_dataset(cfg.train, require_y=True)
    x, y = ds.x, ds.y
    if cfg.test is not None:
        te = load_dataset(cfg.test, require_y=True)
        xt, yt = te.x, te.y
    else:
        held, rest = _stratified(y, cfg.test_split, rng)
        xt, yt, x, y = x[held], y[held], x[rest], y[rest]
    val, fit = _stratified(y, cfg.validation_split, rng)
    data_dir.mkdir(parents=True, exist_ok=True)
    paths = {}
    for name, (a, b) in dict(fit=(x[fit], y[fit]), val=(x[val], y[val]), test=(xt, yt)).items():
        paths[name] = str(data_dir / f"{name}.npz")
        np.savez(paths[name], x=a, y=b)
    return paths


def preflight(cfg: SearchConfig, data: dict, log=None) -> dict:
    """Build and run the smallest model of each cell, untrained (sizes and instruction counts do not
    depend on the weights' values): per-cell floors of flash, RAM and instructions."""
    import keras

    from ..convert import convert
    from ..train import build_model

    fit = load_dataset(data["fit"], require_y=True)
    floors = {}
    for c in smallest_per_cell(cfg.space):
        if log:
            log(f"preflight: building the smallest {c['cell']} model for {cfg.budget.target}")
        keras.utils.set_random_seed(cfg.settings["seed"])
        model = build_model(cfg.timesteps, cfg.features, cfg.classes, cell=c["cell"], units=c["units"],
                            layers=c["layers"], bidirectional=c["bidirectional"])
        with tempfile.TemporaryDirectory(prefix="edgernn-preflight-") as tmp:
            conv = convert(model, Dataset(str(cfg.train), fit.x[:64], None), Path(tmp, "m.tflite"))
            m = measure(conv.path, Path(tmp, "fw"), cfg.budget, cfg.settings, data["val"])
        floors[c["cell"]] = dict(m, config=c)
        keras.backend.clear_session()
    return floors


def _ray_modules():
    for k, v in _RAY_ENV.items():
        os.environ.setdefault(k, v)
    import optuna
    import ray
    from ray import tune

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    return ray, tune


def init_ray(address: str | None, workers: int | None, temp_dir: str | None) -> int:
    """Start a local Ray (one worker per core) or join ``address`` / $RAY_ADDRESS; the trial concurrency."""
    ray, _ = _ray_modules()
    addr = address or os.environ.get("RAY_ADDRESS") or "local"
    env = {"env_vars": dict(WORKER_ENV)}
    try:
        if addr == "local":
            n = workers or os.cpu_count() or 1
            ray.init(address="local", num_cpus=n, include_dashboard=False, log_to_driver=False,
                     logging_level="ERROR", object_store_memory=200 * 2**20, _temp_dir=temp_dir, runtime_env=env)
            return n
        # Workers on a cluster import this edgernn, uploaded, whatever their own environment holds.
        env["py_modules"] = [str(Path(__file__).resolve().parent.parent)]
        ray.init(address=addr, log_to_driver=False, logging_level="ERROR", runtime_env=env)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise EdgeRNNError(f"--address {addr}: cannot start or join Ray there ({str(exc).splitlines()[0][:200]}); "
                           "start a cluster with `ray start --head`, or leave --address and RAY_ADDRESS unset "
                           "for a local search") from None
    cpus = int(ray.cluster_resources().get("CPU", 1))
    return workers or max(1, cpus)


def _space(cfg_json: dict, tune):
    """Ray Tune's param_space for the searched keys (fixed ones travel in the settings)."""
    space, algo = {}, cfg_json["search"]["algorithm"]
    for k, v in cfg_json["space"].items():
        if isinstance(v, dict):  # LogRange
            space[k] = tune.loguniform(v["min"], v["max"])
        elif len(v) > 1:
            space[k] = tune.grid_search(v) if algo == "grid" else tune.choice(v)
    return space


def make_tuner(settings: dict, cfg_json: dict, concurrency: int, out: Path):
    _, tune = _ray_modules()
    from ray.tune.schedulers import ASHAScheduler

    from .trial import run_trial

    s = cfg_json["search"]
    algo = s["algorithm"]
    search_alg, num_samples = None, s["trials"]
    if algo == "tpe":
        import optuna
        from ray.tune.search.optuna import OptunaSearch
        search_alg = OptunaSearch(sampler=optuna.samplers.TPESampler(seed=s["seed"], constant_liar=concurrency > 1))
    elif algo == "random":
        from ray.tune.search import BasicVariantGenerator
        search_alg = BasicVariantGenerator(random_state=s["seed"])
    else:
        num_samples = 1  # grid_search: every combination once
    scheduler = None
    max_epochs = max(cfg_json["space"]["epochs"])
    if s["asha"] and max_epochs > 1:
        grace = min(s["grace_epochs"] or max(1, max_epochs // 4), max_epochs)
        # time_attr "epoch": the final report repeats the last epoch, so ASHA never judges it.
        scheduler = ASHAScheduler(time_attr="epoch", max_t=max_epochs, grace_period=grace, reduction_factor=3,
                                  stop_last_trials=False)
    trainable = tune.with_resources(tune.with_parameters(run_trial, settings=settings), {"cpu": 1})
    return tune.Tuner(
        trainable, param_space=_space(cfg_json, tune),
        tune_config=tune.TuneConfig(metric="score", mode="max", num_samples=num_samples, search_alg=search_alg,
                                    scheduler=scheduler, max_concurrent_trials=concurrency, reuse_actors=True),
        run_config=tune.RunConfig(name=EXPERIMENT, storage_path=str(out / "ray"), verbose=0,
                                  callbacks=[progress.tune_callback()],
                                  checkpoint_config=tune.CheckpointConfig(num_to_keep=1),
                                  failure_config=tune.FailureConfig(max_failures=0)))


def restore_tuner(settings: dict, out: Path):
    _, tune = _ray_modules()
    from .trial import run_trial

    trainable = tune.with_resources(tune.with_parameters(run_trial, settings=settings), {"cpu": 1})
    # Finished trials keep their results; unfinished ones start again; errored ones stay errors.
    return tune.Tuner.restore(str(out / "ray" / EXPERIMENT), trainable, resume_unfinished=True,
                              resume_errored=False, restart_errored=False)


def fit(tuner, tracker: progress.Tracker):
    """Run Tune in this (main) thread: its SIGINT handler makes the first Ctrl-C a clean stop."""
    progress.SINK = tracker
    tracker.start()
    try:
        return tuner.fit()
    finally:
        tracker.stop()
        progress.SINK = None


def shutdown(temp_dir: str | None) -> None:
    import ray

    if ray.is_initialized():
        ray.shutdown()
    if temp_dir:
        shutil.rmtree(temp_dir, ignore_errors=True)


def new_state(cfg: SearchConfig, out: Path, data: dict, floors: dict) -> dict:
    """Write the marker, the config and search.json; return the trials' settings."""
    cfg_json = cfg.to_json()
    settings = dict(cfg.settings, out=str(out), data=data, budget=cfg.budget.to_json(), fixed=cfg.fixed,
                    floors=floors, features=cfg.features, classes=cfg.classes)
    (out / "search.toml").write_text(cfg.raw_text)
    saved = dict(format=FORMAT, edgernn=__version__, config=cfg_json, settings=settings, total=cfg.n_trials())
    (out / "search.json").write_text(json.dumps(saved, indent=2, default=str))
    (out / MARKER).write_text("an `edgernn search` directory; `edgernn search --resume DIR` continues it\n")
    return saved


__all__ = ["LogRange", "MARKER", "check_new_out", "check_resumable", "write_splits", "preflight", "init_ray",
           "make_tuner", "restore_tuner", "fit", "shutdown", "new_state"]
