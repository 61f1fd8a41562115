"""The fast LSTM kernels' data: weight layouts, pre-scales and folded constants, and their checks.

Two layouts, each with an Arm implementation and a C twin that computes the same bits:

* ``pairs`` (Cortex-M4/M7/M33, ``firmware_templates/native/edgernn_pairs.h``): one 32-bit word
  holds two rows x two columns, borrow-adjusted so that SMLAD reads ``256 hi + lo`` and
  SMLAD after SXTB16 reads ``lo``; inputs are int16 pre-scaled by ``2^(1 + left shift)`` so
  that requantization is one SMMLAR and one SSAT.
* ``rows`` (Cortex-M55 Helium, and plain C, ``edgernn_rows.h``): int8 rows in passes of four,
  16 columns at a time, every vector 16-byte aligned and zero-padded.

:func:`fast_lstm` builds a layer's :class:`FastLstm` from its :class:`~.lstm.LstmPlan`, or
returns the reason the layer keeps the reference kernel (``edgernn_lstm_step``): each layout
has preconditions (accumulator bounds, weight ranges, immediate ranges) checked here, at
generation time, never assumed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .plan import ConstArray

#: "reference": edgernn_lstm_step (edgernn_kernels.h); "pairs" / "rows": the fast layouts.
KERNELS = ("reference", "pairs", "rows")

#: The layout each target gets by default. ``pairs`` runs as assembly on cores with the DSP
#: extension and as its C twin elsewhere; ``rows`` as Helium on the M55 and C elsewhere.
TARGET_KERNELS = {"cortex-m4": "pairs", "cortex-m7": "pairs", "cortex-m33": "pairs", "arduino": "pairs",
                  "cortex-m55": "rows", "cortex-m0plus": "rows", "cortex-m3": "rows", "zephyr": "rows",
                  "host": "rows"}

PASS_PAIRS = 3  # row pairs per pass of the pairs kernel (six accumulators in r3-r8)
ROWS_PER_PASS = 4  # rows per pass of the rows kernel (one int32x4 vector of results)
CHUNK = 16  # bytes of a Helium vector
MAX_PAIRS_COLUMNS = 512  # LDRD's immediate offset reaches 1020 bytes: 256 int16 pairs
GATES = ("input", "forget", "cell", "output")


class NotFast(Exception):
    """A precondition of a fast layout does not hold; the message says which."""


def kernel_for_target(target: str) -> str:
    return TARGET_KERNELS.get(target, "rows")


# --------------------------------------------------------------------------- pairs layout
def pair_words(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Two int8 rows of even length -> uint32 words, one per column pair (j, j+1): bytes
    ``lo[j], hi[j] - (lo[j] < 0), lo[j+1], hi[j+1] - (lo[j+1] < 0)``, so that each signed 16-bit
    half reads ``256 hi + lo`` exactly and SXTB16 of the word gives ``(lo[j], lo[j+1])``.

    >>> hex(int(pair_words(np.array([-1, 2]), np.array([3, -4]))[0]))
    '0xfc0202ff'
    """
    lo = np.asarray(lo, np.int64)
    hi = np.asarray(hi, np.int64)
    hi_adj = hi - (lo < 0)
    if hi_adj.size and hi_adj.min() < -128:
        raise NotFast("a weight of -128 sits in a row pair's high row next to a negative weight")
    b = np.stack([lo[0::2], hi_adj[0::2], lo[1::2], hi_adj[1::2]], axis=1) & 0xFF
    words = b[:, 0] | (b[:, 1] << 8) | (b[:, 2] << 16) | (b[:, 3] << 24)
    half = (words & 0xFFFF).astype(np.int64)
    assert np.array_equal(np.where(half >= 32768, half - 65536, half), 256 * hi[0::2] + lo[0::2])
    return words.astype(np.uint32)


def _pad_to(w: np.ndarray, rows: int, cols: int) -> np.ndarray:
    out = np.zeros((rows, cols), np.int64)
    out[:w.shape[0], :w.shape[1]] = w
    return out


def _pairs_product(w: np.ndarray, bias: np.ndarray, scale: int, what: str) -> list[list[int]]:
    """One product (rows = units, zero row / column padding to even) as the words of each pass:
    start words (B, A) of each pair, then one word per pair for every column pair."""
    n, k = w.shape
    w = _pad_to(w, n + n % 2, k + k % 2)
    bias = np.concatenate([np.asarray(bias, np.int64), np.zeros(n % 2, np.int64)])
    bound = (np.abs(w).sum(axis=1) * 128 + np.abs(bias)) * scale
    if bound.max() >= 1 << 31:
        raise NotFast(f"{what}: |accumulator| x pre-scale may reach {int(bound.max())} >= 2^31")
    if bound[1::2].max() >= 1 << 23:
        raise NotFast(f"{what}: a row pair's high row may reach {int(bound[1::2].max())} >= 2^23")
    pairs = len(w) // 2
    words = [pair_words(w[2 * p], w[2 * p + 1]) for p in range(pairs)]
    start = [(int(bias[2 * p]) * scale, (int(bias[2 * p]) + 256 * int(bias[2 * p + 1])) * scale)
             for p in range(pairs)]
    passes = []
    for p0 in range(0, pairs, PASS_PAIRS):
        ps = range(p0, min(p0 + PASS_PAIRS, pairs))
        block = [v for p in ps for v in start[p]]
        for c in range(w.shape[1] // 2):
            block += [int(words[p][c]) for p in ps]
        passes.append(block)
    return passes


def pre_scale(shift: int, what: str) -> int:
    """2^(1 + max(shift, 0)): the factor the int16 inputs of a product carry (int8 x it fits int16)."""
    left = max(int(shift), 0)
    if left > 7:
        raise NotFast(f"{what}: left shift {shift} would push the pre-scaled int8 input past int16")
    return 1 << (1 + left)


@dataclass
class PairsGate:
    gate: str
    stream: ConstArray
    passes_end: int  # words of the stream in passes of three pairs
    x_copy: int
    h_copy: int
    input_multiplier: int
    input_shift: int
    recurrent_multiplier: int
    recurrent_shift: int

    @property
    def input_rs(self) -> int:
        return max(-self.input_shift, 0)

    @property
    def recurrent_rs(self) -> int:
        return max(-self.recurrent_shift, 0)

    @property
    def input_rounding(self) -> int:
        return 1 << (self.input_rs - 1) if self.input_rs else 0

    @property
    def recurrent_rounding(self) -> int:
        return 1 << (self.recurrent_rs - 1) if self.recurrent_rs else 0

    @property
    def kernel(self) -> str:
        return f"x{self.input_rs}_h{self.recurrent_rs}"


# --------------------------------------------------------------------------- rows layout
def rows_stream(wx: np.ndarray, wh: np.ndarray, rows: int = ROWS_PER_PASS) -> np.ndarray:
    """int8 weights of one gate, per pass of ``rows`` rows: for each 16-column chunk of the input
    product, each row's columns of that chunk (the last chunk holds n_input % 16 columns), then
    the same for the recurrent product; 16 zero bytes at the end (a Helium load of the last
    chunk reads up to 15 bytes past it, and those meet the zero padding of the vectors)."""
    out = []
    for r0 in range(0, len(wx), rows):
        for w in (wx, wh):
            for c in range(0, w.shape[1], CHUNK):
                out += [w[r, c:c + CHUNK] for r in range(r0, r0 + rows)]
    out.append(np.zeros(CHUNK, np.int64))
    return np.concatenate(out).astype(np.int8)


@dataclass
class RowsGate:
    gate: str
    weights: ConstArray
    input_bias: ConstArray
    recurrent_bias: ConstArray
    input_multiplier: int
    input_shift: int
    recurrent_multiplier: int
    recurrent_shift: int

    @property
    def kernel(self) -> str:
        def part(s: int) -> str:
            return f"l{s}" if s > 0 else f"r{-s}"
        return f"x{part(self.input_shift)}_h{part(self.recurrent_shift)}"


# --------------------------------------------------------------------------- the layer
@dataclass
class FastLstm:
    kernel: str  # "pairs" | "rows"
    n_input: int
    n_cell: int
    units: int  # n_cell padded: to even (pairs), to a multiple of 4 (rows)
    gates: list
    x_scales: list[int]  # pairs: the distinct input pre-scales (one int16 copy of x each)
    h_scales: list[int]  # pairs: the distinct hidden pre-scales
    tail: dict  # edgernn_lstm_tail_params, field -> value

    @property
    def kernels(self) -> list:
        """The distinct kernel instances, one per (requantization shifts) of the gates."""
        seen = {}
        for g in self.gates:
            seen.setdefault(g.kernel, g)
        return list(seen.values())

    @property
    def pairs(self) -> int:
        return self.units // 2

    @property
    def x_len(self) -> int:
        return self.n_input + self.n_input % 2

    @property
    def h_len(self) -> int:
        return self.n_cell + self.n_cell % 2

    @property
    def x_chunks(self) -> int:
        return -(-self.n_input // CHUNK)

    @property
    def h_chunks(self) -> int:
        return -(-self.n_cell // CHUNK)

    @property
    def scratch_bytes(self) -> int:
        """RAM of the layer's own vectors (the gate pre-activations are shared, see NativePlan)."""
        if self.kernel == "pairs":
            return 2 * (len(self.x_scales) * self.x_len + len(self.h_scales) * self.h_len)
        return CHUNK * (self.x_chunks + self.h_chunks)

    @property
    def tail_asm(self) -> dict | None:
        """The literals of the pairs layout's assembly tail (EDGERNN_PAIRS_TAIL_KERNEL), or None
        when the layer's constants are outside the forms it implements (the C loop then runs)."""
        t = self.tail
        s1, s2 = -t["input_mul_shift"], -t["forget_mul_shift"]
        mult, rs, hs = t["cell_tanh_multiplier"], -t["hidden_shift"], self.h_scales
        k = (mult // 3).bit_length() - 1 if mult > 0 and mult % 3 == 0 else -1
        if (self.kernel != "pairs" or t["input_mul_multiplier"] != 1 << 30 or t["forget_mul_multiplier"] != 1 << 30
                or not (14 <= s1 <= 29 and 14 <= s2 <= 29) or not 0 <= t["cell_tanh_right_shift"] <= 15
                or not (0 <= k <= 7 and mult == 3 << k) or not (1 <= rs <= 22) or not 0 <= t["cell_clip"] <= 32767
                or len(hs) != 1 or hs[0] & (hs[0] - 1) or 6 * self.units > 4095):
            return None
        return dict(s1=s1, s2=s2, clip=t["cell_clip"], tk=k, trs=t["cell_tanh_right_shift"], hm=t["hidden_multiplier"], hrs=rs,
                    hr=(1 << (rs - 1)) + t["hidden_zero_point"] * (1 << rs), h16_shift=hs[0].bit_length() - 1)

    @property
    def arrays(self) -> list[ConstArray]:
        if self.kernel == "pairs":
            return [g.stream for g in self.gates]
        return [a for g in self.gates for a in (g.weights, g.input_bias, g.recurrent_bias)]


def _tail(layer) -> dict:
    return dict(input_mul_multiplier=layer.input_mul[0], input_mul_shift=layer.input_mul[1],
                forget_mul_multiplier=layer.forget_mul[0], forget_mul_shift=layer.forget_mul[1],
                cell_clip=layer.quantized_cell_clip, cell_tanh_multiplier=layer.cell_tanh[0],
                cell_tanh_right_shift=layer.cell_tanh[1], hidden_multiplier=layer.hidden_mul[0],
                hidden_shift=layer.hidden_mul[1], hidden_zero_point=layer.hidden_zero_point)


def _gate_arrays(layer) -> tuple[list, list, list, list]:
    n, ni = layer.n_cell, layer.n_input
    wx = [np.asarray(layer.input_weights.values[g, :, :ni], np.int64) for g in range(4)]
    wh = [np.asarray(layer.recurrent_weights.values[g, :, :n], np.int64) for g in range(4)]
    bx = list(np.asarray(layer.input_bias.values, np.int64).reshape(4, n))
    bh = list(np.asarray(layer.recurrent_bias.values, np.int64).reshape(4, n))
    return wx, wh, bx, bh


def _pairs(layer) -> FastLstm:
    n, ni = layer.n_cell, layer.n_input
    if max(n, ni) + 1 > MAX_PAIRS_COLUMNS:
        raise NotFast(f"{max(n, ni)} columns: the unrolled kernel addresses at most {MAX_PAIRS_COLUMNS}")
    wx, wh, bx, bh = _gate_arrays(layer)
    sx = [pre_scale(g.input_shift, f"{g.gate} gate input product") for g in layer.gates]
    sh = [pre_scale(g.recurrent_shift, f"{g.gate} gate recurrent product") for g in layer.gates]
    x_scales, h_scales = sorted(set(sx)), sorted(set(sh))
    gates = []
    p = f"lstm{layer.index}"
    for k, g in enumerate(layer.gates):
        px = _pairs_product(wx[k], bx[k], sx[k], f"{g.gate} gate input product")
        ph = _pairs_product(wh[k], bh[k], sh[k], f"{g.gate} gate recurrent product")
        full = (n + n % 2) // 2 // PASS_PAIRS
        words = [v for a, b in zip(px, ph) for v in a + b]
        end = sum(len(a) + len(b) for a, b in zip(px[:full], ph[:full]))
        values = np.asarray(words, np.int64) & 0xFFFFFFFF
        gates.append(PairsGate(
            gate=g.gate,
            stream=ConstArray(
                f"{p}_{g.gate}_gate", "uint32_t", values,
                f"{g.gate} gate, tensors {g.input_weights_tensor.split(' (')[0]} (input) and "
                f"{g.recurrent_weights_tensor.split(' (')[0]} (recurrent) with tensor {g.bias_tensor}: "
                f"row-pair words, inputs pre-scaled by {sx[k]} / {sh[k]} (edgernn_pairs.h)"),
            passes_end=end, x_copy=x_scales.index(sx[k]), h_copy=h_scales.index(sh[k]),
            input_multiplier=g.input_multiplier, input_shift=g.input_shift,
            recurrent_multiplier=g.recurrent_multiplier, recurrent_shift=g.recurrent_shift))
    return FastLstm(kernel="pairs", n_input=ni, n_cell=n, units=n + n % 2, gates=gates, x_scales=x_scales,
                    h_scales=h_scales, tail=_tail(layer))


def _rows(layer) -> FastLstm:
    n, ni = layer.n_cell, layer.n_input
    units = -(-n // ROWS_PER_PASS) * ROWS_PER_PASS
    wx, wh, bx, bh = _gate_arrays(layer)
    gates = []
    p = f"lstm{layer.index}"
    for k, g in enumerate(layer.gates):
        pad = units - n
        wxk, whk = _pad_to(wx[k], units, ni), _pad_to(wh[k], units, n)
        gates.append(RowsGate(
            gate=g.gate,
            weights=ConstArray(
                f"{p}_{g.gate}_gate", "int8_t", rows_stream(wxk, whk),
                f"{g.gate} gate, tensors {g.input_weights_tensor.split(' (')[0]} (input) and "
                f"{g.recurrent_weights_tensor.split(' (')[0]} (recurrent): rows in passes of {ROWS_PER_PASS}, "
                f"16 columns at a time{f', {pad} zero rows' if pad else ''} (edgernn_rows.h)"),
            input_bias=ConstArray(f"{p}_{g.gate}_input_bias", "int32_t",
                                  np.concatenate([bx[k], np.zeros(pad, np.int64)]),
                                  f"tensor {g.bias_tensor} - input zero point ({layer.input_zero_point}) x row sums"),
            recurrent_bias=ConstArray(f"{p}_{g.gate}_recurrent_bias", "int32_t",
                                      np.concatenate([bh[k], np.zeros(pad, np.int64)]),
                                      f"-hidden zero point ({layer.hidden_zero_point}) x row sums"),
            input_multiplier=g.input_multiplier, input_shift=g.input_shift,
            recurrent_multiplier=g.recurrent_multiplier, recurrent_shift=g.recurrent_shift))
    return FastLstm(kernel="rows", n_input=ni, n_cell=n, units=units, gates=gates, x_scales=[], h_scales=[],
                    tail=_tail(layer))


def fast_lstm(layer, kernel: str) -> tuple[FastLstm | None, str]:
    """(the layer's fast form, "") or (None, why it keeps the reference kernel)."""
    if kernel == "reference":
        return None, "the reference kernel was asked for"
    try:
        return (_pairs(layer) if kernel == "pairs" else _rows(layer)), ""
    except NotFast as e:
        return None, str(e)
