"""The gate kernel of an int8 loop step (``convert --state int8``: GRU z and r, SimpleRNN).

Four consecutive step ops -- FULLY_CONNECTED of x, FULLY_CONNECTED of h (the same rows), their
ADD, a LOGISTIC / TANH table -- where nothing else reads the two FC outputs or the sum, run as
one kernel (``edgernn_pairs.h`` ``EDGERNN_FC8_GATE_KERNEL``, its C twin ``edgernn_fc8_gate_c``):
per pass of three row pairs the x product and the h product on the row-pair words, each row
requantized to int8 exactly as the FC8 kernel does, then TFLM's ADD as the exact fit
``clamp8((a P1 + b P2 + K) >> S)`` (:func:`.fastloop.fit_add`) and the table, in registers.
The GRU candidate (reset_after=True) has a MUL between: h_c = tanh(W_x x + r * (W_h h + b)),
so the kernel's MUL form applies TFLM's MUL of the h row by a vector computed before (r) in
the pre-scaled SMMLAR form (:func:`.fastloop.mul_prescaled`) first. Against two FC8 calls and a
fused loop this saves per unit the int8 stores and loads, the loop's control and the calls
(Cortex-M4 100 x 6: SimpleRNN(32) 205,512 -> 190,412 instructions, GRU(32) 677,195 -> 631,895).
An x FC of at most :data:`X_ROWS` inputs (sensor features) holds its rows one by one instead
of in pairs (:func:`_x_rows`): the input's int16 pairs stay in registers and a row is one LDM
and three SMLADs, with no pair to decode (GRU(32) 601,495 -> 578,395).
On the ``rows`` kernel choice the same gate runs on weight rows (:func:`.fcrows.gate_rows_stream`,
``edgernn_mve_fc.h`` EDGERNN_GATE_ROWS_KERNEL: Helium on the Cortex-M55, four rows a pass).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .fastlstm import PASS_PAIRS, NotFast
from .fasttensor import fc8_stream, requant_rows
from .fcrows import gate_rows_stream
from .plan import ConstArray


@dataclass
class FastGate:
    """FULLY_CONNECTED x, FULLY_CONNECTED h, their ADD and a LOGISTIC / TANH table in one kernel
    (edgernn_pairs.h EDGERNN_FC8_GATE_KERNEL): neither FC output nor the sum reaches memory."""

    name: str
    stream: ConstArray
    passes_end: int
    pairs: int
    n_x: int
    n_h: int
    rs_x: int
    rs_h: int
    fit: tuple  # (P1 of the x row, P2 of the h row, K, S): clamp8((a P1 + b P2 + K) >> S) = ADD
    table: str  # C name of the LOGISTIC / TANH table
    x: object  # fastloop.Vector
    h: object
    output: str
    ops: list = field(default_factory=list)  # the StepOps it replaces
    # a MUL of the h row by an int8 vector g first (GRU candidate: r * (W_h h + b)): (C expression
    # of g, og, ohk, rounding, m, mk, mrs) of the pre-scaled form (fastloop.mul_prescaled)
    mul: tuple | None = None
    direct: set = field(default_factory=set)  # the state it writes in place (no copy at the end)
    xr: int = 0  # 1: the x FC's rows one by one (an input of at most X_ROWS values, _x_rows)
    rows: bool = False  # on weight rows (edgernn_mve_fc.h EDGERNN_GATE_ROWS_KERNEL: Helium on the M55)
    # rows: the int8 inputs' C expressions (read in place), (ls_x, ls_h), 1 if the output may overlap h
    x_src: str = ""
    h_src: str = ""
    ls: tuple = (0, 0)
    alias: int = 0

    @property
    def output_c(self) -> str:
        return self.output if "$scratch" in self.output else self.output.replace("scratch", "$scratch")

    @property
    def kernel(self) -> str:
        rs = "_".join("r" + str(r) if r >= 0 else "rows" for r in (self.rs_x, self.rs_h))
        mul = f"_m{self.mul[5]}_{self.mul[6]}" if self.mul else ""
        if self.rows:
            return (f"gater_o{2 * self.pairs}_x{self.n_x}_h{self.n_h}_{rs}_l{self.ls[0]}{self.ls[1]}_s{self.fit[3]}{mul}"
                    + ("_a" if self.alias else ""))
        return f"gate_p{self.pairs}_x{self.n_x}_h{self.n_h}_{rs}_s{self.fit[3]}{mul}" + ("_xr" if self.xr else "")

    @property
    def x_c(self) -> str:
        return self.x_src if "$scratch" in self.x_src else self.x_src.replace("scratch", "$scratch")

    @property
    def h_c(self) -> str:
        return self.h_src if "$scratch" in self.h_src else self.h_src.replace("scratch", "$scratch")

    @property
    def g_c(self) -> str:
        g = self.mul[0]
        return g if "$scratch" in g else g.replace("scratch", "$scratch")


def _overlap(a, b) -> bool:
    return a[0] == b[0] and a[1] < b[2] and b[1] < a[2]


def _mul(ops, k, mul, mul_prescaled):
    """The MUL of the h row (op k + 1's output) by a vector g computed before op k, as the
    kernel's tuple, or None."""
    fb, out = ops[k + 1].regions[-1], ops[k + 4].regions[-1]
    if fb not in mul.regions[:2] or mul.regions[0] == mul.regions[1]:
        return None
    gi = 1 - mul.regions[:2].index(fb)
    g = mul.regions[gi]
    if _overlap(g, out) and g != out:  # the kernel writes only the table's output (row i after g[i])
        return None
    p = mul.params
    form = mul_prescaled(p)
    if form is None or (p.activation_min, p.activation_max) != (-128, 127):
        return None
    m, mk, mrs, rounding = form
    og, oh = (p.input1_offset, p.input2_offset) if gi == 0 else (p.input2_offset, p.input1_offset)
    return (mul.inputs[gi], og, oh * (1 << mk), rounding, m, mk, mrs)


def find_gate(layer, ops, k, readers, state_writers, vector_for, fit_add, mul_prescaled,
              pairs_order, rows: bool = False) -> FastGate | None:
    """The gate kernel of ops k..k+3 (FC, FC, their ADD, a table, nothing else reading the FC
    outputs or the sum) or k..k+4 (FC, FC, a MUL of the second FC's output, the ADD of the first
    and the product, a table), or None."""
    mul = None
    if k + 4 < len(ops) and ops[k + 2].kind == "mul":
        if readers[k] != {k + 3} or readers[k + 1] != {k + 2} or readers[k + 2] != {k + 3}:
            return None
        mul = _mul(ops, k, ops[k + 2], mul_prescaled)
        if mul is None:
            return None
        fa, fb, fm, add, lut = ops[k:k + 5]
        if {k, k + 1, k + 2, k + 3} & state_writers or readers[k + 3] != {k + 4}:
            return None
        second = fm.regions[-1]
    elif k + 3 < len(ops):
        fa, fb, add, lut = ops[k:k + 4]
        if readers[k] != {k + 2} or readers[k + 1] != {k + 2} or readers[k + 2] != {k + 3}:
            return None
        if {k, k + 1, k + 2} & state_writers:
            return None
        second = fb.regions[-1]
    else:
        return None
    if (fa.kind, fb.kind, add.kind, lut.kind) != ("fc", "fc", "add", "lut") or lut.regions[0] != add.regions[-1]:
        return None
    if add.regions[:2] == [fa.regions[-1], second]:
        swap = False
    elif add.regions[:2] == [second, fa.regions[-1]]:
        swap = True
    else:
        return None
    p = add.params
    if (p.activation_min, p.activation_max) != (-128, 127) or fa.params.n_output != fb.params.n_output:
        return None
    fit = fit_add(p)
    if fit is None:
        return None
    p1, p2, kk, sh = fit
    if swap:
        p1, p2 = p2, p1
    if rows:
        return _gate_rows(layer, ops, k, readers, vector_for, pairs_order, fa, fb, add, lut, mul, (p1, p2, kk, sh))
    try:
        streams = []
        for f in (fa, fb):
            fc = f.params
            where = f"loop {layer.index} op {f.op_index} (FULLY_CONNECTED)"
            if (fc.activation_min, fc.activation_max) != (-128, 127):
                raise NotFast(f"{where}: fused activation {fc.activation}")
            w = np.asarray(fc.weights.values, np.int64).reshape(fc.n_output, fc.n_input)[:, pairs_order(fc.n_input)]
            args = (w, fc.bias.values, fc.multipliers.values, fc.shifts.values, fc.output_zero_point, where)
            streams.append(_x_rows(*args) if f is fa and fc.n_input <= X_ROWS else fc8_stream(*args))
    except NotFast:
        return None
    sa, sb = streams
    words, end = _interleave(sa, sb)
    xr = int(isinstance(sa, XRows))
    name = f"l{layer.index}_op{fa.op_index}"
    stream = ConstArray(
        f"{name}_gatew", "uint32_t", words,
        f"{fa.comment}, {fb.comment}, their {add.comment.split(' -> ')[0]} and {lut.comment.split(' -> ')[0]}: "
        f"per pass of three row pairs the first FC's "
        f"{'rows (start word, int16 weight pairs)' if xr else 'row-pair words'} (input pre-scaled by {sa.scale}), "
        f"start words and each row's multiplier, zero point x 2^rs + rounding"
        f"{'' if sa.rs >= 0 else ', right shift'}, then the second FC's (pre-scale {sb.scale}) (edgernn_pairs.h)")
    gate = FastGate(name=name, stream=stream, passes_end=end, pairs=sa.pairs, n_x=sa.n_input, n_h=sb.n_input,
                    rs_x=sa.rs, rs_h=sb.rs, fit=(p1, p2, kk, sh), table=lut.params.name,
                    x=vector_for(fa.inputs[0], sa.n_input, sa.scale), h=vector_for(fb.inputs[0], sb.n_input, sb.scale),
                    output=lut.output, ops=ops[k:k + (5 if mul else 4)], mul=mul, xr=xr)
    st = gate_state(layer, ops, k + len(gate.ops) - 1, readers)
    if st is not None:  # the kernel writes the new state in place
        gate.output = st.name
        gate.direct = {st.name}
    return gate


def _gate_rows(layer, ops, k, readers, vector_for, pairs_order, fa, fb, add, lut, mul, fit) -> FastGate | None:
    """find_gate's kernel on weight rows (fcrows.gate_rows_stream) over the int8 inputs in place,
    or None (an output that may overlap x, or overlap an h of more than GATE_COPY values)."""
    sides = []
    for f in (fa, fb):
        fc = f.params
        if (fc.activation_min, fc.activation_max) != (-128, 127):
            return None
        w = np.asarray(fc.weights.values, np.int64).reshape(fc.n_output, fc.n_input)
        sides.append((w, fc.bias.values, fc.multipliers.values, fc.shifts.values, fc.output_zero_point))
    try:
        st = gate_rows_stream(*sides, f"loop {layer.index} op {fa.op_index} (gate)")
    except NotFast:
        return None
    if st.n_output % 2:  # (the kernel's name counts row pairs)
        return None
    name = f"l{layer.index}_op{fa.op_index}"
    stream = ConstArray(
        f"{name}_gater", "uint32_t", st.words,
        f"{fa.comment}, {fb.comment}, their {add.comment.split(' -> ')[0]} and {lut.comment.split(' -> ')[0]}: per "
        f"pass of four rows, for each FC the rows' bias words (the sum of bias and int8 products taken times "
        f"{st.scale_x} / {st.scale_h}), int8 weights in chunks of sixteen columns, multipliers, zero point x 2^rs + "
        f"rounding{'' if min(st.rs_x, st.rs_h) >= 0 else ', right shifts'} (edgernn_mve_fc.h)")
    gate = FastGate(name=name, stream=stream, passes_end=0, pairs=st.n_output // 2, n_x=st.n_x, n_h=st.n_h,
                    rs_x=st.rs_x, rs_h=st.rs_h, fit=fit, table=lut.params.name, x=None, h=None,
                    output=lut.output, ops=ops[k:k + (5 if mul else 4)], mul=mul, rows=True,
                    x_src=fa.inputs[0], h_src=fb.inputs[0], ls=(st.ls_x, st.ls_h))
    stt = gate_state(layer, ops, k + len(gate.ops) - 1, readers)
    if stt is not None and st.n_h <= GATE_COPY and stt.name != gate.x_src:  # the kernel writes the new state in place (h read whole first)
        gate.output = stt.name
        gate.direct = {stt.name}
        gate.alias = 1
    out = lut.regions[-1]
    if not gate.direct and _overlap(out, fa.regions[0]):
        return None
    if not gate.direct and _overlap(out, fb.regions[0]):
        if st.n_h > GATE_COPY:
            return None
        gate.alias = 1
    return gate


#: an h of at most this many values may share memory with the output (edgernn_mve_fc.h EDGERNN_GATE_ROWS_COPY)
GATE_COPY = 64


def gate_state(layer, ops, j, readers):
    """The state a gate kernel may write in place: op j's output is its new value and nothing
    after op j reads that output or the state (the kernel reads the state's int16 copy)."""
    out = ops[j].output
    sources = [st.source for st in layer.states]
    if readers[j] or sources.count(out) != 1 or any(o[1] == out for o in layer.outputs):
        return None
    st = layer.states[sources.index(out)]
    if st.name in sources or any(st.name in ops[i].inputs for i in range(j + 1, len(ops))):
        return None
    return st


#: an x FC of at most this many inputs holds its rows one by one (three input pairs in registers)
X_ROWS = 6


@dataclass
class XRows:
    """The x FC's passes with its rows one by one (EDGERNN_FC8_GATE_KERNEL's xr = 1)."""

    passes: list  # per pass of up to three row pairs: each row's start word and weight words, then its requantization
    pairs: int
    n_input: int
    rs: int
    scale: int


def _x_rows(w, bias, multipliers, shifts, zero_point: int, where: str) -> XRows:
    """An x FC's passes, rows one by one: per row the pre-scaled bias and (n + 1) / 2 words of two
    int16 weights (input order: the loop vector's), then per row m, R and, when the rows' right
    shifts differ, rs (as fc8_stream); raises NotFast."""
    n, k = w.shape
    if n % 2:
        raise NotFast(f"{where}: {n} outputs (the kernel writes row pairs)")
    mult, rounding, rs, scale = requant_rows(multipliers, shifts, zero_point, n, where)
    wp = np.zeros((n, k + k % 2), np.int64)
    wp[:, :k] = w
    bias = np.asarray(bias, np.int64).reshape(-1)
    if ((np.abs(wp).sum(axis=1) * 128 + np.abs(bias)) * scale).max() >= 1 << 31:
        raise NotFast(f"{where}: |accumulator| x pre-scale may reach 2^31")
    words = (wp[:, 0::2] & 0xFFFF) | ((wp[:, 1::2] & 0xFFFF) << 16)
    uniform = rs.min() == rs.max()
    passes = []
    for p0 in range(0, n // 2, PASS_PAIRS):
        rows = range(2 * p0, min(2 * (p0 + PASS_PAIRS), n))
        block = [v for r in rows for v in [int(bias[r]) * scale, *words[r].tolist()]]
        block += [v for r in rows for v in [int(mult[r]), int(rounding[r])] + ([] if uniform else [int(rs[r])])]
        passes.append([v & 0xFFFFFFFF for v in block])
    return XRows(passes=passes, pairs=n // 2, n_input=k, rs=int(rs[0]) if uniform else -1, scale=scale)


def _interleave(sa, sb) -> tuple[np.ndarray, int]:
    """The two FC8 streams pass by pass (x pass, then h pass), and the end of the three-pair passes."""
    def passes(st):
        if isinstance(st, XRows):
            return st.passes
        pairs, out, pos = st.pairs, [], 0
        per_row = 2 if st.rs >= 0 else 3
        cols = (st.n_input + 1) // 2
        for p0 in range(0, pairs, 3):
            npairs = min(3, pairs - p0)
            size = npairs * (2 + cols) + 2 * npairs * per_row
            out.append(st.words[pos:pos + size])
            pos += size
        assert pos == len(st.words)
        return out
    words, end = [], 0
    full = sa.pairs // 3
    for i, (a, b) in enumerate(zip(passes(sa), passes(sb))):
        words += list(a) + list(b)
        if i + 1 == full:
            end = len(words)
    return np.asarray(words, np.int64), end
