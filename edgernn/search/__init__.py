"""``edgernn.search``: the most accurate RNN that fits the microcontroller, found with Ray Tune.

Every trial trains a model with a seed, converts it to int8, scores it with the bit-exact
simulator on the validation split, emits native C for the target and runs the firmware
(QEMU for Cortex-M) for its exact flash, RAM and instructions per inference::

    import edgernn
    res = edgernn.search("search.toml", "out/")          # or resume="out/" after an interruption
    res.best["accuracy"], res.best["flash"], res.best["test_accuracy"]
    res.ranked      # trials that fit every budget, most accurate first
    res.pareto      # accuracy vs flash / RAM / time: no trial is better on all four

``search.toml`` (relative paths are relative to it)::

    [data]
    train = "train.npz"            # x (N, T, F), y class ids (N,)
    test = "test.npz"              # optional; otherwise test_split of train is held out
    # validation_split = 0.2       # of the rest: each trial's validation (int8 accuracy, ASHA)

    [space]                        # a list of choices, or one value
    cell = ["gru", "lstm"]         # rnn | lstm | gru
    units = [8, 16]
    # layers = [1, 2]              # 1-4
    # bidirectional = [false, true]
    # qat = [false, true]          # quantization-aware fine-tuning after float training
    # epochs = [10, 20]            # or [search] epochs
    # lr = {min = 1e-3, max = 1e-2}  # log-uniform (tpe, random), or a list

    [budget]
    target = "cortex-m4"           # any `edgernn emit --target`
    max_flash = 65536              # bytes
    max_ram = 16384                # bytes
    # max_latency_ms = 5.0 with cpu_hz = 80_000_000 (latency = instructions / cpu_hz), or max_instructions
    # min_accuracy = 0.8           # int8, validation split

    [search]
    trials = 4
    epochs = 10
    # algorithm = "tpe"            # tpe (Optuna through Ray Tune) | random | grid (every combination once)
    # asha = true                  # stop weak trials early; grace_epochs = epochs // 4
    # workers = 2                  # default: one per core (local), every CPU (cluster)
    # seed = 0, batch_size = 32, patience = 10, qat_epochs = 3, samples = 2, timeout = 300, preflight = true

Before anything trains, the smallest model of each cell is built untrained and run on the
target (``preflight``): budgets that even it breaks are refused at once (exit 2), and later
trials of that cell are refused before training. A trial whose parameter count alone exceeds
``max_flash`` is refused before training too. Results go to ``OUT/``: ``trials.csv``,
``trials.json``, ``pareto.png`` / ``pareto.svg`` and ``best/`` (``model.keras``,
``model.tflite``, ``firmware/``), with the best model's int8 accuracy on the test split.

Ray: a local Ray with one worker per core, or ``address`` / ``$RAY_ADDRESS`` for a cluster (on
several machines ``OUT`` must be on storage every node mounts at the same path). A search
stopped with Ctrl-C continues with ``resume=OUT``: finished trials are not run again.
``resume`` unpickles Ray Tune's state, so give it only directories your own ``edgernn search``
wrote.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from ..errors import EdgeRNNError
from . import engine, results
from .config import Budget, SearchConfig, count_params, load_config
from .progress import Tracker

log = logging.getLogger(__name__)

__all__ = ["search", "SearchResult", "SearchConfig", "Budget", "load_config", "count_params"]


@dataclass
class SearchResult:
    out: Path
    rows: list[dict]
    best: dict | None
    complete: bool
    concurrency: int
    budget: Budget
    floors: dict = field(default_factory=dict)
    files: list[Path] = field(default_factory=list)
    seconds: float = 0.0
    total: int = 0

    @property
    def ranked(self) -> list[dict]:
        return results.ranked(self.rows)

    @property
    def pareto(self) -> list[dict]:
        return [r for r in self.rows if r["pareto"]]

    @property
    def passed(self) -> bool:
        """The search finished and a model fits every budget."""
        return self.complete and self.best is not None


def _stage_new(cfg: SearchConfig, out: Path, say) -> tuple[dict, bool]:
    """Data splits and preflight in a temporary sibling, renamed to ``out`` once they succeed."""
    out.parent.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        data = engine.write_splits(cfg, stage / "data")
        floors = {}
        if cfg.settings["preflight"]:
            floors = engine.preflight(cfg, data, log=say)
            broken = {c: why for c in floors if (why := _floor_reason(floors, c, cfg.budget))}
            if broken and len(broken) == len(floors):
                raise EdgeRNNError(f"{cfg.path}: [budget] cannot be met: {'; '.join(broken.values())}; "
                                   "raise the budget or search smaller models")
        existed = out.exists()
        if existed:
            out.rmdir()  # an empty directory (check_new_out refused anything else)
        stage.chmod(0o755)
        os.replace(stage, out)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
    data = {k: str(out / "data" / Path(v).name) for k, v in data.items()}
    return engine.new_state(cfg, out, data, floors), existed


def _floor_reason(floors: dict, cell: str, budget: Budget) -> str | None:
    from .config import Floors

    return Floors(floors).broken(cell, budget)


def search(config=None, out=None, *, resume=None, address: str | None = None, workers: int | None = None,
           progress: bool = True, say=None, ray_temp_dir: str | None = None) -> SearchResult:
    """Run the search ``config`` (search.toml) into ``out``, or continue the one in ``resume``.

    ``address``: a Ray cluster (``host:port``; default ``$RAY_ADDRESS``, else a local Ray with
    ``workers`` trials at a time, one per core by default). ``say``: a function receiving
    progress messages (the CLI prints them). Bad input raises :class:`EdgeRNNError` before
    anything is written.
    """
    t0 = time.time()
    say = say or log.info
    if resume is not None:
        out = Path(resume).absolute()
        saved = engine.check_resumable(out)
        existed = True
    else:
        if config is None or out is None:
            raise EdgeRNNError("search needs a config file and an output directory (-o), or --resume DIR")
        cfg = load_config(config)
        for note in cfg.notes:
            say(f"note: {note}")
        out = Path(out).absolute()
        engine.check_new_out(out)
        if workers is None:
            workers = cfg.settings["workers"]
        saved, existed = _stage_new(cfg, out, say)
    settings = saved["settings"]
    budget = Budget(**settings["budget"])
    local = not (address or os.environ.get("RAY_ADDRESS"))
    temp = ray_temp_dir or (tempfile.mkdtemp(prefix=f"edgernn-ray-{os.getpid()}-", dir="/tmp") if local else None)
    try:
        started = False
        try:
            say("starting Ray" if local else f"joining Ray at {address or os.environ.get('RAY_ADDRESS')}")
            concurrency = engine.init_ray(address, workers, temp)
            tuner = (engine.restore_tuner(settings, out) if resume is not None
                     else engine.make_tuner(settings, saved["config"], concurrency, out))
            started = True
        finally:
            if not started and resume is None:  # nothing ran: leave nothing behind
                shutil.rmtree(out, ignore_errors=True)
                if existed:
                    out.mkdir()
        say(f"searching: {saved['total']} trials, {concurrency} at a time")
        tracker = Tracker(saved["total"], concurrency, progress, settings["fixed"])
        if resume is not None:
            tracker.preload(out / "trials")
        grid = engine.fit(tuner, tracker)
        statuses = tracker.status
    finally:
        engine.shutdown(temp if ray_temp_dir is None else None)
    rows = results.collect(grid, statuses, settings["fixed"], out / "trials")
    results.require_rows(rows)
    complete = len(rows) >= saved["total"] and not any(r["status"] == "unfinished" for r in rows)
    ranked = results.ranked(rows)
    best = ranked[0] if ranked else None
    files = []
    if best is not None:
        best["test_accuracy"] = results.test_accuracy(out, best, settings["data"]["test"])
        files.append(results.write_best(out, best, budget, settings))
    files += results.write_tables(out, rows, saved, best)
    title = (f"edgernn search: {len(results.measured(rows))} of {len(rows)} trials measured on {budget.target}"
             f"{'' if complete else ' (interrupted)'}")
    from .plot import plot
    files += plot(rows, budget, out / "pareto", best, title)
    return SearchResult(out=out, rows=rows, best=best, complete=complete, concurrency=concurrency, budget=budget,
                        floors=settings.get("floors") or {}, files=files, seconds=time.time() - t0,
                        total=saved["total"])
