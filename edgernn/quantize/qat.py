"""Quantization-aware training (QAT) for SimpleRNN, LSTM and GRU models.

``qat_finetune(model, data, epochs=..., output=...)`` takes a trained float model, rebuilds
it as a ``tf_keras`` model in which every tensor the int8 kernels quantize is fake-quantized,
fine-tunes it with straight-through gradients, and writes a normal float Keras model whose
weights lie exactly on their int8 grid (or, when no epoch beats it, the given model unchanged:
see keep-best below). ``edgernn convert`` then quantizes it with no weight rounding error
left, and with activation ranges equal to the ones the model was trained with.

Keep-best: QAT cannot make a working model worse
------------------------------------------------
The given model is epoch 0: converted with the calibration data it is exactly what
post-training quantization (PTQ) deploys. Epoch 0 and the weights after every epoch are
scored on a selection set (``val=`` / ``edgernn qat --val``, else the training data):
accuracy, or MSE for a regressor, of the int8 model each would deploy, converted as
``edgernn convert`` does and run in the bit-exact simulator. The best is kept; ties keep the
earlier epoch. If nothing beats epoch 0 the given model comes back unchanged (and converts
to the very PTQ flatbuffer); ``QATResult.kept_epoch`` / ``.kept_score`` say what was kept.
Scoring the fake-quantized graph instead (``select_with="fake-quant"``) skips a conversion
per epoch (about 8 s for the fused LSTM, under 1 s for the WHILE graphs) but is not bit-exact.
Top-1 agreement with TFLM measured on the bench models' training sets: fused LSTM 100 %
(BasicMotions) and 99.9 % (digits); GRU and SimpleRNN WHILE graphs 99.6-100 %, but the 64-step
relu SimpleRNN 90 % (rounding differences add up over 64 steps of an unbounded state). On 40
BasicMotions recordings one disagreement is 2.5 points, enough to keep an epoch that real int8
scores below PTQ. The guarantee holds on the selection set only: scoring on the training data
cannot see overfitting, so the default learning rate (1e-4, a 30th of the trainer's) keeps
fine-tuning close to the converged model, and a validation set is better.

What is fake-quantized, and why there
-------------------------------------
Weights, symmetric int8 with ``narrow_range`` (scale ``max|w| / 127``, zero point 0):

* LSTM: one scale per gate matrix (input i/f/c/o and recurrent i/f/c/o), because the fused
  ``UNIDIRECTIONAL_SEQUENCE_LSTM`` the TFLite converter emits keeps its eight weight matrices
  per-tensor (checked on the flatbuffers ``edgernn convert`` writes).
* GRU, SimpleRNN and Dense: one scale per output channel, as ``FULLY_CONNECTED`` uses.

Activations (asymmetric int8 over a calibrated ``[min, max]`` that always contains 0, as
TFLite calibration does), per cell:

* model input; every layer output (the hidden state ``h`` of each step, the merged output of
  a Bidirectional layer, the Dense logits / linear outputs).
* LSTM (the fused int8 kernel: "8x8->16"): gate pre-activations in int16 with the kernel's
  fixed scale 2^-12 (range [-8, 8)), the cell state in int16 with the power-of-two scale the
  converter picks (``2^ceil(log2 max|c|) / 32768``), ``h`` in int8. The int16 outputs of the
  gate sigmoids/tanh (scale 2^-15) are left in float: their rounding is below 1e-4.
* GRU, SimpleRNN, and LSTMs that are not fused (Bidirectional, ``go_backwards``, mixed stacks):
  the ``WHILE`` graphs of :mod:`edgernn.backends.tflm.recurrent`, all int8, one
  FULLY_CONNECTED per gate. Quantized: each gate's input projection ``x W_g + b_g`` and
  recurrent projection ``h U_g`` (+ ``b_rg``), each gate's sum, each product (GRU ``r * hh``,
  ``h - hc``, ``z * (h - hc)``; LSTM ``f * c``, ``i * g``), the LSTM cell state (int8 here),
  ``h``; LOGISTIC outputs on the fixed grid scale 1/256 zero point -128, TANH outputs on scale
  1/128 zero point 0, and so is a GRU's or LSTM's ``h`` (``|h| < 1``); a pre-activation read
  only by LOGISTIC / TANH on its calibrated range clipped to [-8, 8] / [-4, 4] (beyond, the
  int8 output no longer changes); a relu SimpleRNN's ``h`` on its calibrated range (the relu
  is fused into the ADD). One approximation: the graph gives both directions of a
  Bidirectional layer and their concatenation one scale; QAT quantizes each direction's ``h``
  on its own range (or grid) and the merged output on the merged range.

Built on tensorflow-model-optimization, and where by hand
---------------------------------------------------------
The model is assembled with ``quantize_annotate_layer`` / ``quantize_scope`` /
``quantize_apply``: every layer carries a custom :class:`QuantizeConfig`, and tfmot's
``QuantizeWrapperV2`` swaps the weights for their fake-quantized values before each call (the
recurrent layers' ``cell.kernel`` / ``cell.recurrent_kernel`` included), and its
``QuantizeAwareActivation`` quantizes the Dense logits (before a softmax) or outputs. The
quantizers are tfmot :class:`Quantizer` subclasses (:class:`SymmetricWeightQuantizer`,
:class:`RangeQuantizer`, :class:`PowerOfTwoQuantizer`, :class:`FixedRangeQuantizer`), all
computing ``tf.quantization.fake_quant_with_min_max_vars*`` (whose gradient is the
straight-through estimator, zero outside the range as the int8 clamp is).

What tfmot cannot express is the quantization *inside* the recurrence: a ``QuantizeConfig``
reaches a layer's weights, the activation functions it calls and its output, but not the
hidden state fed back at each step, the LSTM cell state, or the GRU's gate products.
``quantize_model`` rejects LSTM/GRU/SimpleRNN for that reason. So the recurrent layers are
``tf_keras.layers.RNN`` over :class:`QATCell`, a hand-written cell computing exactly Keras'
LSTM/GRU/SimpleRNN equations (same weight layout and gate order) with the quantizers above
placed at each tensor the int8 kernels store. tfmot's default input ``QuantizeLayer`` and
its moving-average ranges are not used either (see below); the model input is quantized by
an annotated identity layer.

Ranges: calibrated, not moving averages
---------------------------------------
tfmot's moving-average ranges would differ from what the deployed model uses: ``edgernn
convert`` takes every scale from its own calibration (min/max over the first 500 calibration
samples, 0 included), and the fused TFLM LSTM has no other way to receive its cell-state and
hidden-state scales. So each QAT epoch starts with a calibration pass computed the converter's
way (:func:`calibrate`: the float model, i.e. quantizers observing instead of rounding, over
the first ``MAX_CALIB_SAMPLES`` calibration inputs), and the epoch trains with those ranges
fixed. One quirk is reproduced on purpose: the TFLite calibrator runs the representative
samples one after another without resetting the fused LSTM's state variables, so each sample
starts from the previous one's final ``h`` and ``c`` (on digits this doubles the cell-state
range); for fused-LSTM models the pass runs on a stateful batch-1 twin of the model, sample by
sample. The pass runs again after every epoch (the ranges the next epoch trains with, and the
kept epoch's): ``QATResult.ranges`` equal the scales ``edgernn convert`` writes for the saved
model when given the same calibration data (checked by the tests). For epoch 0 the pass sees
the weights unrounded, as the converter does when it quantizes the given model. That is why
``convert`` keeps its calibration step rather than reading ranges from the QAT model: a plain
float model carries none, the fused LSTM could not take them, and with the same data the
calibration re-derives exactly the trained ranges. Calibrate with the
data passed to ``qat_finetune`` (by default its training inputs).
"""

from __future__ import annotations

import logging
import math
import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import ir
from ..data import Dataset, load_dataset
from ..errors import EdgeRNNError

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
log = logging.getLogger(__name__)

MAX_CALIB_SAMPLES = 500  # what edgernn convert hands to the TFLite calibrator
GATE_INT16_SCALE = 2.0 ** -12  # TFLM integer LSTM: gate pre-activations (nonlinear input)
LOGISTIC_INT8 = (0.0, 255.0 / 256.0)  # int8 LOGISTIC output: scale 1/256, zero point -128
TANH_INT8 = (-1.0, 127.0 / 128.0)  # int8 TANH output: scale 1/128, zero point 0
_CALIB_BATCH = 128

# The calibration pass runs the model eagerly with this flag set: range quantizers then record
# min/max and pass values through unchanged (the converter calibrates the float model).
_OBSERVING = [False]
# Set too when calibrating the given (epoch 0) weights: the weights then pass through unrounded,
# as in the float model the converter calibrates when it quantizes the user's model (PTQ).
_FLOAT_WEIGHTS = [False]


@dataclass
class QATResult:
    """What :func:`qat_finetune` returns."""

    model: object  # float Keras model: the kept epoch's weights on their int8 grid (epoch 0: as given)
    path: Path | None
    ir_model: ir.Model  # the saved model's IR
    epochs_run: int
    history: dict  # per epoch 1.., under fake quantization: loss (+ accuracy / mae), selection_score
    ranges: dict = field(default_factory=dict)  # tensor name -> (min, max) of the kept weights
    int8_sim_metrics: dict = field(default_factory=dict)  # kept fake-quantized model on `data`
    kept_epoch: int = 0  # 0: the starting weights (what PTQ deploys) scored best; else that epoch's
    selection: str = "training data"  # or "validation data": the set the epochs were scored on
    selection_metric: str = "accuracy"  # "accuracy" (higher is better) or "mse" (lower is better)
    selection_with: str = "int8"  # "int8" (converted, bit-exact simulator) or "fake-quant"
    selection_scores: list = field(default_factory=list)  # index = epoch (0 = the given weights)

    @property
    def kept_score(self) -> float:
        """The kept epoch's score on the selection set (with ``selection_with``)."""
        return self.selection_scores[self.kept_epoch]


# --- snapping weights ---------------------------------------------------------------------------

def weight_scales(w: np.ndarray, blocks: int | None) -> np.ndarray:
    """Per-column int8 scales of a (in, out) weight: per channel (``blocks=None``) or one per
    block of ``out // blocks`` columns (an LSTM gate matrix)."""
    w = np.asarray(w, np.float32)
    if blocks is None:
        m = np.max(np.abs(w), axis=0)
    else:
        per = w.shape[-1] // blocks
        m = np.repeat(np.max(np.abs(w.reshape(w.shape[0], blocks, per)), axis=(0, 2)), per)
    return np.maximum(m, 1e-12).astype(np.float32) / 127.0


def snap_weight(w: np.ndarray, blocks: int | None) -> np.ndarray:
    """``w`` rounded to its symmetric int8 grid (what the converter will store, dequantized)."""
    s = weight_scales(w, blocks)
    return (np.clip(np.round(np.asarray(w, np.float32) / s), -127, 127) * s).astype(np.float32)


def uses_fused_lstm(model: ir.Model) -> bool:
    """True when ``edgernn convert`` gives ``model`` the TFLite converter's fused int8 LSTM."""
    from ..backends.tflm.convert import _strategy
    return _strategy(model) == "fused-lstm"


def _recurrent_blocks(fused: bool) -> int | None:
    return 4 if fused else None  # the fused LSTM: one scale per gate matrix; else per channel


def snap_model(model: ir.Model) -> ir.Model:
    """A copy of ``model`` with every kernel snapped to its int8 grid (biases stay float)."""
    fused = uses_fused_lstm(model)

    def rec(l: ir.Recurrent) -> ir.Recurrent:
        b = _recurrent_blocks(fused)
        return ir.Recurrent(name=l.name, cell=l.cell, units=l.units, input_dim=l.input_dim,
                            kernel=snap_weight(l.kernel, b), recurrent_kernel=snap_weight(l.recurrent_kernel, b),
                            bias=l.bias.copy(), activation=l.activation, recurrent_activation=l.recurrent_activation,
                            return_sequences=l.return_sequences, go_backwards=l.go_backwards,
                            reset_after=l.reset_after)

    layers: list[ir.Layer] = []
    for l in model.layers:
        if l.kind == "recurrent":
            layers.append(rec(l))
        elif l.kind == "bidirectional":
            layers.append(ir.Bidirectional(name=l.name, forward=rec(l.forward), backward=rec(l.backward),
                                           merge_mode=l.merge_mode))
        elif l.kind == "dense":
            layers.append(ir.Dense(name=l.name, kernel=snap_weight(l.kernel, None), bias=l.bias.copy(),
                                   activation=l.activation))
        else:
            layers.append(ir.Activation(name=l.name, activation=l.activation))
    return ir.Model(name=model.name, input=ir.InputSpec(model.input.timesteps, model.input.features),
                    layers=layers, source=model.source)


# --- tfmot quantizers and configs (built lazily: TensorFlow is imported on first use) ------------

_TF_CLASSES: dict = {}


def _classes() -> dict:
    if _TF_CLASSES:
        return _TF_CLASSES
    import tensorflow as tf
    import tf_keras as tfk
    import tensorflow_model_optimization as tfmot

    Quantizer = tfmot.quantization.keras.quantizers.Quantizer
    QuantizeConfig = tfmot.quantization.keras.QuantizeConfig

    def _weights(layer, name, init=0.0):
        return layer.add_weight(name=name, shape=(), initializer=tfk.initializers.Constant(init),
                                trainable=False)

    class RangeQuantizer(Quantizer):
        """Asymmetric ``num_bits`` fake quantization over a calibrated [min, max] (0 included)."""

        def __init__(self, num_bits: int = 8):
            self.num_bits = num_bits

        def build(self, tensor_shape, name, layer):
            return {"min": _weights(layer, f"{name}_min"), "max": _weights(layer, f"{name}_max")}

        def __call__(self, inputs, training, weights, **kwargs):
            if _OBSERVING[0]:
                weights["min"].assign(tf.minimum(weights["min"], tf.reduce_min(inputs)))
                weights["max"].assign(tf.maximum(weights["max"], tf.reduce_max(inputs)))
                return inputs
            return tf.quantization.fake_quant_with_min_max_vars(
                inputs, weights["min"], weights["max"], num_bits=self.num_bits, narrow_range=False)

        def get_config(self):
            return {"num_bits": self.num_bits}

    class SaturatingRangeQuantizer(RangeQuantizer):
        """A pre-activation read only by LOGISTIC / TANH: its calibrated range clipped to where
        the int8 output still changes, as :data:`edgernn.backends.tflm.recurrent.SATURATING_RANGE`
        has the converter do."""

        def __init__(self, lo: float, hi: float, num_bits: int = 8):
            super().__init__(num_bits)
            self.lo, self.hi = float(lo), float(hi)

        def __call__(self, inputs, training, weights, **kwargs):
            if _OBSERVING[0]:
                super().__call__(tf.clip_by_value(inputs, self.lo, self.hi), training, weights)
                return inputs
            return super().__call__(inputs, training, weights)

        def get_config(self):
            return {"lo": self.lo, "hi": self.hi, "num_bits": self.num_bits}

    class PowerOfTwoQuantizer(Quantizer):
        """Symmetric int16 over ``[-2^k, 2^k)``, ``2^k >= max|x|``: the LSTM cell state."""

        def build(self, tensor_shape, name, layer):
            return {"absmax": _weights(layer, f"{name}_absmax")}

        def __call__(self, inputs, training, weights, **kwargs):
            if _OBSERVING[0]:
                weights["absmax"].assign(tf.maximum(weights["absmax"], tf.reduce_max(tf.abs(inputs))))
                return inputs
            bound = tf.pow(2.0, tf.math.ceil(tf.math.log(tf.maximum(weights["absmax"], 2.0 ** -15)) / math.log(2.0)))
            return tf.quantization.fake_quant_with_min_max_vars(inputs, -bound, bound * (32767.0 / 32768.0),
                                                                num_bits=16, narrow_range=False)

        def get_config(self):
            return {}

    class FixedRangeQuantizer(Quantizer):
        """Fake quantization on a grid fixed by the kernel (not calibrated)."""

        def __init__(self, lo: float, hi: float, num_bits: int = 8):
            self.lo, self.hi, self.num_bits = float(lo), float(hi), num_bits

        def build(self, tensor_shape, name, layer):
            return {}

        def __call__(self, inputs, training, weights, **kwargs):
            if _OBSERVING[0]:
                return inputs
            return tf.quantization.fake_quant_with_min_max_args(inputs, min=self.lo, max=self.hi,
                                                                num_bits=self.num_bits, narrow_range=False)

        def get_config(self):
            return {"lo": self.lo, "hi": self.hi, "num_bits": self.num_bits}

    class SymmetricWeightQuantizer(Quantizer):
        """Symmetric int8 (narrow range) weights, per output channel or per gate block."""

        def __init__(self, blocks: int | None = None):
            self.blocks = blocks

        def build(self, tensor_shape, name, layer):
            return {}

        def __call__(self, inputs, training, weights, **kwargs):
            if _OBSERVING[0] and _FLOAT_WEIGHTS[0]:
                return inputs
            a = tf.abs(inputs)
            if self.blocks is None:
                m = tf.reduce_max(a, axis=0)
            else:
                per = inputs.shape[-1] // self.blocks
                m = tf.reduce_max(tf.reshape(a, (-1, self.blocks, per)), axis=(0, 2))
                m = tf.repeat(m, per)
            m = tf.stop_gradient(tf.maximum(m, 1e-12))
            return tf.quantization.fake_quant_with_min_max_vars_per_channel(inputs, -m, m, num_bits=8,
                                                                            narrow_range=True)

        def get_config(self):
            return {"blocks": self.blocks}

    @tfk.utils.register_keras_serializable(package="edgernn_qat")
    class InputQuant(tfk.layers.Layer):
        """Identity; annotated so that its output (the model input) is quantized."""

        def call(self, inputs):
            return tf.identity(inputs)

    @tfk.utils.register_keras_serializable(package="edgernn_qat")
    class QATCell(tfk.layers.Layer):
        """Keras' LSTM / GRU / SimpleRNN cell with fake quantization inside the recurrence."""

        def __init__(self, cell: str, units: int, activation: str = "tanh", reset_after: bool = True,
                     fused: bool = False, **kwargs):
            super().__init__(**kwargs)
            self.cell, self.units, self.activation_name, self.reset_after = cell, int(units), activation, reset_after
            self.fused = bool(fused)
            self.state_size = [self.units, self.units] if cell == "lstm" else [self.units]
            self.output_size = self.units

        def build(self, input_shape):
            g = ir.GATES[self.cell] * self.units
            self.kernel = self.add_weight(name="kernel", shape=(int(input_shape[-1]), g))
            self.recurrent_kernel = self.add_weight(name="recurrent_kernel", shape=(self.units, g))
            bias_shape = (2, g) if self.cell == "gru" and self.reset_after else (g,)
            self.bias = self.add_weight(name="bias", shape=bias_shape, initializer="zeros")
            self.float_weights = [self.kernel, self.recurrent_kernel, self.bias]  # survive tfmot's swap
            self.points: dict[str, tuple] = {}
            for name, q in self._point_specs():
                self.points[name] = (q, q.build(None, name, self))
            self.built = True

        def _point_specs(self):
            r8 = RangeQuantizer(8)
            sig, tanh = FixedRangeQuantizer(*LOGISTIC_INT8), FixedRangeQuantizer(*TANH_INT8)
            if self.cell == "lstm" and self.fused:
                return [("gates", FixedRangeQuantizer(-8.0, 8.0 - GATE_INT16_SCALE, 16)),
                        ("cell_state", PowerOfTwoQuantizer()), ("h", r8)]
            # the converter's WHILE graphs (edgernn.backends.tflm.recurrent): pre-activations
            # read only by LOGISTIC / TANH on their clipped ranges, a GRU's / LSTM's h on
            # TANH's fixed grid (|h| < 1)
            from ..backends.tflm.recurrent import SATURATING_RANGE
            pre_sig = SaturatingRangeQuantizer(*SATURATING_RANGE["LOGISTIC"])
            pre_tanh = SaturatingRangeQuantizer(*SATURATING_RANGE["TANH"])
            gates = {"lstm": "ifco", "gru": "zrh", "rnn": "h"}[self.cell]
            pts = [(f"x_{g}", r8) for g in gates]
            rec = gates if (self.cell != "gru" or self.reset_after) else "zr"
            pts += [(f"h_{g}", r8) for g in rec] + [("sigmoid", sig), ("tanh", tanh)]
            if self.cell == "rnn":
                pts += [("h", r8)] if self.activation_name == "relu" else [("pre", pre_tanh)]
            elif self.cell == "lstm":
                pts += [(f"{g}_pre", pre_tanh if g == "c" else pre_sig) for g in gates]
                pts += [("f_c", r8), ("i_g", r8), ("c", r8), ("h", tanh)]
            else:
                pts += [("z_pre", pre_sig), ("r_pre", pre_sig), ("hc_pre", pre_tanh), ("h_minus_hc", r8),
                        ("z_d", r8), ("h", tanh)]
                pts += [("r_hh", r8)] if self.reset_after else [("rh", r8), ("hh", r8)]
            return pts

        def q(self, name, x):
            quantizer, weights = self.points[name]
            return quantizer(x, None, weights)

        def call(self, inputs, states, training=None):
            h_prev = states[0]
            k, rk, b = self.kernel, self.recurrent_kernel, self.bias
            u, q = self.units, self.q
            if self.cell == "lstm" and self.fused:  # UNIDIRECTIONAL_SEQUENCE_LSTM, int8 x/h, int16 gates/c
                z = q("gates", tf.matmul(inputs, k) + tf.matmul(h_prev, rk) + b)
                zi, zf, zc, zo = tf.split(z, 4, axis=-1)
                c = q("cell_state", tf.sigmoid(zf) * states[1] + tf.sigmoid(zi) * tf.tanh(zc))
                h = q("h", tf.sigmoid(zo) * tf.tanh(c))
                return h, [h, c]
            # the WHILE graphs of edgernn.backends.tflm.recurrent: one FULLY_CONNECTED per gate
            b_in = b[0] if b.shape.rank == 2 else b

            def proj(gi, g, rec=True, rec_bias=False):
                sl = slice(gi * u, (gi + 1) * u)
                xo = q(f"x_{g}", tf.matmul(inputs, k[:, sl]) + b_in[sl])
                if not rec:
                    return xo, None
                ho = tf.matmul(h_prev, rk[:, sl]) + (b[1][sl] if rec_bias else 0.0)
                return xo, q(f"h_{g}", ho)

            if self.cell == "rnn":
                xo, ho = proj(0, "h")
                if self.activation_name == "relu":
                    h = q("h", tf.nn.relu(xo + ho))
                else:
                    h = q("tanh", tf.tanh(q("pre", xo + ho)))
                return h, [h]
            if self.cell == "lstm":
                acts = []
                for gi, g in enumerate("ifco"):
                    pre = q(f"{g}_pre", tf.add(*proj(gi, g)))
                    acts.append(q("tanh", tf.tanh(pre)) if g == "c" else q("sigmoid", tf.sigmoid(pre)))
                i_, f_, g_, o_ = acts
                c = q("c", q("f_c", f_ * states[1]) + q("i_g", i_ * g_))
                h = q("h", o_ * q("tanh", tf.tanh(c)))
                return h, [h, c]
            ra = self.reset_after  # GRU, gates z r h
            zg = q("sigmoid", tf.sigmoid(q("z_pre", tf.add(*proj(0, "z", rec_bias=ra)))))
            rg = q("sigmoid", tf.sigmoid(q("r_pre", tf.add(*proj(1, "r", rec_bias=ra)))))
            if ra:  # hh = tanh(W_h x + b_h + r * (U_h h + b_rh))
                xh, hh = proj(2, "h", rec_bias=True)
                rhh = q("r_hh", rg * hh)
            else:  # hh = tanh(W_h x + b_h + U_h (r * h))
                xh, _ = proj(2, "h", rec=False)
                rhh = q("hh", tf.matmul(q("rh", rg * h_prev), rk[:, 2 * u:]))
            hc = q("tanh", tf.tanh(q("hc_pre", xh + rhh)))
            h = q("h", hc + q("z_d", zg * q("h_minus_hc", h_prev - hc)))  # z*h + (1-z)*hc
            return h, [h]

        def get_config(self):
            cfg = super().get_config()
            cfg.update(cell=self.cell, units=self.units, activation=self.activation_name,
                       reset_after=self.reset_after, fused=self.fused)
            return cfg

    def _cells_of(layer):
        if isinstance(layer, tfk.layers.Bidirectional):
            return [layer.forward_layer.cell, layer.backward_layer.cell]
        return [layer.cell]

    class RecurrentQuantizeConfig(QuantizeConfig):
        """Weights of a QAT RNN (or Bidirectional of two); states are quantized by QATCell."""

        def __init__(self, blocks: int | None = None, merged_output: bool = False):
            self.blocks, self.merged_output = blocks, merged_output

        def get_weights_and_quantizers(self, layer):
            wq = SymmetricWeightQuantizer(self.blocks)
            out = []
            for cell in _cells_of(layer):
                out += [(cell.kernel, wq), (cell.recurrent_kernel, wq)]
            return out

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            for i, cell in enumerate(_cells_of(layer)):
                cell.kernel, cell.recurrent_kernel = quantize_weights[2 * i], quantize_weights[2 * i + 1]

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return [RangeQuantizer(8)] if self.merged_output else []

        def get_config(self):
            return {"blocks": self.blocks, "merged_output": self.merged_output}

    class DenseQuantizeConfig(QuantizeConfig):
        """Per-channel int8 kernel; int8 logits (before softmax/sigmoid) or outputs."""

        def get_weights_and_quantizers(self, layer):
            return [(layer.kernel, SymmetricWeightQuantizer(None))]

        def get_activations_and_quantizers(self, layer):
            return [(layer.activation, RangeQuantizer(8))]

        def set_quantize_weights(self, layer, quantize_weights):
            layer.kernel = quantize_weights[0]

        def set_quantize_activations(self, layer, quantize_activations):
            layer.activation = quantize_activations[0]

        def get_output_quantizers(self, layer):
            return []

        def get_config(self):
            return {}

    class OutputQuantizeConfig(QuantizeConfig):
        """Only the layer's output, on a calibrated int8 range (the model input)."""

        def get_weights_and_quantizers(self, layer):
            return []

        def get_activations_and_quantizers(self, layer):
            return []

        def set_quantize_weights(self, layer, quantize_weights):
            pass

        def set_quantize_activations(self, layer, quantize_activations):
            pass

        def get_output_quantizers(self, layer):
            return [RangeQuantizer(8)]

        def get_config(self):
            return {}

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

    _TF_CLASSES.update({c.__name__: c for c in (
        RangeQuantizer, SaturatingRangeQuantizer, PowerOfTwoQuantizer, FixedRangeQuantizer,
        SymmetricWeightQuantizer, InputQuant, QATCell, RecurrentQuantizeConfig, DenseQuantizeConfig,
        OutputQuantizeConfig, Scheme)})
    return _TF_CLASSES


# --- the QAT model -----------------------------------------------------------------------------

def build_qat_model(model: ir.Model, timesteps: int | None, *, stateful: bool = False):
    """The fake-quantized tf_keras model of ``model`` (weights copied from the IR).

    ``stateful``: batch 1 and stateful recurrent layers (the calibration twin of a fused LSTM).
    """
    import tf_keras as tfk
    import tensorflow_model_optimization as tfmot

    C = _classes()
    annotate = tfmot.quantization.keras.quantize_annotate_layer
    fused = uses_fused_lstm(model)

    def rnn(l: ir.Recurrent, name=None, go_backwards=None):
        cell = C["QATCell"](l.cell, l.units, activation=l.activation, reset_after=l.reset_after, fused=fused)
        return tfk.layers.RNN(cell, return_sequences=l.return_sequences, unroll=False, name=name or l.name,
                              stateful=stateful,
                              go_backwards=l.go_backwards if go_backwards is None else go_backwards)

    inp = tfk.Input(shape=(timesteps, model.input.features), batch_size=1 if stateful else None, name="input")
    h = annotate(C["InputQuant"](name="input_quant"), C["OutputQuantizeConfig"]())(inp)
    pending = []
    for l in model.layers:
        if l.kind == "recurrent":
            k = rnn(l)
            h = annotate(k, C["RecurrentQuantizeConfig"](_recurrent_blocks(fused)))(h)
            pending.append((k, [l.kernel, l.recurrent_kernel, l.bias]))
        elif l.kind == "bidirectional":
            f, b = l.forward, l.backward
            k = tfk.layers.Bidirectional(rnn(f, f"{l.name}_fwd", False), backward_layer=rnn(b, f"{l.name}_bwd", True),
                                         merge_mode=l.merge_mode, name=l.name)
            h = annotate(k, C["RecurrentQuantizeConfig"](_recurrent_blocks(fused), merged_output=True))(h)
            pending.append((k, [f.kernel, f.recurrent_kernel, f.bias, b.kernel, b.recurrent_kernel, b.bias]))
        elif l.kind == "dense":
            k = tfk.layers.Dense(l.units, activation=l.activation, name=l.name)
            h = annotate(k, C["DenseQuantizeConfig"]())(h)
            pending.append((k, [l.kernel, l.bias]))
        else:
            h = tfk.layers.Activation(l.activation, name=l.name)(h)
    annotated = tfk.Model(inp, h, name=model.name)
    for k, weights in pending:
        targets = ([*k.forward_layer.cell.float_weights, *k.backward_layer.cell.float_weights]
                   if isinstance(k, tfk.layers.Bidirectional) else
                   k.cell.float_weights if isinstance(k, tfk.layers.RNN) else k.trainable_weights)
        for var, w in zip(targets, weights, strict=True):
            var.assign(np.asarray(w, np.float32))
    with tfmot.quantization.keras.quantize_scope({n: c for n, c in C.items() if n != "Scheme"}):
        qmodel = tfmot.quantization.keras.quantize_apply(annotated, scheme=C["Scheme"]())
    object.__setattr__(qmodel, "_edgernn_ir", model)  # for calibrate(); not a tracked attribute
    return qmodel


def _range_variables(qmodel) -> dict:
    out = {}
    for v in qmodel.non_trainable_variables:
        name = v.name.split(":")[0]
        if name.endswith(("_min", "_max", "_absmax")):
            out[name] = v
    return out


def _observe_fn(qmodel, float_weights: bool):
    """``qmodel``'s forward pass traced once per mode in observe mode (the quantizers record
    ranges; the flags are read while tracing, so each mode has its own function)."""
    import tensorflow as tf

    attr = "_edgernn_observe_float" if float_weights else "_edgernn_observe"
    fn = getattr(qmodel, attr, None)
    if fn is None:
        fn = tf.function(lambda x: qmodel(x, training=False), reduce_retracing=True)
        object.__setattr__(qmodel, attr, fn)  # not a tracked Keras attribute
    return fn


def calibrate(qmodel, x: np.ndarray, *, float_weights: bool = False) -> dict:
    """Set every activation range of ``qmodel`` the way ``edgernn convert`` will calibrate them
    on ``x``: min/max (0 included) of each tensor of the float model. Returns {tensor: (min, max)}.

    The weights are on their int8 grid during the pass (the saved QAT model's weights are),
    unless ``float_weights``: then they pass through as they are, as when ``edgernn convert``
    quantizes a model whose weights are not on the grid (PTQ of the user's model).

    For models that become the fused TFLite LSTM, the TFLite calibrator runs the samples one
    after another without resetting the LSTM's state variables, so each sample starts from the
    previous one's final h and c (this widens the ranges, the cell state's most). The
    calibration pass does the same, on a stateful batch-1 twin of ``qmodel``.
    """
    model = getattr(qmodel, "_edgernn_ir", None)
    twin = None
    if model is not None and uses_fused_lstm(model):
        twin = getattr(qmodel, "_edgernn_twin", None)
        if twin is None:
            twin = build_qat_model(model, int(x.shape[1]), stateful=True)
            object.__setattr__(qmodel, "_edgernn_twin", twin)
        twin.set_weights(qmodel.get_weights())
    target = twin if twin is not None else qmodel
    for v in _range_variables(target).values():
        v.assign(0.0)
    fn = _observe_fn(target, float_weights)
    _OBSERVING[0], _FLOAT_WEIGHTS[0] = True, float_weights
    try:
        if twin is not None:
            twin.reset_states()
            for i in range(len(x)):
                fn(x[i:i + 1])
        else:
            for i in range(0, len(x), _CALIB_BATCH):
                fn(x[i:i + _CALIB_BATCH])
    finally:
        _OBSERVING[0] = _FLOAT_WEIGHTS[0] = False
    if twin is not None:
        qmodel.set_weights(twin.get_weights())
    ranges: dict[str, tuple[float, float]] = {}
    for name, v in _range_variables(qmodel).items():
        base, _, which = name.rpartition("_")
        lo, hi = ranges.get(base, (0.0, 0.0))
        val = float(v.numpy())
        if which == "min":
            lo = val
        elif which == "max":
            hi = val
        else:  # absmax: the power-of-two int16 range
            hi = 2.0 ** math.ceil(math.log2(max(val, 2.0 ** -15)))
            lo = -hi
        ranges[base] = (lo, hi)
    return ranges


def _float_ir(qmodel, model: ir.Model) -> ir.Model:
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


# --- writing the float model back --------------------------------------------------------------

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


def _write_back(original, snapped: ir.Model):
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


def _save(keras_model, output) -> Path:
    from ..train.trainer import save_model
    return save_model(keras_model, output)


# --- the public entry point ---------------------------------------------------------------------

def _dataset(data, model: ir.Model, what: str) -> Dataset:
    if isinstance(data, Dataset):
        ds = data
    elif isinstance(data, (str, os.PathLike)):
        ds = load_dataset(data, require_y=(what != "calib"), features=model.input.features,
                          timesteps=model.input.timesteps)
    elif isinstance(data, tuple) and len(data) == 2:
        ds = Dataset(f"{what} arrays", np.asarray(data[0], np.float32), np.asarray(data[1]))
    else:
        ds = Dataset(f"{what} array", np.asarray(data, np.float32), None)
    if ds.x.ndim != 3 or ds.x.shape[2] != model.input.features:
        raise EdgeRNNError(f"{ds.path}: 'x' has shape {ds.x.shape}; the model expects (N, T, {model.input.features})")
    if model.input.timesteps is not None and ds.x.shape[1] != model.input.timesteps:
        raise EdgeRNNError(f"{ds.path}: {ds.x.shape[1]} time steps; the model expects {model.input.timesteps}")
    if what == "data" and ds.y is None:
        raise EdgeRNNError(f"{ds.path}: no labels 'y'; QAT fine-tuning needs the training labels")
    if what == "val" and ds.y is None:
        raise EdgeRNNError(f"{ds.path}: no labels 'y'; the QAT validation (selection) set needs them")
    return ds


SELECT_WITH = ("int8", "fake-quant")


def int8_outputs(model: ir.Model, calib_x: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``model`` converted as ``edgernn convert`` does with ``calib_x``, run on ``x`` in the
    bit-exact simulator (the TFLM int8 outputs), dequantized."""
    from ..convert import convert
    from ..simulate import Simulator

    sim = Simulator.from_bytes(convert(model, calib_x).tflite)
    return sim.dequantize_output(sim.run(sim.quantize_input(x)))


def _finite(model: ir.Model) -> bool:
    for l in model.layers:
        for r in ([l.forward, l.backward] if l.kind == "bidirectional" else [l]):
            for name in ("kernel", "recurrent_kernel", "bias"):
                w = getattr(r, name, None)
                if w is not None and not np.all(np.isfinite(w)):
                    return False
    return True


def _selection_score(out: np.ndarray, y: np.ndarray, classification: bool) -> float:
    """Accuracy (classifier) or MSE (regressor) of the outputs ``out`` against labels ``y``."""
    if classification:
        return float(np.mean(np.argmax(out.reshape(*y.shape, -1), -1) == y))
    return float(np.mean((out.reshape(y.shape) - y) ** 2))


def qat_finetune(model_path_or_keras, data, *, epochs: int = 10, output=None, seed: int = 0,
                 calib=None, val=None, select_with: str = "int8", learning_rate: float = 1e-4,
                 batch_size: int = 32, clipnorm: float | None = 1.0, progress_callback=None) -> QATResult:
    """Fine-tune a trained model with int8 fake quantization; return (and save) the float model.

    ``model_path_or_keras``: a .keras/.h5 path, a Keras 3 or tf_keras model, or an IR model.
    ``data``: the training set (.npz path, :class:`Dataset` or ``(x, y)``); integer ``y`` (N,)
    fine-tunes a classifier, float ``y`` a regressor. ``calib``: the inputs whose ranges are
    trained for (default ``data``'s); pass the same to ``edgernn convert``. ``val``: labelled
    data (same forms as ``data``) on which the epochs are scored; default ``data``.
    ``output``: .keras (or .h5) path. ``progress_callback(epoch, logs)`` is called after each
    epoch. The default learning rate is a fine-tuning one (the trainer's is 3e-3): the model
    is converged, QAT only has to move it to where int8 rounding costs least.

    Keep-best: the given weights are epoch 0. They, and the weights after each epoch, are
    scored on the selection set (``val``, else ``data``): accuracy for a classifier, MSE for a
    regressor, of the int8 model each would deploy. ``select_with="int8"`` (default) converts
    each candidate as ``edgernn convert`` does with ``calib`` and runs it in the bit-exact
    simulator, so epoch 0 is scored exactly as PTQ deploys it; ``"fake-quant"`` scores the QAT
    graph instead (no conversion per epoch, faster for the fused LSTM, but one or two
    borderline samples can come out differently from the int8 kernels). The best epoch is
    kept, ties going to the earlier one. When no epoch beats epoch 0, the given model is
    returned (and saved) unchanged, so converting it writes exactly the PTQ flatbuffer;
    otherwise the saved model's weights lie on their int8 grid. ``QATResult.kept_epoch`` and
    ``.kept_score`` say which epoch was kept and its score.
    """
    from ..frontend import from_keras, load_keras_object

    if epochs < 1:
        raise EdgeRNNError(f"--qat-epochs {epochs}: QAT needs at least 1 epoch")
    if learning_rate <= 0:
        raise EdgeRNNError(f"--lr {learning_rate}: the QAT learning rate must be > 0 (e.g. 1e-4)")
    if select_with not in SELECT_WITH:
        raise EdgeRNNError(f"select_with={select_with!r}: use one of {', '.join(SELECT_WITH)}")
    if output is not None and Path(output).suffix not in (".keras", ".h5"):
        raise EdgeRNNError(f"{output}: the output model file must end in .keras (or .h5)")
    original = None
    if isinstance(model_path_or_keras, ir.Model):
        model = model_path_or_keras
    else:
        src = model_path_or_keras
        original = load_keras_object(src) if isinstance(src, (str, os.PathLike)) else src
        model = from_keras(original, source=str(src) if isinstance(src, (str, os.PathLike)) else "")
    ds = _dataset(data, model, "data")
    sel = _dataset(val, model, "val") if val is not None else ds
    if sel.x.shape[1] != ds.x.shape[1]:
        raise EdgeRNNError(f"{sel.path}: {sel.x.shape[1]} time steps; the QAT training data has {ds.x.shape[1]}")
    calib_x = (_dataset(calib, model, "calib").x if calib is not None else ds.x)[:MAX_CALIB_SAMPLES]
    classification = np.issubdtype(ds.y.dtype, np.integer)
    for d in (ds, sel):
        if classification and model.output_units <= int(d.y.max()):
            raise EdgeRNNError(f"{d.path}: labels go up to {int(d.y.max())} but the model has "
                               f"{model.output_units} outputs")
    if classification != np.issubdtype(sel.y.dtype, np.integer) or sel.y.shape[1:] != ds.y.shape[1:]:
        raise EdgeRNNError(f"{sel.path}: labels 'y' of dtype {sel.y.dtype}, shape {sel.y.shape}; the training "
                           f"labels are {ds.y.dtype}, shape {ds.y.shape}: use labels of the same kind")

    import tensorflow as tf
    import tf_keras as tfk

    tfk.utils.set_random_seed(seed)
    try:
        tf.config.experimental.enable_op_determinism()
    except Exception:  # pragma: no cover - older TF
        pass
    timesteps = int(ds.x.shape[1])
    qmodel = build_qat_model(model, timesteps)
    if classification:
        from_logits = model.output_activation != "softmax"
        loss = tfk.losses.SparseCategoricalCrossentropy(from_logits=from_logits)
        metrics = ["accuracy"]
    else:
        loss, metrics = "mse", ["mae"]
    opt_kw = {"clipnorm": clipnorm} if clipnorm else {}
    qmodel.compile(optimizer=tfk.optimizers.Adam(learning_rate=learning_rate, **opt_kw), loss=loss,
                   metrics=metrics)
    history: dict[str, list[float]] = {}
    y = ds.y.astype(np.int64) if classification else ds.y.astype(np.float32)
    sel_y = sel.y.astype(np.int64) if classification else sel.y.astype(np.float32)

    worst = -math.inf if classification else math.inf

    def candidate(epoch: int) -> tuple[float, ir.Model]:
        """The model saving now would write, and its selection score."""
        m = model if epoch == 0 else snap_model(_float_ir(qmodel, model))
        if epoch > 0 and not _finite(m):
            log.warning("QAT epoch %d: the weights are no longer finite (learning rate %g too high?)", epoch,
                        learning_rate)
            return worst, m
        if select_with == "int8":
            try:
                out = int8_outputs(m, calib_x, sel.x)
            except (EdgeRNNError, ValueError, OverflowError) as e:
                if epoch == 0:
                    raise
                log.warning("QAT epoch %d: its weights do not convert to int8 (%s); not kept", epoch, e)
                return worst, m
        else:
            out = qmodel.predict(sel.x, batch_size=256, verbose=0)
        return _selection_score(out, sel_y, classification), m

    def better(a: float, b: float) -> bool:  # strictly: a tie keeps the earlier epoch
        return a > b if classification else a < b

    # epoch 0: the given weights; ranges calibrated on them unrounded, as convert does for PTQ
    ranges = calibrate(qmodel, calib_x, float_weights=True)
    score, kept_ir = candidate(0)
    scores = [score]
    kept, kept_weights, kept_ranges = 0, qmodel.get_weights(), ranges
    for epoch in range(1, epochs + 1):
        h = qmodel.fit(ds.x, y, epochs=1, batch_size=batch_size, shuffle=True, verbose=0)
        # the ranges convert gives the saved (int8-grid) weights; the next epoch trains with them
        ranges = calibrate(qmodel, calib_x)
        score, m = candidate(epoch)
        scores.append(score)
        if better(score, scores[kept]):
            kept, kept_weights, kept_ranges, kept_ir = epoch, qmodel.get_weights(), ranges, m
        for k, v in h.history.items():
            history.setdefault(k, []).append(float(v[-1]))
        history.setdefault("selection_score", []).append(score)
        log.info("QAT epoch %d/%d: %s", epoch, epochs, " ".join(f"{k}={v[-1]:.4f}" for k, v in history.items()))
        if progress_callback is not None:
            progress_callback(epoch - 1, {k: v[-1] for k, v in history.items()})
        if not _finite(m):  # diverged: no later epoch can come back
            break
    qmodel.set_weights(kept_weights)  # the kept weights and their ranges
    selection = "validation data" if val is not None else "training data"
    metric = "accuracy" if classification else "mse"
    log.info("QAT kept epoch %d of %d: %s %.4f on the %s (%s; epoch 0, the given model: %.4f)", kept, epochs,
             metric, scores[kept], selection, select_with, scores[0])
    sim = {k: float(v) for k, v in qmodel.evaluate(ds.x, y, verbose=0, batch_size=256, return_dict=True).items()}
    if original is not None:
        out_model = _write_back(original, kept_ir)
    else:
        from ..backends.tflm.keras_build import build_tf_keras
        out_model = build_tf_keras(kept_ir, batch_size=None)
    path = _save(out_model, output) if output is not None else None
    return QATResult(model=out_model, path=path, ir_model=kept_ir, epochs_run=len(scores) - 1, history=history,
                     ranges=kept_ranges, int8_sim_metrics=sim, kept_epoch=kept, selection=selection,
                     selection_metric=metric, selection_with=select_with, selection_scores=scores)


# --- measuring int8 accuracy --------------------------------------------------------------------

def tflm_outputs(tflite: bytes, x: np.ndarray, *, arena_size: int = 400_000) -> np.ndarray:
    """Run an int8 flatbuffer in the TFLM runtime on each sample of ``x``; dequantized outputs
    (N, outputs per sample). ``arena_size``: large enough for the bench models (no bisection)."""
    from ..backends.tflm.runtime import TFLMRunner

    runner = TFLMRunner(tflite, arena_size=arena_size)
    out = runner.dequantize_output(runner.run(runner.quantize_input(np.asarray(x, np.float32))))
    return out.reshape(len(out), -1)


def accuracy_table(model, data, test, *, qat_epochs: int = 5, seed: int = 0, learning_rate: float = 1e-4,
                   val=None) -> dict:
    """Float, PTQ int8 and QAT int8 top-1 accuracy of a classifier on ``test`` (TFLM runtime).

    ``data``: the training set (fine-tuning and calibration); ``val``: the QAT selection set
    (default ``data``). Returns a dict of the three accuracies, the QAT model's float
    accuracy, the epoch QAT kept and its selection score (``QATResult.kept_score``).
    """
    from ..convert import convert
    from ..frontend import from_keras, load_keras_object

    keras_obj = load_keras_object(model) if isinstance(model, (str, os.PathLike)) else model
    m = from_keras(keras_obj)
    train = _dataset(data, m, "data")
    te = _dataset(test, m, "data")

    def acc(out):
        return float(np.mean(np.argmax(out.reshape(len(te.x), -1), -1) == te.y))

    float_acc = acc(np.asarray(keras_obj(te.x, training=False)))
    ptq = acc(tflm_outputs(convert(keras_obj, train.x).tflite, te.x))
    res = qat_finetune(keras_obj, train, epochs=qat_epochs, seed=seed, learning_rate=learning_rate, val=val)
    qat_float = acc(np.asarray(res.model(te.x, training=False)))
    qat = acc(tflm_outputs(convert(res.model, train.x).tflite, te.x))
    return {"float": float_acc, "ptq_int8": ptq, "qat_int8": qat, "qat_float": qat_float,
            "kept_epoch": res.kept_epoch, "kept_score": res.kept_score}
