"""Weights on their int8 grid: what the converter will store, dequantized.

Symmetric int8 with ``narrow_range`` (scale ``max|w| / 127``, zero point 0): one scale per gate
matrix for the fused LSTM (whose ``UNIDIRECTIONAL_SEQUENCE_LSTM`` keeps its eight weight
matrices per-tensor), one per output channel everywhere else (``FULLY_CONNECTED``, ``CONV_2D``,
``DEPTHWISE_CONV_2D``); in the int16 WHILE layout a stacked layer's kernel and recurrent kernel
share theirs (:func:`snap_pair`).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from .. import ir
from ..backends.tflm.cells import shares_row_scales
from ..backends.tflm.convert import conversion_strategy


def weight_scales(w: np.ndarray, blocks: int | None) -> np.ndarray:
    """Per-column int8 scales of a (in, out) weight: per channel (``blocks=None``) or one per
    block of ``out // blocks`` columns (an LSTM gate matrix)."""
    w = np.asarray(w, np.float32)
    if blocks is None:  # a Dense (in, out) or conv (..., C_in, C_out) kernel: per output channel
        m = np.max(np.abs(w), axis=tuple(range(w.ndim - 1)))
    else:
        per = w.shape[-1] // blocks
        m = np.repeat(np.max(np.abs(w.reshape(w.shape[0], blocks, per)), axis=(0, 2)), per)
    return np.maximum(m, 1e-12).astype(np.float32) / 127.0


def snap_weight(w: np.ndarray, blocks: int | None, depthwise: bool = False) -> np.ndarray:
    """``w`` rounded to its symmetric int8 grid (what the converter will store, dequantized).
    ``depthwise``: a (k, C, m) kernel, one scale per output channel c * m + j."""
    w = np.asarray(w, np.float32)
    if depthwise:
        return snap_weight(w.reshape(w.shape[0], -1), None).reshape(w.shape)
    s = weight_scales(w, blocks)
    return (np.clip(np.round(w / s), -127, 127) * s).astype(np.float32)


def snap_pair(k: np.ndarray, r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A layer's kernel and recurrent kernel rounded with one scale per column over both (the
    converter's SHARED_SCALES, :func:`edgernn.backends.tflm.cells.shares_row_scales`)."""
    k, r = np.asarray(k, np.float32), np.asarray(r, np.float32)
    s = weight_scales(np.concatenate([k, r], axis=0), None)
    return tuple((np.clip(np.round(w / s), -127, 127) * s).astype(np.float32) for w in (k, r))


def shared_scale_layers(model: ir.Model, state: str = "int16") -> set[int]:
    """Indices of the recurrent layers whose two kernels share per-column scales once converted
    with ``--state state`` (the int16 WHILE layout, a layer reading the Q15 h below it)."""
    if state != "int16" or uses_fused_lstm(model):
        return set()
    return {j for j in range(1, len(model.layers)) if shares_row_scales(model.layers[j], model.layers[j - 1])}


def uses_fused_lstm(model: ir.Model) -> bool:
    """True when ``edgernn convert`` gives ``model`` the TFLite converter's fused int8 LSTM."""
    return conversion_strategy(model) == "fused-lstm"


def recurrent_blocks(fused: bool) -> int | None:
    """Weight-scale blocks of a recurrent kernel: the fused LSTM's 4 gate matrices, else per channel."""
    return 4 if fused else None


def snap_model(model: ir.Model, state: str = "int16") -> ir.Model:
    """A copy of ``model`` with every kernel snapped to its int8 grid (biases stay float), as
    ``edgernn convert --state state`` quantizes it."""
    fused = uses_fused_lstm(model)
    shared = shared_scale_layers(model, state)

    def rec(l: ir.Recurrent, pair: bool = False) -> ir.Recurrent:
        b = recurrent_blocks(fused)
        k, r = snap_pair(l.kernel, l.recurrent_kernel) if pair else (snap_weight(l.kernel, b),
                                                                        snap_weight(l.recurrent_kernel, b))
        return ir.Recurrent(name=l.name, cell=l.cell, units=l.units, input_dim=l.input_dim,
                            kernel=k, recurrent_kernel=r,
                            bias=l.bias.copy(), activation=l.activation, recurrent_activation=l.recurrent_activation,
                            return_sequences=l.return_sequences, go_backwards=l.go_backwards,
                            reset_after=l.reset_after)

    layers: list[ir.Layer] = []
    for j, l in enumerate(model.layers):
        if l.kind == "recurrent":
            layers.append(rec(l, j in shared))
        elif l.kind == "bidirectional":
            layers.append(ir.Bidirectional(name=l.name, forward=rec(l.forward), backward=rec(l.backward),
                                           merge_mode=l.merge_mode))
        elif l.kind in ("dense", "conv1d", "depthwise_conv1d", "conv2d"):
            layers.append(replace(l, kernel=snap_weight(l.kernel, None, depthwise=l.kind == "depthwise_conv1d"),
                                  bias=l.bias.copy()))
        else:
            layers.append(l)
    return ir.Model(name=model.name, input=ir.InputSpec(model.input.timesteps, model.input.features),
                    layers=layers, source=model.source, folded_batchnorm=dict(model.folded_batchnorm))
