"""A WHILE loop (edgernn's recurrent layers) compiled to one C step function, op by op.

``edgernn convert`` writes each stack of unidirectional recurrent layers as one ``WHILE`` op
(each direction of a Bidirectional layer as one of its own) whose body is one time step of
every layer of the stack, in TFLM builtins (see :mod:`edgernn.backends.tflm.recurrent` and
:mod:`edgernn.backends.tflm.cells`). This module turns that body into a :class:`LoopPlan`;
:mod:`.loop_model` assembles the loops, the Bidirectional merge and the head.

The plan (what the generated ``NAME_loopK_step(const int8_t *x_t)`` does, in order):

* ``states``: the loop-carried vectors, static C arrays named ``$lK_sP`` (``P``: the loop
  variable's position; ``ctype`` int8_t or int16_t), set from the WHILE's constant initial
  values by ``NAME_reset``: per layer ``h`` (and ``c`` for an LSTM). With ``--state int16``
  (the default) they are int16 (h in Q0.15 for GRU, LSTM and tanh SimpleRNN), else int8.
* ``ops``: the body's ops in order, each a :class:`StepOp` of one ``kind``:

  ======== ========================================================= =========================
  kind     what (TFLM reference arithmetic, exact)                   C kernel
  ======== ========================================================= =========================
  fc       FULLY_CONNECTED int8 -> int8 (int32 sums)                 ``edgernn_fc_run_s8``
  fc16     FULLY_CONNECTED 16x8 -> int16 (int64 sums and the 16-bit  ``edgernn_fc_run_s16``
           reduced multiplier; int32 with an int32 bias)
  add      ADD / SUB int8 (left shift 20)                            ``edgernn_add_run_s8``
  add16    ADD / SUB int16 (left shift 15)                           ``edgernn_add_run_s16``
  mul      MUL int8                                                  ``edgernn_mul_run_s8``
  mul16    MUL int16                                                 ``edgernn_mul_run_s16``
  lut      LOGISTIC / TANH / RELU int8, a 256-entry table            ``edgernn_lut_run_s8``
  act16    LOGISTIC / TANH int16 -> Q0.15 (input multiplier, shift)  ``edgernn_{logistic,tanh}_run_s16``
  requant  QUANTIZE int16 -> int8                                    ``edgernn_requantize_run_s16_s8``
  widen    CAST int8 -> int16                                        ``edgernn_widen_run_s8_s16``
  ======== ========================================================= =========================

  SPLIT / SPLIT_V emit no code: each part is a pointer into the split vector. The counters
  (``i + 1``, ``pos + step``) become the C loop over t, SLICE becomes the ``x_t`` argument.
* Intermediates live in one shared ``int16_t`` scratch pool, ``slots`` slots of ``slot_size``
  int16 elements each (an int8 vector uses the first bytes of its slot); a slot is reused once
  every tensor in it (or in a view of it) has been read for the last time.
* At the end of the step every state takes its new value (``memcpy`` from ``source``), and
  ``outputs`` are copied out: the int8 vector the loop writes into its output sequence
  (DYNAMIC_UPDATE_SLICE) when that is not a state, for the next stage or a per-step head.

``layers`` (from the model's ``"edgernn"`` metadata) says which cells the body holds, in order
(cell, units, the state names of each) — what a hand-written fused kernel for a GRU or an LSTM
step needs to recognise the body and read its constants (the ops of one layer are
contiguous; see :mod:`edgernn.backends.tflm.cells` for each cell's exact op sequence).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ... import fixedpoint as fp
from ...tflite_model import Operator, Subgraph, Tensor, TFLiteModel
from . import prepare
from .plan import ConstArray, FullyConnectedPlan, _fail, _fully_connected, _scale, _zp

STEP_OPS = ("FULLY_CONNECTED", "ADD", "SUB", "MUL", "LOGISTIC", "TANH", "QUANTIZE", "CAST", "SPLIT", "SPLIT_V")
_CTYPE = {"int8": "int8_t", "int16": "int16_t"}


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
class FullyConnected16Plan:
    """A 16x8 FULLY_CONNECTED: per-row multipliers and shifts already in the form the kernel
    applies (16-bit multiplier and total right shift with int64 sums)."""

    n_input: int
    n_output: int
    weights: ConstArray
    bias: ConstArray | None  # int64_t (int64 sums) or int32_t
    multipliers: ConstArray
    shifts: ConstArray
    acc64: bool
    activation_min: int
    activation_max: int

    @property
    def arrays(self) -> list[ConstArray]:
        return [a for a in (self.weights, self.bias, self.multipliers, self.shifts) if a is not None]


@dataclass
class Act16Plan:
    function: str  # "logistic" | "tanh"
    multiplier: int
    left_shift: int


@dataclass
class RequantPlan:
    multiplier: int
    shift: int
    input_zero_point: int
    output_zero_point: int


@dataclass
class StepOp:
    """One op of the loop body: its kernel, C names of its operands, element count."""

    op_index: int
    opcode: str
    kind: str  # see the module docstring
    inputs: list[str]
    output: str
    n: int
    params: object  # FullyConnectedPlan | FullyConnected16Plan | AddPlan | MulPlan | ConstArray | Act16Plan | ...
    comment: str
    # the memory each data input and (last) the output occupy: (buffer, first byte, end byte),
    # buffer a named vector or a scratch slot (SPLIT parts overlap their whole vector)
    regions: list = field(default_factory=list)


@dataclass
class LoopState:
    name: str  # C name of the state buffer ($ = the model prefix)
    n: int
    ctype: str  # int8_t | int16_t
    initial: np.ndarray
    source: str  # C expression of the new value at the end of the step
    tensor: str

    @property
    def nbytes(self) -> int:
        return self.n * (2 if self.ctype == "int16_t" else 1)


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
    output_state: str  # C name of the vector the next stage reads after a step (a state or an output)
    output_ctype: str
    slots: int
    slot_size: int  # int16 elements
    arrays: list[ConstArray] = field(default_factory=list)
    direction: str = "forward"  # "backward": walks t = T-1 .. 0 (the reverse half of a Bidirectional)
    outputs: list[tuple[str, str, int]] = field(default_factory=list)  # (int8 buffer, source expr, n)
    layers: list[dict] = field(default_factory=list)  # metadata of the cells in the body, in order
    fast: object = None  # fastloop.FastLoop: the step's fast form (None: the reference kernels)
    fast_reason: str = ""  # why a fast kernel choice kept the reference step ("" otherwise)

    @property
    def kind(self) -> str:
        return "loop"

    @property
    def state_bytes(self) -> int:
        return sum(s.nbytes for s in self.states) + sum(n for _, _, n in self.outputs)

    @property
    def scratch_bytes(self) -> int:
        return 2 * self.slots * self.slot_size


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


def add_plan(m, sg: Subgraph, op: Operator, where: str) -> AddPlan:
    """TFLM's ADD / SUB Prepare, the ratios in double (see :func:`edgernn.simulate.elementwise.add_sub_multipliers`)."""
    a, b, y = (sg.tensors[i] for i in (*op.inputs[:2], op.outputs[0]))
    s1, s2, so = (float(np.float32(_scale(t))) for t in (a, b, y))
    subtract = op.opcode == "SUB"
    left_shift = 15 if y.dtype == "int16" else 20
    twice_max = 2 * max(s1, s2)
    reals = (s1 / twice_max, s2 / twice_max, twice_max / ((1 << left_shift) * so))
    act = int(getattr(op.options, "fusedActivationFunction", 0) or 0)
    if act not in (prepare.ACT_NONE, prepare.ACT_RELU, prepare.ACT_RELU6, prepare.ACT_RELU_N1_TO_1):
        raise _fail(m, f"{where}: fused activation {prepare.ACT_NAMES.get(act, act)} is not supported")
    lo, hi = prepare.activation_range(act, _scale(y), _zp(y), *_range(y.dtype))
    m1, m2, mo = (prepare.quantize_multiplier(float(r)) for r in reals)
    return AddPlan(kind="add", subtract=subtract, input1_offset=-_zp(a), input2_offset=-_zp(b),
                   input1=m1, input2=m2, output=mo, output_offset=_zp(y), activation_min=lo, activation_max=hi)


def mul_plan(m, sg: Subgraph, op: Operator, where: str) -> MulPlan:
    a, b, y = (sg.tensors[i] for i in (*op.inputs[:2], op.outputs[0]))
    s1, s2, so = (float(np.float32(_scale(t))) for t in (a, b, y))
    act = int(getattr(op.options, "fusedActivationFunction", 0) or 0)
    if act not in (prepare.ACT_NONE, prepare.ACT_RELU, prepare.ACT_RELU6, prepare.ACT_RELU_N1_TO_1):
        raise _fail(m, f"{where}: fused activation {prepare.ACT_NAMES.get(act, act)} is not supported")
    lo, hi = prepare.activation_range(act, _scale(y), _zp(y), *_range(y.dtype))
    return MulPlan(kind="mul", input1_offset=-_zp(a), input2_offset=-_zp(b),
                   multiplier=prepare.quantize_multiplier(s1 * s2 / so), output_offset=_zp(y),
                   activation_min=lo, activation_max=hi)


def requant_plan(x: Tensor, y: Tensor) -> RequantPlan:
    """QUANTIZE int16 -> int8: MultiplyByQuantizedMultiplier by double(s_in) / double(s_out)."""
    mult, shift = prepare.quantize_multiplier(float(np.float32(_scale(x))) / float(np.float32(_scale(y))))
    return RequantPlan(multiplier=mult, shift=shift, input_zero_point=_zp(x), output_zero_point=_zp(y))


def _range(dtype: str) -> tuple[int, int]:
    return (-32768, 32767) if dtype == "int16" else (-128, 127)


def _fully_connected16(m, sg: Subgraph, op: Operator, op_index: int, name: str) -> FullyConnected16Plan:
    x, w, y = sg.tensors[op.inputs[0]], sg.tensors[op.inputs[1]], sg.tensors[op.outputs[0]]
    b = sg.tensors[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    where = f"FULLY_CONNECTED (op {op_index})"
    if w.dtype != "int8" or w.data is None or w.data.ndim != 2 or np.any(np.asarray(w.zero_point) != 0):
        raise _fail(m, f"{where}: int16 x {w.dtype} weights; symmetric int8 constants expected")
    if _zp(x) or _zp(y):
        raise _fail(m, f"{where}: int16 tensors with zero points are not supported")
    if b is not None and (b.data is None or b.dtype not in ("int32", "int64")):
        raise _fail(m, f"{where}: bias '{b.name}' is {b.dtype}; int32 or int64 constants expected")
    n_out, n_in = (int(d) for d in w.data.shape)
    scales = np.broadcast_to(np.asarray(w.scale, np.float64), (n_out,))
    qs = [prepare.quantize_multiplier(prepare.conv_multiplier(_scale(x), s, _scale(y))) for s in scales]
    mult = np.array([q[0] for q in qs], np.int64)
    shift = np.array([q[1] for q in qs], np.int64)
    acc64 = b is None or b.dtype == "int64"
    if acc64:  # MultiplyByQuantizedMultiplier(int64): 16-bit multiplier, total right shift
        mult = np.where(mult < 0x7FFF0000, (mult + (1 << 15)) >> 16, 0x7FFF)
        shift = 15 - shift
    act = int(getattr(op.options, "fusedActivationFunction", 0) or 0)
    lo, hi = prepare.activation_range(act, _scale(y), 0, -32768, 32767)
    src = f"tensor {w.index} '{w.name}'"
    return FullyConnected16Plan(
        n_input=n_in, n_output=n_out,
        weights=ConstArray(f"{name}_weights", "int8_t", np.asarray(w.data, np.int8),
                           f"{src}: weights [{n_out}][{n_in}], per-channel ({len(w.scale)} scales)"),
        bias=None if b is None else ConstArray(f"{name}_bias", "int64_t" if acc64 else "int32_t",
                                               np.asarray(b.data, np.int64), f"tensor {b.index} '{b.name}'"),
        multipliers=ConstArray(f"{name}_multipliers", "int32_t", mult,
                               ("QuantizeMultiplier(input x weight / output scale) cut to 16 bits" if acc64 else
                                "QuantizeMultiplier(input x weight / output scale), Q0.31") + f", {src}"),
        shifts=ConstArray(f"{name}_shifts", "int32_t", shift,
                          "total right shifts (15 - exponent)" if acc64 else "exponents (negative: right shift)"),
        acc64=acc64, activation_min=lo, activation_max=hi)


@dataclass
class _Ref:
    """Where a body tensor lives in C: a named buffer (``text``) or a scratch slot, plus an
    element offset (a SPLIT part)."""

    ctype: str
    text: str | None = None
    slot: int | None = None
    offset: int = 0

    def c(self, slot_size: int) -> str:
        if self.slot is None:
            return self.text if not self.offset else f"({self.text} + {self.offset})"
        if self.ctype == "int16_t":
            return f"(scratch + {self.slot * slot_size + self.offset})"
        base = f"(int8_t *)(scratch + {self.slot * slot_size})"
        return f"({base} + {self.offset})" if self.offset else base


def _region(ref: _Ref, n: int) -> tuple:
    size = 2 if ref.ctype == "int16_t" else 1
    return (("slot", ref.slot) if ref.slot is not None else ("text", ref.text), ref.offset * size,
            (ref.offset + n) * size)


def _numel(t: Tensor) -> int:
    return int(np.prod(t.shape)) if t.shape else 1


def _ctype(m, t: Tensor, where: str) -> str:
    if t.dtype not in _CTYPE:
        raise _fail(m, f"{where}: tensor '{t.name}' is {t.dtype}; int8 or int16 expected")
    return _CTYPE[t.dtype]


class _Slots:
    """The scratch pool: tensors in slots, views (SPLIT parts) sharing their base's slot."""

    def __init__(self, last_use: dict[int, int]):
        self.last_use = last_use
        self.slot_of: dict[int, int] = {}
        self.users: dict[int, set[int]] = {}
        self.free: list[int] = []
        self.count = 0

    def take(self, tensor: int) -> int:
        slot = self.free.pop() if self.free else None
        if slot is None:
            slot, self.count = self.count, self.count + 1
        self.slot_of[tensor] = slot
        self.users[slot] = {tensor}
        return slot

    def view(self, tensor: int, base: int) -> None:
        slot = self.slot_of[base]
        self.slot_of[tensor] = slot
        self.users[slot].add(tensor)

    def release(self, tensors, k: int) -> None:
        """Drop the tensors read for the last time by step op ``k``; free emptied slots."""
        for t in set(tensors):
            if t in self.slot_of and self.last_use.get(t, -1) <= k:
                slot = self.slot_of.pop(t)
                self.users[slot].discard(t)
                if not self.users[slot]:
                    self.free.append(slot)


def build_loop_layer(m: TFLiteModel, op: Operator, op_index: int, index: int,
                     metas: list[dict] | dict | None) -> tuple[LoopPlan, dict]:
    """The plan of one WHILE op and, for the caller, how its WHILE outputs map to C buffers:
    ``{"x": position of the input sequence, "seq": position of the output sequence or None,
    "states": {position: state C name}, "ctypes": {position: int8_t | int16_t},
    "out_pos": position of the state the next stage reads, or None}``. ``metas``: the cells'
    metadata entries of this loop (one dict, or None, accepted too)."""
    metas = [] if metas is None else [metas] if isinstance(metas, dict) else list(metas)
    where = f"WHILE (op {op_index})"
    body_index = int(op.options.bodySubgraphIndex)
    body = m.subgraphs[body_index]
    slices = [o for o in body.operators if o.opcode == "SLICE"]
    dus = [o for o in body.operators if o.opcode == "DYNAMIC_UPDATE_SLICE"]
    if len(slices) != 1 or len(dus) > 1:
        raise _fail(m, f"{where}: the loop body is not one time step of recurrent layers "
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
        ctype = _ctype(m, t, where)
        init = main.tensors[op.inputs[pos]]
        if init.data is None:
            raise _fail(m, f"{where}: the initial value of '{t.name}' is not a constant")
        states[pos] = LoopState(name=f"$l{index}_s{pos}", n=_numel(t), ctype=ctype,
                                initial=np.asarray(init.data).reshape(-1), source="", tensor=t.name)
    if not states:
        raise _fail(m, f"{where}: the loop carries no state")

    # where the body's tensors live; intermediates get slots of the shared scratch pool.
    names: dict[int, _Ref] = {x_t: _Ref("int8_t", "x_t")}
    for pos, st in states.items():
        names[body.inputs[pos]] = _Ref(st.ctype, st.name)
    step_ops = [(i, o) for i, o in enumerate(body.operators)
                if o.opcode not in ("SLICE", "DYNAMIC_UPDATE_SLICE") and body.tensors[o.outputs[0]].dtype != "int32"]
    last_use: dict[int, int] = {}
    for k, (_, o) in enumerate(step_ops):
        for t in o.inputs:
            last_use[t] = k
    kept = [body.outputs[pos] for pos in states] + ([dus[0].inputs[1]] if dus else [])
    for t in kept:
        last_use[t] = len(step_ops)  # read after the last op (state copies, the output sequence)
    pool = _Slots(last_use)
    slot_size = 0
    ops: list[StepOp] = []
    arrays: list[ConstArray] = []
    n_input = _numel(body.tensors[x_t])
    for k, (i, o) in enumerate(step_ops):
        w = f"{where} body op {i} ({o.opcode})"
        if o.opcode not in STEP_OPS:
            raise _fail(m, f"{w}: operator {o.opcode} in a loop body is not supported by the native backend; "
                           f"it compiles {', '.join(STEP_OPS)} -- use --backend tflm for this model")
        if o.opcode in ("SPLIT", "SPLIT_V"):  # views of the input, no code
            src = o.inputs[1] if o.opcode == "SPLIT" else o.inputs[0]
            if src not in pool.slot_of:
                raise _fail(m, f"{w}: splits a tensor that is not an intermediate of the step")
            offset = names[src].offset
            for t_out in o.outputs:
                names[t_out] = _Ref(names[src].ctype, slot=names[src].slot, offset=offset)
                pool.view(t_out, src)
                offset += _numel(body.tensors[t_out])
            pool.release([src], k)
            continue
        y = body.tensors[o.outputs[0]]
        data_inputs = o.inputs[:1 if o.opcode in ("LOGISTIC", "TANH", "FULLY_CONNECTED", "QUANTIZE", "CAST") else 2]
        for t in data_inputs:
            if t not in names:
                raise _fail(m, f"{w}: reads tensor '{body.tensors[t].name}' that is neither the step input, "
                               "a state nor computed before")
        n = _numel(y)
        slot_size = max(slot_size, n)
        slot = pool.take(o.outputs[0])
        names[o.outputs[0]] = _Ref(_ctype(m, y, w), slot=slot)
        pool.release(o.inputs, k)
        x0 = body.tensors[data_inputs[0]]
        ins = [names[t] for t in data_inputs]
        label = f"op {i} {o.opcode} -> tensor {o.outputs[0]} ({y.dtype} {y.shape})"
        int16 = y.dtype == "int16"
        if o.opcode == "FULLY_CONNECTED":
            if int16:
                params = _fully_connected16(m, body, o, i, f"l{index}_op{i}")
                kind = "fc16"
            else:
                params: FullyConnectedPlan = _fully_connected(m, body, o, i, len(ops))
                for a in params.arrays:
                    a.name = f"l{index}_op{i}_{a.name.split('_', 1)[1]}"
                kind = "fc"
            arrays += params.arrays
        elif o.opcode in ("ADD", "SUB", "MUL"):
            if _numel(body.tensors[o.inputs[0]]) != n or _numel(body.tensors[o.inputs[1]]) != n:
                raise _fail(m, f"{w}: broadcasting {o.opcode} is not supported")
            params = mul_plan(m, body, o, w) if o.opcode == "MUL" else add_plan(m, body, o, w)
            kind = ("mul" if o.opcode == "MUL" else "add") + ("16" if int16 else "")
        elif o.opcode in ("LOGISTIC", "TANH") and int16:
            mult, shift = fp.int16_activation_params(_scale(x0), o.opcode == "TANH")
            if mult == 0:  # the power-of-two case: times 3 << shift
                mult, shift = 3 << shift, 0
            params, kind = Act16Plan("tanh" if o.opcode == "TANH" else "logistic", mult, shift), "act16"
        elif o.opcode in ("LOGISTIC", "TANH"):
            want = (1 / 256, -128) if o.opcode == "LOGISTIC" else (1 / 128, 0)
            if abs(_scale(y) - want[0]) > 1e-9 or _zp(y) != want[1]:
                raise _fail(m, f"{w}: output quantization ({_scale(y):g}, {_zp(y)}) is not TFLM's {want}")
            params = ConstArray(f"l{index}_op{i}_table", "int8_t", int8_activation_table(o.opcode, x0, y),
                                f"{o.opcode} of tensor {data_inputs[0]} (scale {_scale(x0):.9g}, zero point "
                                f"{_zp(x0)}) for inputs -128..127: TFLM's gemmlowp result, tabulated")
            arrays.append(params)
            kind = "lut"
        elif o.opcode == "QUANTIZE":
            if x0.dtype != "int16" or y.dtype != "int8":
                raise _fail(m, f"{w}: QUANTIZE {x0.dtype} -> {y.dtype}; only int16 -> int8 is compiled")
            params, kind = requant_plan(x0, y), "requant"
        else:  # CAST
            if x0.dtype != "int8" or y.dtype != "int16":
                raise _fail(m, f"{w}: CAST {x0.dtype} -> {y.dtype}; only int8 -> int16 is compiled")
            params, kind = None, "widen"
        regions = [_region(names[t], _numel(body.tensors[t])) for t in (*data_inputs, o.outputs[0])]
        ops.append(StepOp(op_index=i, opcode=o.opcode, kind=kind, inputs=ins, output=names[o.outputs[0]], n=n,
                          params=params, comment=label, regions=regions))

    def resolve(ref: _Ref) -> str:
        return ref.c(slot_size)

    for s in ops:
        s.inputs = [resolve(e) for e in s.inputs]
        s.output = resolve(s.output)
    for pos, st in states.items():
        src = body.outputs[pos]
        if src not in names:
            raise _fail(m, f"{where}: the new value of '{st.tensor}' is not computed by the step")
        st.source = resolve(names[src])
    outputs = []
    out_name, out_ctype = None, None
    if dus:
        written = dus[0].inputs[1]
        out_pos = next((p for p in states if body.outputs[p] == written), None)
        if out_pos is not None:
            out_name, out_ctype = states[out_pos].name, states[out_pos].ctype
        else:
            out_name, out_ctype = f"$l{index}_y", "int8_t"
            outputs.append((out_name, resolve(names[written]), _numel(body.tensors[written])))
    if out_name is None:  # the state of the last layer (the metadata's, else the last one)
        want = metas[-1].get("tensors", {}).get("state") if metas else None
        out_pos = next((p for p in states if body.inputs[p] == want), max(states))
        out_name, out_ctype = states[out_pos].name, states[out_pos].ctype
    first = metas[0] if metas else {}
    plan = LoopPlan(index=index, op_index=op_index, cell=first.get("cell", "rnn"), n_input=n_input,
                    n_cell=int(metas[-1]["units"]) if metas else max(s.n for s in states.values()),
                    body=body_index, ops=ops, states=list(states.values()), output_state=out_name,
                    output_ctype=out_ctype, slots=pool.count, slot_size=slot_size, arrays=arrays,
                    direction=direction, outputs=outputs, layers=list(metas))
    mapping = {"x": x_pos, "seq": seq_pos, "states": {p: s.name for p, s in states.items()},
               "ctypes": {p: s.ctype for p, s in states.items()},
               "out_pos": next((p for p, st in states.items() if st.name == out_name), None)}
    return plan, mapping


def model_metadata(m: TFLiteModel) -> dict | None:
    """edgernn's own metadata entry (``"edgernn"``), or None (absent or unreadable)."""
    return m.edgernn_metadata


_metadata = model_metadata
_add_plan = add_plan
_mul_plan = mul_plan
