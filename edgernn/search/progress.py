"""What the driver sees while Ray Tune runs: trial states, a rich progress line, and the estimate
of the time left.

Ray Tune calls :class:`TuneEvents` (a ``ray.tune.Callback``) in the driver. Tune pickles its
callbacks with the experiment, so the callback keeps no state: it forwards to :data:`SINK`, the
:class:`Tracker` of the process that runs (or resumes) the search.
"""

from __future__ import annotations

import time

SINK = None  # the Tracker of the running search, set by engine.run()

FINAL_PHASES = ("done", "refused", "error")


class Tracker:
    """Trial states and results as Tune reports them; draws the progress line when ``show``."""

    def __init__(self, total: int, concurrency: int, show: bool, fixed: dict | None = None):
        self.total = total
        self.fixed = dict(fixed or {})
        self.concurrency = max(1, concurrency)
        self.show = show
        self.started: dict[str, float] = {}  # trial id -> start time (this process's clock)
        self.finished: dict[str, float] = {}  # trial id -> duration
        self.last: dict[str, dict] = {}  # trial id -> last result
        self.status: dict[str, str] = {}  # trial id -> Tune status at the end of the run
        self.best: dict | None = None
        self.t0 = time.time()
        self._progress = None
        self._task = None

    # -- Tune events --------------------------------------------------------------------------
    def trial_started(self, trial_id: str) -> None:
        self.started.setdefault(trial_id, time.time())
        self._refresh()

    def trial_result(self, trial_id: str, result: dict) -> None:
        self.last[trial_id] = {**self.fixed, **result}
        result = self.last[trial_id]
        if result.get("phase") == "done" and result.get("fits"):
            if self.best is None or result["accuracy"] > self.best["accuracy"]:
                self.best = dict(result)
        self._refresh()

    def trial_finished(self, trial_id: str, status: str) -> None:
        start = self.started.get(trial_id)
        last = self.last.get(trial_id, {})
        self.finished[trial_id] = last.get("seconds") or (time.time() - start if start else 0.0)
        self.status[trial_id] = status
        self._refresh()

    def preload(self, trials_dir) -> None:
        """Trials a resumed search finished before (their result.json): counted as done."""
        import json
        from pathlib import Path

        for f in sorted(Path(trials_dir).glob("*/result.json")):
            try:
                r = json.loads(f.read_text())
            except (OSError, ValueError):
                continue
            if r.get("phase") in FINAL_PHASES:
                self.started[r["trial_id"]] = self.t0
                self.trial_result(r["trial_id"], r)
                self.finished[r["trial_id"]] = r.get("seconds") or 0.0

    def experiment_end(self, statuses: dict) -> None:
        self.status.update(statuses)

    # -- the estimate ---------------------------------------------------------------------------
    def seconds_left(self) -> float | None:
        """Mean trial time x trials not done, over the workers, minus what running trials did."""
        done = len(self.finished)
        if not done:
            return None
        mean = sum(self.finished.values()) / done
        running = [time.time() - t for k, t in self.started.items() if k not in self.finished]
        work = max(0, self.total - done) * mean - sum(min(r, mean) for r in running)
        return max(0.0, work / self.concurrency)

    def describe_best(self) -> str:
        b = self.best
        if b is None:
            return "no trial fits yet"
        text = (f"best {b['accuracy']:.3f} {b.get('cell', '')}({b.get('units', '')}) "
                f"{b['flash'] / 1024:.1f}/{b['ram'] / 1024:.1f} KiB")
        if b.get("instructions"):
            text += f" {b['instructions'] / 1e6:.2f} M instr"
        return text

    # -- drawing ----------------------------------------------------------------------------------
    def info(self) -> str:
        running = len([k for k in self.started if k not in self.finished])
        left = self.seconds_left()
        parts = [f"{running} running", _duration(time.time() - self.t0)]
        if left is not None and len(self.finished) < self.total:
            parts.append(f"~{_duration(left)} left")
        return " | ".join(parts + [self.describe_best()])

    def start(self) -> None:
        if not self.show:
            return
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, ProgressColumn, TextColumn
        from rich.text import Text

        tracker = self

        class Info(ProgressColumn):  # drawn at every refresh: the estimate keeps moving
            def render(self, task):
                return Text(tracker.info())

        self._progress = Progress(TextColumn("search"), BarColumn(bar_width=16), MofNCompleteColumn(), Info(),
                                  transient=False, refresh_per_second=1)
        self._progress.start()
        self._task = self._progress.add_task("search", total=self.total)
        self._refresh()

    def _refresh(self) -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=len(self.finished))

    def stop(self) -> None:
        if self._progress is not None:
            self._refresh()
            self._progress.stop()
            self._progress = None


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"


def tune_callback():
    """A ``ray.tune.Callback`` forwarding Tune's events to :data:`SINK` (imports Ray lazily)."""
    return _callback_class()()


_CLASS = None


def __getattr__(name):  # pickle finds TuneEvents by name; Ray is imported only when it is needed
    if name == "TuneEvents":
        return _callback_class()
    raise AttributeError(name)


def _callback_class():
    global _CLASS
    if _CLASS is None:
        from ray.tune import Callback

        class TuneEvents(Callback):
            def on_trial_start(self, iteration, trials, trial, **info):
                if SINK is not None:
                    SINK.trial_started(trial.trial_id)

            def on_trial_result(self, iteration, trials, trial, result, **info):
                if SINK is not None:
                    SINK.trial_result(trial.trial_id, {**trial.config, **result})

            def on_trial_complete(self, iteration, trials, trial, **info):
                if SINK is not None:
                    SINK.trial_finished(trial.trial_id, "TERMINATED")

            def on_trial_error(self, iteration, trials, trial, **info):
                if SINK is not None:
                    SINK.trial_finished(trial.trial_id, "ERROR")

            def on_experiment_end(self, trials, **info):
                if SINK is not None:
                    SINK.experiment_end({t.trial_id: t.status for t in trials})

        TuneEvents.__module__ = __name__
        TuneEvents.__qualname__ = "TuneEvents"
        _CLASS = TuneEvents
    return _CLASS
