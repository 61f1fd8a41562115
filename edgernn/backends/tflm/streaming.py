"""The streaming (one-step) form of a fused-LSTM flatbuffer, and which models can stream.

The TFLite converter's ``UNIDIRECTIONAL_SEQUENCE_LSTM`` keeps its hidden and cell state in
*variable tensors*, which TFLM preserves between ``invoke()`` calls until ``reset()``. So the
whole-sequence int8 model with its time dimension rewritten to 1 (input ``(1, 1, F)``, every
sequence activation ``(1, 1, U)``), same weights and same quantization parameters, is the
streaming model: fed one sample per ``invoke()`` it computes exactly the numbers the
whole-sequence model computes at that step (the final ``STRIDED_SLICE`` takes index -1, which
is the only step). A causal conv front-end streams with a ring buffer per conv in place of
its PAD (:func:`lstm_one_step`). GRU / SimpleRNN streaming models are built directly by
:mod:`.recurrent` and :mod:`.layers` with the same variable-tensor mechanism.
:func:`check_streamable` refuses, in one line, the layers that cannot run one step per call.
"""

from __future__ import annotations

import numpy as np

from ... import ir
from ...errors import ConversionError, EdgeRNNError


def _why_not(layer, in_shape: tuple) -> str | None:
    """Why ``layer``, given a sequence ``in_shape`` (time axis first), cannot run one step at a time."""
    kind = layer.kind
    if kind == "bidirectional":
        return "is Bidirectional: its backward direction needs the whole window before the first output"
    if kind == "recurrent" and layer.go_backwards:
        return "runs backwards (go_backwards): it needs the whole window"
    if kind in ("conv1d", "depthwise_conv1d"):
        if layer.strides > 1:
            return f"has stride {layer.strides}: it emits one output every {layer.strides} steps"
        if layer.history and layer.padding == "same":
            return (f"has padding 'same': each output reads {layer.history - layer.history // 2} future steps; "
                    "use padding='causal' to stream")
        if layer.history and layer.padding == "valid":
            return ("has padding 'valid': its outputs start after the first "
                    f"{layer.history} steps, a stream's from the first; use padding='causal' to stream")
    if kind == "conv2d" and (layer.kernel.shape[0] > 1 or layer.strides[0] > 1):
        return (f"convolves over {layer.kernel.shape[0]} time steps (stride {layer.strides[0]}), not causally; "
                "use a time kernel of 1 to stream")
    if kind == "pool" and (layer.pool[0] > 1 or layer.strides[0] > 1):
        return (f"pools over {layer.pool[0]} time steps with stride {layer.strides[0]}: it emits one output "
                f"every {layer.strides[0]} steps" if layer.strides[0] > 1 else
                f"pools over {layer.pool[0]} time steps with padding '{layer.padding}': it is not causal")
    if kind == "global_pool":
        return "pools over the whole sequence: it needs the whole window"
    if kind == "reshape" and (len(layer.out_shape(in_shape)) < 2 or layer.out_shape(in_shape)[0] != in_shape[0]):
        return "reshapes the time axis away: it needs the whole window"
    if kind == "permute" and layer.dims[0] != 1:
        return "moves the time axis: it needs the whole window"
    return None


def check_streamable(model: ir.Model, timesteps: int | None = None) -> None:
    """Raise one line naming the first layer that cannot run one time step per call, and why.

    A model streams when every layer that sees the time axis is causal with stride 1:
    recurrent layers (not Bidirectional / go_backwards), pointwise layers (Dense, activations,
    BatchNorm, 1-step convs), ``causal`` Conv1D / DepthwiseConv1D (ring buffers), Conv2D and
    pooling over frequency only, Reshape / Permute keeping time on the first axis. Layers after
    the time axis is gone (the last recurrent layer without ``return_sequences``) always stream.
    """
    for layer, (in_shape, _) in zip(model.layers, model.shapes(timesteps or model.input.timesteps or 1)):
        if len(in_shape) < 2:
            continue
        why = _why_not(layer, in_shape)
        if why:
            raise EdgeRNNError(f"layer '{layer.name}' {why}, so it cannot stream; convert without --streaming")


def _time_axis(shape) -> int | None:
    """Where the converter puts time: (1, T, C) and images (1, T, F, C) on axis 1, the 1-D conv
    layout (1, 1, T, C) on axis 2."""
    if shape is None or len(shape) < 3:
        return None
    return 2 if len(shape) == 4 and int(shape[1]) == 1 else 1


def lstm_one_step(data: bytes, model: ir.Model) -> bytes:
    """The one-step form of a converter-made (fused-LSTM route) whole-sequence flatbuffer.

    Walks the main graph from its input: every activation tensor that carries the time axis
    (T steps, or T + p after a causal conv's PAD of p steps) gets 1 (or p + 1) there, and the
    RESHAPE shape constants follow (in fresh buffers: the converter shares constant buffers).
    Each causal PAD becomes a ring buffer: an int8 variable tensor S (1, p, C) with the PAD
    input's quantization, ``W = CONCATENATION([S, x_t])`` in place of the PAD and
    ``S = SLICE(W, [0, 1, 0], [1, p, C])`` after it; TFLM resets S to its zero point, the value
    the PAD wrote. The fused LSTM keeps its state in its own variable tensors.
    """
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as s

    m = s.ModelT.InitFromPackedBuf(bytearray(data), 0)
    main = m.subgraphs[0]
    t_steps = int(main.tensors[main.inputs[0]].shape[1])
    names = {v: k for k, v in vars(s.BuiltinOperator).items() if not k.startswith("_")}

    def opname(op):
        oc = m.operatorCodes[op.opcodeIndex]
        return names.get(max(oc.builtinCode, oc.deprecatedBuiltinCode))

    def const(t):
        b = m.buffers[t.buffer]
        return b.data is not None and len(b.data) > 0

    def new_buffer(arr) -> int:
        b = s.BufferT()
        b.data = np.frombuffer(np.ascontiguousarray(arr).tobytes(), np.uint8)
        m.buffers.append(b)
        return len(m.buffers) - 1

    def add_tensor(name, shape, dtype, buffer=0, quant=None, variable=False) -> int:
        t = s.TensorT()
        t.name, t.shape, t.type, t.buffer = name.encode(), np.asarray(shape, np.int32), dtype, buffer
        t.quantization, t.isVariable = quant, variable
        main.tensors.append(t)
        return len(main.tensors) - 1

    def opcode(name) -> int:
        code = getattr(s.BuiltinOperator, name)
        for i, oc in enumerate(m.operatorCodes):
            if max(oc.builtinCode, oc.deprecatedBuiltinCode) == code:
                return i
        oc = s.OperatorCodeT()
        oc.builtinCode, oc.deprecatedBuiltinCode, oc.version = code, min(code, 127), 1
        m.operatorCodes.append(oc)
        return len(m.operatorCodes) - 1

    lengths = {t_steps: 1}  # sequence length in the graph -> in the one-step graph
    timed = {int(main.inputs[0])}
    ops = []
    for op in main.operators:
        name = opname(op)
        if not any(int(i) in timed for i in op.inputs if i >= 0):
            ops.append(op)
            continue
        if name == "PAD":
            x = main.tensors[op.inputs[0]]
            pads = np.frombuffer(bytes(bytearray(m.buffers[main.tensors[op.inputs[1]].buffer].data)), np.int32)
            pads = pads.reshape(-1, 2).copy()
            ax = _time_axis(x.shape)
            p = int(pads[ax, 0]) if ax is not None else 0
            if ax is not None:
                pads[ax, 0] = 0
            if ax is None or pads.any():
                raise ConversionError(f"model '{model.name}': PAD {pads.tolist()} is not a causal pad of the time "
                                      "axis; this model cannot stream")
            lengths[t_steps + p] = p + 1
            shape = [int(d) for d in x.shape]
            shape[ax] = p
            ring = add_tensor(f"ring{len(lengths) - 1}", shape, x.type, quant=x.quantization, variable=True)
            cat = s.OperatorT()
            cat.opcodeIndex, cat.inputs, cat.outputs = opcode("CONCATENATION"), np.asarray([ring, op.inputs[0]],
                                                                                             np.int32), op.outputs
            cat.builtinOptionsType, cat.builtinOptions = s.BuiltinOptions.ConcatenationOptions, \
                s.ConcatenationOptionsT()
            cat.builtinOptions.axis = ax
            begin, size = [0] * len(shape), list(shape)
            begin[ax] = 1
            sl = s.OperatorT()
            sl.opcodeIndex = opcode("SLICE")
            sl.inputs = np.asarray([op.outputs[0],
                                    add_tensor(f"ring{len(lengths) - 1}/begin", [len(shape)], s.TensorType.INT32,
                                               new_buffer(np.asarray(begin, np.int32))),
                                    add_tensor(f"ring{len(lengths) - 1}/size", [len(shape)], s.TensorType.INT32,
                                               new_buffer(np.asarray(size, np.int32)))], np.int32)
            sl.outputs = np.asarray([ring], np.int32)
            sl.builtinOptionsType, sl.builtinOptions = s.BuiltinOptions.SliceOptions, s.SliceOptionsT()
            ops += [cat, sl]
        else:
            ops.append(op)
        for o in op.outputs:
            t = main.tensors[o]
            ax = _time_axis(t.shape)
            if ax is not None and not t.isVariable and int(t.shape[ax]) in lengths:
                timed.add(int(o))
    for i in timed:
        t = main.tensors[i]
        ax = _time_axis(t.shape)
        shape = [int(d) for d in t.shape]
        shape[ax] = lengths[shape[ax]]
        t.shape = np.asarray(shape, np.int32)
        if t.shapeSignature is not None and len(t.shapeSignature) == len(shape):
            t.shapeSignature = np.asarray(shape, np.int32)
    for op in ops:
        if opname(op) == "RESHAPE" and int(op.outputs[0]) in timed:
            shape = [int(d) for d in main.tensors[op.outputs[0]].shape]
            if len(op.inputs) > 1 and op.inputs[1] >= 0:
                main.tensors[op.inputs[1]].buffer = new_buffer(np.asarray(shape, np.int32))
            if op.builtinOptions is not None and getattr(op.builtinOptions, "newShape", None) is not None:
                op.builtinOptions.newShape = shape
    main.operators = ops
    b = flatbuffers.Builder(1024)
    b.Finish(m.Pack(b), file_identifier=b"TFL3")
    return bytes(b.Output())


def is_streaming_model(tm) -> bool:
    """True for a one-step model (input ``(1, 1, F)`` and state kept in variable tensors).

    ``tm`` is a :class:`edgernn.tflite_model.TFLiteModel`. Both streaming forms qualify: the
    fused LSTM rewritten to T=1 and the one-step GRU / SimpleRNN / LSTM graphs.
    """
    shape = tm.input().shape
    return len(shape) == 3 and shape[1] == 1 and any(t.is_variable for t in tm.main.tensors)


def run_streaming(interpreter, x_int8: np.ndarray) -> np.ndarray:
    """Feed each int8 sequence of ``x_int8`` (N, T, F) one time step per ``invoke()``.

    ``interpreter``: a ``tflite_micro`` runtime interpreter of a streaming model. The state is
    reset before each sequence, exactly as a device calls ``reset()`` between recordings.
    Returns the int8 output after every step, shape (N, T, *output_shape[1:]); a per-sequence
    classifier's answer is ``[:, -1]``.
    """
    outs = []
    for seq in np.asarray(x_int8, np.int8):
        interpreter.reset()
        steps = []
        for t in range(seq.shape[0]):
            interpreter.set_input(seq[t].reshape(1, 1, -1), 0)
            interpreter.invoke()
            steps.append(np.array(interpreter.get_output(0))[0])
        outs.append(np.stack(steps))
    return np.stack(outs)
