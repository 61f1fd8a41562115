"""Conv front-ends, pooling, shape and BatchNorm layers as int8 TFLM builtin ops.

The non-recurrent layers of a hybrid model on edgernn's own route (GRU, SimpleRNN,
Bidirectional: :mod:`.recurrent`), written in the TFLite converter's conventions so that the
simulator, the native backend and TFLM see the same graphs whichever route made them:

* Conv1D / DepthwiseConv1D: ``RESHAPE (1, T, C) -> (1, 1, T, C)``, ``CONV_2D`` (weights
  ``(O, 1, k, C)``, per-channel on axis 0) or ``DEPTHWISE_CONV_2D`` (weights ``(1, 1, k, C*m)``,
  per-channel on axis 3) with time on the W axis (stride and dilation on W, SAME or VALID),
  then ``RESHAPE`` back. ``causal`` is an explicit ``PAD`` of ``(k - 1) * dilation`` steps
  before the sequence (filled with the input zero point) and a VALID conv. ``relu`` is fused;
  tanh / sigmoid / softmax follow as their own op.
* Conv2D over ``(1, T, F, C)`` images: CONV_2D with time on H.
* MaxPooling1D / AveragePooling1D: ``MAX_POOL_2D`` / ``AVERAGE_POOL_2D`` (filter ``1 x p``) in
  the same ``(1, 1, T, C)`` layout; the 2-D pools on the image directly.
* GlobalAveragePooling / GlobalMaxPooling: ``MEAN`` / ``REDUCE_MAX`` over the time (and
  frequency) axes. Reshape / Flatten: ``RESHAPE``. Permute: ``TRANSPOSE``.
* An unfolded BatchNorm: ``MUL`` and ``ADD`` with int8 per-channel constants.

Quantization: every op that only moves or selects values (PAD, RESHAPE, TRANSPOSE, the pools,
REDUCE_MAX) has its input's scale and zero point (``Program.tie``; TFLM requires it of the
pools and REDUCE_MAX); CONV, MEAN, MUL and ADD outputs get their calibrated ranges.

Streaming (``convert --streaming``, one time step per invoke): a causal conv keeps the last
``(k - 1) * dilation`` inputs in an int8 *variable tensor* (TFLM resets it to its zero point,
which is what PAD writes): ``window = CONCATENATION([ring, x_t])`` replaces the PAD and
``ring = SLICE(window, 1..)`` writes it back, so each step computes exactly the sequence
model's output at that step. Layers that need future or whole-window inputs are refused by
:func:`edgernn.backends.tflm.streaming.check_streamable` before anything is written.
"""

from __future__ import annotations

import numpy as np

from ... import ir
from .graph import Graph, Program, fixed_output

_ACT_OPS = {"tanh": "TANH", "sigmoid": "LOGISTIC", "softmax": "SOFTMAX"}


def _reshape(prog: Program, g: Graph, x: str, shape: tuple, name: str) -> str:
    out = g.add(name, shape)
    g.op("RESHAPE", [x, g.const_i32(f"{name}/shape", shape)], [out], shape=tuple(shape))
    prog.tie(x, out)
    return out


def _activation(prog: Program, g: Graph, act: str, x: str, shape: tuple, name: str) -> str:
    """A non-fused activation after a conv (relu is fused into the conv itself)."""
    code = _ACT_OPS.get(act)
    if code is None:
        return x
    out = g.add(f"{name}/{act}", shape)
    g.op(code, [x], [out])
    prog.fixed[out] = fixed_output(code)  # the input keeps its calibrated range, as the converter's
    return out


def _conv1d(prog: Program, g: Graph, layer: ir.Conv1D, x: str, shape: tuple, streaming: bool):
    _, t, c = shape
    p = f"{layer.name}/"
    padding = "SAME" if layer.padding == "same" else "VALID"
    h = layer.history if layer.padding == "causal" else 0
    if h and streaming:  # the ring buffer of the last h inputs replaces the PAD
        ring = g.add(f"{p}ring", (1, h, c), variable=True)
        win = g.add(f"{p}window", (1, h + t, c))
        g.op("CONCATENATION", [ring, x], [win], axis=1)
        g.op("SLICE", [win, g.const_i32(f"{p}ring_begin", [0, t, 0]), g.const_i32(f"{p}ring_size", [1, h, c])],
             [ring])
        prog.tie(x, ring, win)
        x, t = win, t + h
    elif h:
        win = g.add(f"{p}padded", (1, t + h, c))
        g.op("PAD", [x, g.const_i32(f"{p}pads", [[0, 0], [h, 0], [0, 0]])], [win])
        prog.tie(x, win)
        x, t = win, t + h
    x4 = _reshape(prog, g, x, (1, 1, t, c), f"{p}in4")
    k, o = layer.kernel_size, layer.units
    depthwise = layer.kind == "depthwise_conv1d"
    if depthwise:  # (k, C, m) -> (1, 1, k, C*m): output channel c*m + j reads input channel c
        w, axis, code = layer.kernel.reshape(1, 1, k, o), 3, "DEPTHWISE_CONV_2D"
        extra = {"depth_multiplier": layer.multiplier}
    else:  # (k, C, O) -> (O, 1, k, C), TFLite's OHWI
        w, axis, code, extra = np.transpose(layer.kernel, (2, 0, 1))[:, None], 0, "CONV_2D", {}
    wt = g.add(f"{p}w", w.shape, data=np.ascontiguousarray(w), role="weight", channel_axis=axis)
    bt = g.add(f"{p}b", (o,), "int32", data=layer.bias, role="bias", bias_of=(x4, wt))
    t_out = ir._seq_len(layer, t, k, layer.strides, layer.dilation, "same" if padding == "SAME" else "valid")
    y = g.add(f"{p}conv", (1, 1, t_out, o))
    g.op(code, [x4, wt, bt], [y], padding=padding, stride=(1, layer.strides), dilation=(1, layer.dilation),
         fused="RELU" if layer.activation == "relu" else None, **extra)
    y = _activation(prog, g, layer.activation, y, (1, 1, t_out, o), f"{p}conv")
    return _reshape(prog, g, y, (1, t_out, o), f"{p}out"), (1, t_out, o)


def _conv2d(prog: Program, g: Graph, layer: ir.Conv2D, x: str, shape: tuple, streaming: bool):
    p = f"{layer.name}/"
    w = np.ascontiguousarray(np.transpose(layer.kernel, (3, 0, 1, 2)))  # (kt, kf, C, O) -> (O, kt, kf, C)
    wt = g.add(f"{p}w", w.shape, data=w, role="weight")
    bt = g.add(f"{p}b", (layer.units,), "int32", data=layer.bias, role="bias", bias_of=(x, wt))
    out_shape = (1,) + tuple(layer.out_shape(shape[1:]))
    y = g.add(f"{p}conv", out_shape)
    g.op("CONV_2D", [x, wt, bt], [y], padding=layer.padding.upper(), stride=layer.strides, dilation=layer.dilation,
         fused="RELU" if layer.activation == "relu" else None)
    return _activation(prog, g, layer.activation, y, out_shape, f"{p}conv"), out_shape


def _pool(prog: Program, g: Graph, layer: ir.Pool, x: str, shape: tuple, streaming: bool):
    p = f"{layer.name}/"
    out_shape = (1,) + tuple(layer.out_shape(shape[1:]))
    one_d = len(layer.pool) == 1
    if one_d:
        x = _reshape(prog, g, x, (1, 1) + shape[1:], f"{p}in4")
    pool_shape = (1, 1) + out_shape[1:] if one_d else out_shape
    y = g.add(f"{p}pool", pool_shape)
    pad1 = (lambda v: (1,) + tuple(v)) if one_d else tuple
    g.op("MAX_POOL_2D" if layer.op == "max" else "AVERAGE_POOL_2D", [x], [y], padding=layer.padding.upper(),
         stride=pad1(layer.strides), filter=pad1(layer.pool))
    prog.tie(x, y)
    return (_reshape(prog, g, y, out_shape, f"{p}out") if one_d else y), out_shape


def _global_pool(prog: Program, g: Graph, layer: ir.GlobalPool, x: str, shape: tuple, streaming: bool):
    p = f"{layer.name}/"
    axes = g.const_i32(f"{p}axes", list(range(1, len(shape) - 1)))
    out_shape = (1, shape[-1])
    y = g.add(f"{p}{layer.op}", out_shape)
    g.op("MEAN" if layer.op == "avg" else "REDUCE_MAX", [x, axes], [y])
    if layer.op == "max":
        prog.tie(x, y)
    return y, out_shape


def _reshape_layer(prog: Program, g: Graph, layer: ir.Reshape, x: str, shape: tuple, streaming: bool):
    if streaming and len(shape) > 2:  # keeps the time axis (check_streamable): reshape each step
        step = ir.Reshape(layer.name, layer.target_shape[1:]).out_shape(shape[2:])
        out_shape = (1, shape[1]) + tuple(step)
    else:
        out_shape = (1,) + tuple(layer.out_shape(shape[1:]))
    return _reshape(prog, g, x, out_shape, f"{layer.name}/out"), out_shape


def _permute(prog: Program, g: Graph, layer: ir.Permute, x: str, shape: tuple, streaming: bool):
    out_shape = (1,) + tuple(layer.out_shape(shape[1:]))
    y = g.add(f"{layer.name}/out", out_shape)
    g.op("TRANSPOSE", [x, g.const_i32(f"{layer.name}/perm", (0,) + layer.dims)], [y])
    prog.tie(x, y)
    return y, out_shape


def _batchnorm(prog: Program, g: Graph, layer: ir.BatchNorm, x: str, shape: tuple, streaming: bool):
    p = f"{layer.name}/"
    n = layer.units
    scale = g.add(f"{p}scale", (n,), data=layer.scale, role="const")
    offset = g.add(f"{p}offset", (n,), data=layer.offset, role="const")
    mul = g.add(f"{p}mul", shape)
    g.op("MUL", [x, scale], [mul])
    y = g.add(f"{p}out", shape)
    g.op("ADD", [mul, offset], [y])
    return y, shape


_WRITERS = {"conv1d": _conv1d, "depthwise_conv1d": _conv1d, "conv2d": _conv2d, "pool": _pool,
            "global_pool": _global_pool, "reshape": _reshape_layer, "permute": _permute, "batchnorm": _batchnorm}
KINDS = tuple(_WRITERS)


def write_layer(prog: Program, g: Graph, layer, x: str, shape: tuple, *, streaming: bool = False):
    """Append ``layer``'s ops to ``g`` reading ``x`` (shape with the batch axis 1); returns the
    output tensor and its shape. ``streaming``: ``x`` holds one time step (ring buffers)."""
    return _WRITERS[layer.kind](prog, g, layer, x, tuple(shape), streaming)


def share_tied(program: Program, quant: dict) -> dict:
    """``quant`` (from the sequence program's calibration) completed for a streaming program's
    new tensors (the ring buffers) from the tensors they are tied to."""
    out = dict(quant)
    for group in program.ties:
        known = [out[n] for n in group if n in out]
        if known:
            for n in group:
                out.setdefault(n, known[0])
    return out
