"""Models beyond a chain of recurrent layers: convolutional front-ends, pooling heads, any op mix.

:func:`build_graph_model` compiles the main graph op by op into one of two programs:

* **step** (the model streams): every op works on one time step. A causal convolution keeps
  the last ``(k - 1) * dilation`` input rows in a ring (the window the converter's PAD +
  VALID CONV_2D would read), recurrent layers advance their state, and ``NAME_run`` is
  ``NAME_step`` over the sequence: bit-identical to the whole-sequence graph, RAM constant in T.
  :mod:`.stream` decides whether a model streams and says why not when it does not.
* **sequence** (otherwise: 'valid'/'same' convolutions over time, strided pools, global pooling
  or Flatten over time, Bidirectional layers...): every op runs once on whole tensors;
  ``NAME_run`` takes exactly the converted T and ``NAME_step`` returns EDGERNN_ERR_UNSUPPORTED.

Either way the intermediate tensors live in one static arena, placed by liveness (two tensors
share bytes when their lifetimes do not overlap, TFLM's greedy planner's rule); RESHAPE,
EXPAND_DIMS and SQUEEZE are aliases. Recurrent layers reuse :mod:`.lstm` and :mod:`.loop`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from ...tflite_model import Operator, Subgraph, TFLiteModel, strided_slice_index
from . import tensorops as T
from .copyops import COPY_OPS, plan_copy
from .fastlstm import fast_lstm
from .loop import _metadata, build_loop_layer
from .lstm import _lstm
from .plan import ConstArray, _fail

ALIAS_OPS = ("RESHAPE", "EXPAND_DIMS", "SQUEEZE")
SUPPORTED = sorted({"CONV_2D", "DEPTHWISE_CONV_2D", "MAX_POOL_2D", "AVERAGE_POOL_2D", "FULLY_CONNECTED", "SOFTMAX",
                    "UNIDIRECTIONAL_SEQUENCE_LSTM", "WHILE", *ALIAS_OPS, *T.LUT_OPS, *T.BINARY_OPS, *COPY_OPS,
                    *T.REDUCE_OPS})


class StreamRefusal(Exception):
    """The model has no one-step form; the message says which op and why."""


@dataclass
class Ring:
    name: str  # C suffix
    size: int
    fill: int
    comment: str


@dataclass
class GraphPlan:
    mode: str  # "step" | "sequence"
    reason: str  # why the model does not stream ("" when it does)
    steps: list  # tensorops.Step, in order, statements resolved
    structs: list
    arrays: list
    arena_bytes: int
    rings: list[Ring]
    output_expr: str
    step_outputs: int  # bytes NAME_step writes (step mode) / NAME_run writes (sequence mode)
    per_step: bool  # step mode: NAME_run writes every step's output
    output_shape: tuple
    input_bytes: int  # int8 values NAME_run reads (sequence mode: T x F)
    uses_t: bool = False  # the steps before head_from declare t / r / read x_t
    uses_r: bool = False
    uses_input: bool = True
    buffers: list = field(default_factory=list)  # (offset, bytes, tensor name), for the comments
    fc8_kernels: list = field(default_factory=list)  # fasttensor.Fc8Stream per EDGERNN_FC8_KERNEL instance
    head_from: int = -1  # step mode: the steps from here on carry no state (NAME_head); -1: none
    head_uses_t: bool = False
    head_uses_r: bool = False

    @property
    def streaming(self) -> bool:
        return self.mode == "step"

    @property
    def ring_bytes(self) -> int:
        return sum(r.size for r in self.rings)

    @property
    def f32_bytes(self) -> int:
        """Sequence mode's float wrapper quantizes the whole input (and dequantizes the whole
        output) through static int8 buffers."""
        return 0 if self.streaming else self.input_bytes + self.step_outputs

    @property
    def weight_bytes(self) -> int:
        return sum(a.nbytes for a in self.arrays)


def _data_inputs(sg: Subgraph, op: Operator, x_pos: int | None = None) -> list[int]:
    """The inputs an op reads as data: not constants or variables; RESHAPE's shape input and a
    WHILE's initial values (constants, FILLs) are not read step by step."""
    if op.opcode in ALIAS_OPS:
        cand = op.inputs[:1]
    elif op.opcode == "WHILE":
        cand = [op.inputs[x_pos]] if x_pos is not None else []
    else:
        cand = op.inputs
    return [i for i in cand if i >= 0 and sg.tensors[i].data is None and not sg.tensors[i].is_variable]


class Builder:
    """Shared state of the two programs: recurrent layer plans, constants, the step list."""

    def __init__(self, m: TFLiteModel, kernel: str = "reference"):
        self.m = m
        self.kernel = kernel
        self.sg = sg = m.main
        if len(sg.inputs) != 1 or len(sg.outputs) != 1:
            raise _fail(m, f"the native backend compiles models with one input and one output, this one has "
                           f"{len(sg.inputs)} and {len(sg.outputs)}")
        self.x = sg.tensors[sg.inputs[0]]
        self.y = sg.tensors[sg.outputs[0]]
        for what, t in (("input", self.x), ("output", self.y)):
            if t.dtype != "int8":
                raise _fail(m, f"{what} '{t.name}' is {t.dtype}; the native backend compiles int8 models (a float "
                               "model or float input/output: convert with int8 input and output)")
        if not self.x.shape or self.x.shape[0] != 1:
            raise _fail(m, f"input '{self.x.name}' has shape {self.x.shape}; batch 1 expected")
        meta = _metadata(m) or {}
        if meta.get("form", "sequence") != "sequence":
            raise _fail(m, "this is a streaming (--streaming) model; emit the native C from the sequence model: "
                           "its NAME_step already streams")
        layer_meta = {int(l["while_op"]): l for l in meta.get("layers", []) if l.get("while_op") is not None}
        lstm_states = {op.inputs[k] for op in sg.operators if op.opcode == "UNIDIRECTIONAL_SEQUENCE_LSTM"
                       for k in (18, 19) if k < len(op.inputs)}
        if any(t.is_variable and t.index not in lstm_states for t in sg.tensors):
            raise _fail(m, "a streaming (one-step) flatbuffer: its state lives in variable tensors; emit the native "
                           "C from the whole-sequence .tflite, whose NAME_step() streams")
        # WHILE layers first (their input position decides what they read), then the live ops.
        self.loops: dict[int, tuple] = {}
        for i, op in enumerate(sg.operators):
            if op.opcode not in SUPPORTED and op.opcode not in ("FILL", "SHAPE"):
                raise _fail(m, f"operator {op.opcode} (op {i}) is not supported by the native backend; it compiles "
                               f"{', '.join(SUPPORTED)} -- use --backend tflm for this model")
        self.live = self._live_ops(layer_meta)
        self.recurrent: list = []
        self.rec_of: dict[int, object] = {}
        for i in self.live:
            op = sg.operators[i]
            if op.opcode == "UNIDIRECTIONAL_SEQUENCE_LSTM":
                plan = _lstm(m, sg, op, i, len(self.recurrent))
                plan.fast, plan.fast_reason = fast_lstm(plan, kernel)
            elif op.opcode == "WHILE":  # again, named by its place among the recurrent layers
                plan, mp = build_loop_layer(m, op, i, len(self.recurrent), layer_meta.get(i))
                self.loops[i] = (plan, mp)
            else:
                continue
            self.recurrent.append(plan)
            self.rec_of[i] = plan
        self.consts: dict[int, ConstArray] = {}

    def _live_ops(self, layer_meta) -> list[int]:
        sg = self.sg
        producer = {o: i for i, op in enumerate(sg.operators) for o in op.outputs}
        need = set(sg.outputs)
        live = set()
        for i in range(len(sg.operators) - 1, -1, -1):
            op = sg.operators[i]
            if not any(o in need for o in op.outputs):
                continue
            if op.opcode in ("FILL", "SHAPE"):
                raise _fail(self.m, f"op {i} ({op.opcode}) computes data the model output depends on; the native "
                                    "backend compiles static shapes (re-export the model with batch_size=1)")
            x_pos = None
            if op.opcode == "WHILE":
                plan, mp = build_loop_layer(self.m, op, i, 0, layer_meta.get(i))
                self.loops[i] = (plan, mp)
                x_pos = mp["x"]
            live.add(i)
            need.update(_data_inputs(sg, op, x_pos))
        for t in need:
            if t not in producer and t not in sg.inputs and sg.tensors[t].data is None \
                    and not sg.tensors[t].is_variable:
                raise _fail(self.m, f"tensor '{sg.tensors[t].name}' is read but never written")
        return sorted(live)

    def const(self, idx: int) -> str:
        """C name of constant tensor ``idx`` used as data (a broadcast operand, a concatenated piece)."""
        if idx not in self.consts:
            tt = self.sg.tensors[idx]
            if tt.dtype != "int8":
                raise _fail(self.m, f"constant '{tt.name}' is {tt.dtype}; int8 data expected")
            self.consts[idx] = ConstArray(f"const{idx}", "int8_t", np.asarray(tt.data, np.int8).reshape(-1),
                                          f"tensor {idx} '{T.short(tt.name)}' {list(tt.shape)}")
        return f"${self.consts[idx].name}"

    def x_pos(self, i: int):
        return self.loops[i][1]["x"] if i in self.loops else None


# ----------------------------------------------------------------------------- buffers
def plan_arena(lifetimes: dict, sizes: dict) -> tuple[dict, int]:
    """Greedy first-fit by size (TFLM's GreedyMemoryPlanner rule): buffers whose lifetimes
    [first, last] overlap never share bytes. Returns (offsets, total bytes), 4-byte aligned."""
    placed: list[tuple[int, int, int, int]] = []  # offset, size, first, last
    offsets = {}
    for key in sorted(sizes, key=lambda k: (-sizes[k], lifetimes[k][0])):
        size = -(-sizes[key] // 4) * 4
        first, last = lifetimes[key]
        busy = sorted((o, s) for o, s, f, l in placed if not (l < first or f > last))
        off = 0
        for o, s in busy:
            if off + size <= o:
                break
            off = max(off, o + s)
        offsets[key] = off
        placed.append((off, size, first, last))
    return offsets, max((o + s for o, s, _, _ in placed), default=0)


def resolve(b: Builder, steps: list, locs: dict, input_expr: str, output: int) -> tuple[list, dict, int]:
    """Arena offsets for every tensor computed by ``steps`` (``locs``: tensor -> ("alias", base)
    | ("static", C name) | ("arena", bytes) | ("input",)), then the placeholders replaced. A
    step's int16 window (``@w@``) is an arena buffer of its own, live during that step only."""
    names = {}
    for n, st in enumerate(steps):
        if st.window:
            k = len(b.sg.tensors) + 1 + n
            locs[k] = ("arena", st.window)
            names[k] = f"the int16 window of op {st.op_index}"
            st.lines = [line.replace("@w@", T.t(k)) for line in st.lines]
    key_of = {}
    for tensor in locs:
        k, loc = tensor, locs[tensor]
        while loc[0] == "alias":
            k, loc = loc[1], locs[loc[1]]
        key_of[tensor] = k
    lifetimes: dict[int, list[int]] = {}
    for n, st in enumerate(steps):
        for idx in map(int, re.findall(r"@t(\d+)@", "\n".join(st.lines))):
            k = key_of.get(idx, idx)
            if k in locs and locs[k][0] == "arena":
                lt = lifetimes.setdefault(k, [n, n])
                lt[1] = max(lt[1], n)
    out_key = key_of.get(output, output)
    if out_key in lifetimes:
        lifetimes[out_key][1] = len(steps)
    sizes = {k: locs[k][1] for k in lifetimes}
    offsets, total = plan_arena(lifetimes, sizes)

    def expr(idx: int) -> str:
        k = key_of.get(idx, idx)
        loc = locs.get(k)
        if loc is None:
            if b.sg.tensors[idx].data is not None:
                return b.const(idx)
            raise _fail(b.m, f"tensor {idx} '{b.sg.tensors[idx].name}' has no buffer")
        if loc[0] == "input":
            return input_expr
        if loc[0] == "static":
            return loc[1]
        return f"$arena + {offsets[k]}" if offsets[k] else "$arena"

    for st in steps:
        st.lines = [re.sub(r"@t(\d+)@", lambda mm: f"({expr(int(mm.group(1)))})" if "+" in expr(int(mm.group(1)))
                           else expr(int(mm.group(1))), line) for line in st.lines]
    def label(k: int) -> str:
        name = b.sg.tensors[k].name if k < len(b.sg.tensors) else names.get(k, "the output")
        return name if len(name) <= 60 else name[:57] + "..."

    buffers = sorted(((offsets[k], sizes[k], label(k)) for k in offsets))
    return buffers, {"expr": expr}, total


# ----------------------------------------------------------------------------- sequence program
def _recurrent_step_call(plan, x_expr: str) -> str:
    if plan.kind == "lstm" and plan.fast:
        return f"$lstm{plan.index}_step({x_expr});"
    if plan.kind == "lstm":
        return (f"edgernn_lstm_step(&$lstm{plan.index}, {x_expr}, $hidden{plan.index}, $cell{plan.index}, "
                "$vectors, $accumulators, $gates);")
    return f"$loop{plan.index}_step({x_expr});"


def sequence_program(b: Builder) -> tuple[list, dict]:
    """Every live op on whole tensors."""
    m, sg = b.m, b.sg
    steps, locs = [], {b.x.index: ("input",)}
    consumers: dict[int, list[int]] = {}
    for i in b.live:
        for t in _data_inputs(sg, sg.operators[i], b.x_pos(i)):
            consumers.setdefault(t, []).append(i)
    n_fc = 0
    for i in b.live:
        op = sg.operators[i]
        oc = op.opcode
        y = sg.tensors[op.outputs[0]] if op.outputs else None
        if oc in ALIAS_OPS:
            locs[op.outputs[0]] = ("alias", op.inputs[0])
            continue
        if oc in ("UNIDIRECTIONAL_SEQUENCE_LSTM", "WHILE"):
            plan = b.rec_of[i]
            xi = op.inputs[0] if oc != "WHILE" else op.inputs[b.x_pos(i)]
            xt = sg.tensors[xi]
            if len(xt.shape) != 3 or xt.shape[0] != 1:
                raise _fail(m, f"{oc} (op {i}) input shape {xt.shape}; (1, T, F) expected")
            steps_t, f = int(xt.shape[1]), int(xt.shape[2])
            state = f"$hidden{plan.index}" if plan.kind == "lstm" else plan.output_state
            if oc == "WHILE":
                mp = b.loops[i][1]
                for pos, name in mp["states"].items():
                    locs[op.outputs[pos]] = ("static", name)
                seq_out = op.outputs[mp["seq"]] if mp["seq"] is not None else None
            else:
                seq_out = op.outputs[0]
            write = seq_out is not None and any(
                not _is_last_step_slice(sg, sg.operators[c], sg.tensors[seq_out]) for c in consumers.get(seq_out, []))
            lines = []
            back = getattr(plan, "direction", "forward") == "backward"
            loop = f"for (t = {steps_t - 1}; t >= 0; --t) {{" if back else f"for (t = 0; t < {steps_t}; ++t) {{"
            lines.append(loop)
            lines.append("    " + _recurrent_step_call(plan, f"{T.t(xi)} + t * {f}"))
            if write:
                lines.append(f"    memcpy({T.t(seq_out)} + t * {plan.n_cell}, {state}, {plan.n_cell});")
                locs[seq_out] = ("arena", T.numel(sg.tensors[seq_out].shape))
            elif seq_out is not None:
                locs[seq_out] = ("static", state)  # read only through a last-step slice
            lines.append("}")
            steps.append(T.Step(i, oc, f"{oc} (op {i}): layer {plan.index}, {steps_t} steps", lines))
            continue
        if oc == "STRIDED_SLICE" and locs.get(op.inputs[0], ("",))[0] == "static" and \
                _is_last_step_slice(sg, op, sg.tensors[op.inputs[0]]):
            locs[op.outputs[0]] = locs[op.inputs[0]]
            continue
        if oc in ("CONV_2D", "DEPTHWISE_CONV_2D"):
            st = T.plan_conv(m, sg, op, i, kernel=b.kernel)
        elif oc in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
            st = T.plan_pool(m, sg, op, i)
        elif oc in T.REDUCE_OPS:
            st = T.plan_reduce(m, sg, op, i)
        elif oc in T.LUT_OPS:
            st = T.plan_lut(m, sg, op, i, T.numel(y.shape))
        elif oc in T.BINARY_OPS:
            st = T.plan_binary(m, sg, op, i)
        elif oc == "FULLY_CONNECTED":
            w = sg.tensors[op.inputs[1]]
            st = T.plan_fc(m, sg, op, i, T.numel(sg.tensors[op.inputs[0]].shape) // int(w.shape[1]), n_fc, b.kernel)
            n_fc += 1
        elif oc == "SOFTMAX":
            st = T.plan_softmax(m, sg, op, i, T.numel(y.shape) // int(y.shape[-1]), n_fc)
        elif oc in COPY_OPS:
            st = plan_copy(m, sg, op, i)
        else:  # pragma: no cover - Builder refuses the others
            raise _fail(m, f"operator {oc} (op {i}) is not supported by the native backend")
        steps.append(st)
        for o in op.outputs:
            locs[o] = ("arena", T.nbytes(sg.tensors[o]))
    return steps, locs


def _is_last_step_slice(sg: Subgraph, op: Operator, seq) -> bool:
    """STRIDED_SLICE of the last step along axis 1 of a (1, T, H) tensor, every H value."""
    if op.opcode != "STRIDED_SLICE" or len(seq.shape) != 3 or any(
            i < 0 or sg.tensors[i].data is None for i in op.inputs[1:4]):
        return False
    o = op.options
    if int(o.ellipsisMask) or int(o.newAxisMask):
        return False
    begin, end, st = (np.asarray(sg.tensors[i].data).reshape(-1) for i in op.inputs[1:4])
    idx = strided_slice_index(seq.shape, begin, end, st, o)
    steps = range(seq.shape[1])[idx[1]] if isinstance(idx[1], slice) else [idx[1] % seq.shape[1]]
    full = all(isinstance(ix, slice) and len(range(d)[ix]) == d and (ix.step or 1) == 1
               for ax, (ix, d) in enumerate(zip(idx, seq.shape)) if ax != 1)
    return full and list(steps) == [seq.shape[1] - 1]
