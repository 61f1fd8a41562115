"""The compiled (numba) WHILE-loop kernel of the simulator's "numba" engine.

:func:`run_loop` runs a loop body that :class:`edgernn.simulate.loop.CompiledLoop` has turned
into a straight-line program over per-sample vectors: ``v[slot, element, sample]`` (int32),
one instruction per op, each reusing the arithmetic of the prepared numpy kernel it replaces
(the tests check both engines against TFLM bit for bit). Instruction rows are
``(kind, in1, in2, out, parameter, width)``:

=========  =====================================================================================
kind       what
=========  =====================================================================================
FC         int8 FULLY_CONNECTED (:func:`._fast.fully_connected_int8`'s float arithmetic)
TABLE2     int8 x int8 -> int8 pair table (ADD, SUB, MUL)
TABLE1     int8 -> int8 table (LOGISTIC, TANH, RELU)
FC16       16x8 FULLY_CONNECTED: int64 sums; requantized like TFLM (64-bit reduced multiplier
           with an int64 bias, else the int32 double rounding)
ARITH16    int16 ADD / SUB / MUL (TFLM's integer arithmetic, clamped to the fused activation)
TABLE16    int16 -> int16 or int8 table (int16 LOGISTIC / TANH, QUANTIZE int16 -> int8)
COPY       ``out[j] = in1[in2 + j]`` (SPLIT / SPLIT_V parts, CAST int8 -> int16)
=========  =====================================================================================
"""

from __future__ import annotations

import numpy as np

from ._fast import numba, njit

FC, TABLE2, TABLE1, FC16, ARITH16, TABLE16, COPY = range(7)

if numba is not None:
    from ._fast import _clamp, _srdhm

    @njit(inline="always", cache=True)
    def _rdbpot(x, e):
        """gemmlowp RoundingDivideByPOT (ties away from zero) of an int64 value."""
        if e <= 0:
            return x
        mask = (np.int64(1) << e) - 1
        rem = x & mask
        thr = (mask >> 1) + (1 if x < 0 else 0)
        return (x >> e) + (1 if rem > thr else 0)

    @njit(inline="always", cache=True)
    def _mbqm32(x, m, shift):
        """TFLM MultiplyByQuantizedMultiplier(int32 x, m, shift): the double rounding."""
        left = shift if shift > 0 else 0
        xs = np.int64(np.int32(x << left))
        return _rdbpot(_srdhm(xs, np.int64(m)), -shift if shift < 0 else 0)

    @njit(cache=True, nogil=True, parallel=True, fastmath={"reassoc", "contract"})
    def run_loop(x, xt_slot, t_x, state0, state_in, state_out, const_vals, const_slots, instr,
                 fc_w, fc_woff, fc_boff, fc_bias, fc_rq, fc_scal, tab2, tab1,
                 w16, w16off, b16off, rq16, scal16, ar16, tab16,
                 seq, seq_slot, t_seq, n_slots, width, block, final):
        """The loop over ``len(t_x)`` steps (see the module docstring).

        Each step reads ``x[:, t_x[k]]`` into slot ``xt_slot`` (when >= 0), runs ``instr``,
        writes slot ``seq_slot`` into ``seq[:, t_seq[k]]`` (when >= 0) and copies the
        ``state_out`` slots into the ``state_in`` slots. ``final`` receives the states after
        the last step. FC: weights ``fc_w`` (K, O) flat at ``fc_woff``, bias / requantization
        constants at ``fc_boff`` (``fc_rq`` from :func:`._fast.requant_constants`),
        ``fc_scal`` (x_zp, y_zp, lo, hi, K). FC16: weights ``w16`` (O, K) flat at ``w16off``;
        ``rq16`` rows (bias, mode 1 = int64 / 0 = int32, multiplier, shift) from ``b16off``;
        ``scal16`` (y_zp, lo, hi, K). ARITH16: ``ar16`` (op 0 add / 1 sub / 2 mul, off1, off2,
        off_out, m1, s1, m2, s2, mo, so, lo, hi, left_shift).
        """
        nb = x.shape[0]
        n_state = state_in.shape[0]
        nblk = (nb + block - 1) // block
        for blk in numba.prange(nblk):
            b0 = blk * block
            nbk = min(block, nb - b0)
            v = np.zeros((n_slots, width, block), np.int32)  # [slot, element, sample]
            acc = np.empty(block, np.float32)  # exact: the FC kernels' bound (sums below 2^24)
            acc64 = np.empty(block, np.int64)
            xf = np.empty((width, block), np.float32)  # FULLY_CONNECTED input minus its zero point
            for s in range(const_slots.shape[0]):
                for j in range(width):
                    for b in range(block):
                        v[const_slots[s], j, b] = const_vals[s, j]
            for s in range(n_state):
                for b in range(nbk):
                    for j in range(width):
                        v[state_in[s], j, b] = state0[s, b0 + b, j]
            for k in range(t_x.shape[0]):
                if xt_slot >= 0:
                    for b in range(nbk):
                        for j in range(x.shape[2]):
                            v[xt_slot, j, b] = x[b0 + b, t_x[k], j]
                for ins in range(instr.shape[0]):
                    kind, i1, i2, o, p, w = (instr[ins, 0], instr[ins, 1], instr[ins, 2], instr[ins, 3],
                                             instr[ins, 4], instr[ins, 5])
                    if kind == 0:  # FC: as fully_connected_int8 (weights (K, O) flat)
                        kk = np.int64(fc_scal[p, 4])
                        wo, bo = fc_woff[p], fc_boff[p]
                        x_zp, y_zp, lo, hi = fc_scal[p, 0], fc_scal[p, 1], fc_scal[p, 2], fc_scal[p, 3]
                        for j in range(kk):
                            for b in range(block):
                                xf[j, b] = v[i1, j, b] - x_zp
                        for r in range(w):
                            for b in range(block):
                                acc[b] = 0.0
                            for j in range(kk):
                                wv = fc_w[wo + j * w + r]
                                for b in range(block):
                                    acc[b] += wv * xf[j, b]
                            sc, thr, kp, kn = fc_rq[0, bo + r], fc_rq[1, bo + r], fc_rq[2, bo + r], fc_rq[3, bo + r]
                            br = fc_bias[bo + r]
                            for b in range(block):
                                a = np.float64(acc[b]) + br
                                y = np.floor(a * sc + (kn if a <= thr else kp)) + y_zp
                                v[o, r, b] = np.int32(_clamp(y, lo, hi))
                    elif kind == 1:  # TABLE2
                        for j in range(w):
                            for b in range(block):
                                v[o, j, b] = tab2[p, np.uint32(((v[i1, j, b] + 128) << 8) | (v[i2, j, b] + 128))]
                    elif kind == 2:  # TABLE1
                        for j in range(w):
                            for b in range(block):
                                v[o, j, b] = tab1[p, np.uint32(v[i1, j, b] + 128)]
                    elif kind == 3:  # FC16
                        kk = scal16[p, 3]
                        wo, bo = w16off[p], b16off[p]
                        for r in range(w):
                            for b in range(block):
                                acc64[b] = rq16[0, bo + r]
                            for j in range(kk):
                                wv = np.int64(w16[wo + r * kk + j])
                                for b in range(block):
                                    acc64[b] += wv * v[i1, j, b]
                            mode, m, sh = rq16[1, bo + r], rq16[2, bo + r], rq16[3, bo + r]
                            for b in range(block):
                                if mode == 1:
                                    y = (acc64[b] * m + (np.int64(1) << (sh - 1))) >> sh
                                else:
                                    y = _mbqm32(acc64[b], m, sh)
                                v[o, r, b] = np.int32(_clamp(y + scal16[p, 0], scal16[p, 1], scal16[p, 2]))
                    elif kind == 4:  # ARITH16
                        op_, o1, o2, oo = ar16[p, 0], ar16[p, 1], ar16[p, 2], ar16[p, 3]
                        lo, hi, ls = ar16[p, 10], ar16[p, 11], ar16[p, 12]
                        for j in range(w):
                            for b in range(block):
                                a1 = np.int64(v[i1, j, b]) + o1
                                a2 = np.int64(v[i2, j, b]) + o2
                                if op_ == 2:
                                    y = _mbqm32(a1 * a2, ar16[p, 4], ar16[p, 5]) + oo
                                else:
                                    s1 = _mbqm32(a1 << ls, ar16[p, 4], ar16[p, 5])
                                    s2 = _mbqm32(a2 << ls, ar16[p, 6], ar16[p, 7])
                                    y = _mbqm32(s1 - s2 if op_ == 1 else s1 + s2, ar16[p, 8], ar16[p, 9]) + oo
                                v[o, j, b] = np.int32(_clamp(y, lo, hi))
                    elif kind == 5:  # TABLE16
                        for j in range(w):
                            for b in range(block):
                                v[o, j, b] = tab16[p, np.uint32(v[i1, j, b] + 32768)]
                    else:  # COPY
                        for j in range(w):
                            for b in range(block):
                                v[o, j, b] = v[i1, i2 + j, b]
                if seq_slot >= 0:
                    for b in range(nbk):
                        for j in range(seq.shape[2]):
                            seq[b0 + b, t_seq[k], j] = v[seq_slot, j, b]
                for s in range(n_state):
                    if state_out[s] != state_in[s]:
                        for j in range(width):
                            for b in range(block):
                                v[state_in[s], j, b] = v[state_out[s], j, b]
            for s in range(n_state):
                for b in range(nbk):
                    for j in range(width):
                        final[s, b0 + b, j] = v[state_in[s], j, b]
