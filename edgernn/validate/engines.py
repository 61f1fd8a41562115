"""Validate an int8 ``.tflite`` with no float model: the engines against each other.

A ``.tflite`` made elsewhere (the plain TFLite converter, TFLM's examples) has no Keras model
beside it, so nothing float can be compared. What can be checked: every engine (TFLM,
edgernn's simulator, the compiled native C) gives the same int8 outputs (gated at 0 LSB by
default when two or more run), and the int8 metrics the labels allow — accuracy for class ids,
RMSE/MAE for regression targets. Thresholds that need the float model are refused in one
line saying so.
"""

from __future__ import annotations

import operator
from pathlib import Path

import numpy as np

from .. import tflite_model
from ..backends.tflm.runtime import dequantize, quantize
from ..data import load_dataset
from ..errors import EdgeRNNError
from .reports import write_reports

# thresholds that need only the int8 outputs (and the labels): option -> (metric, comparison)
INT8_ONLY = {"min_accuracy": ("accuracy_int8", ">="), "max_engine_lsb": ("engines_max_lsb", "<=")}
_OPS = {"<=": operator.le, ">=": operator.ge}


def _labels_metrics(ds, y: np.ndarray) -> tuple[str, dict]:
    """Int8-only metrics of dequantized outputs ``y`` against the dataset's labels."""
    if ds.y is None:
        return "unlabelled", {}
    if ds.is_classification:
        rows = y.reshape(-1, y.shape[-1]) if y.ndim > 1 else y.reshape(-1, 1)
        pred = rows.argmax(axis=1) if rows.shape[1] > 1 else (rows[:, 0] > 0.5).astype(np.int64)  # one sigmoid
        labels = ds.y.reshape(-1)
        if len(pred) != len(labels):
            raise EdgeRNNError(f"{ds.path}: 'y' has {len(labels)} class ids but the model gives {len(pred)} "
                               "answers (one per step?); give one label per answer")
        per_class = {int(c): {"n": int((labels == c).sum()), "accuracy_int8": float(np.mean(pred[labels == c] == c))}
                     for c in np.unique(labels)}
        return "classification", {"accuracy_int8": float(np.mean(pred == labels)), "per_class": per_class}
    t = np.asarray(ds.y, np.float64)
    if t.size != y.size:
        raise EdgeRNNError(f"{ds.path}: 'y' holds {t.size} targets but the model gives {y.size} outputs")
    err = y.astype(np.float64).reshape(-1) - t.reshape(-1)
    return "regression", {"rmse_int8": float(np.sqrt(np.mean(err ** 2))), "mae_int8": float(np.mean(np.abs(err)))}


def validate_engines(quant, data, *, engines=None, samples=None, report=None, junit=None, markdown=None,
                     per_layer=False, qat_quant=None, html=None, firmware=None, **thresholds):
    """Run ``quant`` (.tflite) on ``data`` in each of ``engines``; report and gate their agreement
    (``max_engine_lsb``, 0 by default with two or more engines) and ``min_accuracy``."""
    from .validator import ENGINES, THRESHOLDS, Check, ValidateReport, _run_engine, default_engines

    unknown = set(thresholds) - set(THRESHOLDS)
    if unknown:
        raise EdgeRNNError(f"unknown threshold(s) {sorted(unknown)}; known: {', '.join(THRESHOLDS)}")
    extra = [o for o, v in (("--per-layer", per_layer), ("--qat", qat_quant), ("--html", html),
                            ("--firmware", firmware)) if v]
    if extra:
        raise EdgeRNNError(f"{', '.join(extra)}: needs the float Keras model; validate model.keras model.tflite")
    need_float = sorted(k for k, v in thresholds.items() if v is not None and k not in INT8_ONLY)
    if need_float:
        opts = ", ".join("--" + k.replace("_", "-") for k in need_float)
        raise EdgeRNNError(f"{opts}: compares with the float model, and none was given; validate "
                           "model.keras model.tflite for that; a .tflite alone gates --min-accuracy and its "
                           "engines' agreement (bit for bit)")
    engines = list(engines) if engines else default_engines()
    for e in engines:
        if e not in ENGINES:
            raise EdgeRNNError(f"--engine {e!r}: use one of {', '.join(ENGINES)} (or 'both', 'all')")
    m = tflite_model.read(quant)
    tin, tout = m.input(), m.output()
    from ..backends.tflm.streaming import is_streaming_model

    streaming = is_streaming_model(m)
    shape = tuple(int(d) for d in tin.shape)
    features = int(np.prod(shape[2:])) if len(shape) >= 3 else None
    timesteps = shape[1] if len(shape) >= 3 and not streaming else None
    ds = load_dataset(data, features=features, timesteps=timesteps).take(samples)
    xq = quantize(ds.x, float(tin.scale[0]), int(tin.zero_point[0]))
    raw = {e: np.asarray(_run_engine(e, m, xq)) for e in engines}
    first = raw[engines[0]]
    raw = {e: o.reshape(first.shape) for e, o in raw.items()}
    primary = "tflm" if "tflm" in raw else engines[0]
    out_scale, out_zp = float(tout.scale[0]), int(tout.zero_point[0])

    def answers(o):  # a one-step model's answer for a sequence label is its last step's
        y = dequantize(o, out_scale, out_zp)
        return y[:, -1] if streaming and ds.y is not None and ds.y.ndim == 1 and y.ndim > 2 else y

    task, metrics = _labels_metrics(ds, answers(raw[primary]))
    engine_metrics = {e: {k: v for k, v in _labels_metrics(ds, answers(o))[1].items() if k != "per_class"}
                      for e, o in raw.items()}
    if len(raw) > 1:
        diff = {e: int(np.max(np.abs(o.astype(np.int32) - raw[primary].astype(np.int32)), initial=0))
                for e, o in raw.items() if e != primary}
        for e, lsb in diff.items():
            metrics[f"{e}_vs_{primary}_max_lsb"] = lsb
            engine_metrics[e]["max_lsb_vs_" + primary] = lsb
            engine_metrics[e]["identical_outputs"] = float(np.mean(raw[e] == raw[primary]))
        metrics["engines_max_lsb"] = max(diff.values())
        if thresholds.get("max_engine_lsb") is None:
            thresholds["max_engine_lsb"] = 0  # engines of one int8 model must agree bit for bit
    checks = []
    for opt, limit in thresholds.items():
        if limit is None:
            continue
        metric, op = INT8_ONLY[opt]
        if metric not in metrics:
            why = "one engine ran (use --engine all)" if opt == "max_engine_lsb" else f"the data are {task}"
            raise EdgeRNNError(f"--{opt.replace('_', '-')}: metric '{metric}' cannot be computed: {why}")
        value = metrics[metric]
        checks.append(Check(opt, metric, op, float(limit), value, bool(_OPS[op](value, limit))))
    rep = ValidateReport(model_name=Path(str(quant)).stem, data_path=str(ds.path), n_samples=len(ds), task=task,
                         engines=engines, metrics=metrics, engine_metrics=engine_metrics, checks=checks)
    write_reports(rep, json_path=report, junit_path=junit, markdown_path=markdown)
    return rep
