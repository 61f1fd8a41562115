"""Fold BatchNormalization into a neighbouring layer's weights, where that is exact.

A BatchNormalization at inference is a per-channel affine ``y = x * scale + offset``
(:class:`edgernn.ir.BatchNorm`). It disappears into:

* the layer **before** it (Dense, Conv1D, DepthwiseConv1D, Conv2D, or another BatchNorm)
  when that layer's activation is linear -- output channel ``o`` gets ``w * scale[o]`` and
  ``b * scale[o] + offset[o]``; this is what the TFLite converter does, and a following
  Activation / ReLU stays (it is then fused into the op);
* otherwise the layer **after** it, when every output of that layer reads only real inputs
  (no zero padding, which a folded offset would shift): a Dense, a ``valid`` Conv1D /
  DepthwiseConv1D / Conv2D, or a recurrent layer's input kernel -- input channel ``c`` gets
  ``w * scale[c]`` and the bias gains ``offset @ w``.

An Activation / ReLU layer right after a linear Dense or conv then becomes its activation
(:func:`fuse_activations`). What folds nowhere (e.g. ``Conv1D(relu) -> BatchNormalization -> Conv1D(causal)``) stays a
BatchNorm layer, converted as the TFLite converter converts it: an int8 MUL and ADD with
per-channel constants.
"""

from __future__ import annotations

import numpy as np

from .. import ir

_LINEAR_KINDS = ("dense", "conv1d", "depthwise_conv1d", "conv2d")


def _scale_out(layer, s: np.ndarray, o: np.ndarray):
    """``layer`` followed by ``x * s + o``: per output channel."""
    if layer.kind == "batchnorm":
        return ir.BatchNorm(name=layer.name, scale=layer.scale * s, offset=layer.offset * s + o)
    k = layer.kernel.astype(np.float64)
    if layer.kind == "depthwise_conv1d":
        k = k * s.reshape(k.shape[1], k.shape[2])
    else:
        k = k * s
    layer.kernel = k.astype(np.float32)
    layer.bias = (layer.bias.astype(np.float64) * s + o).astype(np.float32)
    return layer


def _scale_in(layer, s: np.ndarray, o: np.ndarray):
    """``x * s + o`` followed by ``layer``: per input channel."""
    if layer.kind == "bidirectional":
        _scale_in(layer.forward, s, o)
        _scale_in(layer.backward, s, o)
        return layer
    k = layer.kernel.astype(np.float64)
    if layer.kind == "recurrent":
        shift = o @ k
        layer.kernel = (k * s[:, None]).astype(np.float32)
        b = layer.bias.astype(np.float64)
        if b.ndim == 2:  # GRU reset_after: row 0 is the input bias
            b[0] += shift
        else:
            b += shift
        layer.bias = b.astype(np.float32)
        return layer
    if layer.kind == "dense":
        shift = o @ k
        k = k * s[:, None]
    elif layer.kind == "depthwise_conv1d":  # (k, C, mult): channel c*mult+m reads input c
        shift = (o[:, None] * k.sum(axis=0)).reshape(-1)
        k = k * s[None, :, None]
    else:  # conv1d (k, C, O), conv2d (kt, kf, C, O)
        shift = np.sum(k * o[:, None], axis=tuple(range(k.ndim - 1)))
        k = k * s[:, None]
    layer.kernel = k.astype(np.float32)
    layer.bias = (layer.bias.astype(np.float64) + shift).astype(np.float32)
    return layer


def _foldable_after(layer) -> bool:
    return (layer.kind in ("dense", "batchnorm") or layer.kind in _LINEAR_KINDS and layer.activation == "linear")


def _foldable_before(layer) -> bool:
    if layer.kind in ("dense", "recurrent", "bidirectional"):
        return True
    return layer.kind in ("conv1d", "depthwise_conv1d", "conv2d") and layer.padding == "valid"


def fuse_activations(layers: list) -> list:
    """An Activation / ReLU right after a linear Dense or conv becomes that layer's activation
    (one op with a fused RELU instead of two, as the TFLite converter writes it)."""
    out: list = []
    for layer in layers:
        prev = out[-1] if out else None
        if (layer.kind == "activation" and prev is not None and prev.kind in _LINEAR_KINDS
                and prev.activation == "linear"):
            prev.activation = layer.activation
            continue
        out.append(layer)
    return out


def fold_batchnorm(layers: list) -> tuple[list, dict[str, str]]:
    """``layers`` with every foldable BatchNorm folded away, and {BatchNorm name: the layer it
    went into}. The layers' weights are changed in place."""
    out: list = []
    folded: dict[str, str] = {}
    pending = list(layers)
    while pending:
        layer = pending.pop(0)
        if layer.kind != "batchnorm":
            out.append(layer)
            continue
        s, o = layer.scale.astype(np.float64), layer.offset.astype(np.float64)
        if out and _foldable_after(out[-1]) and (out[-1].kind != "dense" or out[-1].activation == "linear"):
            out[-1] = _scale_out(out[-1], s, o)
            folded[layer.name] = out[-1].name
        elif pending and _foldable_before(pending[0]):
            pending[0] = _scale_in(pending[0], s, o)
            folded[layer.name] = pending[0].name
        else:
            out.append(layer)
    return fuse_activations(out), folded
