/*
 * edgernn_rows.h - LSTM gate kernels on int8 rows: Helium (Cortex-M55) and plain C.
 *
 * One gate of the LSTM step: the input product W x and the recurrent product U h of every unit,
 * each requantized to the Q3.12 pre-activation (TFLM MultiplyByQuantizedMultiplier, clamped to
 * int16), and their saturating sum (TFLM's CalculateLstmGate).
 *
 * Layout (written by edgernn at generation time): the layer keeps this step's input and its
 * hidden state as int8 in one 16-byte aligned vector xh = [x, zeros to a multiple of 16 |
 * h, zeros to a multiple of 16]. A gate's weights come in passes of four rows (units; zero rows
 * pad the last pass): for each 16-column chunk of x, the four rows' columns of that chunk (16,
 * or n_input % 16 in the last chunk), then the same over h, and 16 zero bytes end the stream.
 * The biases (zero points folded in) are separate int32 arrays.
 *
 * On Helium each chunk is one VLDRB of 16 weights and one VMLADAVA.S8 (16 multiply-accumulates)
 * per row; a load of a short last chunk reads the next row's first bytes too, but those meet
 * the zero padding of xh. Elsewhere the C below reads the same stream and computes the same
 * bits, four rows sharing each input load.
 *
 * EDGERNN_ROWS_GATE_KERNEL(name, units, n_input, n_cell, sx, sh) defines
 * `static void name(const edgernn_rows_gate *gate)` for the requantization shifts sx, sh of the
 * gate's two products (TFLM's signed shift: left when positive), which must be literals.
 */
#ifndef EDGERNN_ROWS_H
#define EDGERNN_ROWS_H

#include <stdint.h>

#include "edgernn_fast.h"

#ifdef __cplusplus
extern "C" {
#endif

#define EDGERNN_ROWS_PER_PASS 4
#define EDGERNN_ROWS_CHUNK 16

#if defined(__GNUC__)
#define EDGERNN_ALIGN16 __attribute__((aligned(16)))
#else
#define EDGERNN_ALIGN16
#endif

typedef struct {
    const int8_t *weights;          /* the gate's weight stream (layout above) */
    const int32_t *input_bias;      /* [units]: bias - input zero point x row sums */
    const int32_t *recurrent_bias;  /* [units]: -hidden zero point x row sums */
    const int8_t *xh;               /* the layer's [x | h] vector */
    int16_t *pre;                   /* out: the gate's pre-activation of every unit */
    int32_t input_multiplier;       /* Q0.31 requantization multipliers of the two products */
    int32_t recurrent_multiplier;
} edgernn_rows_gate;

/* Adds the products of four rows over `cols` int8 values of v to *a0..*a3, reading the weights
 * chunk by chunk from *w (and advancing it). Once inlined, cols is a constant: the loops unroll
 * and the sums stay in registers. */
static inline EDGERNN_ALWAYS_INLINE void edgernn_rows_product(const int8_t **w, const int8_t *v, int cols,
                                                              int32_t *a0, int32_t *a1, int32_t *a2, int32_t *a3)
{
    const int8_t *s = *w;
    int32_t s0 = *a0;
    int32_t s1 = *a1;
    int32_t s2 = *a2;
    int32_t s3 = *a3;
    int c0;
    for (c0 = 0; c0 < cols; c0 += EDGERNN_ROWS_CHUNK) {
        const int width = cols - c0 < EDGERNN_ROWS_CHUNK ? cols - c0 : EDGERNN_ROWS_CHUNK;
        int j;
        EDGERNN_UNROLL(16)
        for (j = 0; j < width; ++j) {
            const int32_t vj = v[c0 + j];
            s0 += s[j] * vj;
            s1 += s[width + j] * vj;
            s2 += s[2 * width + j] * vj;
            s3 += s[3 * width + j] * vj;
        }
        s += EDGERNN_ROWS_PER_PASS * width;
    }
    *a0 = s0;
    *a1 = s1;
    *a2 = s2;
    *a3 = s3;
    *w = s;
}

/* The requantized, saturated sum of a unit's two products (TFLM CalculateLstmGate). */
static inline int16_t edgernn_rows_gate_value(int32_t ax, int32_t ah, int32_t mx, int sx, int32_t mh, int sh)
{
    return (int16_t)edgernn_clamp_s16(edgernn_clamp_s16(edgernn_mbqm(ax, mx, sx)) +
                                      edgernn_clamp_s16(edgernn_mbqm(ah, mh, sh)));
}

/* The C form of one pass: four units' pre-activations from the stream at *w (advanced). */
static inline EDGERNN_ALWAYS_INLINE void edgernn_rows_pass_c(const int8_t **w, const int8_t *x, const int8_t *h,
                                                             int n_input, int n_cell, const int32_t *bx,
                                                             const int32_t *bh, int32_t mx, int sx, int32_t mh,
                                                             int sh, int16_t *pre)
{
    int32_t x0 = bx[0];
    int32_t x1 = bx[1];
    int32_t x2 = bx[2];
    int32_t x3 = bx[3];
    int32_t h0 = bh[0];
    int32_t h1 = bh[1];
    int32_t h2 = bh[2];
    int32_t h3 = bh[3];
    edgernn_rows_product(w, x, n_input, &x0, &x1, &x2, &x3);
    edgernn_rows_product(w, h, n_cell, &h0, &h1, &h2, &h3);
    pre[0] = edgernn_rows_gate_value(x0, h0, mx, sx, mh, sh);
    pre[1] = edgernn_rows_gate_value(x1, h1, mx, sx, mh, sh);
    pre[2] = edgernn_rows_gate_value(x2, h2, mx, sx, mh, sh);
    pre[3] = edgernn_rows_gate_value(x3, h3, mx, sx, mh, sh);
}

/* One LSTM step's per-unit part, after the four gates: activations, cell update, hidden
 * state (TFLM's LstmStep), written to `hidden` and to the hidden half of the layer's xh. */
static inline EDGERNN_ALWAYS_INLINE void edgernn_rows_tail_c(const edgernn_lstm_tail_params *p, const int16_t *pre,
                                                             int units, int n_cell, int16_t *cell, int8_t *hidden,
                                                             int8_t *h_next)
{
    edgernn_lstm_fast_cells(p, pre, units, n_cell, cell, hidden, 1, h_next, 0, NULL, 0);
}

/* Helium: with gcc optimizing (the post-incremented loads and the _n_ shift intrinsics take
 * chunk widths and shift counts as immediates, which gcc's constant propagation provides after
 * inlining). clang and armclang require those counts to be literal constants and get the C
 * twin, as do -O0 builds. -DEDGERNN_USE_MVE=0 forces C. */
#ifndef EDGERNN_USE_MVE
#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1) && defined(__GNUC__) && !defined(__clang__) && \
    defined(__OPTIMIZE__)
#define EDGERNN_USE_MVE 1
#else
#define EDGERNN_USE_MVE 0
#endif
#endif

#if EDGERNN_USE_MVE
/* A compiler barrier before and after each Helium kernel: gcc 12 does not always order the
 * intrinsics' stores against other loads of the same memory (seen with int16 loads after
 * vstrhq_s32, edgernn_mve_fc.h); here the step's memcpy into xh, the passes' pre-activations
 * read by the tail, and the tail's hidden state read by the next layer or the head. No
 * instruction is emitted. */
#define EDGERNN_ROWS_FENCE() __asm__ volatile("" ::: "memory")
#include <arm_mve.h>

/* 16 int8 weights at *w, then *w += step: one VLDRB with post-increment (gcc would otherwise
 * add an address computation per load, VLDRB's offset reaching only 127). */
static inline EDGERNN_ALWAYS_INLINE int8x16_t edgernn_mve_load(const int8_t **w, int step)
{
    int8x16_t v;
    __asm__("vldrb.8 %q0, [%1], %2" : "=w"(v), "+r"(*w) : "i"(step)); /* const weights: no memory clobber */
    return v;
}

/* Four scalars as one vector: two VMOVs of two general registers each (vsetq_lane costs four). */
static inline EDGERNN_ALWAYS_INLINE int32x4_t edgernn_mve_pack4(int32_t a, int32_t b, int32_t c, int32_t d)
{
    int32x4_t v;
    __asm__("vmov %q0[2], %q0[0], %1, %2\n\tvmov %q0[3], %q0[1], %3, %4" : "=&w"(v) : "r"(a), "r"(c), "r"(b), "r"(d));
    return v;
}

/* TFLM MultiplyByQuantizedMultiplier on four lanes: VSHL (left shift), VQRDMULH (exactly
 * SaturatingRoundingDoublingHighMul), RoundingDivideByPOT as VRSHL(x + (x >> 31), -shift)
 * (ties away from zero). m and shift are constants once inlined. */
static inline EDGERNN_ALWAYS_INLINE int32x4_t edgernn_mve_mbqm(int32x4_t x, int32_t m, int shift)
{
    if (shift > 0) {
        x = vshlq_r_s32(x, shift);
    }
    x = vqrdmulhq_n_s32(x, m);
    if (shift < 0) {
        x = vrshrq_n_s32(vaddq_s32(x, vshrq_n_s32(x, 31)), -shift); /* VRSHR #imm: no shift register */
    }
    return x;
}

/* Saturation of 32-bit lanes to int16 / int8: a saturating left shift, then back. */
#define EDGERNN_MVE_CLAMP16(x) vshrq_n_s32(vqshlq_n_s32((x), 16), 16)
#define EDGERNN_MVE_CLAMP8(x) vshrq_n_s32(vqshlq_n_s32((x), 24), 24)

/* Four rows' sums over one chunk of 16 input values (`width` of them read from the stream):
 * VMLADAV starts the sums, VMLADAVA adds to them. */
#define EDGERNN_MVE_FIRST_CHUNK(w, v, width, a0, a1, a2, a3)   \
    do {                                                       \
        a0 = vmladavq_s8(edgernn_mve_load(&(w), width), v);      \
        a1 = vmladavq_s8(edgernn_mve_load(&(w), width), v);      \
        a2 = vmladavq_s8(edgernn_mve_load(&(w), width), v);      \
        a3 = vmladavq_s8(edgernn_mve_load(&(w), width), v);      \
    } while (0)
#define EDGERNN_MVE_CHUNK(w, v, width, a0, a1, a2, a3)          \
    do {                                                       \
        a0 = vmladavaq_s8(a0, edgernn_mve_load(&(w), width), v); \
        a1 = vmladavaq_s8(a1, edgernn_mve_load(&(w), width), v); \
        a2 = vmladavaq_s8(a2, edgernn_mve_load(&(w), width), v); \
        a3 = vmladavaq_s8(a3, edgernn_mve_load(&(w), width), v); \
    } while (0)

/* Four rows over `cols` values of v (16-byte chunks, the last one `cols` % 16 wide). */
static inline EDGERNN_ALWAYS_INLINE int32x4_t edgernn_mve_product(const int8_t **w, const int8_t *v, int cols)
{
    const int chunks = (cols + EDGERNN_ROWS_CHUNK - 1) / EDGERNN_ROWS_CHUNK;
    const int last = cols - EDGERNN_ROWS_CHUNK * (chunks - 1);
    int32_t a0;
    int32_t a1;
    int32_t a2;
    int32_t a3;
    int c;
    if (chunks == 1) {
        EDGERNN_MVE_FIRST_CHUNK(*w, vldrbq_s8(v), last, a0, a1, a2, a3);
    } else {
        EDGERNN_MVE_FIRST_CHUNK(*w, vldrbq_s8(v), EDGERNN_ROWS_CHUNK, a0, a1, a2, a3);
        for (c = 1; c < chunks - 1; ++c) {
            EDGERNN_MVE_CHUNK(*w, vldrbq_s8(v + EDGERNN_ROWS_CHUNK * c), EDGERNN_ROWS_CHUNK, a0, a1, a2, a3);
        }
        EDGERNN_MVE_CHUNK(*w, vldrbq_s8(v + EDGERNN_ROWS_CHUNK * (chunks - 1)), last, a0, a1, a2, a3);
    }
    return edgernn_mve_pack4(a0, a1, a2, a3);
}

/* The Helium form of edgernn_rows_pass_c. */
static inline EDGERNN_ALWAYS_INLINE void edgernn_rows_pass_mve(const int8_t **w, const int8_t *x, const int8_t *h,
                                                               int n_input, int n_cell, const int32_t *bx,
                                                               const int32_t *bh, int32_t mx, int sx, int32_t mh,
                                                               int sh, int16_t *pre)
{
    int32x4_t vx = edgernn_mve_product(w, x, n_input);
    int32x4_t vh = edgernn_mve_product(w, h, n_cell);
    vx = edgernn_mve_mbqm(vaddq_s32(vx, vldrwq_s32(bx)), mx, sx);
    vh = edgernn_mve_mbqm(vaddq_s32(vh, vldrwq_s32(bh)), mh, sh);
    /* each product saturated to int16 (VQMOVNB), then TFLM's saturating sum (VQADD.S16) */
    vstrhq_s32(pre, vreinterpretq_s32_s16(vqaddq_s16(vqmovnbq_s32(vdupq_n_s16(0), vx),
                                                     vqmovnbq_s32(vdupq_n_s16(0), vh))));
}

/* TFLM int16 Logistic / Tanh on four lanes: the tables of edgernn_fast.h read with gathers (a
 * negative segment wraps around the 32-bit address, landing below the table's middle). */
typedef struct {
    const int32_t *sa; /* the tables' segment 0, kept in registers by the tail loop */
    const uint16_t *sd;
    const int32_t *ta;
    const uint16_t *td;
} edgernn_mve_tables;

static inline EDGERNN_ALWAYS_INLINE int32x4_t edgernn_mve_sigmoid(const edgernn_mve_tables *t, int32x4_t x)
{
    const int32x4_t v = vmulq_n_s32(x, 3);
    const uint32x4_t i = vreinterpretq_u32_s32(vshrq_n_s32(v, 9));
    const int32x4_t a = vldrwq_gather_shifted_offset_s32(t->sa, i);
    const int32x4_t d = vreinterpretq_s32_u32(vldrhq_gather_shifted_offset_u32(t->sd, i));
    return vshrq_n_s32(vaddq_s32(a, vmulq_s32(v, d)), 10); /* the sum is never negative */
}

static inline EDGERNN_ALWAYS_INLINE int32x4_t edgernn_mve_tanh(const edgernn_mve_tables *t, int32x4_t v)
{
    /* segment clamp(v >> 8, -256, 255) as sat32(v << 15) >> 23 */
    const uint32x4_t i = vreinterpretq_u32_s32(vshrq_n_s32(vqshlq_n_s32(v, 15), 23));
    const int32x4_t a = vldrwq_gather_shifted_offset_s32(t->ta, i);
    const int32x4_t d = vreinterpretq_s32_u32(vldrhq_gather_shifted_offset_u32(t->td, i));
    return vshrq_n_s32(vaddq_s32(a, vmulq_s32(v, d)), 8);
}

/* Four units of edgernn_rows_tail_c (the lanes of `lanes` only; all four, unpredicated, when
 * `full`). */
static inline EDGERNN_ALWAYS_INLINE void edgernn_rows_tail4_mve(const edgernn_lstm_tail_params *p,
                                                                const edgernn_mve_tables *t, const int16_t *pre,
                                                                int units, int16_t *cell, int8_t *hidden,
                                                                int8_t *h_next, int full, mve_pred16_t lanes)
{
    const int32x4_t i = edgernn_mve_sigmoid(t, vldrhq_s32(pre));
    const int32x4_t f = edgernn_mve_sigmoid(t, vldrhq_s32(pre + units));
    const int32x4_t g = edgernn_mve_tanh(t, vmulq_n_s32(vldrhq_s32(pre + 2 * units), 3));
    const int32x4_t o = edgernn_mve_sigmoid(t, vldrhq_s32(pre + 3 * units));
    int32x4_t c = full ? vldrhq_s32(cell) : vldrhq_z_s32(cell, lanes);
    int32x4_t v;
    int32x4_t h;
    c = vaddq_s32(EDGERNN_MVE_CLAMP16(edgernn_mve_mbqm(vmulq_s32(i, g), p->input_mul_multiplier,
                                                       (int)p->input_mul_shift)),
                  EDGERNN_MVE_CLAMP16(edgernn_mve_mbqm(vmulq_s32(f, c), p->forget_mul_multiplier,
                                                       (int)p->forget_mul_shift)));
    c = EDGERNN_MVE_CLAMP16(c);
    if (p->cell_clip > 0) {
        c = vminq_s32(vmaxq_s32(c, vdupq_n_s32(-p->cell_clip)), vdupq_n_s32(p->cell_clip));
    }
    if (full) {
        vstrhq_s32(cell, c);
    } else {
        vstrhq_p_s32(cell, c, lanes);
    }
    v = vmulq_n_s32(c, p->cell_tanh_multiplier);
    if (p->cell_tanh_right_shift > 0) {
        v = vshrq_n_s32(vaddq_n_s32(v, (int32_t)1 << (p->cell_tanh_right_shift - 1)), p->cell_tanh_right_shift);
    }
    h = edgernn_mve_mbqm(vmulq_s32(o, edgernn_mve_tanh(t, v)), p->hidden_multiplier, (int)p->hidden_shift);
    h = EDGERNN_MVE_CLAMP8(vaddq_n_s32(h, p->hidden_zero_point));
    if (full) {
        vstrbq_s32(hidden, h);
        vstrbq_s32(h_next, h);
    } else {
        vstrbq_p_s32(hidden, h, lanes);
        vstrbq_p_s32(h_next, h, lanes);
    }
}

/* edgernn_rows_tail_c on four units per iteration, the last (n_cell % 4) units predicated. */
static inline EDGERNN_ALWAYS_INLINE void edgernn_rows_tail_mve(const edgernn_lstm_tail_params *p, const int16_t *pre,
                                                               int units, int n_cell, int16_t *cell, int8_t *hidden,
                                                               int8_t *h_next)
{
    const int full = n_cell & ~3;
    edgernn_mve_tables t;
    int u;
    t.sa = EDGERNN_SIGMOID_A;
    t.sd = EDGERNN_SIGMOID_D;
    t.ta = EDGERNN_TANH_A;
    t.td = EDGERNN_TANH_D;
    EDGERNN_IN_REGISTER(t.sa);
    EDGERNN_IN_REGISTER(t.sd);
    EDGERNN_IN_REGISTER(t.ta);
    EDGERNN_IN_REGISTER(t.td);
    EDGERNN_ROWS_FENCE();
    for (u = 0; u < full; u += 4) {
        edgernn_rows_tail4_mve(p, &t, pre + u, units, cell + u, hidden + u, h_next + u, 1, 0xFFFF);
    }
    if (full < n_cell) {
        edgernn_rows_tail4_mve(p, &t, pre + full, units, cell + full, hidden + full, h_next + full, 0,
                               vctp32q((uint32_t)(n_cell - full)));
    }
    EDGERNN_ROWS_FENCE();
}

#define edgernn_rows_pass edgernn_rows_pass_mve
#define edgernn_rows_tail edgernn_rows_tail_mve
#else
#define edgernn_rows_pass edgernn_rows_pass_c
#define edgernn_rows_tail edgernn_rows_tail_c
#define EDGERNN_ROWS_FENCE() ((void)0)
#endif

/* The gate kernel: the pre-activations of `units` units (a multiple of four), one pass of four
 * rows at a time (edgernn_rows_pass: Helium or C). */
static inline EDGERNN_ALWAYS_INLINE void edgernn_rows_gate_run(const edgernn_rows_gate *g, int units, int n_input,
                                                               int n_cell, int sx, int sh)
{
    const int8_t *w = g->weights;
    const int8_t *const x = g->xh;
    const int8_t *const h = g->xh + (n_input + EDGERNN_ROWS_CHUNK - 1) / EDGERNN_ROWS_CHUNK * EDGERNN_ROWS_CHUNK;
    const int32_t *bx = g->input_bias;
    const int32_t *bh = g->recurrent_bias;
    const int32_t mx = g->input_multiplier;
    const int32_t mh = g->recurrent_multiplier;
    int16_t *pre = g->pre;
    int r0;
    EDGERNN_ROWS_FENCE();
    for (r0 = 0; r0 < units; r0 += EDGERNN_ROWS_PER_PASS) {
        edgernn_rows_pass(&w, x, h, n_input, n_cell, bx, bh, mx, sx, mh, sh, pre);
        bx += EDGERNN_ROWS_PER_PASS;
        bh += EDGERNN_ROWS_PER_PASS;
        pre += EDGERNN_ROWS_PER_PASS;
    }
    EDGERNN_ROWS_FENCE();
}

#define EDGERNN_ROWS_GATE_KERNEL(name, units, n_input, n_cell, sx, sh)  \
    static void name(const edgernn_rows_gate *gate)                    \
    {                                                                  \
        edgernn_rows_gate_run(gate, units, n_input, n_cell, sx, sh);   \
    }

#ifdef __cplusplus
}
#endif

#endif /* EDGERNN_ROWS_H */
