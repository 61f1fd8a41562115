"""The fake quantizers of the QAT model (tfmot ``Quantizer``s) and the ``QuantizeConfig``s that
place them on the layers' weights and outputs.

Every quantizer computes ``tf.quantization.fake_quant_with_min_max_vars*``, whose gradient is
the straight-through estimator (zero outside the range, as the int8 clamp is). Each quantizer
is built for one mode of its model, :data:`ROUND` (fake-quantize) or, in the observing twin
the calibration pass runs (:mod:`.calibration`), :data:`OBSERVE` / :data:`OBSERVE_FLOAT`:
range quantizers record the min/max of what they see and pass values through, as the
converter calibrates the float model.
"""

from __future__ import annotations

import math
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import tensorflow as tf  # noqa: E402
import tensorflow_model_optimization as tfmot  # noqa: E402
import tf_keras as tfk  # noqa: E402

Quantizer = tfmot.quantization.keras.quantizers.Quantizer
QuantizeConfig = tfmot.quantization.keras.QuantizeConfig


# What a QAT model's quantizers do, fixed when the model is built (``build_qat_model(mode=...)``):
ROUND = "round"  # fake-quantize: the model QAT trains and scores
OBSERVE = "observe"  # record each range, pass values through (weights still rounded): the float
#                      model the converter calibrates when its weights lie on their int8 grid
OBSERVE_FLOAT = "observe-float-weights"  # the same with the weights unrounded: the given model,
#                                          as post-training quantization calibrates it
MODES = (ROUND, OBSERVE, OBSERVE_FLOAT)


def _weights(layer, name, init=0.0):
    return layer.add_weight(name=name, shape=(), initializer=tfk.initializers.Constant(init), trainable=False)


class RangeQuantizer(Quantizer):
    """Asymmetric ``num_bits`` fake quantization over a calibrated [min, max] (0 included)."""

    def __init__(self, mode: str, num_bits: int = 8):
        self.mode, self.num_bits = mode, num_bits

    def build(self, tensor_shape, name, layer):
        return {"min": _weights(layer, f"{name}_min"), "max": _weights(layer, f"{name}_max")}

    def __call__(self, inputs, training, weights, **kwargs):
        if self.mode != ROUND:
            weights["min"].assign(tf.minimum(weights["min"], tf.reduce_min(inputs)))
            weights["max"].assign(tf.maximum(weights["max"], tf.reduce_max(inputs)))
            return inputs
        return tf.quantization.fake_quant_with_min_max_vars(
            inputs, weights["min"], weights["max"], num_bits=self.num_bits, narrow_range=False)

    def get_config(self):
        return {"mode": self.mode, "num_bits": self.num_bits}


class SaturatingRangeQuantizer(RangeQuantizer):
    """A pre-activation read only by LOGISTIC / TANH: its calibrated range clipped to where
    the int8 output still changes, as :data:`edgernn.quantize.params.SATURATING_RANGE` has the
    converter do."""

    def __init__(self, mode: str, lo: float, hi: float, num_bits: int = 8):
        super().__init__(mode, num_bits)
        self.lo, self.hi = float(lo), float(hi)

    def __call__(self, inputs, training, weights, **kwargs):
        if self.mode != ROUND:
            super().__call__(tf.clip_by_value(inputs, self.lo, self.hi), training, weights)
            return inputs
        return super().__call__(inputs, training, weights)

    def get_config(self):
        return {"mode": self.mode, "lo": self.lo, "hi": self.hi, "num_bits": self.num_bits}


class SymmetricRangeQuantizer(RangeQuantizer):
    """Symmetric ``num_bits`` (int16) fake quantization, zero point 0, scale ``max|x| / 32767``
    over the calibrated range: the int16 step tensors of the WHILE graphs' int16 layout. With
    ``lo``/``hi``, the observed range is clipped there (a pre-activation read only by LOGISTIC /
    TANH); ``headroom``: the range used is that many times the observed one (the int16 LSTM's
    cell state, :data:`edgernn.quantize.params.CELL_HEADROOM`)."""

    def __init__(self, mode: str, num_bits: int = 16, lo: float | None = None, hi: float | None = None,
                 headroom: float = 1.0):
        super().__init__(mode, num_bits)
        self.lo, self.hi = lo, hi
        self.headroom = float(headroom)

    def __call__(self, inputs, training, weights, **kwargs):
        if self.mode != ROUND:
            seen = inputs if self.lo is None else tf.clip_by_value(inputs, self.lo, self.hi)
            super().__call__(seen, training, weights)
            return inputs
        top = float(2 ** (self.num_bits - 1))
        a = tf.maximum(tf.maximum(-weights["min"], weights["max"]), 1e-8) * self.headroom
        return tf.quantization.fake_quant_with_min_max_vars(inputs, -a * top / (top - 1.0), a,
                                                            num_bits=self.num_bits, narrow_range=False)

    def get_config(self):
        return {"mode": self.mode, "num_bits": self.num_bits, "lo": self.lo, "hi": self.hi, "headroom": self.headroom}


class PowerOfTwoQuantizer(Quantizer):
    """Symmetric int16 over ``[-2^k, 2^k)``, ``2^k >= max|x|``: the LSTM cell state."""

    def __init__(self, mode: str):
        self.mode = mode

    def build(self, tensor_shape, name, layer):
        return {"absmax": _weights(layer, f"{name}_absmax")}

    def __call__(self, inputs, training, weights, **kwargs):
        if self.mode != ROUND:
            weights["absmax"].assign(tf.maximum(weights["absmax"], tf.reduce_max(tf.abs(inputs))))
            return inputs
        bound = tf.pow(2.0, tf.math.ceil(tf.math.log(tf.maximum(weights["absmax"], 2.0 ** -15)) / math.log(2.0)))
        return tf.quantization.fake_quant_with_min_max_vars(inputs, -bound, bound * (32767.0 / 32768.0),
                                                            num_bits=16, narrow_range=False)

    def get_config(self):
        return {"mode": self.mode}


class FixedRangeQuantizer(Quantizer):
    """Fake quantization on a grid fixed by the kernel (not calibrated)."""

    def __init__(self, mode: str, lo: float, hi: float, num_bits: int = 8):
        self.mode, self.lo, self.hi, self.num_bits = mode, float(lo), float(hi), num_bits

    def build(self, tensor_shape, name, layer):
        return {}

    def __call__(self, inputs, training, weights, **kwargs):
        if self.mode != ROUND:
            return inputs
        return tf.quantization.fake_quant_with_min_max_args(inputs, min=self.lo, max=self.hi,
                                                            num_bits=self.num_bits, narrow_range=False)

    def get_config(self):
        return {"mode": self.mode, "lo": self.lo, "hi": self.hi, "num_bits": self.num_bits}


class SymmetricWeightQuantizer(Quantizer):
    """Symmetric int8 (narrow range) weights, per output channel (the last axis of a Dense or
    conv kernel; channel x multiplier of a depthwise kernel ``(k, C, m)``) or per gate block."""

    def __init__(self, mode: str, blocks: int | None = None, depthwise: bool = False):
        self.mode, self.blocks, self.depthwise = mode, blocks, depthwise

    def build(self, tensor_shape, name, layer):
        return {}

    def __call__(self, inputs, training, weights, **kwargs):
        if self.mode == OBSERVE_FLOAT:
            return inputs
        shape = inputs.shape
        if self.depthwise:  # output channel c * m + j of a (k, C, m) kernel
            inputs = tf.reshape(inputs, (shape[0], shape[1] * shape[2]))
        a = tf.abs(inputs)
        if self.blocks is None:
            m = tf.reduce_max(a, axis=list(range(inputs.shape.rank - 1)))
        else:
            per = inputs.shape[-1] // self.blocks
            m = tf.reduce_max(tf.reshape(a, (-1, self.blocks, per)), axis=(0, 2))
            m = tf.repeat(m, per)
        m = tf.stop_gradient(tf.maximum(m, 1e-12))
        out = tf.quantization.fake_quant_with_min_max_vars_per_channel(inputs, -m, m, num_bits=8, narrow_range=True)
        return tf.reshape(out, shape) if self.depthwise else out

    def get_config(self):
        return {"mode": self.mode, "blocks": self.blocks, "depthwise": self.depthwise}


def _cells_of(layer):
    if isinstance(layer, tfk.layers.Bidirectional):
        return [layer.forward_layer.cell, layer.backward_layer.cell]
    return [layer.cell]


class RecurrentQuantizeConfig(QuantizeConfig):
    """Weights of a QAT RNN (or Bidirectional of two); states are quantized by the QAT cell."""

    def __init__(self, mode: str, blocks: int | None = None, merged_output: bool = False,
                 final_output: str | None = None, shared_scales: bool = False):
        # final_output: the int8 QUANTIZE of an int16 layer's final state ("tanh": TANH's
        # fixed grid, "range": calibrated), quantized on the layer's output (its last step).
        # shared_scales: one scale per column over both kernels (the converter's SHARED_SCALES,
        # edgernn.backends.tflm.cells.shares_row_scales), applied in set_quantize_weights
        self.mode, self.blocks, self.merged_output, self.final_output = mode, blocks, merged_output, final_output
        self.shared_scales = bool(shared_scales)

    def get_weights_and_quantizers(self, layer):
        wq = PassThroughQuantizer() if self.shared_scales else SymmetricWeightQuantizer(self.mode, self.blocks)
        out = []
        for cell in _cells_of(layer):
            out += [(cell.kernel, wq), (cell.recurrent_kernel, wq)]
        return out

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        for i, cell in enumerate(_cells_of(layer)):
            k, rk = quantize_weights[2 * i], quantize_weights[2 * i + 1]
            if self.shared_scales and self.mode != OBSERVE_FLOAT:
                k, rk = _fake_quant_shared(k, rk)
            cell.kernel, cell.recurrent_kernel = k, rk

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        if self.merged_output or self.final_output == "range":
            return [RangeQuantizer(self.mode, 8)]
        if self.final_output == "tanh":
            return [FixedRangeQuantizer(self.mode, -1.0, 127.0 / 128.0)]
        return []

    def get_config(self):
        return {"mode": self.mode, "blocks": self.blocks, "merged_output": self.merged_output,
                "final_output": self.final_output, "shared_scales": self.shared_scales}


class PassThroughQuantizer(Quantizer):
    """Leaves a weight as it is (quantized later, with its partner: ``shared_scales``)."""

    def build(self, tensor_shape, name, layer):
        return {}

    def __call__(self, inputs, training, weights, **kwargs):
        return tf.identity(inputs)

    def get_config(self):
        return {}


def _fake_quant_shared(k, rk):
    """Kernel (in, G) and recurrent kernel (U, G) fake-quantized (symmetric int8, narrow range)
    with one scale per column over both, as :func:`edgernn.qat.snap.snap_pair`."""
    m = tf.maximum(tf.reduce_max(tf.abs(k), axis=0), tf.reduce_max(tf.abs(rk), axis=0))
    m = tf.stop_gradient(tf.maximum(m, 1e-12))
    return tuple(tf.quantization.fake_quant_with_min_max_vars_per_channel(w, -m, m, num_bits=8, narrow_range=True)
                 for w in (k, rk))


class DenseQuantizeConfig(QuantizeConfig):
    """Per-channel int8 kernel; int8 logits (before softmax/sigmoid) or outputs."""

    def __init__(self, mode: str):
        self.mode = mode

    def get_weights_and_quantizers(self, layer):
        return [(layer.kernel, SymmetricWeightQuantizer(self.mode, None))]

    def get_activations_and_quantizers(self, layer):
        return [(layer.activation, RangeQuantizer(self.mode, 8))]

    def set_quantize_weights(self, layer, quantize_weights):
        layer.kernel = quantize_weights[0]

    def set_quantize_activations(self, layer, quantize_activations):
        layer.activation = quantize_activations[0]

    def get_output_quantizers(self, layer):
        return []

    def get_config(self):
        return {"mode": self.mode}


class ConvQuantizeConfig(DenseQuantizeConfig):
    """Conv1D / Conv2D / DepthwiseConv1D: the kernel per output channel (CONV_2D's axis 0,
    DEPTHWISE_CONV_2D's axis 3), int8 outputs (before a tanh / sigmoid / softmax, as for Dense)."""

    def __init__(self, mode: str, depthwise: bool = False):
        super().__init__(mode)
        self.depthwise = depthwise

    @property
    def _attr(self) -> str:
        return "depthwise_kernel" if self.depthwise else "kernel"

    def get_weights_and_quantizers(self, layer):
        return [(getattr(layer, self._attr), SymmetricWeightQuantizer(self.mode, None, depthwise=self.depthwise))]

    def set_quantize_weights(self, layer, quantize_weights):
        setattr(layer, self._attr, quantize_weights[0])

    def get_config(self):
        return {"mode": self.mode, "depthwise": self.depthwise}


class OutputQuantizeConfig(QuantizeConfig):
    """Only the layer's output, on a calibrated int8 range (the model input, a MEAN, an
    unfolded BatchNorm's ADD)."""

    def __init__(self, mode: str):
        self.mode = mode

    def get_weights_and_quantizers(self, layer):
        return []

    def get_activations_and_quantizers(self, layer):
        return []

    def set_quantize_weights(self, layer, quantize_weights):
        pass

    def set_quantize_activations(self, layer, quantize_activations):
        pass

    def get_output_quantizers(self, layer):
        return [RangeQuantizer(self.mode, 8)]

    def get_config(self):
        return {"mode": self.mode}


class KeepLayout(tfmot.quantization.keras.QuantizeLayoutTransform):
    """No graph rewrites (the default scheme would add its own moving-average input layer)."""

    def apply(self, model, layer_quantize_map):
        return model, layer_quantize_map


class Scheme(tfmot.quantization.keras.QuantizeScheme):
    def get_layout_transformer(self):
        return KeepLayout()

    def get_quantize_registry(self):
        from tensorflow_model_optimization.python.core.quantization.keras.default_8bit import (
            default_8bit_quantize_registry)
        return default_8bit_quantize_registry.Default8BitQuantizeRegistry()


#: What ``tfmot``'s ``quantize_scope`` must know to clone the annotated model.
CUSTOM_OBJECTS = {c.__name__: c for c in (
    RangeQuantizer, SaturatingRangeQuantizer, SymmetricRangeQuantizer, PowerOfTwoQuantizer, FixedRangeQuantizer,
    SymmetricWeightQuantizer, PassThroughQuantizer,
    RecurrentQuantizeConfig, DenseQuantizeConfig, ConvQuantizeConfig, OutputQuantizeConfig)}
