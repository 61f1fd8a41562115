/*
 * edgernn_pairs.h - LSTM gate kernels on row pairs: Cortex-M4/M7/M33 assembly, and its C twin.
 *
 * One gate of the LSTM step: the input product W x and the recurrent product U h of every unit,
 * each requantized to the Q3.12 pre-activation, and their saturating sum (TFLM's
 * CalculateLstmGate). The weights are laid out by edgernn at generation time so that one
 * 32-bit word holds two rows x two columns and feeds two SMLADs through one SXTB16:
 *
 *   word = (lo[j], hi[j] - (lo[j] < 0), lo[j+1], hi[j+1] - (lo[j+1] < 0))   (bytes, low first)
 *
 * With the borrow, each signed 16-bit half reads 256 hi + lo exactly, so SMLAD(word, x) adds
 * 256 hi.x + lo.x to an accumulator A, and SMLAD(SXTB16(word), x) adds lo.x to B: after all
 * columns, the low row's sum is B and the high row's is (A - B) >> 8 (exact while
 * |high sum| < 2^23, which the generator checks). x holds int16 inputs pre-scaled by
 * 2^(1 + left shift), so that requantization is edgernn_rq_prescaled (edgernn_fast.h).
 *
 * A gate's stream, per pass of up to three row pairs (six units): the input product's
 * accumulator start words (B, A per pair: the folded biases, pre-scaled), one weight word per
 * pair for each column pair of x, then the same for the recurrent product over h. Passes of
 * three pairs come first, then one pass of the remaining one or two. The kernel keeps six
 * accumulators in registers: per six columns one LDM of three x pairs, three LDMs of three
 * weight words, nine SXTB16 and eighteen SMLAD: 31 instructions for 36 multiply-accumulates.
 *
 * EDGERNN_PAIRS_GATE_KERNEL(name, pairs, n_input, n_cell, rs_input, rs_recurrent) defines
 * `static void name(const edgernn_pairs_gate *gate)`: naked assembly where the Arm DSP
 * extension is available, the C twin (edgernn_pairs_gate_c) elsewhere; the two compute the
 * same bits. The numbers must be literals (they become assembler immediates).
 */
#ifndef EDGERNN_PAIRS_H
#define EDGERNN_PAIRS_H

#include <stdint.h>

#include "edgernn_fast.h"

#ifdef __cplusplus
extern "C" {
#endif

/* One gate of one layer. The assembly reads the fields at the byte offsets in the comments
 * (32-bit pointers): keep the order. */
typedef struct {
    const uint32_t *stream;         /*  0: the gate's weight stream (layout above) */
    const int16_t *x16;             /*  4: this step's input, int16, pre-scaled for this gate */
    const int16_t *h16;             /*  8: the previous hidden state, int16, pre-scaled */
    const uint32_t *passes_end;     /* 12: end of the passes of three row pairs in the stream */
    int16_t *pre;                   /* 16: out: the gate's pre-activation of every unit */
    int32_t input_multiplier;       /* 20: input product requantization (Q0.31) */
    int32_t input_rounding;         /* 24: 2^(rs - 1) of its right shift rs (0 if none) */
    int32_t recurrent_multiplier;   /* 28: recurrent product requantization (Q0.31) */
    int32_t recurrent_rounding;     /* 32: 2^(rs - 1) */
} edgernn_pairs_gate;

/* The sums of `npairs` row pairs over `cols` int16 values of v (even length, zero-padded):
 * B and A as above, then decoded into acc[2k] (low row) and acc[2k + 1] (high row).
 * Advances *w past the pass's start words and weight words. */
static inline EDGERNN_ALWAYS_INLINE void edgernn_pairs_product(const uint32_t **w, int npairs, const int16_t *v,
                                                               int cols, int32_t *acc)
{
    const uint32_t *s = *w;
    uint32_t b[3];
    uint32_t a[3];
    int k;
    int c;
    for (k = 0; k < npairs; ++k) {
        b[k] = s[2 * k];
        a[k] = s[2 * k + 1];
    }
    s += 2 * npairs;
    for (c = 0; c < (cols + 1) / 2; ++c) {
        const int32_t x0 = v[2 * c];
        const int32_t x1 = v[2 * c + 1];
        for (k = 0; k < npairs; ++k) {
            const uint32_t word = *s++;
            /* SMLAD(word, x): the 16-bit halves; SMLAD(SXTB16(word), x): bytes 0 and 2 */
            a[k] += (uint32_t)((int16_t)(word & 0xFFFFu) * x0) + (uint32_t)((int16_t)(word >> 16) * x1);
            b[k] += (uint32_t)((int8_t)(word & 0xFFu) * x0) + (uint32_t)((int8_t)((word >> 16) & 0xFFu) * x1);
        }
    }
    for (k = 0; k < npairs; ++k) {
        acc[2 * k] = (int32_t)b[k];
        acc[2 * k + 1] = (int32_t)(a[k] - b[k]) >> 8;
    }
    *w = s;
}

/* The C twin of the assembly kernel: the gate's pre-activations of 2 `pairs` units. */
static inline EDGERNN_ALWAYS_INLINE void edgernn_pairs_gate_c(const edgernn_pairs_gate *g, int pairs, int n_input,
                                                              int n_cell, int rs_input, int rs_recurrent)
{
    const uint32_t *w = g->stream;
    int16_t *pre = g->pre;
    int p0;
    for (p0 = 0; p0 < pairs; p0 += 3) {
        const int npairs = pairs - p0 < 3 ? pairs - p0 : 3;
        int32_t x_acc[6];
        int32_t h_acc[6];
        int r;
        edgernn_pairs_product(&w, npairs, g->x16, n_input, x_acc);
        edgernn_pairs_product(&w, npairs, g->h16, n_cell, h_acc);
        for (r = 0; r < 2 * npairs; ++r) {
            /* TFLM AddElementWise of the two int16 products, saturating (QADD16) */
            pre[2 * p0 + r] = (int16_t)edgernn_clamp_s16(
                edgernn_rq_prescaled(x_acc[r], g->input_multiplier, rs_input) +
                edgernn_rq_prescaled(h_acc[r], g->recurrent_multiplier, rs_recurrent));
        }
    }
}

/* ---------------------------------------------------------------------------------------
 * FULLY_CONNECTED int8 -> int8 of a loop step (GRU, SimpleRNN) on the same row pairs: one
 * product over an int16 input pre-scaled by 2^(1 + left shift), then each row requantized
 * with its own (per-channel) multiplier: clamp8(SMMLAR(acc, m, R + (acc < 0 ? -1 : 0)) >> rs)
 * with R = zero point x 2^rs + 2^(rs - 1) (edgernn_rq_prescaled, with the zero point folded
 * into the rounding term; for rs = 0, R = zero point and no sign term). The stream, per pass
 * of up to three pairs: the start words and weight words as above, then per row m, R, and rs
 * when the rows' shifts differ (EDGERNN_FC8_KERNEL's rs = -1).
 * ------------------------------------------------------------------------------------- */
typedef struct {
    const uint32_t *stream;     /*  0 */
    const int16_t *x16;         /*  4: the input, int16, pre-scaled, even length */
    const uint32_t *passes_end; /*  8: end of the passes of three row pairs */
    int8_t *out;                /* 12 */
} edgernn_fc8;

static inline EDGERNN_ALWAYS_INLINE void edgernn_fc8_c(const edgernn_fc8 *f, int pairs, int n_input, int rs)
{
    const uint32_t *w = f->stream;
    int8_t *out = f->out;
    int p0;
    for (p0 = 0; p0 < pairs; p0 += 3) {
        const int npairs = pairs - p0 < 3 ? pairs - p0 : 3;
        int32_t acc[6];
        int r;
        edgernn_pairs_product(&w, npairs, f->x16, n_input, acc);
        for (r = 0; r < 2 * npairs; ++r) {
            const int32_t m = (int32_t)w[0];
            const int32_t rounding = (int32_t)w[1];
            const int row_rs = rs >= 0 ? rs : (int)w[2];
            w += rs >= 0 ? 2 : 3;
            if (row_rs == 0) {
                *out++ = (int8_t)edgernn_clamp_s8(edgernn_smmlar(acc[r], m, rounding));
            } else {
                *out++ = (int8_t)edgernn_clamp_s8(edgernn_smmlar(acc[r], m, rounding + (acc[r] >> 31)) >> row_rs);
            }
        }
    }
}

/* ---------------------------------------------------------------------------------------
 * A gate of an int8 loop step (GRU, SimpleRNN --state int8): FC8 of the input x and FC8 of the
 * hidden state h over the same rows, each row requantized to int8 as edgernn_fc8_c does, then
 * TFLM's ADD of the two as the generator's exact fit clamp8((a P1 + b P2 + K) >> S) (a the x
 * row, b the h row) and a 256-entry int8 table (LOGISTIC / TANH): out = table[that]. The
 * stream, per pass of up to three pairs: the x FC's pass (start words, weight words, per row
 * m, R and rs when its rows' shifts differ), then the h FC's pass. The two FC outputs and the
 * ADD's never reach memory. xr = 1 (an input of at most 6 values): the x FC's pass holds its
 * rows one by one instead of in pairs, each a start word and (n_x + 1) / 2 words of two int16
 * weights (SMLAD on the input pairs held in registers: no pair decoding, 4 instructions a row).
 * ------------------------------------------------------------------------------------- */
typedef struct {
    const uint32_t *stream;     /*  0 */
    const int16_t *x16;         /*  4: the input, int16, pre-scaled, even length */
    const int16_t *h16;         /*  8: the hidden state, int16, pre-scaled, even length */
    int8_t *out;                /* 12 */
    const uint32_t *passes_end; /* 16: end of the passes of three row pairs */
    int32_t p1;                 /* 20 */
    int32_t p2;                 /* 24 */
    int32_t k;                  /* 28 */
    const int8_t *table;        /* 32: the table's entry 0 (entries -128..127) */
    /* EDGERNN_FC8_GATE_MUL_KERNEL: the h row b becomes TFLM's MUL of g[i] and b first, in the
     * pre-scaled form of edgernn_mul_prescaled_s8: clamp8(SMMLAR((g + og)((b << k) + ohk), m,
     * R + [rs > 0] (p >> 31)) >> rs), ohk = zero point x 2^k */
    const int8_t *g;            /* 36 */
    int32_t og;                 /* 40 */
    int32_t ohk;                /* 44 */
    int32_t rounding;           /* 48 */
    int32_t m;                  /* 52 */
} edgernn_fc8_gate;

/* One row of an FC8 pass, requantized to int8 (the stream's m, R and, for rs < 0, rs). */
static inline EDGERNN_ALWAYS_INLINE int32_t edgernn_fc8_row(int32_t acc, const uint32_t **w, int rs)
{
    const int32_t m = (int32_t)(*w)[0];
    const int32_t rounding = (int32_t)(*w)[1];
    const int row_rs = rs >= 0 ? rs : (int)(*w)[2];
    *w += rs >= 0 ? 2 : 3;
    if (row_rs == 0) {
        return edgernn_clamp_s8(edgernn_smmlar(acc, m, rounding));
    }
    return edgernn_clamp_s8(edgernn_smmlar(acc, m, rounding + (acc >> 31)) >> row_rs);
}

static inline EDGERNN_ALWAYS_INLINE void edgernn_fc8_gate_c(const edgernn_fc8_gate *g, int pairs, int n_x, int n_h,
                                                            int rs_x, int rs_h, int s, int mk, int mrs, int xr)
{
    const uint32_t *w = g->stream;
    const int8_t *gv = g->g;
    int8_t *out = g->out;
    int p0;
    for (p0 = 0; p0 < pairs; p0 += 3) {
        const int npairs = pairs - p0 < 3 ? pairs - p0 : 3;
        int32_t xa[6];
        int32_t ha[6];
        int r;
        if (xr) { /* the x rows one by one: a start word, then (n_x + 1) / 2 words of two int16 weights */
            for (r = 0; r < 2 * npairs; ++r) {
                uint32_t acc = w[0];
                int c;
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 4
#endif
                for (c = 0; c < (n_x + 1) / 2; ++c) {
                    const uint32_t word = w[1 + c];
                    acc += (uint32_t)((int16_t)(word & 0xFFFFu) * (int32_t)g->x16[2 * c]) +
                           (uint32_t)(((int32_t)word >> 16) * (int32_t)g->x16[2 * c + 1]);
                }
                xa[r] = (int32_t)acc;
                w += 1 + (n_x + 1) / 2;
            }
        } else {
            edgernn_pairs_product(&w, npairs, g->x16, n_x, xa);
        }
        for (r = 0; r < 2 * npairs; ++r) {
            xa[r] = edgernn_fc8_row(xa[r], &w, rs_x);
        }
        edgernn_pairs_product(&w, npairs, g->h16, n_h, ha);
        for (r = 0; r < 2 * npairs; ++r) {
            int32_t b = edgernn_fc8_row(ha[r], &w, rs_h);
            int32_t v;
            if (mk > 0) { /* MUL(g, b), pre-scaled by 2^mk */
                const int32_t q = (*gv++ + g->og) * ((b << mk) + g->ohk);
                b = edgernn_clamp_s8(mrs ? edgernn_smmlar(q, g->m, g->rounding + (q >> 31)) >> mrs
                                         : edgernn_smmlar(q, g->m, g->rounding));
            }
            v = b * g->p2 + xa[r] * g->p1 + g->k;
            *out++ = g->table[edgernn_clamp_s8(v >> s)];
        }
    }
}

/* ---------------------------------------------------------------------------------------
 * FULLY_CONNECTED 16x8 of a loop step (--state int16): int16 input (any value), int8 weights,
 * int64 bias, int16 output; TFLM's reference 16x8 path: y = clamp16((acc m + 2^(s-1)) >> s)
 * with the 16-bit multiplier m and the total right shift s. The same row-pair words, but A
 * accumulates in 64 bits (SMLALD), since the high row's sum of an int16 input may pass 2^23:
 * the low row's sum is B, the high row's (A - B) >> 8. The generator checks every row's
 * |sum| < 2^31 / 2^ls, so that (acc m + 2^(s-1)) >> s = SMMULR(acc 2^ls, m 2^(32 - s - ls))
 * exactly (m 2^(32 - s - ls) < 2^31). The stream, per pass of up to two pairs: per pair the
 * start words B, A low, A high (from the bias), per column pair one word per pair, when
 * n_input is odd one tail word per pair (the two rows' last weights, 16 bits each), then per
 * row M and ls. A padding row (odd n_output) is computed and not stored.
 * ------------------------------------------------------------------------------------- */
typedef struct {
    const uint32_t *stream;
    const int16_t *input;
    int16_t *out;
} edgernn_fc16;

#if EDGERNN_USE_SMLAD
#define EDGERNN_FC16_SMLAD(w, x, acc) __smlad((w), (x), (acc))
#define EDGERNN_FC16_SMLALD(w, x, acc) __smlald((w), (x), (acc))
#define EDGERNN_FC16_SXTB16(w) __sxtb16(w)
#elif defined(__ARM_ARCH_7M__)
#define EDGERNN_FC16_SMLAD(w, x, acc) edgernn_fc16_smlad((w), (x), (acc))
#define EDGERNN_FC16_SMLALD(w, x, acc) edgernn_fc16_smlald((w), (x), (acc))
#define EDGERNN_FC16_SXTB16(w) edgernn_fc16_sxtb16(w)
static inline uint32_t edgernn_fc16_sxtb16(uint32_t w)
{
    return (uint32_t)(uint16_t)(int16_t)(int8_t)(w & 0xFFu) | ((uint32_t)(uint16_t)(int16_t)(int8_t)((w >> 16) & 0xFFu) << 16);
}
static inline int32_t edgernn_fc16_smlad(uint32_t w, uint32_t x, int32_t acc)
{
    return (int32_t)((uint32_t)acc + (uint32_t)((int16_t)(w & 0xFFFFu) * (int16_t)(x & 0xFFFFu)) +
                     (uint32_t)((int16_t)(w >> 16) * (int16_t)(x >> 16)));
}
static inline int64_t edgernn_fc16_smlald(uint32_t w, uint32_t x, int64_t acc)
{
    return acc + (int32_t)(int16_t)(w & 0xFFFFu) * (int32_t)(int16_t)(x & 0xFFFFu) +
           (int64_t)((int32_t)(int16_t)(w >> 16) * (int32_t)(int16_t)(x >> 16));
}
#endif
/* the high row's sum as A - B in 64 bits: with the DSP extension, and on the Armv7-M (SMLAL);
 * elsewhere (Armv6-M, hosts) each row's weights are decoded and the high sum kept in 32 bits */
#if EDGERNN_USE_SMLAD || defined(__ARM_ARCH_7M__)
#define EDGERNN_FC16_WIDE 1
#else
#define EDGERNN_FC16_WIDE 0
#endif

/* One pass of np (1 or 2, a literal) row pairs; stores the first `rows` of its 2 np rows. ls: every
 * row's left shift (a literal; -1: each row's from the stream, after its multiplier). */
static inline EDGERNN_ALWAYS_INLINE const uint32_t *edgernn_fc16_pass(const uint32_t *w, const int16_t *x, int16_t *out,
                                                                      int np, int n_input, int rows, int ls)
{
    int32_t b0 = (int32_t)w[0];
    int32_t b1 = np == 2 ? (int32_t)w[3] : 0;
#if EDGERNN_FC16_WIDE
    int64_t a0; /* (w[2] << 32) | w[1]: the little-endian words, one LDRD */
    int64_t a1 = 0;
    memcpy(&a0, w + 1, 8);
    if (np == 2) {
        memcpy(&a1, w + 4, 8);
    }
#else
    /* the high row's start: (A - B) / 256 of the start words (the bias) */
    int32_t d0 = (int32_t)(((int64_t)(((uint64_t)w[2] << 32) | w[1]) - b0) / 256);
    int32_t d1 = np == 2 ? (int32_t)(((int64_t)(((uint64_t)w[5] << 32) | w[4]) - b1) / 256) : 0;
#endif
    int32_t acc[4];
    int c;
    int r;
    w += 3 * np;
#if EDGERNN_USE_SMLAD && defined(__GNUC__) && defined(__thumb2__)
    const int16_t *xp = x;
#endif
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 64
#endif
    for (c = 0; c + 1 < n_input; c += 2) {
#if EDGERNN_USE_SMLAD && defined(__GNUC__) && defined(__thumb2__)
        /* one asm block per column pair (two, with one LDRD of the input, while two remain)
         * keeps the six accumulators in registers (gcc spills the 64-bit ones otherwise); the
         * same operations as the C below */
        uint32_t xv;
        uint32_t xv2;
        uint32_t w0;
        uint32_t w1;
        if (np == 2 && c + 3 < n_input) {
            __asm__("ldrd %[xv], %[xv2], [%[xp]], #8\n ldrd %[w0], %[w1], [%[w]], #8\n"
                    " smlald %Q[a0], %R[a0], %[w0], %[xv]\n sxtb16 %[w0], %[w0]\n smlad %[b0], %[w0], %[xv], %[b0]\n"
                    " smlald %Q[a1], %R[a1], %[w1], %[xv]\n sxtb16 %[w1], %[w1]\n smlad %[b1], %[w1], %[xv], %[b1]\n"
                    " ldrd %[w0], %[w1], [%[w]], #8\n"
                    " smlald %Q[a0], %R[a0], %[w0], %[xv2]\n sxtb16 %[w0], %[w0]\n smlad %[b0], %[w0], %[xv2], %[b0]\n"
                    " smlald %Q[a1], %R[a1], %[w1], %[xv2]\n sxtb16 %[w1], %[w1]\n smlad %[b1], %[w1], %[xv2], %[b1]\n"
                    : [a0] "+r"(a0), [a1] "+r"(a1), [b0] "+r"(b0), [b1] "+r"(b1), [w] "+r"(w), [xp] "+r"(xp),
                      [xv] "=&r"(xv), [xv2] "=&r"(xv2), [w0] "=&r"(w0), [w1] "=&r"(w1)
                    :
                    : "memory");
            c += 2;
        } else if (np == 2) {
            __asm__("ldr %[xv], [%[xp]], #4\n ldrd %[w0], %[w1], [%[w]], #8\n"
                    " smlald %Q[a0], %R[a0], %[w0], %[xv]\n sxtb16 %[w0], %[w0]\n smlad %[b0], %[w0], %[xv], %[b0]\n"
                    " smlald %Q[a1], %R[a1], %[w1], %[xv]\n sxtb16 %[w1], %[w1]\n smlad %[b1], %[w1], %[xv], %[b1]\n"
                    : [a0] "+r"(a0), [a1] "+r"(a1), [b0] "+r"(b0), [b1] "+r"(b1), [w] "+r"(w), [xp] "+r"(xp),
                      [xv] "=&r"(xv), [w0] "=&r"(w0), [w1] "=&r"(w1)
                    :
                    : "memory");
            (void)xv2;
        } else {
            __asm__("ldr %[xv], [%[xp]], #4\n ldr %[w0], [%[w]], #4\n"
                    " smlald %Q[a0], %R[a0], %[w0], %[xv]\n sxtb16 %[w0], %[w0]\n smlad %[b0], %[w0], %[xv], %[b0]\n"
                    : [a0] "+r"(a0), [b0] "+r"(b0), [w] "+r"(w), [xp] "+r"(xp), [xv] "=&r"(xv), [w0] "=&r"(w0)
                    :
                    : "memory");
            (void)xv2;
            (void)w1;
        }
#elif EDGERNN_FC16_WIDE
        uint32_t xv;
        memcpy(&xv, x + c, 4);
        b0 = EDGERNN_FC16_SMLAD(EDGERNN_FC16_SXTB16(w[0]), xv, b0);
        a0 = EDGERNN_FC16_SMLALD(w[0], xv, a0);
        if (np == 2) {
            b1 = EDGERNN_FC16_SMLAD(EDGERNN_FC16_SXTB16(w[1]), xv, b1);
            a1 = EDGERNN_FC16_SMLALD(w[1], xv, a1);
        }
        w += np;
#else
        /* no DSP: each row's weights decoded from the word (hi = (half - lo) / 256 exactly), the
         * high row's sum kept directly in 32 bits (its bound holds for every row) */
        const int32_t x0 = x[c];
        const int32_t x1 = x[c + 1];
        int k;
        for (k = 0; k < np; ++k) {
            const uint32_t word = w[k];
            const int32_t lo0 = (int8_t)(word & 0xFFu);
            const int32_t lo1 = (int8_t)((word >> 16) & 0xFFu);
            const int32_t hi0 = ((int32_t)(int16_t)(word & 0xFFFFu) - lo0) >> 8; /* exact multiples of 256 */
            const int32_t hi1 = ((int32_t)(int16_t)(word >> 16) - lo1) >> 8;
            if (k == 0) {
                b0 += lo0 * x0 + lo1 * x1;
                d0 += hi0 * x0 + hi1 * x1;
            } else {
                b1 += lo0 * x0 + lo1 * x1;
                d1 += hi0 * x0 + hi1 * x1;
            }
        }
        w += np;
#endif
    }
#if EDGERNN_FC16_WIDE
    if (ls >= 0 && ls <= 8 && n_input % 2 == 0) {
        /* the high row's sum already shifted: (A - B) >> (8 - ls), one 64-bit shift */
        acc[0] = (int32_t)((uint32_t)b0 << ls);
        acc[2] = (int32_t)((uint32_t)b1 << ls);
        acc[1] = (int32_t)((a0 - b0) >> (8 - ls));
        acc[3] = (int32_t)((a1 - b1) >> (8 - ls));
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 4
#endif
        for (r = 0; r < 2 * np; ++r) {
            if (r < rows) {
                out[r] = (int16_t)edgernn_clamp_s16(edgernn_smmulr(acc[r], (int32_t)w[0]));
            }
            w += 1;
        }
        return w;
    }
#endif
    acc[0] = b0;
    acc[2] = b1;
#if EDGERNN_FC16_WIDE
    acc[1] = (int32_t)((a0 - b0) >> 8);
    acc[3] = (int32_t)((a1 - b1) >> 8);
#else
    acc[1] = d0;
    acc[3] = d1;
#endif
    if (n_input % 2) {
        const int32_t xl = x[n_input - 1];
        for (r = 0; r < np; ++r) {
            acc[2 * r] += (int16_t)(w[r] & 0xFFFFu) * xl;
            acc[2 * r + 1] += (int16_t)(w[r] >> 16) * xl;
        }
        w += np;
    }
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 4
#endif
    for (r = 0; r < 2 * np; ++r) {
        if (r < rows) {
            const uint32_t shift = ls >= 0 ? (uint32_t)ls : w[1];
            out[r] = (int16_t)edgernn_clamp_s16(edgernn_smmulr((int32_t)((uint32_t)acc[r] << shift), (int32_t)w[0]));
        }
        w += ls >= 0 ? 1 : 2;
    }
    return w;
}

/* The FC: passes of two pairs, the last one peeled (it may hold the padding row), then one pair. */
static inline EDGERNN_ALWAYS_INLINE void edgernn_fc16_c(const edgernn_fc16 *f, int pairs, int n_input, int n_output,
                                                       int ls)
{
    const uint32_t *w = f->stream;
    const int full = pairs / 2;
    int k;
    for (k = 0; k + 1 < full; ++k) {
        w = edgernn_fc16_pass(w, f->input, f->out + 4 * k, 2, n_input, 4, ls);
    }
    if (full > 0) {
        w = edgernn_fc16_pass(w, f->input, f->out + 4 * (full - 1), 2, n_input, n_output - 4 * (full - 1) < 4 ? 3 : 4,
                              ls);
    }
    if (pairs % 2) {
        (void)edgernn_fc16_pass(w, f->input, f->out + 4 * full, 1, n_input, n_output - 4 * full, ls);
    }
}

/* EDGERNN_FC16_KERNEL(name, pairs, n_input, n_output, ls): `static void name(const edgernn_fc16 *fc)`;
 * ls is every row's left shift, or -1 when the stream holds one per row. */
#define EDGERNN_FC16_KERNEL(name, pairs, n_input, n_output, ls) \
    static void name(const edgernn_fc16 *fc)                    \
    {                                                           \
        edgernn_fc16_c(fc, pairs, n_input, n_output, ls);       \
    }

#if EDGERNN_USE_SMLAD && defined(__GNUC__) && defined(__thumb2__)
/* ---------------------------------------------------------------------------------------
 * The Thumb-2 kernel, as GNU assembler macros (defined once per assembly file, on first use).
 * Registers: r0 weight stream, r3-r8 the accumulators B0 A0 B1 A1 B2 A2, r9-r11 weight words;
 * the gate kernel walks x16 then h16 with r1 (LDMIA of three input pairs into r2, r12, lr; its
 * stack frame is described at edgernn_pairs_pass), the FC8 kernel reads x16 at r2 (LDRD of two
 * pairs into r12, lr) and writes through r1.
 * ------------------------------------------------------------------------------------- */
#define EDGERNN_PAIRS_ASM_MACROS                                                                \
    ".ifndef edgernn_pairs_macros\n"                                                            \
    ".set edgernn_pairs_macros, 1\n"                                                            \
    /* one column pair (x in register \x) into P row pairs: load P weight words, 3 P ops */     \
    ".macro edgernn_pairs_colpair P, x\n"                                                       \
    ".if \\P == 3\n ldmia r0!, {r9-r11}\n"                                                      \
    ".elseif \\P == 2\n ldmia r0!, {r9, r10}\n"                                                 \
    ".else\n ldr r9, [r0], #4\n.endif\n"                                                        \
    " smlad r4, r9, \\x, r4\n sxtb16 r9, r9\n smlad r3, r9, \\x, r3\n"                          \
    ".if \\P >= 2\n smlad r6, r10, \\x, r6\n sxtb16 r10, r10\n smlad r5, r10, \\x, r5\n.endif\n" \
    ".if \\P == 3\n smlad r8, r11, \\x, r8\n sxtb16 r11, r11\n smlad r7, r11, \\x, r7\n.endif\n" \
    ".endm\n"                                                                                   \
    /* two column pairs (x in \x1, \x2); one row pair: both weight words in one LDRD */       \
    ".macro edgernn_pairs_colpair2 P, x1, x2\n"                                                 \
    ".if \\P == 1\n ldrd r9, r10, [r0], #8\n"                                                   \
    " smlad r4, r9, \\x1, r4\n sxtb16 r9, r9\n smlad r3, r9, \\x1, r3\n"                        \
    " smlad r4, r10, \\x2, r4\n sxtb16 r10, r10\n smlad r3, r10, \\x2, r3\n"                    \
    ".else\n edgernn_pairs_colpair \\P, \\x1\n edgernn_pairs_colpair \\P, \\x2\n.endif\n"       \
    ".endm\n"                                                                                   \
    /* all columns of the vector at \base, fully unrolled: one LDRD per four columns */        \
    ".macro edgernn_pairs_columns P, cols, base\n"                                              \
    ".set edgernn_pairs_q, 0\n"                                                                 \
    ".rept (\\cols + 1) / 4\n"                                                                  \
    " ldrd r12, lr, [\\base, #edgernn_pairs_q * 4]\n"                                           \
    " edgernn_pairs_colpair2 \\P, r12, lr\n"                                                   \
    ".set edgernn_pairs_q, edgernn_pairs_q + 2\n"                                               \
    ".endr\n"                                                                                   \
    ".if ((\\cols + 1) / 2) % 2\n"                                                              \
    " ldr r12, [\\base, #edgernn_pairs_q * 4]\n edgernn_pairs_colpair \\P, r12\n"               \
    ".endif\n"                                                                                  \
    ".endm\n"                                                                                   \
    /* requantize accumulator \r to int16 (edgernn_rq_prescaled): r10 multiplier, r11 rounding */ \
    ".macro edgernn_pairs_rq r, rs\n"                                                           \
    ".if \\rs == 0\n smmulr \\r, \\r, r10\n ssat \\r, #16, \\r\n"                               \
    ".else\n add r12, r11, \\r, asr #31\n smmlar \\r, \\r, r10, r12\n"                          \
    " ssat \\r, #16, \\r, asr #\\rs\n.endif\n"                                                  \
    ".endm\n"                                                                                   \
    /* decode a pair (B in \b, A in \a), requantize both rows, pack them into \b */            \
    ".macro edgernn_pairs_rq_pair b, a, rs\n"                                                   \
    " sub \\a, \\a, \\b\n asr \\a, \\a, #8\n"                                                   \
    " edgernn_pairs_rq \\b, \\rs\n edgernn_pairs_rq \\a, \\rs\n"                                \
    " pkhbt \\b, \\b, \\a, lsl #16\n"                                                           \
    ".endm\n"                                                                                   \
    ".macro edgernn_pairs_rq_pass P, rs\n"                                                      \
    " edgernn_pairs_rq_pair r3, r4, \\rs\n"                                                     \
    ".if \\P >= 2\n edgernn_pairs_rq_pair r5, r6, \\rs\n.endif\n"                               \
    ".if \\P == 3\n edgernn_pairs_rq_pair r7, r8, \\rs\n.endif\n"                               \
    ".endm\n"                                                                                   \
    /* the accumulator start words of P pairs */                                              \
    ".macro edgernn_pairs_start P\n"                                                            \
    ".if \\P == 3\n ldmia r0!, {r3-r8}\n"                                                       \
    ".elseif \\P == 2\n ldmia r0!, {r3-r6}\n"                                                   \
    ".else\n ldmia r0!, {r3, r4}\n.endif\n"                                                     \
    ".endm\n"                                                                                   \
    /* all columns of the vector at r1 (advanced), three column pairs per load into r2, r12, lr */ \
    ".macro edgernn_pairs_columns_v P, cols\n"                                                  \
    ".rept (\\cols + 1) / 6\n"                                                                  \
    " ldmia r1!, {r2, r12, lr}\n"                                                               \
    " edgernn_pairs_colpair \\P, r2\n edgernn_pairs_colpair \\P, r12\n edgernn_pairs_colpair \\P, lr\n" \
    ".endr\n"                                                                                   \
    ".if ((\\cols + 1) / 2) % 3 == 2\n"                                                         \
    " ldmia r1!, {r12, lr}\n edgernn_pairs_colpair \\P, r12\n edgernn_pairs_colpair \\P, lr\n"   \
    ".elseif ((\\cols + 1) / 2) % 3 == 1\n"                                                     \
    " ldr r12, [r1]\n edgernn_pairs_colpair \\P, r12\n"                                         \
    ".endif\n"                                                                                  \
    ".endm\n"                                                                                   \
    /* one pass: P row pairs (2 P units) of the gate. Stack frame: [sp, #0..12) the packed     \
     * input-product results, #12 the output pointer, #16 the end of the three-pair passes,    \
     * #20 x16, #24 h16, #28 input multiplier and rounding, #36 recurrent ones */               \
    ".macro edgernn_pairs_pass P, ni, n, rsx, rsh\n"                                            \
    " ldr r1, [sp, #20]\n"                                                                      \
    " edgernn_pairs_start \\P\n"                                                                \
    " edgernn_pairs_columns_v \\P, \\ni\n"                                                      \
    " ldrd r10, r11, [sp, #28]\n"                                                               \
    " edgernn_pairs_rq_pass \\P, \\rsx\n"                                                       \
    ".if \\P == 3\n stmia sp, {r3, r5, r7}\n"                                                   \
    ".elseif \\P == 2\n strd r3, r5, [sp]\n"                                                    \
    ".else\n str r3, [sp]\n.endif\n"                                                            \
    " ldr r1, [sp, #24]\n"                                                                      \
    " edgernn_pairs_start \\P\n"                                                                \
    " edgernn_pairs_columns_v \\P, \\n\n"                                                       \
    " ldrd r10, r11, [sp, #36]\n"                                                               \
    " edgernn_pairs_rq_pass \\P, \\rsh\n"                                                       \
    ".if \\P == 3\n ldmia sp, {r9-r11}\n"                                                       \
    ".elseif \\P == 2\n ldrd r9, r10, [sp]\n"                                                   \
    ".else\n ldr r9, [sp]\n.endif\n"                                                            \
    " qadd16 r3, r3, r9\n"                                                                      \
    ".if \\P >= 2\n qadd16 r5, r5, r10\n.endif\n"                                               \
    ".if \\P == 3\n qadd16 r7, r7, r11\n.endif\n"                                               \
    " ldr r9, [sp, #12]\n"                                                                      \
    ".if \\P == 3\n stmia r9!, {r3, r5, r7}\n"                                                  \
    ".elseif \\P == 2\n stmia r9!, {r3, r5}\n"                                                  \
    ".else\n str r3, [r9], #4\n.endif\n"                                                        \
    " str r9, [sp, #12]\n"                                                                      \
    ".endm\n"                                                                                   \
    /* the kernel: passes of three pairs in a loop, then the remaining pairs */                 \
    ".macro edgernn_pairs_gate pairs, ni, n, rsx, rsh\n"                                        \
    " push {r4-r11, lr}\n sub sp, sp, #44\n"                                                    \
    " ldr r1, [r0, #16]\n str r1, [sp, #12]\n ldr r1, [r0, #12]\n str r1, [sp, #16]\n"          \
    " ldr r1, [r0, #4]\n str r1, [sp, #20]\n ldr r1, [r0, #8]\n str r1, [sp, #24]\n"            \
    " add r1, r0, #20\n ldmia r1, {r2-r5}\n add r1, sp, #28\n stmia r1, {r2-r5}\n"             \
    " ldr r0, [r0]\n"                                                                           \
    ".if \\pairs >= 3\n"                                                                        \
    "1:\n"                                                                                      \
    " edgernn_pairs_pass 3, \\ni, \\n, \\rsx, \\rsh\n"                                          \
    " ldr r9, [sp, #16]\n cmp r0, r9\n bne 1b\n"                                                \
    ".endif\n"                                                                                  \
    ".if \\pairs % 3\n"                                                                         \
    ".set edgernn_pairs_rest, \\pairs % 3\n"                                                    \
    " edgernn_pairs_pass edgernn_pairs_rest, \\ni, \\n, \\rsx, \\rsh\n"                         \
    ".endif\n"                                                                                  \
    " add sp, sp, #44\n pop {r4-r11, pc}\n"                                                     \
    ".endm\n"                                                                                   \
    /* FC8: requantize row \r to int8 and store it (r1 the output pointer) */                   \
    ".macro edgernn_fc8_rq r, rs\n"                                                             \
    ".if \\rs < 0\n ldmia r0!, {r9-r11}\n add r12, r10, \\r, asr #31\n"                        \
    " smmlar \\r, \\r, r9, r12\n asr \\r, \\r, r11\n ssat \\r, #8, \\r\n"                         \
    ".elseif \\rs == 0\n ldmia r0!, {r9, r10}\n smmlar \\r, \\r, r9, r10\n ssat \\r, #8, \\r\n"   \
    ".else\n ldmia r0!, {r9, r10}\n add r12, r10, \\r, asr #31\n"                               \
    " smmlar \\r, \\r, r9, r12\n ssat \\r, #8, \\r, asr #\\rs\n.endif\n"                        \
    " strb \\r, [r1], #1\n"                                                                    \
    ".endm\n"                                                                                   \
    ".macro edgernn_fc8_pair b, a, rs\n"                                                        \
    " sub \\a, \\a, \\b\n asr \\a, \\a, #8\n edgernn_fc8_rq \\b, \\rs\n edgernn_fc8_rq \\a, \\rs\n"    \
    ".endm\n"                                                                                   \
    /* the columns as a loop of eight per iteration (less flash), then the remaining ones;
     * [sp, #4] holds the end of the loop's part of the input, r2 is back at its start after */ \
    ".macro edgernn_pairs_columns_rolled P, cols, base\n"                                       \
    ".if (\\cols + 1) / 8\n"                                                                    \
    "2:\n"                                                                                      \
    ".rept 2\n ldrd r12, lr, [\\base], #8\n"                                                   \
    " edgernn_pairs_colpair \\P, r12\n edgernn_pairs_colpair \\P, lr\n.endr\n"                  \
    " ldr r9, [sp, #4]\n cmp \\base, r9\n bne 2b\n"                                             \
    ".endif\n"                                                                                  \
    ".if ((\\cols + 1) / 4) % 2\n"                                                              \
    " ldrd r12, lr, [\\base], #8\n edgernn_pairs_colpair \\P, r12\n edgernn_pairs_colpair \\P, lr\n" \
    ".endif\n"                                                                                  \
    ".if ((\\cols + 1) / 2) % 2\n ldr r12, [\\base], #4\n edgernn_pairs_colpair \\P, r12\n.endif\n" \
    " sub \\base, \\base, #((\\cols + 1) / 2) * 4\n"                                            \
    ".endm\n"                                                                                  \
    ".macro edgernn_fc8_pass P, ni, rs, rolled\n"                                              \
    " edgernn_pairs_start \\P\n"                                                               \
    ".if \\rolled\n edgernn_pairs_columns_rolled \\P, \\ni, r2\n"                              \
    ".else\n edgernn_pairs_columns \\P, \\ni, r2\n.endif\n"                                      \
    " edgernn_fc8_pair r3, r4, \\rs\n"                                                          \
    ".if \\P >= 2\n edgernn_fc8_pair r5, r6, \\rs\n.endif\n"                                   \
    ".if \\P == 3\n edgernn_fc8_pair r7, r8, \\rs\n.endif\n"                                   \
    ".endm\n"                                                                                   \
    /* the FC8 kernel: r0 the descriptor; [sp] the end of the three-pair passes */              \
    ".macro edgernn_fc8 pairs, ni, rs, rolled=0\n"                                             \
    " push {r4-r11, lr}\n sub sp, sp, #8\n"                                                     \
    " ldr r3, [r0, #8]\n str r3, [sp]\n ldr r1, [r0, #12]\n ldr r2, [r0, #4]\n ldr r0, [r0]\n"     \
    ".if \\rolled\n add r3, r2, #((\\ni + 1) / 8) * 16\n str r3, [sp, #4]\n.endif\n"              \
    ".if \\pairs >= 3\n"                                                                        \
    "1:\n edgernn_fc8_pass 3, \\ni, \\rs, \\rolled\n ldr r9, [sp]\n cmp r0, r9\n bne 1b\n"      \
    ".endif\n"                                                                                  \
    ".if \\pairs % 3\n"                                                                         \
    ".set edgernn_fc8_rest, \\pairs % 3\n edgernn_fc8_pass edgernn_fc8_rest, \\ni, \\rs, \\rolled\n" \
    ".endif\n"                                                                                  \
    " add sp, sp, #8\n pop {r4-r11, pc}\n"                                                      \
    ".endm\n"                                                                                   \
    /* gate (edgernn_fc8_gate_c): a pair (B in b, A in a) decoded and both rows requantized to \
     * int8 in place, the pair's words in one LDM (r1, r2, r9-r12 are free: the pass reloads r1, r2) */ \
    ".macro edgernn_gate_rq_pair b, a, rs, dec\n"                                               \
    ".if \\dec\n sub \\a, \\a, \\b\n asr \\a, \\a, #8\n.endif\n"                                  \
    ".if \\rs < 0\n ldmia r0!, {r1, r2, r9-r12}\n"                                              \
    " add r2, r2, \\b, asr #31\n smmlar \\b, \\b, r1, r2\n asr \\b, \\b, r9\n ssat \\b, #8, \\b\n"        \
    " add r11, r11, \\a, asr #31\n smmlar \\a, \\a, r10, r11\n asr \\a, \\a, r12\n ssat \\a, #8, \\a\n"  \
    ".elseif \\rs == 0\n ldmia r0!, {r9-r12}\n"                                                \
    " smmlar \\b, \\b, r9, r10\n ssat \\b, #8, \\b\n smmlar \\a, \\a, r11, r12\n ssat \\a, #8, \\a\n"     \
    ".else\n ldmia r0!, {r9-r12}\n"                                                              \
    " add r10, r10, \\b, asr #31\n smmlar \\b, \\b, r9, r10\n ssat \\b, #8, \\b, asr #\\rs\n"          \
    " add r12, r12, \\a, asr #31\n smmlar \\a, \\a, r11, r12\n ssat \\a, #8, \\a, asr #\\rs\n.endif\n"  \
    ".endm\n"                                                                                   \
    ".macro edgernn_gate_rq_pass P, rs, dec=1\n"                                                \
    " edgernn_gate_rq_pair r3, r4, \\rs, \\dec\n"                                              \
    ".if \\P >= 2\n edgernn_gate_rq_pair r5, r6, \\rs, \\dec\n.endif\n"                       \
    ".if \\P == 3\n edgernn_gate_rq_pair r7, r8, \\rs, \\dec\n.endif\n"                       \
    ".endm\n"                                                                                   \
    /* the x rows one by one (XR: the x FC in rows, edgernn_fc8_gate_c): row \\r from its start \
     * word and the input's W words, SMLAD over the input pairs held in r1, r2, lr */            \
    ".macro edgernn_gate_xrow r, W\n"                                                           \
    ".if \\W == 1\n ldmia r0!, {r9, r10}\n smlad \\r, r10, r1, r9\n"                              \
    ".elseif \\W == 2\n ldmia r0!, {r9-r11}\n smlad \\r, r10, r1, r9\n smlad \\r, r11, r2, \\r\n"      \
    ".else\n ldmia r0!, {r9-r12}\n smlad \\r, r10, r1, r9\n smlad \\r, r11, r2, \\r\n"                \
    " smlad \\r, r12, lr, \\r\n.endif\n"                                                          \
    ".endm\n"                                                                                   \
    ".macro edgernn_gate_xrows P, nx\n"                                                         \
    " ldr r2, [sp, #24]\n"                                                                     \
    ".if (\\nx + 1) / 2 == 1\n ldr r1, [r2]\n"                                                   \
    ".elseif (\\nx + 1) / 2 == 2\n ldrd r1, r2, [r2]\n"                                          \
    ".else\n ldmia r2, {r1, r2, lr}\n.endif\n"                                                  \
    " edgernn_gate_xrow r3, (\\nx + 1) / 2\n edgernn_gate_xrow r4, (\\nx + 1) / 2\n"               \
    ".if \\P >= 2\n edgernn_gate_xrow r5, (\\nx + 1) / 2\n edgernn_gate_xrow r6, (\\nx + 1) / 2\n.endif\n" \
    ".if \\P == 3\n edgernn_gate_xrow r7, (\\nx + 1) / 2\n edgernn_gate_xrow r8, (\\nx + 1) / 2\n.endif\n" \
    ".endm\n"                                                                                   \
    /* row r of h (register) with its x row in register x: ADD fit, table, store (r1 the output) */ \
    ".macro edgernn_gate_out1 r, x, S\n"                                                        \
    " mla \\x, \\x, r9, r11\n mla \\x, \\r, r10, \\x\n"                                           \
    ".if \\S\n ssat \\x, #8, \\x, asr #\\S\n.else\n ssat \\x, #8, \\x\n.endif\n"                  \
    " ldrsb \\x, [r12, \\x]\n strb \\x, [r1], #1\n"                                              \
    ".endm\n"                                                                                   \
    /* a row pair (b, a) with its x rows at [sp, #o], one LDRD */                                \
    ".macro edgernn_gate_out b, a, o, S\n"                                                      \
    " ldrd r2, lr, [sp, #\\o]\n edgernn_gate_out1 \\b, r2, \\S\n edgernn_gate_out1 \\a, lr, \\S\n"      \
    ".endm\n"                                                                                   \
    /* MUL(g, row \r) pre-scaled: r1 g, r9 og, r10 ohk, r11 R, r12 m; r2 scratch */              \
    ".macro edgernn_gate_mul r, MK, MRS\n"                                                      \
    " ldrsb r2, [r1], #1\n add r2, r2, r9\n add \\r, r10, \\r, lsl #\\MK\n mul \\r, r2, \\r\n"       \
    ".if \\MRS\n add r2, r11, \\r, asr #31\n smmlar \\r, \\r, r12, r2\n ssat \\r, #8, \\r, asr #\\MRS\n" \
    ".else\n smmlar \\r, \\r, r12, r11\n ssat \\r, #8, \\r\n.endif\n"                           \
    ".endm\n"                                                                                   \
    /* one pass of P pairs. Frame: [sp, #0..24) the x rows, #24 x16, #28 h16, #32 out,         \
     * #36 end of the three-pair passes, #40 P1, #44 P2, #48 K, #52 the table, #56 g, #60 og,  \
     * #64 ohk, #68 R, #72 m (MK = 0: no MUL) */                                              \
    ".macro edgernn_gate_pass P, nx, nh, rsx, rsh, S, MK, MRS, XR\n"                            \
    ".if \\XR\n edgernn_gate_xrows \\P, \\nx\n edgernn_gate_rq_pass \\P, \\rsx, 0\n"               \
    ".else\n ldr r2, [sp, #24]\n edgernn_pairs_start \\P\n edgernn_pairs_columns \\P, \\nx, r2\n"  \
    " edgernn_gate_rq_pass \\P, \\rsx\n.endif\n"                                                  \
    ".if \\P == 3\n stmia sp, {r3-r8}\n"                                                        \
    ".elseif \\P == 2\n stmia sp, {r3-r6}\n"                                                    \
    ".else\n strd r3, r4, [sp]\n.endif\n"                                                       \
    " ldr r2, [sp, #28]\n edgernn_pairs_start \\P\n edgernn_pairs_columns \\P, \\nh, r2\n"      \
    " edgernn_gate_rq_pass \\P, \\rsh\n"                                                        \
    ".if \\MK\n ldr r1, [sp, #56]\n ldrd r9, r10, [sp, #60]\n ldrd r11, r12, [sp, #68]\n"       \
    " edgernn_gate_mul r3, \\MK, \\MRS\n edgernn_gate_mul r4, \\MK, \\MRS\n"                        \
    ".if \\P >= 2\n edgernn_gate_mul r5, \\MK, \\MRS\n edgernn_gate_mul r6, \\MK, \\MRS\n.endif\n"  \
    ".if \\P == 3\n edgernn_gate_mul r7, \\MK, \\MRS\n edgernn_gate_mul r8, \\MK, \\MRS\n.endif\n"  \
    " str r1, [sp, #56]\n.endif\n"                                                             \
    " ldr r1, [sp, #32]\n ldrd r9, r10, [sp, #40]\n ldrd r11, r12, [sp, #48]\n"                 \
    " edgernn_gate_out r3, r4, 0, \\S\n"                                                        \
    ".if \\P >= 2\n edgernn_gate_out r5, r6, 8, \\S\n.endif\n"                                  \
    ".if \\P == 3\n edgernn_gate_out r7, r8, 16, \\S\n.endif\n"                                 \
    " str r1, [sp, #32]\n"                                                                      \
    ".endm\n"                                                                                   \
    ".macro edgernn_gate pairs, nx, nh, rsx, rsh, S, MK=0, MRS=0, XR=0\n"                      \
    " push {r4-r11, lr}\n sub sp, sp, #80\n"                                                    \
    " add r12, r0, #4\n ldmia r12!, {r1-r8}\n add lr, sp, #24\n stmia lr!, {r1-r8}\n"          \
    ".if \\MK\n ldmia r12, {r1-r5}\n stmia lr, {r1-r5}\n.endif\n"                               \
    " ldr r0, [r0]\n"                                                                           \
    ".if \\pairs >= 3\n"                                                                        \
    "1:\n edgernn_gate_pass 3, \\nx, \\nh, \\rsx, \\rsh, \\S, \\MK, \\MRS, \\XR\n"             \
    " ldr r9, [sp, #36]\n cmp r0, r9\n bne 1b\n"                                                \
    ".endif\n"                                                                                  \
    ".if \\pairs % 3\n"                                                                         \
    ".set edgernn_gate_rest, \\pairs % 3\n"                                                     \
    " edgernn_gate_pass edgernn_gate_rest, \\nx, \\nh, \\rsx, \\rsh, \\S, \\MK, \\MRS, \\XR\n" \
    ".endif\n"                                                                                  \
    " add sp, sp, #80\n pop {r4-r11, pc}\n"                                                     \
    ".endm\n"                                                                                   \
    /* the LSTM step's per-unit part (edgernn_lstm_fast_cells' arithmetic): r0 pre, r1 cell,   \
     * r2 hidden, r3 h16; r4-r7 the sigmoid / tanh tables, r8 the end of pre, lr the hidden   \
     * multiplier, [sp] the hidden rounding term; UB bytes between two gates' rows */          \
    ".macro edgernn_lstm_tail UB, N, S1, S2, CLIP, TK, TRS, HM, HRS, HR, H16\n"                 \
    " push {r4-r11, lr}\n sub sp, sp, #8\n"                                                     \
    " movw r4, #:lower16:(edgernn_sigmoid_intercepts + 768)\n"                                  \
    " movt r4, #:upper16:(edgernn_sigmoid_intercepts + 768)\n"                                  \
    " movw r5, #:lower16:(edgernn_sigmoid_slopes + 384)\n"                                      \
    " movt r5, #:upper16:(edgernn_sigmoid_slopes + 384)\n"                                      \
    " movw r6, #:lower16:(edgernn_tanh_intercepts + 1024)\n"                                    \
    " movt r6, #:upper16:(edgernn_tanh_intercepts + 1024)\n"                                    \
    " movw r7, #:lower16:(edgernn_tanh_slopes + 512)\n"                                         \
    " movt r7, #:upper16:(edgernn_tanh_slopes + 512)\n"                                         \
    " movw lr, #((\\HM) & 0xffff)\n movt lr, #(((\\HM) >> 16) & 0xffff)\n"                      \
    " movw r9, #((\\HR) & 0xffff)\n movt r9, #(((\\HR) >> 16) & 0xffff)\n str r9, [sp]\n"       \
    " add r8, r0, #(2 * \\N)\n"                                                                 \
    "1:\n"                                                                                      \
    /* g = tanh(3 x) of the cell gate */                                                       \
    " ldrsh r9, [r0, #(2 * \\UB)]\n add r9, r9, r9, lsl #1\n ssat r10, #9, r9, asr #8\n"         \
    " ldr r11, [r6, r10, lsl #2]\n ldrh r10, [r7, r10, lsl #1]\n mla r9, r9, r10, r11\n"         \
    " asr r9, r9, #8\n"                                                                         \
    /* i = sigmoid of the input gate (pre advances here) */                                    \
    " ldrsh r10, [r0], #2\n add r10, r10, r10, lsl #1\n asr r11, r10, #9\n"                     \
    " ldr r12, [r4, r11, lsl #2]\n ldrh r11, [r5, r11, lsl #1]\n mla r10, r10, r11, r12\n"       \
    " lsr r10, r10, #10\n"                                                                      \
    /* i g + 2^S1 + (g < 0 ? -1 : 1), shifted below */                                         \
    " asr r11, r9, #31\n orr r11, r11, #1\n mla r9, r10, r9, r11\n add r9, r9, #(1 << \\S1)\n"  \
    /* f = sigmoid of the forget gate; (f c + 2^S2 + (c < 0 ? -1 : 1)) >> (S2 + 1) */          \
    " ldrsh r10, [r0, #(\\UB - 2)]\n add r10, r10, r10, lsl #1\n asr r11, r10, #9\n"           \
    " ldr r12, [r4, r11, lsl #2]\n ldrh r11, [r5, r11, lsl #1]\n mla r10, r10, r11, r12\n"       \
    " lsr r10, r10, #10\n"                                                                      \
    " ldrsh r11, [r1]\n asr r12, r11, #31\n orr r12, r12, #1\n mla r10, r10, r11, r12\n"        \
    " add r10, r10, #(1 << \\S2)\n asr r10, r10, #(\\S2 + 1)\n"                                 \
    /* the new cell state, saturated and clipped */                                            \
    " add r9, r10, r9, asr #(\\S1 + 1)\n ssat r9, #16, r9\n"                                    \
    ".if \\CLIP >= 32767\n cmn r9, #32768\n it eq\n addeq r9, r9, #1\n"                         \
    ".elseif \\CLIP > 0\n movw r10, #\\CLIP\n cmp r9, r10\n it gt\n movgt r9, r10\n"             \
    " cmn r9, r10\n it lt\n rsblt r9, r10, #0\n.endif\n"                                        \
    " strh r9, [r1], #2\n"                                                                      \
    /* t = tanh((cell x 3 x 2^TK + 2^(TRS - 1)) >> TRS) */                                     \
    " add r9, r9, r9, lsl #1\n"                                                                 \
    ".if \\TK\n lsl r9, r9, #\\TK\n.endif\n"                                                    \
    ".if \\TRS\n add r9, r9, #(1 << (\\TRS - 1))\n asr r9, r9, #\\TRS\n.endif\n"                 \
    " ssat r10, #9, r9, asr #8\n ldr r11, [r6, r10, lsl #2]\n ldrh r10, [r7, r10, lsl #1]\n"    \
    " mla r9, r9, r10, r11\n asr r9, r9, #8\n"                                                  \
    /* o = sigmoid of the output gate */                                                       \
    " ldrsh r10, [r0, #(3 * \\UB - 2)]\n add r10, r10, r10, lsl #1\n asr r11, r10, #9\n"       \
    " ldr r12, [r4, r11, lsl #2]\n ldrh r11, [r5, r11, lsl #1]\n mla r10, r10, r11, r12\n"       \
    " lsr r10, r10, #10\n"                                                                      \
    /* hidden = ssat8(SMMLAR(2 o t, m, HR + (t < 0 ? -1 : 0)) >> HRS), and h16 = hidden << H16 */ \
    " ldr r11, [sp]\n add r11, r11, r9, asr #31\n mul r10, r10, r9\n lsl r10, r10, #1\n"        \
    " smmlar r10, r10, lr, r11\n ssat r10, #8, r10, asr #\\HRS\n strb r10, [r2], #1\n"         \
    " lsl r10, r10, #\\H16\n strh r10, [r3], #2\n"                                              \
    " cmp r0, r8\n bne 1b\n"                                                                    \
    " add sp, sp, #8\n pop {r4-r11, pc}\n"                                                      \
    ".endm\n"                                                                                   \
    ".endif\n"

/* EDGERNN_PAIRS_TAIL_KERNEL(name, params, units, n_cell, s1, s2, clip, tk, trs, hm, hrs, hr, h16_shift):
 * `static void name(const int16_t *pre, int16_t *cell, int8_t *hidden, int16_t *h16)`, every unit
 * of the LSTM step after the gates (edgernn_lstm_fast_cells on `params`, whose constants the
 * literals repeat: the cell products' right shifts s1, s2 (>= 14), the cell clip, the cell's tanh
 * prescale (c x 3 x 2^tk + 2^(trs - 1)) >> trs, the hidden multiplier, right shift and rounding term 2^(hrs - 1) + zero point
 * x 2^hrs, and h16 = hidden x 2^h16_shift). */
#define EDGERNN_PAIRS_TAIL_KERNEL(name, params, units, n_cell, s1, s2, clip, tk, trs, hm, hrs, hr, h16_shift)      \
    __attribute__((naked, noinline)) static void name(const int16_t *pre __attribute__((unused)),                   \
                                                      int16_t *cell __attribute__((unused)),                        \
                                                      int8_t *hidden __attribute__((unused)),                       \
                                                      int16_t *h16 __attribute__((unused)))                         \
    {                                                                                                              \
        __asm__ volatile(EDGERNN_PAIRS_ASM_MACROS "edgernn_lstm_tail 2 * " #units ", " #n_cell ", " #s1 ", " #s2   \
                         ", " #clip ", " #tk ", " #trs ", " #hm ", " #hrs ", " #hr ", " #h16_shift "\n");              \
    }                                                                                                              \
    static const edgernn_lstm_tail_params *const name##_params __attribute__((unused)) = &params

#define EDGERNN_PAIRS_GATE_KERNEL(name, pairs, n_input, n_cell, rs_input, rs_recurrent)              \
    __attribute__((naked, noinline)) static void name(const edgernn_pairs_gate *gate __attribute__((unused))) \
    {                                                                                               \
        __asm__ volatile(EDGERNN_PAIRS_ASM_MACROS "edgernn_pairs_gate " #pairs ", " #n_input ", "    \
                         #n_cell ", " #rs_input ", " #rs_recurrent "\n");                           \
    }
/* EDGERNN_FC8_KERNEL(name, pairs, n_input, rs): `static void name(const edgernn_fc8 *fc)`,
 * rs the right shift of every row or -1 (each row's own, from the stream); the _ROLLED form
 * loops over the columns (eight per iteration) instead of unrolling them: less flash, a few
 * more instructions. */
#define EDGERNN_FC8_KERNEL(name, pairs, n_input, rs)                                                  \
    __attribute__((naked, noinline)) static void name(const edgernn_fc8 *fc __attribute__((unused))) \
    {                                                                                               \
        __asm__ volatile(EDGERNN_PAIRS_ASM_MACROS "edgernn_fc8 " #pairs ", " #n_input ", " #rs "\n");    \
    }
/* EDGERNN_FC8_GATE_KERNEL(name, pairs, n_x, n_h, rs_x, rs_h, s): `static void name(const
 * edgernn_fc8_gate *g)` (edgernn_fc8_gate_c; literals); the _MUL form (mk >= 1) multiplies each
 * h row by g first (TFLM's MUL, pre-scaled by 2^mk, right shift mrs). */
#define EDGERNN_FC8_GATE_MUL_KERNEL(name, pairs, n_x, n_h, rs_x, rs_h, s, mk, mrs, xr)                      \
    __attribute__((naked, noinline)) static void name(const edgernn_fc8_gate *g __attribute__((unused))) \
    {                                                                                                   \
        __asm__ volatile(EDGERNN_PAIRS_ASM_MACROS "edgernn_gate " #pairs ", " #n_x ", " #n_h ", " #rs_x     \
                         ", " #rs_h ", " #s ", " #mk ", " #mrs ", " #xr "\n");                         \
    }
#define EDGERNN_FC8_GATE_KERNEL(name, pairs, n_x, n_h, rs_x, rs_h, s, xr)                                   \
    __attribute__((naked, noinline)) static void name(const edgernn_fc8_gate *g __attribute__((unused))) \
    {                                                                                                   \
        __asm__ volatile(EDGERNN_PAIRS_ASM_MACROS "edgernn_gate " #pairs ", " #n_x ", " #n_h ", " #rs_x     \
                         ", " #rs_h ", " #s ", 0, 0, " #xr "\n");                                       \
    }
#define EDGERNN_FC8_ROLLED_KERNEL(name, pairs, n_input, rs)                                           \
    __attribute__((naked, noinline)) static void name(const edgernn_fc8 *fc __attribute__((unused))) \
    {                                                                                               \
        __asm__ volatile(EDGERNN_PAIRS_ASM_MACROS "edgernn_fc8 " #pairs ", " #n_input ", " #rs ", 1\n"); \
    }
#else
#define EDGERNN_PAIRS_TAIL_KERNEL(name, params, units, n_cell, s1, s2, clip, tk, trs, hm, hrs, hr, h16_shift)     \
    static void name(const int16_t *pre, int16_t *cell, int8_t *hidden, int16_t *h16)                             \
    {                                                                                                             \
        edgernn_lstm_fast_cells(&params, pre, units, n_cell, cell, hidden, 0, NULL, 1, h16, (int32_t)1 << h16_shift); \
    }                                                                                                             \
    typedef int name##_defined
#define EDGERNN_FC8_KERNEL(name, pairs, n_input, rs) \
    static void name(const edgernn_fc8 *fc)         \
    {                                               \
        edgernn_fc8_c(fc, pairs, n_input, rs);      \
    }
#define EDGERNN_FC8_ROLLED_KERNEL(name, pairs, n_input, rs) EDGERNN_FC8_KERNEL(name, pairs, n_input, rs)
#define EDGERNN_FC8_GATE_KERNEL(name, pairs, n_x, n_h, rs_x, rs_h, s, xr) \
    static void name(const edgernn_fc8_gate *g)                           \
    {                                                                     \
        edgernn_fc8_gate_c(g, pairs, n_x, n_h, rs_x, rs_h, s, 0, 0, xr);  \
    }
#define EDGERNN_FC8_GATE_MUL_KERNEL(name, pairs, n_x, n_h, rs_x, rs_h, s, mk, mrs, xr) \
    static void name(const edgernn_fc8_gate *g)                                        \
    {                                                                                  \
        edgernn_fc8_gate_c(g, pairs, n_x, n_h, rs_x, rs_h, s, mk, mrs, xr);            \
    }
#define EDGERNN_PAIRS_GATE_KERNEL(name, pairs, n_input, n_cell, rs_input, rs_recurrent)  \
    static void name(const edgernn_pairs_gate *gate)                                    \
    {                                                                                   \
        edgernn_pairs_gate_c(gate, pairs, n_input, n_cell, rs_input, rs_recurrent);     \
    }
#endif

#ifdef __cplusplus
}
#endif

#endif /* EDGERNN_PAIRS_H */
