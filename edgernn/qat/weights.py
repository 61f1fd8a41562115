"""Weights out of the QAT model: into the IR, and back into the user's Keras model."""

from __future__ import annotations

import numpy as np

from .. import ir
from ..errors import EdgeRNNError


def float_ir(qmodel, model: ir.Model) -> ir.Model:
    """The IR of ``model`` with the (latent, float) weights of the fine-tuned ``qmodel``."""
    wrappers, outer = {}, {}
    for layer in qmodel.layers:
        inner = getattr(layer, "layer", None)
        if inner is not None:
            wrappers[inner.name], outer[inner.name] = inner, layer

    def cell_weights(rnn_layer):
        return [np.asarray(v.numpy(), np.float32) for v in rnn_layer.cell.float_weights]

    def rec(l: ir.Recurrent, kw) -> ir.Recurrent:
        return ir.Recurrent(name=l.name, cell=l.cell, units=l.units, input_dim=l.input_dim, kernel=kw[0],
                            recurrent_kernel=kw[1], bias=kw[2], activation=l.activation,
                            recurrent_activation=l.recurrent_activation, return_sequences=l.return_sequences,
                            go_backwards=l.go_backwards, reset_after=l.reset_after)

    layers: list[ir.Layer] = []
    for l in model.layers:
        if l.kind == "recurrent":
            layers.append(rec(l, cell_weights(wrappers[l.name])))
        elif l.kind == "bidirectional":
            k = wrappers[l.name]
            layers.append(ir.Bidirectional(name=l.name, forward=rec(l.forward, cell_weights(k.forward_layer)),
                                           backward=rec(l.backward, cell_weights(k.backward_layer)),
                                           merge_mode=l.merge_mode))
        elif l.kind == "dense":
            # tfmot swapped layer.kernel for its quantized tensor; the wrapper keeps the variables
            named = {v.name.split("/")[-1].split(":")[0]: v for v in outer[l.name].trainable_weights}
            kernel, bias = (np.asarray(named[n].numpy(), np.float32) for n in ("kernel", "bias"))
            layers.append(ir.Dense(name=l.name, kernel=kernel, bias=bias, activation=l.activation))
        else:
            layers.append(l)
    return ir.Model(name=model.name, input=model.input, layers=layers, source=model.source)


def _keras_layer_map(keras_model) -> dict:
    out = {}
    for layer in keras_model.layers:
        inner = getattr(layer, "layer", None)
        if type(layer).__name__ == "TimeDistributed" and inner is not None:
            out[inner.name] = inner
        out[layer.name] = layer
    return out


def _set_recurrent(keras_layer, l: ir.Recurrent):
    n = len(keras_layer.get_weights())
    keras_layer.set_weights([l.kernel, l.recurrent_kernel, l.bias][:n])


def write_back(original, snapped: ir.Model):
    """A copy of the user's Keras model (Keras 3 or tf_keras) carrying ``snapped``'s weights."""
    if type(original).__module__.startswith("tf_keras"):
        import tf_keras as kmod
    else:
        import keras as kmod
    clone = kmod.models.clone_model(original)
    clone.set_weights(original.get_weights())
    layers = _keras_layer_map(clone)
    for l in snapped.layers:
        k = layers.get(l.name)
        if k is None:
            raise EdgeRNNError(f"layer '{l.name}': not found in the Keras model to write QAT weights into")
        if l.kind == "recurrent":
            _set_recurrent(k, l)
        elif l.kind == "bidirectional":
            _set_recurrent(k.forward_layer, l.forward)
            _set_recurrent(k.backward_layer, l.backward)
        elif l.kind == "dense":
            k.set_weights([l.kernel, l.bias][:len(k.get_weights())])
    return clone
