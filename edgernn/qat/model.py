"""The fake-quantized ``tf_keras`` model of an IR model, assembled with tfmot.

Every layer is annotated with a custom ``QuantizeConfig`` (:mod:`.quantizers`) and
``quantize_apply`` wraps it: tfmot's ``QuantizeWrapperV2`` swaps the weights for their
fake-quantized values before each call (the recurrent layers' ``cell.kernel`` /
``cell.recurrent_kernel`` included), and its ``QuantizeAwareActivation`` quantizes the Dense
logits (before a softmax) or outputs. The recurrent layers are ``RNN`` over :class:`.cell.QATCell`;
the model input is quantized by an annotated identity layer, not tfmot's default input layer.
"""

from __future__ import annotations

import numpy as np
import tensorflow_model_optimization as tfmot
import tf_keras as tfk

from .. import ir
from .cell import InputQuant, QATCell
from ..backends.tflm.keras_build import _feedforward_layer
from .quantizers import (CUSTOM_OBJECTS, MODES, ROUND, ConvQuantizeConfig, DenseQuantizeConfig, OutputQuantizeConfig,
                         RecurrentQuantizeConfig, Scheme)
from .snap import recurrent_blocks, shared_scale_layers, uses_fused_lstm


def _feedforward(l, h, mode: str, annotate):
    """A conv / pooling / shape / BatchNorm layer of the QAT model: conv kernels per channel and
    conv outputs quantized (CONV_2D), a MEAN's and a BatchNorm's output quantized; pooling,
    reshapes and REDUCE_MAX share their input's parameters and need nothing."""
    k, weights = _feedforward_layer(tfk, l, len(h.shape) - 1)
    if l.kind in ("conv1d", "depthwise_conv1d", "conv2d"):
        if not np.any(l.bias):  # no bias to train (a SeparableConv1D's depthwise half, use_bias=False)
            k.use_bias = False
            weights = weights[:1]
        h = annotate(k, ConvQuantizeConfig(mode, depthwise=l.kind == "depthwise_conv1d"))(h)
    elif l.kind == "batchnorm":
        k.trainable = False  # inference statistics: the affine the model was given
        h = annotate(k, OutputQuantizeConfig(mode))(h)
    elif l.kind == "global_pool" and l.op == "avg":
        h = annotate(k, OutputQuantizeConfig(mode))(h)
    else:
        h = k(h)
    return h, ((k, weights) if weights else None)


def build_qat_model(model: ir.Model, timesteps: int | None, *, stateful: bool = False, mode: str = ROUND,
                    state: str = "int16"):
    """The fake-quantized tf_keras model of ``model`` (weights copied from the IR).

    ``state``: the WHILE-graph layout ``edgernn convert --state`` will write ("int16" or
    "int8"); the fused LSTM has its own.

    ``mode``: what its quantizers do, :data:`~.quantizers.ROUND` (fake-quantize) or one of the
    observing modes of the calibration twin (:mod:`.calibration`). ``stateful``: batch 1 and
    stateful recurrent layers (the calibration twin of a fused LSTM). The model carries its IR
    (read by :func:`edgernn.qat.calibration.calibrate`).
    """
    if mode not in MODES:
        raise ValueError(f"mode={mode!r}: use one of {', '.join(MODES)}")
    annotate = tfmot.quantization.keras.quantize_annotate_layer
    fused = uses_fused_lstm(model)
    shared = shared_scale_layers(model, state)

    def rnn(l: ir.Recurrent, name=None, go_backwards=None, stacked=False):
        # int8 output sequence (QUANTIZE of h) unless the next layer of the stack reads h itself
        cell = QATCell(l.cell, l.units, activation=l.activation, reset_after=l.reset_after, fused=fused, mode=mode,
                       state=state, return_sequences=l.return_sequences and not stacked)
        return tfk.layers.RNN(cell, return_sequences=l.return_sequences, unroll=False, name=name or l.name,
                              stateful=stateful,
                              go_backwards=l.go_backwards if go_backwards is None else go_backwards)

    inp = tfk.Input(shape=(timesteps, model.input.features), batch_size=1 if stateful else None, name="input")
    h = annotate(InputQuant(name="input_quant"), OutputQuantizeConfig(mode))(inp)
    pending = []
    for j, l in enumerate(model.layers):
        int16 = state == "int16" and not fused
        # a Dense after a final int16 state reads it as it is (convert: FULLY_CONNECTED 16x8)
        dense_next = int16 and j + 1 < len(model.layers) and model.layers[j + 1].kind == "dense"
        if l.kind == "recurrent":
            stacked = int16 and j + 1 < len(model.layers) and model.layers[j + 1].kind == "recurrent"
            k = rnn(l, stacked=stacked)
            final = None
            if int16 and not l.return_sequences and not dense_next:  # QUANTIZE of the final h
                final = "range" if (l.cell == "rnn" and l.activation == "relu") else "tanh"
            h = annotate(k, RecurrentQuantizeConfig(mode, recurrent_blocks(fused), final_output=final,
                                                    shared_scales=j in shared))(h)
            pending.append((k, [l.kernel, l.recurrent_kernel, l.bias]))
        elif l.kind == "bidirectional":
            f, b = l.forward, l.backward
            k = tfk.layers.Bidirectional(rnn(f, f"{l.name}_fwd", False), backward_layer=rnn(b, f"{l.name}_bwd", True),
                                         merge_mode=l.merge_mode, name=l.name)
            # int16 final states read by a Dense: their int16 sum, or their concatenation on Q15
            # (a relu SimpleRNN's halves have two scales: QUANTIZEd and concatenated in int8)
            relu = f.cell == "rnn" and f.activation == "relu"
            merged16 = dense_next and not l.return_sequences and (l.merge_mode == "sum" or not relu)
            h = annotate(k, RecurrentQuantizeConfig(mode, recurrent_blocks(fused), merged_output=not merged16))(h)
            pending.append((k, [f.kernel, f.recurrent_kernel, f.bias, b.kernel, b.recurrent_kernel, b.bias]))
        elif l.kind == "dense":
            k = tfk.layers.Dense(l.units, activation=l.activation, name=l.name)
            h = annotate(k, DenseQuantizeConfig(mode))(h)
            pending.append((k, [l.kernel, l.bias]))
        elif l.kind == "activation":
            h = tfk.layers.Activation(l.activation, name=l.name)(h)
        else:  # conv front-ends, pooling, reshapes, an unfolded BatchNorm: as convert rebuilds them
            h, weights = _feedforward(l, h, mode, annotate)
            if weights is not None:
                pending.append(weights)
    annotated = tfk.Model(inp, h, name=model.name)
    for k, weights in pending:
        targets = ([*k.forward_layer.cell.float_weights, *k.backward_layer.cell.float_weights]
                   if isinstance(k, tfk.layers.Bidirectional) else
                   k.cell.float_weights if isinstance(k, tfk.layers.RNN) else k.weights)
        for var, w in zip(targets, weights, strict=True):
            var.assign(np.asarray(w, np.float32))
    with tfmot.quantization.keras.quantize_scope({**CUSTOM_OBJECTS, "InputQuant": InputQuant, "QATCell": QATCell}):
        qmodel = tfmot.quantization.keras.quantize_apply(annotated, scheme=Scheme())
    object.__setattr__(qmodel, "_edgernn_ir", model)  # for calibrate(); not tracked attributes
    object.__setattr__(qmodel, "_edgernn_state", state)
    return qmodel
