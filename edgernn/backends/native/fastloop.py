"""The fast form of a WHILE-loop step (GRU, SimpleRNN, any cell the loop plan holds).

:func:`fast_loop` takes the :class:`~.loop.LoopPlan` that :mod:`.loop` reads from the body
graph (its ops in order, C names of their operands) and decides, op by op, how the step runs
fast; anything it cannot prove exact keeps the reference kernel of ``edgernn_kernels.h``:

* FULLY_CONNECTED on the ``pairs`` layout (Cortex-M4/M7/M33 assembly, its C twin elsewhere;
  ``edgernn_pairs.h``): the row-pair words of the LSTM kernels over an int16 copy of the input
  pre-scaled by ``2^(1 + left shift)``, each row requantized by one SMMLAR and one SSAT with
  its own (per-channel) multiplier, the output zero point folded into the rounding term;
* ADD / SUB / MUL / LOGISTIC / TANH: consecutive elementwise ops become one loop over the
  units with every intermediate in a register, each op in the cheapest form that equals
  TFLM's for all 65,536 pairs of int8 inputs, checked here at generation time:
  ``clamp((a P1 + b P2 + K) >> S)`` (ADD / SUB, three instructions), the pre-scaled SMMLAR
  requantization (MUL), a table (LOGISTIC / TANH); else the reference formula, inlined.

The loop code owns the graph layout; this module only needs a plan of step ops, so a change of
layout (merged FCs, other cells) reaches the fast kernels without touching them.

Both state layouts (``convert --state``, :mod:`edgernn.backends.tflm.cells`) are fast:

* ``int8``: one FULLY_CONNECTED per gate and side on the int8 row-pair kernel above, or :mod:`.fastgate`;
* ``int16`` (the default): one 16x8 FULLY_CONNECTED per side on ``EDGERNN_FC16W_KERNEL``
  (``edgernn_fc16w.h``: int16 weight pairs, 32-bit SMLAD sums, four rows a pass, each row's
  left shift folded into its weights and TFLM's int64-bias requantization as one SMMULR, proved
  exact by :func:`.fasttensor.fc16w_stream`; where that bound fails, ``EDGERNN_FC16_KERNEL`` of
  ``edgernn_pairs.h``: the row-pair words with the high row's sum in 64 bits, proved exact by
  :func:`.fasttensor.fc16_stream`; on the ``rows`` kernel choice weight rows, :mod:`.fcrows`:
  Helium on the M55), SPLIT parts read in place, the int16 ADD / SUB / MUL /
  LOGISTIC / TANH / QUANTIZE / CAST fused into the loops over the units (TFLM's formulas, one
  element at a time), and h written in place.

A run of fused ops never reads, from memory, part of a vector the same run writes (or writes
over one it still reads): the memory each operand occupies (``StepOp.regions``) decides where
a run ends. Anything else keeps the reference kernel of that op (``layer.fast_reason``).
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field

import numpy as np

from ... import fixedpoint as fp
from .fastlstm import NotFast
from .fastgate import find_gate
from .fastloop16 import INT16_KINDS, smmlar, elementwise16
from .fastloop_mve import MVE_KERNELS, vector_forms
from .fasttensor import fc8_stream, fc16_stream, fc16w_stream
from .fcrows import fc16r_array, fc16r_stream
from .plan import ConstArray

#: the FULLY_CONNECTED layout each kernel choice gives the loop layers: row pairs everywhere (the
#: assembly on cores with the DSP extension, M4/M7/M33/M55; the C twin elsewhere, still fewer
#: instructions than the reference kernel on the Cortex-M3)
FC_LAYOUT = {"pairs": "pairs", "rows": "pairs", "reference": "reference"}
#: the kernel choices whose 16x8 FCs run on weight rows (fcrows.py: Helium on the M55, C twin elsewhere)
FC16_ROWS = {"rows"}

_A, _B = (g.ravel() for g in np.meshgrid(np.arange(-128, 128, dtype=np.int64),
                                         np.arange(-128, 128, dtype=np.int64), indexing="ij"))


# --------------------------------------------------------------------------- the exact ops
def add_exact(p, a, b) -> np.ndarray:
    """TFLM's int8 ADD / SUB (reference_integer_ops::AddElementwise), vectorized."""
    sa = fp.multiply_by_quantized_multiplier((p.input1_offset + a) * (1 << 20), *p.input1)
    sb = fp.multiply_by_quantized_multiplier((p.input2_offset + b) * (1 << 20), *p.input2)
    raw = sa - sb if p.subtract else sa + sb
    y = fp.multiply_by_quantized_multiplier(raw, *p.output) + p.output_offset
    return np.clip(y, p.activation_min, p.activation_max)


def mul_exact(p, a, b) -> np.ndarray:
    """TFLM's int8 MUL (reference_integer_ops::MulElementwise), vectorized."""
    y = fp.multiply_by_quantized_multiplier((p.input1_offset + a) * (p.input2_offset + b), *p.multiplier)
    return np.clip(y + p.output_offset, p.activation_min, p.activation_max)


def _clamp(v, lo: int, hi: int) -> np.ndarray:
    return np.clip(v, lo, hi)


# --------------------------------------------------------------------------- fitted forms
def fit_add(p) -> tuple[int, int, int, int] | None:
    """(P1, P2, K, S) with ``clamp((a P1 + b P2 + K) >> S) == ADD(a, b)`` for every int8 a, b and
    ``|a P1 + b P2 + K| < 2^31``, or None. The gains come from TFLM's multipliers; the search
    tries the largest S that fits 32 bits and a few integers around each gain, and K is then
    the intersection of one interval per input pair (empty: the next candidate)."""
    want = add_exact(p, _A, _B)
    out_gain = p.output[0] * 2.0 ** (p.output[1] - 31)
    g1 = p.input1[0] * 2.0 ** (p.input1[1] - 31 + 20) * out_gain
    g2 = p.input2[0] * 2.0 ** (p.input2[1] - 31 + 20) * out_gain * (-1 if p.subtract else 1)
    lo, hi = p.activation_min, p.activation_max
    inner_lo, inner_hi = want > lo, want < hi
    top = int(np.floor(np.log2((1 << 31) / (384.0 * (abs(g1) + abs(g2)) + 256.0))))
    for s in range(min(top, 30), max(top - 4, 8), -1):
        base1, base2 = int(round(g1 * 2 ** s)), int(round(g2 * 2 ** s))
        for d1 in (0, 1, -1, 2, -2):
            for d2 in (0, 1, -1, 2, -2):
                p1, p2 = base1 + d1, base2 + d2
                v = _A * p1 + _B * p2
                k_lo = int(np.max((want << s) - v, where=inner_lo, initial=-(1 << 62)))
                k_hi = int(np.min(((want + 1) << s) - v, where=inner_hi, initial=1 << 62)) - 1
                if k_lo > k_hi:
                    continue
                k = max(k_lo, min(k_hi, (k_lo + k_hi) // 2))
                got = _clamp((v + k) >> s, lo, hi)
                if np.abs(v + k).max() < (1 << 31) and np.array_equal(got, want):
                    return p1, p2, k, s
    return None


def fit_mul(p) -> tuple[int, int, int] | None:
    """(P, K, S) with ``clamp((q P + K + (q >> 31)) >> S) == MUL(a, b)`` for every int8 a, b, where
    q = (a + o1)(b + o2) (the -1 of a negative product rounds ties away from zero, as TFLM's
    RoundingDivideByPOT does), or None."""
    want = mul_exact(p, _A, _B)
    q = (p.input1_offset + _A) * (p.input2_offset + _B)
    neg = (q < 0).astype(np.int64)
    gain = p.multiplier[0] * 2.0 ** (p.multiplier[1] - 31)
    lo, hi = p.activation_min, p.activation_max
    inner_lo, inner_hi = want > lo, want < hi
    qmax = max(int(np.abs(q).max()), 1)
    top = int(np.floor(np.log2((1 << 30) / (qmax * gain + 256.0))))
    for s in range(min(top, 30), max(top - 3, 4), -1):
        base = int(round(gain * 2 ** s))
        for d in (0, 1, -1, 2, -2):
            pp = base + d
            v = q * pp - neg
            k_lo = int(np.max((want << s) - v, where=inner_lo, initial=-(1 << 62)))
            k_hi = int(np.min(((want + 1) << s) - v, where=inner_hi, initial=1 << 62)) - 1
            if k_lo > k_hi:
                continue
            k = max(k_lo, min(k_hi, (k_lo + k_hi) // 2))
            if np.abs(v + k).max() < (1 << 31) and np.array_equal(_clamp((v + k) >> s, lo, hi), want):
                return pp, k, s
    return None


def mul_prescaled(p) -> tuple[int, int, int, int] | None:
    """(multiplier, pre-scale shift, right shift, rounding) with
    ``clamp(SMMLAR(((a + o1)(b + o2)) << k, m, R + [rs > 0] (p >> 31)) >> rs) == MUL(a, b)``
    for every int8 a, b (the LSTM's requantization, edgernn_fast.h), or None."""
    m, shift = p.multiplier
    ls, rs = max(shift, 0), max(-shift, 0)
    k = 1 + ls
    prod = (p.input1_offset + _A) * (p.input2_offset + _B)
    if rs > 23 or np.abs(prod).max() << k >= (1 << 31):
        return None
    rounding = p.output_offset * (1 << rs) + ((1 << (rs - 1)) if rs else 0)
    sign = (prod >> 31) if rs else 0
    got = _clamp(smmlar(prod << k, m, rounding + sign) >> rs, p.activation_min, p.activation_max)
    if not np.array_equal(got, mul_exact(p, _A, _B)):
        return None
    return m, k, rs, rounding


def pairs_order(n: int) -> np.ndarray:
    """The order of a loop vector's elements in its int16 copy (edgernn_widen_pairs_s8): per whole
    four (0, 2, 1, 3), the tail in order; an FC reading the copy takes its weight columns so."""
    order = np.arange(n)
    whole = n - n % 4
    order[:whole] = order[:whole].reshape(-1, 4)[:, [0, 2, 1, 3]].ravel()
    return order


# --------------------------------------------------------------------------- the plan
@dataclass
class Vector:
    """An int16 copy of an int8 vector, pre-scaled for the FCs that read it (even length, zero tail),
    its elements in :func:`pairs_order`."""

    name: str  # C suffix
    source: str  # C expression of the int8 vector
    n: int
    scale: int

    @property
    def length(self) -> int:
        return self.n + self.n % 2


@dataclass
class FastFc:
    """A FULLY_CONNECTED of the step on the pairs layout (edgernn_pairs.h EDGERNN_FC8_KERNEL)."""

    name: str  # C suffix of its descriptor and kernel
    stream: ConstArray
    passes_end: int
    pairs: int
    n_input: int
    rs: int  # the right shift of every row, or -1: each row's own (in the stream)
    vector: Vector
    output: str

    @property
    def output_c(self) -> str:
        """The output as a file-scope C expression (the step's ``scratch`` is ``$scratch``)."""
        return self.output if "$scratch" in self.output else self.output.replace("scratch", "$scratch")

    @property
    def kernel(self) -> str:
        return f"fc8_p{self.pairs}_i{self.n_input}_{'r' + str(self.rs) if self.rs >= 0 else 'rows'}"


@dataclass
class FastFc16:
    """A 16x8 FULLY_CONNECTED of an int16 step on the row pairs (edgernn_pairs.h EDGERNN_FC16_KERNEL)."""

    name: str
    stream: ConstArray
    pairs: int
    n_input: int
    n_output: int
    input: str  # C expression of the int16 input
    output: str
    ls: int = -1  # every row's left shift, or -1 (each row's in the stream)
    wide: bool = False  # int16 weight pairs (edgernn_fc16w.h EDGERNN_FC16W_KERNEL), 32-bit sums
    bias: bool = False  # (wide) the passes start from bias words
    wbytes: int = 0  # (wide) on weight rows (edgernn_mve_fc.h EDGERNN_FC16R_KERNEL): bytes per weight
    form: int = 0  # (rows) the stream's form (fcrows.PLAIN, SPLIT, BIASCOLS)

    @property
    def output_c(self) -> str:
        return self.output if "$scratch" in self.output else self.output.replace("scratch", "$scratch")

    @property
    def input_c(self) -> str:
        return self.input if "$scratch" in self.input else self.input.replace("scratch", "$scratch")

    @property
    def kernel(self) -> str:
        if self.wbytes:
            return f"fc16r_i{self.n_input}_o{self.n_output}" + ("_b" if self.bias else "") + f"_w{self.wbytes}" + (
                "", "_s", "_k")[self.form]
        if self.wide:
            return f"fc16w_i{self.n_input}_o{self.n_output}" + ("_b" if self.bias else "")
        return f"fc16_p{self.pairs}_i{self.n_input}_o{self.n_output}" + (f"_l{self.ls}" if self.ls >= 0 else "")


@dataclass
class Elementwise:
    """One op of a fused elementwise run: its C expression of element i."""

    op: object  # loop.StepOp
    expr: str  # C expression (inputs are locals v<k> or memory reads)
    local: str  # the local it is computed into
    store: str | None  # C expression of the buffer it is also written to (None: registers only)
    form: str  # "fit", "prescaled", "table", "exact" (int16: TFLM's steps, literal constants) or "reference"
    ctype: str = "int8_t"  # the stored element type
    ins: list = field(default_factory=list)  # the C expressions of its inputs (locals or ``(buf)[i]``)
    vector: tuple | None = None  # Helium (fastloop_mve): (expression over four lanes, store or None)
    vector_tail: tuple | None = None  # ... of the last n % 4 elements (predicated loads and store)


@dataclass
class FastLoop:
    steps: list  # ("widen", Vector) | ("fc", StepOp, FastFc | None) | ("run", n, [Elementwise])
    vectors: list[Vector] = field(default_factory=list)
    fcs: list[FastFc] = field(default_factory=list)
    fc_layout: str = "reference"
    scratch_in_step: bool = True  # the step function reads or writes the loop scratch itself
    direct_states: set = field(default_factory=set)  # states the step writes in place (no copy)
    mve: bool = False  # some runs have a Helium form (fastloop_mve, under EDGERNN_USE_MVE)

    @property
    def arrays(self) -> list[ConstArray]:
        return [f.stream for f in self.fcs]

    @property
    def kernels(self) -> list[FastFc]:
        seen = {}
        for f in self.fcs:
            seen.setdefault(f.kernel, f)
        return list(seen.values())

    @property
    def scratch_bytes(self) -> int:
        return sum(2 * v.length for v in self.vectors)

    @property
    def kernel(self) -> str:
        """"loop-pairs" (FCs on the row-pair kernel) or "loop-fused" (reference FCs), for reports."""
        return "loop-pairs" if self.fcs else "loop-fused"

    @property
    def runs(self) -> int:
        return sum(1 for s in self.steps if s[0] == "run")

    @property
    def reference_ops(self) -> set[int]:
        """Body op indices whose reference parameters (edgernn_*_params) the step still uses."""
        out = {s[1].op_index for s in self.steps if s[0] == "fc" and s[2] is None}
        for s in self.steps:
            if s[0] == "run":
                out |= {e.op.op_index for e in s[2] if e.form == "reference"}
        return out

    @property
    def forms(self) -> dict:
        """How many elementwise ops run in each form (for the report and the tests)."""
        out: dict[str, int] = {}
        for s in self.steps:
            if s[0] == "run":
                for e in s[2]:
                    out[e.form] = out.get(e.form, 0) + 1
        return out


def _fc_pairs(layer, s, vector_for) -> FastFc:
    fc = s.params
    where = f"loop {layer.index} op {s.op_index} (FULLY_CONNECTED)"
    if (fc.activation_min, fc.activation_max) != (-128, 127):
        raise NotFast(f"{where}: fused activation {fc.activation}")
    w = np.asarray(fc.weights.values, np.int64).reshape(fc.n_output, fc.n_input)[:, pairs_order(fc.n_input)]
    st = fc8_stream(w, fc.bias.values, fc.multipliers.values, fc.shifts.values, fc.output_zero_point, where)
    name = f"l{layer.index}_op{s.op_index}"
    stream = ConstArray(
        f"{name}_fc", "uint32_t", st.words,
        f"{s.comment}: row-pair words of {fc.weights.comment.split(':')[0]} over the input pre-scaled by {st.scale}, "
        f"accumulator start words from {fc.bias.comment.split(' - ')[0]}, then each row's multiplier, "
        f"zero point x 2^rs + rounding{'' if st.rs >= 0 else ', right shift'} (edgernn_pairs.h)")
    return FastFc(name=name, stream=stream, passes_end=st.passes_end, pairs=st.pairs, n_input=fc.n_input,
                  rs=st.rs, vector=vector_for(s.inputs[0], fc.n_input, st.scale), output=s.output)


def _fc16_pairs(layer, s, bound: int, rows: bool = False) -> FastFc16:
    fc = s.params
    where = f"loop {layer.index} op {s.op_index} (FULLY_CONNECTED 16x8)"
    if not fc.acc64 or (fc.activation_min, fc.activation_max) != (-32768, 32767):
        raise NotFast(f"{where}: int32 bias or a fused activation")
    w = np.asarray(fc.weights.values, np.int64).reshape(fc.n_output, fc.n_input)
    bias = None if fc.bias is None else fc.bias.values
    name = f"l{layer.index}_op{s.op_index}"
    if rows:  # weight rows, 32-bit sums (edgernn_mve_fc.h)
        with contextlib.suppress(NotFast):
            return _fc16_rows(name, fc, s.comment, fc16r_stream(w, bias, fc.multipliers.values, fc.shifts.values,
                                                                 where, bound), s.inputs[0], s.output)
    try:  # int16 weight pairs, 32-bit sums (edgernn_fc16w.h)
        wst = fc16w_stream(w, bias, fc.multipliers.values, fc.shifts.values, where, bound)
        stream = ConstArray(
            f"{name}_w16", "uint32_t", wst.words,
            f"{s.comment}: per pass of four rows{' their int64 bias' if wst.bias else ''}, int16 weight pairs of "
            f"{fc.weights.comment.split(':')[0]} (a word per row and column pair), multipliers; weights and bias "
            "x 2^ls (edgernn_fc16w.h)")
        return FastFc16(name=name, stream=stream, pairs=0, n_input=wst.n_input, n_output=wst.n_output,
                        input=s.inputs[0], output=s.output, wide=True, bias=wst.bias)
    except NotFast:
        pass
    st = fc16_stream(w, bias, fc.multipliers.values, fc.shifts.values, where, bound)
    stream = ConstArray(
        f"{name}_fc16w", "uint32_t", st.words,
        f"{s.comment}: row-pair words of {fc.weights.comment.split(':')[0]}, accumulator start words from the "
        f"int64 bias, then each row's multiplier x 2^(32 - s - ls){' and ls' if st.ls < 0 else ''} (edgernn_fc16_c)")
    return FastFc16(name=name, stream=stream, pairs=st.pairs, n_input=st.n_input, n_output=st.n_output,
                    input=s.inputs[0], output=s.output, ls=st.ls)


def _fc16_rows(name: str, fc, comment: str, st, input: str, output: str) -> FastFc16:
    return FastFc16(name=name, stream=fc16r_array(name, fc, comment, st), pairs=0, n_input=st.n_input,
                    n_output=st.n_output, input=input, output=output, wide=True, bias=st.bias, wbytes=st.wbytes,
                    form=st.form)


def _elementwise(s, ins: list[str]) -> tuple[str, str]:
    """(C expression, form) of one elementwise op on C expressions ``ins``."""
    if s.kind in INT16_KINDS:
        return elementwise16(s, ins)
    p = s.params
    if s.kind == "lut":
        return f"(${p.name} + 128)[{ins[0]}]", "table"
    if s.kind == "add":
        fit = fit_add(p)
        if fit is not None:
            p1, p2, k, sh = fit
            if p2 == -p1:  # (a - b) P1 + K: the same integer, one SUB and one MLA
                return (f"edgernn_sub_fit_s8({ins[0]}, {ins[1]}, {p1}, {k}, {sh}, {p.activation_min}, "
                        f"{p.activation_max})", "fit")
            return (f"edgernn_add_fit_s8({ins[0]}, {ins[1]}, {p1}, {p2}, {k}, {sh}, {p.activation_min}, "
                    f"{p.activation_max})", "fit")
        return f"edgernn_add_one_s8(&$$l_op, {ins[0]}, {ins[1]})", "reference"
    fit = fit_mul(p)
    if fit is not None:
        pp, k, sh = fit
        return (f"edgernn_mul_fit_s8({ins[0]}, {ins[1]}, {p.input1_offset}, {p.input2_offset}, {pp}, {k}, {sh}, "
                f"{p.activation_min}, {p.activation_max})", "fit")
    q = mul_prescaled(p)
    if q is not None:
        m, k, rs, rounding = q
        return (f"edgernn_mul_prescaled_s8({ins[0]}, {ins[1]}, {p.input1_offset}, {p.input2_offset}, {m}, {k}, "
                f"{rs}, {rounding}, {p.activation_min}, {p.activation_max})", "prescaled")
    return f"edgernn_mul_one_s8(&$$l_op, {ins[0]}, {ins[1]})", "reference"


#: the step op kinds the fast form compiles: all of them
FAST_KINDS = ("fc", "fc16", "add", "mul", "lut") + INT16_KINDS
_BINARY = ("add", "mul", "add16", "mul16")


def not_fast(layer) -> str:
    """Why ``layer``'s step keeps the reference kernels whole ("" when the fast form applies)."""
    other = sorted({s.kind for s in layer.ops if s.kind not in FAST_KINDS})
    if other:
        return f"step ops ({', '.join(other)}) the fast step does not compile"
    if any(not s.regions for s in layer.ops):
        return "the plan does not say where the step's operands live"
    return ""


def _overlap(a, b) -> bool:
    return a[0] == b[0] and a[1] < b[2] and b[1] < a[2]


def _ctype_of(s) -> str:
    r = s.regions[-1]
    return "int16_t" if r[2] - r[1] == 2 * s.n else "int8_t"


def fast_loop(layer, kernel: str) -> FastLoop | None:
    """The fast form of a loop layer's step (None: ``kernel`` is "reference", or :func:`not_fast`)."""
    if kernel == "reference" or not_fast(layer):
        return None
    fc_layout = FC_LAYOUT.get(kernel, "reference")
    vectors: list[Vector] = []
    cache: dict[tuple[str, int], Vector] = {}
    steps: list = []

    def vector_for(source: str, n: int, scale: int) -> Vector:
        key = (source, scale)
        if key not in cache:
            v = Vector(name=f"$l{layer.index}_v{len(vectors)}", source=source, n=n, scale=scale)
            vectors.append(v)
            cache[key] = v
            steps.append(("widen", v))
        return cache[key]

    ops = layer.ops
    # the ops that read each op's output (until the memory is written again: slots are reused,
    # SPLIT parts overlap their vector), and the ops whose output the end of the step copies
    readers: dict[int, set[int]] = {}
    for k, s in enumerate(ops):
        readers[k] = set()
        for j in range(k + 1, len(ops)):
            if any(_overlap(r, s.regions[-1]) for r in ops[j].regions[:-1]):
                readers[k].add(j)
            if _overlap(ops[j].regions[-1], s.regions[-1]):
                break
    last_writer = {s.output: k for k, s in enumerate(ops)}
    state_writers = {last_writer[st.source] for st in layer.states if st.source in last_writer}
    state_writers |= {last_writer[o[1]] for o in layer.outputs if o[1] in last_writer}
    fcs: list = []
    k = 0
    while k < len(ops):
        s = ops[k]
        gate = fc_layout == "pairs" and find_gate(layer, ops, k, readers, state_writers, vector_for, fit_add,
                                                  mul_prescaled, pairs_order, kernel in FC16_ROWS)
        if gate:
            fcs.append(gate)
            steps.append(("gate", gate))
            cache = {key: v for key, v in cache.items() if key[0] not in {op.output for op in gate.ops}}
            k += len(gate.ops)
            continue
        if s.kind in ("fc", "fc16"):
            fast = None
            if fc_layout == "pairs":
                try:
                    if s.kind == "fc":
                        fast = _fc_pairs(layer, s, vector_for)
                    else:
                        src = [j for j in range(k) if _overlap(ops[j].regions[-1], s.regions[0])]
                        narrow = bool(src) and ops[src[-1]].kind == "widen" and ops[src[-1]].regions[-1] == s.regions[0]
                        fast = _fc16_pairs(layer, s, 128 if narrow else 32768, kernel in FC16_ROWS)
                    fcs.append(fast)
                except NotFast:
                    fast = None
            steps.append(("fc", s, fast))
            # a buffer an op writes invalidates the int16 copies of it
            for key in [key for key in cache if key[0] == s.output]:
                del cache[key]
            k += 1
            continue
        run: list[Elementwise] = []
        touched: list[tuple] = []  # the regions the run reads from memory
        while k < len(ops) and ops[k].kind not in ("fc", "fc16") and ops[k].n == s.n:
            op = ops[k]
            n_in = 2 if op.kind in _BINARY else 1
            ins, hazard = [], False
            for src, reg in zip(op.inputs[:n_in], op.regions[:n_in]):
                writer = next((e for e in reversed(run) if _overlap(e.op.regions[-1], reg)), None)
                if writer is not None and writer.op.regions[-1] != reg:
                    hazard = True  # part of a vector the run writes: element i is not iteration i's
                ins.append(writer.local if writer is not None and not hazard else f"({src})[i]")
            out = op.regions[-1]
            # writing element i must not clobber what a later iteration still reads from memory
            # (an earlier op's write it overlaps is dead: its readers end at this op)
            if any(_overlap(t, out) and t != out for t in touched):
                hazard = True
            if hazard and run:
                break
            expr, form = _elementwise(op, ins)
            expr = expr.replace("$$l_op", f"$l{layer.index}_op{op.op_index}")
            run.append(Elementwise(op=op, expr=expr, local=f"v{k}", store=None, form=form, ctype=_ctype_of(op),
                                   ins=ins))
            touched += [r for r, e in zip(op.regions[:n_in], ins) if e.endswith("[i]")]
            for key in [key for key in cache if key[0] == op.output]:
                del cache[key]
            k += 1
        # a value goes to memory only if an op after its run, or the end of the step, reads it
        for e in run:
            j = ops.index(e.op)
            if any(r >= k for r in readers[j]) or j in state_writers:
                e.store = e.op.output
        steps.append(("run", s.n, run))
    direct = _direct_states(layer, steps, readers, last_writer).union(*(getattr(f, "direct", ()) for f in fcs))
    texts = [st.source for st in layer.states if st.name not in direct]
    for st in steps:
        if st[0] == "widen":
            texts.append(st[1].source)
        elif st[0] == "fc" and (st[2] is None or isinstance(st[2], FastFc16)):
            texts += [st[1].inputs[0], st[1].output]
        elif st[0] == "run":
            texts += [t for e in st[2] for t in (e.expr, e.store or "")]
    return FastLoop(steps=steps, vectors=vectors, fcs=fcs, fc_layout=fc_layout, direct_states=direct,
                    scratch_in_step=any("scratch" in t.replace("$scratch", "") for t in texts),
                    mve=kernel in MVE_KERNELS and vector_forms(steps, _elementwise))


def _direct_states(layer, steps, readers, last_writer) -> set[str]:
    """States the last run writes in place (no copy at the end of the step): their new value
    comes from an op of a run, nothing after that op reads the new value from its buffer, and
    nothing after it reads the state's old value (every op of the run reads element i of the
    state before the op writes element i)."""
    ops = layer.ops
    where = {}
    for st in steps:
        if st[0] == "run":
            for e in st[2]:
                where[ops.index(e.op)] = (st, e)
    sources = [st.source for st in layer.states]
    direct = set()
    for st in layer.states:
        w = last_writer.get(st.source)
        if w is None or w not in where or sources.count(st.source) > 1 or st.name in sources:
            continue
        run, e = where[w]
        end = max(ops.index(x.op) for x in run[2])
        if run[1] != st.n or any(r > end for r in readers[w]):
            continue
        if any(st.name in ops[j].inputs for j in range(w + 1, len(ops))):
            continue
        e.store = st.name
        direct.add(st.name)
    return direct


def fast_head16(h, kernel: str = "pairs") -> FastFc16 | None:
    """A head's 16x8 FULLY_CONNECTED on the final int16 state (|h| <= 2^15) on int16 weight pairs, or None."""
    fc = h.params
    if not fc.acc64 or (fc.activation_min, fc.activation_max) != (-32768, 32767):
        return None
    w = np.asarray(fc.weights.values, np.int64).reshape(fc.n_output, fc.n_input)
    bias = None if fc.bias is None else fc.bias.values
    if kernel in FC16_ROWS:
        with contextlib.suppress(NotFast):
            st = fc16r_stream(w, bias, fc.multipliers.values, fc.shifts.values, f"head {h.index} (FULLY_CONNECTED 16x8)")
            return _fc16_rows(f"fc{h.index}", fc, f"head {h.index}", st, "", "")
    try:
        st = fc16w_stream(w, bias, fc.multipliers.values, fc.shifts.values, f"head {h.index} (FULLY_CONNECTED 16x8)")
    except NotFast:
        return None
    stream = ConstArray(f"fc{h.index}_w16", "uint32_t", st.words,
                        f"head {h.index}: per pass of four rows{' their int64 bias' if st.bias else ''}, int16 weight "
                        f"pairs of {fc.weights.comment.split(':')[0]}, multipliers; weights and bias x 2^ls "
                        "(edgernn_fc16w.h)")
    return FastFc16(name=f"fc{h.index}", stream=stream, pairs=0, n_input=st.n_input, n_output=st.n_output,
                    input="", output="", wide=True, bias=st.bias)


def apply_fast_loops(plan, kernel: str) -> None:
    """Gives every loop layer of ``plan`` its fast form (``layer.fast``) and swaps the arrays of
    the FCs moved to the pairs layout for their streams; a head's 16x8 FC on int16 weight pairs."""
    if kernel != "reference":
        for h in plan.head:
            if h.kind == "fc16":
                h.fast = fast_head16(h, kernel)
    for layer in plan.recurrent:
        if layer.kind != "loop":
            continue
        layer.fast = fast_loop(layer, kernel)
        layer.fast_reason = "" if kernel == "reference" else not_fast(layer)
        if layer.fast is None:
            continue
        moved = {id(a) for st in layer.fast.steps if st[0] == "fc" and st[2] is not None for a in st[1].params.arrays}
        moved |= {id(a) for st in layer.fast.steps if st[0] == "gate" for op in st[1].ops[:2] for a in op.params.arrays}
        layer.arrays = [a for a in layer.arrays if id(a) not in moved] + layer.fast.arrays

