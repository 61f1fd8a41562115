"""A small op-graph description written straight to an int8 TFLite flatbuffer.

edgernn builds the GRU / SimpleRNN graphs itself instead of asking the TFLite converter
(whose int8 path crashes on recurrent WHILE loops): a :class:`Program` is a list of
:class:`Graph` (subgraph 0 is the main graph, then WHILE cond/body graphs), each a list of
named tensors and builtin ops. The same program is run in float by
:func:`edgernn.quantize.calibrate.run_float` to get calibration ranges, then
:func:`write_flatbuffer` writes it with int8 tensors and the quantization parameters chosen in
:func:`assign_quantization`. Tensor names are global to the program: a name always has one
quantization, in every subgraph.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import numpy as np

from ...errors import EdgeRNNError
from ...quantize.params import (LOGISTIC_OUT, SOFTMAX_OUT, TANH_OUT, QParams, activation_params, quantize_bias,
                                quantize_weights)
from .options import layer_options
from .serialize import pack

METADATA_NAME = "edgernn"


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: str  # "int8" | "int32" | "bool"
    data: np.ndarray | None = None  # float values of int8 constants, int32 values of int32 constants
    role: str = "act"  # act | weight | bias | state (int8 constant state) | fill | index
    variable: bool = False  # a TFLM variable tensor: persists between invokes until reset()
    bias_of: tuple[str, str] | None = None  # (input tensor, weight tensor) deciding a bias' scale
    channel_axis: int = 0  # a weight's per-channel axis (3 for DEPTHWISE_CONV_2D)


@dataclass
class Op:
    code: str
    inputs: list[str | None]
    outputs: list[str]
    opts: dict = field(default_factory=dict)


@dataclass
class Graph:
    name: str
    tensors: dict[str, Tensor] = field(default_factory=dict)
    ops: list[Op] = field(default_factory=list)
    inputs: list[str] = field(default_factory=list)
    outputs: list[str] = field(default_factory=list)

    def add(self, name: str, shape, dtype: str = "int8", **kw) -> str:
        if name in self.tensors:
            raise AssertionError(f"tensor {name} defined twice in {self.name}")
        self.tensors[name] = Tensor(name, tuple(int(d) for d in shape), dtype, **kw)
        return name

    def const_i32(self, name: str, values) -> str:
        v = np.asarray(values, np.int32)
        return self.add(name, v.shape, "int32", data=v, role="index")

    def op(self, code: str, inputs, outputs, **opts) -> None:
        self.ops.append(Op(code, list(inputs), list(outputs), opts))


@dataclass
class Program:
    graphs: list[Graph]
    ties: list[tuple[str, ...]] = field(default_factory=list)  # names that share one quantization
    fixed: dict[str, QParams] = field(default_factory=dict)  # kernel-imposed output quantization
    clip: dict[str, tuple[float, float]] = field(default_factory=dict)  # range limits (saturating inputs)
    metadata: dict = field(default_factory=dict)

    def tie(self, *names: str) -> None:
        self.ties.append(tuple(names))

    def graph_index(self, name: str) -> int:
        return next(i for i, g in enumerate(self.graphs) if g.name == name)


# --- quantization -----------------------------------------------------------------------------

def _int8_act_names(program: Program) -> set[str]:
    return {n for g in program.graphs for n, t in g.tensors.items()
            if t.dtype == "int8" and t.role not in ("weight",)}


def assign_quantization(program: Program, ranges: dict[str, tuple[float, float]]) -> dict[str, QParams]:
    """One QParams per int8 activation name; tied names share one (fixed wins, else the union)."""
    names = _int8_act_names(program)
    parent = {n: n for n in names}

    def find(n):
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for group in program.ties:
        group = [n for n in group if n in parent]
        for n in group[1:]:
            parent[find(n)] = find(group[0])
    members: dict[str, list[str]] = {}
    for n in names:
        members.setdefault(find(n), []).append(n)
    out: dict[str, QParams] = {}
    for root, group in members.items():
        fixed = {program.fixed[n] for n in group if n in program.fixed}
        if len(fixed) > 1:
            raise EdgeRNNError(f"internal: tensors {sorted(group)} need two different fixed quantizations")
        if fixed:
            q = fixed.pop()
        else:
            seen = [ranges[n] for n in group if n in ranges]
            lo = min((r[0] for r in seen), default=0.0)
            hi = max((r[1] for r in seen), default=1.0)
            limits = [program.clip[n] for n in group if n in program.clip]
            if limits and len(limits) == len(group):
                lo, hi = max(lo, max(l[0] for l in limits)), min(hi, min(l[1] for l in limits))
            q = activation_params(lo, hi)
        for n in group:
            out[n] = q
    return out


def fixed_output(code: str) -> QParams | None:
    return {"LOGISTIC": LOGISTIC_OUT, "TANH": TANH_OUT, "SOFTMAX": SOFTMAX_OUT}.get(code)


# --- writing ----------------------------------------------------------------------------------

_TYPES = {"int8": 9, "int32": 2, "bool": 6}


def _schema():
    from tensorflow.lite.python import schema_py_generated as s
    return s


def _options(s, op: Op, program: Program):
    c = op.code
    conv_pool = layer_options(s, op)  # the conv / pooling / shape ops of .layers
    if conv_pool is not None:
        return conv_pool
    fused = {None: 0, "RELU": 1}[op.opts.get("fused")]
    if c == "FULLY_CONNECTED":
        o = s.FullyConnectedOptionsT()
        o.fusedActivationFunction = fused
        o.keepNumDims = bool(op.opts.get("keep_num_dims", False))
        return s.BuiltinOptions.FullyConnectedOptions, o
    if c in ("ADD", "SUB", "MUL"):
        o = getattr(s, f"{c.capitalize()}OptionsT")()
        o.fusedActivationFunction = fused
        if c != "MUL":
            o.potScaleInt16 = False
        return getattr(s.BuiltinOptions, f"{c.capitalize()}Options"), o
    if c == "SOFTMAX":
        o = s.SoftmaxOptionsT()
        o.beta = 1.0
        return s.BuiltinOptions.SoftmaxOptions, o
    if c == "CONCATENATION":
        o = s.ConcatenationOptionsT()
        o.axis = int(op.opts["axis"])
        return s.BuiltinOptions.ConcatenationOptions, o
    if c == "WHILE":
        o = s.WhileOptionsT()
        o.condSubgraphIndex = int(op.opts["cond"])
        o.bodySubgraphIndex = int(op.opts["body"])
        return s.BuiltinOptions.WhileOptions, o
    if c == "SLICE":
        return s.BuiltinOptions.SliceOptions, s.SliceOptionsT()
    if c == "LESS":
        return s.BuiltinOptions.LessOptions, s.LessOptionsT()
    if c == "FILL":
        return s.BuiltinOptions.FillOptions, s.FillOptionsT()
    if c == "DYNAMIC_UPDATE_SLICE":
        return s.BuiltinOptions.DynamicUpdateSliceOptions, s.DynamicUpdateSliceOptionsT()
    return 0, None


def _qparams_t(s, scale, zero_point, axis=0):
    q = s.QuantizationParametersT()
    q.scale = [float(v) for v in np.atleast_1d(scale)]
    q.zeroPoint = [int(v) for v in np.atleast_1d(zero_point)]
    q.quantizedDimension = int(axis)
    return q


def write_flatbuffer(program: Program, quant: dict[str, QParams], description: str = "edgernn",
                     extra_metadata: dict[str, bytes] | None = None) -> bytes:
    """The int8 flatbuffer bytes of ``program`` with activation parameters ``quant``, written
    compactly by :func:`.serialize.pack` (shared tables, no tensor names). ``extra_metadata``:
    more metadata entries (name -> bytes) after ``"edgernn"``'s JSON."""
    s = _schema()
    model = s.ModelT()
    model.version = 3
    model.description = description.encode()
    empty = s.BufferT()
    model.buffers = [empty]
    codes: dict[str, int] = {}
    model.operatorCodes = []
    weight_scales: dict[str, np.ndarray] = {}

    def add_buffer(arr: np.ndarray) -> int:
        b = s.BufferT()
        b.data = np.frombuffer(np.ascontiguousarray(arr).tobytes(), np.uint8)
        model.buffers.append(b)
        return len(model.buffers) - 1

    def opcode_index(code: str) -> int:
        if code not in codes:
            oc = s.OperatorCodeT()
            builtin = getattr(s.BuiltinOperator, code)
            oc.builtinCode = builtin
            oc.deprecatedBuiltinCode = min(builtin, s.BuiltinOperator.PLACEHOLDER_FOR_GREATER_OP_CODES)
            oc.version = 1
            codes[code] = len(model.operatorCodes)
            model.operatorCodes.append(oc)
        return codes[code]

    # weights first: biases need their weight's scales
    for g in program.graphs:
        for t in g.tensors.values():
            if t.role == "weight":
                weight_scales[t.name] = quantize_weights(t.data, t.channel_axis)[1]

    model.subgraphs = []
    for g in program.graphs:
        sg = s.SubGraphT()
        sg.name = g.name.encode()
        index = {name: i for i, name in enumerate(g.tensors)}
        sg.tensors = []
        for t in g.tensors.values():
            tt = s.TensorT()
            tt.name = t.name.encode()
            tt.shape = np.asarray(t.shape, np.int32)
            tt.type = _TYPES[t.dtype]
            tt.buffer = 0
            tt.isVariable = bool(t.variable)
            if t.role == "weight":
                q, sc = quantize_weights(t.data, t.channel_axis)
                # one zero point (0) per channel: TFLM would expand a single one to every channel
                # (micro_allocator.cc), but desktop TF Lite / LiteRT refuses a tensor whose zero
                # points and scales differ in number, so the same file runs on both (8 B a channel).
                tt.quantization = _qparams_t(s, sc, np.zeros(len(sc), np.int64), t.channel_axis)
                tt.buffer = add_buffer(q)
            elif t.role == "bias":
                inp, w = t.bias_of
                qb, sc = quantize_bias(t.data, quant[inp].per_tensor[0], weight_scales[w])
                if len(sc) == 1:  # per-tensor FC: TFLM checks bias scale == input * weight scale
                    tt.quantization = _qparams_t(s, sc, np.zeros(1, np.int64), 0)
                # per-channel: no parameters stored (12 bytes a channel); TFLM's kernel never
                # reads them, the bias scale is input_scale * weight_scale[c] by construction
                tt.buffer = add_buffer(qb)
            elif t.dtype == "int8":
                q = quant[t.name]
                tt.quantization = _qparams_t(s, q.scale, q.zero_point)
                if t.data is not None:
                    tt.buffer = add_buffer(q.quantize(t.data).reshape(np.asarray(t.data).shape))
            elif t.data is not None:
                tt.buffer = add_buffer(np.asarray(t.data, np.int32))
            sg.tensors.append(tt)
        sg.inputs = np.asarray([index[n] for n in g.inputs], np.int32)
        sg.outputs = np.asarray([index[n] for n in g.outputs], np.int32)
        sg.operators = []
        for op in g.ops:
            ot = s.OperatorT()
            ot.opcodeIndex = opcode_index(op.code)
            ot.inputs = np.asarray([-1 if n is None else index[n] for n in op.inputs], np.int32)
            ot.outputs = np.asarray([index[n] for n in op.outputs], np.int32)
            ot.builtinOptionsType, ot.builtinOptions = _options(s, op, program)
            sg.operators.append(ot)
        model.subgraphs.append(sg)

    entries = {}
    if program.metadata:
        entries[METADATA_NAME] = json.dumps(program.metadata, sort_keys=True, separators=(",", ":")).encode()
    entries.update(extra_metadata or {})
    if entries:
        model.metadata = []
        for name, value in entries.items():
            meta = s.MetadataT()
            meta.name = name.encode()
            meta.buffer = add_buffer(np.frombuffer(value, np.uint8))
            model.metadata.append(meta)

    return pack(model)


def tensor_index(program: Program, graph: str, name: str) -> int:
    g = program.graphs[program.graph_index(graph)]
    return list(g.tensors).index(name)
