"""Frontend handlers of the non-recurrent layers of hybrid models (DeepConvLSTM, CRNN, CNN-GRU).

Conv1D / DepthwiseConv1D / SeparableConv1D / Conv2D, 1-D and 2-D pooling, global pooling,
Flatten / Reshape / Permute and BatchNormalization become IR layers (:mod:`edgernn.ir`), read
from each layer's config and weights (never by calling it). :mod:`.keras` registers them next to
its own handlers; BatchNormalization is folded afterwards (:mod:`.fold`).
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from .. import ir
from ..errors import UnsupportedLayerError
from ..registry import registrar

LAYER_HANDLERS: dict[str, Callable] = {}

handles = registrar(LAYER_HANDLERS, "frontend layer handlers")


def _unsupported(layer, option: str, value, works: str):
    raise UnsupportedLayerError(
        f"layer '{layer.name}' ({type(layer).__name__}): {option}={value!r} is not supported; {works}")


def _act_name(a) -> str:
    if a is None:
        return "linear"
    if isinstance(a, dict):
        a = a.get("config", {}).get("name", a.get("class_name"))
    return str(getattr(a, "__name__", a))


def _channels_last(layer, cfg: dict) -> None:
    fmt = cfg.get("data_format") or "channels_last"
    if fmt != "channels_last":
        _unsupported(layer, "data_format", fmt, "use 'channels_last' (time steps on axis 1), or add a Permute")


def _activation(layer, cfg: dict) -> str:
    act = _act_name(cfg.get("activation"))
    if act not in ir.ACTIVATIONS:
        _unsupported(layer, "activation", act, f"use one of {ir.ACTIVATIONS}")
    return act


def _conv_common(layer, cfg: dict, paddings=ir.CONV_PADDINGS) -> dict:
    _channels_last(layer, cfg)
    if int(cfg.get("groups", 1) or 1) != 1:
        _unsupported(layer, "groups", cfg["groups"], "use groups=1 (or a DepthwiseConv1D for one group per channel)")
    padding = str(cfg.get("padding", "valid")).lower()
    if padding not in paddings:
        _unsupported(layer, "padding", padding, f"use one of {paddings}")
    return dict(padding=padding, activation=_activation(layer, cfg))


def _weights(layer, n_kernels: int, bias_size: int | None, use_bias: bool) -> tuple[list, np.ndarray | None]:
    w = [np.asarray(a, np.float32) for a in layer.get_weights()]
    kernels = w[:n_kernels]
    bias = w[n_kernels] if use_bias else (np.zeros(bias_size, np.float32) if bias_size else None)
    return kernels, bias


def _one(v) -> int:
    return int(np.atleast_1d(v)[0])


@handles("Conv1D")
def _conv1d(layer, width: int):
    cfg = layer.get_config()
    common = _conv_common(layer, cfg)
    (kernel,), bias = _weights(layer, 1, int(cfg["filters"]), cfg.get("use_bias", True))
    return [ir.Conv1D(name=layer.name, kernel=kernel, bias=bias, strides=_one(cfg.get("strides", 1)),
                      dilation=_one(cfg.get("dilation_rate", 1)), **common)]


def _depthwise(layer, cfg: dict, kernel: np.ndarray, bias: np.ndarray, name: str, common: dict) -> ir.DepthwiseConv1D:
    return ir.DepthwiseConv1D(name=name, kernel=kernel, bias=bias, strides=_one(cfg.get("strides", 1)),
                              dilation=_one(cfg.get("dilation_rate", 1)), **common)


@handles("DepthwiseConv1D")
def _depthwise_conv1d(layer, width: int):
    cfg = layer.get_config()
    common = _conv_common(layer, cfg)
    (kernel,), bias = _weights(layer, 1, width * int(cfg.get("depth_multiplier", 1)), cfg.get("use_bias", True))
    return [_depthwise(layer, cfg, kernel, bias, layer.name, common)]


@handles("SeparableConv1D")
def _separable_conv1d(layer, width: int):
    """A depthwise convolution (no bias, linear) then a 1x1 convolution (bias, activation):
    exactly the pair of ops the TFLite converter writes for it."""
    cfg = layer.get_config()
    common = _conv_common(layer, cfg)
    (dw, pw), bias = _weights(layer, 2, int(cfg["filters"]), cfg.get("use_bias", True))
    depthwise = _depthwise(layer, cfg, dw, np.zeros(dw.shape[1] * dw.shape[2], np.float32), f"{layer.name}_depthwise",
                           dict(common, activation="linear"))
    pointwise = ir.Conv1D(name=layer.name, kernel=pw, bias=bias, activation=common["activation"])
    return [depthwise, pointwise]


@handles("Conv2D")
def _conv2d(layer, width: int):
    cfg = layer.get_config()
    common = _conv_common(layer, cfg, paddings=("valid", "same"))
    (kernel,), bias = _weights(layer, 1, int(cfg["filters"]), cfg.get("use_bias", True))
    return [ir.Conv2D(name=layer.name, kernel=kernel, bias=bias, strides=cfg.get("strides", (1, 1)),
                      dilation=cfg.get("dilation_rate", (1, 1)), **common)]


@handles("MaxPooling1D", "AveragePooling1D", "MaxPooling2D", "AveragePooling2D")
def _pool(layer, width: int):
    cfg = layer.get_config()
    _channels_last(layer, cfg)
    cls = type(layer).__name__
    pool = cfg.get("pool_size")
    strides = cfg.get("strides") or pool
    padding = str(cfg.get("padding", "valid")).lower()
    if padding not in ("valid", "same"):
        _unsupported(layer, "padding", padding, "use 'valid' or 'same'")
    n = 1 if cls.endswith("1D") else 2
    return [ir.Pool(name=layer.name, op="max" if cls.startswith("Max") else "avg", pool=ir._pair(pool, n),
                    strides=ir._pair(strides, n), padding=padding)]


@handles("GlobalAveragePooling1D", "GlobalMaxPooling1D", "GlobalAveragePooling2D", "GlobalMaxPooling2D")
def _global_pool(layer, width: int):
    cfg = layer.get_config()
    _channels_last(layer, cfg)
    if cfg.get("keepdims"):
        _unsupported(layer, "keepdims", True, "use keepdims=False")
    return [ir.GlobalPool(name=layer.name, op="max" if "Max" in type(layer).__name__ else "avg")]


@handles("Flatten")
def _flatten(layer, width: int):
    _channels_last(layer, layer.get_config())
    return [ir.Reshape(name=layer.name, target_shape=(-1,))]


@handles("Reshape")
def _reshape(layer, width: int):
    return [ir.Reshape(name=layer.name, target_shape=tuple(layer.get_config()["target_shape"]))]


@handles("Permute")
def _permute(layer, width: int):
    return [ir.Permute(name=layer.name, dims=tuple(layer.get_config()["dims"]))]


def _input_rank(layer) -> int | None:
    for get in (lambda: layer.input.shape, lambda: layer.input_shape):
        try:
            return len(get())
        except Exception:  # not built in a functional graph, or several inputs
            continue
    return None


@handles("BatchNormalization")
def _batch_norm(layer, width: int):
    """The per-channel affine the trained statistics give (``x * scale + offset``); folded into
    a neighbouring Conv / Dense by :func:`edgernn.frontend.fold.fold_batchnorm` where exact."""
    cfg = layer.get_config()
    axis = cfg.get("axis", -1)
    axis = list(axis) if isinstance(axis, (list, tuple)) or hasattr(axis, "__iter__") else [axis]
    rank = _input_rank(layer)
    if len(axis) != 1 or int(axis[0]) not in (-1, (rank - 1) if rank else -1):
        _unsupported(layer, "axis", axis, "normalize the last axis (channels), axis=-1")
    if cfg.get("renorm"):
        _unsupported(layer, "renorm", True, "use renorm=False")
    w = [np.asarray(a, np.float64) for a in layer.get_weights()]
    gamma = w.pop(0) if cfg.get("scale", True) else np.ones(width)
    beta = w.pop(0) if cfg.get("center", True) else np.zeros(width)
    mean, var = w
    scale = gamma / np.sqrt(var + float(cfg.get("epsilon", 1e-3)))
    return [ir.BatchNorm(name=layer.name, scale=scale.astype(np.float32),
                         offset=(beta - mean * scale).astype(np.float32))]
