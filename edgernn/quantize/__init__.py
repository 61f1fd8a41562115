"""Post-training int8 quantization: calibration ranges and int8 parameters (a leaf: numpy only).

:mod:`.params` holds the TFLite int8 conventions (per-channel symmetric weights, per-tensor
asymmetric activations, int32 biases), the fixed LOGISTIC / TANH / SOFTMAX output grids and
the saturating input ranges that both the converter and QAT (:mod:`edgernn.qat`) use;
:mod:`.calibrate` runs a float program on calibration data and records the range of every
tensor.
"""

from .calibrate import MAX_CALIB_SAMPLES
from .params import (LOGISTIC_OUT, SATURATING_RANGE, SOFTMAX_OUT, TANH_OUT, QParams, activation_params, quantize_bias,
                     quantize_weights)

__all__ = ["QParams", "activation_params", "quantize_weights", "quantize_bias", "LOGISTIC_OUT",
           "SOFTMAX_OUT", "TANH_OUT", "SATURATING_RANGE", "MAX_CALIB_SAMPLES"]
