"""Read Keras 3 ``.keras``, tf_keras ``.h5``/``.keras`` and SavedModel into the IR (and save Keras models).

One handler per Keras layer class, registered with :func:`handles`; a model is walked layer by
layer and each handler returns IR layers (or nothing, for layers that vanish at inference such
as Dropout). A class with no handler is refused with the list of supported ones.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Callable

import numpy as np

from .. import ir
from ..errors import EdgeRNNError, UnsupportedLayerError
from ..registry import registrar
from .fold import fold_batchnorm
from .layers import LAYER_HANDLERS

log = logging.getLogger(__name__)

_HANDLERS: dict[str, Callable] = {}

handles = registrar(_HANDLERS, "frontend handlers")  # @handles("LSTM", ...) for Keras layer classes


def _unsupported(layer, option: str, value, works: str):
    raise UnsupportedLayerError(
        f"layer '{layer.name}' ({type(layer).__name__}): {option}={value!r} is not supported; {works}")


def _act_name(a) -> str:
    if a is None:
        return "linear"
    if isinstance(a, dict):  # serialized activation
        a = a.get("config", {}).get("name", a.get("class_name"))
    return str(getattr(a, "__name__", a))


# --- recurrent layers -------------------------------------------------------------------------

_CELL_OF = {"LSTM": "lstm", "GRU": "gru", "SimpleRNN": "rnn"}


def _recurrent(layer, input_dim: int, *, allow_backwards: bool = False) -> ir.Recurrent:
    cls = type(layer).__name__
    cell = _CELL_OF[cls]
    cfg = layer.get_config()
    if cfg.get("stateful"):
        _unsupported(layer, "stateful", True, "use stateful=False; `edgernn convert --streaming` keeps the state on the device")
    if cfg.get("go_backwards") and not allow_backwards:
        _unsupported(layer, "go_backwards", True, "reverse the input instead, or wrap the layer in Bidirectional")
    if cfg.get("return_state"):
        _unsupported(layer, "return_state", True, "use return_state=False")
    if cfg.get("time_major"):
        _unsupported(layer, "time_major", True, "use time_major=False (inputs shaped batch, time, features)")
    act = _act_name(cfg.get("activation", "tanh"))
    allowed = ("tanh", "relu") if cell == "rnn" else ("tanh",)
    if act not in allowed:
        _unsupported(layer, "activation", act, f"use one of {allowed}")
    rec_act = _act_name(cfg.get("recurrent_activation", "sigmoid"))
    if cell != "rnn" and rec_act != "sigmoid":
        _unsupported(layer, "recurrent_activation", rec_act, "use 'sigmoid' (the int8 kernels implement it)")
    units = int(cfg["units"])
    weights = layer.get_weights()
    reset_after = bool(cfg.get("reset_after", True)) if cell == "gru" else True
    g = ir.GATES[cell] * units
    if cfg.get("use_bias", True):
        kernel, rkernel, bias = weights
    else:
        kernel, rkernel = weights
        bias = np.zeros((2, g) if cell == "gru" and reset_after else (g,), np.float32)
    return ir.Recurrent(
        name=layer.name, cell=cell, units=units, input_dim=input_dim,
        kernel=kernel, recurrent_kernel=rkernel, bias=bias,
        activation=act, recurrent_activation=rec_act if cell != "rnn" else "sigmoid",
        return_sequences=bool(cfg.get("return_sequences", False)),
        go_backwards=bool(cfg.get("go_backwards", False)), reset_after=reset_after)


@handles("LSTM", "GRU", "SimpleRNN")
def _rnn_layer(layer, width: int):
    return [_recurrent(layer, width)]


@handles("Bidirectional")
def _bidirectional(layer, width: int):
    fwd, bwd = layer.forward_layer, layer.backward_layer
    if type(fwd).__name__ not in _CELL_OF:
        raise UnsupportedLayerError(
            f"layer '{layer.name}' (Bidirectional): wraps {type(fwd).__name__}; "
            f"supported inside Bidirectional: {sorted(_CELL_OF)}")
    mode = layer.get_config().get("merge_mode", "concat")
    if mode not in ("concat", "sum"):
        _unsupported(layer, "merge_mode", mode, "use 'concat' or 'sum'")
    f = _recurrent(fwd, width)
    b = _recurrent(bwd, width, allow_backwards=True)
    return [ir.Bidirectional(name=layer.name, forward=f, backward=b, merge_mode=mode)]


# --- head -------------------------------------------------------------------------------------

@handles("Dense")
def _dense(layer, width: int):
    cfg = layer.get_config()
    w = layer.get_weights()
    kernel = w[0]
    bias = w[1] if cfg.get("use_bias", True) else np.zeros(kernel.shape[1], np.float32)
    act = _act_name(cfg.get("activation"))
    if act not in ir.ACTIVATIONS:
        _unsupported(layer, "activation", act, f"use one of {ir.ACTIVATIONS}")
    return [ir.Dense(name=layer.name, kernel=kernel, bias=bias, activation=act)]


@handles("TimeDistributed")
def _time_distributed(layer, width: int):
    inner = layer.layer
    if type(inner).__name__ != "Dense":
        raise UnsupportedLayerError(
            f"layer '{layer.name}' (TimeDistributed): wraps {type(inner).__name__}; only Dense is supported")
    return _dense(inner, width)


@handles("Activation", "Softmax", "ReLU")
def _activation(layer, width: int):
    cls = type(layer).__name__
    act = {"Softmax": "softmax", "ReLU": "relu"}.get(cls) or _act_name(layer.get_config().get("activation"))
    if cls == "ReLU" and (layer.get_config().get("max_value") is not None
                          or layer.get_config().get("negative_slope", 0) not in (0, 0.0)):
        _unsupported(layer, "max_value/negative_slope", "set", "use a plain ReLU")
    if act not in ir.ACTIVATIONS:
        _unsupported(layer, "activation", act, f"use one of {ir.ACTIVATIONS}")
    return [] if act == "linear" else [ir.Activation(name=layer.name, activation=act)]


@handles("Dropout", "SpatialDropout1D", "GaussianNoise", "GaussianDropout", "InputLayer")
def _inference_noop(layer, width: int):
    return []


_HANDLERS.update(LAYER_HANDLERS)  # conv / pooling / shape / BatchNormalization layers (.layers)
SUPPORTED_LAYERS = tuple(sorted(_HANDLERS))


# --- model walking ----------------------------------------------------------------------------

def _check_chain(model, layer) -> None:
    """edgernn handles a single chain of layers; refuse a layer fed by several inputs."""
    if type(model).__name__ not in ("Sequential", "Functional", "Model"):
        raise EdgeRNNError(f"model '{model.name}' is a subclassed {type(model).__name__}; "
                           "save a Sequential or functional model")
    for node in getattr(layer, "_inbound_nodes", []):
        parents = getattr(node, "parent_nodes", None)
        if parents is not None and len(parents) > 1:
            raise EdgeRNNError(f"layer '{layer.name}' has {len(parents)} inputs; edgernn converts a "
                               "single chain of layers (Sequential-like)")


def from_keras(model, source: str = "") -> ir.Model:
    """Build the IR from a loaded Keras 3 or tf_keras model object."""
    shape = tuple(model.inputs[0].shape) if getattr(model, "inputs", None) else tuple(model.input_shape)
    if len(shape) not in (3, 4) or None in shape[2:]:
        raise EdgeRNNError(f"{source or model.name}: the model input has shape {shape}; "
                           "expected (batch, time steps, features) or an image (batch, time steps, F, C)")
    timesteps = None if shape[1] is None else int(shape[1])
    features = int(np.prod(shape[2:]))
    layers: list[ir.Layer] = []
    if len(shape) == 4:  # a CRNN's (T, F, C) input: edgernn's int8 input is (T, F * C), the same bytes
        layers.append(ir.Reshape(name="input_image", target_shape=(timesteps or -1,) + tuple(shape[2:])))
    shape = (timesteps, features)  # walked layer by layer: each IR layer checks its input shape
    for node in layers:
        shape = node.out_shape(shape)
    for layer in model.layers:
        cls = type(layer).__name__
        handler = _HANDLERS.get(cls)
        if handler is None:
            raise UnsupportedLayerError(
                f"layer '{layer.name}' ({cls}) is not supported; supported layers: {', '.join(SUPPORTED_LAYERS)}")
        _check_chain(model, layer)
        for node in handler(layer, shape[-1]):
            shape = node.out_shape(shape)
            layers.append(node)
    if not any(l.kind in ir.RECURRENT_KINDS for l in layers):
        raise EdgeRNNError(f"{source or model.name}: the model has no SimpleRNN, LSTM or GRU layer")
    layers, folded = fold_batchnorm(layers)
    return ir.Model(name=_c_safe(model.name), input=ir.InputSpec(timesteps, features), layers=layers,
                    source=source, folded_batchnorm=folded)


def _c_safe(name: str) -> str:
    out = "".join(c if c.isalnum() else "_" for c in name).strip("_").lower()
    return out if out and not out[0].isdigit() else f"model_{out}"


def save_model(model, output) -> Path:
    """Save a Keras model to ``output`` atomically: a half-written file never has the final name."""
    path = Path(output)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")
    try:
        model.save(tmp)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
