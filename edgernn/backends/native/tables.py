"""Signed-segment sigmoid / tanh tables: TFLM's int16 Logistic and Tanh in six instructions.

TFLM (``reference_integer_ops::Logistic`` / ``Tanh`` for int16) interpolates
``sigmoid_table_uint16`` (``a[k] = sigmoid(k / 24)`` in Q0.16, k = 0..255) on ``|v|`` and fixes
the sign afterwards. The fast LSTM kernels index the table with ``v`` itself (an arithmetic
shift), and each signed segment stores the straight line TFLM's formula follows there, so for
every input

    sigmoid:  r = (SA[v >> 9] + (v & 511) * SD[v >> 9]) >> 10      (v = 3 x, x int16)
    tanh:     r = (TA[i] + (v & 255) * TD[i]) >> 8,  i = clamp(v >> 8, -256, 255)

and with the segment's start folded into the intercept (``A' = A - 2^bits i D``, so that
``A + (v & mask) D = A' + v D``), simply

    sigmoid:  r = (SA'[v >> 9] + v * SD[v >> 9]) >> 10
    tanh:     r = (TA'[i] + v * TD[i]) >> 8

Derivation (sigmoid; tanh is the same with 8 fraction bits and saturated end segments): for
``v >= 0`` TFLM computes ``r = (512 a[k] + f D[k] + 512) >> 10`` with ``k = v >> 9``,
``f = v & 511`` and ``D[k] = a[k+1] - a[k]``, so segment k stores ``A[k] = 512 (a[k] + 1)``.
For ``v < 0`` TFLM returns ``32768 - r(|v|)``. Writing ``|v| = 512 k + f`` with ``f > 0``,
``v >> 9 = -k - 1`` and ``v & 511 = 512 - f``, so ``r(|v|) = (A[k+1] - (v & 511) D[k]) >> 10``
and ``32768 - r = (2^25 + 1023 - A[k+1] + (v & 511) D[k]) >> 10`` (because
``-floor(y / n) = floor((n - 1 - y) / n)``): segment ``i = -k - 1`` stores
``A = 2^25 + 1023 - A[-i]`` and ``D = D[-i - 1]``; ``f = 0`` lands on the same line.

The C copies live in ``firmware_templates/native/edgernn_kernels.c``
(``edgernn_sigmoid_segments`` / ``edgernn_tanh_segments``); ``tests/test_native_fast.py``
checks them against these arrays, and these arrays against :mod:`edgernn.fixedpoint`'s
``logistic_int16`` / ``tanh_int16`` on every int16 input.
"""

from __future__ import annotations

import numpy as np

from ... import fixedpoint

#: v = 3 x for an int16 x, so v >> 9 lies in [-192, 191].
SIGMOID_SEGMENTS = (-192, 191)
#: the tanh segment index is clamped to [-256, 255] (the end segments are flat).
TANH_SEGMENTS = (-256, 255)
SIGMOID_FRACTION_BITS = 9
TANH_FRACTION_BITS = 8


def _table() -> np.ndarray:
    return fixedpoint.SIGMOID_TABLE_UINT16.astype(np.int64)


def sigmoid_segments() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(segment index, intercept A, slope D) of the sigmoid, fraction not folded."""
    a = _table()
    d = np.diff(a)
    start = 512 * (a + 1)
    idx = np.arange(SIGMOID_SEGMENTS[0], SIGMOID_SEGMENTS[1] + 1)
    ta = np.where(idx >= 0, start[np.clip(idx, 0, 255)], (1 << 25) + 1023 - start[np.clip(-idx, 0, 255)])
    td = np.where(idx >= 0, d[np.clip(idx, 0, 254)], d[np.clip(-idx - 1, 0, 254)])
    return idx, ta.astype(np.int64), td.astype(np.int64)


def tanh_segments() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(segment index, intercept A, slope D) of the tanh, fraction not folded."""
    a = _table()
    d = np.diff(a)
    start = 256 * (a - 32768) + 128  # k = 0..255; start[255] is also the k >= 255 saturation
    idx = np.arange(TANH_SEGMENTS[0], TANH_SEGMENTS[1] + 1)
    ta = np.empty(len(idx), np.int64)
    td = np.empty(len(idx), np.int64)
    for n, i in enumerate(idx):
        if i >= 255:
            ta[n], td[n] = 32767 * 256, 0
        elif i >= 0:
            ta[n], td[n] = start[i], d[i]
        elif i == TANH_SEGMENTS[0]:
            ta[n], td[n] = -32767 * 256, 0
        else:
            ta[n], td[n] = 255 - start[-i], d[-i - 1]
    return idx, ta, td


def _folded(idx: np.ndarray, ta: np.ndarray, td: np.ndarray, bits: int) -> tuple[np.ndarray, np.ndarray]:
    """A'[i] = A[i] - 2^bits i D[i]: A[i] + (v & (2^bits - 1)) D[i] = A'[i] + v D[i]."""
    return ta - (idx.astype(np.int64) << bits) * td, td


def sigmoid_folded() -> tuple[np.ndarray, np.ndarray]:
    """(A' int32, D uint16) of the sigmoid, segments -192..191 in order."""
    return _folded(*sigmoid_segments(), SIGMOID_FRACTION_BITS)


def tanh_folded() -> tuple[np.ndarray, np.ndarray]:
    """(A' int32, D uint16) of the tanh, segments -256..255 in order."""
    return _folded(*tanh_segments(), TANH_FRACTION_BITS)


def sigmoid(x) -> np.ndarray:
    """The table form of TFLM's int16 Logistic (Q3.12 in, Q0.15 out), as the C computes it."""
    a, d = sigmoid_folded()
    v = np.asarray(x, np.int64) * 3
    i = (v >> SIGMOID_FRACTION_BITS) - SIGMOID_SEGMENTS[0]
    return ((a[i] + v * d[i]) & 0xFFFFFFFF) >> 10


def tanh(v) -> np.ndarray:
    """The table form of TFLM's int16 Tanh of ``v``, the input already at the table's scale."""
    a, d = tanh_folded()
    v = np.asarray(v, np.int64)
    i = np.clip(v >> TANH_FRACTION_BITS, *TANH_SEGMENTS) - TANH_SEGMENTS[0]
    return (a[i] + v * d[i]) >> 8


def activation_tables() -> dict:
    """The four C arrays of ``edgernn_tables.c``: name -> (C type, values)."""
    sa, sd = sigmoid_folded()
    ta, td = tanh_folded()
    return {"edgernn_sigmoid_intercepts": ("int32_t", sa), "edgernn_sigmoid_slopes": ("uint16_t", sd),
            "edgernn_tanh_intercepts": ("int32_t", ta), "edgernn_tanh_slopes": ("uint16_t", td)}
