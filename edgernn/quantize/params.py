"""Int8 quantization parameters, the way TFLite's own int8 scheme defines them.

* Activations: per-tensor asymmetric int8, ``real = scale * (q - zero_point)``, the range
  always holding 0 so that zero padding and zero state are exact.
* Weights: per-output-channel symmetric int8 (zero point 0, q in [-127, 127]).
* Biases: int32 with ``scale = input_scale * weight_scale[c]`` and zero point 0 (int64 for
  FULLY_CONNECTED with int16 inputs, TFLM's "16x8" kernels).
* int16 activations (the recurrent state and the step arithmetic of edgernn's WHILE graphs):
  symmetric, zero point 0 (TFLM's and CMSIS-NN's int16 kernels require it), scale
  ``max|x| / 32767``; LOGISTIC / TANH outputs ``2^-15``.

>>> p = activation_params(-1.0, 1.0)
>>> round(p.per_tensor[0] * 255, 6), p.per_tensor[1]
(2.0, 0)
>>> q, s = quantize_weights(np.array([[1.0, -0.5], [0.25, 0.0]], np.float32))
>>> q.tolist(), [round(float(v), 6) for v in s]
([[127, -64], [127, 0]], [0.007874, 0.001969])
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

INT8_MIN, INT8_MAX = -128, 127
INT16_MIN, INT16_MAX = -32768, 32767
_RANGE = {"int8": (INT8_MIN, INT8_MAX), "int16": (INT16_MIN, INT16_MAX)}


@dataclass(frozen=True)
class QParams:
    """Per-tensor (one scale) or per-channel (one scale per channel) quantization."""

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int = 0

    @property
    def per_tensor(self) -> tuple[float, int]:
        return float(self.scale[0]), int(self.zero_point[0])

    def quantize(self, x: np.ndarray, dtype: str = "int8") -> np.ndarray:
        s, z = self.per_tensor
        lo, hi = _RANGE[dtype]
        return np.clip(np.round(np.asarray(x, np.float64) / s) + z, lo, hi).astype(dtype)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        s, z = self.per_tensor
        return ((np.asarray(q, np.float32) - z) * s).astype(np.float32)

    @property
    def int8_range(self) -> tuple[float, float]:
        """The real values of int8 -128 and 127 (per-tensor): the grid's [min, max].

        >>> LOGISTIC_OUT.int8_range, TANH_OUT.int8_range
        ((0.0, 0.99609375), (-1.0, 0.9921875))
        """
        s, z = self.per_tensor
        return s * (INT8_MIN - z), s * (INT8_MAX - z)


# Fixed output parameters of TFLM's int8 activation kernels (they require exactly these).
LOGISTIC_OUT = QParams((1.0 / 256,), (-128,))
SOFTMAX_OUT = QParams((1.0 / 256,), (-128,))
TANH_OUT = QParams((1.0 / 128,), (0,))

# int16 LOGISTIC / TANH outputs (TFLM requires 2^-15, zero point 0); also the int16 hidden
# state of a GRU / LSTM (|h| < 1).
Q15 = QParams((2.0 ** -15,), (0,))

# The int16 LSTM cell state's range (edgernn's WHILE graphs): twice the calibrated max |c|. c
# integrates (f ~ 1), so inputs a little off the calibration data, or longer runs (streaming,
# mixed stacks), carry it past the calibrated range, and a clipped c stays wrong for as long as
# f keeps it. One bit of c's 16 (the fused LSTM's power-of-two cell scale leaves 1-2x) costs
# nothing measurable.
CELL_HEADROOM = 2.0

# Beyond these inputs the int8 outputs are saturated (sigmoid(6.2) > 1 - 1/512, tanh(3.1) >
# 1 - 1/256), so a pre-activation read only by LOGISTIC / TANH is quantized over at most this
# range: finer steps where the output still changes, same output where it does not. The
# converter clips such ranges (edgernn.backends.tflm.recurrent) and QAT trains with them.
SATURATING_RANGE = {"LOGISTIC": (-8.0, 8.0), "TANH": (-4.0, 4.0)}
# TFLM's int16 LOGISTIC reads a 256-entry table over |x| < 255 / 24 = 10.625 and saturates
# beyond; TANH reads it at 2x, so it saturates beyond 5.3125.
SATURATING_RANGE_INT16 = {"LOGISTIC": (-10.625, 10.625), "TANH": (-5.3125, 5.3125)}


def sum_ranges(terms: float, sums: list[tuple[float, float]]) -> tuple[float, list[float]]:
    """SUM_SCALE (edgernn.backends.tflm.cells): the symmetric int16 range of an ADD's terms (one
    scale) and of each sum, from the terms' calibrated range and each sum's (its own calibrated
    range clipped to its activation's saturating range C, and C; C = 0: none). With R the largest
    of them, the terms range over the first C 2^j >= R of any sum with C < R (else R), each sum
    over that / 2^j, the largest j >= 0 that keeps it >= its C: every ratio a power of two.

    >>> sum_ranges(8.68, [(5.3125, 5.3125)])  # a SimpleRNN's X, H and its TANH's input
    (10.625, [5.3125])
    >>> sum_ranges(3.0, [(2.5, 10.625)])  # inside the saturating range: one scale
    (3.0, [3.0])
    """
    r = max([terms] + [own for own, _ in sums])
    r2 = max([r] + [c * 2.0 ** math.ceil(math.log2(r / c)) for _, c in sums if 0 < c < r])
    return r2, [r2 / 2.0 ** math.floor(math.log2(r2 / c) + 1e-9) if 0 < c < r2 else r2 for _, c in sums]


def activation_params(lo: float, hi: float) -> QParams:
    """Asymmetric int8 parameters covering [lo, hi] (widened to hold 0)."""
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if hi - lo < 1e-8:
        hi = lo + 1e-8
    scale = (hi - lo) / 255.0
    zp = int(np.clip(np.round(INT8_MIN - lo / scale), INT8_MIN, INT8_MAX))
    return QParams((float(np.float32(scale)),), (zp,))


def symmetric_int16_params(lo: float, hi: float) -> QParams:
    """Symmetric int16 parameters (zero point 0) covering [lo, hi]: scale ``max|.| / 32767``.

    TFLM's int16 LOGISTIC / TANH treat an input scale within 2^(+-0.001) of a power of two as
    that power (``CheckedLog2``, a float32 log), with different arithmetic; a scale that close
    is moved 0.4 % up, clear of the window, so no kernel has to guess which side it is on.

    >>> p = symmetric_int16_params(-0.5, 3.0)
    >>> round(p.scale[0] * 32767, 5), p.zero_point
    (3.0, (0,))
    >>> round(symmetric_int16_params(0.0, 2.0).scale[0] * 32767, 5)  # 2 / 32767 ~ 2^-14: moved
    2.00834
    """
    a = max(abs(float(lo)), abs(float(hi)), 1e-8)
    scale = a / INT16_MAX
    frac = np.log2(scale) - np.round(np.log2(scale))
    if abs(frac) < 2e-3:
        scale *= 2.0 ** 0.006
    return QParams((float(np.float32(scale)),), (0,))


def quantize_weights(w_out_in: np.ndarray, axis: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Per-output-channel symmetric int8 of a weight whose channels are on ``axis``: (int8
    values, scales). A (out, in) FULLY_CONNECTED matrix and CONV_2D's (O, H, W, I) use axis 0,
    DEPTHWISE_CONV_2D's (1, H, W, C) axis 3."""
    w = np.asarray(w_out_in, np.float64)
    others = tuple(a for a in range(w.ndim) if a != axis)
    amax = np.max(np.abs(w), axis=others)
    scale = np.where(amax > 0, amax / 127.0, 1.0).astype(np.float32)
    shape = [1] * w.ndim
    shape[axis] = -1
    q = np.clip(np.round(w / scale.astype(np.float64).reshape(shape)), -127, 127).astype(np.int8)
    return q, scale


def quantize_bias(b: np.ndarray, input_scale: float, weight_scales: np.ndarray,
                  dtype: str = "int32") -> tuple[np.ndarray, np.ndarray]:
    """Bias with scale ``input_scale * weight_scale[c]``: (int32 or int64 values, scales)."""
    scale = (np.float64(input_scale) * np.asarray(weight_scales, np.float64)).astype(np.float32)
    q = np.round(np.asarray(b, np.float64) / scale.astype(np.float64))
    info = np.iinfo(dtype)
    q = np.clip(q, float(info.min), float(info.max)).astype(dtype)
    return q, scale
