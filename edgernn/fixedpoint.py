"""Fixed-point helpers, bit-exact with TFLite Micro's reference kernels.

Every function here is the numpy twin of one TFLM / gemmlowp routine and keeps its name
(in snake_case) so the C kernels in ``firmware_templates/native/`` can be compared line by
line. All functions are vectorized: they take integer numpy arrays (or Python ints) and
broadcast. Values that TFLM keeps in ``int32_t`` are carried here in ``int64`` so nothing
overflows silently; the functions return ``int64`` arrays holding the exact int32 (or int16)
results TFLM computes.

Rounding conventions (TFLM's default build, ``TFLITE_SINGLE_ROUNDING`` off):

* ``saturating_rounding_doubling_high_mul``: round half away from zero of ``a*b / 2^31``.
* ``rounding_divide_by_pot``: round half away from zero of ``x / 2^e``.
* ``multiply_by_quantized_multiplier``: the two above, one after the other ("double rounding").

Sources (read, not copied): tensorflow/lite/kernels/internal/common.{h,cc},
quantization_util.cc, reference/integer_ops/{logistic,tanh}.h, gemmlowp fixedpoint.h.
"""

from __future__ import annotations

import math

import numpy as np

INT32_MIN = -(1 << 31)
INT32_MAX = (1 << 31) - 1
INT16_MIN = -(1 << 15)
INT16_MAX = (1 << 15) - 1
INT8_MIN = -128
INT8_MAX = 127


def _i64(x) -> np.ndarray:
    return np.asarray(x, dtype=np.int64)


def wrap_int32(x) -> np.ndarray:
    """Two's-complement wrap of int64 values to the int32 range (C's int32 overflow in practice)."""
    x = _i64(x)
    return ((x + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)


def wrap_int16(x) -> np.ndarray:
    """``static_cast<int16_t>`` of an int32: keep the low 16 bits, signed."""
    x = _i64(x)
    return ((x + (1 << 15)) & 0xFFFF) - (1 << 15)


# --------------------------------------------------------------------------- multipliers
def tflite_round(x: float) -> float:
    """``TfLiteRound`` / ``std::round``: round half away from zero."""
    return math.floor(abs(x) + 0.5) * (1.0 if x >= 0 else -1.0)


def round_half_away(x) -> np.ndarray:
    """``TfLiteRound`` (``std::round`` / ``roundf``) on arrays: half away from zero, exact.

    Done in float64 so ``|x| + 0.5`` cannot round (float32 inputs are exact there).
    """
    x = np.asarray(x, np.float64)
    return np.copysign(np.floor(np.abs(x) + 0.5), x)


def quantize_multiplier(real_multiplier: float) -> tuple[int, int]:
    """``QuantizeMultiplier(double, int32_t*, int*)``: a real scale as (Q31 multiplier, shift).

    ``real ~= multiplier * 2^(shift - 31)``; ``shift`` > 0 means a left shift. Computed from
    the double exactly as TFLM does: ``frexp``, round half away from zero of ``q * 2^31``,
    renormalize when that rounds up to 2^31, and flush multipliers below 2^-31 to zero.
    """
    if real_multiplier == 0.0:
        return 0, 0
    q, shift = math.frexp(float(real_multiplier))
    q_fixed = int(tflite_round(q * (1 << 31)))
    if q_fixed == (1 << 31):
        q_fixed //= 2
        shift += 1
    if shift < -31:
        shift, q_fixed = 0, 0
    return q_fixed, shift


def quantize_multiplier_frexp_only(real_multiplier: float) -> tuple[int, int]:
    """The multiplier TFLM's int8 LOGISTIC/TANH Prepare builds by hand.

    ``frexp`` then ``round(q * 2^31)`` without the renormalization step of
    :func:`quantize_multiplier` (a q that rounds to 2^31 would overflow int32 there too).
    """
    q, shift = math.frexp(float(real_multiplier))
    return int(tflite_round(q * (1 << 31))), shift


def calculate_input_radius(input_integer_bits: int, input_left_shift: int, total_signed_bits: int = 31) -> int:
    """``CalculateInputRadius``: largest |input| whose rescaled value still fits the Q format."""
    max_input_rescaled = (1.0 * ((1 << input_integer_bits) - 1) * float(1 << (total_signed_bits - input_integer_bits))
                          / float(1 << input_left_shift))
    return int(math.floor(max_input_rescaled))


# --------------------------------------------------------------------------- core integer ops
def saturating_rounding_doubling_high_mul(a, b) -> np.ndarray:
    """gemmlowp ``SaturatingRoundingDoublingHighMul`` for int32 (ARM ``VQRDMULH``).

    ``(a * b + nudge) / 2^31`` with C's truncating division, ``nudge = 2^30`` for a
    non-negative product and ``1 - 2^30`` otherwise; ``INT32_MIN * INT32_MIN`` saturates to
    ``INT32_MAX``.
    """
    a = _i64(a)
    b = _i64(b)
    ab = a * b
    nudge = np.where(ab >= 0, 1 << 30, 1 - (1 << 30))
    s = ab + nudge
    # C++ integer division truncates toward zero; numpy's // floors.
    q = np.where(s >= 0, s >> 31, -((-s) >> 31))
    overflow = (a == b) & (a == INT32_MIN)
    return np.where(overflow, INT32_MAX, q)


def rounding_divide_by_pot(x, exponent) -> np.ndarray:
    """gemmlowp ``RoundingDivideByPOT``: ``x / 2^exponent`` rounded half away from zero.

    ``exponent`` in [0, 31]; may be an array (per-channel shifts).
    """
    x = _i64(x)
    exponent = _i64(exponent)
    mask = (np.int64(1) << exponent) - 1
    remainder = x & mask
    threshold = (mask >> 1) + (x < 0)
    return (x >> exponent) + (remainder > threshold)


def multiply_by_quantized_multiplier(x, quantized_multiplier, shift) -> np.ndarray:
    """``MultiplyByQuantizedMultiplier(int32_t x, int32_t m, int shift)`` (double rounding).

    ``x * 2^max(shift, 0)`` (wrapping like int32), then
    :func:`saturating_rounding_doubling_high_mul` by ``m``, then
    :func:`rounding_divide_by_pot` by ``max(-shift, 0)``. ``m`` and ``shift`` may be arrays
    (per-channel).
    """
    shift = _i64(shift)
    left = np.maximum(shift, 0)
    right = np.maximum(-shift, 0)
    xs = wrap_int32(_i64(x) << left)
    return rounding_divide_by_pot(saturating_rounding_doubling_high_mul(xs, quantized_multiplier), right)


def multiply_by_quantized_multiplier_fast(x, quantized_multiplier, shift) -> np.ndarray:
    """:func:`multiply_by_quantized_multiplier` computed in float64; identical results.

    Exact whenever ``x * 2^max(shift, 0)`` fits in int32 (TFLM's own precondition):
    ``SaturatingRoundingDoublingHighMul(x, m) == floor(x * m / 2^31 + 1/2)`` for either sign,
    and with ``m = m_hi * 2^16 + m_lo`` every partial product (< 2^47) and sum stays exact in a
    double. ``RoundingDivideByPOT`` is round-half-away-from-zero of ``q / 2^right``. The
    simulator's kernels use this form (several times faster in numpy than int64 maths); the
    tests check it equals the integer reference. Returns float64 holding integers.
    """
    m = np.asarray(quantized_multiplier, np.int64)
    shift = np.asarray(shift, np.int64)
    xs = np.asarray(x, np.float64) * np.ldexp(1.0, np.maximum(shift, 0))
    p = xs * ((m >> 16).astype(np.float64) * (1.0 / 32768.0))
    pi = np.floor(p)
    q = pi + np.floor((p - pi) + xs * ((m & 0xFFFF).astype(np.float64) * (1.0 / 2147483648.0)) + 0.5)
    a = np.floor(np.abs(q) * np.ldexp(1.0, -np.maximum(-shift, 0)) + 0.5)
    return np.where(q < 0, -a, a)


def multiply_by_quantized_multiplier_int64(x, quantized_multiplier, shift) -> np.ndarray:
    """``MultiplyByQuantizedMultiplier(int64_t x, int32_t m, int shift)``: single rounding with
    the multiplier cut to 16 bits, ``(x * m16 + 2^(14 - shift)) >> (15 - shift)`` where
    ``m16 = (m + 2^15) >> 16`` (0x7FFF from m >= 0x7FFF0000). TFLM's 16x8 FULLY_CONNECTED
    requantizes its int64 accumulators (int64 bias) this way, as CMSIS-NN's s16 kernels do."""
    m = np.asarray(quantized_multiplier, np.int64)
    reduced = np.where(m < 0x7FFF0000, (m + (1 << 15)) >> 16, 0x7FFF)
    total = 15 - np.asarray(shift, np.int64)
    return (_i64(x) * reduced + (np.int64(1) << (total - 1))) >> total


def checked_log2(x: float) -> tuple[bool, int]:
    """TFLM ``CheckedLog2`` (float32 maths): (``x`` is within 2^(+-0.001) of a power of two,
    the rounded log2)."""
    lg = np.float32(np.log(np.float32(x))) * np.float32(1.0 / np.log(np.float32(2.0)))
    r = np.float32(tflite_round(float(lg)))
    return bool(abs(np.float32(lg - r)) < np.float32(1e-3)), int(r)


def int16_activation_params(input_scale: float, tanh: bool) -> tuple[int, int]:
    """``(input_multiplier, input_left_shift)`` of TFLM's int16 LOGISTIC / TANH Prepare.

    A power-of-two input scale with left shift 0 (TANH also 1) takes the table's own scale
    (multiplier 0: times 3); any other is rescaled to ``1 / (3 * 4096)`` by a 15-bit
    multiplier and a left shift found by doubling ``scale * 4096 * 3`` up to above 16383.5.
    """
    scale = float(np.float32(input_scale))
    pot, lg = checked_log2(scale)
    left = 12 + lg
    if pot and (left == 0 or (tanh and left == 1)):
        return 0, left
    mult, left = scale * 4096.0 * 3.0, 0
    while mult <= 32767.0 / 2.0 and left <= 30:
        left += 1
        mult *= 2.0
    return int(mult), left


def multiply_by_quantized_multiplier_greater_than_one(x, quantized_multiplier, left_shift) -> np.ndarray:
    """``MultiplyByQuantizedMultiplierGreaterThanOne``: ``SRDHM(x * 2^left_shift, m)``."""
    return saturating_rounding_doubling_high_mul(wrap_int32(_i64(x) << _i64(left_shift)), quantized_multiplier)


def saturating_rounding_multiply_by_pot(x, exponent: int, bits: int = 32) -> np.ndarray:
    """gemmlowp ``SaturatingRoundingMultiplyByPOT<exponent>`` on a ``bits``-wide signed raw value."""
    x = _i64(x)
    if exponent == 0:
        return x
    if exponent < 0:
        return rounding_divide_by_pot(x, -exponent)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    threshold = (1 << (bits - 1 - exponent)) - 1
    r = x << exponent
    r = np.where(x > threshold, hi, r)
    return np.where(x < -threshold, lo, r)


def count_leading_zeros_u32(x) -> np.ndarray:
    """``CountLeadingZeros(uint32_t)``; 32 for zero."""
    x = _i64(x) & 0xFFFFFFFF
    n = np.zeros_like(x)
    cur = x.copy()
    for s in (16, 8, 4, 2, 1):
        m = cur < (np.int64(1) << (32 - s))
        n = n + np.where(m, s, 0)
        cur = np.where(m, cur << s, cur) & 0xFFFFFFFF
    return np.where(x == 0, 32, n)


# --------------------------------------------------------------------------- int16 LUT activations
# sigmoid(i / 24) in unsigned Q0.16, i = 0..255 (TFLM/CMSIS-NN ``sigmoid_table_uint16``).
# The values are TFLM's own table: they do not all equal round(65536 * sigmoid(i / 24)).
SIGMOID_TABLE_UINT16 = np.array([
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149, 40794, 41432, 42064, 42688,
    43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369, 47911, 48443, 48964, 49475, 49975, 50464, 50942, 51409,
    51865, 52311, 52745, 53169, 53581, 53983, 54374, 54755, 55125, 55485, 55834, 56174, 56503, 56823, 57133, 57433,
    57724, 58007, 58280, 58544, 58800, 59048, 59288, 59519, 59743, 59959, 60168, 60370, 60565, 60753, 60935, 61110,
    61279, 61441, 61599, 61750, 61896, 62036, 62172, 62302, 62428, 62549, 62666, 62778, 62886, 62990, 63090, 63186,
    63279, 63368, 63454, 63536, 63615, 63691, 63765, 63835, 63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308,
    64357, 64405, 64450, 64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786, 64816, 64845, 64873, 64900,
    64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079, 65097, 65115, 65132, 65149, 65164, 65179, 65194, 65208,
    65221, 65234, 65246, 65258, 65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360, 65367,
    65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425, 65429, 65433, 65438, 65442, 65445, 65449,
    65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474, 65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491,
    65493, 65495, 65497, 65498, 65500, 65501, 65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513,
    65514, 65515, 65516, 65517, 65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522, 65523, 65523, 65524, 65524,
    65525, 65525, 65526, 65526, 65526, 65527, 65527, 65528, 65528, 65528, 65529, 65529, 65529, 65529, 65530, 65530,
    65530, 65530, 65531, 65531, 65531, 65531, 65531, 65532, 65532, 65532, 65532, 65532, 65532, 65533, 65533, 65533,
    65533, 65533, 65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65534, 65535,
], dtype=np.int64)


def _scale_int16_input(x, input_multiplier: int, input_left_shift: int) -> np.ndarray:
    # "power of two case": multiplier 0 means 3 << shift (the 3/4 range expansion), no shift.
    if input_multiplier == 0:
        input_multiplier, input_left_shift = 3 << input_left_shift, 0
    rnd = (1 << (input_left_shift - 1)) if input_left_shift > 0 else 0
    return (_i64(x) * input_multiplier + rnd) >> input_left_shift


def logistic_int16(x, input_multiplier: int = 0, input_left_shift: int = 0) -> np.ndarray:
    """``reference_integer_ops::Logistic`` for int16 (Q3.12 in, Q0.15 out), as the LSTM gates use it.

    Multiplier 0 means "times 3, no shift": ``v = 3 * x`` puts one table step (24 table
    entries per unit of x) at 512 = 2^9 raw units, since 4096 * 3 / 24 = 512. The table is
    indexed with ``|v| >> 9`` and linearly interpolated with the low 9 bits (``uint32``
    maths); ``|v| >> 9 >= 255`` saturates; negative inputs use ``2^25 - r`` (i.e. 1 - s).
    Result ``(r + 2^9) >> 10`` (positive) as int16. The LSTM kernel calls it with multiplier 0
    and shift 0.
    """
    v = _scale_int16_input(x, input_multiplier, input_left_shift)
    a = np.abs(v)
    uh = a >> 9
    idx = np.minimum(uh, 254)
    ua = SIGMOID_TABLE_UINT16[idx]
    ub = SIGMOID_TABLE_UINT16[idx + 1]
    ut = a & 0x1FF
    res = np.where(uh >= 255, 0x7FFF << 10, (ua << 9) + ut * (ub - ua))
    res = np.where(v >= 0, res + (1 << 9), (1 << (16 + 9)) - res + (1 << 9) - 1)
    return wrap_int16(res >> 10)


def tanh_int16(x, input_multiplier: int, input_left_shift: int) -> np.ndarray:
    """``reference_integer_ops::Tanh`` for int16: the sigmoid table read as tanh(x) = 2 sigmoid(2x) - 1.

    Same scaling as :func:`logistic_int16` but indexed with ``|v| >> 8`` (twice the slope),
    interpolated on the low 8 bits; ``r - 2^23 + 2^7`` (positive) or ``-r + 2^23 + 2^7 - 1``
    (negative) then an arithmetic shift right by 8, output Q0.15.
    """
    v = _scale_int16_input(x, input_multiplier, input_left_shift)
    a = np.abs(v)
    uh = a >> 8
    idx = np.minimum(uh, 254)
    ua = SIGMOID_TABLE_UINT16[idx]
    ub = SIGMOID_TABLE_UINT16[idx + 1]
    ut = a & 0xFF
    res = np.where(uh >= 255, 0xFFFF << 8, (ua << 8) + ut * (ub - ua))
    res = np.where(v >= 0, res - (1 << (14 + 9)) + (1 << (9 - 2)), -res + (1 << (14 + 9)) + (1 << (9 - 2)) - 1)
    return wrap_int16(res >> (9 - 1))


def lstm_tanh_int16(x, cell_state_scale_power: int) -> np.ndarray:
    """``lstm_internal::Tanh``: tanh of an int16 with scale ``2^cell_state_scale_power``.

    ``left_shift = 15 + power - 3``; a negative shift becomes a right shift with multiplier 3.
    The cell gate calls it with power -12 (its input is Q3.12); the hidden update with the
    cell state's power.
    """
    left = 15 + cell_state_scale_power - 3
    mult = 0
    if left < 0:
        left, mult = -left, 3
    return tanh_int16(x, mult, left)


# --------------------------------------------------------------------------- gemmlowp Q-format maths
# Fixed-point values below are int32 raws with ``integer_bits`` integer bits (Q<ib>.<31-ib>).
def _fp_mul(a, b):
    return saturating_rounding_doubling_high_mul(a, b)


def exp_on_interval_between_negative_one_quarter_and_0_excl(a) -> np.ndarray:
    """gemmlowp: exp(a) for a in [-1/4, 0), Q0.31 in and out (Taylor series around -1/8)."""
    constant_term = 1895147668  # exp(-1/8) in Q0.31
    constant_1_over_3 = 715827883
    x = _i64(a) + (1 << 28)  # a + 1/8
    x2 = _fp_mul(x, x)
    x3 = _fp_mul(x2, x)
    x4 = _fp_mul(x2, x2)
    x4_over_4 = saturating_rounding_multiply_by_pot(x4, -2)
    poly = saturating_rounding_multiply_by_pot(_fp_mul(x4_over_4 + x3, constant_1_over_3) + x2, -1)
    return constant_term + _fp_mul(constant_term, x + poly)


def exp_on_negative_values(a, integer_bits: int) -> np.ndarray:
    """gemmlowp ``exp_on_negative_values``: exp(a) for a <= 0 given in Q<integer_bits>; result Q0.31."""
    a = _i64(a)
    fractional_bits = 31 - integer_bits
    one_quarter = 1 << (fractional_bits - 2)
    mask = one_quarter - 1
    a_mod_quarter_minus_one_quarter = (a & mask) - one_quarter
    result = exp_on_interval_between_negative_one_quarter_and_0_excl(
        saturating_rounding_multiply_by_pot(a_mod_quarter_minus_one_quarter, integer_bits))
    remainder = a_mod_quarter_minus_one_quarter - a
    for exponent, multiplier in ((-2, 1672461947), (-1, 1302514674), (0, 790015084), (1, 290630308),
                                 (2, 39332535), (3, 720401), (4, 242)):
        if integer_bits > exponent:
            bit = 1 << (fractional_bits + exponent)
            result = np.where((remainder & bit) != 0, _fp_mul(result, multiplier), result)
    if integer_bits > 5:
        clamp = -(1 << (36 - integer_bits))
        result = np.where(a < clamp, 0, result)
    return np.where(a == 0, INT32_MAX, result)


def one_over_one_plus_x_for_x_in_0_1(a) -> np.ndarray:
    """gemmlowp: 1 / (1 + a) for a in [0, 1) in Q0.31 (Newton-Raphson, 3 iterations)."""
    a = _i64(a)
    s = a + INT32_MAX  # RoundingHalfSum(a, One)
    half_denominator = np.where(s >= 0, (s + 1) // 2, -((-(s - 1)) // 2))
    constant_48_over_17 = 1515870810  # Q2.29
    constant_neg_32_over_17 = -1010580540
    x = constant_48_over_17 + _fp_mul(half_denominator, constant_neg_32_over_17)
    one_q2 = 1 << 29
    for _ in range(3):
        half_denominator_times_x = _fp_mul(half_denominator, x)
        one_minus = one_q2 - half_denominator_times_x
        x = x + saturating_rounding_multiply_by_pot(_fp_mul(x, one_minus), 2)
    return saturating_rounding_multiply_by_pot(x, 1)  # Rescale<0>(ExactMulByPot<-1>(x)): Q1 -> Q0


def one_minus_x_over_one_plus_x_for_x_in_0_1(a) -> np.ndarray:
    """gemmlowp: (1 - a) / (1 + a) for a in [0, 1) in Q0.31."""
    a = _i64(a)
    s = a + INT32_MAX
    half_denominator = np.where(s >= 0, (s + 1) // 2, -((-(s - 1)) // 2))
    x = 1515870810 + _fp_mul(half_denominator, -1010580540)
    one_q2 = 1 << 29
    for _ in range(3):
        one_minus = one_q2 - _fp_mul(half_denominator, x)
        x = x + saturating_rounding_multiply_by_pot(_fp_mul(x, one_minus), 2)
    return saturating_rounding_multiply_by_pot(x - one_q2, 2)  # Rescale<0> from Q2


def fixed_point_logistic(a, integer_bits: int) -> np.ndarray:
    """gemmlowp ``logistic`` of a Q<integer_bits> int32 raw; result Q0.31."""
    a = _i64(a)
    pos = a > 0
    abs_input = np.where(pos, a, -a)
    result_if_positive = one_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(-abs_input, integer_bits))
    result_if_negative = INT32_MAX - result_if_positive
    return np.where(a == 0, 1 << 30, np.where(pos, result_if_positive, result_if_negative))


def fixed_point_tanh(a, integer_bits: int) -> np.ndarray:
    """gemmlowp ``tanh`` of a Q<integer_bits> int32 raw; result Q0.31."""
    a = _i64(a)
    neg = a < 0
    n = np.where(neg, a, -a)
    # ExactMulByPot<1>: the same raw read with one more integer bit.
    t = one_minus_x_over_one_plus_x_for_x_in_0_1(exp_on_negative_values(n, integer_bits + 1))
    return np.where(a == 0, 0, np.where(neg, -t, t))


def get_reciprocal(x, x_integer_digits: int):
    """``GetReciprocal``: (1/x as Q0.31 shifted_scale, num_bits_over_unit) for positive int32 x."""
    x = _i64(x)
    headroom_plus_one = count_leading_zeros_u32(x)
    num_bits_over_unit = x_integer_digits - headroom_plus_one
    shifted_sum_minus_one = wrap_int32(((x << headroom_plus_one) & 0xFFFFFFFF) - (1 << 31))
    return one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one), num_bits_over_unit


__all__ = [name for name, obj in list(globals().items())
           if not name.startswith("_") and (name.isupper() or getattr(obj, "__module__", None) == __name__)]
