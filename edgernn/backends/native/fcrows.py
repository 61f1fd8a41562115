"""The 16x8 FULLY_CONNECTED of an int16 loop step on weight rows (``edgernn_mve_fc.h``).

The layout of the ``rows`` kernel choice (Cortex-M55 Helium; its C twin on the Cortex-M0+ /
M3 / host): per pass of four rows, each row's weights of a chunk of eight columns contiguous,
so that one widening load and one VMLADAVA.S16 take eight multiply-accumulates of a row (the
``pairs`` layout of ``edgernn_fc16w.h`` interleaves the rows for SMLAD, which suits no vector
instruction). The sums are the 32-bit ones :func:`.fasttensor.fc16w_stream` proves exact; the
weights are int8 when every row's left shift is 0 (half the flash), else int16 times 2^ls.
:func:`fc16r_emulate` computes what the C reads from the stream (tests compare it with TFLM
and with the C); where they apply, Helium reads a faster form of the stream (SPLIT: int8 x int8
over the int16 input's high and low bytes; BIASCOLS: the bias as two constant input lanes; both
in eights of rows), written beside the plain stream the C twin reads (``#if EDGERNN_USE_MVE``),
which :func:`fc16r_emulate` reads too. The int8 steps' gate kernels (:mod:`.fastgate`: FC x, FC h, ADD, table) take
rows of int8 weights in chunks of sixteen columns over the int8 inputs themselves on that kernel
choice (:func:`gate_rows_stream`, :func:`gate_rows_emulate`: VMLADAVA.S8 on Helium).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .fastlstm import NotFast
from .fasttensor import FC16W_MAX_LS, _fc16_rows
from .plan import ConstArray

FC16R_ROWS = 4  # rows per pass (one int32x4 of sums)
FC16R_CHUNK = 8  # columns per chunk (one int16x8 of the input)
FC16R_HELD = 32  # columns held in vectors for a whole FC
# the stream's forms (edgernn_mve_fc.h): plain; int8 x int8 over the input's bytes; bias as columns
PLAIN, SPLIT, BIASCOLS = 0, 1, 2
SPLIT_COLUMNS = 32  # the split form's inputs (16 columns would gain no instruction)


@dataclass
class Fc16rStream:
    """One 16x8 FC's EDGERNN_FC16R_KERNEL stream and the kernel's literal arguments."""

    words: np.ndarray  # uint32 values
    n_input: int
    n_output: int
    bias: bool  # each pass starts with its rows' bias words
    wbytes: int  # 1: int8 weights (every ls 0); 2: int16 weights x 2^ls
    form: int = PLAIN  # SPLIT: e words after each pass's multipliers; BIASCOLS: K words, two more columns
    plain: Fc16rStream | None = None  # a form's plain twin (the C twin's stream)
    order: np.ndarray | None = None  # a form's rows in stream order (each eight as 0 2 4 6 1 3 5 7)

    @property
    def kernel(self) -> str:
        return (f"fc16r_i{self.n_input}_o{self.n_output}" + ("_b" if self.bias else "") + f"_w{self.wbytes}"
                + ("", "_s", "_k")[self.form])


def _bias_columns(b: np.ndarray, wbytes: int):
    """(K_hi, c_hi, c_lo) with K_hi c_hi + c_lo = b for every row, the two weights in the stream's
    type (int16, int8), or None when some |b| is too large for them."""
    bits = 14 if wbytes == 2 else 8
    hi = (b + (1 << (bits - 1))) >> bits
    lo = b - (hi << bits)  # in [-2^(bits-1), 2^(bits-1))
    limit = 1 << (8 * wbytes - 1)
    if hi.min(initial=0) < -limit or hi.max(initial=0) >= limit:
        return None
    return 1 << bits, hi, lo


def fc16r_stream(w: np.ndarray, bias, multipliers, shifts, where: str, input_bound: int = 32768,
                 forms: bool = True) -> Fc16rStream:
    """The stream of TFLM's 16x8 FULLY_CONNECTED (int64 bias or none, 16-bit multipliers m, right
    shifts s: ``clamp16((acc m + 2^(s-1)) >> s)``) for ``w`` [n_out][n_in] on weight rows; raises
    :class:`NotFast` unless, with ls_r = max(16 - s_r, 0) <= 8, every row's
    ``(sum |w| input_bound + |bias|) 2^ls < 2^31`` (32-bit sums, SMMULR by m 2^(32 - s - ls) exact).

    With ``forms``, Helium's faster forms where they apply, the plain stream in ``plain`` for the
    C twin (the generator writes both, under ``#if EDGERNN_USE_MVE`` / ``#else``): SPLIT for int8
    weights over 32 columns (the sum as 256 sum(w hi) + sum(w (lo - 128)) + e, e = bias + 128
    sum(w): wrapping 32-bit partial sums, the same final sum, so the same bound); BIASCOLS for a
    held input (<= 32 columns) with a bias and two free lanes in its last chunk (the bias as
    K_hi c_hi + c_lo, two more columns over constant inputs K_hi and 1, no bias words)."""
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
    wbytes = 1 if ls.max() == 0 else 2
    rows = -(-n_out // FC16R_ROWS) * FC16R_ROWS
    wp = np.zeros((rows, n_in), np.int64)
    wp[:n_out] = w << ls[:, None]
    bp, mp = np.zeros(rows, np.int64), np.zeros(rows, np.int64)
    bp[:n_out], mp[:n_out] = b << ls, big
    has_bias = bool(np.any(b))
    form, chunk, words = PLAIN, FC16R_CHUNK, []
    cols = _bias_columns(bp, wbytes) if forms and has_bias and n_in <= FC16R_HELD and 0 < n_in % 8 <= 6 else None
    if cols is not None:  # K: the last chunk's lanes n_in % 8 and the next, as int16
        form, (k_hi, c_hi, c_lo) = BIASCOLS, cols
        lanes = np.zeros(FC16R_CHUNK, np.int64)
        lanes[n_in % 8:n_in % 8 + 2] = k_hi, 1
        words += np.frombuffer(lanes.astype("<i2").tobytes(), "<u4").astype(np.int64).tolist()
        wp = np.concatenate([wp, c_hi[:, None], c_lo[:, None]], axis=1)
    elif forms and wbytes == 1 and n_in == SPLIT_COLUMNS:
        form, chunk = SPLIT, SPLIT_COLUMNS
        e = bp + 128 * wp.sum(axis=1)
        if np.abs(e).max(initial=0) >= 1 << 31:
            raise NotFast(f"{where}: a row's bias + 128 sum(w) passes 32 bits")
    order = None
    if form != PLAIN:  # eights of rows as 0 2 4 6 1 3 5 7: Helium stores each eight at once (VQMOVNB/T)
        order = np.arange(rows)
        for r0 in range(0, n_out // 8 * 8, 8):
            order[r0:r0 + 8] = r0 + np.array([0, 2, 4, 6, 1, 3, 5, 7])
        wp, bp, mp = wp[order], bp[order], mp[order]
        e = e[order] if form == SPLIT else None
    for r0 in range(0, rows, FC16R_ROWS):
        if has_bias and form != BIASCOLS:
            words += [int(v) for v in bp[r0:r0 + FC16R_ROWS]]
        elems = np.concatenate([wp[r0:r0 + FC16R_ROWS, c0:c0 + chunk].ravel()
                                for c0 in range(0, wp.shape[1], chunk)]) if n_in else np.zeros(0, np.int64)
        raw = elems.astype("<i1" if wbytes == 1 else "<i2").tobytes()  # little-endian, as the cores read them
        words += np.frombuffer(raw, "<u4").astype(np.int64).tolist()
        words += [int(v) for v in mp[r0:r0 + FC16R_ROWS]]
        if form == SPLIT:
            words += [int(v) for v in e[r0:r0 + FC16R_ROWS]]
    plain = fc16r_stream(w, bias, multipliers, shifts, where, input_bound, forms=False) if form != PLAIN else None
    return Fc16rStream(words=np.asarray(words, np.int64) & 0xFFFFFFFF, n_input=n_in, n_output=n_out, bias=has_bias,
                       wbytes=wbytes, form=form, plain=plain, order=order)


def fc16r_emulate(st: Fc16rStream, x) -> np.ndarray:
    """What ``edgernn_fc16r_c`` computes from a plain stream, and Helium from a form's, for int16
    inputs ``x`` [k][n_in] (numpy); checks on the way that the split form's bias words and e words
    agree."""
    x = np.asarray(x, np.int64)
    words = np.asarray(st.words, np.int64)
    signed = lambda v: ((v & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000  # noqa: E731
    out = np.zeros((len(x), st.n_output), np.int64)
    k, n_in = 0, st.n_input
    ns, chunk = n_in + (2 if st.form == BIASCOLS else 0), SPLIT_COLUMNS if st.form == SPLIT else FC16R_CHUNK
    if st.form == BIASCOLS:
        kv = np.frombuffer((words[:4] & 0xFFFFFFFF).astype("<u4").tobytes(), "<i2").astype(np.int64)
        k = 4
    for r0 in range(0, st.n_output, FC16R_ROWS):
        acc = np.zeros((len(x), FC16R_ROWS), np.int64)
        words_b = st.bias and st.form != BIASCOLS
        b = signed(words[k:k + FC16R_ROWS]) if words_b else np.zeros(FC16R_ROWS, np.int64)
        acc += b
        k += FC16R_ROWS if words_b else 0
        raw = (words[k:k + ns * st.wbytes] & 0xFFFFFFFF).astype("<u4").tobytes()
        elems = np.frombuffer(raw, "<i1" if st.wbytes == 1 else "<i2").astype(np.int64)
        k += ns * st.wbytes
        e = 0
        wrows = np.zeros((FC16R_ROWS, ns), np.int64)
        for c0 in range(0, ns, chunk):
            width = min(chunk, ns - c0)
            wrows[:, c0:c0 + width] = elems[e:e + FC16R_ROWS * width].reshape(FC16R_ROWS, width)
            e += FC16R_ROWS * width
        acc += x @ wrows[:, :n_in].T
        if st.form == BIASCOLS:  # the bias: K_hi c_hi + c_lo over the last chunk's constant lanes
            acc += wrows[:, n_in:] @ kv[n_in % 8:n_in % 8 + 2]
        assert np.abs(acc).max(initial=0) < 1 << 31
        m = signed(words[k:k + FC16R_ROWS])
        k += FC16R_ROWS
        if st.form == SPLIT:  # Helium's e: bias + 128 sum(w)
            assert np.array_equal(signed(words[k:k + FC16R_ROWS]), b + 128 * wrows.sum(axis=1))
            k += FC16R_ROWS
        y = np.clip((acc * m + (1 << 31)) >> 32, -32768, 32767)
        n = min(FC16R_ROWS, st.n_output - r0)
        out[:, r0:r0 + n] = y[:, :n]
    assert k == len(words)
    if st.order is not None:  # a form's rows back in order
        out[:, st.order[:st.n_output]] = out.copy()
    return out


def fc16r_array(name: str, fc, comment: str, st: Fc16rStream) -> ConstArray:
    """The stream of FC ``fc`` (a loop step's or a head's 16x8 FULLY_CONNECTED) as a C array (a
    form's with its plain twin as ``alt``, written under ``#else``)."""
    rows = fc.weights.comment.split(':')[0]
    kind = 'int8' if st.wbytes == 1 else 'int16, x 2^ls'
    text = {PLAIN: f"per pass of four rows{' their int64 bias' if st.bias else ''}, the rows of {rows} in chunks "
                   f"of eight columns ({kind}), multipliers",
            SPLIT: f"Helium's split form: per pass of four rows{' their int64 bias' if st.bias else ''}, each row "
                   f"of {rows} ({kind}), multipliers, bias + 128 sum(w)",
            BIASCOLS: f"Helium's bias-columns form: the constant input lanes, per pass of four rows the rows of "
                      f"{rows} and two bias columns in chunks of eight columns ({kind}), multipliers"}[st.form]
    return ConstArray(f"{name}_r16", "uint32_t", st.words,
                      f"{comment}: {text} (edgernn_mve_fc.h{'; the plain stream under #else' if st.plain else ''})",
                      alt=None if st.plain is None else st.plain.words)


# --------------------------------------------------------------------------- int8 gates on rows
GATE_CHUNK = 16  # columns per chunk of a gate's rows (one int8x16 of the input: VMLADAVA.S8)


@dataclass
class GateRows:
    """An int8 gate's two FCs on weight rows (``edgernn_mve_fc.h`` EDGERNN_GATE_ROWS_KERNEL), over
    the int8 inputs themselves: the sums are w x, the rows' bias added and the whole times the
    pre-scale 2^(1 + ls) before the requantization (the pairs kernels' int16 pre-scaled copies)."""

    words: np.ndarray  # uint32 values
    n_output: int
    n_x: int
    n_h: int
    rs_x: int  # every x row's right shift, or -1: each row's own (in the stream)
    rs_h: int
    scale_x: int  # the sums' pre-scale, 2^(1 + left shift)
    scale_h: int

    @property
    def ls_x(self) -> int:
        return self.scale_x.bit_length() - 2

    @property
    def ls_h(self) -> int:
        return self.scale_h.bit_length() - 2


def _gate_side(w, bias, multipliers, shifts, zero_point: int, n_rows: int, where: str):
    """One FC of a gate: (per-row bias, weights, m, R, rs, scale) padded to n_rows rows; raises
    :class:`NotFast` unless every row's (sum |w| 128 + |bias|) x scale < 2^31 (then every partial
    sum of int8 products, the sum plus the bias and that times the scale fit 32 bits)."""
    from .fasttensor import requant_rows

    w = np.asarray(w, np.int64)
    n, k = w.shape
    mult, rounding, rs, scale = requant_rows(multipliers, shifts, zero_point, n, where)
    bias = np.asarray(bias, np.int64).reshape(-1)
    if ((np.abs(w).sum(axis=1) * 128 + np.abs(bias)) * scale).max(initial=0) >= 1 << 31:
        raise NotFast(f"{where}: |accumulator| x pre-scale may reach 2^31")
    pad = lambda v, fill=0: np.concatenate([np.asarray(v, np.int64), np.full(n_rows - n, fill, np.int64)])  # noqa: E731
    wp = np.zeros((n_rows, k), np.int64)
    wp[:n] = w
    return pad(bias), wp, pad(mult), pad(rounding), pad(rs, int(rs[0])), scale


def gate_rows_stream(x_side: tuple, h_side: tuple, where: str) -> GateRows:
    """The stream of a gate's FC x and FC h, each ``(w [n][k] in the input's own column order,
    folded bias, multipliers, shifts, output zero point)``, on weight rows: per pass of four rows,
    for x then h, the rows' bias words, their int8 weights in chunks of sixteen columns (per
    chunk row 0's columns, then row 1's, ...), multipliers, rounding terms (zero point x 2^rs +
    2^(rs - 1)) and, when the rows' right shifts differ, each row's shift word rs 2^8 + 24 - rs (the
    C twin's rs; the low byte Helium's VQSHL by 24 - rs, which with VSHR #24 is clamp8(v >> rs));
    raises :class:`NotFast`."""
    n = np.asarray(x_side[0]).shape[0]
    if np.asarray(h_side[0]).shape[0] != n:
        raise NotFast(f"{where}: the two FCs have different rows")
    rows = -(-n // FC16R_ROWS) * FC16R_ROWS
    sides = [_gate_side(*side, rows, where) for side in (x_side, h_side)]
    uniform = [bool(s[4].min() == s[4].max()) for s in sides]
    words: list[int] = []
    for r0 in range(0, rows, FC16R_ROWS):
        for (b, wp, m, rnd, rs, _), same in zip(sides, uniform):
            blk = slice(r0, r0 + FC16R_ROWS)
            words += b[blk].tolist()
            k = wp.shape[1]
            elems = np.concatenate([wp[blk, c0:c0 + GATE_CHUNK].ravel() for c0 in range(0, k, GATE_CHUNK)])
            words += np.frombuffer(elems.astype("<i1").tobytes(), "<u4").astype(np.int64).tolist()
            words += m[blk].tolist() + rnd[blk].tolist() + ([] if same else (rs[blk] * 256 + 24 - rs[blk]).tolist())
    (_, wx, *_, sx), (_, wh, *_, sh) = sides
    return GateRows(words=np.asarray(words, np.int64) & 0xFFFFFFFF, n_output=n, n_x=wx.shape[1], n_h=wh.shape[1],
                    rs_x=int(sides[0][4][0]) if uniform[0] else -1, rs_h=int(sides[1][4][0]) if uniform[1] else -1,
                    scale_x=sx, scale_h=sh)


def _smmlar(a, m, c):
    return c + ((a * m + (1 << 31)) >> 32)


def gate_rows_emulate(st: GateRows, x8, h8, fit, table, mul=None, g=None) -> np.ndarray:
    """What ``edgernn_gate_rows_c`` computes, for int8 inputs ``x8`` [k][n_x], ``h8`` [k][n_h]:
    each FC's rows (bias + sum w x, times the pre-scale) requantized to int8 (SMMLAR, the
    rounding term, >> rs, clamp), the ADD fit ``clamp8((a P1 + b P2 + K) >> S)`` and ``table``
    (256 values, entry 0 = -128); with ``mul`` = (og, ohk, rounding, m, mk, mrs), the h row b is
    first MUL(g, b) (int8 ``g`` [k][n])."""
    words = np.asarray(st.words, np.int64)
    signed = lambda v: ((v & 0xFFFFFFFF) ^ 0x80000000) - 0x80000000  # noqa: E731
    x8, h8 = np.asarray(x8, np.int64), np.asarray(h8, np.int64)
    out = np.zeros((len(x8), st.n_output), np.int64)
    k = 0
    for r0 in range(0, st.n_output, FC16R_ROWS):
        vals = []
        for v, n_in, rs_lit, scale in ((x8, st.n_x, st.rs_x, st.scale_x), (h8, st.n_h, st.rs_h, st.scale_h)):
            acc = np.tile(signed(words[k:k + FC16R_ROWS]), (len(v), 1))
            k += FC16R_ROWS
            elems = np.frombuffer((words[k:k + n_in] & 0xFFFFFFFF).astype("<u4").tobytes(), "<i1").astype(np.int64)
            k += n_in
            e = 0
            for c0 in range(0, n_in, GATE_CHUNK):
                width = min(GATE_CHUNK, n_in - c0)
                acc = acc + v[:, c0:c0 + width] @ elems[e:e + FC16R_ROWS * width].reshape(FC16R_ROWS, width).T
                e += FC16R_ROWS * width
            acc = acc * scale
            assert np.abs(acc).max(initial=0) < 1 << 31
            m, rnd = signed(words[k:k + 4]), signed(words[k + 4:k + 8])
            k += 8
            rs = np.full(FC16R_ROWS, rs_lit) if rs_lit >= 0 else words[k:k + 4] >> 8
            k += 0 if rs_lit >= 0 else 4
            y = _smmlar(acc, m, rnd + np.where(rs > 0, acc >> 31, 0)) >> rs
            vals.append(np.clip(y, -128, 127))
        a, b = vals
        n = min(FC16R_ROWS, st.n_output - r0)
        if mul is not None:
            og, ohk, rounding, mm, mk, mrs = mul
            q = (np.asarray(g, np.int64)[:, r0:r0 + FC16R_ROWS] + og) * ((b[:, :n] << mk) + ohk)
            b = np.clip(_smmlar(q, mm, rounding + (q >> 31 if mrs else 0)) >> mrs, -128, 127)
        p1, p2, kk, s = fit
        v = np.clip((b[:, :n] * p2 + a[:, :n] * p1 + kk) >> s, -128, 127)
        out[:, r0:r0 + n] = np.asarray(table, np.int64)[v + 128]
    assert k == len(words)
    return out
