/*
 * edgernn_kernels.c - int8 recurrent-network kernels, bit-exact with TensorFlow Lite Micro.
 * See edgernn_kernels.h. C99, no malloc, no recursion, no floating point.
 */
#include "edgernn_kernels.h"

#define EDGERNN_INT16_MIN (-32768)
#define EDGERNN_INT16_MAX 32767
#define EDGERNN_INT8_MIN (-128)
#define EDGERNN_INT8_MAX 127

/* ---------------------------------------------------------------------------------------
 * Fixed point (gemmlowp fixedpoint.h, TFLM kernels/internal/common.{h,cc})
 * ------------------------------------------------------------------------------------- */

int32_t edgernn_fixed_mul_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift)
{
    return edgernn_mbqm(x, multiplier, shift);
}

static inline int32_t edgernn_clamp(int32_t v, int32_t lo, int32_t hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

/* ---------------------------------------------------------------------------------------
 * int16 sigmoid / tanh (TFLM reference_integer_ops::Logistic / Tanh for int16)
 * ------------------------------------------------------------------------------------- */

/* sigmoid(i / 24) in Q0.16 for i = 0..255, TFLM's sigmoid_table_uint16 (kernels/internal/
 * common.h). Shared by sigmoid and tanh, since tanh(x) = 2 sigmoid(2x) - 1. The values are
 * TFLM's own (a few entries differ by one from any closed-form rounding), so they are kept
 * verbatim for bit-exactness. */
const uint16_t edgernn_sigmoid_table[256] = {
    32768, 33451, 34133, 34813, 35493, 36169, 36843, 37513, 38180, 38841, 39498, 40149,
    40794, 41432, 42064, 42688, 43304, 43912, 44511, 45102, 45683, 46255, 46817, 47369,
    47911, 48443, 48964, 49475, 49975, 50464, 50942, 51409, 51865, 52311, 52745, 53169,
    53581, 53983, 54374, 54755, 55125, 55485, 55834, 56174, 56503, 56823, 57133, 57433,
    57724, 58007, 58280, 58544, 58800, 59048, 59288, 59519, 59743, 59959, 60168, 60370,
    60565, 60753, 60935, 61110, 61279, 61441, 61599, 61750, 61896, 62036, 62172, 62302,
    62428, 62549, 62666, 62778, 62886, 62990, 63090, 63186, 63279, 63368, 63454, 63536,
    63615, 63691, 63765, 63835, 63903, 63968, 64030, 64090, 64148, 64204, 64257, 64308,
    64357, 64405, 64450, 64494, 64536, 64576, 64614, 64652, 64687, 64721, 64754, 64786,
    64816, 64845, 64873, 64900, 64926, 64950, 64974, 64997, 65019, 65039, 65060, 65079,
    65097, 65115, 65132, 65149, 65164, 65179, 65194, 65208, 65221, 65234, 65246, 65258,
    65269, 65280, 65291, 65301, 65310, 65319, 65328, 65337, 65345, 65352, 65360, 65367,
    65374, 65381, 65387, 65393, 65399, 65404, 65410, 65415, 65420, 65425, 65429, 65433,
    65438, 65442, 65445, 65449, 65453, 65456, 65459, 65462, 65465, 65468, 65471, 65474,
    65476, 65479, 65481, 65483, 65485, 65488, 65489, 65491, 65493, 65495, 65497, 65498,
    65500, 65501, 65503, 65504, 65505, 65507, 65508, 65509, 65510, 65511, 65512, 65513,
    65514, 65515, 65516, 65517, 65517, 65518, 65519, 65520, 65520, 65521, 65522, 65522,
    65523, 65523, 65524, 65524, 65525, 65525, 65526, 65526, 65526, 65527, 65527, 65528,
    65528, 65528, 65529, 65529, 65529, 65529, 65530, 65530, 65530, 65530, 65531, 65531,
    65531, 65531, 65531, 65532, 65532, 65532, 65532, 65532, 65532, 65533, 65533, 65533,
    65533, 65533, 65533, 65533, 65533, 65534, 65534, 65534, 65534, 65534, 65534, 65534,
    65534, 65534, 65534, 65535
};

int16_t edgernn_activation_sigmoid_one_s16(int16_t x)
{
    return edgernn_sigmoid_s16(x);
}

void edgernn_activation_sigmoid_s16(int16_t *data, int n)
{
    int i;
    for (i = 0; i < n; ++i) {
        data[i] = edgernn_activation_sigmoid_one_s16(data[i]);
    }
}

int16_t edgernn_activation_tanh_one_s16(int16_t x, int32_t multiplier, int left_shift)
{
    return edgernn_tanh_s16(x, multiplier, left_shift);
}

void edgernn_activation_tanh_s16(const int16_t *input, int16_t *output, int n,
                                 int32_t multiplier, int left_shift)
{
    int i;
    for (i = 0; i < n; ++i) {
        output[i] = edgernn_activation_tanh_one_s16(input[i], multiplier, left_shift);
    }
}

/* ---------------------------------------------------------------------------------------
 * FULLY_CONNECTED int8 (TFLM reference_integer_ops::FullyConnected[PerChannel])
 * ------------------------------------------------------------------------------------- */

int32_t edgernn_dot_s8(const int8_t *w, const int8_t *x, int n)
{
    int32_t acc = 0;
    int i = 0;
#if EDGERNN_USE_SMLAD
    /* Four int8 pairs per step: SXTB16 splits both words the same way (lanes 0, 2 and 1, 3). */
    for (; i + 4 <= n; i += 4) {
        uint32_t w4;
        uint32_t x4;
        memcpy(&w4, w + i, 4);
        memcpy(&x4, x + i, 4);
        acc = __smlad(__sxtb16((int32_t)w4), __sxtb16((int32_t)x4), acc);
        acc = __smlad(edgernn_sxtb16_odd(w4), edgernn_sxtb16_odd(x4), acc);
    }
#else
    /* A count masked to a multiple of 16 lets gcc -O2 vectorize this loop with no remainder
     * (pmaddwd on x86); the last n % 16 products follow. */
    const int n16 = (int)((unsigned)n & ~15u);
    for (; i < n16; ++i) {
        acc += (int32_t)w[i] * (int32_t)x[i];
    }
#endif
    for (; i < n; ++i) {
        acc += (int32_t)w[i] * (int32_t)x[i];
    }
    return acc;
}

void edgernn_fc_run_s8(const edgernn_fc_params *p, const int8_t *input, int8_t *output)
{
    int c;
    for (c = 0; c < p->n_output; ++c) {
        const int m = p->n_multipliers > 1 ? c : 0;
        /* The bias already holds -input_zero_point * sum(w): acc = sum w (x - zp) + b. */
        int32_t acc = p->bias[c] + edgernn_dot_s8(p->weights + c * p->n_input, input, p->n_input);
        acc = edgernn_mbqm(acc, p->multiplier[m], (int)p->shift[m]);
        acc += p->output_zero_point;
        output[c] = (int8_t)edgernn_clamp(acc, p->activation_min, p->activation_max);
    }
}

/* ---------------------------------------------------------------------------------------
 * SOFTMAX int8 (TFLM reference_ops::Softmax<int8_t, int8_t>): exp() from the op's table, the
 * row sum's reciprocal by gemmlowp's one_over_one_plus_x_for_x_in_0_1 (GetReciprocal).
 * ------------------------------------------------------------------------------------- */

#define EDGERNN_SOFTMAX_ACCUM_INTEGER_BITS 12 /* sum of exps in Q12.19 */
#define EDGERNN_SOFTMAX_ACCUM_HALF ((uint32_t)1 << (EDGERNN_SOFTMAX_ACCUM_INTEGER_BITS - 1))
#define EDGERNN_SOFTMAX_OUTPUT_BITS 8         /* output in Q0.8, then - 128 */
#define EDGERNN_SOFTMAX_OUTPUT_MAX 255        /* Q0.8 value of 1.0 - 2^-8 */
#define EDGERNN_Q31_ONE_HALF ((int32_t)1 << 30)

/* round(a * b / 2^31): gemmlowp's SaturatingRoundingDoublingHighMul for every (a, b) but
 * (INT32_MIN, INT32_MIN). For a product p >= 0 both are floor((p + 2^30) / 2^31); for p < 0
 * gemmlowp truncates (p + 1 - 2^30) / 2^31 toward zero, -floor((|p| + 2^30 - 1) / 2^31), and
 * floor((p + 2^30) / 2^31) = -ceil((|p| - 2^30) / 2^31) is the same integer. No branch. */
static inline int32_t edgernn_softmax_mul(int32_t a, int32_t b)
{
    return (int32_t)(((int64_t)a * (int64_t)b + EDGERNN_Q31_ONE_HALF) >> 31);
}

/* The same product with b given doubled (2 b in the int32 range): floor((a 2b + 2^31) / 2^32),
 * the high word of one multiply-accumulate. */
static inline int32_t edgernn_softmax_mul_doubled(int32_t a, int32_t b_doubled)
{
    return (int32_t)(((int64_t)a * (int64_t)b_doubled + ((int64_t)1 << 31)) >> 32);
}

/* One Newton-Raphson step for 1 / d in Q2.29, d = half_denominator in Q0.31: x + 4 x (1 - d x),
 * 1 - d x as 2 (1 - d x) (a small correction: doubled it stays in the int32 range). */
static inline int32_t edgernn_softmax_newton_step(int32_t half_denominator, int32_t x)
{
    const uint32_t two_q2 = (uint32_t)1 << 30;
    const int32_t one_minus_doubled =
        (int32_t)(two_q2 - ((uint32_t)edgernn_softmax_mul(half_denominator, x) << 1));
    return x + (int32_t)((uint32_t)edgernn_softmax_mul_doubled(x, one_minus_doubled) << 2);
}

/* 1 / (1 + a) for a in [0, 2^31) (Q0.31 in and out): one_over_one_plus_x_for_x_in_0_1, three
 * Newton-Raphson steps in Q2.29 (written out: a loop makes gcc widen the loop-invariant
 * denominator to 64 bits and multiply in three instructions). Its multiplications never see
 * (INT32_MIN, INT32_MIN) (the half denominator is in [2^30, 2^31)), the steps' corrections
 * stay far inside the int32 range (the shift by two needs no saturation: every even a, each
 * row sum's, gives gemmlowp's bits, checked once over all 2^30 of them and in
 * tests/test_native_softmax.py for the sums of up to 2^23); only the last doubling saturates,
 * at a = 0 (x = 2.0). */
static int32_t edgernn_softmax_reciprocal(int32_t a)
{
    const int32_t forty_eight_over_17 = 1515870810;      /* 48/17 in Q2.29 */
    const int32_t minus_sixty_four_over_17 = -2021161080; /* -32/17 in Q2.29, doubled */
    /* RoundingHalfSum(a, 1.0) = (a + 2^31 - 1 + 1) / 2 = a / 2 + 2^30 for even a >= 0 */
    const int32_t half_denominator = (a >> 1) + EDGERNN_Q31_ONE_HALF;
    int32_t x = forty_eight_over_17 + edgernn_softmax_mul_doubled(half_denominator, minus_sixty_four_over_17);
    x = edgernn_softmax_newton_step(half_denominator, x);
    x = edgernn_softmax_newton_step(half_denominator, x);
    x = edgernn_softmax_newton_step(half_denominator, x);
    return x >= EDGERNN_Q31_ONE_HALF ? INT32_MAX : x * 2; /* Q2.29 x / 2 read as Q0.31 */
}

static int edgernn_count_leading_zeros(uint32_t x)
{
    int n = 0;
    if (x == 0u) {
        return 32;
    }
#if defined(__GNUC__)
    n = __builtin_clz(x); /* one CLZ instruction on Arm */
#else
    while ((x & 0x80000000u) == 0u) {
        x <<= 1;
        ++n;
    }
#endif
    return n;
}

/* TFLM's steps with exp(diff) read from p->exp_table (Q0.31, indexed by max - x, zero past its
 * end: see edgernn_kernels.h). Every exp is >= 0, so TFLM's roundings of nonnegative values
 * are done as "add half, shift". */
void edgernn_softmax_run_s8(const edgernn_softmax_params *p, const int8_t *input, int8_t *output)
{
    const int32_t *table = p->exp_table;
    const uint32_t n_table = (uint32_t)p->table_len;
    const int n = p->n;
    int32_t max_in_row = EDGERNN_INT8_MIN;
    uint32_t sum_of_exps = 0u; /* Q12.19, wraps like TFLM's int32 sum */
    int headroom_plus_one;
    int32_t shifted_scale;
    int exponent;
    int64_t rounding;
    int c;

    for (c = 0; c < n; ++c) {
        max_in_row = input[c] > max_in_row ? input[c] : max_in_row;
    }
    for (c = 0; c < n; ++c) {
        const uint32_t d = (uint32_t)(max_in_row - input[c]);
        if (d < n_table) {
            /* RoundingDivideByPOT(e, 12) of e >= 0 */
            sum_of_exps += ((uint32_t)table[d] + EDGERNN_SOFTMAX_ACCUM_HALF) >> EDGERNN_SOFTMAX_ACCUM_INTEGER_BITS;
        }
    }

    /* 1 / sum_of_exps as a Q0.31 scale and a power of two (TFLM GetReciprocal). */
    headroom_plus_one = edgernn_count_leading_zeros(sum_of_exps);
    shifted_scale = edgernn_softmax_reciprocal((int32_t)((sum_of_exps << headroom_plus_one) - 0x80000000u));
    exponent = EDGERNN_SOFTMAX_ACCUM_INTEGER_BITS - headroom_plus_one + 31 - EDGERNN_SOFTMAX_OUTPUT_BITS;
    if (exponent > 31) {
        /* a sum of 512 or more (512 classes at the row's max at least): every exp / sum rounds to 0 */
        memset(output, EDGERNN_INT8_MIN, (size_t)n);
        return;
    }
    /* RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(scale, e), exponent) of a product
     * P = scale e >= 0: floor((floor((P + 2^30) / 2^31) + 2^(exponent-1)) / 2^exponent), one
     * floor((P + 2^30 + 2^(30+exponent)) / 2^(31+exponent)) (2^(30+exponent) / 2^31 is an
     * integer, and nested floors of divisions by integers are one): the high word of
     * P + rounding, shifted right by exponent - 1. The sum holds the max's 2^19 at least, so
     * exponent >= 23 and 2^(30+exponent) sits in the high word alone. */
    rounding = (int64_t)(((uint64_t)((uint32_t)1 << (exponent - 2)) << 32) | (uint64_t)EDGERNN_Q31_ONE_HALF);

    for (c = 0; c < n; ++c) {
        const uint32_t d = (uint32_t)(max_in_row - input[c]);
        uint32_t unsat = 0u;
        if (d < n_table) {
            unsat = (uint32_t)(((uint64_t)((int64_t)shifted_scale * (int64_t)table[d] + rounding) >> 32)) >>
                    (exponent - 1);
        }
        output[c] = (int8_t)((int32_t)(unsat > EDGERNN_SOFTMAX_OUTPUT_MAX ? EDGERNN_SOFTMAX_OUTPUT_MAX : unsat) +
                             EDGERNN_INT8_MIN);
    }
}

/* ---------------------------------------------------------------------------------------
 * Elementwise int8 (TFLM reference_integer_ops::AddElementwise / SubElementwise /
 * MulElementwise; LOGISTIC and TANH as 256-entry tables)
 * ------------------------------------------------------------------------------------- */

#define EDGERNN_ADD_LEFT_SHIFT 20 /* TFLM's left_shift for int8 ADD/SUB */

void edgernn_add_run_s8(const edgernn_add_params *p, const int8_t *a, const int8_t *b, int8_t *out, int n)
{
    int i;
    for (i = 0; i < n; ++i) {
        const int32_t a_shifted = (int32_t)((uint32_t)(p->input1_offset + a[i]) << EDGERNN_ADD_LEFT_SHIFT);
        const int32_t b_shifted = (int32_t)((uint32_t)(p->input2_offset + b[i]) << EDGERNN_ADD_LEFT_SHIFT);
        const int32_t a_scaled = edgernn_mbqm(a_shifted, p->input1_multiplier, (int)p->input1_shift);
        const int32_t b_scaled = edgernn_mbqm(b_shifted, p->input2_multiplier, (int)p->input2_shift);
        const int32_t raw = p->subtract ? a_scaled - b_scaled : a_scaled + b_scaled;
        const int32_t y = edgernn_mbqm(raw, p->output_multiplier, (int)p->output_shift) + p->output_offset;
        out[i] = (int8_t)edgernn_clamp(y, p->activation_min, p->activation_max);
    }
}

void edgernn_mul_run_s8(const edgernn_mul_params *p, const int8_t *a, const int8_t *b, int8_t *out, int n)
{
    int i;
    for (i = 0; i < n; ++i) {
        const int32_t product = (p->input1_offset + a[i]) * (p->input2_offset + b[i]);
        const int32_t y = edgernn_mbqm(product, p->multiplier, (int)p->shift) + p->output_offset;
        out[i] = (int8_t)edgernn_clamp(y, p->activation_min, p->activation_max);
    }
}

void edgernn_lut_run_s8(const int8_t *table, const int8_t *in, int8_t *out, int n)
{
    int i;
    for (i = 0; i < n; ++i) {
        out[i] = table[(int)in[i] + 128];
    }
}

/* ---------------------------------------------------------------------------------------
 * int16 step ops ("--state int16"): TFLM reference_integer_ops FullyConnected<int16, int8>,
 * AddElementwise / MulElementwise on int16, Logistic / Tanh int16, Requantize.
 * ------------------------------------------------------------------------------------- */

void edgernn_fc_run_s16(const edgernn_fc16_params *p, const int16_t *input, int16_t *output)
{
    int c;
    int i;
    for (c = 0; c < p->n_output; ++c) {
        const int8_t *w = p->weights + (long)c * p->n_input;
        int32_t y;
        if (p->sums64) {
            /* int64 sums; MultiplyByQuantizedMultiplier(int64): 16-bit multiplier, one rounding */
            int64_t acc = p->bias64 != NULL ? p->bias64[c] : 0;
            const int s = (int)p->shift[c];
            for (i = 0; i < p->n_input; ++i) {
                acc += (int64_t)w[i] * input[i];
            }
            y = (int32_t)((acc * p->multiplier[c] + ((int64_t)1 << (s - 1))) >> s);
        } else {
            int32_t acc = p->bias32 != NULL ? p->bias32[c] : 0;
            for (i = 0; i < p->n_input; ++i) {
                acc += (int32_t)w[i] * input[i];
            }
            y = edgernn_mbqm(acc, p->multiplier[c], (int)p->shift[c]);
        }
        output[c] = (int16_t)edgernn_clamp(y, p->activation_min, p->activation_max);
    }
}

#define EDGERNN_ADD_LEFT_SHIFT_S16 15 /* TFLM's left_shift for int16 ADD/SUB */

void edgernn_add_run_s16(const edgernn_add_params *p, const int16_t *a, const int16_t *b, int16_t *out, int n)
{
    int i;
    for (i = 0; i < n; ++i) {
        const int32_t a_shifted = (int32_t)((uint32_t)(p->input1_offset + a[i]) << EDGERNN_ADD_LEFT_SHIFT_S16);
        const int32_t b_shifted = (int32_t)((uint32_t)(p->input2_offset + b[i]) << EDGERNN_ADD_LEFT_SHIFT_S16);
        const int32_t a_scaled = edgernn_mbqm(a_shifted, p->input1_multiplier, (int)p->input1_shift);
        const int32_t b_scaled = edgernn_mbqm(b_shifted, p->input2_multiplier, (int)p->input2_shift);
        const int32_t raw = p->subtract ? a_scaled - b_scaled : a_scaled + b_scaled;
        const int32_t y = edgernn_mbqm(raw, p->output_multiplier, (int)p->output_shift) + p->output_offset;
        out[i] = (int16_t)edgernn_clamp(y, p->activation_min, p->activation_max);
    }
}

void edgernn_mul_run_s16(const edgernn_mul_params *p, const int16_t *a, const int16_t *b, int16_t *out, int n)
{
    int i;
    for (i = 0; i < n; ++i) {
        const int32_t product = (p->input1_offset + a[i]) * (p->input2_offset + b[i]);
        const int32_t y = edgernn_mbqm(product, p->multiplier, (int)p->shift) + p->output_offset;
        out[i] = (int16_t)edgernn_clamp(y, p->activation_min, p->activation_max);
    }
}

void edgernn_logistic_run_s16(int32_t multiplier, int left_shift, const int16_t *in, int16_t *out, int n)
{
    const int32_t round = left_shift > 0 ? ((int32_t)1 << (left_shift - 1)) : 0;
    int i;
    for (i = 0; i < n; ++i) {
        out[i] = edgernn_sigmoid_scaled_s16(((int32_t)in[i] * multiplier + round) >> left_shift);
    }
}

void edgernn_tanh_run_s16(int32_t multiplier, int left_shift, const int16_t *in, int16_t *out, int n)
{
    int i;
    for (i = 0; i < n; ++i) {
        out[i] = edgernn_tanh_s16(in[i], multiplier, left_shift);
    }
}

void edgernn_requantize_run_s16_s8(int32_t multiplier, int shift, int32_t input_zero_point,
                                   int32_t output_zero_point, const int16_t *in, int8_t *out, int n)
{
    int i;
    for (i = 0; i < n; ++i) {
        const int32_t y = edgernn_mbqm((int32_t)in[i] - input_zero_point, multiplier, shift) + output_zero_point;
        out[i] = (int8_t)edgernn_clamp(y, EDGERNN_INT8_MIN, EDGERNN_INT8_MAX);
    }
}

void edgernn_widen_run_s8_s16(const int8_t *in, int16_t *out, int n)
{
    int i;
    for (i = 0; i < n; ++i) {
        out[i] = in[i];
    }
}
