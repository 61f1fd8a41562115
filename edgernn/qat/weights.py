"""Weights out of the QAT model: into the IR, and back into the user's Keras model."""

from __future__ import annotations

from dataclasses import replace

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
        elif l.kind in ("dense", "conv1d", "depthwise_conv1d", "conv2d"):
            # tfmot swapped layer.kernel for its quantized tensor; the wrapper keeps the variables
            named = {v.name.split("/")[-1].split(":")[0]: v for v in outer[l.name].trainable_weights}
            kernel = np.asarray(named["depthwise_kernel" if "depthwise_kernel" in named else "kernel"].numpy(),
                                np.float32)
            bias = np.asarray(named["bias"].numpy(), np.float32) if "bias" in named else np.zeros_like(l.bias)
            layers.append(replace(l, kernel=kernel, bias=bias))
        else:
            layers.append(l)
    return ir.Model(name=model.name, input=model.input, layers=layers, source=model.source,
                    folded_batchnorm=dict(model.folded_batchnorm))


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


def _identity_batchnorm(k) -> None:
    """A BatchNormalization whose affine was folded into a neighbour's weights: make it the
    identity (mean 0, variance 1 - epsilon, scale 1, offset 0)."""
    value = {0: 1.0, 1: 0.0, 2: 0.0, 3: 1.0 - float(k.get_config().get("epsilon", 1e-3))}
    k.set_weights([np.full_like(w, value[slot]) for slot, w in _bn_slots(k)])


def _bn_slots(k):
    """(slot, weight) of a BatchNormalization's weights: 0 gamma, 1 beta, 2 mean, 3 variance."""
    cfg = k.get_config()
    slots = ([0] if cfg.get("scale", True) else []) + ([1] if cfg.get("center", True) else []) + [2, 3]
    return list(zip(slots, k.get_weights()))


def write_back(original, snapped: ir.Model):
    """A copy of the user's Keras model (Keras 3 or tf_keras) carrying ``snapped``'s weights.

    Folded BatchNormalizations become the identity (their affine is in the neighbour's weights);
    a SeparableConv1D gets its depthwise and pointwise halves back in one layer."""
    if type(original).__module__.startswith("tf_keras"):
        import tf_keras as kmod
    else:
        import keras as kmod
    clone = kmod.models.clone_model(original)
    clone.set_weights(original.get_weights())
    layers = _keras_layer_map(clone)
    for l in snapped.layers:
        if l.kind in ("pool", "global_pool", "reshape", "permute", "batchnorm", "activation"):
            continue  # no weights QAT changes (an unfolded BatchNorm is not trained)
        if l.name.endswith("_depthwise") and type(layers.get(l.name[:-len("_depthwise")])).__name__ == \
                "SeparableConv1D":
            continue  # written with its pointwise half
        k = layers.get(l.name)
        if k is None:
            raise EdgeRNNError(f"layer '{l.name}': not found in the Keras model to write QAT weights into")
        if l.kind == "recurrent":
            _set_recurrent(k, l)
        elif l.kind == "bidirectional":
            _set_recurrent(k.forward_layer, l.forward)
            _set_recurrent(k.backward_layer, l.backward)
        elif l.kind in ("dense", "conv1d", "depthwise_conv1d", "conv2d"):
            if type(k).__name__ == "SeparableConv1D":  # its pointwise half; the depthwise one is '<name>_depthwise'
                dw = next(d for d in snapped.layers if d.name == f"{l.name}_depthwise")
                k.set_weights([dw.kernel, l.kernel, l.bias][:len(k.get_weights())])
            else:
                k.set_weights([l.kernel, l.bias][:len(k.get_weights())])
    for bn in snapped.folded_batchnorm:
        _identity_batchnorm(layers[bn])
    return clone
