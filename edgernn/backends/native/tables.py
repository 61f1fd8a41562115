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

import functools

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


#: the shared int16 LOGISTIC / TANH table of the WHILE-loop steps: 256 segments of |v|, 1 KB
ACT16_SEGMENTS = 256
#: sigmoid's constant (2^24 + 512): the line's sign symmetry folds it out of the table
ACT16_SIGMOID_BIAS = (1 << 24) + 512


@functools.lru_cache(maxsize=1)
def _act16_fit() -> tuple[np.ndarray, np.ndarray]:
    """(G uint16, D uint16): one table for TFLM's int16 Logistic *and* Tanh at any input scale.

    Both of TFLM's formulas interpolate ``sigmoid_table_uint16`` on ``|v|``: the sigmoid on
    segments of 512 (``r = 512 a[k] + f D[k]``), the tanh on segments of 256 with the same
    ``a`` and ``D = a[k+1] - a[k]`` (``r = 256 a[k] + f D[k]``), so the sigmoid's line at 2w is
    twice the tanh's at w. Segment k's sigmoid line is ``A + |v| D`` with
    ``A = 512 (a[k] - k D + 1)`` (the ``+ 1`` is TFLM's rounding 2^9), and TFLM returns
    ``32768 - r(|v|)`` for v < 0, i.e. ``(2^25 + 1023 - A + v D) >> 10``. With
    ``E = A - (2^24 + 512)`` both signs are one expression, ``s = v >> 31``:

        sigmoid(v) = ((E ^ s) + v D + 2^24 + 512) >> 10

    and the tanh (``r_tanh(w) = r_sigmoid(2w) / 2``, odd: ``tanh(-w) = -tanh(w)``) is, E even,

        tanh(w)    = (((E / 2) ^ s) + w D + 128) >> 8

    E is a multiple of 512 (so ``G = E / 256`` is 0..65533, ``E = G << 8``, ``E / 2 = G << 7``).
    Segment index: ``min((v ^ s) >> 9, 255)`` / ``min((w ^ s) >> 8, 255)`` (``v ^ s`` is
    ``|v| - 1`` for v < 0: a negative v on a segment boundary lands on the segment below, whose
    line passes through the same point). Segment 255 is flat (D = 0): G = 65533 gives both
    saturations (32767 / 1 and +-32767). The one input this misses is the sigmoid's
    v = -130560 (|v| = 255 x 512: TFLM saturates there, the line of segment 254 ends one step
    higher); :func:`sigmoid16` with ``true_abs`` indexes with ``|v|`` and holds there too.
    :func:`act16_form` checks every op's form on all 65,536 int16 inputs, tests/test_native_fast.py
    the table on every v."""
    a = _table()
    d = np.diff(a)
    g = np.empty(ACT16_SEGMENTS, np.int64)
    dd = np.zeros(ACT16_SEGMENTS, np.int64)
    for k in range(ACT16_SEGMENTS - 1):
        e = 512 * (int(a[k]) - k * int(d[k]) + 1) - ACT16_SIGMOID_BIAS
        assert e % 512 == 0 and 0 <= e >> 8 < 1 << 16
        g[k], dd[k] = e >> 8, d[k]
    g[-1] = 65533  # flat: (65533 << 8) + 2^24 + 512 >> 10 = 32767, (65533 << 7) + 128 >> 8 = 32767
    return g, dd


def act16_table() -> tuple[np.ndarray, np.ndarray]:
    """(G, D) of the shared table (a copy of :func:`_act16_fit`'s)."""
    g, d = _act16_fit()
    return g.copy(), d.copy()


def tanh16_signed_table() -> tuple[np.ndarray, np.ndarray]:
    """Helium's TANH tables over the segments j = v >> 8 of a signed v (-256..255), stored at
    j + 256 = u >> 8 for u = v + 2^16 >= 0: D' = D[j] and G' = G[j] 2^7 for j >= 0, D' = D[-j-1]
    and G' = ~(G[-j-1] 2^7) below (the segment of a negative v, (v ^ -1) >> 8, is -j - 1, and
    s ^ x = ~x there), less 2^16 D', so that for every v whose segment needs no clamp
    ``edgernn_tanh16(v) = (G'[u >> 8] + u D'[u >> 8] + 128) >> 8``: no sign, no XOR, no
    VSHL (``edgernn_mve_ew.h``, where u comes from the input's scale as one VQRDMLASH; 3 KB of
    flash where it is used)."""
    g, d = _act16_fit()
    j = np.arange(-ACT16_SEGMENTS, ACT16_SEGMENTS)
    k = np.where(j >= 0, j, -j - 1)
    return np.where(j >= 0, g[k] << 7, ~(g[k] << 7)) - (d[k] << 16), d[k].copy()


def tanh16_signed(v) -> np.ndarray:
    """``edgernn_mve_tanh16_nc`` of ``v`` (|segment| unclamped) on :func:`tanh16_signed_table`."""
    tg, td = tanh16_signed_table()
    u = np.asarray(v, np.int64) + (1 << 16)
    return (tg[u >> 8] + u * td[u >> 8] + 128) >> 8


def sigmoid16(v, true_abs: bool = False) -> np.ndarray:
    """TFLM's int16 Logistic of ``v`` (already at the table's scale) as ``edgernn_sigmoid16``
    (``edgernn_sigmoid16_abs`` with ``true_abs``) computes it."""
    g, d = _act16_fit()
    v = np.asarray(v, np.int64)
    s = v >> 31
    i = np.minimum((((v ^ s) - s) if true_abs else (v ^ s)) >> 9, ACT16_SEGMENTS - 1)
    return ((s ^ (g[i] << 8)) + v * d[i] + ACT16_SIGMOID_BIAS) >> 10


def tanh16(v) -> np.ndarray:
    """TFLM's int16 Tanh of ``v`` (already at the table's scale) as ``edgernn_tanh16`` computes it."""
    g, d = _act16_fit()
    v = np.asarray(v, np.int64)
    s = v >> 31
    i = np.minimum((v ^ s) >> 8, ACT16_SEGMENTS - 1)
    return ((s ^ (g[i] << 7)) + v * d[i] + 128) >> 8


def act16_form(function: str, multiplier: int, left_shift: int) -> str | None:
    """C expression (``{x}`` the input) of TFLM's int16 LOGISTIC / TANH (Prepare's input
    ``multiplier`` and ``left_shift``) on the shared 1 KB table (``edgernn_sigmoid16`` /
    ``edgernn_sigmoid16_abs`` / ``edgernn_tanh16``; TFLM's formula on Armv6-M) of the input at
    the table's scale, ``v = (x m + 2^(l-1)) >> l`` (``edgernn_act16_scale``: one MLA); checked
    here equal to TFLM's formula on all 65,536 int16 inputs (None otherwise)."""
    m, sh = multiplier, left_shift
    if m == 0:  # Prepare's power-of-two case: times 3 << shift
        m, sh = 3 << sh, 0
    x = np.arange(-32768, 32768, dtype=np.int64)
    v = (x * m + ((1 << (sh - 1)) if sh > 0 else 0)) >> sh
    if np.abs(x * m).max() >= 1 << 31 or sh > 30:
        return None
    if function == "tanh":
        ref = fixedpoint.tanh_int16(x, multiplier, left_shift)
        forms = (("edgernn_tanh16", tanh16(v)),)
    else:
        ref = fixedpoint.logistic_int16(x, multiplier, left_shift)
        forms = (("edgernn_sigmoid16", sigmoid16(v)), ("edgernn_sigmoid16_abs", sigmoid16(v, True)))
    for fn, got in forms:
        if np.array_equal(ref, got):
            if sh == 0:
                return f"{fn}(({{x}}) * {m})"
            return f"{fn}(edgernn_act16_scale({{x}}, {m}, {1 << (sh - 1)}, {sh}))"
    return None


def activation_tables() -> dict:
    """The eight C arrays of ``edgernn_tables.c``: name -> (C type, values) (a firmware links only
    those its code reads: the signed TANH tables on the Cortex-M55)."""
    sa, sd = sigmoid_folded()
    ag, ad = act16_table()
    ta, td = tanh_folded()
    tg, tdd = tanh16_signed_table()
    return {"edgernn_sigmoid_intercepts": ("int32_t", sa), "edgernn_sigmoid_slopes": ("uint16_t", sd),
            "edgernn_act16_g": ("uint16_t", ag), "edgernn_act16_d": ("uint16_t", ad),
            "edgernn_tanh_intercepts": ("int32_t", ta), "edgernn_tanh_slopes": ("uint16_t", td),
            "edgernn_act16_tanh_g": ("int32_t", tg), "edgernn_act16_tanh_d": ("uint16_t", tdd)}
