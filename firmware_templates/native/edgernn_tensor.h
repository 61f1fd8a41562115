/*
 * edgernn_tensor.h - int8 tensor kernels for convolutional front-ends and pooling heads (C99).
 *
 * Part of edgernn's native backend: `edgernn emit --backend native` copies this file and
 * edgernn_tensor.c next to the generated NAME.c when the model has convolutions, pools,
 * reductions or data-movement ops. Every kernel computes what the TensorFlow Lite Micro
 * reference kernel computes, bit for bit:
 *
 *   - CONV_2D / DEPTHWISE_CONV_2D (reference_integer_ops::ConvPerChannel /
 *     DepthwiseConvPerChannel): per-channel requantization, taps outside the input skipped;
 *   - MAX_POOL_2D / AVERAGE_POOL_2D (reference_integer_ops pooling, raw-sum rounding);
 *   - MEAN / SUM / REDUCE_MAX / REDUCE_MIN over any axes (reference_ops::QuantizedMeanOrSum,
 *     ReduceGeneric);
 *   - ADD / SUB / MUL with broadcasting (reference_integer_ops::BroadcastAdd4DSlow ...);
 *   - copies of strided boxes: PAD, TRANSPOSE, STRIDED_SLICE, CONCATENATION, PACK, UNPACK,
 *     SPACE_TO_BATCH_ND and BATCH_TO_SPACE_ND are each one or a few of them.
 *
 * Tensors are NHWC int8 arrays; every size, stride and constant comes from the generated
 * params structs (static const, in flash). No dynamic memory, no recursion, no floating point.
 */
#ifndef EDGERNN_TENSOR_H
#define EDGERNN_TENSOR_H

#include <stdint.h>

#include "edgernn_kernels.h"
#include "edgernn_mve_conv.h"
#include "edgernn_pairs.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The tensor arena holds the convolutions' int16 windows, which the kernels read with LDRD. */
#if defined(__GNUC__)
#define EDGERNN_ALIGN4 __attribute__((aligned(4)))
#else
#define EDGERNN_ALIGN4
#endif

/* Boxes and broadcasts have at most this many dimensions (TFLM's own limit for these ops). */
#define EDGERNN_MAX_DIMS 5

/* ---------------------------------------------------------------------------------------
 * CONV_2D and DEPTHWISE_CONV_2D, NHWC input, int32 accumulators.
 * ------------------------------------------------------------------------------------- */
typedef struct {
    int32_t batches;
    int32_t in_h, in_w, in_c;
    int32_t out_h, out_w, out_c;
    int32_t filter_h, filter_w;
    int32_t filter_c;             /* CONV_2D: input channels per group (in_c / groups); DEPTHWISE: 1 */
    int32_t depth_multiplier;     /* 0: CONV_2D, filter [out_c][fh][fw][filter_c];
                                   * > 0: DEPTHWISE_CONV_2D, filter [fh][fw][out_c] */
    int32_t stride_h, stride_w;
    int32_t dilation_h, dilation_w;
    int32_t pad_top, pad_left;    /* SAME padding before; taps beyond the input are skipped */
    int32_t input_zero_point;
    int32_t output_zero_point;
    int32_t activation_min, activation_max;
    const int8_t *weights;
    const int32_t *bias;          /* [out_c]: bias - input_zero_point * sum of the channel's weights */
    const int32_t *multiplier;    /* [out_c] Q0.31 */
    const int32_t *shift;         /* [out_c] */
} edgernn_conv_params;

void edgernn_conv_s8(const edgernn_conv_params *p, const int8_t *input, int8_t *output);

/* CONV_2D (and FULLY_CONNECTED on rows, the 1 x 1 case) on the row-pair kernel: for each output
 * position the window's taps (filter order; a tap outside the input reads the input zero point)
 * are widened once into an int16 vector pre-scaled by `scale`, shared by every output channel,
 * and the EDGERNN_FC8_KERNEL instance `kernel` computes the position's out_c outputs from its
 * weight stream (laid out by edgernn: row-pair words, start words from the folded biases, each
 * row's requantization). The conv params give the geometry, zero points and activation range
 * (their weights, bias and multipliers are unused). */
typedef void (*edgernn_fc8_kernel)(const edgernn_fc8 *fc);

typedef struct {
    const edgernn_conv_params *conv;
    edgernn_fc8_kernel kernel;
    const uint32_t *stream;
    const uint32_t *passes_end;   /* end of the stream's passes of three row pairs */
    int32_t scale;                /* 2^(1 + left shift) */
    int32_t ring;                 /* 1: one filter row, stride and dilation 1 along it, even in_c: each
                                   * input column is widened once into a ring of 2 x filter_w columns
                                   * (written twice), in which every window is contiguous */
} edgernn_conv_pairs;

/* window: filter_h x filter_w x in_c int16 values (+ 1 when odd; twice that for a ring),
 * 4-byte aligned */
void edgernn_conv_pairs_s8(const edgernn_conv_pairs *c, const int8_t *input, int8_t *output, int16_t *window);

/* CONV_2D (and FULLY_CONNECTED, the 1 x 1 case) on int8 weight rows (edgernn_mve_conv.h: Helium
 * on the Cortex-M55, its C twin on the other "rows" targets): for each output position the
 * window's taps (filter order) are read where they lie in the input when they are contiguous
 * there (one filter row, or whole input rows; dilation 1 along the row; no tap outside),
 * otherwise copied into `window` (a tap outside the input reads the input zero point), and
 * `kernel` computes the position's out_c outputs, requantization and activation range included. */
typedef void (*edgernn_conv_rows_kernel)(const int8_t *x, int8_t *y);

typedef struct {
    const edgernn_conv_params *conv;
    edgernn_conv_rows_kernel kernel;
} edgernn_conv_rows;

/* window: filter_h x filter_w x in_c int8 values; NULL when every window lies in the input with no
 * padding and the kernel reads it there (contiguous, or a dilated row's taps at the kernel's stride;
 * edgernn checks it): the positions then step through the input */
void edgernn_conv_rows_s8(const edgernn_conv_rows *c, const int8_t *input, int8_t *output, int8_t *window);

/* DEPTHWISE_CONV_2D with the taps on SMLAD pairs: for each output position the window is
 * widened once, channel by channel (in_c rows of `taps` int16 values pre-scaled by `scale`, a
 * tap outside the input reading the zero point, a zero after an odd tap count); each output
 * channel then sums its int16 weight pairs against its input channel's row with SMLAD from the
 * pre-scaled folded bias, and requantizes like the row-pair kernel (SMMLAR with the zero point
 * in the rounding term, SSAT). words, per output channel: start word, multiplier, rounding,
 * right shift, then taps / 2 weight pairs (laid out by edgernn). */
typedef struct {
    const edgernn_conv_params *conv;
    const uint32_t *words;
    int32_t taps;                 /* filter_h x filter_w, rounded up to even */
    int32_t scale;                /* 2^(1 + left shift) */
} edgernn_depthwise_pairs;

/* window: in_c x taps int16 values, 4-byte aligned */
void edgernn_depthwise_pairs_s8(const edgernn_depthwise_pairs *c, const int8_t *input, int8_t *output,
                                int16_t *window);

/* ---------------------------------------------------------------------------------------
 * MAX_POOL_2D / AVERAGE_POOL_2D (input and output share scale and zero point).
 * ------------------------------------------------------------------------------------- */
typedef struct {
    int32_t average;              /* 0: max, 1: average */
    int32_t batches, in_h, in_w, channels, out_h, out_w;
    int32_t filter_h, filter_w, stride_h, stride_w, pad_top, pad_left;
    int32_t activation_min, activation_max;
} edgernn_pool_params;

void edgernn_pool_s8(const edgernn_pool_params *p, const int8_t *input, int8_t *output);

/* ---------------------------------------------------------------------------------------
 * Reductions: every output element reduces a box of the input. The kept dimensions (in
 * output order) and the reduced ones each have sizes and strides in input elements.
 * ------------------------------------------------------------------------------------- */
enum { EDGERNN_REDUCE_MEAN = 0, EDGERNN_REDUCE_MAX = 1, EDGERNN_REDUCE_MIN = 2 };

typedef struct {
    int32_t kind;
    int32_t outer_dims[4], outer_strides[4];
    int32_t inner_dims[4], inner_strides[4];
    int32_t count;                /* reduced elements (the zero point's weight in the sum) */
    int32_t input_zero_point;
    int32_t multiplier, shift;    /* MEAN/SUM: s_in / s_out with 1 / count folded in (MEAN) */
    int32_t output_zero_point;
} edgernn_reduce_params;

void edgernn_reduce_s8(const edgernn_reduce_params *p, const int8_t *input, int8_t *output);

/* ---------------------------------------------------------------------------------------
 * Strided boxes: dst[i0..i4] = src[i0..i4] with each side's strides (in bytes). Transposes,
 * slices, concatenations and padding interiors are all one box.
 * ------------------------------------------------------------------------------------- */
typedef struct {
    int32_t dims[EDGERNN_MAX_DIMS];
    int32_t src_strides[EDGERNN_MAX_DIMS];
    int32_t dst_strides[EDGERNN_MAX_DIMS];
} edgernn_box;

void edgernn_copy_box_s8(const edgernn_box *b, const int8_t *src, int8_t *dst);

/* ---------------------------------------------------------------------------------------
 * Broadcasting ADD / SUB / MUL: the output box with each input's strides (0 along the
 * dimensions it is broadcast over); the arithmetic is edgernn_add_run_s8 / _mul_run_s8's.
 * ------------------------------------------------------------------------------------- */
typedef struct {
    int32_t dims[EDGERNN_MAX_DIMS];
    int32_t a_strides[EDGERNN_MAX_DIMS];
    int32_t b_strides[EDGERNN_MAX_DIMS];
} edgernn_broadcast;

void edgernn_add_broadcast_s8(const edgernn_add_params *p, const edgernn_broadcast *g, const int8_t *a,
                              const int8_t *b, int8_t *out);
void edgernn_mul_broadcast_s8(const edgernn_mul_params *p, const edgernn_broadcast *g, const int8_t *a,
                              const int8_t *b, int8_t *out);

#ifdef __cplusplus
}
#endif

#endif /* EDGERNN_TENSOR_H */
