"""Compiled (numba) kernels of the simulator's "numba" engine: the integer LSTM time loop,
FULLY_CONNECTED and the int8 pair-table lookups (ADD, SUB, MUL); used when numba is installed.

The LSTM loop does the arithmetic of
:meth:`edgernn.simulate.ops.UnidirectionalSequenceLstm.run_numpy` (the numpy reference, which
mirrors TFLM), laid out for the CPU's vector units: samples run in
blocks of ``block`` (one block per parallel iteration, on ``NUMBA_NUM_THREADS`` threads), and
inside a block every array is gate-major with the samples along the contiguous axis, so each
elementwise step (requantization, clamps, the cell update) is one vector loop over samples
with the gate's constants held in registers. The two fully connected layers of a step are
int8 dot products summed in int32 (:func:`_dot4_u8s8`: the ``vpdpbusd`` instruction on CPUs
with AVX-512 VNNI, portable vector code elsewhere); the table lookups get loops of their own
(gathers are slow or unavailable, and would keep the arithmetic loops from vectorizing).

Where the time goes (perf, headline LSTM(32), one thread, Xeon with AVX-512 VNNI): the
gate-input requantization loop ~33 %, the table lookups ~26 %, the dot products ~18 %, the
cell update ~17 %: about 180 ns per sample and time step.

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


def fall_back(sim, what: str, exc: Exception) -> None:
    """A numba build problem must not stop a simulation: re-raise anything else, otherwise
    switch ``sim`` to the numpy engine (same bits) with a warning."""
    if type(exc).__module__.split(".")[0] != "numba":
        raise exc
    log.warning("compiled %s unavailable (%s); using the numpy kernels", what, exc)
    sim.engine = "numpy"

#: float64 requantization is exact while |x * M * 2^left| stays below this (one spare bit
#: for adding the rounding constant).
FLOAT_EXACT = float(1 << 51)
#: Tests set this to compile :func:`_dot4_u8s8` as portable vector code even on a CPU with
#: AVX-512 VNNI (it is read when a function using it compiles).
FORCE_PORTABLE_DOT = False
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
    ``MultiplyByQuantizedMultiplier(x, mult, shift)
    == (x * mult + c - (d if x * mult < -2^30 else 0)) >> total_shift``."""
    if shift > 0:
        raise ValueError("left shifts are not folded into the integer form")
    right = -shift
    half = (1 << (right - 1)) if right > 0 else 0
    return int(mult), (1 << 30) + half * (1 << 31), (1 << 31) if right > 0 else 0, 31 + right


if numba is not None:
    import numba.extending
    from llvmlite import ir
    from numba import types
    from numba.core import cgutils

    @njit(inline="always", cache=True)
    def _rq_int(x, m, c, d, s):
        """:func:`requant_int_constants` form; ``x`` and ``m`` fit in int32 (one 32x32->64 multiply)."""
        p = np.int64(np.int32(x)) * np.int64(np.int32(m))
        adj = d if p < -1073741824 else 0
        return (p + c - adj) >> s

    @njit(inline="always", cache=True)
    def _clamp(v, lo, hi):
        return min(max(v, lo), hi)

    def _has_vnni512(context) -> bool:
        """Whether the code numba generates may use AVX-512 VNNI (``vpdpbusd`` on zmm)."""
        feats = getattr(context.codegen(), "_tm_features", "") or ""
        return not FORCE_PORTABLE_DOT and "+avx512vnni" in feats and "-evex512" not in feats

    @numba.extending.intrinsic
    def _dot4_u8s8(typingctx, w4, v4, init, out, r, col):
        """``out[r + i, col:col + 32] = init[r + i] + sum_q dot4(v4[q, col:col + 32], w4[r + i, q])``
        for i < 4 (int32, wrapping like the instruction): eight independent 16-lane sums.

        Each int32 of ``v4`` packs four unsigned bytes (values + 128), each int32 of ``w4``
        four signed weight bytes; ``dot4`` is the sum of the four byte products, as the
        ``vpdpbusd`` instruction computes it (used when the CPU has AVX-512 VNNI; otherwise
        the same sums in portable vector code). Exact: integer products, int32 sums.
        """
        sig = types.void(w4, v4, init, out, r, col)

        def codegen(context, builder, sig, args):
            wt, vt, it, ot = sig.args[:4]
            w_a, v_a, i_a, o_a = (context.make_array(t)(context, builder, a) for t, a in zip(sig.args[:4], args[:4]))
            r_arg, col_arg = args[4], args[5]
            i32 = ir.IntType(32)
            v16 = ir.VectorType(i32, 16)

            def splat(x):
                return builder.shuffle_vector(builder.insert_element(ir.Constant(v16, ir.Undefined), x,
                                                                     ir.Constant(i32, 0)),
                                              ir.Constant(v16, ir.Undefined), ir.Constant(v16, [0] * 16))

            if _has_vnni512(context):
                name = "llvm.x86.avx512.vpdpbusd.512"
                fn = builder.module.globals.get(name) or ir.Function(
                    builder.module, ir.FunctionType(v16, [v16, v16, v16]), name)

                def dpbusd(acc, v, w):
                    return builder.call(fn, [acc, v, w])
            else:
                def dpbusd(acc, v, w):
                    for k in range(4):
                        vb = builder.and_(builder.lshr(v, splat(ir.Constant(i32, 8 * k))), splat(ir.Constant(i32, 255)))
                        wb = builder.ashr(builder.shl(w, splat(ir.Constant(i32, 24 - 8 * k))),
                                          splat(ir.Constant(i32, 24)))
                        acc = builder.add(acc, builder.mul(vb, wb))
                    return acc

            nq = cgutils.unpack_tuple(builder, v_a.shape, 2)[0]
            rows = [builder.add(r_arg, ir.Constant(r_arg.type, i)) for i in range(4)]
            cols = [col_arg, builder.add(col_arg, ir.Constant(col_arg.type, 16))]
            accs = {(row_i, c): cgutils.alloca_once_value(builder, splat(builder.load(
                cgutils.get_item_pointer(context, builder, it, i_a, [row]))))
                for row_i, row in enumerate(rows) for c in range(2)}
            with cgutils.for_range(builder, nq) as loop:
                vs = [builder.load(builder.bitcast(cgutils.get_item_pointer(context, builder, vt, v_a,
                                                                            [loop.index, col]),
                                                   v16.as_pointer()), align=4) for col in cols]
                for row_i, row in enumerate(rows):
                    w = splat(builder.load(cgutils.get_item_pointer(context, builder, wt, w_a, [row, loop.index])))
                    for c in range(2):
                        acc = accs[row_i, c]
                        builder.store(dpbusd(builder.load(acc), vs[c], w), acc)
            for (row_i, c), acc in accs.items():
                op = cgutils.get_item_pointer(context, builder, ot, o_a, [rows[row_i], cols[c]])
                builder.store(builder.load(acc), builder.bitcast(op, v16.as_pointer()), align=4)
            return context.get_dummy_value()
        return sig, codegen

    # fastmath: only reassociation and contraction, which cannot change a result here: every
    # product and partial sum below is an integer (or a dyadic fraction) held exactly.
    @njit(cache=True, nogil=True, parallel=True, fastmath={"reassoc", "contract"})
    def lstm_int8x8_16(x, wx4, x_off, mx, wh4, h_off, mh, lut, lut_off, lut_tc, m3, q_clip, h_zp, h_min, h_max,
                       h0, c0, block, chunk, last_only, out, h_last, c_last):
        """The integer LSTM over ``x`` (N, T, F) int8 from states ``h0``, ``c0`` (N, U) int64
        (or (1, U): the same for every sample).

        ``wx4`` (4U, ceil(F/4)) and ``wh4`` (4U, ceil(U/4)): the int8 weights packed four to an
        int32 (:func:`pack4`), gate rows in TFLite order i, f, c, o. The products run on
        values + 128 (unsigned bytes), so ``x_off`` = bias - (128 + x_zp) * row sums and
        ``h_off`` = -(128 + h_zp) * row sums (int32, (4U,); the sums start from them) turn them into TFLM's
        accumulators. ``mx`` (4, 4), ``mh`` (4, 5): :func:`requant_constants` of each gate's
        input and recurrent FC (``mh[:, 4]``: 0 when the recurrent FC cannot leave int16); ``lut`` the int16 activations as int32, sigmoid at ``[0, 65536)``, the
        cell gate's at ``[65536, 131072)``, ``lut_off`` (4,) each gate's offset plus 32768;
        ``lut_tc`` tanh of the cell state; ``m3`` (3, 4): :func:`requant_int_constants` of the
        forget*cell, input*cell-gate and tanh(cell)*output multiplications. ``block`` samples
        (a multiple of 32) per parallel iteration, ``chunk`` time steps buffered before they
        are written to ``out`` (N, T, U) int8; with ``last_only`` only the last step is.
        """
        nb, steps, feat = x.shape
        g4, qx = wx4.shape
        qh = wh4.shape[1]
        u = g4 // 4
        nblk = (nb + block - 1) // block
        for blk in numba.prange(nblk):
            b0 = blk * block
            nbk = min(block, nb - b0)
            x4 = np.zeros((chunk, qx, block), np.int32)  # inputs + 128, four features to an int32
            h4 = np.zeros((qh, block), np.int32)  # h + 128, four units to an int32
            ax = np.empty((g4, block), np.int32)  # input FC sums
            ah = np.empty((g4, block), np.int32)  # recurrent FC sums
            hu = np.zeros((4 * qh, block), np.int32)  # h + 128 (padding rows stay 0)
            c = np.zeros((u, block), np.int32)  # cell state (int16 values)
            # 2-D arrays indexed [row, sample] with loop counters: contiguous vector loads and
            # stores (a computed flat index would compile to a scatter)
            idx = np.empty((g4, block), np.uint32)  # table index of each gate pre-activation (unsigned:
            # no negative-index wraparound in the lookups)
            act = np.empty((g4, block), np.int16)  # gate activations, Q0.15
            cidx = np.empty((u, block), np.uint32)
            tc = np.empty((u, block), np.int16)  # tanh(cell)
            hbuf = np.empty((chunk, u, block), np.int8)
            for b in range(nbk):
                for j in range(u):
                    hu[j, b] = h0[b0 + b if h0.shape[0] > 1 else 0, j] + 128
                    c[j, b] = c0[b0 + b if c0.shape[0] > 1 else 0, j]
            for t in range(steps):
                tt = t % chunk
                if tt == 0:
                    for b in range(nbk):
                        for s in range(min(chunk, steps - t)):
                            for k in range(feat):
                                x4[s, k >> 2, b] |= (np.int32(x[b0 + b, t + s, k]) + 128) << (8 * (k & 3))
                for q in range(qh):
                    for b in range(block):
                        h4[q, b] = np.int32(hu[4 * q, b] | (hu[4 * q + 1, b] << 8) | (hu[4 * q + 2, b] << 16)
                                            | (np.int64(hu[4 * q + 3, b]) << 24))
                for r in range(0, g4, 4):
                    for col in range(0, block, 32):
                        _dot4_u8s8(wx4, x4[tt], x_off, ax, r, col)
                        _dot4_u8s8(wh4, h4, h_off, ah, r, col)
                if tt == chunk - 1:
                    x4[:] = 0
                # pre = sat16(sat16(FC_x + bias) + sat16(FC_h)), as a table index
                for g in range(4):
                    xs, xthr, xkp, xkn = mx[g, 0], mx[g, 1], mx[g, 2], mx[g, 3]
                    hs, hthr, hkp, hkn = mh[g, 0], mh[g, 1], mh[g, 2], mh[g, 3]
                    off = lut_off[g]
                    for r in range(g * u, g * u + u):
                        if mh[g, 4] != 0.0:
                            for b in range(block):
                                a = np.float64(ax[r, b])
                                px = _clamp(np.floor(a * xs + (xkn if a <= xthr else xkp)), -32768.0, 32767.0)
                                a = np.float64(ah[r, b])
                                ph = _clamp(np.floor(a * hs + (hkn if a <= hthr else hkp)), -32768.0, 32767.0)
                                idx[r, b] = np.uint32(np.int32(_clamp(px + ph, -32768.0, 32767.0)) + off)
                        else:  # the weights keep FC_h within int16: no saturation to apply
                            for b in range(block):
                                a = np.float64(ax[r, b])
                                px = _clamp(np.floor(a * xs + (xkn if a <= xthr else xkp)), -32768.0, 32767.0)
                                a = np.float64(ah[r, b])
                                ph = np.floor(a * hs + (hkn if a <= hthr else hkp))
                                idx[r, b] = np.uint32(np.int32(_clamp(px + ph, -32768.0, 32767.0)) + off)
                for r in range(g4):  # i, f, o = sigmoid16(pre); g = tanh16(pre) (or sigmoid)
                    for b in range(block):
                        act[r, b] = lut[idx[r, b]]
                # c = sat16(f*c + i*g), clipped; each product requantized to the cell scale
                for j in range(u):
                    for b in range(block):
                        cc = _clamp(_rq_int(act[u + j, b] * c[j, b], m3[0, 0], m3[0, 1], m3[0, 2], m3[0, 3]),
                                    -32768, 32767)
                        ig = _clamp(_rq_int(act[j, b] * act[2 * u + j, b], m3[1, 0], m3[1, 1], m3[1, 2], m3[1, 3]),
                                    -32768, 32767)
                        cc = _clamp(_clamp(cc + ig, -32768, 32767), -q_clip, q_clip)
                        c[j, b] = cc
                        cidx[j, b] = np.uint32(cc + 32768)
                for j in range(u):
                    for b in range(block):
                        tc[j, b] = lut_tc[cidx[j, b]]
                # h = int8(tanh(c) * o), requantized to the hidden state's scale and zero point
                for j in range(u):
                    for b in range(block):
                        hv = _clamp(h_zp + _rq_int(tc[j, b] * act[3 * u + j, b], m3[2, 0], m3[2, 1], m3[2, 2],
                                                   m3[2, 3]), h_min, h_max)
                        hu[j, b] = hv + 128
                        hbuf[tt, j, b] = hv
                if not last_only and (tt == chunk - 1 or t == steps - 1):
                    t0 = t - tt
                    for b in range(nbk):
                        for s in range(tt + 1):
                            for j in range(u):
                                out[b0 + b, t0 + s, j] = hbuf[s, j, b]
            for b in range(nbk):
                for j in range(u):
                    h_last[b0 + b, j] = hu[j, b] - 128
                    if last_only:
                        out[b0 + b, steps - 1, j] = hu[j, b] - 128
                    c_last[b0 + b, j] = c[j, b]


    @njit(cache=True, nogil=True, fastmath={"reassoc", "contract"})
    def fully_connected_int8(x, x_zp, wt, bias, rq, y_zp, lo, hi, out):
        """int8 FULLY_CONNECTED: ``out (N, O) = clamp(MBQM(sum_k wt[k, o] (x[n, k] - x_zp) + bias[o]) + y_zp)``.

        ``wt`` (K, O) float32: the weights minus their zero point, transposed; ``bias`` (O,)
        float64; ``rq`` (4, O): :func:`requant_constants` per output channel. Sums in float32
        are exact while ``sum_k |w[o, k]| * 255 < 2^24`` (the caller checks it, with the
        requantization bound).
        """
        n, k = x.shape
        o = wt.shape[1]
        xd = np.empty((n, k), np.float32)
        for i in range(n):
            for j in range(k):
                xd[i, j] = x[i, j] - x_zp
        acc = np.dot(xd, wt)  # BLAS: exact, every partial sum is an integer below 2^24
        for i in range(n):
            for r in range(o):
                a = np.float64(acc[i, r]) + bias[r]
                y = np.floor(a * rq[0, r] + (rq[3, r] if a <= rq[1, r] else rq[2, r])) + y_zp
                out[i, r] = np.int8(_clamp(y, lo, hi))

    @njit(inline="always", cache=True)
    def _srdhm(a, b):
        """gemmlowp SaturatingRoundingDoublingHighMul of two int32 values (held in int64)."""
        if a == b and a == -2147483648:
            return np.int64(2147483647)
        ab = a * b
        sn = ab + (np.int64(1 << 30) if ab >= 0 else np.int64(1 - (1 << 30)))
        return (sn >> 31) if sn >= 0 else -((-sn) >> 31)

    @njit(inline="always", cache=True)
    def _sat_shl32(x, e):
        """gemmlowp SaturatingRoundingMultiplyByPOT<e> for e > 0 on an int32 raw value."""
        threshold = (np.int64(1) << (31 - e)) - 1
        if x > threshold:
            return np.int64(2147483647)
        if x < -threshold:
            return np.int64(-2147483648)
        return x << e

    @njit(inline="always", cache=True)
    def _reciprocal(x, integer_digits):
        """TFLM ``GetReciprocal`` of a positive int32 ``x`` with ``integer_digits`` integer bits:
        (1/x as a Q0.31 shifted scale, num_bits_over_unit); gemmlowp's
        ``one_over_one_plus_x_for_x_in_0_1`` (three Newton-Raphson steps) as
        :func:`edgernn.fixedpoint.get_reciprocal` computes it."""
        headroom = 0
        cur = x & 0xFFFFFFFF
        while headroom < 32 and cur < (np.int64(1) << 31):
            cur <<= 1
            headroom += 1
        shifted = ((x << headroom) & 0xFFFFFFFF) - (np.int64(1) << 31)  # in int32 range already
        sm = shifted + 2147483647  # RoundingHalfSum(a, One)
        half_den = (sm + 1) // 2 if sm >= 0 else -((-(sm - 1)) // 2)
        r = 1515870810 + _srdhm(half_den, np.int64(-1010580540))  # 48/17 - 32/17 d, Q2.29
        for _ in range(3):
            one_minus = (np.int64(1) << 29) - _srdhm(half_den, r)
            r = r + _sat_shl32(_srdhm(r, one_minus), 2)
        return _sat_shl32(r, 1), integer_digits - headroom

    @njit(cache=True, nogil=True)
    def softmax_int8(x, exp_acc, ok, exp, acc_bits, out):
        """TFLM int8 SOFTMAX over the rows of ``x`` (N, C) with the kernel's tables, indexed by
        ``max(row) - x``: ``exp_acc`` (Q12.19 terms of the row sum), ``ok`` (difference within
        ``diff_min``), ``exp`` (Q0.31 exponentials). Same steps as :class:`.ops.Softmax`."""
        n, c = x.shape
        d = np.empty(c, np.int64)
        for i in range(n):
            m = x[i, 0]
            for j in range(1, c):
                m = max(m, x[i, j])
            total = np.int64(0)
            for j in range(c):
                d[j] = np.int64(m) - np.int64(x[i, j])
                total += exp_acc[d[j]]
            total = ((total + (np.int64(1) << 31)) & 0xFFFFFFFF) - (np.int64(1) << 31)
            scale, bits = _reciprocal(total, acc_bits)
            ex = np.int64(bits + 31 - 8)
            mask = (np.int64(1) << ex) - 1
            for j in range(c):
                if not ok[d[j]]:
                    out[i, j] = -128
                    continue
                q = _srdhm(scale, np.int64(exp[d[j]]))
                r = (q >> ex) + ((q & mask) > ((mask >> 1) + (1 if q < 0 else 0)))
                out[i, j] = np.int8(min(max(r - 128, -128), 127))

    @njit(cache=True, nogil=True)
    def pair_table_lookup(table, a, b, out):
        """``out[i] = table[(a[i] + 128) * 256 + b[i] + 128]`` for int8 ``a``, ``b`` (1-D, same length)."""
        for i in range(a.shape[0]):
            out[i] = table[np.uint32(((np.int32(a[i]) + 128) << 8) | (np.int32(b[i]) + 128))]


def pack4(w: np.ndarray) -> np.ndarray:
    """int8 weights (R, K) -> int32 (R, ceil(K/4)), four consecutive weights to an int32
    (little-endian bytes, zero padded), the layout :func:`_dot4_u8s8` reads."""
    w = np.asarray(w, np.int64)
    k4 = -(-w.shape[1] // 4) * 4
    padded = np.zeros((w.shape[0], k4), np.int8)
    padded[:, :w.shape[1]] = w
    return padded.view("<i4").astype(np.int32)


def block_size(n: int) -> int:
    """Samples per parallel block: one block per thread for small batches, at most 128
    (the block's working set then stays in L2), a multiple of 32 (whole vector pairs)."""
    threads = numba.get_num_threads() if numba is not None else 1
    per_thread = -(-n // max(threads, 1))
    return int(min(128, max(32, -(-per_thread // 32) * 32)))
