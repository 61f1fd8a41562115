"""Read an int8 ``.tflite`` into the plan the native C is generated from.

The plan is the graph as a chain of steps with every constant the C needs already computed
(Q31 multipliers, shifts, folded biases, activation ranges): recurrent layers that run once
per time step, an optional "last time step" slice, and a head (fully connected layers and
softmax) run on the last step's output, or on every step's output when the model has no
slice (per-step outputs).

Supported: the graphs ``edgernn convert`` writes. LSTM models: UNIDIRECTIONAL_SEQUENCE_LSTM
(int8 x int8 -> int16 cell, stacked), STRIDED_SLICE of the last step or per-step heads;
GRU / SimpleRNN models: WHILE loops whose body is compiled op by op (:mod:`.loop`), stacked,
per-step heads, a Bidirectional first layer (``NAME_run`` only). Heads: FULLY_CONNECTED
(per-tensor or per-channel, fused NONE/RELU/RELU6/RELU_N1_TO_1) and SOFTMAX. Anything else is
refused with a one-line error naming the operator.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ...errors import UnsupportedLayerError
from ...tflite_model import Operator, Subgraph, Tensor, TFLiteModel
from . import prepare

SUPPORTED_OPS = ("UNIDIRECTIONAL_SEQUENCE_LSTM", "WHILE loops of GRU/SimpleRNN steps", "STRIDED_SLICE (last time step)",
                 "FULLY_CONNECTED", "SOFTMAX")

# Input positions of UNIDIRECTIONAL_SEQUENCE_LSTM (TFLM lstm_shared.h).
LSTM_INPUT = 0
LSTM_INPUT_WEIGHTS = {"input": 1, "forget": 2, "cell": 3, "output": 4}
LSTM_RECURRENT_WEIGHTS = {"input": 5, "forget": 6, "cell": 7, "output": 8}
LSTM_PEEPHOLES = (9, 10, 11)
LSTM_BIASES = {"input": 12, "forget": 13, "cell": 14, "output": 15}
LSTM_PROJECTION = (16, 17)
LSTM_HIDDEN_STATE = 18
LSTM_CELL_STATE = 19
LSTM_LAYER_NORM = (20, 21, 22, 23)
GATES = ("input", "forget", "cell", "output")


@dataclass
class ConstArray:
    """A constant array of the generated C file, with the comment saying where it comes from."""

    name: str
    ctype: str
    values: np.ndarray
    comment: str

    @property
    def nbytes(self) -> int:
        return int(self.values.size) * {"int8_t": 1, "int16_t": 2, "int32_t": 4}[self.ctype]


ROW_ALIGN = 16  # EDGERNN_ROW_ALIGN in edgernn_kernels.h


@dataclass
class LstmGatePlan:
    gate: str
    input_weights_tensor: str
    recurrent_weights_tensor: str
    bias_tensor: str
    input_multiplier: int
    input_shift: int
    input_real: float
    recurrent_multiplier: int
    recurrent_shift: int
    recurrent_real: float


@dataclass
class LstmPlan:
    index: int
    op_index: int
    n_input: int
    n_cell: int
    input_stride: int
    cell_stride: int
    input_scale: float
    input_zero_point: int
    hidden_scale: float
    hidden_zero_point: int
    cell_scale: float
    cell_scale_power: int
    gates: list[LstmGatePlan]
    input_weights: ConstArray
    input_bias: ConstArray
    recurrent_weights: ConstArray
    recurrent_bias: ConstArray
    forget_mul: tuple[int, int]
    input_mul: tuple[int, int]
    hidden_mul: tuple[int, int]
    cell_clip: float
    quantized_cell_clip: int
    cell_tanh: tuple[int, int]
    hidden_tensor: str
    cell_tensor: str

    @property
    def kind(self) -> str:
        return "lstm"

    @property
    def arrays(self) -> list[ConstArray]:
        return [self.input_weights, self.input_bias, self.recurrent_weights, self.recurrent_bias]

    @property
    def state_bytes(self) -> int:
        return self.n_cell * 1 + self.n_cell * 2  # int8 hidden + int16 cell

    @property
    def output_state(self) -> str:
        return f"$hidden{self.index}"


def padded(n: int) -> int:
    return -(-n // ROW_ALIGN) * ROW_ALIGN


def pack_gate_rows(per_gate: list[np.ndarray], stride: int) -> np.ndarray:
    """The four gates' [n_cell, n] matrices as [4][n_cell][stride], rows zero-padded to ``stride``."""
    n_cell, n = per_gate[0].shape
    out = np.zeros((4, n_cell, stride), np.int8)
    for g, w in enumerate(per_gate):
        out[g, :, :n] = w
    return out


@dataclass
class FullyConnectedPlan:
    index: int
    op_index: int
    n_input: int
    n_output: int
    weights: ConstArray
    bias: ConstArray
    multipliers: ConstArray
    shifts: ConstArray
    per_channel: bool
    output_zero_point: int
    output_scale: float
    activation: str
    activation_min: int
    activation_max: int

    @property
    def kind(self) -> str:
        return "fc"

    @property
    def arrays(self) -> list[ConstArray]:
        return [self.weights, self.bias, self.multipliers, self.shifts]

    @property
    def n_out(self) -> int:
        return self.n_output


@dataclass
class SoftmaxPlan:
    index: int
    op_index: int
    n: int
    beta: float
    input_scale: float
    input_multiplier: int
    input_left_shift: int
    diff_min: int

    @property
    def kind(self) -> str:
        return "softmax"

    @property
    def arrays(self) -> list[ConstArray]:
        return []

    @property
    def n_out(self) -> int:
        return self.n


@dataclass
class NativePlan:
    source: str
    sha256: str
    flatbuffer_bytes: int
    timesteps: int
    features: int
    input_scale: float
    input_zero_point: int
    output_scale: float
    output_zero_point: int
    recurrent: list[LstmPlan]
    last_step_only: bool  # True: the head runs on the last step; False: on every step
    head: list = field(default_factory=list)  # FullyConnectedPlan | SoftmaxPlan
    ops: list[str] = field(default_factory=list)
    bidirectional: bool = False  # the last two layers are a Bidirectional pair: NAME_run only
    merge: object = None  # loop.MergePlan of the Bidirectional pair

    @property
    def head_source(self) -> str:
        """C expression (``$`` = model prefix) of the vector the head reads."""
        return "$merged" if self.merge is not None else self.recurrent[-1].output_state

    @property
    def step_outputs(self) -> int:
        if self.head:
            return self.head[-1].n_out
        return self.merge.n if self.merge is not None else self.recurrent[-1].n_cell

    @property
    def outputs(self) -> int:
        return self.step_outputs if self.last_step_only else self.timesteps * self.step_outputs

    @property
    def state_bytes(self) -> int:
        return sum(layer.state_bytes for layer in self.recurrent)

    @property
    def head_buffer(self) -> int:
        """int8 ping-pong buffers between head layers (the last one writes to y)."""
        inner = [layer.n_out for layer in self.head[:-1]]
        return max(inner) if inner else 0

    @property
    def head_buffers(self) -> int:
        return min(2, max(0, len(self.head) - 1))

    @property
    def vector_buffer(self) -> int:
        """int16 values of the widened input + hidden vectors, shared by the LSTM layers."""
        return max([layer.input_stride + layer.cell_stride for layer in self.recurrent if layer.kind == "lstm"],
                   default=0)

    @property
    def lstm_units(self) -> int:
        """Units of the widest LSTM layer: its int32 accumulators (2 per unit) and int16 gate values
        (4 per unit) are scratch shared by the LSTM layers."""
        return max([layer.n_cell for layer in self.recurrent if layer.kind == "lstm"], default=0)

    @property
    def loop_scratch(self) -> int:
        """int8 bytes of the step intermediates, shared by the WHILE-loop layers."""
        return max([layer.scratch_bytes for layer in self.recurrent if layer.kind == "loop"], default=0)

    @property
    def scratch_bytes(self) -> int:
        merged = self.merge.n if self.merge is not None else 0
        lstm = 2 * self.vector_buffer + 4 * 2 * self.lstm_units + 2 * 4 * self.lstm_units
        return lstm + self.loop_scratch + self.head_buffers * self.head_buffer + merged

    @property
    def weight_bytes(self) -> int:
        return sum(a.nbytes for layer in (*self.recurrent, *self.head) for a in layer.arrays)


def _fail(m: TFLiteModel, msg: str) -> UnsupportedLayerError:
    return UnsupportedLayerError(f"{m.path}: {msg}")


def _scale(t: Tensor) -> float:
    return float(t.scale[0]) if t.scale is not None and len(t.scale) else 0.0


def _zp(t: Tensor) -> int:
    return int(t.zero_point[0]) if t.zero_point is not None and len(t.zero_point) else 0


def _need(m: TFLiteModel, sg: Subgraph, op: Operator, pos: int, what: str) -> Tensor:
    if pos >= len(op.inputs) or op.inputs[pos] < 0:
        raise _fail(m, f"{op.opcode} is missing its {what} (input {pos}); the native backend needs "
                       "a standard Keras LSTM (no CIFG)")
    return sg.tensors[op.inputs[pos]]


def _lstm(m: TFLiteModel, sg: Subgraph, op: Operator, op_index: int, index: int) -> LstmPlan:
    opts = op.options
    where = f"{op.opcode} (op {op_index})"
    variants = ([(p, "peephole weights") for p in LSTM_PEEPHOLES] + [(p, "projection") for p in LSTM_PROJECTION]
                + [(p, "layer normalization") for p in LSTM_LAYER_NORM])
    for pos, what in variants:
        if pos < len(op.inputs) and op.inputs[pos] >= 0:
            raise _fail(m, f"{where} uses {what}, which the native backend does not implement; "
                           "use --backend tflm for this model")
    if opts is not None and int(getattr(opts, "fusedActivationFunction", prepare.ACT_TANH)) != prepare.ACT_TANH:
        act = prepare.ACT_NAMES.get(int(opts.fusedActivationFunction), opts.fusedActivationFunction)
        raise _fail(m, f"{where} has cell activation {act}; the native backend (like TFLM's integer LSTM) "
                       "supports tanh only")
    x = _need(m, sg, op, LSTM_INPUT, "input")
    hidden = _need(m, sg, op, LSTM_HIDDEN_STATE, "hidden state")
    cell = _need(m, sg, op, LSTM_CELL_STATE, "cell state")
    if x.dtype != "int8" or hidden.dtype != "int8" or cell.dtype != "int16":
        raise _fail(m, f"{where} is {x.dtype} x {cell.dtype}-cell; the native backend compiles int8 LSTMs "
                       "with an int16 cell state (the int8 model `edgernn convert` writes)")
    time_major = bool(getattr(opts, "timeMajor", False))
    batch = x.shape[1] if time_major else x.shape[0]
    if len(x.shape) != 3 or batch != 1:
        raise _fail(m, f"{where} input shape {x.shape}: the native backend runs batch-1 sequences")
    n_input, n_cell = int(x.shape[2]), int(np.prod(hidden.shape))
    in_scale, in_zp = _scale(x), _zp(x)
    h_scale, h_zp = _scale(hidden), _zp(hidden)
    c_scale = _scale(cell)
    power, exact = prepare.checked_log2(c_scale)
    if not exact:
        raise _fail(m, f"{where}: cell state scale {c_scale:g} is not a power of two, which TFLM's "
                       "integer LSTM requires")
    gates = []
    wxs, whs, bxs, bhs = [], [], [], []
    for g in GATES:
        wx = _need(m, sg, op, LSTM_INPUT_WEIGHTS[g], f"input-to-{g} weights")
        wh = _need(m, sg, op, LSTM_RECURRENT_WEIGHTS[g], f"recurrent-to-{g} weights")
        b = _need(m, sg, op, LSTM_BIASES[g], f"{g} gate bias")
        for w in (wx, wh):
            if w.dtype != "int8" or w.data is None:
                raise _fail(m, f"{where}: {g} gate weights '{w.name}' are {w.dtype}; int8 constants expected")
            if w.scale is not None and len(w.scale) > 1:
                raise _fail(m, f"{where}: per-channel LSTM weights ('{w.name}') are not supported by TFLM's "
                               "integer LSTM either; convert with per-tensor LSTM weights")
            if _zp(w) != 0:
                raise _fail(m, f"{where}: weights '{w.name}' have zero point {_zp(w)}; symmetric int8 expected")
        if wx.data.shape != (n_cell, n_input) or wh.data.shape != (n_cell, n_cell):
            raise _fail(m, f"{where}: {g} gate weight shapes {wx.data.shape}, {wh.data.shape} do not match "
                           f"{n_cell} units x {n_input} inputs")
        if b.dtype != "int32" or b.data is None or b.data.shape != (n_cell,):
            raise _fail(m, f"{where}: {g} gate bias '{b.name}' is {b.dtype} {b.shape}; int32 [{n_cell}] expected")
        real_x = prepare.conv_multiplier(in_scale, _scale(wx), prepare.GATE_PREACTIVATION_SCALE)
        real_h = prepare.conv_multiplier(h_scale, _scale(wh), prepare.GATE_PREACTIVATION_SCALE)
        mx, sx = prepare.quantize_multiplier(real_x)
        mh, sh = prepare.quantize_multiplier(real_h)
        wxs.append(np.asarray(wx.data, np.int8))
        whs.append(np.asarray(wh.data, np.int8))
        bxs.append(prepare.folded_bias(wx.data, b.data, in_zp))
        bhs.append(prepare.folded_bias(wh.data, None, h_zp))
        gates.append(LstmGatePlan(
            gate=g, input_weights_tensor=f"{wx.index} '{wx.name}' (scale {_scale(wx):.9g})",
            recurrent_weights_tensor=f"{wh.index} '{wh.name}' (scale {_scale(wh):.9g})",
            bias_tensor=f"{b.index} '{b.name}'",
            input_multiplier=mx, input_shift=sx, input_real=real_x,
            recurrent_multiplier=mh, recurrent_shift=sh, recurrent_real=real_h))
    in_stride, cell_stride = padded(n_input), padded(n_cell)
    p = f"lstm{index}"
    order = ", ".join(GATES)
    input_weights = ConstArray(
        f"{p}_input_weights", "int8_t", pack_gate_rows(wxs, in_stride),
        f"input-to-gate weights ({order}: tensors "
        f"{', '.join(str(op.inputs[LSTM_INPUT_WEIGHTS[g]]) for g in GATES)}) [4][{n_cell}][{in_stride}], "
        f"rows zero-padded from {n_input} to {in_stride} columns")
    recurrent_weights = ConstArray(
        f"{p}_recurrent_weights", "int8_t", pack_gate_rows(whs, cell_stride),
        f"recurrent-to-gate weights ({order}: tensors "
        f"{', '.join(str(op.inputs[LSTM_RECURRENT_WEIGHTS[g]]) for g in GATES)}) [4][{n_cell}][{cell_stride}]"
        + (f", rows zero-padded from {n_cell} columns" if cell_stride != n_cell else ""))
    input_bias = ConstArray(
        f"{p}_input_bias", "int32_t", np.concatenate(bxs),
        f"gate biases (tensors {', '.join(str(op.inputs[LSTM_BIASES[g]]) for g in GATES)}) "
        f"- input zero point ({in_zp}) x row sums of the input weights, [4][{n_cell}]")
    recurrent_bias = ConstArray(
        f"{p}_recurrent_bias", "int32_t", np.concatenate(bhs),
        f"-hidden zero point ({h_zp}) x row sums of the recurrent weights (the recurrent product has no bias)")
    clip = float(getattr(opts, "cellClip", 0.0) or 0.0)
    return LstmPlan(
        index=index, op_index=op_index, n_input=n_input, n_cell=n_cell, input_stride=in_stride,
        cell_stride=cell_stride, input_scale=in_scale,
        input_zero_point=in_zp, hidden_scale=h_scale, hidden_zero_point=h_zp, cell_scale=c_scale,
        cell_scale_power=power, gates=gates, input_weights=input_weights, input_bias=input_bias,
        recurrent_weights=recurrent_weights, recurrent_bias=recurrent_bias,
        forget_mul=prepare.inter_gate_mul_multiplier(prepare.GATE_OUTPUT_SCALE, c_scale, c_scale),
        input_mul=prepare.inter_gate_mul_multiplier(prepare.GATE_OUTPUT_SCALE, prepare.GATE_OUTPUT_SCALE, c_scale),
        hidden_mul=prepare.inter_gate_mul_multiplier(prepare.GATE_OUTPUT_SCALE, prepare.GATE_OUTPUT_SCALE, h_scale),
        cell_clip=clip, quantized_cell_clip=prepare.quantized_cell_clip(clip, c_scale) if clip > 0 else 0,
        cell_tanh=prepare.tanh_prescale(power), hidden_tensor=hidden.name, cell_tensor=cell.name)


def _is_last_step_slice(sg: Subgraph, op: Operator, seq: Tensor) -> bool:
    """STRIDED_SLICE x[:, -1, :] (shrinking the time axis) of a (1, T, H) sequence."""
    if len(op.inputs) < 4 or any(i < 0 or sg.tensors[i].data is None for i in op.inputs[1:4]):
        return False
    begin, end, strides = (np.asarray(sg.tensors[i].data).reshape(-1) for i in op.inputs[1:4])
    o = op.options
    if len(seq.shape) != 3 or len(begin) != 3:
        return False
    if int(getattr(o, "ellipsisMask", 0)) or int(getattr(o, "newAxisMask", 0)):
        return False
    t = seq.shape[1]
    shrink = int(getattr(o, "shrinkAxisMask", 0))
    if not shrink & 2 or int(strides[1]) != 1 or int(begin[1]) not in (-1, t - 1):
        return False
    out = sg.tensors[op.outputs[0]]
    return int(np.prod(out.shape)) == seq.shape[0] * seq.shape[2]


def build_plan(m: TFLiteModel) -> NativePlan:
    sg = m.main
    if "WHILE" in m.op_counts:
        from .loop import build_loop_model

        return build_loop_model(m)
    if len(sg.inputs) != 1 or len(sg.outputs) != 1:
        raise _fail(m, f"the native backend compiles models with one input and one output, "
                       f"this one has {len(sg.inputs)} and {len(sg.outputs)}")
    x = sg.tensors[sg.inputs[0]]
    if x.dtype != "int8" or len(x.shape) != 3 or x.shape[0] != 1:
        raise _fail(m, f"input '{x.name}' is {x.dtype} {x.shape}; the native backend expects the int8 "
                       "(1, T, F) input that `edgernn convert` writes")
    cur = sg.inputs[0]
    recurrent: list[LstmPlan] = []
    head: list = []
    last_step_only = False
    names = []
    for i, op in enumerate(sg.operators):
        names.append(op.opcode)
        if not op.inputs or op.inputs[0] != cur:
            raise _fail(m, f"op {i} ({op.opcode}) does not read the previous op's output; the native backend "
                           "compiles a single chain of layers")
        if op.opcode == "UNIDIRECTIONAL_SEQUENCE_LSTM":
            if head or last_step_only:
                raise _fail(m, f"op {i}: an LSTM after the output layers is not supported")
            recurrent.append(_lstm(m, sg, op, i, len(recurrent)))
        elif op.opcode == "STRIDED_SLICE":
            if not recurrent or head or last_step_only or not _is_last_step_slice(sg, op, sg.tensors[cur]):
                raise _fail(m, f"op {i}: STRIDED_SLICE other than 'last time step of the recurrent output' "
                               "is not supported by the native backend")
            last_step_only = True
        elif op.opcode == "FULLY_CONNECTED":
            if not recurrent:
                raise _fail(m, f"op {i}: FULLY_CONNECTED before the first recurrent layer is not supported")
            head.append(_fully_connected(m, sg, op, i, len(head)))
        elif op.opcode == "SOFTMAX":
            if not recurrent:
                raise _fail(m, f"op {i}: SOFTMAX before the first recurrent layer is not supported")
            head.append(_softmax(m, sg, op, i, len(head)))
        else:
            raise _fail(m, f"operator {op.opcode} (op {i}) is not supported by the native backend; it compiles "
                           f"{', '.join(SUPPORTED_OPS)} -- use --backend tflm for this model")
        cur = op.outputs[0]
    if cur != sg.outputs[0] or not recurrent:
        raise _fail(m, "the graph's output is not the end of a recurrent-layer chain")
    y = sg.tensors[cur]
    if y.dtype != "int8":
        raise _fail(m, f"output '{y.name}' is {y.dtype}; int8 expected")
    raw = m.raw
    return NativePlan(source=Path(m.path).name, sha256=hashlib.sha256(raw).hexdigest(), flatbuffer_bytes=len(raw),
                      timesteps=int(x.shape[1]), features=int(x.shape[2]), input_scale=_scale(x),
                      input_zero_point=_zp(x), output_scale=_scale(y), output_zero_point=_zp(y),
                      recurrent=recurrent, last_step_only=last_step_only, head=head, ops=names)


def _fully_connected(m: TFLiteModel, sg: Subgraph, op: Operator, op_index: int, index: int) -> FullyConnectedPlan:
    x = sg.tensors[op.inputs[0]]
    w = _need(m, sg, op, 1, "weights")
    b = sg.tensors[op.inputs[2]] if len(op.inputs) > 2 and op.inputs[2] >= 0 else None
    y = sg.tensors[op.outputs[0]]
    where = f"FULLY_CONNECTED (op {op_index})"
    if x.dtype != "int8" or w.dtype != "int8" or y.dtype != "int8" or w.data is None:
        raise _fail(m, f"{where} is {x.dtype} x {w.dtype} -> {y.dtype}; the native backend compiles "
                       "int8 x int8 -> int8")
    if b is not None and (b.dtype != "int32" or b.data is None):
        raise _fail(m, f"{where}: bias '{b.name}' is {b.dtype}; int32 constants expected")
    if w.data.ndim != 2:
        raise _fail(m, f"{where}: weights shape {w.data.shape}; 2-D expected")
    if np.any(np.asarray(w.zero_point) != 0):
        raise _fail(m, f"{where}: weights '{w.name}' are asymmetric; symmetric int8 expected")
    n_out, n_in = (int(d) for d in w.data.shape)
    act = int(getattr(op.options, "fusedActivationFunction", 0) or 0)
    if act not in (prepare.ACT_NONE, prepare.ACT_RELU, prepare.ACT_RELU6, prepare.ACT_RELU_N1_TO_1):
        raise _fail(m, f"{where}: fused activation {prepare.ACT_NAMES.get(act, act)} is not supported")
    in_scale, in_zp, out_scale, out_zp = _scale(x), _zp(x), _scale(y), _zp(y)
    per_channel = w.scale is not None and len(w.scale) > 1
    w_scales = [float(s) for s in w.scale] if per_channel else [_scale(w)]
    qs = [prepare.quantize_multiplier(prepare.conv_multiplier(in_scale, s, out_scale)) for s in w_scales]
    lo, hi = prepare.activation_range(act, out_scale, out_zp)
    p = f"fc{index}"
    kind = f"per-channel ({n_out} scales)" if per_channel else "per-tensor"
    return FullyConnectedPlan(
        index=index, op_index=op_index, n_input=n_in, n_output=n_out,
        weights=ConstArray(f"{p}_weights", "int8_t", np.asarray(w.data, np.int8),
                           f"tensor {w.index} '{w.name}': weights [{n_out}][{n_in}], {kind}"),
        bias=ConstArray(f"{p}_bias", "int32_t", prepare.folded_bias(w.data, None if b is None else b.data, in_zp),
                        (f"tensor {b.index} '{b.name}'" if b is not None else "no bias") +
                        f" - input zero point ({in_zp}) x row sums of tensor {w.index}"),
        multipliers=ConstArray(f"{p}_multipliers", "int32_t", np.array([q[0] for q in qs], np.int64),
                               f"QuantizeMultiplier(input scale {in_scale:.9g} x weight scale / output scale "
                               f"{out_scale:.9g}), {kind}"),
        shifts=ConstArray(f"{p}_shifts", "int32_t", np.array([q[1] for q in qs], np.int64),
                          "exponents of the multipliers above (negative: right shift)"),
        per_channel=per_channel, output_zero_point=out_zp, output_scale=out_scale,
        activation=prepare.ACT_NAMES[act], activation_min=lo, activation_max=hi)


def _softmax(m: TFLiteModel, sg: Subgraph, op: Operator, op_index: int, index: int) -> SoftmaxPlan:
    x = sg.tensors[op.inputs[0]]
    y = sg.tensors[op.outputs[0]]
    where = f"SOFTMAX (op {op_index})"
    if x.dtype != "int8" or y.dtype != "int8":
        raise _fail(m, f"{where} is {x.dtype} -> {y.dtype}; int8 -> int8 expected")
    if _zp(y) != -128 or abs(_scale(y) - 1 / 256) > 1e-9:
        raise _fail(m, f"{where}: output quantization ({_scale(y):g}, {_zp(y)}) is not TFLM's (1/256, -128)")
    beta = float(getattr(op.options, "beta", 1.0))
    mult, shift, diff_min = prepare.softmax_params(beta, _scale(x))
    return SoftmaxPlan(index=index, op_index=op_index, n=int(x.shape[-1]), beta=beta, input_scale=_scale(x),
                       input_multiplier=mult, input_left_shift=shift, diff_min=diff_min)
