"""``search.toml``: the search space, the budgets and the search settings, checked before anything runs.

Every mistake is one :class:`EdgeRNNError` line naming the table and key (``[space] units``) and
saying what would work; nothing is read twice and nothing is written here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import product
from pathlib import Path

from ..data import load_dataset, read_toml
from ..errors import EdgeRNNError

CELLS = ("rnn", "lstm", "gru")
ALGORITHMS = ("tpe", "random", "grid")
# Targets whose firmware `edgernn firmware run` cannot run here are measured as this target
# (the same model sources and self-test, as `firmware.measure_project` does for their sizes).
MEASURED_AS = {"arduino": "cortex-m4", "zephyr": "cortex-m4"}


@dataclass(frozen=True)
class LogRange:
    """A continuous range sampled log-uniformly (``lr = {min = 1e-3, max = 1e-2}``)."""

    min: float
    max: float

    def to_json(self) -> dict:
        return {"min": self.min, "max": self.max}


def _int(v, lo=1, hi=None):
    if isinstance(v, bool) or not isinstance(v, int):
        return None
    return v if v >= lo and (hi is None or v <= hi) else None


def _float(v, lo=0.0):
    if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
        return None
    return float(v) if v > lo else None


# [space] keys: (what a value must be, a checker returning the value or None, the default).
# The default of `epochs` is [search] epochs. Extension point: a key the training or conversion
# stage learns later gets one row here and one line in trial.py (`_train_kwargs` / `_convert_kwargs`):
#   conv  - a convolutional front-end (none / filters / kernel), once `edgernn train` builds
#           Conv1D front-ends (issue 14);
#   state - the recurrent state width (int8 / int16), once `edgernn convert --state` lands (issue 15).
SPACE_KEYS = {
    "cell": ("one of rnn, lstm, gru", lambda v: v if v in CELLS else None, "lstm"),
    "units": ("an integer from 1 to 512", lambda v: _int(v, 1, 512), 16),
    "layers": ("an integer from 1 to 4", lambda v: _int(v, 1, 4), 1),
    "bidirectional": ("true or false", lambda v: v if isinstance(v, bool) else None, False),
    "qat": ("true or false", lambda v: v if isinstance(v, bool) else None, False),
    "epochs": ("an integer from 1 to 10000", lambda v: _int(v, 1, 10000), None),
    "lr": ("a learning rate > 0 and < 1", lambda v: _float(v) if _float(v) is not None and v < 1 else None, 3e-3),
}
_NOT_YET = {
    "conv": "a convolutional front-end needs `edgernn train` to build Conv1D front-ends (issue 14), "
            "not in this edgernn yet",
    "state": "the state width needs `edgernn convert --state int16` (issue 15), not in this edgernn yet",
}

_BUDGET_KEYS = {"target", "max_flash", "max_ram", "max_latency_ms", "cpu_hz", "max_instructions", "min_accuracy"}
_DATA_KEYS = {"train", "test", "validation_split", "test_split"}
_SEARCH_DEFAULTS = dict(trials=8, epochs=20, algorithm="tpe", seed=0, workers=None, asha=True, grace_epochs=None,
                        batch_size=32, patience=10, qat_epochs=3, samples=2, timeout=300.0, preflight=True)


@dataclass
class Budget:
    target: str = "cortex-m4"
    max_flash: int | None = None
    max_ram: int | None = None
    max_latency_ms: float | None = None
    cpu_hz: int | None = None
    max_instructions: int | None = None
    min_accuracy: float | None = None

    @property
    def measured_as(self) -> str:
        """The target whose firmware is built and run to measure a trial."""
        return MEASURED_AS.get(self.target, self.target)

    @property
    def counts_instructions(self) -> bool:
        return self.measured_as != "host"

    @property
    def instruction_limit(self) -> int | None:
        """The tighter of max_instructions and max_latency_ms x cpu_hz, in instructions."""
        limits = [self.max_instructions] if self.max_instructions is not None else []
        if self.max_latency_ms is not None and self.cpu_hz is not None:
            limits.append(int(self.max_latency_ms * self.cpu_hz / 1000))
        return min(limits) if limits else None

    def to_json(self) -> dict:
        return dict(self.__dict__)


@dataclass
class SearchConfig:
    path: Path
    train: Path
    test: Path | None
    validation_split: float
    test_split: float
    space: dict  # key -> list of choices, or a LogRange
    budget: Budget
    settings: dict  # [search] with defaults filled in
    features: int = 0
    timesteps: int = 0
    classes: int = 0
    n_train: int = 0
    raw_text: str = ""
    notes: list = field(default_factory=list)

    @property
    def searched(self) -> dict:
        """The keys with more than one choice (the ones the search algorithm decides)."""
        return {k: v for k, v in self.space.items() if isinstance(v, LogRange) or len(v) > 1}

    @property
    def fixed(self) -> dict:
        return {k: v[0] for k, v in self.space.items() if not isinstance(v, LogRange) and len(v) == 1}

    @property
    def max_epochs(self) -> int:
        return max(self.space["epochs"])

    def grid_size(self) -> int:
        return math.prod(len(v) for v in self.space.values())

    def n_trials(self) -> int:
        return self.grid_size() if self.settings["algorithm"] == "grid" else self.settings["trials"]

    def to_json(self) -> dict:
        space = {k: (v.to_json() if isinstance(v, LogRange) else v) for k, v in self.space.items()}
        return dict(config=str(self.path), train=str(self.train), test=str(self.test) if self.test else None,
                    validation_split=self.validation_split, test_split=self.test_split, space=space,
                    budget=self.budget.to_json(), search=dict(self.settings), features=self.features,
                    timesteps=self.timesteps, classes=self.classes)


def _unknown(table: str, got, known) -> None:
    extra = sorted(set(got) - set(known))
    if extra:
        raise EdgeRNNError(f"[{table}] {extra[0]}: unknown key; known keys: {', '.join(sorted(known))}")


def _space(raw, where: Path, epochs_default) -> dict:
    if not isinstance(raw, dict) or not raw:
        raise EdgeRNNError(f"{where}: [space] is empty; give at least one key to search, e.g. "
                           "cell = [\"gru\", \"lstm\"] and units = [8, 16]")
    for k in raw:
        if k in _NOT_YET:
            raise EdgeRNNError(f"[space] {k}: {_NOT_YET[k]}")
    _unknown("space", raw, SPACE_KEYS)
    space = {}
    for key, (what, check, default) in SPACE_KEYS.items():
        v = raw.get(key, default if key != "epochs" else epochs_default)
        if isinstance(v, dict):
            if key != "lr":
                raise EdgeRNNError(f"[space] {key}: a range is only for lr; give a list of choices, e.g. {key} = [...]")
            _unknown("space.lr", v, {"min", "max"})
            lo, hi = _float(v.get("min")), _float(v.get("max"))
            if lo is None or hi is None or not lo < hi < 1:
                raise EdgeRNNError("[space] lr: a range needs 0 < min < max < 1, e.g. lr = {min = 1e-3, max = 1e-2}")
            space[key] = LogRange(lo, hi)
            continue
        values = v if isinstance(v, list) else [v]
        if not values:
            raise EdgeRNNError(f"[space] {key}: an empty list; give at least one choice ({what})")
        for x in values:
            if check(x) is None:
                raise EdgeRNNError(f"[space] {key}: {x!r} is not {what}")
        if len(set(map(repr, values))) != len(values):
            raise EdgeRNNError(f"[space] {key}: {values} lists a choice twice")
        space[key] = [check(x) for x in values]
    if not any(isinstance(v, LogRange) or len(v) > 1 for v in space.values()):
        raise EdgeRNNError(f"{where}: [space] has nothing to search: every key has one value; give one key "
                           "two or more choices, e.g. units = [8, 16]")
    return space


def _budget(raw) -> Budget:
    from ..emit import TARGETS

    if not isinstance(raw, dict):
        raise EdgeRNNError("[budget]: must be a table, e.g. [budget] target = \"cortex-m4\" max_flash = 65536")
    _unknown("budget", raw, _BUDGET_KEYS)
    b = Budget(target=raw.get("target", "cortex-m4"))
    if b.target not in TARGETS:
        raise EdgeRNNError(f"[budget] target: {b.target!r} is not one of {', '.join(TARGETS)} (edgernn emit --target)")
    for key in ("max_flash", "max_ram", "cpu_hz", "max_instructions"):
        if key in raw:
            if _int(raw[key]) is None:
                raise EdgeRNNError(f"[budget] {key}: {raw[key]!r} is not a whole number > 0")
            setattr(b, key, raw[key])
    if "max_latency_ms" in raw:
        if _float(raw["max_latency_ms"]) is None:
            raise EdgeRNNError(f"[budget] max_latency_ms: {raw['max_latency_ms']!r} is not a number > 0")
        b.max_latency_ms = float(raw["max_latency_ms"])
    if "min_accuracy" in raw:
        v = _float(raw["min_accuracy"], lo=-1e-300)
        if v is None or v > 1:
            raise EdgeRNNError(f"[budget] min_accuracy: {raw['min_accuracy']!r} is not a fraction from 0 to 1 "
                               "(0.9 = 90 % of the validation split)")
        b.min_accuracy = v
    if not b.counts_instructions:
        for key in ("cpu_hz", "max_instructions"):
            if getattr(b, key) is not None:
                raise EdgeRNNError(f"[budget] {key}: the host target is timed in seconds, it counts no instructions; "
                                   "use max_latency_ms, or a Cortex-M target")
    elif b.max_latency_ms is not None and b.cpu_hz is None:
        raise EdgeRNNError(f"[budget] max_latency_ms: needs cpu_hz (latency = instructions / cpu_hz on "
                           f"{b.target}), e.g. cpu_hz = 80_000_000; or give max_instructions")
    if b.instruction_limit is not None and b.instruction_limit < 1:
        raise EdgeRNNError(f"[budget] max_latency_ms: {b.max_latency_ms} ms at {b.cpu_hz} Hz is less than one "
                           "instruction; no model fits")
    return b


def _settings(raw) -> dict:
    if not isinstance(raw, dict):
        raise EdgeRNNError("[search]: must be a table, e.g. [search] trials = 8")
    _unknown("search", raw, _SEARCH_DEFAULTS)
    s = {**_SEARCH_DEFAULTS, **raw}
    checks = dict(trials=lambda v: _int(v, 1, 100000), epochs=lambda v: _int(v, 1, 10000),
                  seed=lambda v: _int(v, 0), workers=lambda v: v is None or _int(v, 1, 4096),
                  grace_epochs=lambda v: v is None or _int(v, 1), batch_size=lambda v: _int(v, 1),
                  patience=lambda v: _int(v, 1), qat_epochs=lambda v: _int(v, 1), samples=lambda v: _int(v, 1, 100),
                  timeout=lambda v: _float(v), asha=lambda v: isinstance(v, bool),
                  preflight=lambda v: isinstance(v, bool), algorithm=lambda v: v in ALGORITHMS)
    hints = dict(algorithm=f"one of {', '.join(ALGORITHMS)}", asha="true or false", preflight="true or false",
                 timeout="seconds > 0", samples="an integer from 1 to 100")
    for k, check in checks.items():
        ok = check(s[k])
        if ok is None or ok is False:
            raise EdgeRNNError(f"[search] {k}: {s[k]!r} is not {hints.get(k, 'a whole number > 0')}")
    s["timeout"] = float(s["timeout"])
    return s


def count_params(cell: str, units: int, layers: int, bidirectional: bool, features: int, classes: int) -> int:
    """Parameters of ``train.build_model``'s model (= Keras ``count_params``), without building it."""
    gates = {"rnn": 1, "lstm": 4, "gru": 3}[cell]
    biases = 2 if cell == "gru" else 1  # Keras 3 GRU: reset_after=True keeps two bias vectors
    n, width = 0, features
    for _ in range(layers):
        per_direction = gates * units * (width + units + biases)
        n += per_direction * (2 if bidirectional else 1)
        width = units * (2 if bidirectional else 1)
    return n + width * classes + classes


def smallest_per_cell(space: dict) -> list[dict]:
    """For each cell of the space, its smallest model (fewest units and layers, one direction if
    allowed): every other model with that cell needs at least its flash, RAM and instructions."""
    return [dict(cell=c, units=min(space["units"]), layers=min(space["layers"]),
                 bidirectional=min(space["bidirectional"]), qat=False) for c in space["cell"]]


def load_config(path) -> SearchConfig:
    """Read and check ``search.toml`` (and the data it names); raise one line on the first mistake."""
    try:
        return _load(Path(path))
    except EdgeRNNError as exc:
        if str(exc).startswith("["):  # a key of the config: name the file too
            raise EdgeRNNError(f"{path}: {exc}") from None
        raise


def _load(p: Path) -> SearchConfig:
    raw = read_toml(p, "search config")
    _unknown("top level", raw, {"data", "space", "budget", "search"})
    if "data" not in raw or not isinstance(raw["data"], dict) or "train" not in raw["data"]:
        raise EdgeRNNError(f"{p}: [data] train is missing; e.g. [data] train = \"train.npz\"")
    d = raw["data"]
    _unknown("data", d, _DATA_KEYS)
    for key in ("train", "test"):
        if key in d and not isinstance(d[key], str):
            raise EdgeRNNError(f"[data] {key}: {d[key]!r} is not a path string")
    splits = {}
    for key in ("validation_split", "test_split"):
        v = d.get(key, 0.2)
        if _float(v) is None or v >= 0.9:
            raise EdgeRNNError(f"[data] {key}: {v!r} is not a fraction in (0, 0.9)")
        splits[key] = float(v)
    settings = _settings(raw.get("search", {}))
    space_raw = raw.get("space")
    if isinstance(space_raw, dict) and "epochs" in space_raw and "epochs" in raw.get("search", {}):
        raise EdgeRNNError("[space] epochs: also given in [search] epochs; keep one")
    space = _space(space_raw, p, settings["epochs"])
    if settings["algorithm"] == "grid" and isinstance(space["lr"], LogRange):
        raise EdgeRNNError("[space] lr: a range cannot be a grid; give a list, e.g. lr = [1e-3, 3e-3]")
    budget = _budget(raw.get("budget", {}))
    notes = []
    combos = math.prod(len(v) for v in space.values() if not isinstance(v, LogRange))
    if settings["algorithm"] != "grid" and not any(isinstance(v, LogRange) for v in space.values()) \
            and settings["trials"] >= combos:
        notes.append(f"{settings['trials']} trials cover all {combos} combinations of [space]: each runs once "
                     "(algorithm grid)")
        settings["algorithm"] = "grid"

    base = p.parent
    train_path = (base / d["train"]).resolve()
    test_path = (base / d["test"]).resolve() if "test" in d else None
    ds = load_dataset(train_path, require_y=True)
    if not ds.is_classification:
        raise EdgeRNNError(f"{train_path}: the search ranks models by accuracy, so 'y' must hold integer class ids "
                           f"of shape (N,); got {ds.y.dtype} of shape {ds.y.shape}")
    classes = ds.num_classes
    if test_path is not None:
        te = load_dataset(test_path, require_y=True, features=ds.x.shape[2], timesteps=ds.x.shape[1])
        if not te.is_classification or te.num_classes > classes:
            raise EdgeRNNError(f"{test_path}: 'y' must be class ids below {classes}, as in {train_path.name}")
    held = 0 if test_path is not None else round(len(ds) * splits["test_split"])
    n_val = round((len(ds) - held) * splits["validation_split"])
    if n_val < 1 or len(ds) - held - n_val < 1 or (test_path is None and held < 1):
        raise EdgeRNNError(f"{train_path}: {len(ds)} samples are too few to split into training, validation and "
                           "test sets; give more data or a [data] test file")

    cfg = SearchConfig(path=p.resolve(), train=train_path, test=test_path, space=space, budget=budget,
                       settings=settings, features=int(ds.x.shape[2]), timesteps=int(ds.x.shape[1]),
                       classes=classes, n_train=len(ds), raw_text=p.read_text(), notes=notes, **splits)
    _check_params_fit(cfg)
    return cfg


def _check_params_fit(cfg: SearchConfig) -> None:
    """Impossible flash budgets: every int8 weight takes at least a byte of flash."""
    if cfg.budget.max_flash is None:
        return
    sizes = [(count_params(c["cell"], c["units"], c["layers"], c["bidirectional"], cfg.features, cfg.classes), c)
             for c in smallest_per_cell(cfg.space)]
    n, c = min(sizes, key=lambda t: t[0])
    if n > cfg.budget.max_flash:
        raise EdgeRNNError(f"[budget] max_flash {cfg.budget.max_flash}: no model in [space] fits; the smallest "
                           f"({c['cell']}, {c['units']} units, {c['layers']} layer(s)) has {n:,} int8 parameters, "
                           "at least one byte of flash each; raise max_flash or search smaller models")


def grid_points(space: dict) -> list[dict]:
    """Every combination of a list-only space (the grid algorithm's trials)."""
    keys = list(space)
    return [dict(zip(keys, combo)) for combo in product(*(space[k] for k in keys))]


@dataclass
class Floors:
    """The smallest model of each cell, untrained, built and run for the target: lower bounds."""

    per_cell: dict = field(default_factory=dict)  # cell -> {"flash", "ram", "instructions", "config"}

    def broken(self, cell: str, budget: Budget) -> str | None:
        """Why no model with this cell can fit, or None."""
        f = self.per_cell.get(cell)
        if not f:
            return None
        why = []
        if budget.max_flash is not None and f["flash"] > budget.max_flash:
            why.append(f"flash {f['flash']:,} > max_flash {budget.max_flash:,}")
        if budget.max_ram is not None and f["ram"] > budget.max_ram:
            reserved = f" (the self-test's stack and heap reserve {f['ram_reserved']:,} of it)" \
                if f.get("ram_reserved") else ""
            why.append(f"RAM {f['ram']:,}{reserved} > max_ram {budget.max_ram:,}")
        limit = budget.instruction_limit
        # Instruction counts barely depend on the weights' values; 2 % keeps the bound safe.
        if limit is not None and f.get("instructions") and f["instructions"] > 1.02 * limit:
            why.append(f"{f['instructions']:,} instructions > {limit:,}")
        if not why:
            return None
        c = f["config"]
        return (f"the smallest {cell} model ({c['units']} units, {c['layers']} layer(s)"
                f"{', bidirectional' if c['bidirectional'] else ''}) needs {'; '.join(why)}")
