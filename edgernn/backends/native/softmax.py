"""The int8 SOFTMAX's exp() table, computed at generation time, and a numpy twin of the C kernel.

TFLM's int8 softmax (``reference_ops::Softmax<int8_t, int8_t>``) rescales ``diff = x - max(row)``
to Q5.26 (PreprocessSoftmaxScaling's multiplier and left shift), zeroes the terms with
``diff < diff_min`` and takes gemmlowp's ``exp_on_negative_values`` of the others: a function of
``d = -diff`` in [0, 255] only. :func:`softmax_exp_table` runs those steps (the helpers of
:mod:`edgernn.fixedpoint`, as the simulator's SOFTMAX does) for every ``d`` and keeps the
entries up to the last one that can matter, so ``edgernn_softmax_run_s8`` (edgernn_kernels.c)
only sums, takes the reciprocal and rescales. :func:`softmax_s8_twin` is the C kernel's
arithmetic in numpy (tests/test_native_softmax.py holds both to the simulator's SOFTMAX).
"""

from __future__ import annotations

import numpy as np

from ... import fixedpoint as fp

DIFF_INTEGER_BITS = 5  # TFLM kScaledDiffIntegerBits: exp() input in Q5.26
ACCUM_INTEGER_BITS = 12  # TFLM kAccumulationIntegerBits: the row sum in Q12.19
OUTPUT_BITS = 8  # int8 output: Q0.8, then - 128
# An exp below 2^11 adds 0 to the Q12.19 sum (RoundingDivideByPOT by 2^12) and its output rounds
# to 0 - 128 whatever the sum (exp x scale / 2^31 <= exp, then / 2^23 or more): a zero entry.
EXP_TABLE_MIN = 1 << (ACCUM_INTEGER_BITS - 1)
DIFFS = 256  # int8 inputs: d = max(row) - x in [0, 255]


def softmax_exp_table(input_multiplier: int, input_left_shift: int, diff_min: int) -> np.ndarray:
    """``exp(-d)`` of TFLM's int8 softmax in Q0.31 for ``d = 0 .. len - 1`` (int64 array):
    ``exp_on_negative_values(MultiplyByQuantizedMultiplierGreaterThanOne(-d, multiplier, shift))``
    where ``-d >= diff_min``, 0 elsewhere, cut after the last entry >= :data:`EXP_TABLE_MIN`
    (entry 0, exp(0) = 1 - 2^-31, always stays)."""
    diff = -np.arange(DIFFS, dtype=np.int64)
    scaled = fp.multiply_by_quantized_multiplier_greater_than_one(diff, input_multiplier, input_left_shift)
    exp = np.where(diff >= diff_min, fp.exp_on_negative_values(scaled, DIFF_INTEGER_BITS), 0).astype(np.int64)
    kept = np.flatnonzero(exp >= EXP_TABLE_MIN)
    return exp[:int(kept[-1]) + 1 if len(kept) else 1]


def softmax_s8_twin(x, table) -> np.ndarray:
    """``edgernn_softmax_run_s8`` in numpy over the last axis of int8 ``x``: entries past the
    table are 0, exps >= 0 rounded as "add half, shift", 1 / sum by ``GetReciprocal``."""
    x = np.asarray(x, np.int64)
    table = np.asarray(table, np.int64)
    d = x.max(axis=-1, keepdims=True) - x
    e = np.where(d < len(table), table[np.minimum(d, len(table) - 1)], 0)
    half = 1 << (ACCUM_INTEGER_BITS - 1)
    total = fp.wrap_int32(((e + half) >> ACCUM_INTEGER_BITS).sum(axis=-1, keepdims=True))
    scale, bits_over_unit = fp.get_reciprocal(total, ACCUM_INTEGER_BITS)
    exponent = np.asarray(bits_over_unit) + 31 - OUTPUT_BITS
    q = (scale * e + (1 << 30)) >> 31
    unsat = np.where(exponent > 31, 0, (q + (np.int64(1) << np.maximum(exponent - 1, 0))) >> exponent)
    return (np.minimum(unsat, (1 << OUTPUT_BITS) - 1) - 128).astype(np.int8)
