"""The fused int8 LSTM models' plan: UNIDIRECTIONAL_SEQUENCE_LSTM layers, read from the flatbuffer.

:func:`build_lstm_model` reads a chain of fused LSTM layers (the TFLite converter's
``UNIDIRECTIONAL_SEQUENCE_LSTM``, int8 x int8 -> int16 cell, stacked), an optional STRIDED_SLICE
of the last time step and the head, and computes every constant of TFLM's integer LSTM the way
its Prepare does (:mod:`.prepare`).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...tflite_model import Operator, Subgraph, Tensor, TFLiteModel
from . import prepare
from .fastlstm import FastLstm, fast_lstm
from .plan import ConstArray, NativePlan, _check_sequence_io, _fail, _fully_connected, _need, _scale, _softmax, _zp

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
    fast: FastLstm | None = None  # the fast kernels' form of the layer (None: edgernn_lstm_step)
    fast_reason: str = ""  # why the layer keeps the reference kernel

    @property
    def kind(self) -> str:
        return "lstm"

    @property
    def arrays(self) -> list[ConstArray]:
        if self.fast is not None:
            return self.fast.arrays
        return [self.input_weights, self.input_bias, self.recurrent_weights, self.recurrent_bias]

    @property
    def units(self) -> int:
        """Units the gate pre-activation buffer holds for this layer (padded by the fast layouts)."""
        return self.fast.units if self.fast is not None else self.n_cell

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


def build_lstm_model(m: TFLiteModel, kernel: str = "reference") -> NativePlan:
    """NativePlan of a model whose recurrent layers are fused LSTMs (no WHILE loop); ``kernel``
    (:data:`.fastlstm.KERNELS`) picks the LSTM layers' kernel where its preconditions hold."""
    sg = m.main
    x = _check_sequence_io(m)
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
    for layer in recurrent:
        layer.fast, layer.fast_reason = fast_lstm(layer, kernel)
    raw = m.raw
    return NativePlan(source=Path(m.path).name, sha256=hashlib.sha256(raw).hexdigest(), flatbuffer_bytes=len(raw),
                      timesteps=int(x.shape[1]), features=int(x.shape[2]), input_scale=_scale(x),
                      input_zero_point=_zp(x), output_scale=_scale(y), output_zero_point=_zp(y),
                      recurrent=recurrent, last_step_only=last_step_only, head=head, ops=names)
