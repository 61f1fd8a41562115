"""Post-training int8 quantization: calibration ranges and int8 parameters.

:mod:`.params` holds the TFLite int8 conventions (per-channel symmetric weights, per-tensor
asymmetric activations, int32 biases); :mod:`.calibrate` runs a float program on calibration
data and records the range of every tensor.
"""

from .params import (LOGISTIC_OUT, SOFTMAX_OUT, TANH_OUT, QParams, activation_params, quantize_bias,
                     quantize_weights)

__all__ = ["QParams", "activation_params", "quantize_weights", "quantize_bias", "LOGISTIC_OUT",
           "SOFTMAX_OUT", "TANH_OUT"]
