"""Rebuild an IR model as the ``tf_keras`` model the TFLite converter fuses best.

Batch size fixed to 1 and ``unroll=False``: that is what makes the TF Lite converter emit one
fused ``UNIDIRECTIONAL_SEQUENCE_LSTM`` for an LSTM (Keras 3 LSTMs become WHILE loops whose
int8 conversion crashes the converter). The weights are copied from the IR unchanged.
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
        else:  # pragma: no cover - the IR has no other kinds
            raise AssertionError(layer.kind)
    out = tfk.Model(inp, h, name=model.name)
    for k, weights in pending:
        k.set_weights([np.asarray(w, np.float32) for w in weights])
    return out
