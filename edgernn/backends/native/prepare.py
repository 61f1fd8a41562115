"""The constants TFLM's kernels compute in ``Prepare``, computed the same way in Python.

Each function names the TFLM routine it mirrors. Doubles and floats are used exactly where
TFLM uses them (a float32 scale is widened to double before products), so the Q31
multipliers and shifts written into the generated C are the ones the interpreter uses.

Sources read: tensorflow/lite/kernels/internal/quantization_util.cc (QuantizeMultiplier,
PreprocessSoftmaxScaling, CalculateInputRadius, CheckedLog2), kernels/kernel_util.cc
(GetQuantizedConvolutionMultipler, CalculateActivationRangeQuantized),
micro/kernels/lstm_eval_common.cc (PrepareGateParametersInteger, CreateInterGateMulParams,
CreateLstmCellStateInfo), micro/kernels/lstm_eval.cc (Tanh's power-of-two preprocessing),
micro/kernels/softmax_common.cc (CalculateSoftmaxParams).
"""

from __future__ import annotations

import math

import numpy as np

from ... import fixedpoint

INT32_MIN, INT32_MAX = -(1 << 31), (1 << 31) - 1

# PrepareGateParametersInteger: gate pre-activations are int16 in Q3.12 and gate outputs
# Q0.15. Current TFLM writes both as exact powers of two (older releases used the truncated
# literal 0.00003051757f, which is 2^-15 * (1 - 2^-22) and changes the forget x cell product's
# rounding once in a while; the tflite_micro runtime we check against uses the exact value).
GATE_PREACTIVATION_SCALE = np.float32(2.0 ** -12)
GATE_OUTPUT_SCALE = np.float32(2.0 ** -15)

# TFLite's ActivationFunctionType values.
ACT_NONE, ACT_RELU, ACT_RELU_N1_TO_1, ACT_RELU6, ACT_TANH = 0, 1, 2, 3, 4
ACT_NAMES = {0: "NONE", 1: "RELU", 2: "RELU_N1_TO_1", 3: "RELU6", 4: "TANH", 5: "SIGN_BIT"}


def tflite_round(x: float) -> float:
    """``TfLiteRound`` (``std::round``) of one value: half away from zero."""
    return float(fixedpoint.tflite_round(x))


# ``QuantizeMultiplier`` is shared with the simulator: both backends must derive the very same
# (multiplier, shift) pairs from a scale.
quantize_multiplier = fixedpoint.quantize_multiplier


def conv_multiplier(input_scale, weight_scale, output_scale) -> float:
    """``GetQuantizedConvolutionMultipler``: double(in) * double(w) / double(out)."""
    return float(np.float32(input_scale)) * float(np.float32(weight_scale)) / float(np.float32(output_scale))


def inter_gate_mul_multiplier(scale1, scale2, output_scale) -> tuple[int, int]:
    """``CreateInterGateMulParams``: (double(s1) * double(s2)) / double(out), quantized."""
    return quantize_multiplier(float(np.float32(scale1)) * float(np.float32(scale2)) / float(np.float32(output_scale)))


def checked_log2(x) -> tuple[int, bool]:
    """``CheckedLog2``: float log2 rounded, and whether x was (nearly) a power of two."""
    x = np.float32(x)
    x_log2 = np.float32(np.log(x)) * np.float32(np.float32(1.0) / np.float32(np.log(np.float32(2.0))))
    rounded = np.float32(tflite_round(float(x_log2)))
    return int(rounded), abs(float(x_log2 - rounded)) < 1e-3


def tanh_prescale(scale_power: int) -> tuple[int, int]:
    """(multiplier, right shift) bringing an int16 value of scale 2^scale_power to tanh's table.

    lstm_internal::Tanh computes ``left_shift = 15 + scale_power - 3`` and a multiplier of 0
    (or 3 with the negated shift when negative); reference Tanh then turns multiplier 0 into
    ``3 << left_shift`` with no shift.

    >>> tanh_prescale(-12)
    (3, 0)
    >>> tanh_prescale(-11)
    (6, 0)
    >>> tanh_prescale(-14)
    (3, 2)
    """
    left_shift = 15 + scale_power - 3
    if left_shift < 0:
        return 3, -left_shift
    return 3 << left_shift, 0


def quantized_cell_clip(cell_clip: float, cell_scale) -> int:
    """``CreateLstmCellStateInfo``: static_cast<int16_t>(clamp(clip / scale)) (truncation)."""
    v = min(max(float(np.float32(cell_clip)) / float(np.float32(cell_scale)), -32768.0), 32767.0)
    return int(v)


def activation_range(activation: int, scale, zero_point: int, qmin: int = -128, qmax: int = 127) -> tuple[int, int]:
    """``CalculateActivationRangeQuantized`` for int8 outputs."""
    def quantize(f: float) -> int:
        return int(zero_point) + int(tflite_round(float(np.float32(f) / np.float32(scale))))

    if activation == ACT_NONE:
        return qmin, qmax
    if activation == ACT_RELU:
        return max(qmin, quantize(0.0)), qmax
    if activation == ACT_RELU6:
        return max(qmin, quantize(0.0)), min(qmax, quantize(6.0))
    if activation == ACT_RELU_N1_TO_1:
        return max(qmin, quantize(-1.0)), min(qmax, quantize(1.0))
    raise ValueError(activation)


def softmax_params(beta: float, input_scale) -> tuple[int, int, int]:
    """``CalculateSoftmaxParams`` for int8: (input_multiplier, input_left_shift, diff_min).

    PreprocessSoftmaxScaling with 5 integer bits, then diff_min = -CalculateInputRadius(5, shift).
    """
    integer_bits = 5
    real = min(float(np.float32(beta)) * float(np.float32(input_scale)) * (1 << (31 - integer_bits)),
               float((1 << 31) - 1))
    multiplier, shift = quantize_multiplier(real)
    if shift < 0:
        raise ValueError("softmax input scale too small for QuantizeMultiplierGreaterThanOne")
    radius = math.floor(1.0 * ((1 << integer_bits) - 1) * (1 << (31 - integer_bits)) / (1 << shift))
    return multiplier, shift, -int(radius)


def folded_bias(weights: np.ndarray, bias: np.ndarray | None, input_zero_point: int) -> np.ndarray:
    """``bias - input_zero_point * sum_j w[i, j]``: TFLM's ``sum w (x + input_offset) + bias``
    with the constant part computed once (exact, modulo 2^32 like the int32 accumulator)."""
    w = np.asarray(weights, np.int64)
    b = np.zeros(w.shape[0], np.int64) if bias is None else np.asarray(bias, np.int64)
    return fixedpoint.wrap_int32(b - int(input_zero_point) * w.sum(axis=1))
