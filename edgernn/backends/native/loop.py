"""GRU / SimpleRNN (and any cell) written as a WHILE loop: the body's step ops as straight C.

``edgernn convert`` writes GRU and SimpleRNN layers as one ``WHILE`` op per layer whose body is
one time step of TFLM builtins (see :mod:`edgernn.backends.tflm.recurrent`). The native
backend compiles that body op by op: FULLY_CONNECTED, ADD, SUB, MUL (int8, TFLM's reference
arithmetic) and LOGISTIC / TANH (tabulated: their int8 result depends on the int8 input
only, so TFLM's gemmlowp computation is evaluated once per input value at generation time).
The loop counter, the SLICE of x_t and the DYNAMIC_UPDATE_SLICE of the output sequence become
the step function's argument and the next layer's input; loop-carried int8 tensors (h, and c
when there is one) become static state initialized from the WHILE's initial values.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ... import fixedpoint as fp
from ...tflite_model import Operator, Subgraph, Tensor, TFLiteModel
from . import prepare
from .plan import ConstArray, FullyConnectedPlan, NativePlan, _fail, _fully_connected, _scale, _softmax, _zp

STEP_OPS = ("FULLY_CONNECTED", "ADD", "SUB", "MUL", "LOGISTIC", "TANH")


@dataclass
class AddPlan:
    kind: str  # "add"
    subtract: bool
    input1_offset: int
    input2_offset: int
    input1: tuple[int, int]
    input2: tuple[int, int]
    output: tuple[int, int]
    output_offset: int
    activation_min: int
    activation_max: int


@dataclass
class MulPlan:
    kind: str  # "mul"
    input1_offset: int
    input2_offset: int
    multiplier: tuple[int, int]
    output_offset: int
    activation_min: int
    activation_max: int


@dataclass
class StepOp:
    """One op of the loop body: its kernel, C names of its operands, element count."""

    op_index: int
    opcode: str
    inputs: list[str]
    output: str
    n: int
    params: object  # FullyConnectedPlan | AddPlan | MulPlan | ConstArray (table)
    comment: str

    @property
    def kind(self) -> str:
        return {"FULLY_CONNECTED": "fc", "ADD": "add", "SUB": "add", "MUL": "mul"}.get(self.opcode, "lut")


@dataclass
class LoopState:
    name: str  # C suffix of the state buffer
    n: int
    initial: np.ndarray
    source: str  # C expression of the new value at the end of the step
    tensor: str


@dataclass
class LoopPlan:
    index: int
    op_index: int
    cell: str
    n_input: int
    n_cell: int
    body: int
    ops: list[StepOp]
    states: list[LoopState]
    output_state: str  # C suffix of the state the next layer / head reads
    slots: int
    slot_size: int
    arrays: list[ConstArray] = field(default_factory=list)
    direction: str = "forward"  # "backward": walks t = T-1 .. 0 (the reverse half of a Bidirectional)
    fast: object = None  # fastloop.FastLoop: the step's fast form (None: the reference kernels)

    @property
    def kind(self) -> str:
        return "loop"

    @property
    def state_bytes(self) -> int:
        return sum(s.n for s in self.states)

    @property
    def scratch_bytes(self) -> int:
        return self.slots * self.slot_size


def int8_activation_table(opcode: str, x: Tensor, y: Tensor) -> np.ndarray:
    """TFLM's int8 LOGISTIC / TANH (reference_integer_ops, gemmlowp on Q4.27) for all 256 inputs.

    Prepare: multiplier = frexp of ``input_scale * 2^27`` rounded to Q31 (no renormalization),
    input radius from CalculateInputRadius(4, shift). Output 1/256 & -128 (LOGISTIC) or 1/128 & 0.
    """
    real = float(np.float32(_scale(x))) * float(1 << 27)
    mult, shift = fp.quantize_multiplier_frexp_only(real)
    radius = fp.calculate_input_radius(4, shift, 31)
    d = np.arange(-128, 128, dtype=np.int64) - _zp(x)
    q4 = fp.multiply_by_quantized_multiplier(d, mult, shift)
    if opcode == "LOGISTIC":
        out = np.clip(fp.rounding_divide_by_pot(fp.fixed_point_logistic(q4, 4), 31 - 8) - 128, -128, 127)
    else:
        out = np.clip(fp.rounding_divide_by_pot(fp.fixed_point_tanh(q4, 4), 31 - 7), -128, 127)
    return np.where(d <= -radius, -128, np.where(d >= radius, 127, out)).astype(np.int8)


def _add_plan(m, sg: Subgraph, op: Operator, where: str) -> AddPlan:
    a, b, y = (sg.tensors[i] for i in (*op.inputs[:2], op.outputs[0]))
    s1, s2, so = (float(np.float32(_scale(t))) for t in (a, b, y))
    twice_max = 2 * max(s1, s2)
    act = int(getattr(op.options, "fusedActivationFunction", 0) or 0)
    if act not in (prepare.ACT_NONE, prepare.ACT_RELU, prepare.ACT_RELU6, prepare.ACT_RELU_N1_TO_1):
        raise _fail(m, f"{where}: fused activation {prepare.ACT_NAMES.get(act, act)} is not supported")
    lo, hi = prepare.activation_range(act, _scale(y), _zp(y))
    return AddPlan(kind="add", subtract=op.opcode == "SUB", input1_offset=-_zp(a), input2_offset=-_zp(b),
                   input1=prepare.quantize_multiplier(s1 / twice_max),
                   input2=prepare.quantize_multiplier(s2 / twice_max),
                   output=prepare.quantize_multiplier(twice_max / ((1 << 20) * so)), output_offset=_zp(y),
                   activation_min=lo, activation_max=hi)


def _mul_plan(m, sg: Subgraph, op: Operator, where: str) -> MulPlan:
    a, b, y = (sg.tensors[i] for i in (*op.inputs[:2], op.outputs[0]))
    s1, s2, so = (float(np.float32(_scale(t))) for t in (a, b, y))
    act = int(getattr(op.options, "fusedActivationFunction", 0) or 0)
    if act not in (prepare.ACT_NONE, prepare.ACT_RELU, prepare.ACT_RELU6, prepare.ACT_RELU_N1_TO_1):
        raise _fail(m, f"{where}: fused activation {prepare.ACT_NAMES.get(act, act)} is not supported")
    lo, hi = prepare.activation_range(act, _scale(y), _zp(y))
    return MulPlan(kind="mul", input1_offset=-_zp(a), input2_offset=-_zp(b),
                   multiplier=prepare.quantize_multiplier(s1 * s2 / so), output_offset=_zp(y),
                   activation_min=lo, activation_max=hi)


def _numel(t: Tensor) -> int:
    return int(np.prod(t.shape)) if t.shape else 1


def build_loop_layer(m: TFLiteModel, op: Operator, op_index: int, index: int,
                     meta: dict | None) -> tuple[LoopPlan, dict]:
    """The plan of one WHILE layer and, for the caller, how its WHILE outputs map to C buffers:
    ``{"x": position of the input sequence, "seq": position of the output sequence or None,
    "states": {position: state C suffix}}``."""
    where = f"WHILE (op {op_index})"
    body_index = int(op.options.bodySubgraphIndex)
    body = m.subgraphs[body_index]
    cell = (meta or {}).get("cell", "rnn")
    slices = [o for o in body.operators if o.opcode == "SLICE"]
    dus = [o for o in body.operators if o.opcode == "DYNAMIC_UPDATE_SLICE"]
    if len(slices) != 1 or len(dus) > 1:
        raise _fail(m, f"{where}: the loop body is not one time step of a recurrent layer "
                       f"({len(slices)} SLICE, {len(dus)} DYNAMIC_UPDATE_SLICE ops)")
    x_pos = body.inputs.index(slices[0].inputs[0])
    x_t = slices[0].outputs[0]
    seq_pos = body.inputs.index(dus[0].inputs[0]) if dus else None
    pos_tensor = slices[0].inputs[1]
    direction = None
    for o in body.operators:
        if o.opcode == "ADD" and o.inputs and o.inputs[0] == pos_tensor:
            step = body.tensors[o.inputs[1]].data
            step = None if step is None else [int(v) for v in np.asarray(step).reshape(-1)]
            direction = {(0, 1, 0): "forward", (0, -1, 0): "backward"}.get(tuple(step or ()))
    if direction is None:
        raise _fail(m, f"{where}: the loop does not walk the time axis one step at a time")
    main = m.main
    states: dict[int, LoopState] = {}
    for pos, t_in in enumerate(body.inputs):
        t = body.tensors[t_in]
        if pos in (x_pos, seq_pos) or t.dtype == "int32":
            continue
        if t.dtype != "int8":
            raise _fail(m, f"{where}: loop variable '{t.name}' is {t.dtype}; int8 expected")
        init = main.tensors[op.inputs[pos]]
        if init.data is None:
            raise _fail(m, f"{where}: the initial value of '{t.name}' is not a constant")
        states[pos] = LoopState(name=f"$l{index}_state{pos}", n=_numel(t),
                                initial=np.asarray(init.data, np.int8).reshape(-1), source="", tensor=t.name)
    if not states:
        raise _fail(m, f"{where}: the loop carries no int8 state")

    # C names of the body's tensors; intermediates get slots of a shared scratch pool.
    names: dict[int, str] = {x_t: "x_t"}
    for pos, st in states.items():
        names[body.inputs[pos]] = st.name
    step_ops = [(i, o) for i, o in enumerate(body.operators)
                if o.opcode not in ("SLICE", "DYNAMIC_UPDATE_SLICE") and body.tensors[o.outputs[0]].dtype != "int32"]
    last_use: dict[int, int] = {}
    for k, (_, o) in enumerate(step_ops):
        for t in o.inputs:
            last_use[t] = k
    for pos in states:
        last_use[body.outputs[pos]] = len(step_ops)  # copied into the state at the end
    free: list[int] = []
    slot_of: dict[int, int] = {}
    n_slots = 0
    slot_size = 0
    ops: list[StepOp] = []
    arrays: list[ConstArray] = []
    n_input = _numel(body.tensors[x_t])
    for k, (i, o) in enumerate(step_ops):
        w = f"{where} body op {i} ({o.opcode})"
        if o.opcode not in STEP_OPS:
            raise _fail(m, f"{w}: operator {o.opcode} in a loop body is not supported by the native backend; "
                           f"it compiles {', '.join(STEP_OPS)} -- use --backend tflm for this model")
        y = body.tensors[o.outputs[0]]
        data_inputs = o.inputs[:1 if o.opcode in ("LOGISTIC", "TANH", "FULLY_CONNECTED") else 2]
        if y.dtype != "int8" or any(body.tensors[t].dtype != "int8" for t in data_inputs):
            raise _fail(m, f"{w}: only int8 step ops are compiled")
        for t in data_inputs:
            if t not in names:
                raise _fail(m, f"{w}: reads tensor '{body.tensors[t].name}' that is neither the step input, "
                               "a state nor computed before")
        n = _numel(y)
        if slot_size < n:
            slot_size = n
        slot = free.pop() if free else None
        if slot is None:
            slot = n_slots
            n_slots += 1
        slot_of[o.outputs[0]] = slot
        names[o.outputs[0]] = f"@{slot}"  # resolved once slot_size is known
        for t in set(o.inputs):
            if t in slot_of and last_use.get(t) == k:
                free.append(slot_of.pop(t))
        ins = [names[t] for t in data_inputs]
        label = f"op {i} {o.opcode} -> tensor {o.outputs[0]} '{y.name}'"
        if o.opcode == "FULLY_CONNECTED":
            fc: FullyConnectedPlan = _fully_connected(m, body, o, i, len(ops))
            for a in fc.arrays:
                a.name = f"l{index}_op{i}_{a.name.split('_', 1)[1]}"
            arrays += fc.arrays
            params = fc
        elif o.opcode in ("ADD", "SUB"):
            if _numel(body.tensors[o.inputs[0]]) != n or _numel(body.tensors[o.inputs[1]]) != n:
                raise _fail(m, f"{w}: broadcasting {o.opcode} is not supported")
            params = _add_plan(m, body, o, w)
        elif o.opcode == "MUL":
            if _numel(body.tensors[o.inputs[0]]) != n or _numel(body.tensors[o.inputs[1]]) != n:
                raise _fail(m, f"{w}: broadcasting MUL is not supported")
            params = _mul_plan(m, body, o, w)
        else:
            x = body.tensors[o.inputs[0]]
            want = (1 / 256, -128) if o.opcode == "LOGISTIC" else (1 / 128, 0)
            if abs(_scale(y) - want[0]) > 1e-9 or _zp(y) != want[1]:
                raise _fail(m, f"{w}: output quantization ({_scale(y):g}, {_zp(y)}) is not TFLM's {want}")
            params = ConstArray(f"l{index}_op{i}_table", "int8_t", int8_activation_table(o.opcode, x, y),
                                f"{o.opcode} of tensor {o.inputs[0]} '{x.name}' (scale {_scale(x):.9g}, zero point "
                                f"{_zp(x)}) for inputs -128..127: TFLM's gemmlowp result, tabulated")
            arrays.append(params)
        ops.append(StepOp(op_index=i, opcode=o.opcode, inputs=ins, output=names[o.outputs[0]], n=n, params=params,
                          comment=label))

    def resolve(expr: str) -> str:
        return f"scratch + {int(expr[1:]) * slot_size}" if expr.startswith("@") else expr

    for s in ops:
        s.inputs = [resolve(e) for e in s.inputs]
        s.output = resolve(s.output)
    for pos, st in states.items():
        src = body.outputs[pos]
        if src not in names:
            raise _fail(m, f"{where}: the new value of '{st.tensor}' is not computed by the step")
        st.source = resolve(names[src])
    out_pos = None
    if dus:
        written = dus[0].inputs[1]
        out_pos = next((p for p in states if body.outputs[p] == written), None)
    if out_pos is None:
        out_pos = next((p for p in states if meta and body.inputs[p] == meta.get("tensors", {}).get("state")), None)
    if out_pos is None:
        out_pos = min(states)
    plan = LoopPlan(index=index, op_index=op_index, cell=cell, n_input=n_input, n_cell=states[out_pos].n,
                    body=body_index, ops=ops, states=list(states.values()), output_state=states[out_pos].name,
                    slots=n_slots, slot_size=slot_size, arrays=arrays, direction=direction)
    mapping = {"x": x_pos, "seq": seq_pos, "states": {p: s.name for p, s in states.items()}, "out_pos": out_pos}
    return plan, mapping


def _metadata(m: TFLiteModel) -> dict | None:
    """edgernn's own JSON metadata entry, or None (absent or unreadable)."""
    raw = m.metadata.get("edgernn")
    if raw is None:
        return None
    try:
        meta = json.loads(raw.decode())
    except (ValueError, TypeError):
        return None
    return meta if isinstance(meta, dict) else None
    return None


@dataclass
class Stage:
    """One recurrent layer of a whole-window model, run over every time step before the next:
    a forward layer, or a Bidirectional pair (forward t = 0..T-1, then backward t = T-1..0).
    ``output``: the ``$seq<k>`` buffer its hidden-state sequence is written to, row t at
    ``t * width`` (None: only the final state is used); a pair writes the forward half at
    offset 0 and the backward half at ``n_forward`` (concat), or adds the backward state into
    the forward row in place (sum)."""

    layers: list  # [LoopPlan] or [forward LoopPlan, backward LoopPlan]
    input: str  # C expression of the input rows: "x" (the model input) or a previous "$seq<k>"
    input_width: int
    output: str | None = None
    width: int = 0
    merge: object = None  # MergePlan of a Bidirectional pair's sequences (None: one layer)


def _while_chain(m: TFLiteModel, sg: Subgraph, layer_meta: dict):
    """Walks the main graph: the recurrent layers as stages, then the head ops.

    Returns (stages, loop plans, head ops [(index, op)], the merge of a Bidirectional pair's final
    states or None, the tensor the head starts from, where tensors come from)."""
    where: dict[int, tuple] = {sg.inputs[0]: ("input",)}
    stages: list[Stage] = []
    plans: list[LoopPlan] = []
    final_merge = None
    cur = None
    head_ops = []
    pair_source = None  # where the last forward layer read its sequence from
    for i, op in enumerate(sg.operators):
        if op.opcode == "FILL":
            continue  # the initial value of an output sequence: not needed step by step
        last = stages[-1] if stages else None
        if op.opcode == "WHILE":
            if head_ops or final_merge is not None:
                raise _fail(m, f"op {i}: a recurrent layer after the output layers is not supported")
            plan, mp = build_loop_layer(m, op, i, len(plans), layer_meta.get(i))
            src = where.get(op.inputs[mp["x"]])
            if plan.direction == "backward":
                if last is None or len(last.layers) != 1 or src != pair_source:
                    raise _fail(m, f"op {i} (WHILE): a backward layer that is not the second half of a "
                                   "Bidirectional pair is not supported by the native backend -- use --backend tflm")
                last.layers.append(plan)
            else:
                if last is not None and len(last.layers) == 2 and last.merge is None:
                    raise _fail(m, f"op {i} (WHILE): the Bidirectional layer before it is not merged into one "
                                   "sequence (concat or sum)")
                want = ("input",) if last is None else ("seq", len(stages) - 1)
                if src != want:
                    raise _fail(m, f"op {i} (WHILE): its input sequence is not "
                                   f"{'the model input' if last is None else 'the previous layer output sequence'}; "
                                   "the native backend compiles a chain of layers")
                if last is not None:
                    last.output = f"$seq{(len(stages) - 1) % 2}"  # two buffers, used in turn
                stages.append(Stage(layers=[plan], input="x" if last is None else last.output, input_width=0))
                pair_source = src
            for pos, state in mp["states"].items():
                where[op.outputs[pos]] = ("state", len(plans), state)
            if mp["seq"] is not None:
                backward = plan.direction == "backward"
                where[op.outputs[mp["seq"]]] = ("half", len(plans)) if backward else ("seq", len(stages) - 1)
            plans.append(plan)
            cur = op.outputs[mp["out_pos"]]
            continue
        if last is None:
            raise _fail(m, f"op {i} ({op.opcode}) before the first recurrent layer is not supported")
        if len(last.layers) == 2 and last.merge is None and final_merge is None:
            fwd, bwd = last.layers
            got = [where.get(t) for t in op.inputs[:2]]
            if got == [("state", len(plans) - 2, fwd.output_state), ("state", len(plans) - 1, bwd.output_state)]:
                final_merge = _merge(m, sg, op, i, fwd, bwd)
                cur = op.outputs[0]
                continue
            if got == [("seq", len(stages) - 1), ("half", len(plans) - 1)]:
                last.merge = _merge(m, sg, op, i, fwd, bwd)
                where[op.outputs[0]] = ("seq", len(stages) - 1)
                cur = None  # read next by a layer or a per-step head
                continue
            raise _fail(m, f"op {i} ({op.opcode}) does not merge the forward and backward halves of the "
                           "Bidirectional layer")
        head_ops.append((i, op))
    return stages, plans, head_ops, final_merge, cur, where


def build_loop_model(m: TFLiteModel):
    """NativePlan of a model whose recurrent layers are WHILE loops (GRU, SimpleRNN...)."""
    sg = m.main
    if len(sg.inputs) != 1 or len(sg.outputs) != 1:
        raise _fail(m, f"the native backend compiles models with one input and one output, "
                       f"this one has {len(sg.inputs)} and {len(sg.outputs)}")
    x = sg.tensors[sg.inputs[0]]
    if x.dtype != "int8" or len(x.shape) != 3 or x.shape[0] != 1:
        raise _fail(m, f"input '{x.name}' is {x.dtype} {x.shape}; the native backend expects the int8 "
                       "(1, T, F) input that `edgernn convert` writes")
    meta = _metadata(m) or {}
    if meta.get("form", "sequence") != "sequence":
        raise _fail(m, "this is a streaming (--streaming) model; emit the native C from the sequence model: "
                       "its NAME_step already streams")
    layer_meta = {int(l["while_op"]): l for l in meta.get("layers", []) if l.get("while_op") is not None}
    stages, recurrent, head_ops, merge, cur, where = _while_chain(m, sg, layer_meta)
    last = stages[-1]
    if len(last.layers) == 2 and last.merge is None and merge is None:
        raise _fail(m, "a Bidirectional layer must be merged (concat or sum) before the output")
    per_step = False
    head: list = []
    for i, op in head_ops:
        if op.inputs[0] != cur or cur is None:
            if not head and where.get(op.inputs[0]) == ("seq", len(stages) - 1):
                per_step = True  # return_sequences=True: the head runs on every step's output
            else:
                raise _fail(m, f"op {i} ({op.opcode}) does not read the previous op's output; the native "
                               "backend compiles a single chain of layers")
        if op.opcode == "FULLY_CONNECTED":
            head.append(_fully_connected(m, sg, op, i, len(head)))
        elif op.opcode == "SOFTMAX":
            head.append(_softmax(m, sg, op, i, len(head)))
        else:
            raise _fail(m, f"operator {op.opcode} (op {i}) after the recurrent layers is not supported by the "
                           "native backend (FULLY_CONNECTED and SOFTMAX are) -- use --backend tflm for this model")
        cur = op.outputs[0]
    if not head and where.get(sg.outputs[0]) == ("seq", len(stages) - 1):
        per_step = True  # the output is the last layer's whole hidden-state sequence
    elif cur is None or cur != sg.outputs[0]:
        raise _fail(m, "the graph's output is not the end of a recurrent-layer chain")
    # A Bidirectional layer anywhere: every layer runs over the whole window before the next.
    window = any(len(s.layers) == 2 for s in stages)
    if window and per_step:
        last.output = f"$seq{(len(stages) - 1) % 2}"  # the per-step head reads its rows afterwards
    for s in stages:
        s.width = s.merge.n if s.merge is not None else s.layers[0].n_cell
    for prev, s in zip(stages, stages[1:]):
        s.input_width = prev.width
    y = sg.tensors[sg.outputs[0]]
    return NativePlan(source=Path(m.path).name, sha256=hashlib.sha256(m.raw).hexdigest(),
                      flatbuffer_bytes=len(m.raw), timesteps=int(x.shape[1]), features=int(x.shape[2]),
                      input_scale=_scale(x), input_zero_point=_zp(x), output_scale=_scale(y), output_zero_point=_zp(y),
                      recurrent=recurrent, last_step_only=not per_step, head=head, ops=[o.opcode for o in sg.operators],
                      bidirectional=window, merge=merge, stages=stages if window else [])


@dataclass
class MergePlan:
    """How a Bidirectional layer's two final states become one vector (CONCATENATION or ADD)."""

    op_index: int
    kind: str  # "concat" | "add"
    forward: str
    backward: str
    n_forward: int
    n_backward: int
    add: AddPlan | None = None

    @property
    def n(self) -> int:
        return self.n_forward + self.n_backward if self.kind == "concat" else self.n_forward


def _merge(m: TFLiteModel, sg: Subgraph, op: Operator, i: int, fwd: LoopPlan, bwd: LoopPlan) -> MergePlan:
    """A Bidirectional pair merged by CONCATENATION (inputs quantized like the output, as TFLM
    requires: the bytes are copied) or ADD, of final states or of whole sequences."""
    y = sg.tensors[op.outputs[0]]
    if op.opcode == "CONCATENATION":
        a, b = (sg.tensors[t] for t in op.inputs[:2])
        if len(op.inputs) != 2 or any(_scale(t) != _scale(y) or _zp(t) != _zp(y) for t in (a, b)):
            raise _fail(m, f"op {i} (CONCATENATION): inputs quantized unlike the output are not supported")
        return MergePlan(op_index=i, kind="concat", forward=fwd.output_state, backward=bwd.output_state,
                         n_forward=fwd.n_cell, n_backward=bwd.n_cell)
    if op.opcode == "ADD":
        return MergePlan(op_index=i, kind="add", forward=fwd.output_state, backward=bwd.output_state,
                         n_forward=fwd.n_cell, n_backward=bwd.n_cell, add=_add_plan(m, sg, op, f"op {i} (ADD)"))
    raise _fail(m, f"op {i}: Bidirectional merge {op.opcode} is not supported (concat and sum are)")
