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

#if EDGERNN_USE_SMLAD && defined(__GNUC__) && !defined(__clang__) && defined(__thumb2__)
#define EDGERNN_FC16W_ASM 1
#else
#define EDGERNN_FC16W_ASM 0
#endif

/* One pass of four rows over x (the C twin); stores the first `rows`. */
static inline EDGERNN_ALWAYS_INLINE const uint32_t *edgernn_fc16w_pass(const uint32_t *w, const int16_t *x, int16_t *out,
                                                                       int n_input, int rows, int bias)
{
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
}

/* The FC: passes of four rows, the last one peeled when it holds padding rows (the C twin). */
static inline EDGERNN_ALWAYS_INLINE void edgernn_fc16w_c(const edgernn_fc16w *f, int n_input, int n_output, int bias)
{
    const uint32_t *w = f->stream;
    int16_t *out = f->out;
    int k;
    for (k = 0; k < n_output / 4; ++k) {
        w = edgernn_fc16w_pass(w, f->input, out, n_input, 4, bias);
        out += 4;
    }
    if (n_output % 4) {
        (void)edgernn_fc16w_pass(w, f->input, out, n_input, n_output % 4, bias);
    }
}

#if EDGERNN_FC16W_ASM
/* The Cortex-M DSP form: one asm statement per pass (sums, requantization), its shape written
 * into the assembly from the kernel's literal arguments (B: bias 0 / 1, N: n_input), the
 * assembler's .if / .rept unrolling the column pairs. The sums live in r0-r3 (the bias LDM
 * needs ascending registers; register variables bind only at an asm's operands, so nothing
 * is kept in them between statements), each LDM's four words in r8-r11. */
#define EDGERNN_FC16W_S_(v) #v
#define EDGERNN_FC16W_S(v) EDGERNN_FC16W_S_(v)
#define EDGERNN_FC16W_MLA4(x)                                                                                \
    " smlad %[a0], r8, %[" x "], %[a0]\n smlad %[a1], r9, %[" x "], %[a1]\n"                                 \
    " smlad %[a2], r10, %[" x "], %[a2]\n smlad %[a3], r11, %[" x "], %[a3]\n"
#define EDGERNN_FC16W_MUL4(x)                                                                                \
    " smuad %[a0], r8, %[" x "]\n smuad %[a1], r9, %[" x "]\n smuad %[a2], r10, %[" x "]\n smuad %[a3], r11, %[" x "]\n"
#define EDGERNN_FC16W_LDM " ldmia %[w]!, {r8, r9, r10, r11}\n"
#define EDGERNN_FC16W_BIAS(B) ".if " EDGERNN_FC16W_S(B) "\n ldmia %[w]!, {%[a0], %[a1], %[a2], %[a3]}\n.endif\n"
/* the first column pair against x: SMLAD onto the bias, or SMUAD */
#define EDGERNN_FC16W_FIRST(B, x)                                                                            \
    EDGERNN_FC16W_LDM ".if " EDGERNN_FC16W_S(B) "\n" EDGERNN_FC16W_MLA4(x) ".else\n" EDGERNN_FC16W_MUL4(x) ".endif\n"
#define EDGERNN_FC16W_REQUANT                                                                                \
    EDGERNN_FC16W_LDM                                                                                        \
    " smmulr %[a0], %[a0], r8\n ssat %[a0], #16, %[a0]\n smmulr %[a1], %[a1], r9\n ssat %[a1], #16, %[a1]\n" \
    " smmulr %[a2], %[a2], r10\n ssat %[a2], #16, %[a2]\n smmulr %[a3], %[a3], r11\n ssat %[a3], #16, %[a3]\n"
/* a pass reading the input through xp (post-incremented): column pairs two at a time (LDRD),
 * then one more pair, then an odd last column (the low halves, SMLABB) */
#define EDGERNN_FC16W_STREAM_ASM(B, N)                                                                       \
    EDGERNN_FC16W_BIAS(B)                                                                                    \
    ".if (" EDGERNN_FC16W_S(N) ") / 4\n"                                                                     \
    " ldrd %[xv], %[xv2], [%[xp]], #8\n" EDGERNN_FC16W_FIRST(B, "xv") EDGERNN_FC16W_LDM EDGERNN_FC16W_MLA4("xv2") \
    " .rept (" EDGERNN_FC16W_S(N) ") / 4 - 1\n"                                                              \
    " ldrd %[xv], %[xv2], [%[xp]], #8\n" EDGERNN_FC16W_LDM EDGERNN_FC16W_MLA4("xv") EDGERNN_FC16W_LDM          \
    EDGERNN_FC16W_MLA4("xv2")                                                                                \
    " .endr\n"                                                                                               \
    ".endif\n"                                                                                               \
    ".if ((" EDGERNN_FC16W_S(N) ") / 2) %% 2\n"                                                              \
    " ldr %[xv], [%[xp]], #4\n"                                                                              \
    " .if ((" EDGERNN_FC16W_S(N) ") / 4) + " EDGERNN_FC16W_S(B) "\n" EDGERNN_FC16W_LDM EDGERNN_FC16W_MLA4("xv") \
    " .else\n" EDGERNN_FC16W_LDM EDGERNN_FC16W_MUL4("xv") " .endif\n"                                         \
    ".endif\n"                                                                                               \
    ".if (" EDGERNN_FC16W_S(N) ") %% 2\n"                                                                    \
    " ldrsh %[xv], [%[xp]]\n" EDGERNN_FC16W_LDM                                                              \
    " .if ((" EDGERNN_FC16W_S(N) ") / 2) + " EDGERNN_FC16W_S(B) "\n"                                         \
    " smlabb %[a0], r8, %[xv], %[a0]\n smlabb %[a1], r9, %[xv], %[a1]\n"                                     \
    " smlabb %[a2], r10, %[xv], %[a2]\n smlabb %[a3], r11, %[xv], %[a3]\n"                                   \
    " .else\n"                                                                                               \
    " smulbb %[a0], r8, %[xv]\n smulbb %[a1], r9, %[xv]\n smulbb %[a2], r10, %[xv]\n smulbb %[a3], r11, %[xv]\n" \
    " .endif\n"                                                                                              \
    ".endif\n" EDGERNN_FC16W_REQUANT
/* a pass over a short input (2, 4 or 6 columns) held in registers x0..x2 for the whole FC */
#define EDGERNN_FC16W_HELD_ASM(B, N)                                                                         \
    EDGERNN_FC16W_BIAS(B) EDGERNN_FC16W_FIRST(B, "x0")                                                       \
    ".if (" EDGERNN_FC16W_S(N) ") > 2\n" EDGERNN_FC16W_LDM EDGERNN_FC16W_MLA4("x1") ".endif\n"               \
    ".if (" EDGERNN_FC16W_S(N) ") > 4\n" EDGERNN_FC16W_LDM EDGERNN_FC16W_MLA4("x2") ".endif\n"               \
    EDGERNN_FC16W_REQUANT
#define EDGERNN_FC16W_STORE(rows)                                                                            \
    do {                                                                                                     \
        out[0] = (int16_t)a0;                                                                                \
        if ((rows) > 1) {                                                                                    \
            out[1] = (int16_t)a1;                                                                            \
        }                                                                                                    \
        if ((rows) > 2) {                                                                                    \
            out[2] = (int16_t)a2;                                                                            \
        }                                                                                                    \
        if ((rows) > 3) {                                                                                    \
            out[3] = (int16_t)a3;                                                                            \
        }                                                                                                    \
    } while (0)
#define EDGERNN_FC16W_OUTS [a0] "=&r"(a0), [a1] "=&r"(a1), [a2] "=&r"(a2), [a3] "=&r"(a3), [w] "+r"(w)
/* the four rows' stores in the asm (ST 1: a full pass; in C, gcc would merge them into words) */
#define EDGERNN_FC16W_ST4(ST)                                                                                \
    ".if " EDGERNN_FC16W_S(ST) "\n strh %[a0], [%[out]]\n strh %[a1], [%[out], #2]\n"                        \
    " strh %[a2], [%[out], #4]\n strh %[a3], [%[out], #6]\n.endif\n"
#define EDGERNN_FC16W_PASS(B, N, ST, rows)                                                                   \
    do {                                                                                                     \
        register int32_t a0 __asm__("r0");                                                                   \
        register int32_t a1 __asm__("r1");                                                                   \
        register int32_t a2 __asm__("r2");                                                                   \
        register int32_t a3 __asm__("r3");                                                                   \
        if (held) {                                                                                          \
            __asm__ volatile(EDGERNN_FC16W_HELD_ASM(B, N) EDGERNN_FC16W_ST4(ST)                                       \
                    : EDGERNN_FC16W_OUTS                                                                     \
                    : [x0] "r"(xw[0]), [x1] "r"(xw[1]), [x2] "r"(xw[2]), [out] "r"(out)                      \
                    : "r8", "r9", "r10", "r11", "memory");                                                   \
        } else {                                                                                             \
            uint32_t xv;                                                                                     \
            uint32_t xv2;                                                                                    \
            __asm__ volatile(EDGERNN_FC16W_STREAM_ASM(B, N) EDGERNN_FC16W_ST4(ST)                                     \
                    : EDGERNN_FC16W_OUTS, [xp] "+r"(xp), [xv] "=&r"(xv), [xv2] "=&r"(xv2)                    \
                    : [out] "r"(out)                                                                         \
                    : "r8", "r9", "r10", "r11", "memory");                                                   \
            xp -= 2 * ((N) / 2); /* back to the input's start: one SUB, no register holds x */               \
        }                                                                                                    \
        if (!(ST)) {                                                                                         \
            EDGERNN_FC16W_STORE(rows);                                                                       \
        }                                                                                                    \
    } while (0)

/* EDGERNN_FC16W_KERNEL(name, n_input, n_output, bias): `static void name(const edgernn_fc16w *fc)`.
 * A short input (at most six columns, even) is held in registers for the whole FC; the pass
 * loop runs two passes per iteration. */
#define EDGERNN_FC16W_KERNEL(name, n_input, n_output, bias)                                                  \
    static void name(const edgernn_fc16w *fc)                                                                \
    {                                                                                                        \
        const uint32_t *w = fc->stream;                                                                      \
        const int16_t *xp = fc->input;                                                                       \
        int16_t *out = fc->out;                                                                              \
        const int held = (n_input) % 2 == 0 && (n_input) <= 6;                                               \
        uint32_t xw[3] = {0, 0, 0};                                                                          \
        int k;                                                                                               \
        if (held) {                                                                                          \
            memcpy(xw, xp, (n_input) <= 6 ? 2 * (size_t)(n_input) : sizeof xw);                              \
        }                                                                                                    \
        _Pragma("GCC unroll 2") for (k = 0; k < (n_output) / 4; ++k)                                         \
        {                                                                                                    \
            EDGERNN_FC16W_PASS(bias, n_input, 1, 4);                                                            \
            out += 4;                                                                                        \
        }                                                                                                    \
        if ((n_output) % 4) {                                                                                \
            EDGERNN_FC16W_PASS(bias, n_input, 0, (n_output) % 4);                                               \
        }                                                                                                    \
    }
#else
#define EDGERNN_FC16W_KERNEL(name, n_input, n_output, bias) \
    static void name(const edgernn_fc16w *fc)               \
    {                                                       \
        edgernn_fc16w_c(fc, n_input, n_output, bias);       \
    }
#endif

#ifdef __cplusplus
}
#endif

#endif /* EDGERNN_FC16W_H */
