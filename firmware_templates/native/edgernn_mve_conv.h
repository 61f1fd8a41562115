/*
 * edgernn_mve_conv.h - CONV_2D and FULLY_CONNECTED int8 -> int8 of tensor graphs on int8 weight
 * rows: Helium (Cortex-M55) and its plain-C twin (C99; every other "rows" target, and -O0).
 *
 * One output position: y_r = clamp(zp + MBQM(bias_r + sum_j w_rj x_j, m_r, shift_r), lo, hi),
 * TFLM's ConvPerChannel / FullyConnected with the input zero point folded into the bias (bias -
 * zp_in x row sum, as every tensor kernel here: a tap outside the input reads zp_in). x is the
 * position's int8 window in filter order, read where it lies in the input when it is contiguous
 * there (edgernn_conv_rows_s8, edgernn_tensor.c), so no int16 widening and no copy.
 *
 * The stream (laid out by edgernn/backends/native/convrows.py), per pass of four rows (zero
 * rows pad the last pass, computed and not stored): weights as edgernn_rows.h lays a gate's
 * out (per 16-column chunk, the four rows' columns of the chunk, n_input % 16 in the last one),
 * then 16 zero bytes; per pass four int32 words each: the biases, the multipliers, and the rows'
 * right shifts negated when they differ (rs = -1). Every row has the same left shift ls, and a
 * right shift of 0 is every row's or none's (the generator checks).
 *
 * On Helium a chunk is one VLDRB (post-incremented) and one VMLADAVA.S8 (16 multiply-
 * accumulates into a scalar) per row; the window's chunks are loaded once per position (up to
 * four held in registers, the last one predicated: its zero lanes meet the next row's weights
 * the short last chunk's load reads). Per pass: the four sums packed (two VMOVs), the bias
 * added, VSHL by ls, VQRDMULH (exactly SaturatingRoundingDoublingHighMul), RoundingDivideByPOT
 * as VRSHR(x + (x >> 31)), the zero point, the activation range, one VSTRB of four bytes.
 *
 * The window is n_input / tap taps of `tap` bytes each, `stride` bytes apart in x (a dilated
 * convolution read in place: tap = in_c, a multiple of 16, stride = dilation x in_c; tap =
 * stride = n_input when it is contiguous): column j is x[j / tap * stride + j % tap], and no
 * 16-column chunk straddles two taps.
 *
 * EDGERNN_CONV_ROWS_KERNEL(name, weights, words, n_out, n_input, tap, stride, ls, rs, zp, lo, hi)
 * defines `static void name(const int8_t *x, int8_t *y)` over the arrays `weights` and `words`;
 * the numbers must be literals.
 */
#ifndef EDGERNN_MVE_CONV_H
#define EDGERNN_MVE_CONV_H

#include <stdint.h>

#include "edgernn_kernels.h"
#if defined(__cplusplus) && defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)
#include <arm_mve.h> /* first, outside edgernn_rows.h's extern "C": C++ declares its overloads */
#endif
#include "edgernn_rows.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The offset in x of window column col (the layout above). */
#define EDGERNN_CONV_ROWS_AT(col, tap, stride) ((col) / (tap) * (stride) + (col) % (tap))

/* One pass of four rows (the C twin): weights at *w and words at *q (both advanced); stores the
 * first `rows` outputs. */
static inline EDGERNN_ALWAYS_INLINE void edgernn_conv_rows_pass_c(const int8_t **w, const int32_t **q, const int8_t *x,
                                                                  int8_t *y, int n_input, int tap, int stride,
                                                                  int rows, int ls, int rs, int zp, int lo, int hi)
{
    const int32_t *b = *q;
    int32_t a[4];
    int r;
    const int8_t *s = *w;
    int32_t a0 = b[0];
    int32_t a1 = b[1];
    int32_t a2 = b[2];
    int32_t a3 = b[3];
    int c0;
    for (c0 = 0; c0 < n_input; c0 += EDGERNN_ROWS_CHUNK) { /* rolled: four sums, one input load per column */
        const int width = n_input - c0 < EDGERNN_ROWS_CHUNK ? n_input - c0 : EDGERNN_ROWS_CHUNK;
        const int8_t *xc = x + EDGERNN_CONV_ROWS_AT(c0, tap, stride);
        int j;
        for (j = 0; j < width; ++j) {
            const int32_t xj = xc[j];
            a0 += s[j] * xj;
            a1 += s[width + j] * xj;
            a2 += s[2 * width + j] * xj;
            a3 += s[3 * width + j] * xj;
        }
        s += EDGERNN_ROWS_PER_PASS * width;
    }
    *w = s;
    a[0] = a0;
    a[1] = a1;
    a[2] = a2;
    a[3] = a3;
    for (r = 0; r < rows; ++r) {
        const int row_rs = rs >= 0 ? rs : -(int)b[8 + r];
        const int32_t v = edgernn_mbqm(a[r], b[4 + r], ls - row_rs) + zp;
        y[r] = (int8_t)(v < lo ? lo : (v > hi ? hi : v));
    }
    *q = b + (rs >= 0 ? 8 : 12);
}

static inline EDGERNN_ALWAYS_INLINE void edgernn_conv_rows_c(const int8_t *w, const int32_t *q, const int8_t *x,
                                                             int8_t *y, int n_out, int n_input, int tap, int stride,
                                                             int ls, int rs, int zp, int lo, int hi)
{
    int r0;
    for (r0 = 0; r0 + EDGERNN_ROWS_PER_PASS <= n_out; r0 += EDGERNN_ROWS_PER_PASS) {
        edgernn_conv_rows_pass_c(&w, &q, x, y + r0, n_input, tap, stride, EDGERNN_ROWS_PER_PASS, ls, rs, zp, lo, hi);
    }
    if (n_out % EDGERNN_ROWS_PER_PASS) {
        edgernn_conv_rows_pass_c(&w, &q, x, y + r0, n_input, tap, stride, n_out % EDGERNN_ROWS_PER_PASS, ls, rs, zp,
                                 lo, hi);
    }
}

#if EDGERNN_USE_MVE
/* The window's chunks held in registers for the whole position: at most this many (eight Q
 * registers: the held chunks, a weight vector, the packed sums and a word vector) */
#define EDGERNN_CONV_ROWS_HELD 4

/* Chunk c of the window: 16 lanes, or the last chunk's n_input % 16 with zeros after them. */
static inline EDGERNN_ALWAYS_INLINE int8x16_t edgernn_conv_rows_x(const int8_t *x, int c, int n_input, int tap,
                                                                  int stride)
{
    const int width = n_input - EDGERNN_ROWS_CHUNK * c;
    const int8_t *at = x + EDGERNN_CONV_ROWS_AT(EDGERNN_ROWS_CHUNK * c, tap, stride);
    if (width >= EDGERNN_ROWS_CHUNK) {
        return vldrbq_s8(at);
    }
    return vldrbq_z_s8(at, vctp8q((uint32_t)width));
}

/* The bytes of a row's weights in chunk c. */
#define EDGERNN_CONV_ROWS_STEP(c, n_input)                                                                      \
    ((n_input) - EDGERNN_ROWS_CHUNK * (c) < EDGERNN_ROWS_CHUNK ? (n_input) - EDGERNN_ROWS_CHUNK * (c)           \
                                                              : EDGERNN_ROWS_CHUNK)

/* Four words at *q, then *q += 4 (post-incremented VLDRW). */
static inline EDGERNN_ALWAYS_INLINE int32x4_t edgernn_conv_rows_words(const int32_t **q)
{
    int32x4_t v;
    __asm__("vldrw.32 %q0, [%1], #16" : "=w"(v), "+r"(*q)); /* const words: no memory clobber */
    return v;
}

/* One pass (Helium): the four sums over the window's chunks (x0..x3 held, the others read from
 * x), requantized; stores `rows` outputs (all four unpredicated when rows == 4). */
static inline EDGERNN_ALWAYS_INLINE void edgernn_conv_rows_pass_mve(const int8_t **w, const int32_t **q,
                                                                    int8x16_t x0, int8x16_t x1, int8x16_t x2,
                                                                    int8x16_t x3, const int8_t *x, int8_t *y,
                                                                    int n_input, int tap, int stride, int rows, int ls,
                                                                    int rs, int zp, int lo, int hi)
{
    const int chunks = (n_input + EDGERNN_ROWS_CHUNK - 1) / EDGERNN_ROWS_CHUNK;
    int32_t a0;
    int32_t a1;
    int32_t a2;
    int32_t a3;
    int32x4_t v;
    int c;
    EDGERNN_MVE_FIRST_CHUNK(*w, x0, EDGERNN_CONV_ROWS_STEP(0, n_input), a0, a1, a2, a3);
    if (chunks > 1) {
        EDGERNN_MVE_CHUNK(*w, x1, EDGERNN_CONV_ROWS_STEP(1, n_input), a0, a1, a2, a3);
    }
    if (chunks > 2) {
        EDGERNN_MVE_CHUNK(*w, x2, EDGERNN_CONV_ROWS_STEP(2, n_input), a0, a1, a2, a3);
    }
    if (chunks > 3) {
        EDGERNN_MVE_CHUNK(*w, x3, EDGERNN_CONV_ROWS_STEP(3, n_input), a0, a1, a2, a3);
    }
    for (c = EDGERNN_CONV_ROWS_HELD; c < chunks - 1; ++c) { /* whole chunks: the step is 16 */
        EDGERNN_MVE_CHUNK(*w, vldrbq_s8(x + EDGERNN_CONV_ROWS_AT(EDGERNN_ROWS_CHUNK * c, tap, stride)),
                          EDGERNN_ROWS_CHUNK, a0, a1, a2, a3);
    }
    if (chunks > EDGERNN_CONV_ROWS_HELD) {
        EDGERNN_MVE_CHUNK(*w, edgernn_conv_rows_x(x, chunks - 1, n_input, tap, stride),
                          EDGERNN_CONV_ROWS_STEP(chunks - 1, n_input), a0, a1, a2, a3);
    }
    v = vaddq_s32(edgernn_mve_pack4(a0, a1, a2, a3), edgernn_conv_rows_words(q));
    if (ls > 0) {
        v = vshlq_n_s32(v, ls);
    }
    v = vqrdmulhq_s32(v, edgernn_conv_rows_words(q));
    if (rs > 0) {
        v = vrshrq_n_s32(vaddq_s32(v, vshrq_n_s32(v, 31)), rs);
    } else if (rs < 0) { /* each row's own right shift (all > 0), negated in the stream */
        v = vrshlq_s32(vaddq_s32(v, vshrq_n_s32(v, 31)), edgernn_conv_rows_words(q));
    }
    v = vminq_s32(vmaxq_s32(vaddq_n_s32(v, zp), vdupq_n_s32(lo)), vdupq_n_s32(hi));
    if (rows == EDGERNN_ROWS_PER_PASS) {
        vstrbq_s32(y, v);
    } else {
        vstrbq_p_s32(y, v, vctp32q((uint32_t)rows));
    }
}

static inline EDGERNN_ALWAYS_INLINE void edgernn_conv_rows_mve(const int8_t *w, const int32_t *q, const int8_t *x,
                                                               int8_t *y, int n_out, int n_input, int tap, int stride,
                                                               int ls, int rs, int zp, int lo, int hi)
{
    const int chunks = (n_input + EDGERNN_ROWS_CHUNK - 1) / EDGERNN_ROWS_CHUNK;
    int8x16_t x0;
    int8x16_t x1 = vdupq_n_s8(0);
    int8x16_t x2 = vdupq_n_s8(0);
    int8x16_t x3 = vdupq_n_s8(0);
    int r0;
    EDGERNN_ROWS_FENCE();
    x0 = edgernn_conv_rows_x(x, 0, n_input, tap, stride);
    if (chunks > 1) {
        x1 = edgernn_conv_rows_x(x, 1, n_input, tap, stride);
    }
    if (chunks > 2) {
        x2 = edgernn_conv_rows_x(x, 2, n_input, tap, stride);
    }
    if (chunks > 3) {
        x3 = edgernn_conv_rows_x(x, 3, n_input, tap, stride);
    }
    for (r0 = 0; r0 + EDGERNN_ROWS_PER_PASS <= n_out; r0 += EDGERNN_ROWS_PER_PASS) {
        edgernn_conv_rows_pass_mve(&w, &q, x0, x1, x2, x3, x, y + r0, n_input, tap, stride, EDGERNN_ROWS_PER_PASS, ls,
                                   rs, zp, lo, hi);
    }
    if (n_out % EDGERNN_ROWS_PER_PASS) {
        edgernn_conv_rows_pass_mve(&w, &q, x0, x1, x2, x3, x, y + r0, n_input, tap, stride,
                                   n_out % EDGERNN_ROWS_PER_PASS, ls, rs, zp, lo, hi);
    }
    EDGERNN_ROWS_FENCE();
}
#define edgernn_conv_rows_run edgernn_conv_rows_mve
#else
#define edgernn_conv_rows_run edgernn_conv_rows_c
#endif

#define EDGERNN_CONV_ROWS_KERNEL(name, weights, words, n_out, n_input, tap, stride, ls, rs, zp, lo, hi) \
    static void name(const int8_t *x, int8_t *y)                                                       \
    {                                                                                                  \
        edgernn_conv_rows_run(weights, words, x, y, n_out, n_input, tap, stride, ls, rs, zp, lo, hi);     \
    }

#ifdef __cplusplus
}
#endif

#endif /* EDGERNN_MVE_CONV_H */
