"""Compare the float model with its int8 flatbuffer on a dataset, engine by engine.

Engines run the int8 model: ``tflm`` (the real TFLM interpreter, ``tflite_micro.runtime``),
``simulator`` (edgernn's numpy twin, :mod:`edgernn.simulate`) and ``native`` (the generated C,
compiled with gcc). The metrics follow the labels: classification (accuracy, drop, top-1
agreement, per-class) or regression (RMSE, MAE); output error metrics are always reported.
Each threshold becomes a :class:`Check`; a broken one makes ``passed`` false (exit 1).
"""

from __future__ import annotations

import os
import warnings
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from .. import tflite_model
from ..backends.tflm.runtime import TFLMRunner, dequantize, quantize
from ..data import load_dataset, read_toml
from ..errors import EdgeRNNError
from . import metrics as M
from .gates import THRESHOLDS, Check, build_checks, check_threshold, engine_agreement
from .reports import write_reports

ENGINES = ("tflm", "simulator", "native")


@dataclass
class ValidateReport:
    model_name: str
    data_path: str
    n_samples: int
    task: str
    engines: list[str]
    metrics: dict
    engine_metrics: dict = field(default_factory=dict)
    checks: list[Check] = field(default_factory=list)
    per_layer: list = field(default_factory=list)
    timeline: dict | None = None  # error along the sequence (timeline.py), when the HTML report asks for it
    firmware: list = field(default_factory=list)  # firmware results (FirmwareResult.to_dict()) shown in the HTML
    provenance: dict = field(default_factory=dict)  # files' sha256 and versions
    arrays: dict = field(default_factory=dict, repr=False)  # y_true, y_float, y_int8 for the HTML report
    warnings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failed_checks(self) -> list[Check]:
        return [c for c in self.checks if not c.passed]

    def to_dict(self) -> dict:
        d = asdict(replace(self, arrays={}))
        del d["arrays"]
        d["passed"] = self.passed
        return d


def _float_outputs(obj, x: np.ndarray) -> np.ndarray:
    """Outputs of the float Keras model ``obj``."""
    from ..backends.tflm.convert import keras_input

    x = keras_input(obj, x)  # an image model's (N, T, F, C)
    outs = [np.asarray(obj(x[i:i + 256], training=False), np.float32) for i in range(0, len(x), 256)]
    return np.concatenate(outs)


def check_source(obj, m: tflite_model.TFLiteModel, label: str) -> str | None:
    """Refuse a flatbuffer converted from other weights than the Keras model ``obj``; return a
    warning when the flatbuffer carries no fingerprint (not converted by edgernn, or older)."""
    stored = m.source_fingerprint
    if stored is None:
        return (f"{m.path} carries no fingerprint of the weights it was converted from (not written by "
                f"`edgernn convert`); cannot check that it comes from {label}")
    from ..backends.tflm.convert import weights_fingerprint
    from ..frontend import from_keras

    try:
        mine = weights_fingerprint(from_keras(obj))
    except EdgeRNNError as exc:
        mine, why = None, f" ({exc})"
    else:
        why = ""
    if mine != stored:
        raise EdgeRNNError(f"{m.path} was converted from a different model than {label}{why}: weights "
                           f"fingerprint {stored[:12]} in the flatbuffer, {(mine or '?')[:12]} for the model; "
                           "validate it with the model it was converted from, or convert this model again")
    return None


def _run_streaming(engine: str, m: tflite_model.TFLiteModel, xq: np.ndarray) -> np.ndarray:
    """A one-step model fed each sequence one sample per call: (N, T, *output) int8."""
    if engine == "tflm":
        from ..backends.tflm.streaming import run_streaming
        return run_streaming(TFLMRunner(m.raw).interpreter, xq)
    if engine == "simulator":
        from ..simulate import Simulator
        sim = Simulator.from_bytes(m.raw)
        sim.reset()
        steps = [np.asarray(sim.run(xq[:, t:t + 1], stateful=True)) for t in range(xq.shape[1])]
        return np.stack(steps, axis=1)
    raise EdgeRNNError(f"--engine {engine}: {m.path} is a streaming (one-step) model; validate the native C "
                       "with the whole-sequence .tflite (its NAME_step streams the same model)")


def _run_engine(engine: str, m: tflite_model.TFLiteModel, xq: np.ndarray) -> np.ndarray:
    from ..backends.tflm.streaming import is_streaming_model

    if is_streaming_model(m):
        return _run_streaming(engine, m, xq)
    if engine == "tflm":
        return TFLMRunner(m.raw).run(xq)
    if engine == "simulator":
        try:
            from ..simulate import Simulator
        except ImportError:
            raise EdgeRNNError("--engine simulator: the simulator is not available in this build") from None
        return np.asarray(Simulator.from_bytes(m.raw).run(xq))
    if engine == "native":
        try:
            from ..backends.native.host import run_native
        except ImportError:
            raise EdgeRNNError("--engine native: the native backend is not available in this build") from None
        return np.asarray(run_native(m.path, xq))
    raise EdgeRNNError(f"--engine {engine!r}: use one of {', '.join(ENGINES)}")


def load_thresholds(path) -> dict:
    """Thresholds from a TOML file: a ``[validate]`` table, or keys at the top level.

    Keys are the threshold names (``max_accuracy_drop = 0.02``, ``min_agreement = 0.97``,
    ``max_engine_lsb = 0``, …); each is checked as on the command line."""
    p = Path(path)
    cfg = read_toml(p, "thresholds")
    table = cfg.get("validate", cfg)
    if not isinstance(table, dict):
        raise EdgeRNNError(f"{p}: 'validate' must be a table ([validate]) of thresholds")
    unknown = sorted(k for k, v in table.items() if k not in THRESHOLDS and not isinstance(v, (dict, list, str)))
    if unknown:
        raise EdgeRNNError(f"{p}: unknown threshold(s) {unknown}; known: {', '.join(THRESHOLDS)}")
    return {k: check_threshold(k, v, f"{p}: {k} =") for k, v in table.items() if k in THRESHOLDS}


def default_engines() -> list[str]:
    try:
        from ..simulate import Simulator  # noqa: F401
        return ["simulator", "tflm"]
    except ImportError:
        return ["tflm"]


def validate(model, quant, data, *, engines=None, report=None, junit=None, markdown=None, samples: int | None = None,
             per_layer: bool = False, qat_quant=None, html=None, firmware=None, **thresholds) -> ValidateReport:
    """Validate ``quant`` (.tflite) against the float ``model`` on ``data`` (.npz).

    Thresholds (keyword arguments, None = not checked): ``max_accuracy_drop``, ``min_agreement``,
    ``min_accuracy``, ``max_abs_error``, ``min_snr_db``, ``min_cosine``, ``max_rmse_increase``,
    ``max_engine_lsb``. The report's ``passed`` is false when any is broken. With two or more
    engines each is compared with TFLM (or the first engine) bit for bit: one check per pair,
    limit ``max_engine_lsb`` (default 0). Impossible limits raise :class:`EdgeRNNError`.

    The flatbuffer must come from ``model``: ``edgernn convert`` stores a fingerprint of the
    float weights in its metadata, and a different one raises :class:`EdgeRNNError`; a
    flatbuffer without one gives a warning (``report.warnings`` and a :class:`UserWarning`).

    ``qat_quant``: the .tflite of the quantization-aware-trained model; its int8 accuracy (in
    the TFLM runtime) is reported beside PTQ's as ``accuracy_int8_qat`` / ``accuracy_drop_qat``
    (relative to the float ``model``).

    ``html``: write the HTML report there (:mod:`.htmlreport`: figures, tables, provenance;
    self-contained); it adds the error along the sequence (:mod:`.timeline`). ``firmware``:
    firmware results (``FirmwareResult`` objects, their ``to_dict()``, or paths of the JSON
    ``edgernn firmware run --json`` writes) whose sizes and instructions the HTML shows.
    """
    unknown = set(thresholds) - set(THRESHOLDS)
    if unknown:
        raise EdgeRNNError(f"unknown threshold(s) {sorted(unknown)}; known: {', '.join(THRESHOLDS)}")
    thresholds = {k: None if v is None else check_threshold(k, v) for k, v in thresholds.items()}
    if samples is not None and (isinstance(samples, bool) or not isinstance(samples, (int, np.integer))
                                or samples < 1):
        raise EdgeRNNError(f"--samples {samples!r}: must be a whole number >= 1 (or left out: every sample)")
    engines = list(engines) if engines else default_engines()
    for e in engines:
        if e not in ENGINES:
            raise EdgeRNNError(f"--engine {e!r}: use one of {', '.join(ENGINES)} (or 'both')")
    if len(set(engines)) != len(engines):
        raise EdgeRNNError(f"--engine: {engines} names an engine twice")
    from ..backends.tflm.streaming import is_streaming_model
    from ..frontend import load_keras_object

    m = tflite_model.read(quant)
    m.check_int8("validate")
    tin, tout = m.input(), m.output()
    if len(tin.shape) != 3:
        raise EdgeRNNError(f"{m.path}: input '{tin.name}' has shape {list(tin.shape)}; validate takes sequence "
                           "models whose int8 input is (1, T, F), as `edgernn convert` writes them")
    obj = load_keras_object(model) if isinstance(model, (str, os.PathLike)) else model
    notes = [w for w in [check_source(obj, m, str(model) if isinstance(model, (str, os.PathLike))
                                      else f"model '{obj.name}'")] if w]
    for w in notes:
        warnings.warn(w, UserWarning, stacklevel=2)
    streaming = is_streaming_model(m)
    timesteps = tin.shape[1] if len(tin.shape) == 3 and not streaming else None
    ds = load_dataset(data, require_y=True, features=tin.shape[-1], timesteps=timesteps).take(samples)

    y_float, name = _float_outputs(obj, ds.x), obj.name
    in_scale, in_zp = float(tin.scale[0]), int(tin.zero_point[0])
    out_scale, out_zp = float(tout.scale[0]), int(tout.zero_point[0])
    xq = quantize(ds.x, in_scale, in_zp)
    raw = {e: _run_engine(e, m, xq) for e in engines}
    primary = "tflm" if "tflm" in raw else engines[0]
    steps_raw = None
    if streaming:  # outputs after every step: a per-sequence model's answer is the last step's
        per_sequence = y_float.ndim == 2
        steps_raw = raw[primary] if per_sequence else None
        raw = {e: (o[:, -1] if per_sequence else o) for e, o in raw.items()}
    y_int8 = dequantize(raw[primary], out_scale, out_zp).reshape(y_float.shape)

    task = "classification" if ds.is_classification else "regression"
    metrics = M.output_agreement(y_float, y_int8)
    if task == "classification":
        metrics.update(M.classification(ds.y, y_float, y_int8))
    else:
        r = M.regression(ds.y, y_float, y_int8)
        metrics.update(r)
        metrics["rmse_increase"] = r["rmse_int8"] - r["rmse_float"]
    engine_metrics = {}
    for e, out in raw.items():
        deq = dequantize(out, out_scale, out_zp).reshape(y_float.shape)
        em = M.output_agreement(y_float, deq)
        if task == "classification":
            c = M.classification(ds.y, y_float, deq)
            em.update({k: c[k] for k in ("accuracy_int8", "accuracy_drop", "top1_agreement")})
        engine_metrics[e] = em
    metrics.update(engine_agreement(raw))

    if qat_quant is not None:
        mq = tflite_model.read(qat_quant)
        qin, qout = mq.input(), mq.output()
        yq = TFLMRunner(mq.raw).run(quantize(ds.x, float(qin.scale[0]), int(qin.zero_point[0])))
        y_qat = dequantize(yq, float(qout.scale[0]), int(qout.zero_point[0])).reshape(y_float.shape)
        if task == "classification":
            cq = M.classification(ds.y, y_float, y_qat)
            metrics["accuracy_int8_qat"] = cq["accuracy_int8"]
            metrics["accuracy_drop_qat"] = cq["accuracy_float"] - cq["accuracy_int8"]
        else:
            metrics["rmse_int8_qat"] = M.regression(ds.y, y_float, y_qat)["rmse_int8"]
        metrics["max_abs_error_qat"] = M.output_agreement(y_float, y_qat)["max_abs_error"]

    checks = build_checks(metrics, thresholds, engines, task)

    layers = []
    if per_layer:
        try:
            from .diagnostics import per_layer_report
        except ImportError:
            raise EdgeRNNError("--per-layer needs the simulator, which is not available in this build") from None
        layers = per_layer_report(model, quant, ds.x)

    fw = _firmware_results(firmware)
    timeline = None
    if html is not None:
        from .timeline import hidden_error_by_step, output_error_by_step, streaming_error_by_step

        timeline = output_error_by_step(y_float, y_int8)
        try:  # a model whose float twin cannot be cut after its last recurrent layer has no such figure
            if timeline is None and steps_raw is not None:
                timeline = streaming_error_by_step(model, ds.x, dequantize(steps_raw, out_scale, out_zp)
                                                   .reshape((len(ds), -1) + y_float.shape[1:]))
            elif timeline is None:
                timeline = hidden_error_by_step(model, quant, ds.x)
        except (EdgeRNNError, ValueError, TypeError, KeyError):
            timeline = None
    rep = ValidateReport(model_name=name, data_path=str(ds.path), n_samples=len(ds), task=task, engines=engines,
                         metrics=metrics, engine_metrics=engine_metrics, checks=checks, per_layer=layers,
                         warnings=notes)
    rep.timeline, rep.firmware = timeline, fw
    rep.arrays = {"y_true": ds.y, "y_float": y_float, "y_int8": y_int8, "out_scale": out_scale}
    from .htmlreport import provenance

    rep.provenance = provenance({"float model": model if isinstance(model, (str, os.PathLike)) else None,
                                 "int8 model": quant, "data": ds.path, "QAT int8 model": qat_quant})
    write_reports(rep, json_path=report, junit_path=junit, markdown_path=markdown)
    if html is not None:
        from .htmlreport import write_html

        write_html(rep, html)
    return rep


def _firmware_results(firmware) -> list[dict]:
    """Firmware results as dicts: objects with ``to_dict()``, dicts, or JSON files."""
    import json

    out = []
    for r in ([] if firmware is None else firmware if isinstance(firmware, (list, tuple)) else [firmware]):
        if hasattr(r, "to_dict"):
            r = r.to_dict()
        elif isinstance(r, (str, os.PathLike)):
            p = Path(r)
            try:
                r = json.loads(p.read_text())
            except (OSError, ValueError) as exc:
                raise EdgeRNNError(f"--firmware {p}: cannot read a firmware result ({exc}); write one with "
                                   "`edgernn firmware run DIR --json result.json`") from None
        if not isinstance(r, dict) or not ("sizes" in r or "perf" in r):
            raise EdgeRNNError(f"--firmware: {str(r)[:60]} is not a firmware result (`edgernn firmware run --json`)")
        out.append(r)
    return out
