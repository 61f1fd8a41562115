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

/* round(a * b / 2^31), saturating the single overflow case INT32_MIN * INT32_MIN. */
static inline int32_t edgernn_fixed_srdhm(int32_t a, int32_t b)
{
    int64_t ab;
    int64_t nudge;
    if (a == b && a == INT32_MIN) {
        return INT32_MAX;
    }
    ab = (int64_t)a * (int64_t)b;
    nudge = ab >= 0 ? ((int64_t)1 << 30) : (1 - ((int64_t)1 << 30));
    /* C99 division truncates toward zero, as gemmlowp's does. */
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

/* x / 2^exponent rounded to nearest, ties away from zero. */
static inline int32_t edgernn_fixed_rounding_divide_by_pot(int32_t x, int exponent)
{
    const int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    const int32_t remainder = x & mask;
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> exponent) + (remainder > threshold ? 1 : 0);
}

/* x * 2^exponent, saturating to the int32 range (gemmlowp SaturatingRoundingMultiplyByPOT
 * with a positive exponent). */
static inline int32_t edgernn_fixed_saturating_shift_left(int32_t x, int exponent)
{
    const int32_t threshold = (int32_t)(((int64_t)1 << (31 - exponent)) - 1);
    if (x > threshold) {
        return INT32_MAX;
    }
    if (x < -threshold) {
        return INT32_MIN;
    }
    return (int32_t)((uint32_t)x << exponent);
}

static inline int32_t edgernn_fixed_mbqm(int32_t x, int32_t multiplier, int shift)
{
    /* Same result as RoundingDivideByPOT(SaturatingRoundingDoublingHighMul(x << left, m), right)
     * for the positive multipliers QuantizeMultiplier produces, in fewer operations:
     *  - SaturatingRoundingDoublingHighMul(a, m) == (a * m + 2^30) >> 31 (floor): its nudge
     *    and truncating division round ties up for both signs, and a == m == INT32_MIN cannot
     *    happen with m > 0;
     *  - RoundingDivideByPOT(v, e) == (v + 2^(e-1) - (v < 0)) >> e: ties away from zero. */
    const int left_shift = shift > 0 ? shift : 0;
    const int right_shift = shift > 0 ? 0 : -shift;
    /* x * (1 << left_shift) wraps like TFLM's int32 product (done unsigned to stay defined). */
    const int32_t shifted = (int32_t)((uint32_t)x << left_shift);
    const int64_t high = ((int64_t)shifted * multiplier + ((int64_t)1 << 30)) >> 31;
    if (right_shift == 0) {
        return (int32_t)high;
    }
    return (int32_t)((high + ((int64_t)1 << (right_shift - 1)) - (high < 0 ? 1 : 0)) >> right_shift);
}

int32_t edgernn_fixed_mul_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift)
{
    return edgernn_fixed_mbqm(x, multiplier, shift);
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
static const uint16_t edgernn_sigmoid_table[256] = {
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

static inline int16_t edgernn_sigmoid_s16(int16_t x)
{
    /* Q3.12 input scaled by 3: the table covers |x| < 10.7 in steps of 1/24 with 9 bits of
     * interpolation (input_multiplier 0 -> 3, left shift 0 in TFLM's Logistic). Written
     * without data-dependent branches (the index is clamped, then the saturated value
     * selected), as gate values change sign all the time. */
    const int32_t v = (int32_t)x * 3;
    const uint32_t abs_v = (uint32_t)(v < 0 ? -v : v);
    const uint32_t index = abs_v >> 9;
    const uint32_t i0 = index < 254u ? index : 254u;
    const uint32_t a = edgernn_sigmoid_table[i0];
    const uint32_t b = edgernn_sigmoid_table[i0 + 1u];
    const uint32_t interpolated = (a << 9) + (abs_v & 0x1FFu) * (b - a);
    const uint32_t result = index >= 255u ? ((uint32_t)0x7FFF << 10) : interpolated;
    const uint32_t signed_result = v >= 0 ? result + (1u << 9) : (1u << (16 + 9)) - result + (1u << 9) - 1u;
    return (int16_t)(signed_result >> 10);
}

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

static inline int16_t edgernn_tanh_s16(int16_t x, int32_t multiplier, int left_shift)
{
    const int32_t round = left_shift > 0 ? ((int32_t)1 << (left_shift - 1)) : 0;
    const int32_t v = ((int32_t)x * multiplier + round) >> left_shift;
    const uint32_t abs_v = (uint32_t)(v < 0 ? -v : v);
    const uint32_t index = abs_v >> 8;
    const uint32_t i0 = index < 254u ? index : 254u;
    const uint32_t a = edgernn_sigmoid_table[i0];
    const uint32_t b = edgernn_sigmoid_table[i0 + 1u];
    const int32_t interpolated = (int32_t)((a << 8) + (abs_v & 0xFFu) * (b - a));
    const int32_t result = index >= 255u ? ((int32_t)0xFFFF << 8) : interpolated;
    const int32_t signed_result = v >= 0 ? result - (1 << (14 + 9)) + (1 << (9 - 2))
                                         : -result + (1 << (14 + 9)) + (1 << (9 - 2)) - 1;
    return (int16_t)(signed_result >> (9 - 1));
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

static int32_t edgernn_dot_s8(const int8_t *w, const int8_t *x, int n)
{
    int32_t acc = 0;
    int i;
    for (i = 0; i < n; ++i) {
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
        acc = edgernn_fixed_mbqm(acc, p->multiplier[m], (int)p->shift[m]);
        acc += p->output_zero_point;
        output[c] = (int8_t)edgernn_clamp(acc, p->activation_min, p->activation_max);
    }
}

/* ---------------------------------------------------------------------------------------
 * SOFTMAX int8 (TFLM reference_ops::Softmax<int8_t, int8_t>, gemmlowp exp and 1/(1+x))
 * ------------------------------------------------------------------------------------- */

#define EDGERNN_SOFTMAX_DIFF_INTEGER_BITS 5   /* exp() input in Q5.26 */
#define EDGERNN_SOFTMAX_ACCUM_INTEGER_BITS 12 /* sum of exps in Q12.19 */

/* exp(a) for a in [-1/4, 0), Q0.31 in and out: Taylor series around -1/8. */
static int32_t edgernn_fixed_exp_quarter(int32_t a)
{
    const int32_t exp_minus_one_eighth = 1895147668; /* exp(-1/8) in Q0.31 */
    const int32_t one_third = 715827883;             /* 1/3 in Q0.31 */
    const int32_t x = a + ((int32_t)1 << 28);        /* a + 1/8 */
    const int32_t x2 = edgernn_fixed_srdhm(x, x);
    const int32_t x3 = edgernn_fixed_srdhm(x2, x);
    const int32_t x4 = edgernn_fixed_srdhm(x2, x2);
    const int32_t x4_over_4 = edgernn_fixed_rounding_divide_by_pot(x4, 2);
    const int32_t poly = edgernn_fixed_rounding_divide_by_pot(
        edgernn_fixed_srdhm(x4_over_4 + x3, one_third) + x2, 1);
    return exp_minus_one_eighth + edgernn_fixed_srdhm(exp_minus_one_eighth, x + poly);
}

/* exp(a) for a <= 0 in Q5.26, result in Q0.31 (gemmlowp exp_on_negative_values). */
static int32_t edgernn_fixed_exp_on_negative_values(int32_t a)
{
    /* exp(-2^k) in Q0.31 for k = -2..4: the barrel shifter's multipliers. */
    static const int32_t exp_of_minus_pow2[7] = {
        1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242};
    const int fractional_bits = 31 - EDGERNN_SOFTMAX_DIFF_INTEGER_BITS;
    const int32_t one_quarter = (int32_t)1 << (fractional_bits - 2);
    const int32_t mask = one_quarter - 1;
    const int32_t a_mod_quarter_minus_quarter = (a & mask) - one_quarter;
    const int32_t remainder = a_mod_quarter_minus_quarter - a;
    int32_t result = edgernn_fixed_exp_quarter(
        edgernn_fixed_saturating_shift_left(a_mod_quarter_minus_quarter, EDGERNN_SOFTMAX_DIFF_INTEGER_BITS));
    int k;
    for (k = -2; k <= 4; ++k) {
        if (k < EDGERNN_SOFTMAX_DIFF_INTEGER_BITS &&
            (remainder & ((int32_t)1 << (fractional_bits + k))) != 0) {
            result = edgernn_fixed_srdhm(result, exp_of_minus_pow2[k + 2]);
        }
    }
    return a == 0 ? INT32_MAX : result;
}

/* 1 / (1 + a) for a in [0, 1), Q0.31 in and out: three Newton-Raphson steps in Q2.29. */
static int32_t edgernn_fixed_one_over_one_plus_x(int32_t a)
{
    const int32_t forty_eight_over_17 = 1515870810;      /* 48/17 in Q2.29 */
    const int32_t minus_thirty_two_over_17 = -1010580540; /* -32/17 in Q2.29 */
    const int32_t one_q2 = (int32_t)1 << 29;
    /* RoundingHalfSum(a, 1.0): (a + INT32_MAX) / 2 rounded away from zero. */
    const int64_t sum = (int64_t)a + (int64_t)INT32_MAX;
    const int32_t half_denominator = (int32_t)((sum + (sum >= 0 ? 1 : -1)) / 2);
    int32_t x = forty_eight_over_17 + edgernn_fixed_srdhm(half_denominator, minus_thirty_two_over_17);
    int i;
    for (i = 0; i < 3; ++i) {
        const int32_t half_denominator_times_x = edgernn_fixed_srdhm(half_denominator, x);
        const int32_t one_minus = one_q2 - half_denominator_times_x;
        x = x + edgernn_fixed_saturating_shift_left(edgernn_fixed_srdhm(x, one_minus), 2);
    }
    /* x / 2 back to Q0.31: reinterpret as Q1.30, then a saturating shift by one. */
    return edgernn_fixed_saturating_shift_left(x, 1);
}

static int edgernn_count_leading_zeros(uint32_t x)
{
    int n = 0;
    if (x == 0u) {
        return 32;
    }
    while ((x & 0x80000000u) == 0u) {
        x <<= 1;
        ++n;
    }
    return n;
}

void edgernn_softmax_run_s8(const edgernn_softmax_params *p, const int8_t *input, int8_t *output)
{
    int8_t max_in_row = EDGERNN_INT8_MIN;
    int32_t sum_of_exps = 0; /* Q12.19 */
    int headroom_plus_one;
    int num_bits_over_unit;
    int32_t shifted_scale;
    int exponent;
    int c;

    for (c = 0; c < p->n; ++c) {
        max_in_row = input[c] > max_in_row ? input[c] : max_in_row;
    }
    for (c = 0; c < p->n; ++c) {
        const int32_t diff = (int32_t)input[c] - max_in_row;
        if (diff >= p->diff_min) {
            const int32_t scaled = edgernn_fixed_srdhm(
                (int32_t)((uint32_t)diff << p->input_left_shift), p->input_multiplier);
            sum_of_exps += edgernn_fixed_rounding_divide_by_pot(
                edgernn_fixed_exp_on_negative_values(scaled), EDGERNN_SOFTMAX_ACCUM_INTEGER_BITS);
        }
    }

    /* 1 / sum_of_exps as a Q0.31 scale and a power of two (TFLM GetReciprocal). */
    headroom_plus_one = edgernn_count_leading_zeros((uint32_t)sum_of_exps);
    num_bits_over_unit = EDGERNN_SOFTMAX_ACCUM_INTEGER_BITS - headroom_plus_one;
    shifted_scale = edgernn_fixed_one_over_one_plus_x(
        (int32_t)(((uint32_t)sum_of_exps << headroom_plus_one) - ((uint32_t)1 << 31)));
    exponent = num_bits_over_unit + 31 - 8;

    for (c = 0; c < p->n; ++c) {
        const int32_t diff = (int32_t)input[c] - max_in_row;
        if (diff >= p->diff_min) {
            const int32_t scaled = edgernn_fixed_srdhm(
                (int32_t)((uint32_t)diff << p->input_left_shift), p->input_multiplier);
            const int32_t exp_in_0 = edgernn_fixed_exp_on_negative_values(scaled);
            const int32_t unsat = edgernn_fixed_rounding_divide_by_pot(
                edgernn_fixed_srdhm(shifted_scale, exp_in_0), exponent);
            output[c] = (int8_t)edgernn_clamp(unsat + EDGERNN_INT8_MIN, EDGERNN_INT8_MIN, EDGERNN_INT8_MAX);
        } else {
            output[c] = (int8_t)EDGERNN_INT8_MIN;
        }
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
        const int32_t a_scaled = edgernn_fixed_mbqm(a_shifted, p->input1_multiplier, (int)p->input1_shift);
        const int32_t b_scaled = edgernn_fixed_mbqm(b_shifted, p->input2_multiplier, (int)p->input2_shift);
        const int32_t raw = p->subtract ? a_scaled - b_scaled : a_scaled + b_scaled;
        const int32_t y = edgernn_fixed_mbqm(raw, p->output_multiplier, (int)p->output_shift) + p->output_offset;
        out[i] = (int8_t)edgernn_clamp(y, p->activation_min, p->activation_max);
    }
}

void edgernn_mul_run_s8(const edgernn_mul_params *p, const int8_t *a, const int8_t *b, int8_t *out, int n)
{
    int i;
    for (i = 0; i < n; ++i) {
        const int32_t product = (p->input1_offset + a[i]) * (p->input2_offset + b[i]);
        const int32_t y = edgernn_fixed_mbqm(product, p->multiplier, (int)p->shift) + p->output_offset;
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
 * LSTM step (TFLM lstm_eval.h LstmStep<int8_t, int8_t, int16_t, int32_t>)
 * ------------------------------------------------------------------------------------- */

/* Masking n tells the compiler it is a multiple of EDGERNN_ROW_ALIGN, which lets it turn the
 * loop into 16-bit multiply-adds with no scalar remainder (pmaddwd on x86 at -O2). Kept as an
 * out-of-line function: inlined into the LSTM step, gcc no longer vectorizes it. */
void edgernn_dot4_s8_s16(const int8_t *w, const int16_t *v, int n, int32_t *out)
{
    const int8_t *w1 = w + n;
    const int8_t *w2 = w + 2 * n;
    const int8_t *w3 = w + 3 * n;
    const int m = (int)((unsigned)n & ~(unsigned)(EDGERNN_ROW_ALIGN - 1));
    int32_t s0 = 0;
    int32_t s1 = 0;
    int32_t s2 = 0;
    int32_t s3 = 0;
    int j;
    for (j = 0; j < m; ++j) {
        const int32_t vj = v[j];
        s0 += (int32_t)w[j] * vj;
        s1 += (int32_t)w1[j] * vj;
        s2 += (int32_t)w2[j] * vj;
        s3 += (int32_t)w3[j] * vj;
    }
    out[0] = s0;
    out[1] = s1;
    out[2] = s2;
    out[3] = s3;
}

/* edgernn_fixed_mbqm with the shift split once per gate: left shift, right shift and the two
 * rounding constants of RoundingDivideByPOT (2^(r-1) for x >= 0, 2^(r-1) - 1 below zero). */
typedef struct {
    int32_t multiplier;
    int left;
    int right;
    int64_t round_up;
    int64_t round_down;
} edgernn_rescale;

static void edgernn_rescale_init(edgernn_rescale *r, int32_t multiplier, int32_t shift)
{
    r->multiplier = multiplier;
    r->left = shift > 0 ? (int)shift : 0;
    r->right = shift > 0 ? 0 : (int)-shift;
    r->round_up = r->right > 0 ? ((int64_t)1 << (r->right - 1)) : 0;
    r->round_down = r->right > 0 ? r->round_up - 1 : 0;
}

static inline int32_t edgernn_rescale_apply(const edgernn_rescale *r, int32_t x)
{
    const int32_t shifted = (int32_t)((uint32_t)x << r->left);
    const int64_t high = ((int64_t)shifted * r->multiplier + ((int64_t)1 << 30)) >> 31;
    return (int32_t)((high + (high < 0 ? r->round_down : r->round_up)) >> r->right);
}

/* Elementwise product of two int16 values requantized (MulElementwise). */
static inline int32_t edgernn_mul_s16(int32_t a, int32_t b, int32_t multiplier, int shift)
{
    return edgernn_fixed_mbqm(a * b, multiplier, shift);
}

void edgernn_lstm_step(const edgernn_lstm_params *p, const int8_t *x, int8_t *hidden,
                       int16_t *cell, int16_t *scratch)
{
    /* Parameters copied to locals: the int8 stores below may alias anything, and locals keep
     * the compiler from reloading them after every store. */
    const int n_input = p->n_input;
    const int n_cell = p->n_cell;
    const int input_stride = p->input_stride;
    const int cell_stride = p->cell_stride;
    const int8_t *const input_weights = p->input_weights;
    const int8_t *const recurrent_weights = p->recurrent_weights;
    const int32_t *const input_bias = p->input_bias;
    const int32_t *const recurrent_bias = p->recurrent_bias;
    const int32_t forget_mul_multiplier = p->forget_mul_multiplier;
    const int forget_mul_shift = (int)p->forget_mul_shift;
    const int32_t input_mul_multiplier = p->input_mul_multiplier;
    const int input_mul_shift = (int)p->input_mul_shift;
    const int32_t hidden_mul_multiplier = p->hidden_mul_multiplier;
    const int hidden_mul_shift = (int)p->hidden_mul_shift;
    const int32_t hidden_zero_point = p->hidden_zero_point;
    const int32_t cell_clip = p->cell_clip;
    const int32_t cell_tanh_multiplier = p->cell_tanh_multiplier;
    const int cell_tanh_left_shift = (int)p->cell_tanh_left_shift;
    edgernn_rescale from_input[4];
    edgernn_rescale from_hidden[4];
    int16_t *x16 = scratch;
    int16_t *h16 = scratch + input_stride;
    int u;
    int g;
    int j;

    for (g = 0; g < 4; ++g) {
        edgernn_rescale_init(&from_input[g], p->input_multiplier[g], p->input_shift[g]);
        edgernn_rescale_init(&from_hidden[g], p->recurrent_multiplier[g], p->recurrent_shift[g]);
    }
    /* Widen this step's input and the previous hidden state once (zero padding). */
    for (j = 0; j < input_stride; ++j) {
        x16[j] = (int16_t)(j < n_input ? x[j] : 0);
    }
    for (j = 0; j < cell_stride; ++j) {
        h16[j] = (int16_t)(j < n_cell ? hidden[j] : 0);
    }

    for (u = 0; u < n_cell; ++u) {
        int32_t pre[4];
        int32_t f;
        int32_t i;
        int32_t c;
        int32_t o;
        int32_t cell_tanh;
        /* Gate pre-activations in Q3.12 (CalculateLstmGate: input FC + recurrent FC, each
         * requantized to int16, then AddElementWise with saturation). */
        int32_t acc_x[4];
        int32_t acc_h[4];
        edgernn_dot4_s8_s16(input_weights + (long)u * 4 * input_stride, x16, input_stride, acc_x);
        edgernn_dot4_s8_s16(recurrent_weights + (long)u * 4 * cell_stride, h16, cell_stride, acc_h);
        for (g = 0; g < 4; ++g) {
            const int32_t from_x = edgernn_clamp(edgernn_rescale_apply(&from_input[g], input_bias[g * n_cell + u] + acc_x[g]),
                                                 EDGERNN_INT16_MIN, EDGERNN_INT16_MAX);
            const int32_t from_h = edgernn_clamp(edgernn_rescale_apply(&from_hidden[g], recurrent_bias[g * n_cell + u] + acc_h[g]),
                                                 EDGERNN_INT16_MIN, EDGERNN_INT16_MAX);
            pre[g] = edgernn_clamp(from_x + from_h, EDGERNN_INT16_MIN, EDGERNN_INT16_MAX);
        }
        /* forget, input, output = sigmoid(.), cell gate = tanh(.) at scale 2^-12 (x3, no
         * shift); all Q0.15 */
        f = edgernn_sigmoid_s16((int16_t)pre[EDGERNN_LSTM_FORGET_GATE]);
        i = edgernn_sigmoid_s16((int16_t)pre[EDGERNN_LSTM_INPUT_GATE]);
        c = edgernn_tanh_s16((int16_t)pre[EDGERNN_LSTM_CELL_GATE], 3, 0);
        o = edgernn_sigmoid_s16((int16_t)pre[EDGERNN_LSTM_OUTPUT_GATE]);
        /* cell = clip(f * cell + i * g): two saturating Muls, a saturating Add (UpdateLstmCell) */
        c = edgernn_clamp(edgernn_mul_s16(i, c, input_mul_multiplier, input_mul_shift),
                          EDGERNN_INT16_MIN, EDGERNN_INT16_MAX);
        c += edgernn_clamp(edgernn_mul_s16(f, cell[u], forget_mul_multiplier, forget_mul_shift),
                           EDGERNN_INT16_MIN, EDGERNN_INT16_MAX);
        c = edgernn_clamp(c, EDGERNN_INT16_MIN, EDGERNN_INT16_MAX);
        if (cell_clip > 0) {
            c = edgernn_clamp(c, -cell_clip, cell_clip);
        }
        cell[u] = (int16_t)c;
        /* hidden = o * tanh(cell) requantized to int8 (UpdateLstmHidden); the dot products
         * above read the int16 copy of the previous hidden state, so this is safe in place. */
        cell_tanh = edgernn_tanh_s16((int16_t)c, cell_tanh_multiplier, cell_tanh_left_shift);
        hidden[u] = (int8_t)edgernn_clamp(
            hidden_zero_point + edgernn_mul_s16(cell_tanh, o, hidden_mul_multiplier, hidden_mul_shift),
            EDGERNN_INT8_MIN, EDGERNN_INT8_MAX);
    }
}
