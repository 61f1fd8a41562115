"""TFLM's tensor arena for a model, computed from the .tflite by replaying TFLM's allocator.

``MicroInterpreter::AllocateTensors()`` splits the arena in two ends
(``micro/micro_allocator.cc``, ``micro/arena_allocator/single_arena_buffer_allocator.cc``):

* the **tail** (persistent, grows down from the end): the allocator's own objects, one
  ``TfLiteEvalTensor`` per tensor and one ``NodeAndRegistration`` per op of every subgraph, the
  ops' builtin option structs, each kernel's OpData (``Init``) and persistent buffers
  (``Prepare``), the scratch-buffer handles, the variable tensors and the interpreter's input and
  output ``TfLiteTensor``s;
* the **head** (grows up from the 16-aligned start): every activation tensor and kernel scratch
  buffer, placed by ``GreedyMemoryPlanner`` from their lifetimes (``micro_allocation_info.cc``).

``head + tail`` is what ``arena_used_bytes()`` reports after ``AllocateTensors``. The arena
must be larger than that for WHILE and streaming graphs: while ``AllocateTensors`` runs, the
head also holds transient data, each kernel's ``Prepare``-time temporary ``TfLiteTensor``s and
the planner's working arrays, against a tail that is already partly built. :func:`replay`
reports both, ``used`` and ``minimum`` (the largest of every such moment); an arena of
``minimum`` bytes (``alignas(16)``) allocates and invokes.

What each op allocates (:func:`op_allocations`) follows TFLM HEAD's kernels and, for
``kernels="cmsis-nn"``, TFLM's ``kernels/cmsis_nn/`` variants with CMSIS-NN's
``arm_*_get_buffer_size*`` functions; every other op runs the reference kernel in both builds.
Struct sizes per ABI are in :mod:`.abi`. In the x86-64 ABI the replay equals what the PyPI
``tflite_micro`` runtime records (``print_allocations``), which is how it is tested; in the
Cortex-M ABI it reproduces the arenas measured on a Cortex-M4 (LSTM(32) 100x6: reference 5,908 B,
CMSIS-NN 7,124 B; LSTM(128) CMSIS-NN 20,660 B).

An op missing from the table makes the result inexact (``Arena.exact`` False): it is counted
with a generous default, and the caller adds a larger margin.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ...tflite_model import Operator, Subgraph, TFLiteModel
from .abi import ABIS, ABI, RECORDING_ARENA_ALLOCATOR_POINTERS, RECORDING_MICRO_ALLOCATOR_WORDS

ALIGN = 16  # MicroArenaBufferAlignment(): kernel buffers, tensors and the head's start
KERNELS = ("reference", "cmsis-nn")
# CMSIS-NN's buffer sizes depend on the core's extensions (arm_nn_* compiled with ARM_MATH_DSP or
# ARM_MATH_MVEI): "dsp" = Cortex-M4/M7/M33, "mve" = Cortex-M55/M85, "none" = Cortex-M0/M0+/M3.
CORES = {"cortex-m0plus": "none", "cortex-m3": "none", "cortex-m4": "dsp", "cortex-m7": "dsp",
         "cortex-m33": "dsp", "cortex-m55": "mve", "host": "none"}
_ITEMSIZE = {"float32": 4, "int32": 4, "int8": 1, "uint8": 1, "int16": 2, "int64": 8, "bool": 1, "float16": 2}
# The default for an op not in the table: an OpData this big, every tensor of the op as a temp.
_UNKNOWN_OP_DATA = 128


def up(x: int, a: int) -> int:
    return (x + a - 1) // a * a


@dataclass
class OpAlloc:
    """What one op allocates in the arena."""

    builtin: tuple[int, int] | None = None  # option struct (size, alignment), tail
    init: list[int] = field(default_factory=list)  # OpData from Init, tail, 16-aligned
    persistent: list[int] = field(default_factory=list)  # buffers from Prepare, tail, 16-aligned
    scratch: list[int] = field(default_factory=list)  # RequestScratchBufferInArena, planned in the head
    temps: list[int] = field(default_factory=list)  # tensors Prepare reads as temp TfLiteTensors
    known: bool = True


@dataclass
class Arena:
    """The arena of one model for one ABI and kernel set."""

    abi: str
    kernels: str
    head: int  # planned activations + scratch after AllocateTensors
    tail: int  # persistent allocations
    minimum: int  # the smallest arena that allocates: max(head + tail, transient peaks), 16-aligned
    peak: str  # which moment sets the minimum ("final", "prepare OP", "plan")
    unknown_ops: list[str] = field(default_factory=list)

    @property
    def used(self) -> int:
        """``arena_used_bytes()`` after AllocateTensors: head + tail."""
        return self.head + self.tail

    @property
    def exact(self) -> bool:
        return not self.unknown_ops


def _numel(shape) -> int:
    return int(np.prod(shape, dtype=np.int64)) if shape is not None and len(shape) else 1


def tensor_bytes(t) -> int:
    return _numel(t.shape) * _ITEMSIZE[t.dtype]


def _channels(t) -> int:
    """Quantization channels TFLM allocates for a tensor (0: not quantized)."""
    if t.scale is None or len(t.scale) == 0 or t.zero_point is None or len(t.zero_point) == 0:
        return 0
    return len(t.scale)


def _all_tensors(op: Operator) -> list[int]:
    return [i for i in op.inputs if i >= 0] + list(op.outputs)


def _conv_padding(op, inp, filt, out) -> tuple[int, int]:
    o = op.options
    if int(o.padding) != 0:  # VALID
        return 0, 0
    ih, iw, kh, kw = int(inp.shape[1]), int(inp.shape[2]), int(filt.shape[1]), int(filt.shape[2])
    oh, ow = int(out.shape[1]), int(out.shape[2])
    ph = max(0, ((oh - 1) * o.strideH + (kh - 1) * o.dilationHFactor + 1 - ih) // 2)
    pw = max(0, ((ow - 1) * o.strideW + (kw - 1) * o.dilationWFactor + 1 - iw) // 2)
    return ph, pw


def _cmsis_conv_scratch(op, sg: Subgraph, core: str) -> int:
    """``arm_convolve_wrapper_s8_get_buffer_size`` (``arm_convolve_get_buffer_sizes_s8.c``)."""
    inp, filt, out = sg.tensors[op.inputs[0]], sg.tensors[op.inputs[1]], sg.tensors[op.outputs[0]]
    cin, kh, kw = int(inp.shape[3]), int(filt.shape[1]), int(filt.shape[2])
    o = op.options
    if kh == 1 and kw == 1 and _conv_padding(op, inp, filt, out) == (0, 0) \
            and (o.dilationHFactor, o.dilationWFactor) == (1, 1):
        return 0  # the 1x1 kernels need no im2col buffer (GCC build)
    if core == "mve":
        return 4 * up(kh * kw * cin, 16)
    return 4 * up(kh * kw * cin, 4)  # two int16 im2col columns, rows padded to 4


def _cmsis_depthwise_scratch(op, sg: Subgraph, core: str) -> int:
    """``arm_depthwise_conv_wrapper_s8_get_buffer_size`` (``arm_depthwise_conv_get_buffer_sizes_s8.c``)."""
    inp, filt, out = sg.tensors[op.inputs[0]], sg.tensors[op.inputs[1]], sg.tensors[op.outputs[0]]
    o = op.options
    kh, kw = int(filt.shape[1]), int(filt.shape[2])
    if int(inp.shape[3]) != int(out.shape[3]) or int(inp.shape[0]) != 1 \
            or (o.dilationHFactor, o.dilationWFactor) != (1, 1):
        return 0
    if core == "mve":
        return 4 * 124 * kh * kw
    ph, pw = _conv_padding(op, inp, filt, out)
    if core == "dsp" and not (kh == 3 and kw == 3 and ph <= 1 and pw <= 1):
        return int(inp.shape[3]) * kh * kw * 2
    return 0


def op_allocations(abi: ABI, kernels: str, core: str, sg: Subgraph, op: Operator) -> OpAlloc:
    """The tail and head allocations of one op (TFLM HEAD; CMSIS-NN variants where they exist)."""
    T = sg.tensors
    cmsis = kernels == "cmsis-nn"
    c = op.opcode
    temps = _all_tensors(op)  # most Prepares read every input and the output as temp tensors
    if c == "UNIDIRECTIONAL_SEQUENCE_LSTM":
        # unidirectional_sequence_lstm.cc: OpDataLSTM; 4 scratch buffers of batch x units cells.
        inp, hidden, cell = T[op.inputs[0]], T[op.inputs[18]], T[op.inputs[19]]
        batch, units, cell_bytes = int(inp.shape[0]), int(hidden.shape[-1]), _ITEMSIZE[cell.dtype]
        builtin = abi.struct("UnidirectionalSequenceLSTMParams")
        if cmsis and inp.dtype in ("int8", "int16") and cell.dtype == "int16":
            # cmsis_nn/unidirectional_sequence_lstm.cc (CMSIS_NN_PortOpData): 8 kernel-sum vectors of
            # units int32 (int64 for int16 activations), persistent; 3 scratch buffers (temp1,
            # temp2, cell state) instead of 4.
            bias = 4 if inp.dtype == "int8" else 8
            return OpAlloc(builtin, [abi.size("CmsisLSTMOpData")], [units * bias] * 8,
                           [batch * units * cell_bytes] * 3, temps)
        return OpAlloc(builtin, [abi.size("OpDataLSTM")], [], [batch * units * cell_bytes] * 4, temps)
    if c == "FULLY_CONNECTED":
        # fully_connected_common.cc CalculateOpDataFullyConnected: per-channel multipliers and
        # shifts (int32 each) when the weights have several scales. CMSIS-NN: a bigger OpData;
        # its kernel-sum buffer is arm_fully_connected_s8_get_buffer_size() = 0 on every core.
        ch = len(T[op.inputs[1]].scale) if T[op.inputs[1]].scale is not None else 0
        pers = [4 * ch, 4 * ch] if ch > 1 else []
        return OpAlloc(abi.struct("FullyConnectedParams"),
                       [abi.size("CmsisFCOpData" if cmsis else "OpDataFullyConnected")], pers, [], temps)
    if c == "SOFTMAX":
        # softmax_common.cc: two 513-entry int16 LUTs for int16 input only.
        pers = [2 * 513, 2 * 513] if T[op.inputs[0]].dtype == "int16" else []
        return OpAlloc(abi.struct("SoftmaxParams(builtin)"),
                       [abi.size("CmsisSoftmaxOpData" if cmsis else "SoftmaxOpData")], pers, [], temps)
    if c == "STRIDED_SLICE":
        return OpAlloc(abi.struct("StridedSliceParams(builtin)"), [abi.size("StridedSliceOpData")], [], [], temps)
    if c in ("ADD", "SUB"):
        return OpAlloc(abi.struct("AddParams" if c == "ADD" else "SubParams"),
                       [abi.size("OpDataAdd" if c == "ADD" else "OpDataSub")], [], [], temps)
    if c == "MUL":
        return OpAlloc(abi.struct("MulParams"), [abi.size("OpDataMul")], [], [], temps)
    if c in ("LOGISTIC", "TANH"):
        return OpAlloc(None, [abi.size("OpDataLogistic")], [], [], temps)
    if c == "RELU":
        return OpAlloc(None, [abi.size("ReluOpData")], [], [], temps)
    if c in ("LESS", "LESS_EQUAL", "GREATER", "GREATER_EQUAL", "EQUAL", "NOT_EQUAL"):
        return OpAlloc(None, [abi.size("ComparisonOpData")], [], [], temps)
    if c == "WHILE":
        return OpAlloc(abi.struct("WhileParams"), [abi.size("WhileOpData")], [], [], [])
    if c in ("SLICE", "DYNAMIC_UPDATE_SLICE", "FILL", "EXPAND_DIMS", "TRANSPOSE"):  # no Init, no options
        return OpAlloc(None, [], [], [], temps)
    if c == "RESHAPE":
        return OpAlloc(abi.struct("ReshapeParams"), [], [], [], temps)  # ParseReshape allocates it always
    if c == "SQUEEZE":
        return OpAlloc(abi.struct("SqueezeParams"), [], [], [], temps)
    if c == "SPLIT":
        return OpAlloc(abi.struct("SplitParams"), [], [], [], [op.inputs[0]])  # split.cc reads only the axis
    if c == "SPLIT_V":  # split_v.cc Prepare reads only the size-splits axis (input 2)
        return OpAlloc(abi.struct("SplitVParams"), [], [], [], [op.inputs[2]])
    if c == "CAST":  # cast.cc: no Init; Prepare reads the input and the output
        return OpAlloc(abi.struct("CastParams"), [], [], [], temps)
    if c == "QUANTIZE":
        return OpAlloc(None, [abi.size("OpDataQuantize")], [], [], temps)
    if c in ("PAD", "PADV2"):
        return OpAlloc(None, [abi.size("PadOpData")], [], [], temps)  # cmsis_nn/pad.cc reuses PadInit/PadPrepare
    if c == "CONCATENATION":
        # concatenation.cc Prepare: int8 and int16 keep every input's zero point and scale (2 x n
        # int32; the runtime's TFLM does for int16 too: measured); reads (input 0, output), then
        # each input, the output, and for those types each input again.
        n, out = len(op.inputs), T[op.outputs[0]]
        pers = [4 * n, 4 * n] if out.dtype in ("int8", "int16") else []
        t = [op.inputs[0], op.outputs[0], *op.inputs, op.outputs[0], *(op.inputs if pers else [])]
        return OpAlloc(abi.struct("ConcatenationParams(builtin)"), [abi.size("ConcatenationOpData")], pers, [], t)
    if c in ("CONV_2D", "DEPTHWISE_CONV_2D"):
        # conv_common.cc / depthwise_conv_common.cc: per-channel multipliers and shifts; temps:
        # output, input, filter, then CalculateOpData's input, filter, bias, output.
        filt, inp = T[op.inputs[1]], T[op.inputs[0]]
        nch = int(filt.shape[0] if c == "CONV_2D" else filt.shape[3])
        scratch = []
        if cmsis and inp.dtype == "int8":
            b = _cmsis_conv_scratch(op, sg, core) if c == "CONV_2D" else _cmsis_depthwise_scratch(op, sg, core)
            scratch = [b] if b > 0 else []
        return OpAlloc(abi.struct("ConvParams" if c == "CONV_2D" else "DepthwiseConvParams"),
                       [abi.size("CmsisConvOpData" if cmsis else "OpDataConv")], [4 * nch, 4 * nch], scratch,
                       [op.outputs[0], op.inputs[0], op.inputs[1], *temps])
    if c in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
        t, scratch = [op.inputs[0], op.outputs[0]], []
        if cmsis and c == "AVERAGE_POOL_2D" and T[op.inputs[0]].dtype == "int8":
            t = t + t  # cmsis_nn/pooling.cc AveragePrepare reads them again
            if core == "dsp":
                scratch = [4 * int(T[op.inputs[0]].shape[3])]  # arm_avgpool_s8_get_buffer_size
        return OpAlloc(abi.struct("PoolParams"), [abi.size("CmsisPoolOpData" if cmsis else "OpDataPooling")],
                       [], scratch, t)
    if c in ("MEAN", "SUM"):
        # reduce_common.cc: an int32 sum per output element, plus index and resolved-axis buffers.
        inp, out, axis = T[op.inputs[0]], T[op.outputs[0]], T[op.inputs[1]]
        scratch = ([4 * _numel(out.shape), 4 * len(inp.shape), 4 * max(1, _numel(axis.shape))]
                   if inp.dtype in ("int8", "int16") else [])
        return OpAlloc(abi.struct("ReducerParams"), [abi.size("OpDataReduce")], [], scratch, temps)
    if c == "REDUCE_MAX":
        inp, axis = T[op.inputs[0]], T[op.inputs[1]]
        return OpAlloc(abi.struct("ReducerParams"), [abi.size("OpDataReduce")], [],
                       [4 * len(inp.shape), 4 * _numel(axis.shape)], temps)
    return OpAlloc(None, [_UNKNOWN_OP_DATA], [], [], temps, known=False)


class _Tail:
    """The persistent end: each allocation moves the tail down and aligns it down."""

    def __init__(self):
        self.position = 0

    def alloc(self, size: int, align: int) -> None:
        self.position = (self.position - size) // align * align

    @property
    def used(self) -> int:
        return -self.position


def _is_constant(t) -> bool:
    return t.data is not None and np.asarray(t.data).size > 0


def _plan_head(m: TFLiteModel, scratch: list[tuple[int, int, int]]) -> tuple[int, int]:
    """(head bytes, buffers planned): AllocationInfoBuilder's lifetimes, GreedyMemoryPlanner's offsets.

    Lifetimes count ops in execution order; a WHILE's cond and body subgraphs are walked inside
    it, so their tensors live within the WHILE's span. Constant and variable tensors are not
    planned (they live in the flatbuffer and in the tail)."""
    order = [(gi, ti) for gi, g in enumerate(m.subgraphs) for ti in range(len(g.tensors))]
    lifetimes = {key: [-1, -1] for key in order}  # [first created, last used]; -1: never touched
    scratch_life = [[-1, -1] for _ in scratch]
    clock = [0]

    def first(key):
        lifetimes[key] = [clock[0], clock[0]]

    def last(key):
        lifetimes[key][1] = clock[0]

    def walk(gi: int) -> None:
        g = m.subgraphs[gi]
        for ti in list(g.inputs) + list(g.outputs):
            first((gi, ti))
        for oi, op in enumerate(g.operators):
            clock[0] += 1
            for ti in op.outputs:
                first((gi, ti))
            start = clock[0]
            if op.opcode == "WHILE":
                for sub in (int(op.options.condSubgraphIndex), int(op.options.bodySubgraphIndex)):
                    clock[0] += 1
                    walk(sub)
            for ti in op.inputs:
                if ti >= 0:
                    last((gi, ti))
            for ti in op.outputs:
                last((gi, ti))
            for k, (sgi, soi, _) in enumerate(scratch):
                if (sgi, soi) == (gi, oi):
                    scratch_life[k] = [start, clock[0]]
        for ti in g.outputs:
            last((gi, ti))

    walk(0)
    offline = _offline_offsets(m)
    requests, fixed = [], {}
    for k, (gi, ti) in enumerate(order):
        t = m.subgraphs[gi].tensors[ti]
        size = tensor_bytes(t)
        if _is_constant(t) or t.is_variable or size == 0:
            continue
        if k < len(offline) and offline[k] >= 0:
            fixed[len(requests)] = offline[k]
        requests.append((up(size, ALIGN), *lifetimes[(gi, ti)]))
    requests += [(up(size, ALIGN), *life) for (_, _, size), life in zip(scratch, scratch_life)]
    return _greedy(requests, fixed), len(requests)


def _offline_offsets(m: TFLiteModel) -> list[int]:
    """The ``OfflineMemoryAllocation`` metadata (version, subgraph, n, then one arena offset per
    tensor of all subgraphs in order, -1: planned online), or [] without one."""
    raw = m.metadata.get("OfflineMemoryAllocation")
    if not raw or len(raw) < 12 or len(raw) % 4:
        return []
    words = np.frombuffer(raw, "<i4")
    return [int(v) for v in words[3:3 + int(words[2])]]


def _greedy(requests: list[tuple[int, int, int]], fixed: dict[int, int] | None = None) -> int:
    """GreedyMemoryPlanner: the offline-planned buffers (``fixed``: request -> offset) first, in
    request order; then the others by decreasing size (ties: the later request first), each at
    the lowest offset that overlaps no placed buffer alive at the same time; returns the high mark."""
    if not requests:
        return 0
    fixed = fixed or {}
    ids = [i for i in range(len(requests))[::-1] if i not in fixed]
    ids.sort(key=lambda i: -requests[i][0])  # stable: equal sizes keep the reversed order
    placed: list[tuple[int, int]] = []  # (offset, id), by offset
    offsets: dict[int, int] = {}
    for bid in sorted(fixed) + ids:
        size, first, last = requests[bid]
        alive = [(o, j) for o, j in placed if not (requests[j][1] > last or first > requests[j][2])]
        candidate = 0
        for o, j in alive:
            if o - candidate >= size:
                break
            candidate = max(candidate, o + requests[j][0])
        if bid in fixed:
            candidate = fixed[bid]
        offsets[bid] = candidate
        pos = next((q for q, (o, _) in enumerate(placed) if o > candidate), len(placed))
        placed.insert(pos, (candidate, bid))
    return max(offsets[i] + requests[i][0] for i in offsets)


def replay(m: TFLiteModel, abi: str = "cortex-m", kernels: str = "reference", core: str = "cortex-m4") -> Arena:
    """The arena ``m`` needs with ``kernels`` under ``abi``; see the module docstring."""
    a = ABIS[abi]
    profile = CORES[core]
    tail = _Tail()
    # 1-4: the allocator objects, in the arena when the interpreter is given a raw arena
    arena_alloc, micro_alloc = a.struct("SingleArenaBufferAllocator"), a.struct("MicroAllocator")
    if a.recording:
        arena_alloc = (arena_alloc[0] + RECORDING_ARENA_ALLOCATOR_POINTERS * a.pointer, arena_alloc[1])
        micro_alloc = (micro_alloc[0] + RECORDING_MICRO_ALLOCATOR_WORDS * a.pointer, micro_alloc[1])
    tail.alloc(*arena_alloc)
    tail.alloc(*a.struct("GreedyMemoryPlanner"))
    tail.alloc(*micro_alloc)
    tail.alloc(*a.struct("MicroBuiltinDataAllocator"))
    # 5-7: per subgraph, its allocations entry, an eval tensor per tensor, a node per op
    size, align = a.struct("SubgraphAllocations")
    tail.alloc(size * len(m.subgraphs), align)
    for g in m.subgraphs:
        tail.alloc(a.size("TfLiteEvalTensor") * len(g.tensors), a.align("TfLiteEvalTensor"))
    for g in m.subgraphs:
        tail.alloc(a.size("NodeAndRegistration") * len(g.operators), a.align("NodeAndRegistration"))
    ops = [(gi, oi, op, op_allocations(a, kernels, profile, g, op))
           for gi, g in enumerate(m.subgraphs) for oi, op in enumerate(g.operators)]
    # 8-9: builtin option structs of all ops, then every kernel's Init
    for *_, alloc in ops:
        if alloc.builtin:
            tail.alloc(*alloc.builtin)
    for *_, alloc in ops:
        for n in alloc.init:
            tail.alloc(n, ALIGN)
    # 10: Prepare, op by op. Its temp TfLiteTensors (+ quantization) stand in the head, above the
    # scratch-request array, until the op's Prepare returns.
    request = a.struct("ScratchBufferRequest")
    tensor, quant = a.struct("TfLiteTensor"), a.struct("TfLiteAffineQuantization")
    scratch: list[tuple[int, int, int]] = []
    peaks: list[tuple[str, int, int]] = []
    for gi, oi, op, alloc in ops:
        head = request[0] * (len(scratch) + 12)  # requests are kept in a head array (room for 12 more)
        for ti in alloc.temps:
            head = up(head, tensor[1]) + tensor[0]
            ch = _channels(m.subgraphs[gi].tensors[ti])
            if ch:
                head = up(head, quant[1]) + quant[0]
                head = up(head, 4) + 4 + 4 * ch  # the zero-point TfLiteIntArray
        for n in alloc.persistent:
            tail.alloc(n, ALIGN)
        scratch += [(gi, oi, n) for n in alloc.scratch]
        peaks.append((f"prepare {op.opcode}", head, tail.used))
    # 11: scratch handles (TFLM allocates the array once per subgraph, sized for every request)
    # 12: variable tensors
    for g in m.subgraphs:
        if scratch:
            tail.alloc(a.size("ScratchBufferHandle") * len(scratch), a.align("ScratchBufferHandle"))
        for t in g.tensors:
            if t.is_variable:
                tail.alloc(tensor_bytes(t), ALIGN)
    # the memory plan: its working arrays stand in the head while it runs
    head, planned = _plan_head(m, scratch)
    n_tensors = sum(len(g.tensors) for g in m.subgraphs)
    work = request[0] * (len(scratch) + 12)
    work = up(work, a.pointer) + a.pointer * len(m.subgraphs)
    info = a.struct("AllocationInfo")
    work = up(work, info[1]) + info[0] * (n_tensors + len(scratch))
    work = up(work, ALIGN) + 40 * planned  # the planner's per-buffer arrays (GreedyMemoryPlanner::kPerBufferDataSize)
    peaks.append(("plan", work, tail.used))
    # 13: the interpreter's input and output TfLiteTensors (pointer arrays, tensors, quantization)
    main = m.main
    for indices in (main.inputs, main.outputs):
        tail.alloc(a.pointer * len(indices), ALIGN)
        for ti in indices:
            tail.alloc(*tensor)
            ch = _channels(main.tensors[ti])
            if ch:
                tail.alloc(*quant)
                tail.alloc(4 + 4 * ch, 4)
    peaks.append(("final", head, tail.used))
    where, h, t = max(peaks, key=lambda p: p[1] + p[2])
    unknown = sorted({op.opcode for *_, op, alloc in ops if not alloc.known})
    return Arena(abi=abi, kernels=kernels, head=head, tail=tail.used, minimum=up(h + t, ALIGN), peak=where,
                 unknown_ops=unknown)
