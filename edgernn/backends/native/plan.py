"""The plan the native C is generated from, and the head layers' part of building it.

The plan is the graph as a chain of steps with every constant the C needs already computed
(Q31 multipliers, shifts, folded biases, activation ranges): recurrent layers that run once
per time step, an optional "last time step" slice, and a head (fully connected layers and
softmax) run on the last step's output, or on every step's output when the model has no
slice (per-step outputs).

Supported: the graphs ``edgernn convert`` writes. LSTM models: UNIDIRECTIONAL_SEQUENCE_LSTM
(int8 x int8 -> int16 cell, stacked), STRIDED_SLICE of the last step or per-step heads
(:mod:`.lstm`); GRU / SimpleRNN models: WHILE loops whose body is compiled op by op
(:mod:`.loop`), stacked, per-step heads, Bidirectional layers anywhere in the stack (``NAME_run``
only: each layer runs over the whole window before the next).
Heads (here): FULLY_CONNECTED (per-tensor or per-channel, fused NONE/RELU/RELU6/RELU_N1_TO_1)
and SOFTMAX. Anything else is refused with a one-line error naming the operator.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...errors import UnsupportedLayerError
from ...tflite_model import Operator, Subgraph, Tensor, TFLiteModel
from . import prepare
from .softmax import softmax_exp_table

@dataclass
class ConstArray:
    """A constant array of the generated C file, with the comment saying where it comes from."""

    name: str
    ctype: str
    values: np.ndarray
    comment: str
    alt: np.ndarray | None = None  # the same array for the C twin, under #else of #if EDGERNN_USE_MVE

    @property
    def nbytes(self) -> int:
        return int(self.values.size) * {"int8_t": 1, "int16_t": 2, "int32_t": 4, "uint32_t": 4, "int64_t": 8}[self.ctype]


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
    exp_table: ConstArray  # Q0.31 exp of -d = x - max(row), softmax.softmax_exp_table

    @property
    def kind(self) -> str:
        return "softmax"

    @property
    def arrays(self) -> list[ConstArray]:
        return [self.exp_table]

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
    recurrent: list  # lstm.LstmPlan | loop.LoopPlan, in execution order
    last_step_only: bool  # True: the head runs on the last step; False: on every step
    head: list = field(default_factory=list)  # FullyConnectedPlan | SoftmaxPlan (| loop_model's fc16 / quantize)
    ops: list[str] = field(default_factory=list)
    bidirectional: bool = False  # a Bidirectional layer: whole windows only (NAME_run), layer by layer
    merge: object = None  # loop_model.MergePlan of the last Bidirectional pair's final states
    stages: list = field(default_factory=list)  # loop_model.Stage per loop of a Bidirectional model
    graph: object = None  # graph.GraphPlan: models with tensor ops (convolutions, pools...), see graph.py
    loop_scratch_unused: bool = False  # the fast steps keep every intermediate in registers (emit.py)

    @property
    def sequence_buffers(self) -> list[tuple[str, int]]:
        """(C name, bytes) of the int8 hidden-state sequences a Bidirectional model keeps between
        layers: ``timesteps`` rows each, two buffers used in turn."""
        sizes: dict[str, int] = {}
        for s in self.stages:
            if s.output is not None:
                sizes[s.output] = max(sizes.get(s.output, 0), self.timesteps * s.width)
        return sorted(sizes.items())

    @property
    def head_source(self) -> str:
        """C expression (``$`` = model prefix) of the vector the head reads."""
        if self.merge is not None:
            return "$merged16" if self.merge.int16_out else "$merged"
        return self.recurrent[-1].output_state

    @property
    def step_outputs(self) -> int:
        if self.graph is not None:
            return self.graph.step_outputs
        if self.head:
            return self.head[-1].n_out
        return self.merge.n if self.merge is not None else self.recurrent[-1].n_cell

    @property
    def outputs(self) -> int:
        if self.graph is not None and not self.graph.streaming:
            return self.graph.step_outputs
        return self.step_outputs if self.last_step_only else self.timesteps * self.step_outputs

    @property
    def state_bytes(self) -> int:
        rings = self.graph.ring_bytes if self.graph is not None else 0
        return sum(layer.state_bytes for layer in self.recurrent) + rings

    def _head_writers(self) -> list:
        """(index, layer) of the head layers that write an int8 ping-pong buffer: all but the last
        (which writes y) and a 16x8 FULLY_CONNECTED (which writes ``NAME_head16``)."""
        return [(i, layer) for i, layer in enumerate(self.head[:-1]) if layer.kind != "fc16"]

    @property
    def head_buffer(self) -> int:
        """Bytes of each int8 ping-pong buffer between head layers."""
        return max((layer.n_out for _, layer in self._head_writers()), default=0)

    @property
    def head_buffer_ids(self) -> list[int]:
        """The ping-pong buffers written (layer i writes ``NAME_head_buffer{i % 2}``): only those are
        declared, so no unused static (clang's -Wunneeded-internal-declaration) and no wasted RAM."""
        return sorted({i % 2 for i, _ in self._head_writers()})

    @property
    def head16(self) -> int:
        """int16 values of a 16x8 head FULLY_CONNECTED's output (``NAME_head16``; 0: none)."""
        return max([layer.n_out for layer in self.head if layer.kind == "fc16"], default=0)

    def _lstm_layers(self, fast: bool) -> list:
        return [layer for layer in self.recurrent if layer.kind == "lstm" and (layer.fast is not None) == fast]

    @property
    def fast_lstms(self) -> list:
        """The LSTM layers on a fast kernel (edgernn_pairs.h / edgernn_rows.h)."""
        return self._lstm_layers(True)

    @property
    def fast_loops(self) -> list:
        """The WHILE-loop layers with a fast step (edgernn/backends/native/fastloop.py)."""
        return [layer for layer in self.recurrent if layer.kind == "loop" and layer.fast is not None]

    @property
    def fast_kernels(self) -> list[str]:
        loops = {"pairs"} if any(layer.fast.fcs for layer in self.fast_loops) else set()
        return sorted({layer.fast.kernel for layer in self.fast_lstms} | loops)

    @property
    def vector_buffer(self) -> int:
        """int16 values of the widened input + hidden vectors, shared by the reference-kernel LSTM layers."""
        return max([layer.input_stride + layer.cell_stride for layer in self._lstm_layers(False)], default=0)

    @property
    def lstm_units(self) -> int:
        """Units of the widest reference-kernel LSTM layer: its int32 accumulators (2 per unit)."""
        return max([layer.n_cell for layer in self._lstm_layers(False)], default=0)

    @property
    def gate_units(self) -> int:
        """Units of the widest LSTM layer (padded by the fast layouts): the int16 gate values
        (4 per unit) are scratch shared by the LSTM layers."""
        return max([layer.units for layer in self.recurrent if layer.kind == "lstm"], default=0)

    @property
    def fast_vectors(self) -> int:
        """Bytes of the fast layers' own int16 / int8 input and hidden vectors."""
        return sum(layer.fast.scratch_bytes for layer in self._lstm_layers(True) + self.fast_loops)

    @property
    def loop_scratch(self) -> int:
        """Bytes of the step intermediates (an int16 pool), shared by the WHILE-loop layers (0 when
        no step reads the pool: not declared)."""
        if self.loop_scratch_unused:
            return 0
        return max([layer.scratch_bytes for layer in self.recurrent if layer.kind == "loop"], default=0)

    @property
    def scratch_bytes(self) -> int:
        merged = 0
        if self.merge is not None:
            merged = (0 if self.merge.int16_out else self.merge.n) + \
                (2 * self.merge.n if self.merge.kind in ("add16", "concat16") else 0)
        lstm = 2 * self.vector_buffer + 4 * 2 * self.lstm_units + 2 * 4 * self.gate_units + self.fast_vectors
        sequences = sum(n for _, n in self.sequence_buffers)
        graph = self.graph.arena_bytes + self.graph.f32_bytes if self.graph is not None else 0
        return (lstm + self.loop_scratch + len(self.head_buffer_ids) * self.head_buffer + 2 * self.head16 + merged + sequences
                + graph)

    @property
    def weight_bytes(self) -> int:
        graph = self.graph.weight_bytes if self.graph is not None else 0
        return sum(a.nbytes for layer in (*self.recurrent, *self.head) for a in layer.arrays) + graph


def _fail(m: TFLiteModel, msg: str) -> UnsupportedLayerError:
    return UnsupportedLayerError(f"{m.path}: {msg}")


def _check_sequence_io(m: TFLiteModel) -> Tensor:
    """The main graph's input tensor, checked: the native backends compile one int8 (1, T, F)
    input and one output, as `edgernn convert` writes."""
    sg = m.main
    if len(sg.inputs) != 1 or len(sg.outputs) != 1:
        raise _fail(m, f"the native backend compiles models with one input and one output, "
                       f"this one has {len(sg.inputs)} and {len(sg.outputs)}")
    x = sg.tensors[sg.inputs[0]]
    if x.dtype != "int8" or len(x.shape) != 3 or x.shape[0] != 1:
        raise _fail(m, f"input '{x.name}' is {x.dtype} {x.shape}; the native backend expects the int8 "
                       "(1, T, F) input that `edgernn convert` writes")
    return x


def _scale(t: Tensor) -> float:
    return float(t.scale[0]) if t.scale is not None and len(t.scale) else 0.0


def _zp(t: Tensor) -> int:
    return int(t.zero_point[0]) if t.zero_point is not None and len(t.zero_point) else 0


def _need(m: TFLiteModel, sg: Subgraph, op: Operator, pos: int, what: str) -> Tensor:
    if pos >= len(op.inputs) or op.inputs[pos] < 0:
        raise _fail(m, f"{op.opcode} is missing its {what} (input {pos}); the native backend needs "
                       "a standard Keras LSTM (no CIFG)")
    return sg.tensors[op.inputs[pos]]


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


def _softmax(m: TFLiteModel, sg: Subgraph, op: Operator, op_index: int, index: int,
             prefix: str | None = None) -> SoftmaxPlan:
    x = sg.tensors[op.inputs[0]]
    y = sg.tensors[op.outputs[0]]
    where = f"SOFTMAX (op {op_index})"
    if x.dtype != "int8" or y.dtype != "int8":
        raise _fail(m, f"{where} is {x.dtype} -> {y.dtype}; int8 -> int8 expected")
    if _zp(y) != -128 or abs(_scale(y) - 1 / 256) > 1e-9:
        raise _fail(m, f"{where}: output quantization ({_scale(y):g}, {_zp(y)}) is not TFLM's (1/256, -128)")
    beta = float(getattr(op.options, "beta", 1.0))
    mult, shift, diff_min = prepare.softmax_params(beta, _scale(x))
    table = softmax_exp_table(mult, shift, diff_min)
    comment = (f"SOFTMAX (op {op_index}), beta {beta}, input scale {_scale(x):.9g}: exp(x - max(row)) in Q0.31 "
               f"for x - max = 0 .. -{len(table) - 1}, TFLM's steps at generation time: "
               f"MultiplyByQuantizedMultiplierGreaterThanOne(x - max, {mult}, {shift}) (PreprocessSoftmaxScaling), "
               f"exp_on_negative_values in Q5.26; diff_min {diff_min}, exps below 2^11 cut (they give 0)")
    return SoftmaxPlan(index=index, op_index=op_index, n=int(x.shape[-1]), beta=beta, input_scale=_scale(x),
                       input_multiplier=mult, input_left_shift=shift, diff_min=diff_min,
                       exp_table=ConstArray(f"{prefix or f'softmax{index}'}_exp", "int32_t", table, comment))
