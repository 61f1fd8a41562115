"""QAT fine-tuning with keep-best: :func:`qat_finetune`.

The given model is epoch 0; it and the weights after every epoch are scored on a selection
set by the int8 model each would deploy, and the best is kept (ties: the earlier epoch), so QAT
cannot make a model that already quantizes well worse. See :mod:`edgernn.qat` for the design.
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import tensorflow as tf
import tf_keras as tfk

from .. import ir
from ..backends.tflm.convert import convert_ir
from ..backends.tflm.keras_build import build_tf_keras
from ..backends.tflm.runtime import TFLMRunner
from ..data import Dataset, check_x, load_dataset
from ..errors import EdgeRNNError
from ..frontend import from_keras, load_keras_object, save_model
from ..quantize.calibrate import MAX_CALIB_SAMPLES
from ..simulate import Simulator
from .calibration import calibrate
from .model import build_qat_model
from .snap import snap_model
from .weights import float_ir, write_back

log = logging.getLogger(__name__)


@dataclass
class QATResult:
    """What :func:`qat_finetune` returns."""

    model: object  # float Keras model: the kept epoch's weights on their int8 grid (epoch 0: as given)
    path: Path | None
    ir_model: ir.Model  # the saved model's IR
    epochs_run: int
    history: dict  # per epoch 1.., under fake quantization: loss (+ accuracy / mae), selection_score
    ranges: dict = field(default_factory=dict)  # tensor name -> (min, max) of the kept weights
    int8_sim_metrics: dict = field(default_factory=dict)  # kept fake-quantized model on `data`
    kept_epoch: int = 0  # 0: the starting weights (what PTQ deploys) scored best; else that epoch's
    selection: str = "training data"  # or "validation data": the set the epochs were scored on
    selection_metric: str = "accuracy"  # "accuracy" (higher is better) or "mse" (lower is better)
    selection_with: str = "int8"  # "int8" (converted, bit-exact simulator) or "fake-quant"
    selection_scores: list = field(default_factory=list)  # index = epoch (0 = the given weights)

    @property
    def kept_score(self) -> float:
        """The kept epoch's score on the selection set (with ``selection_with``)."""
        return self.selection_scores[self.kept_epoch]



def _dataset(data, model: ir.Model, what: str) -> Dataset:
    if isinstance(data, Dataset):
        ds = data
    elif isinstance(data, (str, os.PathLike)):
        ds = load_dataset(data, require_y=(what != "calib"), features=model.input.features,
                          timesteps=model.input.timesteps)
    elif isinstance(data, tuple) and len(data) == 2:
        ds = Dataset(f"{what} arrays", np.asarray(data[0], np.float32), np.asarray(data[1]))
    else:
        ds = Dataset(f"{what} array", np.asarray(data, np.float32), None)
    if ds.x.ndim != 3 or ds.x.shape[2] != model.input.features:
        raise EdgeRNNError(f"{ds.path}: 'x' has shape {ds.x.shape}; the model expects (N, T, {model.input.features})")
    if model.input.timesteps is not None and ds.x.shape[1] != model.input.timesteps:
        raise EdgeRNNError(f"{ds.path}: {ds.x.shape[1]} time steps; the model expects {model.input.timesteps}")
    if what == "data" and ds.y is None:
        raise EdgeRNNError(f"{ds.path}: no labels 'y'; QAT fine-tuning needs the training labels")
    if what == "val" and ds.y is None:
        raise EdgeRNNError(f"{ds.path}: no labels 'y'; the QAT validation (selection) set needs them")
    return ds


SELECT_WITH = ("int8", "fake-quant")
TFLM_ARENA = 1 << 22  # bytes, fixed (no arena search per epoch); a model needing more fails to allocate


def int8_outputs(model: ir.Model, calib_x: np.ndarray, x: np.ndarray, state: str = "int16") -> np.ndarray:
    """``model`` converted as ``edgernn convert --state state`` does with ``calib_x``, run on
    ``x`` in the bit-exact simulator (the TFLM int8 outputs), dequantized; in TFLM itself when
    the simulator lacks one of the flatbuffer's ops."""
    calib = check_x(calib_x, "calibration array", features=model.input.features, timesteps=model.input.timesteps)
    tflite = convert_ir(model, calib, state=state)
    try:
        sim = Simulator.from_bytes(tflite)
    except EdgeRNNError as e:
        log.debug("QAT selection in TFLM: %s", e)
        runner = TFLMRunner(tflite, arena_size=TFLM_ARENA)
        return runner.dequantize_output(runner.run(runner.quantize_input(x)))
    return sim.dequantize_output(sim.run(sim.quantize_input(x)))


def _finite(model: ir.Model) -> bool:
    for l in model.layers:
        for r in ([l.forward, l.backward] if l.kind == "bidirectional" else [l]):
            for name in ("kernel", "recurrent_kernel", "bias", "scale", "offset"):
                w = getattr(r, name, None)
                if w is not None and not np.all(np.isfinite(w)):
                    return False
    return True


def _selection_score(out: np.ndarray, y: np.ndarray, classification: bool) -> float:
    """Accuracy (classifier) or MSE (regressor) of the outputs ``out`` against labels ``y``."""
    if classification:
        return float(np.mean(np.argmax(out.reshape(*y.shape, -1), -1) == y))
    return float(np.mean((out.reshape(y.shape) - y) ** 2))


def qat_finetune(model_path_or_keras, data, *, epochs: int = 10, output=None, seed: int = 0,
                 calib=None, val=None, select_with: str = "int8", learning_rate: float = 1e-4,
                 batch_size: int = 32, clipnorm: float | None = 1.0, progress_callback=None,
                 state: str = "int16") -> QATResult:
    """Fine-tune a trained model with int8 fake quantization; return (and save) the float model.

    ``model_path_or_keras``: a .keras/.h5 path, a Keras 3 or tf_keras model, or an IR model.
    ``data``: the training set (.npz path, :class:`Dataset` or ``(x, y)``); integer ``y`` (N,)
    fine-tunes a classifier, float ``y`` a regressor. ``calib``: the inputs whose ranges are
    trained for (default ``data``'s); pass the same to ``edgernn convert``. ``val``: labelled
    data (same forms as ``data``) on which the epochs are scored; default ``data``.
    ``output``: .keras (or .h5) path. ``progress_callback(epoch, logs)`` is called after each
    epoch. ``state``: the ``edgernn convert --state`` the model will be converted with (the
    WHILE-graph cells' layout the quantizers follow). The default learning rate is a fine-tuning one (the trainer's is 3e-3): the model
    is converged, QAT only has to move it to where int8 rounding costs least.

    Keep-best: the given weights are epoch 0. They, and the weights after each epoch, are
    scored on the selection set (``val``, else ``data``): accuracy for a classifier, MSE for a
    regressor, of the int8 model each would deploy. ``select_with="int8"`` (default) converts
    each candidate as ``edgernn convert`` does with ``calib`` and runs it in the bit-exact
    simulator, so epoch 0 is scored exactly as PTQ deploys it; ``"fake-quant"`` scores the QAT
    graph instead (no conversion per epoch, faster for the fused LSTM, but one or two
    borderline samples can come out differently from the int8 kernels). The best epoch is
    kept, ties going to the earlier one. When no epoch beats epoch 0, the given model is
    returned (and saved) unchanged, so converting it writes exactly the PTQ flatbuffer;
    otherwise the saved model's weights lie on their int8 grid. ``QATResult.kept_epoch`` and
    ``.kept_score`` say which epoch was kept and its score.
    """
    if epochs < 1:
        raise EdgeRNNError(f"--qat-epochs {epochs}: QAT needs at least 1 epoch")
    if output is not None and isinstance(model_path_or_keras, (str, os.PathLike)) \
            and Path(output).resolve() == Path(model_path_or_keras).resolve():
        raise EdgeRNNError(f"-o {output}: would overwrite the model being fine-tuned; write the QAT model "
                           "to a new file (e.g. model_qat.keras)")
    if learning_rate <= 0:
        raise EdgeRNNError(f"--lr {learning_rate}: the QAT learning rate must be > 0 (e.g. 1e-4)")
    if select_with not in SELECT_WITH:
        raise EdgeRNNError(f"select_with={select_with!r}: use one of {', '.join(SELECT_WITH)}")
    if output is not None and Path(output).suffix not in (".keras", ".h5"):
        raise EdgeRNNError(f"{output}: the output model file must end in .keras (or .h5)")
    original = None
    if isinstance(model_path_or_keras, ir.Model):
        model = model_path_or_keras
    else:
        src = model_path_or_keras
        original = load_keras_object(src) if isinstance(src, (str, os.PathLike)) else src
        model = from_keras(original, source=str(src) if isinstance(src, (str, os.PathLike)) else "")
    ds = _dataset(data, model, "data")
    sel = _dataset(val, model, "val") if val is not None else ds
    if sel.x.shape[1] != ds.x.shape[1]:
        raise EdgeRNNError(f"{sel.path}: {sel.x.shape[1]} time steps; the QAT training data has {ds.x.shape[1]}")
    calib_x = (_dataset(calib, model, "calib").x if calib is not None else ds.x)[:MAX_CALIB_SAMPLES]
    classification = np.issubdtype(ds.y.dtype, np.integer)
    for d in (ds, sel):
        if classification and model.output_units <= int(d.y.max()):
            raise EdgeRNNError(f"{d.path}: labels go up to {int(d.y.max())} but the model has "
                               f"{model.output_units} outputs")
    if classification != np.issubdtype(sel.y.dtype, np.integer) or sel.y.shape[1:] != ds.y.shape[1:]:
        raise EdgeRNNError(f"{sel.path}: labels 'y' of dtype {sel.y.dtype}, shape {sel.y.shape}; the training "
                           f"labels are {ds.y.dtype}, shape {ds.y.shape}: use labels of the same kind")

    tfk.utils.set_random_seed(seed)
    try:
        tf.config.experimental.enable_op_determinism()
    except Exception:  # pragma: no cover - older TF
        pass
    timesteps = int(ds.x.shape[1])
    qmodel = build_qat_model(model, timesteps, state=state)
    if classification:
        from_logits = model.output_activation != "softmax"
        loss = tfk.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
        metrics = ["accuracy"]
    else:
        loss, metrics = "mse", ["mae"]
    opt_kw = {"clipnorm": clipnorm} if clipnorm else {}
    qmodel.compile(optimizer=tfk.optimizers.Adam(learning_rate=learning_rate, **opt_kw), loss=loss,
                   metrics=metrics)
    history: dict[str, list[float]] = {}
    y = ds.y.astype(np.int64) if classification else ds.y.astype(np.float32)
    sel_y = sel.y.astype(np.int64) if classification else sel.y.astype(np.float32)

    worst = -math.inf if classification else math.inf

    def candidate(epoch: int) -> tuple[float, ir.Model]:
        """The model saving now would write, and its selection score."""
        m = model if epoch == 0 else snap_model(float_ir(qmodel, model), state)
        if epoch > 0 and not _finite(m):
            log.warning("QAT epoch %d: the weights are no longer finite (learning rate %g too high?)", epoch,
                        learning_rate)
            return worst, m
        if select_with == "int8":
            try:
                out = int8_outputs(m, calib_x, sel.x, state)
            except (EdgeRNNError, ValueError, OverflowError) as e:
                if epoch == 0:
                    raise
                log.warning("QAT epoch %d: its weights do not convert to int8 (%s); not kept", epoch, e)
                return worst, m
        else:
            out = qmodel.predict(sel.x, batch_size=256, verbose=0)
        return _selection_score(out, sel_y, classification), m

    def better(a: float, b: float) -> bool:  # strictly: a tie keeps the earlier epoch
        return a > b if classification else a < b

    # epoch 0: the given weights; ranges calibrated on them unrounded, as convert does for PTQ
    ranges = calibrate(qmodel, calib_x, float_weights=True)
    score, kept_ir = candidate(0)
    scores = [score]
    kept, kept_weights, kept_ranges = 0, qmodel.get_weights(), ranges
    for epoch in range(1, epochs + 1):
        h = qmodel.fit(ds.x, y, epochs=1, batch_size=batch_size, shuffle=True, verbose=0)
        # the ranges convert gives the saved (int8-grid) weights; the next epoch trains with them
        ranges = calibrate(qmodel, calib_x)
        score, m = candidate(epoch)
        scores.append(score)
        if better(score, scores[kept]):
            kept, kept_weights, kept_ranges, kept_ir = epoch, qmodel.get_weights(), ranges, m
        for k, v in h.history.items():
            history.setdefault(k, []).append(float(v[-1]))
        history.setdefault("selection_score", []).append(score)
        log.info("QAT epoch %d/%d: %s", epoch, epochs, " ".join(f"{k}={v[-1]:.4f}" for k, v in history.items()))
        if progress_callback is not None:
            progress_callback(epoch - 1, {k: v[-1] for k, v in history.items()})
        if not _finite(m):  # diverged: no later epoch can come back
            break
    qmodel.set_weights(kept_weights)  # the kept weights and their ranges
    selection = "validation data" if val is not None else "training data"
    metric = "accuracy" if classification else "mse"
    log.info("QAT kept epoch %d of %d: %s %.4f on the %s (%s; epoch 0, the given model: %.4f)", kept, epochs,
             metric, scores[kept], selection, select_with, scores[0])
    sim = {k: float(v) for k, v in qmodel.evaluate(ds.x, y, verbose=0, batch_size=256, return_dict=True).items()}
    if original is not None:
        out_model = write_back(original, kept_ir)
    else:
        out_model = build_tf_keras(kept_ir, batch_size=None)
    path = save_model(out_model, output) if output is not None else None
    return QATResult(model=out_model, path=path, ir_model=kept_ir, epochs_run=len(scores) - 1, history=history,
                     ranges=kept_ranges, int8_sim_metrics=sim, kept_epoch=kept, selection=selection,
                     selection_metric=metric, selection_with=select_with, selection_scores=scores)
