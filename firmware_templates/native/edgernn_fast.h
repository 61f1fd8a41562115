/*
 * edgernn_fast.h - the fast LSTM step's arithmetic, bit-exact with TensorFlow Lite Micro (C99).
 *
 * The fast LSTM kernels (edgernn_pairs.h on Cortex-M4/M7/M33, edgernn_rows.h on Cortex-M55 and
 * portable C) compute TFLM's integer LSTM (UNIDIRECTIONAL_SEQUENCE_LSTM, 8x8_16) with fewer
 * instructions than the reference formulas in edgernn_kernels.h. Each primitive below equals
 * the reference one over its whole input domain (tests/test_native_fast.py checks them
 * exhaustively on the host); on cores with the Arm DSP extension they compile to SMMULR /
 * SMMLAR / SSAT, elsewhere to the plain C next to them, which computes the same bits.
 *
 *   edgernn_rq_prescaled   MultiplyByQuantizedMultiplier of an accumulator whose inputs were
 *                          pre-scaled by 2^(1 + left shift): SMMLAR, then SSAT with the shift
 *   edgernn_mul_pow2       MultiplyByQuantizedMultiplier(p, 2^30, -s): the cell update's products
 *   edgernn_sigmoid_fast   int16 Logistic from the signed-segment tables (edgernn_tables.c)
 *   edgernn_tanh_fast      int16 Tanh from the signed-segment tables
 *   edgernn_lstm_fast_cells every unit's gate activations, cell update and hidden requantization
 */
#ifndef EDGERNN_FAST_H
#define EDGERNN_FAST_H

#include <stdint.h>

#include "edgernn_kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---------------------------------------------------------------------------------------
 * Signed-segment activation tables (edgernn_tables.c, written by edgernn from TFLM's
 * sigmoid_table_uint16; the derivation is in edgernn/backends/native/tables.py).
 * ------------------------------------------------------------------------------------- */
#define EDGERNN_SIGMOID_SEGMENTS 384 /* v = 3x >> 9 for an int16 x: -192..191 */
#define EDGERNN_TANH_SEGMENTS 512    /* v >> 8 clamped to -256..255 */
#define EDGERNN_ACT16_SEGMENTS 256 /* the loop steps' shared LOGISTIC / TANH table: |v| >> 9 / >> 8, at most 255 */
extern const int32_t edgernn_sigmoid_intercepts[EDGERNN_SIGMOID_SEGMENTS];
extern const uint16_t edgernn_sigmoid_slopes[EDGERNN_SIGMOID_SEGMENTS];
extern const uint16_t edgernn_act16_g[EDGERNN_ACT16_SEGMENTS];
extern const uint16_t edgernn_act16_d[EDGERNN_ACT16_SEGMENTS];
extern const int32_t edgernn_tanh_intercepts[EDGERNN_TANH_SEGMENTS];
extern const uint16_t edgernn_tanh_slopes[EDGERNN_TANH_SEGMENTS];
/* Helium's TANH over signed segments (edgernn_mve_ew.h; linked only where it is read) */
extern const int32_t edgernn_act16_tanh_g[2 * EDGERNN_ACT16_SEGMENTS];
extern const uint16_t edgernn_act16_tanh_d[2 * EDGERNN_ACT16_SEGMENTS];
/* Segment 0 of each table: index them with the signed segment number. */
#define EDGERNN_SIGMOID_A (edgernn_sigmoid_intercepts + EDGERNN_SIGMOID_SEGMENTS / 2)
#define EDGERNN_SIGMOID_D (edgernn_sigmoid_slopes + EDGERNN_SIGMOID_SEGMENTS / 2)
#define EDGERNN_TANH_A (edgernn_tanh_intercepts + EDGERNN_TANH_SEGMENTS / 2)
#define EDGERNN_TANH_D (edgernn_tanh_slopes + EDGERNN_TANH_SEGMENTS / 2)

/* ---------------------------------------------------------------------------------------
 * Multiplies.
 * ------------------------------------------------------------------------------------- */

/* (a * b + 2^31) >> 32: SMMULR. */
static inline int32_t edgernn_smmulr(int32_t a, int32_t b)
{
#if EDGERNN_USE_SMLAD
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
#else
    return (int32_t)(((int64_t)a * b + 0x80000000LL) >> 32);
#endif
}

/* (c * 2^32 + a * b + 2^31) >> 32 = c + SMMULR(a, b) (mod 2^32): SMMLAR. */
static inline int32_t edgernn_smmlar(int32_t a, int32_t b, int32_t c)
{
#if EDGERNN_USE_SMLAD
    int32_t r;
    __asm__("smmlar %0, %1, %2, %3" : "=r"(r) : "r"(a), "r"(b), "r"(c));
    return r;
#else
    return (int32_t)((uint32_t)c + (uint32_t)edgernn_smmulr(a, b));
#endif
}

/* clamp16(MultiplyByQuantizedMultiplier(acc, m, shift)) for an accumulator computed on inputs
 * (and a bias) pre-scaled by 2^(1 + max(shift, 0)): `scaled` = acc * 2^(1 + left shift), and
 * rs = max(-shift, 0) (a literal at every call, so the branch folds away). Why it is exact:
 *   SaturatingRoundingDoublingHighMul(acc 2^ls, m) = (acc 2^ls m + 2^30) >> 31 = SMMULR(scaled, m)
 *   (ties up for both signs, and m > 0 rules out the one saturating case);
 *   RoundingDivideByPOT(v, rs) = (v + 2^(rs-1) - (v < 0)) >> rs, and v < 0 only when acc < 0
 *   (v = 0 rounds to 0 either way), so the rounding term goes into SMMLAR's accumulate operand
 *   and the shift into SSAT's. The emitter checks that |scaled| < 2^31. */
static inline int32_t edgernn_rq_prescaled(int32_t scaled, int32_t m, int rs)
{
    if (rs == 0) {
        return edgernn_clamp_s16(edgernn_smmulr(scaled, m));
    }
    return edgernn_clamp_s16(edgernn_smmlar(scaled, m, ((int32_t)1 << (rs - 1)) + (scaled >> 31)) >> rs);
}

/* MultiplyByQuantizedMultiplier(p, 2^30, -s) for |p| < 2^30 and s >= 1, the cell update's
 * power-of-two multipliers: SaturatingRoundingDoublingHighMul(p, 2^30) = floor((p + 1) / 2),
 * then the rounding divide by 2^s, together (p + 2^s + 1 - 2 (p < 0)) >> (s + 1). */
static inline int32_t edgernn_mul_pow2(int32_t p, int s)
{
    const int32_t negative = p >> 31; /* -1 or 0 */
    return (p + 2 * negative + ((int32_t)1 << s) + 1) >> (s + 1);
}

/* ---------------------------------------------------------------------------------------
 * Activations (int16 in, Q0.15 out), six instructions each.
 * ------------------------------------------------------------------------------------- */

/* TFLM int16 Logistic of a Q3.12 value: v = 3x, segment v >> 9, r = (A[i] + v D[i]) >> 10. */
static inline int32_t edgernn_sigmoid_fast(int32_t x)
{
    const int32_t v = x * 3;
    const int32_t i = v >> 9;
    return (int32_t)((uint32_t)(EDGERNN_SIGMOID_A[i] + v * (int32_t)EDGERNN_SIGMOID_D[i]) >> 10);
}

/* Keeps a constant in a register (hoisted out of the loop by the compiler) rather than
 * rebuilt from immediates at every use: an accumulate operand of MLA / SMMLAR. */
#if defined(__GNUC__)
#define EDGERNN_IN_REGISTER(v) __asm__("" : "+r"(v))
#else
#define EDGERNN_IN_REGISTER(v) ((void)0)
#endif

/* The WHILE-loop cells' int16 LOGISTIC / TANH at any input scale, on one 1 KB table of |v|'s
 * segments (edgernn_act16_g / _d, derived in edgernn/backends/native/tables.py): v is the input
 * at the table's scale (v = (x m + 2^(l-1)) >> l, Prepare's multiplier and shift), s = v >> 31,
 * the segment min((v ^ s) >> 9, 255) (>> 8 for the tanh), E = G << 8, then
 *     sigmoid(v) = ((E ^ s) + v D + 2^24 + 512) >> 10,  tanh(v) = (((E >> 1) ^ s) + v D + 128) >> 8.
 * Armv6-M keeps TFLM's formula (no USAT; the table was no faster there). */
/* The same on cores with the DSP extension only (on the Cortex-M0+/M3 the held registers cost
 * more than the immediates they save). */
#if EDGERNN_USE_SMLAD
#define EDGERNN_IN_REGISTER_DSP(v) EDGERNN_IN_REGISTER(v)
#else
#define EDGERNN_IN_REGISTER_DSP(v) ((void)0)
#endif

/* (x m + r) >> s, an activation's input at the table's scale: m and r in registers, one MLA. */
static inline int32_t edgernn_act16_scale(int32_t x, int32_t m, int32_t r, int s)
{
    EDGERNN_IN_REGISTER_DSP(m);
    EDGERNN_IN_REGISTER_DSP(r);
    return (x * m + r) >> s;
}

static inline uint32_t edgernn_act16_segment(int32_t a, int bits) /* a >= 0 */
{
#if EDGERNN_USE_SSAT
    return (uint32_t)__usat(a >> bits, 8); /* USAT #8 with the shift folded in */
#else
    return (a >> bits) < 255 ? (uint32_t)(a >> bits) : 255u;
#endif
}

static inline int32_t edgernn_sigmoid16(int32_t v)
{
#if defined(__ARM_ARCH_6M__)
    return edgernn_sigmoid_scaled_s16(v);
#else
    const int32_t s = v >> 31;
    const uint32_t i = edgernn_act16_segment(v ^ s, 9);
    int32_t c = (1 << 24) + 512;
    EDGERNN_IN_REGISTER_DSP(c);
    return ((s ^ ((int32_t)edgernn_act16_g[i] << 8)) + v * (int32_t)edgernn_act16_d[i] + c) >> 10;
#endif
}

/* The same with the segment of |v| (one more instruction): also right at v = -255 x 512, where
 * TFLM saturates (tables.act16_form takes it when an op's input scale reaches there). */
static inline int32_t edgernn_sigmoid16_abs(int32_t v)
{
#if defined(__ARM_ARCH_6M__)
    return edgernn_sigmoid_scaled_s16(v);
#else
    const int32_t s = v >> 31;
    const uint32_t i = edgernn_act16_segment((v ^ s) - s, 9);
    return ((s ^ ((int32_t)edgernn_act16_g[i] << 8)) + v * (int32_t)edgernn_act16_d[i] + (1 << 24) + 512) >> 10;
#endif
}

static inline int32_t edgernn_tanh16(int32_t v)
{
#if defined(__ARM_ARCH_6M__)
    return edgernn_tanh_scaled_s16(v);
#else
    const int32_t s = v >> 31;
    const uint32_t i = edgernn_act16_segment(v ^ s, 8);
    return ((s ^ ((int32_t)edgernn_act16_g[i] << 7)) + v * (int32_t)edgernn_act16_d[i] + 128) >> 8;
#endif
}

/* TFLM int16 Tanh of v, already at the table's scale (x * 3 for a Q3.12 gate, the cell state's
 * power-of-two prescale for the hidden update): segment clamp(v >> 8, -256, 255), whose end
 * segments are flat (D = 0), r = (A[i] + v D[i]) >> 8. */
static inline int32_t edgernn_tanh_fast(int32_t v)
{
#if EDGERNN_USE_SSAT
    const int32_t i = __ssat(v >> 8, 9);
#else
    const int32_t s = v >> 8;
    const int32_t i = s < -256 ? -256 : (s > 255 ? 255 : s);
#endif
    return (EDGERNN_TANH_A[i] + v * (int32_t)EDGERNN_TANH_D[i]) >> 8;
}

/* ---------------------------------------------------------------------------------------
 * One unit of the LSTM step after the gate products (TFLM LstmStep: activations, then
 * UpdateLstmCell, then UpdateLstmHidden), with every constant folded by the caller.
 * ------------------------------------------------------------------------------------- */
typedef struct {
    /* cell = input x cell gate (2^-15 x 2^-15) + forget x cell (2^-15 x cell scale), both to the
     * cell scale: MultiplyByQuantizedMultiplier(product, multiplier, shift), clamped to int16. */
    int32_t input_mul_multiplier;
    int32_t input_mul_shift;
    int32_t forget_mul_multiplier;
    int32_t forget_mul_shift;
    int32_t cell_clip;              /* quantized |cell| bound; 0: no clipping */
    int32_t cell_tanh_multiplier;   /* brings the cell state to tanh's input scale ... */
    int32_t cell_tanh_right_shift;  /* ... (cell * multiplier + round) >> right shift */
    /* hidden = zero point + MultiplyByQuantizedMultiplier(output gate x tanh(cell), m, shift) */
    int32_t hidden_multiplier;
    int32_t hidden_shift;
    int32_t hidden_zero_point;
} edgernn_lstm_tail_params;

/* The int8 hidden value of output gate o and tanh(cell) t: clamp8(zero point + MBQM(o t, m,
 * shift)). With a right shift rs in 1..22 it is one SMMLAR and one SSAT: SRDHM(p, m) =
 * SMMULR(2p, m), and the rounding term of the divide, 2^(rs-1) - (p < 0), plus the zero point
 * times 2^rs, is SMMLAR's accumulate operand (|o t| < 2^30, so 2p does not wrap). */
static inline int32_t edgernn_hidden_value(int32_t p, int32_t m, int32_t shift, int32_t zero_point)
{
    if (shift <= -1 && shift >= -22) {
        const int rs = (int)-shift;
        const int32_t rounding = ((int32_t)1 << (rs - 1)) + zero_point * ((int32_t)1 << rs);
        return edgernn_clamp_s8(edgernn_smmlar(2 * p, m, rounding + (p >> 31)) >> rs);
    }
    return edgernn_clamp_s8(zero_point + edgernn_mbqm(p, m, (int)shift));
}

/* Unit u: the four gates' Q3.12 pre-activations in, the new cell state (in place) and the new
 * int8 hidden value out (returned), the tables passed in registers (sa, sd: sigmoid; ta, td:
 * tanh, each at its segment 0). Two identities shorten TFLM's formulas:
 *   - a gate activation a is >= 0, so a product a b is negative only when b is, and when a = 0
 *     the sign term changes nothing (edgernn_mul_pow2(0, s) = (2^s - 1) >> (s + 1) = 0 too, and
 *     edgernn_hidden_value's rounding loses the -1 in the same way): the sign comes from b,
 *     before the multiply, which becomes a multiply-accumulate of the rounding constant
 *     (2 (b < 0 ? -1 : 0) + 1 is (b >> 31) | 1). */
/* clamp16(MultiplyByQuantizedMultiplier(a b, m, shift)) of a gate activation a >= 0 (the
 * cell update's products; tests/test_native_fast.py checks it against the reference). */
static inline EDGERNN_ALWAYS_INLINE int32_t edgernn_cell_product_signed(int32_t a, int32_t b, int32_t m, int32_t shift)
{
    if (m == (int32_t)1 << 30 && shift < 0) {
        const int s = (int)-shift;
        const int32_t k = (b >> 31) | 1;
        const int32_t r = (a * b + k + ((int32_t)1 << s)) >> (s + 1);
        return s >= 14 ? r : edgernn_clamp_s16(r); /* |a b| < 2^30: within int16 from s = 14 on */
    }
    return edgernn_clamp_s16(edgernn_mbqm(a * b, m, (int)shift));
}

/* edgernn_hidden_value(o t, ...) of an output gate o >= 0, the sign of o t taken from t. */
static inline EDGERNN_ALWAYS_INLINE int32_t edgernn_hidden_value_signed(int32_t o, int32_t t, int32_t m, int32_t shift,
                                                                        int32_t zero_point)
{
    if (shift <= -1 && shift >= -22) {
        const int rs = (int)-shift;
        int32_t rounding = ((int32_t)1 << (rs - 1)) + zero_point * ((int32_t)1 << rs);
        EDGERNN_IN_REGISTER(rounding);
        return edgernn_clamp_s8(edgernn_smmlar(2 * (o * t), m, rounding + (t >> 31)) >> rs);
    }
    return edgernn_hidden_value(o * t, m, shift, zero_point);
}

static inline EDGERNN_ALWAYS_INLINE int32_t edgernn_lstm_fast_unit(const edgernn_lstm_tail_params *p,
                                                                   const int32_t *sa, const uint16_t *sd,
                                                                   const int32_t *ta, const uint16_t *td,
                                                                   int32_t input_pre, int32_t forget_pre,
                                                                   int32_t cell_pre, int32_t output_pre,
                                                                   int16_t *cell)
{
#define EDGERNN_SIGMOID_T(x, r)                                                  \
    do {                                                                         \
        const int32_t v_ = (x) * 3;                                              \
        const int32_t i_ = v_ >> 9;                                              \
        r = (int32_t)((uint32_t)(sa[i_] + v_ * (int32_t)sd[i_]) >> 10);          \
    } while (0)
#if EDGERNN_USE_SSAT
#define EDGERNN_TANH_T(v, r)                                                     \
    do {                                                                         \
        const int32_t i_ = __ssat((v) >> 8, 9);                                  \
        r = (ta[i_] + (v) * (int32_t)td[i_]) >> 8;                               \
    } while (0)
#else
#define EDGERNN_TANH_T(v, r)                                                     \
    do {                                                                         \
        const int32_t s_ = (v) >> 8;                                             \
        const int32_t i_ = s_ < -256 ? -256 : (s_ > 255 ? 255 : s_);             \
        r = (ta[i_] + (v) * (int32_t)td[i_]) >> 8;                               \
    } while (0)
#endif
    int32_t i;
    int32_t f;
    int32_t g;
    int32_t o;
    int32_t c;
    int32_t v;
    int32_t t;
    EDGERNN_SIGMOID_T(input_pre, i);
    EDGERNN_SIGMOID_T(forget_pre, f);
    v = cell_pre * 3;
    EDGERNN_TANH_T(v, g);
    EDGERNN_SIGMOID_T(output_pre, o);
    c = edgernn_cell_product_signed(i, g, p->input_mul_multiplier, p->input_mul_shift) +
        edgernn_cell_product_signed(f, *cell, p->forget_mul_multiplier, p->forget_mul_shift);
    c = edgernn_clamp_s16(c);
    if (p->cell_clip > 0) {
        c = c < -p->cell_clip ? -p->cell_clip : (c > p->cell_clip ? p->cell_clip : c);
    }
    *cell = (int16_t)c;
    if (p->cell_tanh_right_shift > 0) {
        v = (c * p->cell_tanh_multiplier + ((int32_t)1 << (p->cell_tanh_right_shift - 1))) >>
            p->cell_tanh_right_shift;
    } else {
        v = c * p->cell_tanh_multiplier;
    }
    EDGERNN_TANH_T(v, t);
#undef EDGERNN_SIGMOID_T
#undef EDGERNN_TANH_T
    return edgernn_hidden_value_signed(o, t, p->hidden_multiplier, p->hidden_shift, p->hidden_zero_point);
}

/* Every unit of the LSTM step after the gate products: pre holds the four gates'
 * pre-activations (`units` apart); writes the cell state (in place), the int8 hidden state, and
 * the hidden state again as int8 (h8) when `to_h8`, and as int16 times h16_scale (h16) when `to_h16`. */
static inline EDGERNN_ALWAYS_INLINE void edgernn_lstm_fast_cells(const edgernn_lstm_tail_params *p,
                                                                 const int16_t *pre, int units, int n_cell,
                                                                 int16_t *cell, int8_t *hidden, int to_h8, int8_t *h8,
                                                                 int to_h16, int16_t *h16, int32_t h16_scale)
{
    const int32_t *sa = EDGERNN_SIGMOID_A;
    const uint16_t *sd = EDGERNN_SIGMOID_D;
    const int32_t *ta = EDGERNN_TANH_A;
    const uint16_t *td = EDGERNN_TANH_D;
    const int16_t *const end = pre + n_cell;
#if EDGERNN_USE_SSAT
    EDGERNN_IN_REGISTER(sa); /* Thumb-2: the tables' middles in registers, not rebuilt per use */
    EDGERNN_IN_REGISTER(sd);
    EDGERNN_IN_REGISTER(ta);
    EDGERNN_IN_REGISTER(td);
#endif
    while (pre != end) {
        const int32_t h = edgernn_lstm_fast_unit(p, sa, sd, ta, td, pre[0], pre[units], pre[2 * units],
                                                   pre[3 * units], cell);
        ++pre;
        ++cell;
        *hidden++ = (int8_t)h;
        if (to_h8) {
            *h8++ = (int8_t)h;
        }
        if (to_h16) {
            *h16++ = (int16_t)(h * h16_scale);
        }
    }
}

/* ---------------------------------------------------------------------------------------
 * int8 elementwise ops of a loop step (GRU, SimpleRNN), one element, for the fused loops the
 * generator writes (edgernn/backends/native/fastloop.py). Every constant is a literal at the
 * call, and the generator checked each fast form against TFLM's for all 65,536 input pairs.
 * ------------------------------------------------------------------------------------- */

/* clamp(v, lo, hi), one SSAT when the range is the whole int8 range. */
static inline int32_t edgernn_clamp_range_s8(int32_t v, int32_t lo, int32_t hi)
{
    if (lo == -128 && hi == 127) {
        return edgernn_clamp_s8(v);
    }
    return v < lo ? lo : (v > hi ? hi : v);
}

/* ADD / SUB as clamp((a P1 + b P2 + K) >> S): equal to TFLM's AddElementwise for every int8 a,
 * b with the P1, P2, K, S the generator found (and |a P1 + b P2 + K| < 2^31). */
static inline int32_t edgernn_add_fit_s8(int32_t a, int32_t b, int32_t p1, int32_t p2, int32_t k, int s,
                                         int32_t lo, int32_t hi)
{
    int32_t v = k;
    EDGERNN_IN_REGISTER(v); /* two MLAs, K kept in a register */
    v += a * p1;
    v += b * p2;
    return edgernn_clamp_range_s8(v >> s, lo, hi);
}

/* The same fit when P2 = -P1 (a SUB, or an ADD of opposite gains): (a - b) P1 + K is the same
 * integer, one SUB and one MLA with P1 and K in registers (gcc builds x (2^20 + 1) from shifts). */
static inline int32_t edgernn_sub_fit_s8(int32_t a, int32_t b, int32_t p1, int32_t k, int s, int32_t lo, int32_t hi)
{
    int32_t v = k;
    int32_t p = p1;
    EDGERNN_IN_REGISTER(v);
    EDGERNN_IN_REGISTER(p);
    v += (a - b) * p;
    return edgernn_clamp_range_s8(v >> s, lo, hi);
}

/* MUL as clamp((q P + K + (q < 0 ? -1 : 0)) >> S), q = (a + o1)(b + o2): equal to TFLM's
 * MulElementwise for every int8 a, b with the P, K, S the generator found. */
static inline int32_t edgernn_mul_fit_s8(int32_t a, int32_t b, int32_t o1, int32_t o2, int32_t p, int32_t k, int s,
                                         int32_t lo, int32_t hi)
{
    const int32_t q = (a + o1) * (b + o2);
    int32_t kr = k;
    int32_t v;
    EDGERNN_IN_REGISTER(kr);
    v = (kr + (q >> 31)) + q * p;
    return edgernn_clamp_range_s8(v >> s, lo, hi);
}

/* MUL: clamp(zero point + MultiplyByQuantizedMultiplier((a + o1)(b + o2), m, shift)) with the
 * product pre-scaled by 2^k = 2^(1 + left shift), as edgernn_rq_prescaled: one SMMLAR whose
 * accumulate operand `rounding` = zero point x 2^rs + 2^(rs - 1) (minus 1 for a negative
 * product), then the shift. */
static inline int32_t edgernn_mul_prescaled_s8(int32_t a, int32_t b, int32_t o1, int32_t o2, int32_t m, int k,
                                               int rs, int32_t rounding, int32_t lo, int32_t hi)
{
    int32_t p; /* the product times 2^k */
    if (o2 == 0 || o1 == 0) {
        /* ((a << k) + (o1 << k)) b: one ADD with a shifted operand, o1 2^k in a register */
        const int32_t u = o2 == 0 ? a : b;
        const int32_t v = o2 == 0 ? b : a;
        int32_t ok = (o2 == 0 ? o1 : o2) * ((int32_t)1 << k);
        EDGERNN_IN_REGISTER_DSP(ok);
        p = (ok + (int32_t)((uint32_t)u << k)) * v;
    } else {
        p = (a + o1) * ((b << k) + (o2 << k));
    }
    EDGERNN_IN_REGISTER(rounding);
    if (rs == 0) {
        return edgernn_clamp_range_s8(edgernn_smmlar(p, m, rounding), lo, hi);
    }
    return edgernn_clamp_range_s8(edgernn_smmlar(p, m, rounding + (p >> 31)) >> rs, lo, hi);
}

/* The reference formulas of edgernn_add_run_s8 / edgernn_mul_run_s8 for one element (used
 * where no fast form is exact); 20 is TFLM's left shift of int8 ADD inputs. */
static inline int32_t edgernn_add_one_s8(const edgernn_add_params *p, int32_t a, int32_t b)
{
    const int32_t a_scaled = edgernn_mbqm((int32_t)((uint32_t)(p->input1_offset + a) << 20),
                                          p->input1_multiplier, (int)p->input1_shift);
    const int32_t b_scaled = edgernn_mbqm((int32_t)((uint32_t)(p->input2_offset + b) << 20),
                                          p->input2_multiplier, (int)p->input2_shift);
    const int32_t raw = p->subtract ? a_scaled - b_scaled : a_scaled + b_scaled;
    return edgernn_clamp_range_s8(edgernn_mbqm(raw, p->output_multiplier, (int)p->output_shift) + p->output_offset,
                                  p->activation_min, p->activation_max);
}

static inline int32_t edgernn_mul_one_s8(const edgernn_mul_params *p, int32_t a, int32_t b)
{
    const int32_t product = (p->input1_offset + a) * (p->input2_offset + b);
    return edgernn_clamp_range_s8(edgernn_mbqm(product, p->multiplier, (int)p->shift) + p->output_offset,
                                  p->activation_min, p->activation_max);
}

/* RoundingDivideByPOT(v, e) = (v + 2^(e-1) - (v < 0)) >> e, for |v| <= 2^30 (e a literal). */
static inline int32_t edgernn_rdbp(int32_t v, int e)
{
    return e == 0 ? v : (v + ((int32_t)1 << (e - 1)) + (v >> 31)) >> e;
}

/* MultiplyByQuantizedMultiplier(a b, m, -e) of the int16 MUL (e >= 0, 2^30 <= m < 2^31):
 * SaturatingRoundingDoublingHighMul(p, m) = (p m + 2^30) >> 31 = (p 2m + 2^31) >> 32, and with
 * m2 = 2m - 2^32 (2m as int32) that is SMMULR(p, m2) + p = SMMLAR(p, m2, p): one instruction,
 * no overflow for any int32 p; then TFLM's rounding divide by 2^e. */
static inline int32_t edgernn_mul_s16(int32_t a, int32_t b, int32_t m2, int e)
{
    const int32_t p = a * b;
#if defined(__ARM_ARCH_6M__)
    /* Armv6-M has no SMMLAR: the reference formula's one 64-bit product costs less there */
    return edgernn_mbqm(p, (int32_t)((uint32_t)m2 >> 1), -e);
#else
    return edgernn_rdbp(edgernn_smmlar(p, m2, p), e);
#endif
}

/* An int16 ADD's input term RDBP(SMMULR(x 2^16, m), e) (e >= 0, m >= 2^30, so the product has x's
 * sign): the rounding constant in SMMLAR's accumulator, the sign from x. fastloop16.add16_form
 * checks it against TFLM on all 65,536 int16 x. */
static inline int32_t edgernn_add16_term(int32_t x, int32_t m, int e)
{
    if (e == 0) {
        return edgernn_smmulr(x * 65536, m);
    }
    int32_t k = (int32_t)1 << (e - 1);
    EDGERNN_IN_REGISTER_DSP(k);
    return (edgernn_smmlar(x * 65536, m, k) + (x >> 31)) >> e;
}

/* An int16 ADD's output MultiplyByQuantizedMultiplier(raw, m, -e) for 2^30 <= m < 2^31 and
 * |raw| < 2^30: SaturatingRoundingDoublingHighMul(raw, m) = SMMULR(2 raw, m) = SMMLAR(raw,
 * m2, raw) with m2 = 2m - 2^32 (as edgernn_mul_s16), then TFLM's rounding divide by 2^e. */
static inline int32_t edgernn_add16_out(int32_t raw, int32_t m2, int e)
{
#if defined(__ARM_ARCH_6M__)
    return edgernn_rdbp(edgernn_smmulr(2 * raw, (int32_t)((uint32_t)m2 >> 1)), e);
#else
    return edgernn_rdbp(edgernn_smmlar(raw, m2, raw), e);
#endif
}

/* clamp(v, lo, hi), one SSAT when the range is the whole int16 range. */
static inline int32_t edgernn_clamp_range_s16(int32_t v, int32_t lo, int32_t hi)
{
    if (lo == -32768 && hi == 32767) {
        return edgernn_clamp_s16(v);
    }
    return v < lo ? lo : (v > hi ? hi : v);
}

/* One element of the int16 step ops (--state int16; edgernn_kernels.c's *_run_s16 loops), for
 * the fused loops over the units. */
static inline int32_t edgernn_add_one_s16(const edgernn_add_params *p, int32_t a, int32_t b)
{
    const int32_t a_scaled = edgernn_mbqm((int32_t)((uint32_t)(p->input1_offset + a) << 15), p->input1_multiplier,
                                          (int)p->input1_shift);
    const int32_t b_scaled = edgernn_mbqm((int32_t)((uint32_t)(p->input2_offset + b) << 15), p->input2_multiplier,
                                          (int)p->input2_shift);
    const int32_t raw = p->subtract ? a_scaled - b_scaled : a_scaled + b_scaled;
    return edgernn_clamp_range_s8(edgernn_mbqm(raw, p->output_multiplier, (int)p->output_shift) + p->output_offset,
                         p->activation_min, p->activation_max);
}

static inline int32_t edgernn_mul_one_s16(const edgernn_mul_params *p, int32_t a, int32_t b)
{
    const int32_t product = (p->input1_offset + a) * (p->input2_offset + b);
    return edgernn_clamp_range_s8(edgernn_mbqm(product, p->multiplier, (int)p->shift) + p->output_offset, p->activation_min,
                         p->activation_max);
}

static inline int32_t edgernn_logistic_one_s16(int32_t x, int32_t multiplier, int left_shift)
{
    const int32_t round = left_shift > 0 ? ((int32_t)1 << (left_shift - 1)) : 0;
    return edgernn_sigmoid_scaled_s16((x * multiplier + round) >> left_shift);
}

static inline int32_t edgernn_requant_one_s16_s8(int32_t x, int32_t multiplier, int shift, int32_t input_zero_point,
                                                 int32_t output_zero_point)
{
    return edgernn_clamp_s8(edgernn_mbqm(x - input_zero_point, multiplier, shift) + output_zero_point);
}

/* dst[i] = src[i] x scale for i < n, and a zero after an odd n: an int8 vector as the pairs
 * kernels' int16 input (zero points are folded into the biases). */
static inline EDGERNN_ALWAYS_INLINE void edgernn_widen_scaled_s8(const int8_t *src, int16_t *dst, int n,
                                                                  int32_t scale)
{
    int i;
    int whole = 0; /* elements done four at a time */
#if EDGERNN_USE_SMLAD
    /* four at a time (Armv7E-M loads words at any alignment): SXTB16 of bytes (0, 2) and
     * (1, 3), repacked in order, SADD16 doubling */
    whole = n - n % 4;
    {
        for (i = 0; i < whole; i += 4) {
            uint32_t word;
            uint32_t even;
            uint32_t odd;
            uint32_t lo;
            uint32_t hi;
            int k;
            memcpy(&word, src + i, 4);
            even = (uint32_t)__sxtb16(word);
            odd = (uint32_t)__sxtb16(word >> 8);
            lo = (even & 0xFFFFu) | (odd << 16);
            hi = (even >> 16) | (odd & 0xFFFF0000u);
            for (k = 0; k < 8 && (2 << k) <= scale; ++k) { /* scale = 2^(1 + left shift) */
                lo = (uint32_t)__sadd16(lo, lo);
                hi = (uint32_t)__sadd16(hi, hi);
            }
            memcpy(dst + i, &lo, 4);
            memcpy(dst + i + 2, &hi, 4);
        }
    }
#endif
    for (i = whole; i < n; ++i) {
        dst[i] = (int16_t)(src[i] * scale);
    }
    if (n % 2) {
        dst[n] = 0;
    }
}

/* The same in the loop steps' pairs order (edgernn/backends/native/fastloop.py pairs_order):
 * each whole four elements (0, 1, 2, 3) stored as (0, 2, 1, 3), the tail in order, so that the
 * even and odd bytes' SXTB16 are the stored words as they come (LDR, two SXTB16, the doubling,
 * STRD); the FCs reading it have their weight columns in the same order. */
static inline EDGERNN_ALWAYS_INLINE void edgernn_widen_pairs_s8(const int8_t *src, int16_t *dst, int n, int32_t scale)
{
    const int whole = n - n % 4;
    int i;
#if EDGERNN_USE_SMLAD
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC unroll 4
#endif
    for (i = 0; i < whole; i += 4) {
        uint32_t word;
        uint32_t even;
        uint32_t odd;
        int k;
        memcpy(&word, src + i, 4);
        even = (uint32_t)__sxtb16(word);
#if defined(__GNUC__)
        __asm__("sxtb16 %0, %1, ror #8" : "=r"(odd) : "r"(word));
#else
        odd = (uint32_t)__sxtb16(word >> 8);
#endif
        for (k = 0; k < 8 && (2 << k) <= scale; ++k) { /* scale = 2^(1 + left shift) */
            even = (uint32_t)__sadd16(even, even);
            odd = (uint32_t)__sadd16(odd, odd);
        }
        memcpy(dst + i, &even, 4);
        memcpy(dst + i + 2, &odd, 4);
    }
#else
    for (i = 0; i < whole; i += 4) {
        dst[i] = (int16_t)(src[i] * scale);
        dst[i + 1] = (int16_t)(src[i + 2] * scale);
        dst[i + 2] = (int16_t)(src[i + 1] * scale);
        dst[i + 3] = (int16_t)(src[i + 3] * scale);
    }
#endif
    for (i = whole; i < n; ++i) {
        dst[i] = (int16_t)(src[i] * scale);
    }
    if (n % 2) {
        dst[n] = 0;
    }
}

#ifdef __cplusplus
}
#endif

#endif /* EDGERNN_FAST_H */
