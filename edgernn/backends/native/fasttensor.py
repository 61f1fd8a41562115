"""Convolutions and fully-connected layers of tensor graphs on the row-pair kernel.

The same FULLY_CONNECTED int8 -> int8 form as a fast loop step's (``edgernn_pairs.h``
EDGERNN_FC8_KERNEL: Cortex-M4/M7/M33 assembly, its C twin elsewhere), laid out here at emit
time: :func:`fc8_stream` turns a weight matrix (one row per output channel), its folded bias
and per-row requantization into the kernel's word stream (row-pair weight words, pre-scaled
accumulator start words, each row's multiplier and rounding term with the output zero point
folded in, and its right shift when the rows' shifts differ).

A CONV_2D runs as that FC once per output position (no im2col buffer of the whole input):
``edgernn_conv_pairs_s8`` (``edgernn_tensor.c``) widens the position's window -- the taps
in filter order, a tap outside the input reading the input zero point, which is exactly what
the folded bias expects -- into one int16 vector pre-scaled by ``2^(1 + left shift)``, shared
by every output channel, and calls the kernel. A FULLY_CONNECTED on rows is the 1 x 1 case.
A DEPTHWISE_CONV_2D (each output channel reads its own input channel, so no two rows share an
input) widens the window channel by channel and sums each channel's int16 weight pairs with
SMLAD, requantized the same way (:func:`depthwise_words`). Anything the kernels cannot take
exactly (odd channel counts, mixed left shifts, a right shift of 0 next to others, accumulators
past the bounds, groups) keeps the reference kernel; :func:`pairs_layout` says which kernel
choices use the layouts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .fastlstm import MAX_PAIRS_COLUMNS, PASS_PAIRS, NotFast, _pairs_product, pair_words, pre_scale
from .plan import ConstArray

#: the kernel choices (``fastlstm.TARGET_KERNELS``) whose FULLY_CONNECTEDs and convolutions use
#: the row pairs: the assembly on cores with the DSP extension, the C twin elsewhere (still fewer
#: instructions than the reference kernels on the Cortex-M3)
PAIRS_KERNELS = ("pairs", "rows")


#: from this many columns on, a convolution's kernel loops over its columns (eight per iteration)
#: instead of unrolling them: the unrolled form costs about 40 bytes of flash per column pair and
#: pass size, the loop 3 instructions per 8 columns
ROLLED_COLUMNS = 48


def pairs_layout(kernel: str) -> bool:
    return kernel in PAIRS_KERNELS


@dataclass
class Fc8Stream:
    """One FC's EDGERNN_FC8_KERNEL stream and the kernel's compile-time shape."""

    words: np.ndarray  # uint32 values
    passes_end: int  # words in the passes of three row pairs
    pairs: int
    n_input: int
    rs: int  # every row's right shift, or -1: each row's own (in the stream)
    scale: int  # 2^(1 + left shift): the int16 input's pre-scale
    rolled: bool = False  # EDGERNN_FC8_ROLLED_KERNEL: the columns in a loop (less flash)
    rows = False  # graph_data.c.j2: an EDGERNN_FC8_KERNEL (convrows.ConvRowsStream: rows = True)

    @property
    def kernel(self) -> str:
        return (f"fc8_p{self.pairs}_i{self.n_input}_{'r' + str(self.rs) if self.rs >= 0 else 'rows'}"
                + ("_rolled" if self.rolled else ""))


def fc8_stream(w: np.ndarray, bias: np.ndarray, multipliers, shifts, zero_point: int, where: str) -> Fc8Stream:
    """The stream of ``y = clamp8(zp + MBQM(w x + bias, m_r, shift_r))`` for ``w`` [n_out][n_in] (int8
    values), ``bias`` the folded int32 bias, per-tensor or per-row multipliers and shifts; raises
    :class:`NotFast` (the message says why) when the kernel cannot compute it exactly."""
    w = np.asarray(w, np.int64)
    n, n_input = w.shape
    if n % 2:
        raise NotFast(f"{where}: {n} outputs (the kernel writes row pairs)")
    if n_input + 1 > MAX_PAIRS_COLUMNS:
        raise NotFast(f"{where}: {n_input} columns")
    mult, rounding, rs, scale = requant_rows(multipliers, shifts, zero_point, n, where)
    passes = _pairs_product(w, np.asarray(bias, np.int64).reshape(-1), scale, where)
    uniform = rs.min() == rs.max()
    words: list[int] = []
    end = 0
    full = n // 2 // PASS_PAIRS
    for k, block in enumerate(passes):
        words += block
        for r in range(2 * PASS_PAIRS * k, min(2 * PASS_PAIRS * (k + 1), n)):
            words += [int(mult[r]), int(rounding[r])] + ([] if uniform else [int(rs[r])])
        if k + 1 == full:
            end = len(words)
    return Fc8Stream(words=np.asarray(words, np.int64) & 0xFFFFFFFF, passes_end=end, pairs=n // 2,
                     n_input=n_input, rs=int(rs[0]) if uniform else -1, scale=scale)


def requant_rows(multipliers, shifts, zero_point: int, n: int, where: str):
    """(multipliers, rounding terms, right shifts, pre-scale) of ``n`` rows requantized as
    ``clamp8(SMMLAR(acc, m, R + [rs > 0] (acc >> 31)) >> rs)`` with R = zero point x 2^rs +
    2^(rs - 1): TFLM's MultiplyByQuantizedMultiplier plus the zero point, for accumulators
    whose inputs carry the pre-scale 2^(1 + left shift); raises :class:`NotFast`."""
    mult = np.broadcast_to(np.asarray(multipliers, np.int64).reshape(-1), (n,))
    shift = np.broadcast_to(np.asarray(shifts, np.int64).reshape(-1), (n,))
    ls = np.maximum(shift, 0)
    if ls.min() != ls.max():
        raise NotFast(f"{where}: per-channel left shifts differ ({sorted(set(ls.tolist()))})")
    rs = np.maximum(-shift, 0)
    if rs.max() > 23 or (rs.min() == 0 < rs.max()):
        raise NotFast(f"{where}: right shifts {sorted(set(rs.tolist()))} (one of them 0, or above 23)")
    rounding = zero_point * (1 << rs) + np.where(rs > 0, 1 << np.maximum(rs - 1, 0), 0)
    if np.abs(rounding).max() >= 1 << 30:
        raise NotFast(f"{where}: output zero point {zero_point} x 2^{int(rs.max())} does not fit the rounding term")
    return mult, rounding, rs, pre_scale(int(ls[0]), where)


def depthwise_words(w: np.ndarray, bias: np.ndarray, multipliers, shifts, zero_point: int,
                    where: str) -> tuple[np.ndarray, int, int]:
    """(words, taps rounded up to even, pre-scale) of a DEPTHWISE_CONV_2D whose output channel o
    has the taps ``w[o]`` (filter order): per channel its pre-scaled start word (the folded bias),
    multiplier, rounding term and right shift (:func:`requant_rows`), then one word per tap pair
    holding the two int16 weights, for SMLAD over the channel's taps (edgernn_depthwise_pairs_s8)."""
    w = np.asarray(w, np.int64)
    n, k = w.shape
    mult, rounding, rs, scale = requant_rows(multipliers, shifts, zero_point, n, where)
    taps = k + k % 2
    w = np.concatenate([w, np.zeros((n, taps - k), np.int64)], axis=1)
    bias = np.asarray(bias, np.int64).reshape(-1)
    bound = (np.abs(w).sum(axis=1) * 128 + np.abs(bias)) * scale
    if bound.max() >= 1 << 31:
        raise NotFast(f"{where}: |accumulator| x pre-scale may reach {int(bound.max())} >= 2^31")
    pairs = (w[:, 0::2] & 0xFFFF) | ((w[:, 1::2] & 0xFFFF) << 16)
    head = np.stack([bias * scale, mult, rounding, rs], axis=1)
    return np.concatenate([head, pairs], axis=1).reshape(-1) & 0xFFFFFFFF, taps, scale


def depthwise_pairs(p: str, where: str, w_taps: np.ndarray, bias: np.ndarray, multipliers, shifts, zero_point: int,
                    source: str, x: str, y: str, channels: int):
    """(words array, struct fields, C call, window bytes) of a DEPTHWISE_CONV_2D whose params struct
    is ``$p`` (geometry only); raises :class:`NotFast`."""
    words, taps, scale = depthwise_words(w_taps, bias, multipliers, shifts, zero_point, where)
    array = ConstArray(f"{p}_words", "uint32_t", words,
                       f"{source}: per output channel its start word (the folded bias x {scale}), multiplier, zero "
                       "point x 2^rs + rounding, right shift, then its taps as int16 pairs")
    fields = [(f"&${p}", "geometry, zero points, activation range"), (f"${array.name}", "per-channel words"),
              (str(taps), "taps, rounded up to even"), (str(scale), "the window's pre-scale, 2^(1 + left shift)")]
    call = f"edgernn_depthwise_pairs_s8(&${p}_pairs, {x}, {y}, (int16_t *)(@w@));"
    return array, fields, call, 2 * taps * channels


def conv_pairs(p: str, where: str, w2d: np.ndarray, bias: np.ndarray, multipliers, shifts, zero_point: int,
               source: str, x: str, y: str, ring: bool = False):
    """(stream array, pairs struct fields, C call, kernel, window bytes) of a CONV_2D whose params
    struct is ``$p`` (geometry only), reading ``x`` into ``y``; raises :class:`NotFast`. ``ring``:
    one filter row, stride and dilation 1 along it, an even channel count -- consecutive windows
    overlap, so each input column is widened once into a ring of 2 x filter_w columns (written
    twice), where every window is contiguous."""
    s = fc8_stream(w2d, bias, multipliers, shifts, zero_point, where)
    s.rolled = s.n_input >= ROLLED_COLUMNS
    uniform = s.rs >= 0
    stream = ConstArray(
        f"{p}_stream", "uint32_t", s.words,
        f"{source}: row-pair words over the window pre-scaled by {s.scale}, accumulator start words from the "
        f"folded bias, then each row's multiplier, zero point x 2^rs + rounding{'' if uniform else ', right shift'} "
        "(edgernn_pairs.h)")
    fields = [(f"&${p}", "geometry, zero points, activation range"), (f"${s.kernel}", "EDGERNN_FC8_KERNEL"),
              (f"${stream.name}", "stream"), (f"${stream.name} + {s.passes_end}", "end of the three-pair passes"),
              (str(s.scale), "the window's pre-scale, 2^(1 + left shift)"),
              ("1" if ring else "0", "1: the window buffer is a ring of 2 x filter_w input columns")]
    call = f"edgernn_conv_pairs_s8(&${p}_pairs, {x}, {y}, (int16_t *)(@w@));"
    return stream, fields, call, s, 4 * s.n_input if ring else 2 * (s.n_input + s.n_input % 2)


# --------------------------------------------------------------------------- FC 16x8 (int16 loops)
@dataclass
class Fc16Stream:
    """One 16x8 FC's EDGERNN_FC16_KERNEL stream (``edgernn_pairs.h`` ``edgernn_fc16_c``)."""

    words: np.ndarray  # uint32 values
    pairs: int
    n_input: int
    n_output: int
    ls: int = -1  # every row's left shift, a literal of the kernel (-1: per row in the stream)

    @property
    def kernel(self) -> str:
        return f"fc16_p{self.pairs}_i{self.n_input}_o{self.n_output}" + (f"_l{self.ls}" if self.ls >= 0 else "")


FC16_PASS_PAIRS = 2


def _fc16_rows(w, bias, multipliers, shifts, where: str):
    """A 16x8 FC's weights, bias (zeros when none), multipliers and right shifts as int64 per
    output row; raises :class:`NotFast` unless every shift is 1..32 and every multiplier a 16-bit one."""
    w = np.asarray(w, np.int64)
    n_out = w.shape[0]
    b = np.zeros(n_out, np.int64) if bias is None else np.asarray(bias, np.int64).reshape(-1)
    mult = np.broadcast_to(np.asarray(multipliers, np.int64).reshape(-1), (n_out,))
    s = np.broadcast_to(np.asarray(shifts, np.int64).reshape(-1), (n_out,))
    if s.min() < 1 or s.max() > 32 or mult.min() < 0 or mult.max() >= 1 << 15:
        raise NotFast(f"{where}: right shifts {sorted(set(s.tolist()))} or multipliers outside the exact form")
    return w, b, mult, s


def fc16_stream(w: np.ndarray, bias, multipliers, shifts, where: str, input_bound: int = 32768) -> Fc16Stream:
    """The stream of TFLM's 16x8 FULLY_CONNECTED (int64 bias or none, 16-bit multipliers ``m``,
    total right shifts ``s``: ``clamp16((acc m + 2^(s-1)) >> s)``) for ``w`` [n_out][n_in];
    raises :class:`NotFast` unless every row's ``|acc| 2^ls < 2^31`` (``|x| <= input_bound``)
    and ``1 <= s <= 32``, which make ``SMMULR(acc 2^ls, m 2^(32 - s - ls))`` exact."""
    w, bias, mult, s = _fc16_rows(w, bias, multipliers, shifts, where)
    n_out, n_in = w.shape
    ls = np.maximum(16 - s, 0)
    big = mult << (32 - s - ls)
    if big.max() >= 1 << 31:
        raise NotFast(f"{where}: a multiplier does not fit SMMULR")
    row_bound = np.abs(w).sum(axis=1) * input_bound + np.abs(bias)
    bound = row_bound << ls
    if bound.max() >= 1 << 31:
        raise NotFast(f"{where}: a row's sum may reach 2^{np.log2(bound.max()):.1f} (the kernel keeps 32 bits)")
    # one left shift for every row when one fits them all (the kernel then shifts by a literal
    # and the stream holds one word per row): any ls with 16 - s <= ls <= 32 - s keeps the
    # multiplier exact and below 2^31, and the bound holds while row_bound 2^ls < 2^31
    common = int(ls.max())
    if common <= int((32 - s).min()) and int(row_bound.max()) << common < 1 << 31:
        ls = np.full(n_out, common, np.int64)
        big = mult << (32 - s - ls)
    else:
        common = -1
    rows = n_out + n_out % 2
    wp = np.zeros((rows, n_in), np.int64)
    wp[:n_out] = w
    bp = np.zeros(rows, np.int64)
    bp[:n_out] = bias
    big = np.concatenate([big, np.zeros(rows - n_out, np.int64)])
    ls = np.concatenate([ls, np.zeros(rows - n_out, np.int64)])
    even = n_in - n_in % 2
    words: list[int] = []
    for p0 in range(0, rows // 2, FC16_PASS_PAIRS):
        ps = list(range(p0, min(p0 + FC16_PASS_PAIRS, rows // 2)))
        for p in ps:
            lo, hi = int(bp[2 * p]), int(bp[2 * p + 1])
            a = (lo + 256 * hi) & 0xFFFFFFFFFFFFFFFF
            words += [lo & 0xFFFFFFFF, a & 0xFFFFFFFF, a >> 32]
        pw = [pair_words(wp[2 * p, :even], wp[2 * p + 1, :even]) for p in ps]
        for c in range(even // 2):
            words += [int(x[c]) for x in pw]
        if n_in % 2:
            words += [(int(wp[2 * p, -1]) & 0xFFFF) | ((int(wp[2 * p + 1, -1]) & 0xFFFF) << 16) for p in ps]
        for p in ps:
            for r in (2 * p, 2 * p + 1):
                words += [int(big[r])] + ([int(ls[r])] if common < 0 else [])
    return Fc16Stream(words=np.asarray(words, np.int64) & 0xFFFFFFFF, pairs=rows // 2, n_input=n_in, n_output=n_out,
                      ls=common)


def fc16_reference(w, bias, multipliers, shifts, x) -> np.ndarray:
    """TFLM's reference 16x8 FC with int64 sums (``edgernn_fc_run_s16``), for int16 inputs ``x`` [k][n_in]."""
    acc = np.asarray(x, np.int64) @ np.asarray(w, np.int64).T
    if bias is not None:
        acc = acc + np.asarray(bias, np.int64).reshape(-1)
    s = np.asarray(shifts, np.int64)
    y = (acc * np.asarray(multipliers, np.int64) + (np.int64(1) << (s - 1))) >> s
    return np.clip(y, -32768, 32767)


def fc16_emulate(st: Fc16Stream, x) -> np.ndarray:
    """What ``edgernn_fc16_c`` computes from the stream, for int16 inputs ``x`` [k][n_in] (numpy, for the checks)."""
    x = np.asarray(x, np.int64)
    words = np.asarray(st.words, np.int64)
    out = np.zeros((x.shape[0], st.n_output), np.int64)
    n_in, even, k = st.n_input, st.n_input - st.n_input % 2, 0

    def s16(v):
        v = v & 0xFFFF
        return np.where(v >= 32768, v - 65536, v)

    def s8(v):
        v = v & 0xFF
        return np.where(v >= 128, v - 256, v)

    for p0 in range(0, st.pairs, FC16_PASS_PAIRS):
        ps = list(range(p0, min(p0 + FC16_PASS_PAIRS, st.pairs)))
        b, a = {}, {}
        for p in ps:
            b[p] = np.full(x.shape[0], words[k], np.int64)
            a[p] = np.full(x.shape[0], (int(words[k + 2]) << 32 | int(words[k + 1])), np.uint64).astype(np.int64)
            k += 3
        for c in range(even // 2):
            for p in ps:
                wd = int(words[k])
                k += 1
                x0, x1 = x[:, 2 * c], x[:, 2 * c + 1]
                b[p] = b[p] + s8(wd) * x0 + s8(wd >> 16) * x1
                a[p] = a[p] + s16(wd) * x0 + s16(wd >> 16) * x1
        acc = {}
        for p in ps:
            lo = ((b[p] + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)  # B is a 32-bit register
            acc[2 * p], acc[2 * p + 1] = lo, (a[p] - lo) >> 8
        if n_in % 2:
            for p in ps:
                wd = int(words[k])
                k += 1
                acc[2 * p] = acc[2 * p] + s16(wd) * x[:, -1]
                acc[2 * p + 1] = acc[2 * p + 1] + s16(wd >> 16) * x[:, -1]
        for p in ps:
            for r in (2 * p, 2 * p + 1):
                m, ls = int(words[k]), (st.ls if st.ls >= 0 else int(words[k + 1]))
                k += 1 if st.ls >= 0 else 2
                v = acc[r] << ls
                assert np.abs(v).max(initial=0) < 1 << 31
                if r < st.n_output:
                    out[:, r] = np.clip((v * m + (1 << 31)) >> 32, -32768, 32767)
    assert k == len(words)
    return out


# --------------------------------------------------------------------------- FC 16x8 on int16 weight pairs
@dataclass
class Fc16wStream:
    """One 16x8 FC's EDGERNN_FC16W_KERNEL stream (``edgernn_fc16w.h``)."""

    words: np.ndarray  # uint32 values
    n_input: int
    n_output: int
    bias: bool  # the passes start from the bias words (else from 0)

    @property
    def kernel(self) -> str:
        return f"fc16w_i{self.n_input}_o{self.n_output}" + ("_b" if self.bias else "")


FC16W_ROWS = 4  # rows per pass (one LDM of four words)
FC16W_MAX_LS = 8  # w 2^ls still fits 16 bits for every int8 w


def fc16w_stream(w: np.ndarray, bias, multipliers, shifts, where: str, input_bound: int = 32768) -> Fc16wStream:
    """The stream of TFLM's 16x8 FULLY_CONNECTED (as :func:`fc16_stream`) on int16 weight pairs:
    each row's weights and bias multiplied by 2^ls_r, the smallest left shift that keeps its
    multiplier m 2^(32 - s - ls) below 2^31; raises :class:`NotFast` unless ls_r <= 8 and every
    row's ``(sum |w| input_bound + |bias|) 2^ls < 2^31`` (the 32-bit sums are then exact, and so is
    ``SMMULR(acc 2^ls, m 2^(32 - s - ls))``)."""
    w, b, mult, s = _fc16_rows(w, bias, multipliers, shifts, where)
    n_out, n_in = w.shape
    if w.size and (w.min() < -128 or w.max() > 127):
        raise NotFast(f"{where}: weights beyond int8")
    ls = np.maximum(16 - s, 0)
    if ls.max() > FC16W_MAX_LS:
        raise NotFast(f"{where}: a left shift of {int(ls.max())} (w 2^ls would pass 16 bits)")
    big = mult << (32 - s - ls)
    bound = (np.abs(w).sum(axis=1) * input_bound + np.abs(b)) << ls
    if big.max() >= 1 << 31 or bound.max() >= 1 << 31:
        raise NotFast(f"{where}: a row's sum may reach 2^{np.log2(max(bound.max(), 1)):.1f} (32-bit sums)")
    rows = -(-n_out // FC16W_ROWS) * FC16W_ROWS
    cols = n_in + n_in % 2
    wp = np.zeros((rows, cols), np.int64)
    wp[:n_out, :n_in] = w << ls[:, None]
    bp, mp = np.zeros(rows, np.int64), np.zeros(rows, np.int64)
    bp[:n_out], mp[:n_out] = b << ls, big
    has_bias = bool(np.any(b))
    pairs = (wp[:, 0::2] & 0xFFFF) | ((wp[:, 1::2] & 0xFFFF) << 16)  # [rows][column pairs]
    words: list[int] = []
    for r0 in range(0, rows, FC16W_ROWS):
        block = slice(r0, r0 + FC16W_ROWS)
        if has_bias:
            words += [int(v) for v in bp[block]]
        words += [int(v) for v in pairs[block].T.ravel()]
        words += [int(v) for v in mp[block]]
    return Fc16wStream(words=np.asarray(words, np.int64) & 0xFFFFFFFF, n_input=n_in, n_output=n_out, bias=has_bias)


def fc16w_emulate(st: Fc16wStream, x) -> np.ndarray:
    """What ``edgernn_fc16w_c`` computes from the stream, for int16 inputs ``x`` [k][n_in] (numpy)."""
    x = np.asarray(x, np.int64)
    words = np.asarray(st.words, np.int64)
    xs = np.concatenate([x, np.zeros((len(x), st.n_input % 2), np.int64)], axis=1)
    half = lambda v: ((v & 0xFFFF) ^ 0x8000) - 0x8000  # noqa: E731
    signed = lambda v: ((v & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000  # noqa: E731
    out = np.zeros((len(x), st.n_output), np.int64)
    k, n_pairs = 0, xs.shape[1] // 2
    for r0 in range(0, st.n_output, FC16W_ROWS):
        acc = np.zeros((len(x), FC16W_ROWS), np.int64)
        if st.bias:
            acc += signed(words[k:k + FC16W_ROWS])
            k += FC16W_ROWS
        for c in range(n_pairs):
            wd = words[k:k + FC16W_ROWS]
            k += FC16W_ROWS
            acc += xs[:, 2 * c, None] * half(wd) + xs[:, 2 * c + 1, None] * half(wd >> 16)
        assert np.abs(acc).max(initial=0) < 1 << 31
        m = signed(words[k:k + FC16W_ROWS])
        k += FC16W_ROWS
        y = np.clip((acc * m + (1 << 31)) >> 32, -32768, 32767)
        n = min(FC16W_ROWS, st.n_output - r0)
        out[:, r0:r0 + n] = y[:, :n]
    assert k == len(words)
    return out
