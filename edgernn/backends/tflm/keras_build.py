"""Rebuild an IR model as the ``tf_keras`` model the TFLite converter fuses best.

Batch size fixed to 1 and ``unroll=False``: that is what makes the TF Lite converter emit one
fused ``UNIDIRECTIONAL_SEQUENCE_LSTM`` for an LSTM (Keras 3 LSTMs become WHILE loops whose
int8 conversion crashes the converter), and static shapes for the conv front-ends and heads
(at batch None the converter writes dynamic-shape ops TFLM cannot allocate). A
TimeDistributed(Dense) is a plain Dense here (Keras 3's would unroll into one FULLY_CONNECTED
per step). The weights are copied from the IR unchanged (BatchNormalization arrives folded).
"""

from __future__ import annotations

import os

import numpy as np

from ... import ir

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")


def _rnn_layer(tfk, layer: ir.Recurrent, *, name: str | None = None, go_backwards: bool | None = None):
    common = dict(units=layer.units, return_sequences=layer.return_sequences, unroll=False,
                  name=name or layer.name,
                  go_backwards=layer.go_backwards if go_backwards is None else go_backwards)
    if layer.cell == "lstm":
        return tfk.layers.LSTM(activation=layer.activation, recurrent_activation=layer.recurrent_activation,
                               **common)
    if layer.cell == "gru":
        return tfk.layers.GRU(activation=layer.activation, recurrent_activation=layer.recurrent_activation,
                              reset_after=layer.reset_after, **common)
    return tfk.layers.SimpleRNN(activation=layer.activation, **common)


_BN_EPSILON = 1e-3  # a BatchNorm's affine rebuilt with variance 1 - eps: 1/sqrt(var + eps) == 1


def _feedforward_layer(tfk, layer, rank: int):
    """The tf_keras layer (and its weights) of a conv / pooling / shape / BatchNorm IR layer."""
    L, kind = tfk.layers, layer.kind
    if kind == "conv1d":
        return L.Conv1D(layer.units, layer.kernel_size, strides=layer.strides, padding=layer.padding,
                        dilation_rate=layer.dilation, activation=layer.activation, name=layer.name), \
            [layer.kernel, layer.bias]
    if kind == "depthwise_conv1d":
        return L.DepthwiseConv1D(layer.kernel_size, strides=layer.strides, padding=layer.padding,
                                 depth_multiplier=layer.multiplier, dilation_rate=layer.dilation,
                                 activation=layer.activation, name=layer.name), [layer.kernel, layer.bias]
    if kind == "conv2d":
        return L.Conv2D(layer.units, layer.kernel.shape[:2], strides=layer.strides, padding=layer.padding,
                        dilation_rate=layer.dilation, activation=layer.activation, name=layer.name), \
            [layer.kernel, layer.bias]
    if kind == "pool":
        n = len(layer.pool)
        cls = getattr(L, f"{'Max' if layer.op == 'max' else 'Average'}Pooling{n}D")
        return cls(layer.pool if n > 1 else layer.pool[0], strides=layer.strides if n > 1 else layer.strides[0],
                   padding=layer.padding, name=layer.name), None
    if kind == "global_pool":
        cls = getattr(L, f"Global{'Max' if layer.op == 'max' else 'Average'}Pooling{1 if rank == 2 else 2}D")
        return cls(name=layer.name), None
    if kind == "reshape":
        return L.Reshape(layer.target_shape, name=layer.name), None
    if kind == "permute":
        return L.Permute(layer.dims, name=layer.name), None
    if kind == "batchnorm":
        n = layer.units
        return L.BatchNormalization(epsilon=_BN_EPSILON, name=layer.name), \
            [layer.scale, layer.offset, np.zeros(n, np.float32), np.full(n, 1.0 - _BN_EPSILON, np.float32)]
    raise AssertionError(kind)  # pragma: no cover - the IR has no other kinds


def build_tf_keras(model: ir.Model, *, timesteps: int | None = None, batch_size: int | None = 1):
    """A tf_keras model computing exactly what ``model`` computes (float32)."""
    import tf_keras as tfk

    t = timesteps or model.input.timesteps
    inp = tfk.Input(shape=(t, model.input.features), batch_size=batch_size, name="input")
    h = inp
    pending: list[tuple] = []  # (keras layer, ir layer) to receive weights once built
    for layer in model.layers:
        if layer.kind == "recurrent":
            k = _rnn_layer(tfk, layer)
            h = k(h)
            pending.append((k, [layer.kernel, layer.recurrent_kernel, layer.bias]))
        elif layer.kind == "bidirectional":
            fwd = _rnn_layer(tfk, layer.forward, name=f"{layer.name}_fwd", go_backwards=False)
            bwd = _rnn_layer(tfk, layer.backward, name=f"{layer.name}_bwd", go_backwards=True)
            k = tfk.layers.Bidirectional(fwd, backward_layer=bwd, merge_mode=layer.merge_mode, name=layer.name)
            h = k(h)
            f, b = layer.forward, layer.backward
            pending.append((k, [f.kernel, f.recurrent_kernel, f.bias, b.kernel, b.recurrent_kernel, b.bias]))
        elif layer.kind == "dense":
            k = tfk.layers.Dense(layer.units, activation=layer.activation, name=layer.name)
            h = k(h)
            pending.append((k, [layer.kernel, layer.bias]))
        elif layer.kind == "activation":
            h = tfk.layers.Activation(layer.activation, name=layer.name)(h)
        else:
            k, weights = _feedforward_layer(tfk, layer, len(h.shape) - 1)
            h = k(h)
            if weights:
                pending.append((k, weights))
    out = tfk.Model(inp, h, name=model.name)
    for k, weights in pending:
        k.set_weights([np.asarray(w, np.float32) for w in weights])
    return out
