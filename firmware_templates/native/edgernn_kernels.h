/*
 * edgernn_kernels.h - int8 recurrent-network kernels for microcontrollers (C99).
 *
 * Part of edgernn's native backend: `edgernn emit --backend native` copies this file and
 * edgernn_kernels.c next to the generated NAME.h / NAME.c. The arithmetic is that of the
 * TensorFlow Lite Micro reference kernels, so the results are bit-exact with the TFLM
 * interpreter running the same int8 .tflite:
 *
 *   - UNIDIRECTIONAL_SEQUENCE_LSTM, int8 activations x int8 weights -> int16 cell state
 *     (TFLM "8x8_16"): int16 gate pre-activations in Q3.12, TFLM's int16 sigmoid/tanh
 *     (interpolated 256-entry table), int16 cell state, int8 hidden state.
 *   - FULLY_CONNECTED int8, per-tensor or per-channel requantization.
 *   - SOFTMAX int8 -> int8: gemmlowp fixed-point exp (tabulated) and reciprocal.
 *
 * The LSTM step here (edgernn_lstm_step) is the reference form, written as TFLM's formulas; the
 * fast kernels (edgernn_fast.h, edgernn_pairs.h on Cortex-M4/M7/M33, edgernn_rows.h on Helium
 * and plain C) compute the same bits with fewer instructions, and the generated NAME.c uses
 * them unless a layer falls outside their checked preconditions (its comment then says why).
 *
 * No dynamic memory, no recursion, no floating point. Every buffer is passed in by the caller
 * (the generated model file owns them as static arrays sized at generation time).
 *
 * Right shifts of negative numbers are arithmetic on every compiler edgernn supports (gcc,
 * clang, arm-none-eabi-gcc), as TFLM itself assumes.
 */
#ifndef EDGERNN_KERNELS_H
#define EDGERNN_KERNELS_H

#include <stdint.h>
#include <string.h>

/* Cores with the Arm DSP extension (Cortex-M4/M7/M33...) get SMLAD dot products; Arm cores
 * with saturation instructions (Cortex-M3 and up) clamp with SSAT. Elsewhere the plain C99
 * loops below are written for compilers to vectorize (gcc -O2: SSE2 on x86-64). Results are
 * the same on every path (integer sums are exact in any order). -DEDGERNN_USE_SMLAD=0 or
 * -DEDGERNN_USE_SSAT=0 selects the plain C code. */
#ifndef EDGERNN_USE_SMLAD
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#define EDGERNN_USE_SMLAD 1
#else
#define EDGERNN_USE_SMLAD 0
#endif
#endif
#ifndef EDGERNN_USE_SSAT
#if defined(__ARM_FEATURE_SAT) && __ARM_FEATURE_SAT
#define EDGERNN_USE_SSAT 1
#else
#define EDGERNN_USE_SSAT 0
#endif
#endif
#if EDGERNN_USE_SMLAD || EDGERNN_USE_SSAT
#include <arm_acle.h>
#endif

/* The LSTM step is inlined into the generated code so that its parameters fold to constants,
 * and gcc fully unrolls its short fixed-count loops (-O2 alone leaves them rolled). */
#if defined(__GNUC__)
#define EDGERNN_ALWAYS_INLINE __attribute__((always_inline))
#else
#define EDGERNN_ALWAYS_INLINE
#endif
#if defined(__GNUC__) && !defined(__clang__)
#define EDGERNN_PRAGMA(x) _Pragma(#x)
#define EDGERNN_UNROLL(n) EDGERNN_PRAGMA(GCC unroll n)
#else
#define EDGERNN_UNROLL(n)
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Status codes returned by the generated NAME_* functions. */
#define EDGERNN_OK 0
#define EDGERNN_ERR_ARGUMENT 1 /* NULL pointer or T < 1 */
#define EDGERNN_ERR_UNSUPPORTED 2 /* NAME_step of a Bidirectional model: use NAME_run */

/* ---------------------------------------------------------------------------------------
 * Fixed-point helpers (TFLM kernels/internal/common.h, gemmlowp fixedpoint.h).
 * ------------------------------------------------------------------------------------- */

/* x * multiplier * 2^shift with the multiplier in Q0.31 (TFLM MultiplyByQuantizedMultiplier,
 * double rounding: saturating rounding doubling high mul, then rounding right shift). */
int32_t edgernn_fixed_mul_by_quantized_multiplier(int32_t x, int32_t multiplier, int shift);

/* ---------------------------------------------------------------------------------------
 * Activations on int16 values (Q3.12 in, Q0.15 out), TFLM reference_integer_ops.
 * ------------------------------------------------------------------------------------- */

/* Sigmoid of Q3.12 values in place (TFLM Logistic int16 with input_multiplier 0 -> 3). */
void edgernn_activation_sigmoid_s16(int16_t *data, int n);

/* Tanh of n int16 values: v = (x * multiplier + round) >> left_shift brings the input to the
 * table's scale (TFLM Tanh int16 after its power-of-two preprocessing). */
void edgernn_activation_tanh_s16(const int16_t *input, int16_t *output, int n,
                                 int32_t multiplier, int left_shift);

/* One value of each (used by the fused LSTM step). */
int16_t edgernn_activation_sigmoid_one_s16(int16_t x);
int16_t edgernn_activation_tanh_one_s16(int16_t x, int32_t multiplier, int left_shift);

/* ---------------------------------------------------------------------------------------
 * FULLY_CONNECTED int8 -> int8.
 * ------------------------------------------------------------------------------------- */
typedef struct {
    int n_input;                  /* accumulation depth */
    int n_output;                 /* output channels */
    const int8_t *weights;        /* [n_output][n_input], symmetric (zero point 0) */
    const int32_t *bias;          /* [n_output]: bias - input_zero_point * row sum (folded) */
    const int32_t *multiplier;    /* [n_multipliers] Q0.31 requantization multipliers */
    const int32_t *shift;         /* [n_multipliers] exponents (negative: right shift) */
    int n_multipliers;            /* 1 (per-tensor) or n_output (per-channel) */
    int32_t output_zero_point;
    int32_t activation_min;       /* fused activation range, in output quanta */
    int32_t activation_max;
} edgernn_fc_params;

void edgernn_fc_run_s8(const edgernn_fc_params *p, const int8_t *input, int8_t *output);

/* sum w[i] * x[i] for i < n, int8 x int8 in int32 (SMLAD on cores with the DSP extension): the
 * FULLY_CONNECTED rows' and the reference convolutions' dot product. */
int32_t edgernn_dot_s8(const int8_t *w, const int8_t *x, int n);

/* ---------------------------------------------------------------------------------------
 * SOFTMAX int8 -> int8 (output scale 1/256, zero point -128).
 *
 * TFLM's exp() term depends on diff = x - max(row) only, an int in [-255, 0]: the generated
 * model holds it as a table (computed at generation time by TFLM's fixed-point steps:
 * PreprocessSoftmaxScaling's multiplier, gemmlowp exp_on_negative_values in Q5.26 -> Q0.31),
 * entry d = exp(-d scaled), 0 <= d < table_len. Entries past the table are zero: TFLM's
 * diff < diff_min, or an exp below 2^11 that adds nothing to the row sum and gives -128.
 * ------------------------------------------------------------------------------------- */
typedef struct {
    int n;                        /* classes */
    const int32_t *exp_table;     /* Q0.31 exp(beta * input_scale * -d), d = max(row) - x */
    int table_len;                /* 1 to 256 */
} edgernn_softmax_params;

void edgernn_softmax_run_s8(const edgernn_softmax_params *p, const int8_t *input, int8_t *output);

/* ---------------------------------------------------------------------------------------
 * Elementwise int8 ops of the GRU / SimpleRNN step graphs (TFLM reference_integer_ops).
 * ------------------------------------------------------------------------------------- */

/* ADD / SUB: both inputs (minus their zero points) shifted left by 20 bits, scaled by their
 * scale over twice the larger input scale, added (subtracted), requantized to the output. */
typedef struct {
    int32_t input1_offset;        /* -input1 zero point */
    int32_t input2_offset;        /* -input2 zero point */
    int32_t input1_multiplier;
    int32_t input1_shift;
    int32_t input2_multiplier;
    int32_t input2_shift;
    int32_t output_multiplier;
    int32_t output_shift;
    int32_t output_offset;        /* output zero point */
    int32_t activation_min;
    int32_t activation_max;
    int32_t subtract;             /* 0: input1 + input2, 1: input1 - input2 */
} edgernn_add_params;

void edgernn_add_run_s8(const edgernn_add_params *p, const int8_t *a, const int8_t *b, int8_t *out, int n);

/* MUL: (a - za) * (b - zb) requantized by s_a * s_b / s_out, plus the output zero point. */
typedef struct {
    int32_t input1_offset;
    int32_t input2_offset;
    int32_t multiplier;
    int32_t shift;
    int32_t output_offset;
    int32_t activation_min;
    int32_t activation_max;
} edgernn_mul_params;

void edgernn_mul_run_s8(const edgernn_mul_params *p, const int8_t *a, const int8_t *b, int8_t *out, int n);

/* int8 -> int8 functions of one input (LOGISTIC, TANH): TFLM's result for each of the 256
 * inputs, tabulated at generation time; out[i] = table[in[i] + 128]. */
void edgernn_lut_run_s8(const int8_t *table, const int8_t *in, int8_t *out, int n);

/* ---------------------------------------------------------------------------------------
 * int16 ops of the WHILE-graph step ("--state int16": int16 state and step arithmetic,
 * int8 weights; TFLM reference_integer_ops, zero points 0).
 * ------------------------------------------------------------------------------------- */

/* FULLY_CONNECTED 16x8: int16 in, int8 weights, int16 out. With an int64 bias or none (TFLM
 * picks the sums' type from the bias) the sums are int64 and requantized with the multiplier
 * cut to 16 bits: (acc * multiplier + 2^(shift - 1)) >> shift, multiplier and shift
 * precomputed that way. With an int32 bias, int32 sums and the usual double rounding. */
typedef struct {
    int n_input;
    int n_output;
    const int8_t *weights;        /* [n_output][n_input], symmetric */
    int sums64;                   /* 1: int64 sums (bias64 or none), 0: int32 sums (bias32) */
    const int64_t *bias64;        /* [n_output] or NULL */
    const int32_t *bias32;        /* [n_output] or NULL */
    const int32_t *multiplier;    /* [n_output]: 16-bit (int64 sums) or Q0.31 (int32 sums) */
    const int32_t *shift;         /* [n_output]: total right shift (int64) or exponent (int32) */
    int32_t activation_min;
    int32_t activation_max;
} edgernn_fc16_params;

void edgernn_fc_run_s16(const edgernn_fc16_params *p, const int16_t *input, int16_t *output);

/* ADD / SUB / MUL on int16 (the same parameters as the int8 kernels; ADD / SUB shift left by
 * 15 instead of 20). */
void edgernn_add_run_s16(const edgernn_add_params *p, const int16_t *a, const int16_t *b, int16_t *out, int n);
void edgernn_mul_run_s16(const edgernn_mul_params *p, const int16_t *a, const int16_t *b, int16_t *out, int n);

/* LOGISTIC / TANH int16 -> int16 (output Q0.15): v = (x * multiplier + round) >> left_shift
 * brings the input to the table's scale (TFLM's Prepare; a power-of-two scale's multiplier 0
 * is passed as 3 << shift with shift 0). */
void edgernn_logistic_run_s16(int32_t multiplier, int left_shift, const int16_t *in, int16_t *out, int n);
void edgernn_tanh_run_s16(int32_t multiplier, int left_shift, const int16_t *in, int16_t *out, int n);

/* QUANTIZE int16 -> int8: MultiplyByQuantizedMultiplier(x - in_zp) + out_zp, clamped. */
void edgernn_requantize_run_s16_s8(int32_t multiplier, int shift, int32_t input_zero_point,
                                   int32_t output_zero_point, const int16_t *in, int8_t *out, int n);

/* CAST int8 -> int16: the values unchanged. */
void edgernn_widen_run_s8_s16(const int8_t *in, int16_t *out, int n);

/* ---------------------------------------------------------------------------------------
 * LSTM cell, TFLM UNIDIRECTIONAL_SEQUENCE_LSTM integer kernel (8x8_16), one time step.
 * ------------------------------------------------------------------------------------- */

/* Weight rows are zero-padded to a multiple of EDGERNN_ROW_ALIGN columns and the step's input
 * and hidden vectors are widened to int16 (also zero-padded), so every dot product is a
 * fixed-length loop of 16-bit multiply-adds: 16 int8 weights per vector (pmaddwd on x86, which
 * gcc vectorizes only for a multiple of 16), or, on cores with the Arm DSP extension
 * (Cortex-M4/M7/M33), four int8 weights per 32-bit load, two SXTB16 and two SMLAD per four
 * multiply-accumulates, over the columns rounded up to 4 only (the rest is zero padding). */
#define EDGERNN_ROW_ALIGN 16

enum { EDGERNN_LSTM_INPUT_GATE = 0, EDGERNN_LSTM_FORGET_GATE = 1, EDGERNN_LSTM_CELL_GATE = 2,
       EDGERNN_LSTM_OUTPUT_GATE = 3 };

typedef struct {
    int n_input;
    int n_cell;
    int input_stride;                   /* n_input rounded up to a multiple of EDGERNN_ROW_ALIGN */
    int cell_stride;                    /* n_cell rounded up to a multiple of EDGERNN_ROW_ALIGN */
    /* Gates in TFLM's order (input, forget, cell, output), each gate's rows together. */
    const int8_t *input_weights;        /* [4][n_cell][input_stride] */
    const int32_t *input_bias;          /* [4][n_cell] gate bias - input_zero_point * row sum */
    const int8_t *recurrent_weights;    /* [4][n_cell][cell_stride] */
    const int32_t *recurrent_bias;      /* [4][n_cell] -hidden_zero_point * row sum */
    int32_t input_multiplier[4];        /* per gate: input_scale * w_scale / 2^-12 as Q0.31 */
    int32_t input_shift[4];
    int32_t recurrent_multiplier[4];    /* per gate: hidden_scale * w_scale / 2^-12 as Q0.31 */
    int32_t recurrent_shift[4];
    int32_t forget_mul_multiplier;      /* forget (Q0.15) x cell -> cell scale */
    int32_t forget_mul_shift;
    int32_t input_mul_multiplier;       /* input gate (Q0.15) x cell gate (Q0.15) -> cell scale */
    int32_t input_mul_shift;
    int32_t hidden_mul_multiplier;      /* output gate (Q0.15) x tanh(cell) (Q0.15) -> hidden */
    int32_t hidden_mul_shift;
    int32_t hidden_zero_point;
    int32_t cell_clip;                  /* quantized |cell| bound; 0: no clipping */
    int32_t cell_tanh_multiplier;       /* brings the cell state to tanh's input scale */
    int32_t cell_tanh_left_shift;
} edgernn_lstm_params;

/* One step: reads x[n_input] and the state (hidden[n_cell] int8, cell[n_cell] int16) and
 * updates the state in place. Scratch: vectors holds input_stride + cell_stride int16 values,
 * acc 2 n_cell int32 values, gates 4 n_cell int16 values. Same results as TFLM's LstmStep
 * (forget, input and cell gates, cell update, output gate, hidden update), each gate's two
 * fully connected products requantized and saturated to int16 separately before their
 * saturating sum.
 *
 * Defined below as a static inline function: the generated NAME.c calls it with a pointer to
 * its `static const` parameters, so once inlined every size, shift and multiplier is a
 * compile-time constant (fixed trip counts, constant shifts), and the elementwise stages run
 * as loops over the units that compilers vectorize (SSE2 on x86-64). */
static inline EDGERNN_ALWAYS_INLINE void edgernn_lstm_step(const edgernn_lstm_params *p, const int8_t *x,
                                                            int8_t *hidden, int16_t *cell, int16_t *vectors,
                                                            int32_t *acc, int16_t *gates);

/* ---------------------------------------------------------------------------------------
 * Inline helpers of the LSTM step (not part of the API).
 * ------------------------------------------------------------------------------------- */

/* sigmoid(i / 24) in Q0.16 for i = 0..255: TFLM's sigmoid_table_uint16, in edgernn_kernels.c. */
extern const uint16_t edgernn_sigmoid_table[256];

/* v saturated to the int16 / int8 range. */
static inline int32_t edgernn_clamp_s16(int32_t v)
{
#if EDGERNN_USE_SSAT
    return __ssat(v, 16);
#else
    return v < -32768 ? -32768 : (v > 32767 ? 32767 : v);
#endif
}

static inline int32_t edgernn_clamp_s8(int32_t v)
{
#if EDGERNN_USE_SSAT
    return __ssat(v, 8);
#else
    return v < -128 ? -128 : (v > 127 ? 127 : v);
#endif
}

/* TFLM MultiplyByQuantizedMultiplier for the positive multipliers QuantizeMultiplier
 * produces, in fewer operations with the same results:
 *  - SaturatingRoundingDoublingHighMul(a, m) == (a * m + 2^30) >> 31 (floor): its nudge and
 *    truncating division round ties up for both signs, a == m == INT32_MIN cannot happen with
 *    m > 0, and |a * m| < 2^62 keeps the result in the int32 range;
 *  - RoundingDivideByPOT(v, e) == (v >> e) + ((v & (2^e - 1)) + 2^(e-1) - (v < 0)) >> e: ties
 *    away from zero; the second term, 0 or 1, is computed unsigned (below 2^32 for e <= 31).
 * With a constant shift (the inlined LSTM step) the branches fold away. */
static inline int32_t edgernn_mbqm(int32_t x, int32_t multiplier, int shift)
{
    const int left_shift = shift > 0 ? shift : 0;
    const int right_shift = shift > 0 ? 0 : -shift;
    /* x * (1 << left_shift) wraps like TFLM's int32 product (done unsigned to stay defined). */
    const int32_t shifted = (int32_t)((uint32_t)x << left_shift);
#if defined(__arm__)
    /* one SMLAL */
    const int32_t high = (int32_t)(((int64_t)shifted * multiplier + ((int64_t)1 << 30)) >> 31);
#else
    /* The same product as unsigned 32 x 32 -> 64 bits, which SSE2 vectorizes (pmuludq): a
     * negative x reads as x + 2^32, which adds m 2^32 to the product and 2m to the result. */
    const uint64_t product = (uint64_t)(uint32_t)shifted * (uint32_t)multiplier + ((uint64_t)1 << 30);
    const int32_t high = (int32_t)((uint32_t)(product >> 31) - (shifted < 0 ? 2u * (uint32_t)multiplier : 0u));
#endif
    uint32_t mask;
    if (right_shift == 0) {
        return high;
    }
    mask = ((uint32_t)1 << right_shift) - 1u;
    return (high >> right_shift) +
           (int32_t)((((uint32_t)high & mask) + (mask >> 1) + 1u - ((uint32_t)high >> 31)) >> right_shift);
}

/* TFLM Logistic int16 on an input already scaled to the table (24 entries per unit, 9 bits of
 * interpolation). Branch-free (the index is clamped, then the saturated value selected), as gate
 * values change sign all the time. */
static inline int16_t edgernn_sigmoid_scaled_s16(int32_t v)
{
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

/* TFLM Logistic int16 on a Q3.12 input (input_multiplier 0 -> 3, no shift): the table covers
 * |x| < 10.7 in steps of 1/24 with 9 bits of interpolation. */
static inline int16_t edgernn_sigmoid_s16(int16_t x)
{
    return edgernn_sigmoid_scaled_s16((int32_t)x * 3);
}

/* TFLM Tanh int16: v = (x * multiplier + round) >> left_shift brings the input to the table's
 * scale, tanh(v) = 2 sigmoid(2 v) - 1 read from the same table with 8 bits of interpolation. */
static inline int16_t edgernn_tanh_scaled_s16(int32_t v);

static inline int16_t edgernn_tanh_s16(int16_t x, int32_t multiplier, int left_shift)
{
    const int32_t round = left_shift > 0 ? ((int32_t)1 << (left_shift - 1)) : 0;
    return edgernn_tanh_scaled_s16(((int32_t)x * multiplier + round) >> left_shift);
}

/* TFLM Tanh int16 on an input already scaled to the table: the body of edgernn_tanh_s16. */
static inline int16_t edgernn_tanh_scaled_s16(int32_t v)
{
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

/* v[0..n) widened to int16 into out[0..stride), zero-padded. With SMLAD, each group of four
 * is stored as (v0, v2, v1, v3): the order in which SXTB16 unpacks four int8 weights. */
static inline void edgernn_widen_s8(const int8_t *v, int n, int stride, int16_t *out)
{
    int j;
    for (j = 0; j < stride; ++j) {
#if EDGERNN_USE_SMLAD
        const int src = (j & ~3) | ((j & 1) << 1) | ((j & 2) >> 1);
#else
        const int src = j;
#endif
        out[j] = (int16_t)(src < n ? v[src] : 0);
    }
}

#if EDGERNN_USE_SMLAD
/* int8 lanes 1 and 3 of w sign-extended to int16 lanes 0 and 1 (SXTB16 with its operand rotated
 * by 8 bits: one instruction; ACLE's __sxtb16 has no rotation, so gcc adds a shift). */
static inline int32_t edgernn_sxtb16_odd(uint32_t w)
{
#if defined(__GNUC__)
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(w));
    return r;
#else
    return __sxtb16((int32_t)(w >> 8));
#endif
}
#endif

/* sum_j w[j] v[j] over one row (int8 weights, int16 vector widened as above) plus bias. n is a
 * multiple of EDGERNN_ROW_ALIGN; columns from `used` (a multiple of 4) on are zero. Integer
 * sums are exact, so the order of the multiply-adds does not change the result. */
static inline int32_t edgernn_dot_s8_s16(const int8_t *w, const int16_t *v, int n, int used, int32_t bias)
{
    int32_t s = bias;
    int j;
#if EDGERNN_USE_SMLAD
    (void)n;
    for (j = 0; j < used; j += 4) {
        uint32_t v02;
        uint32_t v13;
        uint32_t w4;
        memcpy(&v02, v + j, 4);
        memcpy(&v13, v + j + 2, 4);
        memcpy(&w4, w + j, 4);
        s = __smlad(__sxtb16((int32_t)w4), (int32_t)v02, s);
        s = __smlad(edgernn_sxtb16_odd(w4), (int32_t)v13, s);
    }
#else
    (void)used; /* vectorized over whole rows: the zero columns cost nothing extra */
    for (j = 0; j < n; ++j) {
        s += (int32_t)w[j] * v[j];
    }
#endif
    return s;
}

/* The same for the four rows w, w + n, w + 2n, w + 3n, sharing the loads of v: out[0..3]. */
static inline void edgernn_dot4_s8_s16(const int8_t *w, const int16_t *v, int n, int used, const int32_t *bias,
                                       int32_t *out)
{
    int32_t s0 = bias[0];
    int32_t s1 = bias[1];
    int32_t s2 = bias[2];
    int32_t s3 = bias[3];
    int j;
#if EDGERNN_USE_SMLAD
    for (j = 0; j < used; j += 4) {
        uint32_t v02;
        uint32_t v13;
        uint32_t w0;
        uint32_t w1;
        uint32_t w2;
        uint32_t w3;
        memcpy(&v02, v + j, 4);
        memcpy(&v13, v + j + 2, 4);
        memcpy(&w0, w + j, 4);
        memcpy(&w1, w + n + j, 4);
        memcpy(&w2, w + 2 * n + j, 4);
        memcpy(&w3, w + 3 * n + j, 4);
        s0 = __smlad(__sxtb16((int32_t)w0), (int32_t)v02, s0);
        s0 = __smlad(edgernn_sxtb16_odd(w0), (int32_t)v13, s0);
        s1 = __smlad(__sxtb16((int32_t)w1), (int32_t)v02, s1);
        s1 = __smlad(edgernn_sxtb16_odd(w1), (int32_t)v13, s1);
        s2 = __smlad(__sxtb16((int32_t)w2), (int32_t)v02, s2);
        s2 = __smlad(edgernn_sxtb16_odd(w2), (int32_t)v13, s2);
        s3 = __smlad(__sxtb16((int32_t)w3), (int32_t)v02, s3);
        s3 = __smlad(edgernn_sxtb16_odd(w3), (int32_t)v13, s3);
    }
#else
    (void)used;
    EDGERNN_UNROLL(16)
    for (j = 0; j < n; ++j) {
        const int32_t vj = v[j];
        s0 += (int32_t)w[j] * vj;
        s1 += (int32_t)w[n + j] * vj;
        s2 += (int32_t)w[2 * n + j] * vj;
        s3 += (int32_t)w[3 * n + j] * vj;
    }
#endif
    out[0] = s0;
    out[1] = s1;
    out[2] = s2;
    out[3] = s3;
}

/* All n rows of a [n][stride] matrix times v, plus bias: out[0..n). */
static inline void edgernn_matvec_s8_s16(const int8_t *w, const int16_t *v, int n, int stride, int used,
                                         const int32_t *bias, int32_t *out)
{
    const int n4 = n & ~3;
    int r;
#if !EDGERNN_USE_SMLAD
    EDGERNN_UNROLL(8) /* vector code: unrolled, the row loads and reductions interleave */
#endif
    for (r = 0; r < n4; r += 4) {
        edgernn_dot4_s8_s16(w + (long)r * stride, v, stride, used, bias + r, out + r);
    }
    for (r = n4; r < n; ++r) {
        out[r] = edgernn_dot_s8_s16(w + (long)r * stride, v, stride, used, bias[r]);
    }
}

/* Gate g's pre-activations in Q3.12 for every unit (CalculateLstmGate: input FC + recurrent
 * FC, each requantized to int16, then AddElementWise with saturation) into pre[0..n_cell).
 * g is a literal at each call, so the gate's multipliers and shifts are constants. */
static inline EDGERNN_ALWAYS_INLINE void edgernn_lstm_gate(const edgernn_lstm_params *p, int g, const int16_t *x16,
                                                           const int16_t *h16, int32_t *acc, int16_t *pre)
{
    const int n_cell = p->n_cell;
    const int32_t mx = p->input_multiplier[g];
    const int sx = (int)p->input_shift[g];
    const int32_t mh = p->recurrent_multiplier[g];
    const int sh = (int)p->recurrent_shift[g];
    int32_t *const acc_x = acc;
    int32_t *const acc_h = acc + n_cell;
    int u;
    edgernn_matvec_s8_s16(p->input_weights + (long)g * n_cell * p->input_stride, x16, n_cell, p->input_stride,
                          (p->n_input + 3) & ~3, p->input_bias + g * n_cell, acc_x);
    edgernn_matvec_s8_s16(p->recurrent_weights + (long)g * n_cell * p->cell_stride, h16, n_cell, p->cell_stride,
                          (n_cell + 3) & ~3, p->recurrent_bias + g * n_cell, acc_h);
    for (u = 0; u < n_cell; ++u) {
        pre[u] = (int16_t)edgernn_clamp_s16(edgernn_clamp_s16(edgernn_mbqm(acc_x[u], mx, sx)) +
                                            edgernn_clamp_s16(edgernn_mbqm(acc_h[u], mh, sh)));
    }
}

static inline void edgernn_lstm_step(const edgernn_lstm_params *p, const int8_t *x, int8_t *hidden,
                                     int16_t *cell, int16_t *vectors, int32_t *acc, int16_t *gates)
{
    const int n_cell = p->n_cell;
    int16_t *const x16 = vectors;
    int16_t *const h16 = vectors + p->input_stride;
    int16_t *const input_gate = gates + EDGERNN_LSTM_INPUT_GATE * n_cell;
    int16_t *const forget_gate = gates + EDGERNN_LSTM_FORGET_GATE * n_cell;
    int16_t *const cell_gate = gates + EDGERNN_LSTM_CELL_GATE * n_cell;
    int16_t *const output_gate = gates + EDGERNN_LSTM_OUTPUT_GATE * n_cell;
    int32_t *const cell_tanh = acc;
    const int32_t cell_clip = p->cell_clip;
    int u;

    /* Widen this step's input and the previous hidden state once (zero padding). */
    edgernn_widen_s8(x, p->n_input, p->input_stride, x16);
    edgernn_widen_s8(hidden, n_cell, p->cell_stride, h16);

    edgernn_lstm_gate(p, EDGERNN_LSTM_INPUT_GATE, x16, h16, acc, input_gate);
    edgernn_lstm_gate(p, EDGERNN_LSTM_FORGET_GATE, x16, h16, acc, forget_gate);
    edgernn_lstm_gate(p, EDGERNN_LSTM_CELL_GATE, x16, h16, acc, cell_gate);
    edgernn_lstm_gate(p, EDGERNN_LSTM_OUTPUT_GATE, x16, h16, acc, output_gate);

    /* forget, input, output = sigmoid(.), cell gate = tanh(.) at scale 2^-12 (x3, no shift);
     * all Q0.15 */
    for (u = 0; u < n_cell; ++u) {
        input_gate[u] = edgernn_sigmoid_s16(input_gate[u]);
        forget_gate[u] = edgernn_sigmoid_s16(forget_gate[u]);
        cell_gate[u] = edgernn_tanh_s16(cell_gate[u], 3, 0);
        output_gate[u] = edgernn_sigmoid_s16(output_gate[u]);
    }
    /* cell = clip(f * cell + i * g): two saturating Muls, a saturating Add (UpdateLstmCell) */
    for (u = 0; u < n_cell; ++u) {
        int32_t c = edgernn_clamp_s16(edgernn_mbqm((int32_t)input_gate[u] * cell_gate[u], p->input_mul_multiplier,
                                                   (int)p->input_mul_shift)) +
                    edgernn_clamp_s16(edgernn_mbqm((int32_t)forget_gate[u] * cell[u], p->forget_mul_multiplier,
                                                   (int)p->forget_mul_shift));
        c = edgernn_clamp_s16(c);
        if (cell_clip > 0) {
            c = c < -cell_clip ? -cell_clip : (c > cell_clip ? cell_clip : c);
        }
        cell[u] = (int16_t)c;
    }
    for (u = 0; u < n_cell; ++u) {
        cell_tanh[u] = edgernn_tanh_s16(cell[u], p->cell_tanh_multiplier, (int)p->cell_tanh_left_shift);
    }
    /* hidden = o * tanh(cell) requantized to int8 (UpdateLstmHidden); the products above read
     * the int16 copy of the previous hidden state, so this is safe in place. */
    for (u = 0; u < n_cell; ++u) {
        hidden[u] = (int8_t)edgernn_clamp_s8(
            p->hidden_zero_point +
            edgernn_mbqm(cell_tanh[u] * output_gate[u], p->hidden_mul_multiplier, (int)p->hidden_mul_shift));
    }
}

#ifdef __cplusplus
}
#endif

#endif /* EDGERNN_KERNELS_H */
