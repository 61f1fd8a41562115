"""The QAT model's activation ranges, calibrated the way ``edgernn convert`` calibrates.

Each QAT epoch trains with ranges fixed by a calibration pass computed the converter's way:
the float model (quantizers observing instead of rounding) over the first
:data:`~edgernn.quantize.calibrate.MAX_CALIB_SAMPLES` calibration inputs, min/max with 0
included. tfmot's moving averages would differ from the scales the deployed model gets, and
the fused TFLM LSTM could not take other cell- and hidden-state scales anyway.
"""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

from ..quantize.params import sum_ranges
from .cell import QATCell
from .model import build_qat_model
from .quantizers import OBSERVE, OBSERVE_FLOAT
from .snap import uses_fused_lstm

CALIB_BATCH = 128


def _range_variables(qmodel) -> dict:
    out = {}
    for v in qmodel.non_trainable_variables:
        name = v.name.split(":")[0]
        if name.endswith(("_min", "_max", "_absmax")):
            out[name] = v
    return out


def _observer(qmodel, timesteps: int, float_weights: bool):
    """The observing twin of ``qmodel`` and its traced forward pass, built once per mode.

    The twin has ``qmodel``'s architecture with its quantizers recording ranges instead of
    rounding (:data:`~.quantizers.OBSERVE`, or :data:`~.quantizers.OBSERVE_FLOAT` with the
    weights passing unrounded); for a fused LSTM it is also stateful with batch 1.
    """
    attr = "_edgernn_observer_float" if float_weights else "_edgernn_observer"
    found = getattr(qmodel, attr, None)
    if found is None:
        model = qmodel._edgernn_ir
        twin = build_qat_model(model, timesteps, stateful=uses_fused_lstm(model),
                               mode=OBSERVE_FLOAT if float_weights else OBSERVE,
                               state=getattr(qmodel, "_edgernn_state", "int16"))
        found = twin, tf.function(lambda x: twin(x, training=False), reduce_retracing=True)
        object.__setattr__(qmodel, attr, found)  # not a tracked Keras attribute
    return found


def _sum_scales(qmodel) -> None:
    """The int16 cells' SUM_SCALE ranges from the calibrated ones, as the converter sets them
    (:func:`edgernn.quantize.params.sum_ranges`, ``graph._sum_scales``): the terms' point and
    each sum's range replaced (symmetric)."""
    for cell in (m for m in qmodel.submodules if isinstance(m, QATCell) and hasattr(m, "points")):  # built
        for terms, sums in cell.sum_groups():
            def absmax(name):
                w = cell.points[name][1]
                return max(-float(w["min"].numpy()), float(w["max"].numpy()))
            r2, ranges = sum_ranges(absmax(terms), [(absmax(y), c) for y, c in sums])
            for name, r in [(terms, r2)] + [(y, r) for (y, _), r in zip(sums, ranges)]:
                w = cell.points[name][1]
                w["min"].assign(-r)
                w["max"].assign(r)


def calibrate(qmodel, x: np.ndarray, *, float_weights: bool = False) -> dict:
    """Set every activation range of ``qmodel`` (built by :func:`.model.build_qat_model`) the way
    ``edgernn convert`` will calibrate them on ``x``: min/max (0 included) of each tensor of the
    float model. Returns {tensor: (min, max)}.

    The pass runs on an observing twin of ``qmodel`` given its weights, whose ranges are copied
    back. The weights are on their int8 grid during the pass (the saved QAT model's weights
    are), unless ``float_weights``: then they pass through as they are, as when ``edgernn
    convert`` quantizes a model whose weights are not on the grid (PTQ of the user's model).

    For models that become the fused TFLite LSTM, the TFLite calibrator runs the samples one
    after another without resetting the LSTM's state variables, so each sample starts from the
    previous one's final h and c (this widens the ranges, the cell state's most). The
    calibration pass does the same: that twin is stateful with batch 1.
    """
    twin, fn = _observer(qmodel, int(x.shape[1]), float_weights)
    stateful = uses_fused_lstm(qmodel._edgernn_ir)
    twin.set_weights(qmodel.get_weights())
    for v in _range_variables(twin).values():
        v.assign(0.0)
    if stateful:
        twin.reset_states()
        for i in range(len(x)):
            fn(x[i:i + 1])
    else:
        for i in range(0, len(x), CALIB_BATCH):
            fn(x[i:i + CALIB_BATCH])
    qmodel.set_weights(twin.get_weights())
    _sum_scales(qmodel)
    ranges: dict[str, tuple[float, float]] = {}
    for name, v in _range_variables(qmodel).items():
        base, _, which = name.rpartition("_")
        lo, hi = ranges.get(base, (0.0, 0.0))
        val = float(v.numpy())
        if which == "min":
            lo = val
        elif which == "max":
            hi = val
        else:  # absmax: the power-of-two int16 range
            hi = 2.0 ** math.ceil(math.log2(max(val, 2.0 ** -15)))
            lo = -hi
        ranges[base] = (lo, hi)
    return ranges
