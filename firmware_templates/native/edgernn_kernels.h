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
 *   - SOFTMAX int8 -> int8 with gemmlowp fixed-point exp and reciprocal.
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

/* ---------------------------------------------------------------------------------------
 * SOFTMAX int8 -> int8 (output scale 1/256, zero point -128).
 * ------------------------------------------------------------------------------------- */
typedef struct {
    int n;                        /* classes */
    int32_t input_multiplier;     /* beta * input_scale * 2^26 as Q0.31 + left shift */
    int input_left_shift;
    int32_t diff_min;             /* differences below this give exp() = 0 */
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
 * LSTM cell, TFLM UNIDIRECTIONAL_SEQUENCE_LSTM integer kernel (8x8_16), one time step.
 * ------------------------------------------------------------------------------------- */

/* Weight rows are zero-padded to a multiple of EDGERNN_ROW_ALIGN columns and the step's input
 * and hidden vectors are widened to int16 (also zero-padded), so every dot product is a
 * fixed-length loop that compilers turn into 16-bit multiply-add instructions (pmaddwd on
 * x86, SMLAD on Cortex-M4). */
#define EDGERNN_ROW_ALIGN 16

enum { EDGERNN_LSTM_INPUT_GATE = 0, EDGERNN_LSTM_FORGET_GATE = 1, EDGERNN_LSTM_CELL_GATE = 2,
       EDGERNN_LSTM_OUTPUT_GATE = 3 };

typedef struct {
    int n_input;
    int n_cell;
    int input_stride;                   /* n_input rounded up to a multiple of EDGERNN_ROW_ALIGN */
    int cell_stride;                    /* n_cell rounded up to a multiple of EDGERNN_ROW_ALIGN */
    /* Gates in TFLM's order (input, forget, cell, output); the four rows of a unit are
     * stored together. */
    const int8_t *input_weights;        /* [n_cell][4][input_stride] */
    const int32_t *input_bias;          /* [4][n_cell] gate bias - input_zero_point * row sum */
    const int8_t *recurrent_weights;    /* [n_cell][4][cell_stride] */
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

/* The four rows w, w + n, w + 2n, w + 3n (int8) times v (int16): out[0..3]. n must be a
 * multiple of EDGERNN_ROW_ALIGN. */
void edgernn_dot4_s8_s16(const int8_t *w, const int16_t *v, int n, int32_t *out);

/* One step: reads x[n_input] and the state (hidden[n_cell] int8, cell[n_cell] int16) and
 * updates the state in place. scratch holds input_stride + cell_stride int16 values. Same
 * results as TFLM's LstmStep (forget, input and cell gates, cell update, output gate, hidden
 * update), each gate's two fully connected products requantized and saturated to int16
 * separately before their saturating sum. */
void edgernn_lstm_step(const edgernn_lstm_params *p, const int8_t *x, int8_t *hidden,
                       int16_t *cell, int16_t *scratch);

#ifdef __cplusplus
}
#endif

#endif /* EDGERNN_KERNELS_H */
