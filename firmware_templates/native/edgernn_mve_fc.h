/*
 * edgernn_mve_fc.h - FULLY_CONNECTED 16x8 of an int16 loop step on weight rows: Helium
 * (Cortex-M55) and its plain-C twin (C99; every other "rows" target, and -O0).
 *
 * TFLM's reference 16x8 path, y = clamp16((acc m + 2^(s-1)) >> s) with an int64 accumulator,
 * computed in 32 bits as edgernn_fc16w.h does: the generator (edgernn/backends/native/fcrows.py,
 * fc16r_stream) checks that every row's |acc| 2^ls < 2^31 for any input within its bound and
 * stores each row's multiplier as m 2^(32 - s - ls), so y = clamp16(SMMULR(acc 2^ls, m')), and
 * SMMULR is Helium's VRMULH.S32 ((a b + 2^31) >> 32, no doubling, no saturation).
 *
 * The stream (uint32 words), per pass of four rows (zero rows pad the last pass, computed and
 * not stored): the four rows' bias x 2^ls when the FC has one; the weights in chunks of eight
 * columns (the last chunk n_input % 8 wide): per chunk, row 0's columns of the chunk, then row
 * 1's, 2's, 3's, each weight one byte (wbytes 1: int8, every row's ls 0) or one int16 halfword
 * (wbytes 2: w 2^ls); then the four rows' multipliers m'. A pass's weights fill n_input x
 * wbytes words, so the words after them stay aligned.
 *
 * On Helium a chunk is one widening load (VLDRB.S16 / VLDRH.S16, post-incremented) and one
 * VMLADAVA.S16 (eight multiply-accumulates into a scalar) per row; a short last chunk's loads
 * read the next row's first weights (or the multipliers) too, but meet the zero lanes of the
 * input chunk, loaded predicated. The input, when it fits four vectors, is loaded once for the
 * whole FC. Per pass: the four sums packed into one vector (two VMOVs), the bias added (VLDRW,
 * VADD), VRMULH by the multipliers (VLDRW), VQMOVNB (saturation to int16), VSTRH.
 *
 * Helium's two faster forms of the stream (fcrows.py picks them where they apply; the generator
 * then writes the stream twice, the form's under #if EDGERNN_USE_MVE, the plain one above under
 * #else for the C twin, which ignores `form`):
 *
 *  - EDGERNN_FC16R_BIASCOLS (an input of at most 32 columns with a bias and 2..7 free lanes in its
 *    last chunk): four words first, the last input chunk's constant lanes K (int16: zeros, then
 *    K_hi and 1 in the two lanes after the input's); no bias words; each row has two more columns
 *    c_hi, c_lo with K_hi c_hi + c_lo = its bias x 2^ls. K is added to the held last chunk once
 *    per call: no bias load and add per pass.
 *  - EDGERNN_FC16R_SPLIT (int8 weights, 32 columns held): each row's weights contiguous (one chunk
 *    of 32), and after each pass's multipliers four more words e = bias + 128 sum(w). Each int16
 *    input h is split into its high byte (signed) and its low byte - 128 (VLD20 / VLD21.8
 *    de-interleave the input's bytes, one VEOR) once per call; per row the sixteen weights of a
 *    chunk are loaded once (VLDRB.8) for two VMLADAVA.S8 (sixteen multiply-accumulates each):
 *    sum w h = 256 sum w hi + sum w (lo - 128) + 128 sum w, one chain per row (VMLADAV takes even
 *    registers only), exact in 32 bits (wrapping partial sums, a final sum the generator bounds
 *    below 2^31). On an int8 input (EDGERNN_FC16R_KERNEL_X8) no split: VMLADAV.S8 of the input,
 *    the bias words added, e skipped.
 *
 * EDGERNN_FC16R_KERNEL(name, n_input, n_output, bias, wbytes, form) defines `static void
 * name(const edgernn_fc16w *fc)` (the struct of edgernn_fc16w.h: stream, input, out); the numbers
 * must be literals.
 */
#ifndef EDGERNN_MVE_FC_H
#define EDGERNN_MVE_FC_H

#include <stdint.h>

#include "edgernn_fast.h"
#include "edgernn_fc16w.h"
#include "edgernn_pairs.h"
#include "edgernn_rows.h"

#ifdef __cplusplus
extern "C" {
#endif

#define EDGERNN_FC16R_ROWS 4  /* rows per pass: one int32x4 of sums */
#define EDGERNN_FC16R_CHUNK 8 /* columns per chunk: one int16x8 of the input */
#define EDGERNN_FC16R_X8_MAX 32 /* an int8 input read in place: at most four chunks (held) */
#define EDGERNN_FC16R_PLAIN 0
#define EDGERNN_FC16R_SPLIT 1    /* forms: see above */
#define EDGERNN_FC16R_BIASCOLS 2

/* One pass of four rows (the C twin): the stream at *s (advanced); stores the first `rows`. */
static inline EDGERNN_ALWAYS_INLINE void edgernn_fc16r_pass_c(const uint32_t **s, const int16_t *x, int16_t *out,
                                                              int n_input, int rows, int bias, int wbytes)
{
    const uint32_t *p = *s;
    int32_t a0 = bias ? (int32_t)p[0] : 0;
    int32_t a1 = bias ? (int32_t)p[1] : 0;
    int32_t a2 = bias ? (int32_t)p[2] : 0;
    int32_t a3 = bias ? (int32_t)p[3] : 0;
    const int8_t *w8 = (const int8_t *)(p + (bias ? 4 : 0));
    const int16_t *w16 = (const int16_t *)(const void *)(p + (bias ? 4 : 0));
    int c0;
    EDGERNN_UNROLL(8) /* up to 64 columns: constant chunk widths, one straight run of loads and multiplies */
    for (c0 = 0; c0 < n_input; c0 += EDGERNN_FC16R_CHUNK) {
        const int width = n_input - c0 < EDGERNN_FC16R_CHUNK ? n_input - c0 : EDGERNN_FC16R_CHUNK;
        int j;
        EDGERNN_UNROLL(8)
        for (j = 0; j < width; ++j) {
            const int32_t xj = x[c0 + j];
            if (wbytes == 1) {
                a0 += w8[j] * xj;
                a1 += w8[width + j] * xj;
                a2 += w8[2 * width + j] * xj;
                a3 += w8[3 * width + j] * xj;
            } else {
                a0 += w16[j] * xj;
                a1 += w16[width + j] * xj;
                a2 += w16[2 * width + j] * xj;
                a3 += w16[3 * width + j] * xj;
            }
        }
        w8 += EDGERNN_FC16R_ROWS * width;
        w16 += EDGERNN_FC16R_ROWS * width;
    }
    p += (bias ? 4 : 0) + n_input * wbytes;
    out[0] = (int16_t)edgernn_clamp_s16(edgernn_smmulr(a0, (int32_t)p[0]));
    if (rows > 1) {
        out[1] = (int16_t)edgernn_clamp_s16(edgernn_smmulr(a1, (int32_t)p[1]));
    }
    if (rows > 2) {
        out[2] = (int16_t)edgernn_clamp_s16(edgernn_smmulr(a2, (int32_t)p[2]));
    }
    if (rows > 3) {
        out[3] = (int16_t)edgernn_clamp_s16(edgernn_smmulr(a3, (int32_t)p[3]));
    }
    *s = p + EDGERNN_FC16R_ROWS;
}

static inline EDGERNN_ALWAYS_INLINE void edgernn_fc16r_c(const edgernn_fc16w *f, int n_input, int n_output, int bias,
                                                         int wbytes)
{
    const uint32_t *s = f->stream;
    int16_t *out = f->out;
    int k;
    for (k = 0; k < n_output / EDGERNN_FC16R_ROWS; ++k) {
        edgernn_fc16r_pass_c(&s, f->input, out, n_input, EDGERNN_FC16R_ROWS, bias, wbytes);
        out += EDGERNN_FC16R_ROWS;
    }
    if (n_output % EDGERNN_FC16R_ROWS) {
        edgernn_fc16r_pass_c(&s, f->input, out, n_input, n_output % EDGERNN_FC16R_ROWS, bias, wbytes);
    }
}

#if EDGERNN_USE_MVE
/* The input vectors held for the whole FC: at most this many chunks (eight Q registers: the
 * held chunks, a weight vector, the packed sums and the multipliers) */
#define EDGERNN_FC16R_HELD 4
#define EDGERNN_FC16R_FENCE() __asm__ volatile("" ::: "memory")

/* Eight weights of one row at *w as int16 lanes, then *w += step bytes: one widening VLDRB.S16
 * (int8 weights) or VLDRH.16 (int16), post-incremented (the step is an assembler immediate). */
static inline EDGERNN_ALWAYS_INLINE int16x8_t edgernn_fc16r_load(const int8_t **w, int step, int wbytes)
{
    int16x8_t v;
    if (wbytes == 1) {
        __asm__("vldrb.s16 %q0, [%1], %2" : "=w"(v), "+l"(*w) : "i"(step)); /* const weights: no memory clobber */
    } else {
        __asm__("vldrh.16 %q0, [%1], %2" : "=w"(v), "+r"(*w) : "i"(step));
    }
    return v;
}

/* Four words at *w, then *w += 16 (the bias, the multipliers). */
static inline EDGERNN_ALWAYS_INLINE int32x4_t edgernn_fc16r_words(const int8_t **w)
{
    int32x4_t v;
    __asm__("vldrw.32 %q0, [%1], #16" : "=w"(v), "+r"(*w));
    return v;
}

/* The same, then *w += step (the bias columns' form steps over the next pass's bias words). */
static inline EDGERNN_ALWAYS_INLINE int32x4_t edgernn_fc16r_words_n(const int8_t **w, int step)
{
    int32x4_t v;
    __asm__("vldrw.32 %q0, [%1], %2" : "=w"(v), "+r"(*w) : "i"(step));
    return v;
}

/* The first `width` (1..7) int16 / int8 values at x as int16 lanes, zeros after them: VCTP, VPST
 * and the predicated load (gcc 12 moves vctp16q's predicate through a core register and back,
 * three instructions more). Volatile: kept after the FC's opening barrier (the input's stores). */
static inline EDGERNN_ALWAYS_INLINE int16x8_t edgernn_fc16r_part_h(const int16_t *x, int width)
{
    int16x8_t v;
    __asm__ volatile("vctp.16 %1\n\tvpst\n\tvldrht.16 %q0, [%2]" : "=w"(v) : "r"(width), "r"(x), "m"(*x) : "p0");
    return v;
}

static inline EDGERNN_ALWAYS_INLINE int16x8_t edgernn_fc16r_part_b(const int8_t *x, int width)
{
    int16x8_t v;
    __asm__ volatile("vctp.16 %1\n\tvpst\n\tvldrbt.s16 %q0, [%2]" : "=w"(v) : "r"(width), "l"(x), "m"(*x) : "p0");
    return v;
}

/* Chunk c of the input: eight lanes, or the last chunk's n_input % 8 with zeros after them. */
static inline EDGERNN_ALWAYS_INLINE int16x8_t edgernn_fc16r_x(const int16_t *x, int c, int n_input)
{
    const int width = n_input - EDGERNN_FC16R_CHUNK * c;
    if (width >= EDGERNN_FC16R_CHUNK) {
        return vldrhq_s16(x + EDGERNN_FC16R_CHUNK * c);
    }
    return vldrhq_z_s16(x + EDGERNN_FC16R_CHUNK * c, vctp16q((uint32_t)width));
}

/* The same for the chunks held for a whole FC (the predicate set by edgernn_fc16r_part_h). */
static inline EDGERNN_ALWAYS_INLINE int16x8_t edgernn_fc16r_xh(const int16_t *x, int c, int n_input)
{
    const int width = n_input - EDGERNN_FC16R_CHUNK * c;
    if (width >= EDGERNN_FC16R_CHUNK) {
        return vldrhq_s16(x + EDGERNN_FC16R_CHUNK * c);
    }
    return edgernn_fc16r_part_h(x + EDGERNN_FC16R_CHUNK * c, width);
}

/* One chunk of four rows against the input chunk xc: VMLADAV starts the sums (first), VMLADAVA
 * adds to them. */
static inline EDGERNN_ALWAYS_INLINE void edgernn_fc16r_chunk(const int8_t **w, int16x8_t xc, int step, int wbytes,
                                                             int first, int32_t *a0, int32_t *a1, int32_t *a2,
                                                             int32_t *a3)
{
    if (first) {
        *a0 = vmladavq_s16(edgernn_fc16r_load(w, step, wbytes), xc);
        *a1 = vmladavq_s16(edgernn_fc16r_load(w, step, wbytes), xc);
        *a2 = vmladavq_s16(edgernn_fc16r_load(w, step, wbytes), xc);
        *a3 = vmladavq_s16(edgernn_fc16r_load(w, step, wbytes), xc);
    } else {
        *a0 = vmladavaq_s16(*a0, edgernn_fc16r_load(w, step, wbytes), xc);
        *a1 = vmladavaq_s16(*a1, edgernn_fc16r_load(w, step, wbytes), xc);
        *a2 = vmladavaq_s16(*a2, edgernn_fc16r_load(w, step, wbytes), xc);
        *a3 = vmladavaq_s16(*a3, edgernn_fc16r_load(w, step, wbytes), xc);
    }
}

/* The bytes of a row's weights in chunk c. */
#define EDGERNN_FC16R_STEP(c, n_input, wbytes)                                                                    \
    ((n_input) - EDGERNN_FC16R_CHUNK * (c) < EDGERNN_FC16R_CHUNK ? (n_input) - EDGERNN_FC16R_CHUNK * (c)          \
                                                                  : EDGERNN_FC16R_CHUNK) * (wbytes)

/* Four rows' outputs (int16 x4) at out: saturated into the even halves of the multipliers' register
 * m (VQMOVNB: the odd halves keep the multipliers', never stored), stored from the low half of
 * each word (VSTRH.32; the first `rows`). */
static inline EDGERNN_ALWAYS_INLINE void edgernn_fc16r_store4(int16_t *out, int32x4_t v, int32x4_t m, int rows)
{
    v = vreinterpretq_s32_s16(vqmovnbq_s32(vreinterpretq_s16_s32(m), v));
    if (rows == EDGERNN_FC16R_ROWS) {
        vstrhq_s32(out, v);
    } else {
        vstrhq_p_s32(out, v, vctp32q((uint32_t)rows));
    }
}

/* Eight rows' outputs: a form's stream orders each eight rows 0 2 4 6 1 3 5 7 (fcrows.py), so the
 * first four go to the even halves (VQMOVNB), the next four to the odd ones (VQMOVNT), and one
 * VSTRH.16 stores the eight in order: per eight rows a store and a loop end fewer. */
static inline EDGERNN_ALWAYS_INLINE void edgernn_fc16r_store8(int16_t *out, int32x4_t v1, int32x4_t m1, int32x4_t v2)
{
    vstrhq_s16(out, vqmovntq_s32(vqmovnbq_s32(vreinterpretq_s16_s32(m1), v1), v2));
}

/* The rows of an FC: a form's in eights (store8), then fours, then the last n_output % 4; SUMS(mp)
 * computes the next four rows' requantized sums and their multipliers (*mp). */
#define EDGERNN_FC16R_ROWS_LOOP(octets, n_output, out, SUMS)                          \
    do {                                                                               \
        int16_t *o_ = (out);                                                           \
        int k_ = 0;                                                                    \
        int32x4_t m1_;                                                                 \
        int32x4_t m2_;                                                                 \
        int32x4_t v1_;                                                                 \
        int32x4_t v2_;                                                                 \
        if (octets) {                                                                  \
            for (; k_ < (n_output) / 8; ++k_) {                                        \
                v1_ = SUMS(&m1_);                                                      \
                v2_ = SUMS(&m2_);                                                      \
                edgernn_fc16r_store8(o_, v1_, m1_, v2_);                               \
                o_ += 8;                                                               \
            }                                                                          \
        }                                                                              \
        for (k_ = 0; k_ < ((octets) ? (n_output) % 8 : (n_output)) / EDGERNN_FC16R_ROWS; ++k_) { \
            v1_ = SUMS(&m1_);                                                          \
            edgernn_fc16r_store4(o_, v1_, m1_, EDGERNN_FC16R_ROWS);                    \
            o_ += EDGERNN_FC16R_ROWS;                                                  \
        }                                                                              \
        if ((n_output) % EDGERNN_FC16R_ROWS) {                                         \
            v1_ = SUMS(&m1_);                                                          \
            edgernn_fc16r_store4(o_, v1_, m1_, (n_output) % EDGERNN_FC16R_ROWS);       \
        }                                                                              \
    } while (0)

/* One pass (Helium): the four sums over the input chunks (x0..x3 held in registers when the
 * input has at most four chunks, else read from x), the bias, VRMULH; the multipliers in *mp. */
static inline EDGERNN_ALWAYS_INLINE int32x4_t edgernn_fc16r_sums_mve(const int8_t **w, int16x8_t x0, int16x8_t x1,
                                                                     int16x8_t x2, int16x8_t x3, const int16_t *x,
                                                                     int32x4_t *mp, int n_input, int bias,
                                                                     int wbytes)
{
    const int chunks = (n_input + EDGERNN_FC16R_CHUNK - 1) / EDGERNN_FC16R_CHUNK;
    const int held = chunks <= EDGERNN_FC16R_HELD;
    int32x4_t b = vdupq_n_s32(0);
    int32_t a0;
    int32_t a1;
    int32_t a2;
    int32_t a3;
    int32x4_t v;
    int32x4_t m;
    int c;
    if (bias) {
        b = edgernn_fc16r_words(w);
    }
    edgernn_fc16r_chunk(w, held ? x0 : edgernn_fc16r_x(x, 0, n_input), EDGERNN_FC16R_STEP(0, n_input, wbytes), wbytes,
                        1, &a0, &a1, &a2, &a3);
    if (held) {
        if (chunks > 1) {
            edgernn_fc16r_chunk(w, x1, EDGERNN_FC16R_STEP(1, n_input, wbytes), wbytes, 0, &a0, &a1, &a2, &a3);
        }
        if (chunks > 2) {
            edgernn_fc16r_chunk(w, x2, EDGERNN_FC16R_STEP(2, n_input, wbytes), wbytes, 0, &a0, &a1, &a2, &a3);
        }
        if (chunks > 3) {
            edgernn_fc16r_chunk(w, x3, EDGERNN_FC16R_STEP(3, n_input, wbytes), wbytes, 0, &a0, &a1, &a2, &a3);
        }
    } else {
        for (c = 1; c < chunks - 1; ++c) { /* whole chunks */
            edgernn_fc16r_chunk(w, vldrhq_s16(x + EDGERNN_FC16R_CHUNK * c), EDGERNN_FC16R_CHUNK * wbytes, wbytes, 0,
                                &a0, &a1, &a2, &a3);
        }
        if (chunks > 1) {
            edgernn_fc16r_chunk(w, edgernn_fc16r_x(x, chunks - 1, n_input),
                                EDGERNN_FC16R_STEP(chunks - 1, n_input, wbytes), wbytes, 0, &a0, &a1, &a2, &a3);
        }
    }
    v = edgernn_mve_pack4(a0, a1, a2, a3);
    if (bias) {
        v = vaddq_s32(v, b);
    }
    m = edgernn_fc16r_words(w);
    *mp = m;
    return vrmulhq_s32(v, m);
}

/* The passes over held input chunks x0..x3 (or x, read per pass); the bias columns' form: K added
 * to the last chunk, the passes over the stream's two more columns, without bias words. */
static inline EDGERNN_ALWAYS_INLINE void edgernn_fc16r_passes_mve(const int8_t *w, int16x8_t x0, int16x8_t x1,
                                                                  int16x8_t x2, int16x8_t x3, const int16_t *x,
                                                                  int16_t *out, int n_input, int n_output, int bias,
                                                                  int wbytes, int form)
{
    const int chunks = (n_input + EDGERNN_FC16R_CHUNK - 1) / EDGERNN_FC16R_CHUNK;
    const int cols = form == EDGERNN_FC16R_BIASCOLS;
    if (cols) { /* K, added to the last chunk; no bias words */
        const int16x8_t kv = vreinterpretq_s16_s32(edgernn_fc16r_words(&w));
        x0 = chunks == 1 ? vaddq_s16(x0, kv) : x0;
        x1 = chunks == 2 ? vaddq_s16(x1, kv) : x1;
        x2 = chunks == 3 ? vaddq_s16(x2, kv) : x2;
        x3 = chunks == 4 ? vaddq_s16(x3, kv) : x3;
        n_input += 2;
        bias = 0;
    }
#define EDGERNN_FC16R_SUMS_(mp) edgernn_fc16r_sums_mve(&w, x0, x1, x2, x3, x, (mp), n_input, bias, wbytes)
    EDGERNN_FC16R_ROWS_LOOP(form != EDGERNN_FC16R_PLAIN, n_output, out, EDGERNN_FC16R_SUMS_);
#undef EDGERNN_FC16R_SUMS_
}

/* Sixteen int8 weights at *w, then *w += 16 (VLDRB.8). */
static inline EDGERNN_ALWAYS_INLINE int8x16_t edgernn_fc16r_load16(const int8_t **w)
{
    int8x16_t v;
    __asm__("vldrb.8 %q0, [%1], #16" : "=w"(v), "+r"(*w)); /* const weights: no memory clobber */
    return v;
}

/* One row of the split form: 256 sum(w hi) + sum(w (lo - 128)) over 16 or 32 columns, one chain
 * (the high bytes' sum shifted, then the low bytes' added to it: one accumulator a row, VMLADAV
 * taking even registers only). */
static inline EDGERNN_ALWAYS_INLINE int32_t edgernn_fc16r_split_row(const int8_t **w, int8x16_t hi0, int8x16_t lo0,
                                                                    int8x16_t hi1, int8x16_t lo1, int n_input)
{
    const int8x16_t wa = edgernn_fc16r_load16(w);
    const int8x16_t wb = n_input > 16 ? edgernn_fc16r_load16(w) : wa;
    int32_t a = vmladavq_s8(wa, hi0);
    if (n_input > 16) {
        a = vmladavaq_s8(a, wb, hi1);
    }
    a = vmladavaq_s8((int32_t)((uint32_t)a << 8), wa, lo0); /* |256 a| < 2^27 */
    return n_input > 16 ? vmladavaq_s8(a, wb, lo1) : a;
}

static inline EDGERNN_ALWAYS_INLINE int32x4_t edgernn_fc16r_split_sums(const int8_t **w, int8x16_t hi0, int8x16_t lo0,
                                                                       int8x16_t hi1, int8x16_t lo1, int32x4_t *mp,
                                                                       int n_input, int bias)
{
    const int32_t a0 = edgernn_fc16r_split_row(w, hi0, lo0, hi1, lo1, n_input);
    const int32_t a1 = edgernn_fc16r_split_row(w, hi0, lo0, hi1, lo1, n_input);
    const int32_t a2 = edgernn_fc16r_split_row(w, hi0, lo0, hi1, lo1, n_input);
    const int32_t a3 = edgernn_fc16r_split_row(w, hi0, lo0, hi1, lo1, n_input);
    const int32x4_t m = edgernn_fc16r_words_n(w, 16);
    const int32x4_t e = edgernn_fc16r_words_n(w, bias ? 32 : 16); /* then the next pass's bias words skipped */
    *mp = m;
    return vrmulhq_s32(vaddq_s32(edgernn_mve_pack4(a0, a1, a2, a3), e), m);
}

/* The split form: the input's bytes de-interleaved once per call (VLD20 / VLD21.8: low bytes,
 * high bytes), the low ones biased by -128 (VEOR). */
static inline EDGERNN_ALWAYS_INLINE void edgernn_fc16r_split_mve(const edgernn_fc16w *f, int n_input, int n_output,
                                                                 int bias)
{
    const int8_t *w = (const int8_t *)f->stream + (bias ? 16 : 0);
    const int8_t *x = (const int8_t *)(const void *)f->input;
    int8x16_t k80;
    int8x16x2_t c0;
    int8x16x2_t c1;
    __asm__("vmov.i8 %q0, #0x80" : "=w"(k80)); /* gcc 12: MOVS + VDUP.8 for vdupq_n_s8(-128) */
    EDGERNN_FC16R_FENCE();
    c0 = vld2q_s8(x);
    c1 = n_input > 16 ? vld2q_s8(x + 32) : c0;
    c0.val[0] = veorq_s8(c0.val[0], k80);
    c1.val[0] = n_input > 16 ? veorq_s8(c1.val[0], k80) : c0.val[0];
#define EDGERNN_FC16R_SUMS_(mp) \
    edgernn_fc16r_split_sums(&w, c0.val[1], c0.val[0], c1.val[1], c1.val[0], (mp), n_input, bias)
    EDGERNN_FC16R_ROWS_LOOP(1, n_output, f->out, EDGERNN_FC16R_SUMS_);
#undef EDGERNN_FC16R_SUMS_
    EDGERNN_FC16R_FENCE();
}

static inline EDGERNN_ALWAYS_INLINE void edgernn_fc16r_mve(const edgernn_fc16w *f, int n_input, int n_output, int bias,
                                                           int wbytes, int form)
{
    const int chunks = (n_input + EDGERNN_FC16R_CHUNK - 1) / EDGERNN_FC16R_CHUNK;
    const int held = chunks <= EDGERNN_FC16R_HELD; /* the bias columns' form: always (fcrows.py) */
    const int16_t *x = f->input;
    int16x8_t x0;
    int16x8_t x1;
    int16x8_t x2;
    int16x8_t x3;
    if (form == EDGERNN_FC16R_SPLIT) {
        edgernn_fc16r_split_mve(f, n_input, n_output, bias);
        return;
    }
    /* A compiler barrier on either side: gcc 12 let the step's int16 loads of this FC's output
     * pass the VSTRH.32 of vstrhq_s32 (a SimpleRNN read its FC outputs before they were stored,
     * its M55 self-test failed); the barriers cost no instruction. */
    EDGERNN_FC16R_FENCE();
    x0 = held ? edgernn_fc16r_xh(x, 0, n_input) : vdupq_n_s16(0);
    x1 = held && chunks > 1 ? edgernn_fc16r_xh(x, 1, n_input) : vdupq_n_s16(0);
    x2 = held && chunks > 2 ? edgernn_fc16r_xh(x, 2, n_input) : vdupq_n_s16(0);
    x3 = held && chunks > 3 ? edgernn_fc16r_xh(x, 3, n_input) : vdupq_n_s16(0);
    edgernn_fc16r_passes_mve((const int8_t *)f->stream, x0, x1, x2, x3, x, f->out, n_input, n_output, bias, wbytes,
                             form);
    EDGERNN_FC16R_FENCE();
}
#define edgernn_fc16r edgernn_fc16r_mve

/* Chunk c of an int8 input as int16 lanes (VLDRB.S16; the last chunk predicated, zeros after it). */
static inline EDGERNN_ALWAYS_INLINE int16x8_t edgernn_fc16r_xb(const int8_t *x, int c, int n_input)
{
    const int width = n_input - EDGERNN_FC16R_CHUNK * c;
    if (width >= EDGERNN_FC16R_CHUNK) {
        return vldrbq_s16(x + EDGERNN_FC16R_CHUNK * c);
    }
    return edgernn_fc16r_part_b(x + EDGERNN_FC16R_CHUNK * c, width);
}

/* The split form's stream on an int8 input (32 columns): no split, each row's two chunks of
 * sixteen against the input's two (VLDRB.8, VMLADAV(A).S8), the bias words added, the e words
 * skipped. */
static inline EDGERNN_ALWAYS_INLINE int32x4_t edgernn_fc16r_x8_split_sums(const int8_t **w, int8x16_t xa, int8x16_t xb,
                                                                           int32x4_t *mp, int bias)
{
    const int32x4_t b = bias ? edgernn_fc16r_words(w) : vdupq_n_s32(0);
    int32_t a[EDGERNN_FC16R_ROWS];
    int32x4_t v;
    int r;
    for (r = 0; r < EDGERNN_FC16R_ROWS; ++r) {
        const int8x16_t wa = edgernn_fc16r_load16(w);
        a[r] = vmladavaq_s8(vmladavq_s8(wa, xa), edgernn_fc16r_load16(w), xb);
    }
    v = vaddq_s32(edgernn_mve_pack4(a[0], a[1], a[2], a[3]), b);
    *mp = edgernn_fc16r_words_n(w, 32); /* the e words skipped */
    return vrmulhq_s32(v, *mp);
}

static inline EDGERNN_ALWAYS_INLINE void edgernn_fc16r_x8_split_mve(const edgernn_fc16w *f, const int8_t *x8,
                                                                    int n_output, int bias)
{
    const int8_t *w = (const int8_t *)f->stream;
    int8x16_t xa;
    int8x16_t xb;
    EDGERNN_FC16R_FENCE();
    xa = vldrbq_s8(x8);
    xb = vldrbq_s8(x8 + 16);
#define EDGERNN_FC16R_SUMS_(mp) edgernn_fc16r_x8_split_sums(&w, xa, xb, (mp), bias)
    EDGERNN_FC16R_ROWS_LOOP(1, n_output, f->out, EDGERNN_FC16R_SUMS_);
#undef EDGERNN_FC16R_SUMS_
    EDGERNN_FC16R_FENCE();
}

/* The FC on an int8 input read in place (n_input <= 32: held in registers; the step's CAST to
 * int16 folded into the widening loads). */
static inline EDGERNN_ALWAYS_INLINE void edgernn_fc16r_x8_mve(const edgernn_fc16w *f, const int8_t *x8, int n_input,
                                                              int n_output, int bias, int wbytes, int form)
{
    const int chunks = (n_input + EDGERNN_FC16R_CHUNK - 1) / EDGERNN_FC16R_CHUNK;
    int16x8_t x0;
    int16x8_t x1;
    int16x8_t x2;
    int16x8_t x3;
    if (form == EDGERNN_FC16R_SPLIT) {
        edgernn_fc16r_x8_split_mve(f, x8, n_output, bias);
        return;
    }
    EDGERNN_FC16R_FENCE();
    x0 = edgernn_fc16r_xb(x8, 0, n_input);
    x1 = chunks > 1 ? edgernn_fc16r_xb(x8, 1, n_input) : vdupq_n_s16(0);
    x2 = chunks > 2 ? edgernn_fc16r_xb(x8, 2, n_input) : vdupq_n_s16(0);
    x3 = chunks > 3 ? edgernn_fc16r_xb(x8, 3, n_input) : vdupq_n_s16(0);
    edgernn_fc16r_passes_mve((const int8_t *)f->stream, x0, x1, x2, x3, (const int16_t *)0, f->out, n_input, n_output,
                             bias, wbytes, form);
    EDGERNN_FC16R_FENCE();
}
#define edgernn_fc16r_x8 edgernn_fc16r_x8_mve
#else
/* The C twin reads the plain stream (the generator's #else array): the form is Helium's. */
#define edgernn_fc16r(f, n_input, n_output, bias, wbytes, form) edgernn_fc16r_c(f, n_input, n_output, bias, wbytes)

/* The C twin: the int8 input widened into a local copy, then the FC on it. */
static inline EDGERNN_ALWAYS_INLINE void edgernn_fc16r_x8_c(const edgernn_fc16w *f, const int8_t *x8, int n_input,
                                                            int n_output, int bias, int wbytes)
{
    int16_t x[EDGERNN_FC16R_X8_MAX];
    edgernn_fc16w g;
    int j;
    for (j = 0; j < n_input; ++j) {
        x[j] = x8[j];
    }
    g.stream = f->stream;
    g.input = x;
    g.out = f->out;
    edgernn_fc16r_c(&g, n_input, n_output, bias, wbytes);
}
#define edgernn_fc16r_x8(f, x8, n_input, n_output, bias, wbytes, form) \
    edgernn_fc16r_x8_c(f, x8, n_input, n_output, bias, wbytes)
#endif

/* ---------------------------------------------------------------------------------------
 * The gate kernel of an int8 loop step (--state int8; edgernn/backends/native/fastgate.py) on
 * weight rows: FULLY_CONNECTED x and FULLY_CONNECTED h of the same rows, each row requantized to
 * int8 as edgernn_pairs.h's edgernn_fc8_row does (SMMLAR by m with the rounding term R, the
 * output zero point folded in, >> rs, clamp), the h row first TFLM's MUL by g[i] in the
 * pre-scaled form when mk > 0, then the ADD fit clamp8((a P1 + b P2 + K) >> S) and the
 * LOGISTIC / TANH table (edgernn_fc8_gate's arithmetic).
 * The products are int8 x int8 on the inputs themselves (x_t, the state: no int16 copy): a row's
 * sum is its bias word plus w x, then times the pre-scale 2^(1 + ls) the pairs kernels' int16
 * copies carry (fcrows.gate_rows_stream proves (sum |w| 128 + |bias|) 2^(1 + ls) < 2^31).
 * The stream (fcrows.gate_rows_stream), per pass of four rows, for x then h: the rows' bias
 * words, their int8 weights in chunks of sixteen columns (row 0's columns of the chunk, then row
 * 1's, 2's, 3's; the last chunk n % 16 wide), multipliers, rounding terms and, for rs < 0, each
 * row's shift word rs 2^8 + 24 - rs (VQSHL takes the signed low byte of each lane as its shift). On Helium: per row and chunk one VLDRB.8 and one VMLADAVA.S8 (sixteen
 * multiply-accumulates; a short chunk's load reads on into the stream but meets the zero lanes
 * of the input chunk, loaded predicated), an input of at most two chunks held in registers for
 * the call; the pre-scale's doubling is VQRDMULH's (SMMULR(2 v, m) = VQRDMULH(v, m), m > 0), the
 * requantization, fit, table gather (VLDRB gather) and store on the four rows at once.
 * alias 1: the output may overlap h (a state written in place): h is read whole before the
 * first store (held, or copied; n_h <= EDGERNN_GATE_ROWS_COPY).
 * ------------------------------------------------------------------------------------- */
#define EDGERNN_GATE_ROWS 4
#define EDGERNN_GATE_ROWS_CHUNK 16 /* columns per chunk: one int8x16 of the input */
#define EDGERNN_GATE_ROWS_COPY 64  /* alias 1: at most this many h values (copied where not held) */

typedef struct {
    const uint32_t *stream; /*  0 */
    int8_t *out;            /*  4 */
    int32_t p1;             /*  8 */
    int32_t p2;             /* 12 */
    int32_t k;              /* 16 */
    const int8_t *table;    /* 20: the table's entry 0 (entries -128..127) */
    /* mk > 0: the h row b becomes TFLM's MUL of g[i] and b first, in the pre-scaled form of
     * edgernn_mul_prescaled_s8: clamp8(SMMLAR((g + og)((b << mk) + ohk), m, R + [rs > 0] (p >> 31)) >> rs) */
    const int8_t *g;  /* 24 */
    int32_t og;       /* 28 */
    int32_t ohk;      /* 32 */
    int32_t rounding; /* 36 */
    int32_t m;        /* 40 */
} edgernn_gate_rows_params;

/* One FC of a pass (C): the four rows requantized to int8, the stream at *s advanced. */
static inline EDGERNN_ALWAYS_INLINE void edgernn_gate_rows_side_c(const uint32_t **s, const int8_t *x, int n, int rs,
                                                                  int ls, int32_t *y)
{
    const uint32_t *p = *s;
    int32_t a[EDGERNN_GATE_ROWS];
    const int8_t *w8 = (const int8_t *)(p + EDGERNN_GATE_ROWS);
    int c0;
    int r;
    for (r = 0; r < EDGERNN_GATE_ROWS; ++r) {
        a[r] = (int32_t)p[r];
    }
    EDGERNN_UNROLL(4)
    for (c0 = 0; c0 < n; c0 += EDGERNN_GATE_ROWS_CHUNK) {
        const int width = n - c0 < EDGERNN_GATE_ROWS_CHUNK ? n - c0 : EDGERNN_GATE_ROWS_CHUNK;
        int j;
        EDGERNN_UNROLL(16)
        for (j = 0; j < width; ++j) {
            const int32_t xj = x[c0 + j];
            a[0] += w8[j] * xj;
            a[1] += w8[width + j] * xj;
            a[2] += w8[2 * width + j] * xj;
            a[3] += w8[3 * width + j] * xj;
        }
        w8 += EDGERNN_GATE_ROWS * width;
    }
    p += EDGERNN_GATE_ROWS + n;
    for (r = 0; r < EDGERNN_GATE_ROWS; ++r) {
        const int32_t v = a[r] * ((int32_t)2 << ls); /* the pre-scale */
        const int32_t m = (int32_t)p[r];
        const int32_t rounding = (int32_t)p[EDGERNN_GATE_ROWS + r];
        if (rs == 0) {
            y[r] = edgernn_clamp_s8(edgernn_smmlar(v, m, rounding));
        } else { /* rs < 0: each row's rs > 0 in bits 8.. of its shift word */
            const int row_rs = rs > 0 ? rs : (int)(p[2 * EDGERNN_GATE_ROWS + r] >> 8);
            y[r] = edgernn_clamp_s8(edgernn_smmlar(v, m, rounding + (v >> 31)) >> row_rs);
        }
    }
    *s = p + (rs >= 0 ? 2 : 3) * EDGERNN_GATE_ROWS;
}

static inline EDGERNN_ALWAYS_INLINE void edgernn_gate_rows_c(const edgernn_gate_rows_params *g, const int8_t *x,
                                                             const int8_t *h, int n_out, int n_x, int n_h, int rs_x,
                                                             int rs_h, int ls_x, int ls_h, int s, int mk, int mrs,
                                                             int alias)
{
    const uint32_t *p = g->stream;
    int8_t copy[EDGERNN_GATE_ROWS_COPY];
    int r0;
    if (alias) { /* the output may overwrite h: the passes read a copy */
        for (r0 = 0; r0 < n_h; ++r0) {
            copy[r0] = h[r0];
        }
        h = copy;
    }
    for (r0 = 0; r0 < n_out; r0 += EDGERNN_GATE_ROWS) {
        const int rows = n_out - r0 < EDGERNN_GATE_ROWS ? n_out - r0 : EDGERNN_GATE_ROWS;
        int32_t xa[EDGERNN_GATE_ROWS];
        int32_t ha[EDGERNN_GATE_ROWS];
        int r;
        edgernn_gate_rows_side_c(&p, x, n_x, rs_x, ls_x, xa);
        edgernn_gate_rows_side_c(&p, h, n_h, rs_h, ls_h, ha);
        for (r = 0; r < rows; ++r) {
            int32_t b = ha[r];
            if (mk > 0) { /* MUL(g, b), pre-scaled by 2^mk */
                const int32_t q = (g->g[r0 + r] + g->og) * ((b << mk) + g->ohk);
                b = edgernn_clamp_s8(mrs ? edgernn_smmlar(q, g->m, g->rounding + (q >> 31)) >> mrs
                                         : edgernn_smmlar(q, g->m, g->rounding));
            }
            g->out[r0 + r] = g->table[edgernn_clamp_s8((b * g->p2 + xa[r] * g->p1 + g->k) >> s)];
        }
    }
}

#if EDGERNN_USE_MVE
/* Sixteen weights of one row at *w, then *w += step bytes (VLDRB.8, post-incremented: the step
 * is an assembler immediate). */
static inline EDGERNN_ALWAYS_INLINE int8x16_t edgernn_gate_rows_load(const int8_t **w, int step)
{
    int8x16_t v;
    __asm__("vldrb.8 %q0, [%1], %2" : "=w"(v), "+r"(*w) : "i"(step)); /* const weights: no memory clobber */
    return v;
}

/* Chunk c of an int8 input: sixteen lanes, or the last chunk's n % 16 with zeros after them. */
static inline EDGERNN_ALWAYS_INLINE int8x16_t edgernn_gate_rows_x(const int8_t *x, int c, int n)
{
    const int width = n - EDGERNN_GATE_ROWS_CHUNK * c;
    if (width >= EDGERNN_GATE_ROWS_CHUNK) {
        return vldrbq_s8(x + EDGERNN_GATE_ROWS_CHUNK * c);
    }
    return vldrbq_z_s8(x + EDGERNN_GATE_ROWS_CHUNK * c, vctp8q((uint32_t)width));
}

/* One chunk of four rows against the input chunk xc: VMLADAV starts the sums (first), VMLADAVA
 * adds to them. */
static inline EDGERNN_ALWAYS_INLINE void edgernn_gate_rows_chunk(const int8_t **w, int8x16_t xc, int step, int first,
                                                                 int32_t *a0, int32_t *a1, int32_t *a2, int32_t *a3)
{
    if (first) {
        *a0 = vmladavq_s8(edgernn_gate_rows_load(w, step), xc);
        *a1 = vmladavq_s8(edgernn_gate_rows_load(w, step), xc);
        *a2 = vmladavq_s8(edgernn_gate_rows_load(w, step), xc);
        *a3 = vmladavq_s8(edgernn_gate_rows_load(w, step), xc);
    } else {
        *a0 = vmladavaq_s8(*a0, edgernn_gate_rows_load(w, step), xc);
        *a1 = vmladavaq_s8(*a1, edgernn_gate_rows_load(w, step), xc);
        *a2 = vmladavaq_s8(*a2, edgernn_gate_rows_load(w, step), xc);
        *a3 = vmladavaq_s8(*a3, edgernn_gate_rows_load(w, step), xc);
    }
}

/* The bytes of a row's weights in chunk c. */
#define EDGERNN_GATE_ROWS_STEP(c, n)                                                                             \
    ((n) - EDGERNN_GATE_ROWS_CHUNK * (c) < EDGERNN_GATE_ROWS_CHUNK ? (n) - EDGERNN_GATE_ROWS_CHUNK * (c)          \
                                                                    : EDGERNN_GATE_ROWS_CHUNK)

/* One FC of a pass (Helium): the four rows requantized to int8, in 32-bit lanes; an input of at
 * most two chunks comes held in x0, x1 (held 1), else is read from x. */
static inline EDGERNN_ALWAYS_INLINE int32x4_t edgernn_gate_rows_side_mve(const int8_t **w, const int8_t *x, int n,
                                                                         int rs, int ls, int held, int8x16_t x0,
                                                                         int8x16_t x1)
{
    const int chunks = (n + EDGERNN_GATE_ROWS_CHUNK - 1) / EDGERNN_GATE_ROWS_CHUNK;
    const int32x4_t b = edgernn_fc16r_words(w);
    int32_t a0;
    int32_t a1;
    int32_t a2;
    int32_t a3;
    int32x4_t v;
    int32x4_t m;
    int32x4_t rounding;
    int c;
    /* the first chunk, the whole ones, the last (the loads' steps: assembler immediates) */
    edgernn_gate_rows_chunk(w, held ? x0 : edgernn_gate_rows_x(x, 0, n), EDGERNN_GATE_ROWS_STEP(0, n), 1, &a0, &a1,
                            &a2, &a3);
    for (c = 1; c < chunks - 1; ++c) {
        edgernn_gate_rows_chunk(w, vldrbq_s8(x + EDGERNN_GATE_ROWS_CHUNK * c), EDGERNN_GATE_ROWS_CHUNK, 0, &a0, &a1,
                                &a2, &a3);
    }
    if (chunks > 1) {
        edgernn_gate_rows_chunk(w, held ? x1 : edgernn_gate_rows_x(x, chunks - 1, n),
                                EDGERNN_GATE_ROWS_STEP(chunks - 1, n), 0, &a0, &a1, &a2, &a3);
    }
    v = vaddq_s32(edgernn_mve_pack4(a0, a1, a2, a3), b);
    m = edgernn_fc16r_words(w);
    rounding = edgernn_fc16r_words(w);
    if (rs != 0) {
        rounding = vaddq_s32(rounding, vshrq_n_s32(v, 31)); /* every row's rs > 0 (fasttensor.requant_rows) */
    }
    if (ls > 0) {
        v = vshlq_n_s32(v, ls);
    }
    v = vaddq_s32(vqrdmulhq_s32(v, m), rounding); /* SMMLAR(2 v, m, R) = R + VQRDMULH(v, m) */
    /* clamp8(v >> rs) = (v 2^(24 - rs), saturated) >> 24 (0 <= rs <= 23): one VQSHL, one VSHR */
    if (rs < 0) {
        v = vqshlq_s32(v, edgernn_fc16r_words(w)); /* each row's 24 - rs: the low byte of its shift word */
    } else {
        v = vqshlq_n_s32(v, 24 - rs);
    }
    return vshrq_n_s32(v, 24);
}

/* The struct's fields, held in registers for the call (the stores could alias the struct). */
typedef struct {
    int8_t *out;
    const int8_t *table;
    int32_t p1;
    int32_t p2;
    int32_t k;
    const int8_t *g;
    int32_t og;
    int32_t oh; /* the h zero point: ohk 2^-mk */
    int32_t rounding;
    int32_t m;
} edgernn_gate_rows_mve_t;

/* One pass of four rows (Helium): both FCs, the MUL, the fit, the table, the store of `rows`. */
static inline EDGERNN_ALWAYS_INLINE void edgernn_gate_rows_pass_mve(const edgernn_gate_rows_mve_t *g, const int8_t **w,
                                                                    const int8_t *x, const int8_t *h, int r0, int rows,
                                                                    int n_x, int n_h, int rs_x, int rs_h, int ls_x,
                                                                    int ls_h, int s, int mk, int mrs, int8x16_t x0,
                                                                    int8x16_t x1, int8x16_t h0, int8x16_t h1)
{
    int32x4_t a = edgernn_gate_rows_side_mve(w, x, n_x, rs_x, ls_x, n_x <= 2 * EDGERNN_GATE_ROWS_CHUNK, x0, x1);
    int32x4_t b;
    int32x4_t v;
    __asm__ volatile("" : "+w"(a)); /* the x row done before the h products (no Q register spilled) */
    b = edgernn_gate_rows_side_mve(w, h, n_h, rs_h, ls_h, n_h <= 2 * EDGERNN_GATE_ROWS_CHUNK, h0, h1);
    if (mk > 0) { /* MUL(g, b), pre-scaled by 2^mk: q = (g + og)(b + oh) 2^mk, SMMULR(q, m) = VQRDMULH(q / 2, m);
                   * clamp8(. >> mrs) as VQSHL #(24 - mrs), VSHR #24 */
        const int32x4_t gv = rows == EDGERNN_GATE_ROWS ? vldrbq_s32(g->g + r0)
                                                       : vldrbq_z_s32(g->g + r0, vctp32q((uint32_t)rows));
        int32x4_t q = vmulq_s32(vaddq_n_s32(gv, g->og), vaddq_n_s32(b, g->oh));
        if (mk > 1) {
            q = vshlq_n_s32(q, mk - 1);
        }
        b = vaddq_n_s32(vqrdmulhq_n_s32(q, g->m), g->rounding);
        if (mrs > 0) {
            b = vaddq_s32(b, vshrq_n_s32(q, 31));
        }
        b = vshrq_n_s32(vqshlq_n_s32(b, 24 - mrs), 24);
    }
    v = vaddq_n_s32(vmlaq_n_s32(vmulq_n_s32(b, g->p2), a, g->p1), g->k);
    v = vshrq_n_s32(vqshlq_n_s32(v, 24 - s), 24); /* clamp8(v >> s) */
    /* the table's entry v (-128..127) from its middle: a negative offset wraps the address */
    v = vldrbq_gather_offset_s32(g->table, vreinterpretq_u32_s32(v));
    if (rows == EDGERNN_GATE_ROWS) {
        vstrbq_s32(g->out + r0, v);
    } else {
        vstrbq_p_s32(g->out + r0, v, vctp32q((uint32_t)rows));
    }
}

static inline EDGERNN_ALWAYS_INLINE void edgernn_gate_rows_mve(const edgernn_gate_rows_params *p, const int8_t *x,
                                                               const int8_t *h, int n_out, int n_x, int n_h, int rs_x,
                                                               int rs_h, int ls_x, int ls_h, int s, int mk, int mrs,
                                                               int alias)
{
    const int8_t *w = (const int8_t *)p->stream;
    const int x_held = n_x <= 2 * EDGERNN_GATE_ROWS_CHUNK;
    const int h_held = n_h <= 2 * EDGERNN_GATE_ROWS_CHUNK;
    edgernn_gate_rows_mve_t g;
    int8_t copy[EDGERNN_GATE_ROWS_COPY];
    int8x16_t x0;
    int8x16_t x1;
    int8x16_t h0;
    int8x16_t h1;
    int r0;
    g.out = p->out;
    g.table = p->table;
    g.p1 = p->p1;
    g.p2 = p->p2;
    g.k = p->k;
    g.g = p->g;
    g.og = p->og;
    g.oh = p->ohk >> (mk > 0 ? mk : 0);
    g.rounding = p->rounding;
    g.m = p->m;
    EDGERNN_FC16R_FENCE(); /* see edgernn_fc16r_mve */
    if (alias && !h_held) { /* the output may overwrite h: the passes read a copy */
        for (r0 = 0; r0 < n_h; r0 += EDGERNN_GATE_ROWS_CHUNK) {
            vstrbq_s8(copy + r0, vldrbq_s8(h + r0));
        }
        h = copy;
    }
    x0 = x_held ? edgernn_gate_rows_x(x, 0, n_x) : vdupq_n_s8(0);
    x1 = x_held && n_x > EDGERNN_GATE_ROWS_CHUNK ? edgernn_gate_rows_x(x, 1, n_x) : vdupq_n_s8(0);
    h0 = h_held ? edgernn_gate_rows_x(h, 0, n_h) : vdupq_n_s8(0);
    h1 = h_held && n_h > EDGERNN_GATE_ROWS_CHUNK ? edgernn_gate_rows_x(h, 1, n_h) : vdupq_n_s8(0);
    EDGERNN_FC16R_FENCE(); /* h read whole before the first store (alias) */
    for (r0 = 0; r0 < n_out - n_out % EDGERNN_GATE_ROWS; r0 += EDGERNN_GATE_ROWS) {
        edgernn_gate_rows_pass_mve(&g, &w, x, h, r0, EDGERNN_GATE_ROWS, n_x, n_h, rs_x, rs_h, ls_x, ls_h, s, mk, mrs,
                                   x0, x1, h0, h1);
    }
    if (n_out % EDGERNN_GATE_ROWS) {
        edgernn_gate_rows_pass_mve(&g, &w, x, h, r0, n_out % EDGERNN_GATE_ROWS, n_x, n_h, rs_x, rs_h, ls_x, ls_h, s,
                                   mk, mrs, x0, x1, h0, h1);
    }
    EDGERNN_FC16R_FENCE();
    (void)copy;
}
#define edgernn_gate_rows edgernn_gate_rows_mve
#else
#define edgernn_gate_rows edgernn_gate_rows_c
#endif

/* EDGERNN_GATE_ROWS_KERNEL(name, n_out, n_x, n_h, rs_x, rs_h, ls_x, ls_h, s, mk, mrs, alias): `static
 * void name(const edgernn_gate_rows_params *g, const int8_t *x, const int8_t *h)`; mk = 0: no MUL
 * (the literals must be numbers). */
#define EDGERNN_GATE_ROWS_KERNEL(name, n_out, n_x, n_h, rs_x, rs_h, ls_x, ls_h, s, mk, mrs, alias)          \
    static void name(const edgernn_gate_rows_params *g, const int8_t *x, const int8_t *h)                   \
    {                                                                                                       \
        edgernn_gate_rows(g, x, h, n_out, n_x, n_h, rs_x, rs_h, ls_x, ls_h, s, mk, mrs, alias);            \
    }

#define EDGERNN_FC16R_KERNEL(name, n_input, n_output, bias, wbytes, form) \
    static void name(const edgernn_fc16w *fc)                             \
    {                                                                     \
        edgernn_fc16r(fc, n_input, n_output, bias, wbytes, form);         \
    }

/* The same FC reading an int8 input (the loop step's x_t) in place of the int16 copy a CAST
 * would make: `static void name(const edgernn_fc16w *fc, const int8_t *x8)` (fc->input unused;
 * n_input <= EDGERNN_FC16R_X8_MAX). */
#define EDGERNN_FC16R_KERNEL_X8(name, n_input, n_output, bias, wbytes, form) \
    static void name(const edgernn_fc16w *fc, const int8_t *x8)               \
    {                                                                         \
        edgernn_fc16r_x8(fc, x8, n_input, n_output, bias, wbytes, form);      \
    }

#ifdef __cplusplus
}
#endif

#endif /* EDGERNN_MVE_FC_H */
