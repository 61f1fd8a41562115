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
straight-through estimator, zero outside the range as the int8 clamp is); they are in
:mod:`.quantizers`.

What tfmot cannot express is the quantization *inside* the recurrence: a ``QuantizeConfig``
reaches a layer's weights, the activation functions it calls and its output, but not the
hidden state fed back at each step, the LSTM cell state, or the GRU's gate products.
``quantize_model`` rejects LSTM/GRU/SimpleRNN for that reason. So the recurrent layers are
``tf_keras.layers.RNN`` over :class:`.cell.QATCell`, a hand-written cell computing exactly Keras'
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
way (:func:`.calibration.calibrate`: the float model, i.e. quantizers observing instead of
rounding, over the first ``MAX_CALIB_SAMPLES`` calibration inputs), and the epoch trains with those ranges
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

Where each part lives
---------------------
:mod:`.snap` (weights on their int8 grid), :mod:`.quantizers` (the tfmot quantizers and
QuantizeConfigs; each is built to round, or to observe in the calibration pass),
:mod:`.cell` (:class:`~.cell.QATCell`), :mod:`.model` (:func:`build_qat_model`),
:mod:`.calibration` (:func:`calibrate`, on an observing twin of the model), :mod:`.weights`
(weights back into the IR and the user's Keras model), :mod:`.finetune` (:func:`qat_finetune`,
keep-best). QAT depends on :mod:`edgernn.quantize`, the TFLM backend (how a model converts,
and converting each epoch to score it) and the simulator; only ``train``, the CLI and the API
depend on it.
"""

from ..quantize.calibrate import MAX_CALIB_SAMPLES
from .calibration import calibrate
from .finetune import SELECT_WITH, QATResult, int8_outputs, qat_finetune
from .model import build_qat_model
from .snap import snap_model, snap_weight, uses_fused_lstm, weight_scales

__all__ = ["qat_finetune", "QATResult", "SELECT_WITH", "build_qat_model", "calibrate", "int8_outputs", "snap_model",
           "snap_weight", "uses_fused_lstm", "weight_scales", "MAX_CALIB_SAMPLES"]
