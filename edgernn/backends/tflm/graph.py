"""A small op-graph description written straight to an integer TFLite flatbuffer.

edgernn builds its WHILE-loop graphs itself instead of asking the TFLite converter (whose
int8 path crashes on recurrent WHILE loops): a :class:`Program` is a list of :class:`Graph`
(subgraph 0 is the main graph, then WHILE cond/body graphs), each a list of named tensors and
builtin ops. The same program is run in float by :func:`edgernn.quantize.calibrate.run_float`
to get calibration ranges, then :func:`write_flatbuffer` writes it with int8 / int16 tensors
and the quantization parameters chosen in :func:`assign_quantization`. Tensor names are global
to the program: a name always has one quantization, in every subgraph.

Activation tensors are int8 (asymmetric) or int16 (symmetric, zero point 0). An int16 tensor
made by CAST from an int8 one holds the int8 values unchanged: it gets the int8 scale with
zero point 0, and the int8 zero point is folded into the bias of the FULLY_CONNECTED reading
it (``bias -= zero_point * row sums``), which is exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...errors import EdgeRNNError
from ...quantize.params import (LOGISTIC_OUT, Q15, SOFTMAX_OUT, TANH_OUT, QParams, activation_params, quantize_bias,
                                quantize_weights, sum_ranges, symmetric_int16_params)
from .options import layer_options
from ...tflite_model import EDGERNN_METADATA, encode_edgernn_metadata
from .serialize import pack

METADATA_NAME = EDGERNN_METADATA


@dataclass
class Tensor:
    name: str
    shape: tuple[int, ...]
    dtype: str  # "int8" | "int16" | "int32" | "int64" (biases) | "bool"
    data: np.ndarray | None = None  # float values of quantized constants, int32 values of int32 constants
    role: str = "act"  # act | weight | bias | state (constant initial state) | fill_value | index | pad
    variable: bool = False  # a TFLM variable tensor: persists between invokes until reset()
    bias_of: tuple[str, str] | None = None  # (input tensor, weight tensor) deciding a bias' scale
    channel_axis: int = 0  # a weight's per-channel axis (3 for DEPTHWISE_CONV_2D)
    scale_with: str | None = None  # a weight whose rows share this one's per-channel scales


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
    headroom: dict[str, float] = field(default_factory=dict)  # calibrated range widened this many times
    sums: dict[str, str] = field(default_factory=dict)  # int16 ADD output -> a term (SUM_SCALE, cells.py)
    metadata: dict = field(default_factory=dict)
    cast_source: dict[str, str] = field(default_factory=dict)  # int16 CAST output -> its int8 input
    alias: list[list[tuple[int, str]]] = field(default_factory=list)  # (graph, tensor) groups sharing memory
    offline_plan: list[int] | None = None  # OfflineMemoryAllocation entries (see .memory_plan)

    def tie(self, *names: str) -> None:
        self.ties.append(tuple(names))

    def graph_index(self, name: str) -> int:
        return next(i for i, g in enumerate(self.graphs) if g.name == name)


# --- quantization -----------------------------------------------------------------------------

def _act_names(program: Program) -> set[str]:
    return {n for g in program.graphs for n, t in g.tensors.items()
            if t.dtype in ("int8", "int16") and t.role not in ("weight", "pad")}


def assign_quantization(program: Program, ranges: dict[str, tuple[float, float]]) -> dict[str, QParams]:
    """One QParams per quantized activation name; tied names share one (fixed wins, else the
    union of their ranges, clipped to the hull of their saturation limits when every member has
    one, then widened by the largest ``headroom`` factor of a member). int8: asymmetric; int16:
    symmetric with zero point 0; CAST outputs: the int8 input's scale with zero point 0."""
    names = _act_names(program)
    dtypes = {n: t.dtype for g in program.graphs for n, t in g.tensors.items() if n in names}
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
        kinds = {dtypes[n] for n in group}
        if len(kinds) > 1:
            raise EdgeRNNError(f"internal: tensors {sorted(group)} share a quantization but not a type")
        if any(n in program.cast_source for n in group):
            continue  # set below, from the int8 input
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
                lo, hi = max(lo, min(l[0] for l in limits)), min(hi, max(l[1] for l in limits))
            widen = max((program.headroom[n] for n in group if n in program.headroom), default=1.0)
            lo, hi = lo * widen, hi * widen
            q = symmetric_int16_params(lo, hi) if kinds == {"int16"} else activation_params(lo, hi)
        for n in group:
            out[n] = q
    _sum_scales(program, out, {n: members[find(n)] for n in names})
    for x16, x8 in program.cast_source.items():
        out[x16] = QParams((out[x8].per_tensor[0],), (0,))
    return out


def _sum_scales(program: Program, out: dict[str, QParams], group_of: dict[str, list[str]]) -> None:
    """SUM_SCALE (cells.py): an int16 ADD's terms share one scale and its output takes that scale
    over 2^j, so every ratio TFLM's ADD derives is a power of two. The output ranges over its
    activation's saturating range C (the hull of its group's clips) where the terms' range R
    exceeds it: the terms' range becomes the first C 2^j >= R (at most 2x R; for every sum on
    the same terms, the largest), the output's R' / 2^j = C exactly (float division by 2^j); with
    R <= C (or no clip) the output takes the terms' scale itself."""
    by_terms: dict[str, list[tuple[str, float]]] = {}
    for y, term in program.sums.items():
        limits = [program.clip[n] for n in group_of[y] if n in program.clip]
        c = max((max(-lo, hi) for lo, hi in limits), default=0.0)
        by_terms.setdefault(group_of[term][0], []).append((y, c))
    for first, sums in by_terms.items():
        r_terms = out[first].scale[0] * 32767
        r2, ranges = sum_ranges(r_terms, [(out[y].scale[0] * 32767, c) for y, c in sums])
        if r2 > r_terms:
            q = symmetric_int16_params(-r2, r2)
            for n in group_of[first]:
                out[n] = q
        for (y, _), ry in zip(sums, ranges):  # the terms' scale over 2^j, exact in float
            qy = QParams((out[first].scale[0] / 2.0 ** round(np.log2(r2 / ry)),), (0,))
            for n in group_of[y]:
                out[n] = qy


def share_constants(program: Program, quant: dict[str, QParams]) -> None:
    """Let the ops of a graph read one tensor for equal constants (loop counters' starts and
    steps, split axes and sizes, the zero initial states of equal layers): fewer tensors and
    buffers in the flatbuffer. Weights and biases are left alone."""
    for g in program.graphs:
        first: dict[tuple, str] = {}
        alias: dict[str, str] = {}
        for n, t in g.tensors.items():
            if t.data is None or t.role in ("weight", "bias") or n in g.inputs or n in g.outputs:
                continue
            q = quant.get(n)
            data = np.asarray(t.data)
            key = (t.dtype, t.shape, t.role, data.dtype.str, data.tobytes(), None if q is None else (q.scale, q.zero_point))
            if key in first:
                alias[n] = first[key]
            else:
                first[key] = n
        if not alias:
            continue
        for op in g.ops:
            op.inputs = [alias.get(n, n) if n is not None else None for n in op.inputs]
        g.tensors = {n: t for n, t in g.tensors.items() if n not in alias}


def fixed_output(code: str, dtype: str = "int8") -> QParams | None:
    """The output quantization TFLM's kernel requires for ``code`` (None: any)."""
    if dtype == "int16":
        return Q15 if code in ("LOGISTIC", "TANH") else None
    return {"LOGISTIC": LOGISTIC_OUT, "TANH": TANH_OUT, "SOFTMAX": SOFTMAX_OUT}.get(code)


# --- writing ----------------------------------------------------------------------------------

_TYPES = {"int8": 9, "int16": 7, "int32": 2, "int64": 4, "bool": 6}
OFFLINE_PLAN_NAME = "OfflineMemoryAllocation"  # TFLM's metadata name (micro/docs/memory_management.md)


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
    if c in ("SPLIT", "SPLIT_V"):
        o = s.SplitOptionsT() if c == "SPLIT" else s.SplitVOptionsT()
        o.numSplits = len(op.outputs)
        return (s.BuiltinOptions.SplitOptions if c == "SPLIT" else s.BuiltinOptions.SplitVOptions), o
    if c == "CAST":
        return s.BuiltinOptions.CastOptions, s.CastOptionsT()
    if c == "QUANTIZE":
        return s.BuiltinOptions.QuantizeOptions, s.QuantizeOptionsT()
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
    weights = quantized_weights(program)
    weight_scales.update({n: sc for n, (_, sc) in weights.items()})

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
                q, sc = weights[t.name]
                # one zero point (0) per channel: TFLM would expand a single one to every channel
                # (micro_allocator.cc), but desktop TF Lite / LiteRT refuses a tensor whose zero
                # points and scales differ in number, so the same file runs on both (8 B a channel).
                tt.quantization = _qparams_t(s, sc, np.zeros(len(sc), np.int64), t.channel_axis)
                tt.buffer = add_buffer(q)
            elif t.role == "bias":
                inp, w = t.bias_of
                if len(weight_scales[w]) == 1:  # per-tensor FC: TFLM checks bias scale == input * weight scale
                    sc = np.float32(np.float64(quant[inp].per_tensor[0]) * np.float64(weight_scales[w][0]))
                    tt.quantization = _qparams_t(s, sc, np.zeros(1, np.int64), 0)
                # per-channel: no parameters stored (12 bytes a channel); TFLM's kernel never
                # reads them, the bias scale is input_scale * weight_scale[c] by construction
                tt.buffer = add_buffer(_bias(program, t, quant, weights))
            elif t.role == "pad":
                pass  # an unused zero-size tensor (.memory_plan): never allocated
            elif t.dtype in ("int8", "int16"):
                q = quant[t.name]
                tt.quantization = _qparams_t(s, q.scale, q.zero_point)
                if t.data is not None:
                    tt.buffer = add_buffer(q.quantize(t.data, t.dtype).reshape(np.asarray(t.data).shape))
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
        entries[METADATA_NAME] = encode_edgernn_metadata(program.metadata)
    if program.offline_plan is not None:
        entries[OFFLINE_PLAN_NAME] = np.asarray(program.offline_plan, "<i4").tobytes()
    entries.update(extra_metadata or {})
    if entries:
        model.metadata = []
        for name, value in entries.items():
            meta = s.MetadataT()
            meta.name = name.encode()
            meta.buffer = add_buffer(np.frombuffer(value, np.uint8))
            model.metadata.append(meta)

    return pack(model)


def quantized_weights(program: Program) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Every weight's (int8 values, per-channel scales). Weights joined by ``scale_with`` share
    one scale per channel (the largest of theirs: as if quantized as one matrix side by side),
    so their quantization tables are one in the file."""
    ws = {t.name: t for g in program.graphs for t in g.tensors.values() if t.role == "weight"}
    parent = {n: n for n in ws}

    def find(n):
        while parent[n] != n:
            n = parent[n]
        return n

    for n, t in ws.items():
        if t.scale_with is not None:
            parent[find(n)] = find(t.scale_with)
    groups: dict[str, list[str]] = {}
    for n in ws:
        groups.setdefault(find(n), []).append(n)
    out = {}
    for names in groups.values():
        if len(names) == 1:
            t = ws[names[0]]
            out[t.name] = quantize_weights(t.data, t.channel_axis)
            continue
        if len({ws[n].channel_axis for n in names}) > 1:
            raise EdgeRNNError(f"internal: weights {sorted(names)} share scales on different axes")
        side = [np.moveaxis(np.asarray(ws[n].data), ws[n].channel_axis, 0) for n in names]
        joined = np.concatenate([w.reshape(len(w), -1) for w in side], axis=1)
        _, sc = quantize_weights(joined)
        for n, w in zip(names, side):
            t = ws[n]
            q = np.clip(np.round(w.astype(np.float64) / sc.astype(np.float64).reshape((-1,) + (1,) * (w.ndim - 1))),
                        -127, 127).astype(np.int8)
            out[n] = (np.moveaxis(q, 0, t.channel_axis), sc)
    return out


def _bias(program: Program, t: Tensor, quant: dict[str, QParams], weights: dict) -> np.ndarray:
    """The integer bias of a FULLY_CONNECTED: scale input * weight[c]; int64 for int16 inputs;
    an int8 zero point carried through CAST folded in (``- zero_point * row sums``)."""
    inp, w = t.bias_of
    qb, _ = quantize_bias(t.data, quant[inp].per_tensor[0], weights[w][1], t.dtype)
    src = program.cast_source.get(inp)
    if src is not None:
        wq = weights[w][0].astype(np.int64)
        qb = (qb.astype(np.int64) - quant[src].per_tensor[1] * wq.sum(axis=1)).astype(t.dtype)
    return qb


def tensor_index(program: Program, graph: str, name: str) -> int:
    g = program.graphs[program.graph_index(graph)]
    return list(g.tensors).index(name)
