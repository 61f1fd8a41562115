"""Compiled (numba) twin of the integer LSTM time loop; used when numba is installed.

Same arithmetic as :meth:`edgernn.simulate.ops.UnidirectionalSequenceLstm.run_numpy` (the
numpy reference, which mirrors TFLM), laid out for the CPU's vector units: samples run in
blocks of ``block`` (one block per parallel iteration, on ``NUMBA_NUM_THREADS`` threads), and
inside a block every array is gate-major with the samples along the contiguous axis, so each
elementwise step (requantization, clamps, the cell update) is one vector loop over samples
with the gate's constants held in registers. The two fully connected layers of a step are
float32 matrix products through BLAS (``np.dot``), exact because every partial sum is an
integer below 2^24; the table lookups get loops of their own (a gather does not vectorize).

Requantization (TFLM's MultiplyByQuantizedMultiplier: SaturatingRoundingDoublingHighMul,
then RoundingDivideByPOT) is computed in one step with both roundings folded in:

    SRDHM(x, M) = floor((x * M + 2^30) / 2^31)                      (any sign)
    RDBPOT(q, r) = floor((q + 2^(r-1) - [q < 0]) / 2^r)             (r > 0; q when r = 0)
    => MBQM(x, M, -r) = floor((x * M + 2^30 + (2^(r-1) - [q < 0]) * 2^31) / 2^(31 + r))

because floor(floor(a / m) / n) == floor(a / (m n)) and ``q < 0`` iff ``x * M < -2^30``.
The gate inputs use it in float64 (``floor(x * M / 2^(31+r) + k)`` as one fused multiply-add,
exact while ``|x * M| < 2^51``); the cell update in int64 (products of two int16 values times
a 31-bit multiplier). :func:`requant_constants` and :func:`requant_int_constants` build the
constants, and the caller checks the bounds (``UnidirectionalSequenceLstm.compiled_exact``).
The tests check both engines against TFLM bit for bit. Set ``EDGERNN_SIM_ENGINE=numpy`` (or
``Simulator(..., engine="numpy")``) to use the numpy path.
"""

from __future__ import annotations

import logging
import os

import numpy as np

log = logging.getLogger(__name__)

try:  # numba ships with aeon (a test/examples extra); the simulator works without it
    import numba
except Exception:  # pragma: no cover - exercised when numba is absent
    numba = None


def njit(**options):
    """``numba.njit`` with an on-disk cache when the package directory is writable."""
    def deco(fn):
        try:
            return numba.njit(**options)(fn)
        except RuntimeError:  # "cannot cache function ...: no locator available"
            options.pop("cache", None)
            return numba.njit(**options)(fn)
    return deco


AVAILABLE = numba is not None and os.environ.get("EDGERNN_SIM_ENGINE", "").lower() != "numpy"

#: float64 requantization is exact while |x * M * 2^left| stays below this (one spare bit
#: for adding the rounding constant).
FLOAT_EXACT = float(1 << 51)
#: float32 sums of integer products are exact below this.
FLOAT32_EXACT = 1 << 24


def requant_constants(mult: int, shift: int) -> tuple[float, float, float, float]:
    """``(scale, threshold, k_pos, k_neg)`` so that, for an integer ``x`` (as a float),
    ``MultiplyByQuantizedMultiplier(x, mult, shift) == floor(x * scale + k)`` with
    ``k = k_neg if x <= threshold else k_pos`` — exact while ``|x * mult * 2^left| < 2^51``.
    """
    left, right = max(shift, 0), max(-shift, 0)
    scale = float(np.ldexp(float(mult), left - 31 - right))
    half = float(1 << (right - 1)) if right > 0 else 0.0
    k_pos = float(np.ldexp(0.5 + half, -right))
    k_neg = float(np.ldexp(half - 0.5, -right)) if right > 0 else k_pos
    # SRDHM(x << left, M) < 0  <=>  (x << left) * M < -2^30  <=>  x <= floor((-2^30 - 1) / (M << left))
    threshold = float((-(1 << 30) - 1) // (int(mult) << left))
    return scale, threshold, k_pos, k_neg


def requant_int_constants(mult: int, shift: int) -> tuple[int, int, int, int]:
    """``(mult, c, d, total_shift)`` so that, for ``|x| < 2^31`` and ``shift <= 0``,
    ``MultiplyByQuantizedMultiplier(x, mult, shift) == (x * mult + c - (d if x * mult < -2^30 else 0)) >> total_shift``."""
    if shift > 0:
        raise ValueError("left shifts are not folded into the integer form")
    right = -shift
    half = (1 << (right - 1)) if right > 0 else 0
    return int(mult), (1 << 30) + half * (1 << 31), (1 << 31) if right > 0 else 0, 31 + right


if numba is not None:
    @njit(inline="always", cache=True)
    def _rq_int(x, m, c, d, s):
        """:func:`requant_int_constants` form; ``x`` and ``m`` fit in int32 (one 32x32->64 multiply)."""
        p = np.int64(np.int32(x)) * np.int64(np.int32(m))
        adj = d if p < -1073741824 else 0
        return (p + c - adj) >> s

    @njit(inline="always", cache=True)
    def _clamp(v, lo, hi):
        return min(max(v, lo), hi)

    # fastmath: only reassociation and contraction, which cannot change a result here: every
    # product and partial sum below is an integer (or a dyadic fraction) held exactly.
    @njit(cache=True, nogil=True, parallel=True, fastmath={"reassoc", "contract"})
    def lstm_int8x8_16(x, x_zp, wx, bias, mx, wh, mh, lut, lut_off, lut_tc, m3, q_clip, h_zp, h_min, h_max,
                       h0, c0, block, chunk, out, h_last, c_last):
        """The integer LSTM over ``x`` (N, T, F) int8 from states ``h0``, ``c0`` (N, U) int64.

        ``wx`` (4U, F) and ``wh`` (4U, U): float32 weights, gate rows in TFLite order i, f, c, o;
        ``bias`` (4U,) float64; ``mx``, ``mh`` (4, 4): :func:`requant_constants` of each gate's
        input and recurrent FC; ``lut`` the int16 activations as int32, sigmoid at
        ``[0, 65536)``, the cell gate's at ``[65536, 131072)``, ``lut_off`` (4,) each gate's
        offset plus 32768; ``lut_tc`` tanh of the cell state; ``m3`` (3, 4):
        :func:`requant_int_constants` of the forget*cell, input*cell-gate and
        tanh(cell)*output multiplications. ``block`` samples per parallel iteration,
        ``chunk`` time steps buffered before they are written to ``out`` (N, T, U) int8.
        """
        nb, steps, feat = x.shape
        g4 = wx.shape[0]
        u = g4 // 4
        nblk = (nb + block - 1) // block
        for blk in numba.prange(nblk):
            b0 = blk * block
            nbk = min(block, nb - b0)
            xt = np.zeros((chunk, feat, block), np.float32)  # inputs minus zero point, sample-minor
            ax = np.empty((g4, block), np.float32)  # input FC accumulators (no bias)
            ah = np.empty((g4, block), np.float32)  # recurrent FC accumulators
            hd = np.zeros((u, block), np.float32)  # h - h_zp
            hq = np.zeros((u, block), np.int32)  # h
            c = np.zeros((u, block), np.int32)  # cell state (int16 values)
            idx = np.empty(g4 * block, np.int32)  # table index of each gate pre-activation
            act = np.empty(g4 * block, np.int32)  # gate activations, Q0.15
            cidx = np.empty(u * block, np.int32)
            tc = np.empty(u * block, np.int32)  # tanh(cell)
            hbuf = np.empty((chunk, u, block), np.int8)
            for b in range(nbk):
                for j in range(u):
                    hq[j, b] = h0[b0 + b, j]
                    hd[j, b] = h0[b0 + b, j] - h_zp
                    c[j, b] = c0[b0 + b, j]
            for t in range(steps):
                tt = t % chunk
                if tt == 0:
                    for b in range(nbk):
                        for s in range(min(chunk, steps - t)):
                            for k in range(feat):
                                xt[s, k, b] = x[b0 + b, t + s, k] - x_zp
                np.dot(wx, xt[tt], ax)
                np.dot(wh, hd, ah)
                # pre = sat16(sat16(FC_x + bias) + sat16(FC_h)), as a table index
                for g in range(4):
                    xs, xthr, xkp, xkn = mx[g, 0], mx[g, 1], mx[g, 2], mx[g, 3]
                    hs, hthr, hkp, hkn = mh[g, 0], mh[g, 1], mh[g, 2], mh[g, 3]
                    off = lut_off[g]
                    for r in range(g * u, g * u + u):
                        br = bias[r]
                        for b in range(block):
                            a = np.float64(ax[r, b]) + br
                            px = _clamp(np.floor(a * xs + (xkn if a <= xthr else xkp)), -32768.0, 32767.0)
                            a = np.float64(ah[r, b])
                            ph = _clamp(np.floor(a * hs + (hkn if a <= hthr else hkp)), -32768.0, 32767.0)
                            idx[r * block + b] = np.int32(_clamp(px + ph, -32768.0, 32767.0)) + off
                for i in range(g4 * block):  # i, f, o = sigmoid16(pre); g = tanh16(pre) (or sigmoid)
                    act[i] = lut[idx[i]]
                # c = sat16(f*c + i*g), clipped; each product requantized to the cell scale
                for j in range(u):
                    for b in range(block):
                        p = j * block + b
                        cc = _clamp(_rq_int(act[(u + j) * block + b] * c[j, b], m3[0, 0], m3[0, 1], m3[0, 2], m3[0, 3]),
                                    -32768, 32767)
                        ig = _clamp(_rq_int(act[p] * act[(2 * u + j) * block + b], m3[1, 0], m3[1, 1], m3[1, 2],
                                            m3[1, 3]), -32768, 32767)
                        cc = _clamp(_clamp(cc + ig, -32768, 32767), -q_clip, q_clip)
                        c[j, b] = cc
                        cidx[p] = cc + 32768
                for i in range(u * block):
                    tc[i] = lut_tc[cidx[i]]
                # h = int8(tanh(c) * o), requantized to the hidden state's scale and zero point
                for j in range(u):
                    for b in range(block):
                        p = j * block + b
                        hv = _clamp(h_zp + _rq_int(tc[p] * act[(3 * u + j) * block + b], m3[2, 0], m3[2, 1], m3[2, 2],
                                                   m3[2, 3]), h_min, h_max)
                        hq[j, b] = hv
                        hd[j, b] = hv - h_zp
                        hbuf[tt, j, b] = hv
                if tt == chunk - 1 or t == steps - 1:
                    t0 = t - tt
                    for b in range(nbk):
                        for s in range(tt + 1):
                            for j in range(u):
                                out[b0 + b, t0 + s, j] = hbuf[s, j, b]
            for b in range(nbk):
                for j in range(u):
                    h_last[b0 + b, j] = hq[j, b]
                    c_last[b0 + b, j] = c[j, b]


def block_size(n: int) -> int:
    """Samples per parallel block: one block per thread for small batches, at most 128
    (the block's working set then stays in L2), a multiple of 16 (whole vectors)."""
    threads = numba.get_num_threads() if numba is not None else 1
    per_thread = -(-n // max(threads, 1))
    return int(min(128, max(16, -(-per_thread // 16) * 16)))
