"""Compiled (numba) twin of the integer LSTM time loop; used when numba is installed.

Same arithmetic as :meth:`edgernn.simulate.ops.UnidirectionalSequenceLstm.run_numpy` (the
numpy reference, which mirrors TFLM), fused into one loop per sample so the gate maths stays
in registers and cache; samples run in parallel on ``NUMBA_NUM_THREADS`` threads. The tests
check both engines against TFLM bit for bit. Set ``EDGERNN_SIM_ENGINE=numpy`` (or
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

if numba is not None:
    @njit(inline="always", cache=True)
    def _mbqm_f(x, m_hi, m_lo, lmul, rmul):
        """MultiplyByQuantizedMultiplier in float64 arithmetic, exact for |x * 2^left| < 2^31.

        SaturatingRoundingDoublingHighMul == floor(x * m / 2^31 + 1/2) for every sign; the
        product is split as m = m_hi * 2^16 + m_lo so each partial product stays exact in a
        double. RoundingDivideByPOT == round half away from zero of q / 2^right. Branch-free
        so the loops vectorize.
        """
        xs = x * lmul
        p = xs * m_hi * (1.0 / 32768.0)  # x * m_hi / 2^15 (exact: < 2^46 before scaling)
        pi = np.floor(p)
        q = pi + np.floor((p - pi) + xs * m_lo * (1.0 / 2147483648.0) + 0.5)
        a = np.floor(np.abs(q) * rmul + 0.5)
        return a if q >= 0 else -a

    @njit(inline="always", cache=True)
    def _clampf(v, lo, hi):
        return min(max(v, lo), hi)

    # fastmath: only reassociation and contraction, which cannot change a result here: every
    # product and partial sum below is an integer (or a dyadic fraction) held exactly.
    @njit(cache=True, nogil=True, parallel=True, fastmath={"reassoc", "contract"})
    def lstm_int8x8_16(x, x_zp, wxT, bias, mx_hi, mx_lo, mx_l, mx_r, wh, h_zp, mh_hi, mh_lo, mh_l, mh_r,
                       lut_sig, lut_cell, lut_tanh_c, mul3, q_clip, h_min, h_max, h0, c0, out, h_last, c_last):
        """One sample per parallel iteration. ``wxT``: input weights (F, 4U) float64, ``wh``: recurrent
        weights (4U, U) float32; gate rows in TFLite order i, f, c, o.

        Input products and the bias sum in float64, recurrent dot products in float32: all
        exact for these integer ranges (the caller checks the bounds, see
        ``UnidirectionalSequenceLstm.compiled_exact``).

        ``mul3`` rows: (m_hi, m_lo, 2^left, 2^-right) of the forget*cell, input*cell-gate and
        tanh(cell)*output multiplications.
        """
        nb, steps, feat = x.shape
        g4 = wxT.shape[1]
        u = g4 // 4
        for n in numba.prange(nb):  # samples are independent: spread over NUMBA_NUM_THREADS
            acc = np.empty(g4, np.float64)
            acch = np.empty(g4, np.float64)
            hd = np.empty(u, np.float32)
            pre = np.empty(g4, np.int64)
            c = np.empty(u, np.float64)
            h = np.empty(u, np.float64)
            gi = np.empty(u, np.float64)
            gf = np.empty(u, np.float64)
            gg = np.empty(u, np.float64)
            go = np.empty(u, np.float64)
            for j in range(u):
                h[j] = h0[n, j]
                c[j] = c0[n, j]
            for t in range(steps):
                for r in range(g4):
                    acc[r] = bias[r]
                for k in range(feat):
                    xk = np.float64(x[n, t, k] - x_zp)
                    for r in range(g4):
                        acc[r] += wxT[k, r] * xk
                for k in range(u):
                    hd[k] = np.float32(h[k] - h_zp)
                for r in range(g4):  # recurrent FC: float32 dot products, exact below 2^24
                    s = np.float32(0.0)
                    for k in range(u):
                        s += wh[r, k] * hd[k]
                    acch[r] = s
                for r in range(g4):
                    px = _clampf(_mbqm_f(acc[r], mx_hi[r], mx_lo[r], mx_l[r], mx_r[r]), -32768.0, 32767.0)
                    ph = _clampf(_mbqm_f(np.float64(acch[r]), mh_hi[r], mh_lo[r], mh_l[r], mh_r[r]), -32768.0, 32767.0)
                    pre[r] = np.int64(_clampf(px + ph, -32768.0, 32767.0)) + 32768
                for j in range(u):
                    gi[j] = lut_sig[pre[j]]
                    gf[j] = lut_sig[pre[u + j]]
                    gg[j] = lut_cell[pre[2 * u + j]]
                    go[j] = lut_sig[pre[3 * u + j]]
                for j in range(u):
                    cc = _clampf(_mbqm_f(gf[j] * c[j], mul3[0, 0], mul3[0, 1], mul3[0, 2], mul3[0, 3]),
                                 -32768.0, 32767.0)
                    ig = _clampf(_mbqm_f(gi[j] * gg[j], mul3[1, 0], mul3[1, 1], mul3[1, 2], mul3[1, 3]),
                                 -32768.0, 32767.0)
                    cc = _clampf(cc + ig, -32768.0, 32767.0)
                    if q_clip > 0:
                        cc = _clampf(cc, -q_clip, q_clip)
                    c[j] = cc
                for j in range(u):
                    gg[j] = lut_tanh_c[np.int64(c[j]) + 32768]
                for j in range(u):
                    hv = _clampf(h_zp + _mbqm_f(gg[j] * go[j], mul3[2, 0], mul3[2, 1], mul3[2, 2], mul3[2, 3]),
                                 h_min, h_max)
                    h[j] = hv
                    out[n, t, j] = np.int8(hv)
            for j in range(u):
                h_last[n, j] = np.int64(h[j])
                c_last[n, j] = np.int64(c[j])


def split_multiplier(mult, shift):
    """(m_hi, m_lo, 2^left, 2^-right) float64 arrays for :func:`_mbqm_f`."""
    mult = np.asarray(mult, np.int64)
    shift = np.asarray(shift, np.int64)
    return ((mult >> 16).astype(np.float64), (mult & 0xFFFF).astype(np.float64),
            np.ldexp(1.0, np.maximum(shift, 0)), np.ldexp(1.0, -np.maximum(-shift, 0)))

