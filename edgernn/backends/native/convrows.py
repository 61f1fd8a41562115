"""Convolutions and fully-connected layers of tensor graphs on int8 weight rows (the ``rows`` kernel).

The layout of ``edgernn_mve_conv.h`` (Helium VLDRB + VMLADAVA.S8 on the Cortex-M55, its C twin on
the other ``rows`` targets): one output position's int8 window, in filter order, against each
output channel's int8 weights, 16 multiply-accumulates a VMLADAVA, the input zero point folded
into the bias (a tap outside the input reads the zero point, as the folded bias expects). No
int16 window (the row-pair kernel's ``edgernn_conv_pairs_s8`` widens one per position): the
window is read where it lies in the input whenever its taps are contiguous there, or, along a
dilated row, when its taps are whole 16-byte chunks (channels a multiple of 16).

:func:`conv_rows_stream` lays out the weights (:func:`fastlstm.rows_stream`'s order: per pass of
four rows, per 16-column chunk, each row's columns of the chunk; 16 zero bytes at the end) and the
per-pass words (biases, multipliers, negated right shifts when the rows' differ);
:func:`conv_rows_emulate` computes what the kernel computes (numpy, for the checks), and
:func:`conv_rows_reference` what TFLM's reference kernels compute.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .fastlstm import ROWS_PER_PASS, NotFast, rows_stream
from .plan import ConstArray


@dataclass
class ConvRowsStream:
    """One convolution's (or FC's) EDGERNN_CONV_ROWS_KERNEL: its two arrays and literals."""

    prefix: str  # the op's C names: the kernel PREFIX_rows over PREFIX_rweights, PREFIX_rwords
    weights: np.ndarray  # int8 values
    words: np.ndarray  # int32 values
    n_out: int
    n_input: int
    ls: int  # every row's left shift
    rs: int  # every row's right shift, or -1: each row's own (> 0, negated in the words)
    zero_point: int  # output zero point
    lo: int  # activation range
    hi: int
    tap: int = 0  # the window: n_input / tap taps of tap bytes, stride bytes apart (0: contiguous)
    stride: int = 0
    rows = True  # graph_data.c.j2: an EDGERNN_CONV_ROWS_KERNEL, not an EDGERNN_FC8_KERNEL

    @property
    def kernel(self) -> str:
        return f"{self.prefix}_rows"

    @property
    def taps(self) -> tuple[int, int]:
        """(tap, stride) of the kernel: a contiguous window is one tap of n_input bytes."""
        return (self.tap, self.stride) if self.tap else (self.n_input, self.n_input)


def conv_rows_stream(w: np.ndarray, bias: np.ndarray, multipliers, shifts, zero_point: int, lo: int, hi: int,
                     where: str, prefix: str = "op") -> ConvRowsStream:
    """The kernel of ``y = clamp(zp + MBQM(w x + bias, m_r, shift_r), lo, hi)`` for ``w``
    [n_out][n_in] (int8 values) and int8 windows ``x``, ``bias`` the folded int32 bias; raises
    :class:`NotFast` when the kernel's requantization cannot take the shifts (left shifts that
    differ, a right shift of 0 next to others, above 31) or a shifted sum may pass 32 bits."""
    w = np.asarray(w, np.int64)
    n, n_input = w.shape
    bias = np.asarray(bias, np.int64).reshape(-1)
    mult = np.broadcast_to(np.asarray(multipliers, np.int64).reshape(-1), (n,))
    shift = np.broadcast_to(np.asarray(shifts, np.int64).reshape(-1), (n,))
    if n == 0 or n_input == 0:
        raise NotFast(f"{where}: empty")
    if w.min() < -128 or w.max() > 127:
        raise NotFast(f"{where}: weights beyond int8")
    ls, rs = np.maximum(shift, 0), np.maximum(-shift, 0)
    if ls.min() != ls.max():
        raise NotFast(f"{where}: per-channel left shifts differ ({sorted(set(ls.tolist()))})")
    if rs.max() > 31 or (rs.min() == 0 < rs.max()):
        raise NotFast(f"{where}: right shifts {sorted(set(rs.tolist()))} (one of them 0, or above 31)")
    bound = (np.abs(w).sum(axis=1) * 128 + np.abs(bias)) << int(ls[0])
    if bound.max() >= 1 << 31:
        raise NotFast(f"{where}: a row's sum x 2^{int(ls[0])} may reach 2^{np.log2(bound.max()):.1f}")
    uniform = rs.min() == rs.max()
    rows = -(-n // ROWS_PER_PASS) * ROWS_PER_PASS
    pad = lambda v: np.concatenate([v, np.zeros(rows - n, np.int64)])  # noqa: E731
    wp = np.zeros((rows, n_input), np.int64)
    wp[:n] = w
    words = [pad(bias), pad(mult)] + ([] if uniform else [pad(-rs)])
    words = np.stack([v.reshape(-1, ROWS_PER_PASS) for v in words], axis=1).reshape(-1)
    return ConvRowsStream(prefix=prefix, weights=rows_stream(wp, np.zeros((rows, 0), np.int64)), words=words, n_out=n,
                          n_input=n_input, ls=int(ls[0]), rs=int(rs[0]) if uniform else -1,
                          zero_point=int(zero_point), lo=int(lo), hi=int(hi))


def _mbqm(acc, m, shift):
    """TFLM's MultiplyByQuantizedMultiplier on int64 arrays (the int32 product wraps like TFLM's)."""
    acc, m, shift = (np.asarray(v, np.int64) for v in (acc, m, shift))
    x = (acc << np.maximum(shift, 0)) & 0xFFFFFFFF
    x = np.where(x >= 1 << 31, x - (1 << 32), x)
    ab = x * m
    high = np.where(ab >= 0, ab + (1 << 30), ab + 1 - (1 << 30))
    high = np.where(high >= 0, high >> 31, -((-high) >> 31))  # C division: toward zero
    e = np.maximum(-shift, 0)
    mask = (np.int64(1) << e) - 1
    threshold = (mask >> 1) + (high < 0)
    return (high >> e) + ((high & mask) > threshold)


def conv_rows_reference(w, bias, multipliers, shifts, zero_point, lo, hi, x) -> np.ndarray:
    """TFLM's int8 FULLY_CONNECTED / CONV_2D arithmetic for windows ``x`` [k][n_in] (int8), the input
    zero point folded into ``bias``."""
    acc = np.asarray(x, np.int64) @ np.asarray(w, np.int64).T + np.asarray(bias, np.int64).reshape(-1)
    return np.clip(_mbqm(acc, multipliers, shifts) + zero_point, lo, hi)


def conv_rows_emulate(st: ConvRowsStream, x) -> np.ndarray:
    """What the kernel computes from its stream, for int8 windows ``x`` [k][n_in] (numpy)."""
    x = np.asarray(x, np.int64)
    rows = -(-st.n_out // ROWS_PER_PASS) * ROWS_PER_PASS
    wb = np.asarray(st.weights, np.int64)[:rows * st.n_input]
    w = np.zeros((rows, st.n_input), np.int64)
    k = 0
    for r0 in range(0, rows, ROWS_PER_PASS):  # undo the chunk order
        for c in range(0, st.n_input, 16):
            width = min(16, st.n_input - c)
            for r in range(r0, r0 + ROWS_PER_PASS):
                w[r, c:c + width] = wb[k:k + width]
                k += width
    per = 2 if st.rs >= 0 else 3
    q = np.asarray(st.words, np.int64).reshape(-1, per, ROWS_PER_PASS).transpose(1, 0, 2).reshape(per, -1)
    shift = st.ls - (np.full(rows, st.rs) if st.rs >= 0 else -q[2])
    acc = (x @ w.T + q[0]) & 0xFFFFFFFF  # the 32-bit sums wrap
    acc = np.where(acc >= 1 << 31, acc - (1 << 32), acc)
    return np.clip(_mbqm(acc, q[1], shift) + st.zero_point, st.lo, st.hi)[:, :st.n_out]


def conv_rows(p: str, where: str, w2d: np.ndarray, bias: np.ndarray, multipliers, shifts, zero_point: int, lo: int,
              hi: int, source: str, x: str, y: str, inplace: bool, tap: int = 0, stride: int = 0):
    """(arrays, struct fields, C call, kernel, window bytes) of a CONV_2D (or FULLY_CONNECTED)
    whose params struct is ``$p`` (geometry only), reading ``x`` into ``y`` on the rows kernel;
    ``inplace``: every window lies in the input, contiguous or (``tap``: a multiple of 16) as
    taps of ``tap`` bytes ``stride`` bytes apart, read there (no window buffer). Raises
    :class:`NotFast`."""
    s = conv_rows_stream(w2d, bias, multipliers, shifts, zero_point, lo, hi, where, p)
    if tap:
        if not inplace or tap % 16 or s.n_input % tap:
            raise ValueError(f"{where}: taps of {tap} bytes")
        s.tap, s.stride = tap, stride
    weights = ConstArray(f"{p}_rweights", "int8_t", s.weights,
                         f"{source}: per pass of four rows, per 16-column chunk, each row's weights of the chunk "
                         "(edgernn_mve_conv.h)")
    words = ConstArray(f"{p}_rwords", "int32_t", s.words,
                       f"{source}: per pass of four rows, the biases (input zero point folded in), the "
                       f"multipliers{'' if s.rs >= 0 else ', the right shifts negated'}")
    fields = [(f"&${p}", "geometry, zero points, activation range"), (f"${s.kernel}", "EDGERNN_CONV_ROWS_KERNEL")]
    call = f"edgernn_conv_rows_s8(&${p}_crows, {x}, {y}, {'NULL' if inplace else '(int8_t *)(@w@)'});"
    return [weights, words], fields, call, s, 0 if inplace else s.n_input
