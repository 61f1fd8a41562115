/*
 * edgernn_fc16w.h - FULLY_CONNECTED 16x8 of an int16 loop step on int16 weight pairs (C99).
 *
 * TFLM's reference 16x8 path, y = clamp16((acc m + 2^(s-1)) >> s) with an int64 accumulator,
 * computed in 32 bits: the generator (edgernn/backends/native/fasttensor.py, fc16w_stream)
 * checks that every row's |acc| 2^ls < 2^31 for any int16 input (|x| <= the input's bound),
 * and lays each row's weights and bias out multiplied by 2^ls (ls <= 8, so w 2^ls still fits
 * 16 bits), so that the sum is acc 2^ls exactly and (acc m + 2^(s-1)) >> s = SMMULR(acc 2^ls,
 * m 2^(32 - s - ls)) with one 32-bit multiplier per row (the argument of edgernn_pairs.h's
 * EDGERNN_FC16_KERNEL). One word holds a row's two weights of a column pair, so SMLAD takes
 * them against the input pair as they are (no SXTB16, no 64-bit high row).
 *
 * The stream, per pass of four rows (the last rows padded with zero rows, computed and not
 * stored): the four rows' start words (the bias x 2^ls) when the FC has a bias, per column pair
 * of the input one word per row (an odd input's last column: the low halves), then the four
 * rows' multipliers. With the DSP extension (Cortex-M4/M7/M33/M55) one LDM reads four words,
 * so two column pairs of four rows (16 multiply-accumulates) take 11 instructions: LDRD of the
 * input, two LDMs, eight SMLADs.
 *
 * EDGERNN_FC16W_KERNEL(name, n_input, n_output, bias) defines `static void name(const
 * edgernn_fc16w *fc)`; the numbers must be literals.
 */
#ifndef EDGERNN_FC16W_H
#define EDGERNN_FC16W_H

#include <stdint.h>
#include <string.h>

#include "edgernn_fast.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct {
    const uint32_t *stream;
    const int16_t *input;
    int16_t *out;
} edgernn_fc16w;

#if EDGERNN_USE_SMLAD && defined(__GNUC__) && defined(__thumb2__)
#define EDGERNN_FC16W_ASM 1
#else
#define EDGERNN_FC16W_ASM 0
#endif

/* One pass of four rows over the input *px; stores the first `rows`. The assembly advances
 * *px through the input and steps it back after the pass (one SUB; no register holds x). */
static inline EDGERNN_ALWAYS_INLINE const uint32_t *edgernn_fc16w_pass(const uint32_t *w, const int16_t **px,
                                                                       int16_t *out, int n_input, int rows, int bias)
{
    const int16_t *const x = *px;
#if EDGERNN_FC16W_ASM
    register int32_t a0 __asm__("r0");
    register int32_t a1 __asm__("r1");
    register int32_t a2 __asm__("r2");
    register int32_t a3 __asm__("r3");
    register uint32_t w0 __asm__("r8");
    register uint32_t w1 __asm__("r9");
    register uint32_t w2 __asm__("r10");
    register uint32_t w3 __asm__("r11");
    const int16_t *xp = x;
    int c;
    if (bias) {
        __asm__("ldmia %[w]!, {%[a0], %[a1], %[a2], %[a3]}"
                : [w] "+r"(w), [a0] "=r"(a0), [a1] "=r"(a1), [a2] "=r"(a2), [a3] "=r"(a3)
                :
                : "memory");
    } else if (n_input < 2) {
        a0 = a1 = a2 = a3 = 0; /* a single column: the sums start at 0 */
    }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 64
#endif
    for (c = 0; c + 1 < n_input; c += 2) {
        uint32_t xv;
        uint32_t xv2;
        if (c + 3 < n_input) {
            if (c == 0 && !bias) {
                __asm__("ldrd %[xv], %[xv2], [%[xp]], #8\n ldmia %[w]!, {%[w0], %[w1], %[w2], %[w3]}\n"
                        " smuad %[a0], %[w0], %[xv]\n smuad %[a1], %[w1], %[xv]\n"
                        " smuad %[a2], %[w2], %[xv]\n smuad %[a3], %[w3], %[xv]\n"
                        " ldmia %[w]!, {%[w0], %[w1], %[w2], %[w3]}\n"
                        " smlad %[a0], %[w0], %[xv2], %[a0]\n smlad %[a1], %[w1], %[xv2], %[a1]\n"
                        " smlad %[a2], %[w2], %[xv2], %[a2]\n smlad %[a3], %[w3], %[xv2], %[a3]\n"
                        : [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3), [w] "+r"(w), [xp] "+r"(xp),
                          [xv] "=&r"(xv), [xv2] "=&r"(xv2), [w0] "=&r"(w0), [w1] "=&r"(w1), [w2] "=&r"(w2),
                          [w3] "=&r"(w3)
                        :
                        : "memory");
            } else {
                __asm__("ldrd %[xv], %[xv2], [%[xp]], #8\n ldmia %[w]!, {%[w0], %[w1], %[w2], %[w3]}\n"
                        " smlad %[a0], %[w0], %[xv], %[a0]\n smlad %[a1], %[w1], %[xv], %[a1]\n"
                        " smlad %[a2], %[w2], %[xv], %[a2]\n smlad %[a3], %[w3], %[xv], %[a3]\n"
                        " ldmia %[w]!, {%[w0], %[w1], %[w2], %[w3]}\n"
                        " smlad %[a0], %[w0], %[xv2], %[a0]\n smlad %[a1], %[w1], %[xv2], %[a1]\n"
                        " smlad %[a2], %[w2], %[xv2], %[a2]\n smlad %[a3], %[w3], %[xv2], %[a3]\n"
                        : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [w] "+r"(w), [xp] "+r"(xp),
                          [xv] "=&r"(xv), [xv2] "=&r"(xv2), [w0] "=&r"(w0), [w1] "=&r"(w1), [w2] "=&r"(w2),
                          [w3] "=&r"(w3)
                        :
                        : "memory");
            }
            c += 2;
        } else if (c == 0 && !bias) {
            __asm__("ldr %[xv], [%[xp]], #4\n ldmia %[w]!, {%[w0], %[w1], %[w2], %[w3]}\n"
                    " smuad %[a0], %[w0], %[xv]\n smuad %[a1], %[w1], %[xv]\n"
                    " smuad %[a2], %[w2], %[xv]\n smuad %[a3], %[w3], %[xv]\n"
                    : [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3), [w] "+r"(w), [xp] "+r"(xp),
                      [xv] "=&r"(xv), [w0] "=&r"(w0), [w1] "=&r"(w1), [w2] "=&r"(w2), [w3] "=&r"(w3)
                    :
                    : "memory");
            (void)xv2;
        } else {
            __asm__("ldr %[xv], [%[xp]], #4\n ldmia %[w]!, {%[w0], %[w1], %[w2], %[w3]}\n"
                    " smlad %[a0], %[w0], %[xv], %[a0]\n smlad %[a1], %[w1], %[xv], %[a1]\n"
                    " smlad %[a2], %[w2], %[xv], %[a2]\n smlad %[a3], %[w3], %[xv], %[a3]\n"
                    : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [w] "+r"(w), [xp] "+r"(xp),
                      [xv] "=&r"(xv), [w0] "=&r"(w0), [w1] "=&r"(w1), [w2] "=&r"(w2), [w3] "=&r"(w3)
                    :
                    : "memory");
            (void)xv2;
        }
    }
    if (n_input % 2) {
        /* the last column: the low halves of its words against one input */
        const int32_t xl = *xp;
        __asm__("ldmia %[w]!, {%[w0], %[w1], %[w2], %[w3]}\n"
                " smlabb %[a0], %[w0], %[xl], %[a0]\n smlabb %[a1], %[w1], %[xl], %[a1]\n"
                " smlabb %[a2], %[w2], %[xl], %[a2]\n smlabb %[a3], %[w3], %[xl], %[a3]\n"
                : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [w] "+r"(w), [w0] "=&r"(w0),
                  [w1] "=&r"(w1), [w2] "=&r"(w2), [w3] "=&r"(w3)
                : [xl] "r"(xl)
                : "memory");
    }
    __asm__("ldmia %[w]!, {%[w0], %[w1], %[w2], %[w3]}"
            : [w] "+r"(w), [w0] "=r"(w0), [w1] "=r"(w1), [w2] "=r"(w2), [w3] "=r"(w3)
            :
            : "memory");
    out[0] = (int16_t)edgernn_clamp_s16(edgernn_smmulr(a0, (int32_t)w0));
    if (rows > 1) {
        out[1] = (int16_t)edgernn_clamp_s16(edgernn_smmulr(a1, (int32_t)w1));
    }
    if (rows > 2) {
        out[2] = (int16_t)edgernn_clamp_s16(edgernn_smmulr(a2, (int32_t)w2));
    }
    if (rows > 3) {
        out[3] = (int16_t)edgernn_clamp_s16(edgernn_smmulr(a3, (int32_t)w3));
    }
    *px = xp - 2 * (n_input / 2);
    return w;
#else
    /* the C twin: the same sums, the weights read as the int16 halves they are (little-endian
     * words: a row's column-pair word is its two weights, low column first) */
    int32_t a0 = bias ? (int32_t)w[0] : 0;
    int32_t a1 = bias ? (int32_t)w[1] : 0;
    int32_t a2 = bias ? (int32_t)w[2] : 0;
    int32_t a3 = bias ? (int32_t)w[3] : 0;
    int c;
    w += bias ? 4 : 0;
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 4
#endif
    for (c = 0; c < n_input; c += 2) {
        const int32_t x0 = x[c];
        const int32_t x1 = c + 1 < n_input ? x[c + 1] : 0; /* an odd input's last column: high halves 0 */
        int16_t h[8];
        memcpy(h, w, sizeof h);
        a0 += h[0] * x0 + h[1] * x1;
        a1 += h[2] * x0 + h[3] * x1;
        a2 += h[4] * x0 + h[5] * x1;
        a3 += h[6] * x0 + h[7] * x1;
        w += 4;
    }
    out[0] = (int16_t)edgernn_clamp_s16(edgernn_smmulr(a0, (int32_t)w[0]));
    if (rows > 1) {
        out[1] = (int16_t)edgernn_clamp_s16(edgernn_smmulr(a1, (int32_t)w[1]));
    }
    if (rows > 2) {
        out[2] = (int16_t)edgernn_clamp_s16(edgernn_smmulr(a2, (int32_t)w[2]));
    }
    if (rows > 3) {
        out[3] = (int16_t)edgernn_clamp_s16(edgernn_smmulr(a3, (int32_t)w[3]));
    }
    return w + 4;
#endif
}

#if EDGERNN_FC16W_ASM
/* A pass over a short input (at most six columns, even) held in registers xw[] for the whole FC:
 * no input load, no pointer step. */
static inline EDGERNN_ALWAYS_INLINE const uint32_t *edgernn_fc16w_pass_held(const uint32_t *w, const uint32_t *xw,
                                                                            int16_t *out, int n_input, int rows,
                                                                            int bias)
{
    register int32_t a0 __asm__("r0");
    register int32_t a1 __asm__("r1");
    register int32_t a2 __asm__("r2");
    register int32_t a3 __asm__("r3");
    register uint32_t w0 __asm__("r8");
    register uint32_t w1 __asm__("r9");
    register uint32_t w2 __asm__("r10");
    register uint32_t w3 __asm__("r11");
    int c;
    if (bias) {
        __asm__("ldmia %[w]!, {%[a0], %[a1], %[a2], %[a3]}"
                : [w] "+r"(w), [a0] "=r"(a0), [a1] "=r"(a1), [a2] "=r"(a2), [a3] "=r"(a3)
                :
                : "memory");
    }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 4
#endif
    for (c = 0; c < n_input / 2; ++c) {
        if (c == 0 && !bias) {
            __asm__("ldmia %[w]!, {%[w0], %[w1], %[w2], %[w3]}\n"
                    " smuad %[a0], %[w0], %[xv]\n smuad %[a1], %[w1], %[xv]\n"
                    " smuad %[a2], %[w2], %[xv]\n smuad %[a3], %[w3], %[xv]\n"
                    : [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3), [w] "+r"(w),
                      [w0] "=&r"(w0), [w1] "=&r"(w1), [w2] "=&r"(w2), [w3] "=&r"(w3)
                    : [xv] "r"(xw[c])
                    : "memory");
        } else {
            __asm__("ldmia %[w]!, {%[w0], %[w1], %[w2], %[w3]}\n"
                    " smlad %[a0], %[w0], %[xv], %[a0]\n smlad %[a1], %[w1], %[xv], %[a1]\n"
                    " smlad %[a2], %[w2], %[xv], %[a2]\n smlad %[a3], %[w3], %[xv], %[a3]\n"
                    : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [w] "+r"(w),
                      [w0] "=&r"(w0), [w1] "=&r"(w1), [w2] "=&r"(w2), [w3] "=&r"(w3)
                    : [xv] "r"(xw[c])
                    : "memory");
        }
    }
    __asm__("ldmia %[w]!, {%[w0], %[w1], %[w2], %[w3]}"
            : [w] "+r"(w), [w0] "=r"(w0), [w1] "=r"(w1), [w2] "=r"(w2), [w3] "=r"(w3)
            :
            : "memory");
    out[0] = (int16_t)edgernn_clamp_s16(edgernn_smmulr(a0, (int32_t)w0));
    if (rows > 1) {
        out[1] = (int16_t)edgernn_clamp_s16(edgernn_smmulr(a1, (int32_t)w1));
    }
    if (rows > 2) {
        out[2] = (int16_t)edgernn_clamp_s16(edgernn_smmulr(a2, (int32_t)w2));
    }
    if (rows > 3) {
        out[3] = (int16_t)edgernn_clamp_s16(edgernn_smmulr(a3, (int32_t)w3));
    }
    return w;
}
#endif

/* The FC: passes of four rows, the last one peeled when it holds padding rows. */
static inline EDGERNN_ALWAYS_INLINE void edgernn_fc16w_c(const edgernn_fc16w *f, int n_input, int n_output, int bias)
{
    const uint32_t *w = f->stream;
    const int16_t *x = f->input;
    int16_t *out = f->out;
    int k;
#if EDGERNN_FC16W_ASM
    if (n_input % 2 == 0 && n_input >= 2 && n_input <= 6) {
        uint32_t xw[3] = {0, 0, 0};
        memcpy(xw, x, 2 * (size_t)n_input);
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 2 /* one loop test per eight rows */
#endif
        for (k = 0; k < n_output / 4; ++k) {
            w = edgernn_fc16w_pass_held(w, xw, out, n_input, 4, bias);
            out += 4;
        }
        if (n_output % 4) {
            (void)edgernn_fc16w_pass_held(w, xw, out, n_input, n_output % 4, bias);
        }
        return;
    }
#endif
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 2
#endif
    for (k = 0; k < n_output / 4; ++k) {
        w = edgernn_fc16w_pass(w, &x, out, n_input, 4, bias);
        out += 4;
    }
    if (n_output % 4) {
        (void)edgernn_fc16w_pass(w, &x, out, n_input, n_output % 4, bias);
    }
}

#define EDGERNN_FC16W_KERNEL(name, n_input, n_output, bias) \
    static void name(const edgernn_fc16w *fc)               \
    {                                                       \
        edgernn_fc16w_c(fc, n_input, n_output, bias);       \
    }

#ifdef __cplusplus
}
#endif

#endif /* EDGERNN_FC16W_H */
