"""The gate: thresholds, their sane ranges, and the bit-for-bit agreement of the engines.

A threshold is a limit on one metric (``max_accuracy_drop`` on ``accuracy_drop``, ...); each
becomes a :class:`Check`, one JUnit testcase. When two or more engines run the int8 model,
each engine is compared with the reference engine (TFLM when it runs, else the first one):
the largest difference of their int8 outputs, in LSBs, is the metric ``A_vs_B_max_lsb`` and
one check per pair, limit ``max_engine_lsb`` (0 unless given: the engines are bit-exact twins).
"""

from __future__ import annotations

import math
import operator
from dataclasses import dataclass

import numpy as np

from ..errors import EdgeRNNError

# threshold option -> (metric, comparison, human text)
THRESHOLDS = {
    "max_accuracy_drop": ("accuracy_drop", "<=", "accuracy drop float -> int8"),
    "min_agreement": ("top1_agreement", ">=", "top-1 agreement float vs int8"),
    "min_accuracy": ("accuracy_int8", ">=", "int8 accuracy"),
    "max_abs_error": ("max_abs_error", "<=", "max |float - int8| of the outputs"),
    "min_snr_db": ("snr_db", ">=", "SNR of int8 outputs vs float (dB)"),
    "min_cosine": ("cosine", ">=", "cosine similarity of int8 outputs vs float"),
    "max_rmse_increase": ("rmse_increase", "<=", "RMSE increase float -> int8"),
    "max_engine_lsb": ("engines_max_lsb", "<=", "largest int8 difference between two engines (LSB)"),
}
# threshold -> (lowest, highest, what a valid value is); values outside can never pass or always pass
_RANGES = {
    "max_accuracy_drop": (0.0, 1.0, "a fraction between 0 and 1 (0.02 = 2 accuracy points)"),
    "min_agreement": (0.0, 1.0, "a fraction between 0 and 1 (0.97 = 97 % of samples)"),
    "min_accuracy": (0.0, 1.0, "a fraction between 0 and 1 (0.9 = 90 %)"),
    "max_abs_error": (0.0, math.inf, "an output difference >= 0"),
    "min_snr_db": (-math.inf, math.inf, "a finite number of dB (e.g. 20)"),
    "min_cosine": (-1.0, 1.0, "a cosine between -1 and 1 (e.g. 0.99)"),
    "max_rmse_increase": (0.0, math.inf, "an RMSE increase >= 0"),
    "max_engine_lsb": (0, math.inf, "a whole number of LSBs >= 0 (0 = bit for bit)"),
}
_OPS = {"<=": operator.le, ">=": operator.ge}


def option_name(key: str) -> str:
    """``max_accuracy_drop`` -> ``--max-accuracy-drop``."""
    return "--" + key.replace("_", "-")


@dataclass
class Check:
    name: str
    metric: str
    op: str
    limit: float
    value: float | None
    passed: bool

    def describe(self) -> str:
        what = self.metric if self.name == self.metric else f"{self.name}: {self.metric}"
        return f"{what} = {self.value} (limit {self.op} {self.limit})"


def check_threshold(key: str, value, where: str | None = None):
    """``value`` as a number, or one line naming the option (or ``where``: file and key) and
    what would work. Impossible limits (``max_accuracy_drop = -1``, ``min_agreement = 2``) are
    refused rather than failing or passing every model."""
    if key not in THRESHOLDS:
        raise EdgeRNNError(f"{where or option_name(key)}: unknown threshold; known: {', '.join(THRESHOLDS)}")
    label = where or option_name(key)
    lo, hi, what = _RANGES[key]
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise EdgeRNNError(f"{label} {value!r}: must be {what}")
    v = float(value)
    shown = f"{v:g}"
    if not math.isfinite(v) or not lo <= v <= hi:
        raise EdgeRNNError(f"{label} {shown}: impossible limit; must be {what}")
    if key == "max_engine_lsb":
        if v != int(v):
            raise EdgeRNNError(f"{label} {shown}: must be {what}")
        return int(v)
    return v


def engine_pairs(engines: list[str]) -> list[tuple[str, str]]:
    """(engine, reference) pairs compared bit for bit: every engine against TFLM when it runs,
    else against the first engine."""
    if len(engines) < 2:
        return []
    ref = "tflm" if "tflm" in engines else engines[0]
    return [(e, ref) for e in engines if e != ref]


def engine_agreement(raw: dict[str, np.ndarray]) -> dict[str, int]:
    """``{"A_vs_B_max_lsb": n, ..., "engines_max_lsb": max}`` of the engines' int8 outputs."""
    out: dict[str, int] = {}
    for a, b in engine_pairs(list(raw)):
        x, y = np.asarray(raw[a]).astype(np.int64), np.asarray(raw[b]).astype(np.int64)
        if x.shape != y.shape:
            raise EdgeRNNError(f"engines {a} and {b} gave outputs of different shapes {x.shape} and {y.shape}")
        out[f"{a}_vs_{b}_max_lsb"] = int(np.max(np.abs(x - y))) if x.size else 0
    if out:
        out["engines_max_lsb"] = max(out.values())
    return out


def build_checks(metrics: dict, thresholds: dict, engines: list[str], task: str) -> list[Check]:
    """One :class:`Check` per engine pair (limit ``max_engine_lsb``, default 0) and per given
    threshold. ``thresholds``: key -> limit or None (not checked)."""
    checks = []
    max_lsb = thresholds.get("max_engine_lsb")
    pairs = engine_pairs(engines)
    if max_lsb is not None and not pairs:
        raise EdgeRNNError(f"--max-engine-lsb compares two or more engines; engines {engines} is one "
                           "(use --engine both or --engine all)")
    limit = 0 if max_lsb is None else max_lsb
    for a, b in pairs:
        name = f"{a}_vs_{b}_max_lsb"
        checks.append(Check(name, name, "<=", limit, metrics[name], metrics[name] <= limit))
    for key, limit in thresholds.items():
        if limit is None or key == "max_engine_lsb":
            continue
        metric, op, _ = THRESHOLDS[key]
        if metric not in metrics:
            raise EdgeRNNError(f"{option_name(key)}: metric '{metric}' does not apply to a {task} model "
                               f"or to engines {engines}")
        value = metrics[metric]
        checks.append(Check(key, metric, op, limit, value, bool(_OPS[op](value, limit))))
    return checks
