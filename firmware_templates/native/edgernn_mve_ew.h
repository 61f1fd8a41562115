/*
 * edgernn_mve_ew.h - Helium (Cortex-M55) twins of the elementwise helpers of a fused loop step.
 *
 * A WHILE-loop step (GRU, SimpleRNN) fuses its elementwise ops into loops over the units whose
 * per-element C expressions call the helpers of edgernn_fast.h (edgernn/backends/native/
 * fastloop.py, fastloop16.py). On Helium the generator writes the same expressions over four
 * int32 lanes (edgernn/backends/native/fastloop_mve.py): each helper `edgernn_NAME` becomes
 * `edgernn_mve_NAME` below with the same arguments, the operators + - * act lane by lane (GCC's
 * vector extension: a literal operand is broadcast), element i's loads become VLDRH / VLDRB of
 * four lanes. Each twin computes the bits of its scalar helper for every input the scalar form
 * is used on (tests/test_native_mve_ew.py runs both on QEMU's Cortex-M55 on random and extreme
 * inputs):
 *
 *   SMMULR(x 2^16, m)            = VQRDMULH(x 2^15, m)       (2 x 2^15 m + 2^31) >> 32
 *   SMMLAR(p, 2m - 2^32, p)      = VQRDMULH(p, m)            gemmlowp's SaturatingRoundingDoublingHighMul
 *   (v + 2^(e-1) + (v >> 31)) >> e = VRSHR(v + (v >> 31), e)  TFLM's RoundingDivideByPOT
 *   (x m + 2^(s-1)) >> s          = VRSHR(x m, s)
 *   USAT(a >> b, 8), a >= 0      = (sat32(a << (23 - b))) >> 23
 *   table[i]                     = VLDRH / VLDRB gathers (a negative int8 index wraps the
 *                                   32-bit address to below the table's middle)
 *
 * Only with EDGERNN_USE_MVE (edgernn_rows.h: Helium and an optimizing compiler, the shifts
 * being immediates once inlined); the generated step keeps the scalar loop for every other
 * build.
 */
#ifndef EDGERNN_MVE_EW_H
#define EDGERNN_MVE_EW_H

#include <stdint.h>

#include "edgernn_fast.h"
#include "edgernn_rows.h" /* EDGERNN_USE_MVE, edgernn_mve_mbqm */

#if EDGERNN_USE_MVE

#ifdef __cplusplus
extern "C" {
#endif

/* Lanes per vector of the fused loops: int32 (the scalar forms' arithmetic is 32-bit). */
#define EDGERNN_MVE_EW_LANES 4

/* A compiler barrier before a Helium run and after each vector's stores: gcc 12 does not always
 * see that the VSTRH.32 / VLDRH.S32 of vstrhq_s32 / vldrhq_s32 touch the int16 elements other
 * code reads and writes (edgernn_mve_fc.h's FC met it); no instruction. */
#define EDGERNN_MVE_EW_FENCE() __asm__ volatile("" ::: "memory")

/* Element i .. i+3 of an int16 / int8 buffer, sign-extended (VLDRH.S32 / VLDRB.S32); the
 * predicated forms read the lanes of `p` only (zeros elsewhere) for a run's last n % 4. */
#define edgernn_mve_ld_s16(ptr) vldrhq_s32(ptr)
#define edgernn_mve_ld_s8(ptr) vldrbq_s32(ptr)
#define edgernn_mve_ld_s16_z(ptr, p) vldrhq_z_s32((ptr), (p))
#define edgernn_mve_ld_s8_z(ptr, p) vldrbq_z_s32((ptr), (p))
/* The low 16 / 8 bits of each lane to four elements (the value is already clamped). */
#define edgernn_mve_st_s16(ptr, v) vstrhq_s32((ptr), (v))
#define edgernn_mve_st_s8(ptr, v) vstrbq_s32((ptr), (v))
#define edgernn_mve_st_s16_p(ptr, v, p) vstrhq_p_s32((ptr), (v), (p))
#define edgernn_mve_st_s8_p(ptr, v, p) vstrbq_p_s32((ptr), (v), (p))

/* ---------------------------------------------------------------------------------------
 * Clamps and rounding.
 * ------------------------------------------------------------------------------------- */

/* clamp(v, lo, hi): the whole int16 / int8 range as a saturating left shift and back (VQSHL,
 * VSHR), else VMAX / VMIN. */
static inline EDGERNN_ALWAYS_INLINE int32x4_t edgernn_mve_clamp_range_s16(int32x4_t v, int32_t lo, int32_t hi)
{
    if (lo == -32768 && hi == 32767) {
        return vshrq_n_s32(vqshlq_n_s32(v, 16), 16);
    }
    return vminq_s32(vmaxq_s32(v, vdupq_n_s32(lo)), vdupq_n_s32(hi));
}

static inline EDGERNN_ALWAYS_INLINE int32x4_t edgernn_mve_clamp_range_s8(int32x4_t v, int32_t lo, int32_t hi)
{
    if (lo == -128 && hi == 127) {
        return vshrq_n_s32(vqshlq_n_s32(v, 24), 24);
    }
    return vminq_s32(vmaxq_s32(v, vdupq_n_s32(lo)), vdupq_n_s32(hi));
}

/* edgernn_rdbp: (v + 2^(e-1) + (v >> 31)) >> e as VRSHR #e of v + (v >> 31) (VRSHR adds its
 * 2^(e-1) without overflow). */
static inline EDGERNN_ALWAYS_INLINE int32x4_t edgernn_mve_rdbp(int32x4_t v, int e)
{
    return e == 0 ? v : vrshrq_n_s32(vaddq_s32(v, vshrq_n_s32(v, 31)), e);
}

/* Bottom form: an int16 value in the low half of each 32-bit lane, the high half undefined (what
 * VQRSHRNB leaves). Any lane holding an int16 value sign-extended (VLDRH.S32) is in bottom form
 * too. The generator (fastloop_mve.py) passes a bottom-form value only to the VSHLLB / VMULLB
 * readers below (ADD / SUB terms, MUL, an activation's scale) and to stores, and widens it
 * (VMOVLB) for any other reader. */
#define EDGERNN_MVE_B16(v) vreinterpretq_s16_s32(v)

/* The int32 lanes of a bottom-form vector: its low halves sign-extended (VMOVLB). */
static inline EDGERNN_ALWAYS_INLINE int32x4_t edgernn_mve_widen16(int32x4_t v)
{
    return vmovlbq_s16(EDGERNN_MVE_B16(v));
}

/* x 2^14 of a bottom-form x (VSHLLB): an int16 ADD's input term for the multiplier 2^30. */
static inline EDGERNN_ALWAYS_INLINE int32x4_t edgernn_mve_shl14(int32x4_t x)
{
    return vshllbq_n_s16(EDGERNN_MVE_B16(x), 14);
}

/* x 2^k of a bottom-form x as int32 lanes (0 <= k <= 15): VMOVLB, or VSHLLB #k; a power-of-two
 * sum's term (fastloop16._pow2_sum, fastloop_mve._pow2_raw). */
static inline EDGERNN_ALWAYS_INLINE int32x4_t edgernn_mve_shl16(int32x4_t x, int k)
{
    return k == 0 ? vmovlbq_s16(EDGERNN_MVE_B16(x)) : vshllbq_n_s16(EDGERNN_MVE_B16(x), k);
}

/* clamp16(v) in bottom form: one VQMOVNB (a power-of-two sum's output with no rounding). */
static inline EDGERNN_ALWAYS_INLINE int32x4_t edgernn_mve_sum_sat16(int32x4_t v)
{
    return vreinterpretq_s32_s16(vqmovnbq_s32(EDGERNN_MVE_B16(v), v));
}

/* clamp16(a + b) and clamp16(a - b) of int16 values a, b (bottom form, or int32 lanes in the int16
 * range: their low halves are the values) in bottom form: one VQADD.S16 / VQSUB.S16, the high
 * halves' sums undefined. */
#define edgernn_mve_qadd_sat16(a, b) vreinterpretq_s32_s16(vqaddq_s16(EDGERNN_MVE_B16(a), EDGERNN_MVE_B16(b)))
#define edgernn_mve_qsub_sat16(a, b) vreinterpretq_s32_s16(vqsubq_s16(EDGERNN_MVE_B16(a), EDGERNN_MVE_B16(b)))

/* clamp16(2 v) of a bottom-form int16 v, in bottom form: one VQADD.S16 of v and itself. */
static inline EDGERNN_ALWAYS_INLINE int32x4_t edgernn_mve_qdbl_sat16(int32x4_t v)
{
    return edgernn_mve_qadd_sat16(v, v);
}

/* clamp16(edgernn_rdbp(v, e)) for 1 <= e <= 16, in bottom form: VQRSHRNB (its rounding, then
 * saturation to int16, into the low halves); two instructions fewer than VRSHR and the clamp. */
static inline EDGERNN_ALWAYS_INLINE int32x4_t edgernn_mve_rdbp_sat16(int32x4_t v, int e)
{
    const int32x4_t sign = vshrq_n_s32(v, 31);
    /* the narrow's high halves come from `sign`, dead by then: no register copy */
    return vreinterpretq_s32_s16(vqrshrnbq_n_s32(EDGERNN_MVE_B16(sign), vaddq_s32(v, sign), e));
}

/* m of m2 = 2m - 2^32 (edgernn_mul_s16 / edgernn_add16_out's operand, 2^30 <= m < 2^31). */
#define EDGERNN_MVE_HALF_M2(m2) ((int32_t)((uint32_t)(m2) >> 1))

/* ---------------------------------------------------------------------------------------
 * int16 ADD / SUB / MUL (fastloop16.add16_form, elementwise16).
 * ------------------------------------------------------------------------------------- */

/* a b of two bottom-form int16 vectors as int32 lanes (VMULLB.S16). */
#define EDGERNN_MVE_MUL16(a, b) vmullbq_int_s16(EDGERNN_MVE_B16(a), EDGERNN_MVE_B16(b))

/* VQRDMULH(p, m) + (p >> 31) as one VQRDMLAH with the sign as its accumulator: ((p >> 31) 2^32 +
 * 2 p m + 2^31) >> 32 (no saturation: |p m| < 2^61). The sign of VQRDMULH(p, m) for m > 0 is
 * p's, but where the product rounds to 0 from a negative p: there RDBP's (-1 + 2^(e-1)) >> e
 * is 0 too, for every e >= 1. */
#define EDGERNN_MVE_QRDMULH_SIGNED(p, m) vqrdmlahq_n_s32(vshrq_n_s32((p), 31), (p), (m))

/* RDBP(VQRDMULH(p, m), e): edgernn_mul_s16 / edgernn_add16_out after their product. */
static inline EDGERNN_ALWAYS_INLINE int32x4_t edgernn_mve_qrdmulh_rdbp(int32x4_t p, int32_t m, int e)
{
    return e == 0 ? vqrdmulhq_n_s32(p, m) : vrshrq_n_s32(EDGERNN_MVE_QRDMULH_SIGNED(p, m), e);
}

/* The same clamped to int16 in bottom form (1 <= e <= 16): VQRSHRNB into the dead product. */
static inline EDGERNN_ALWAYS_INLINE int32x4_t edgernn_mve_qrdmulh_rdbp_sat16(int32x4_t p, int32_t m, int e)
{
    return vreinterpretq_s32_s16(vqrshrnbq_n_s32(EDGERNN_MVE_B16(p), EDGERNN_MVE_QRDMULH_SIGNED(p, m), e));
}

/* edgernn_mul_s16 of bottom-form a, b: RDBP(SMMLAR(a b, m2, a b), e) = RDBP(VQRDMULH(a b, m), e). */
static inline EDGERNN_ALWAYS_INLINE int32x4_t edgernn_mve_mul_s16(int32x4_t a, int32x4_t b, int32_t m2, int e)
{
    return edgernn_mve_qrdmulh_rdbp(EDGERNN_MVE_MUL16(a, b), EDGERNN_MVE_HALF_M2(m2), e);
}

/* edgernn_add16_term of a bottom-form x: (SMMULR(x 2^16, m) + 2^(e-1) + (x >> 31)) >> e, with
 * SMMULR(x 2^16, m) = VQRDMULH(x 2^15, m) (no saturation: m < 2^31), x 2^15 by VSHLLB, and
 * the sign added by VQRDMLAH (x 2^15 has x's sign). */
static inline EDGERNN_ALWAYS_INLINE int32x4_t edgernn_mve_add16_term(int32x4_t x, int32_t m, int e)
{
    const int32x4_t x15 = vshllbq_n_s16(EDGERNN_MVE_B16(x), 15);
    return e == 0 ? vqrdmulhq_n_s32(x15, m) : vrshrq_n_s32(EDGERNN_MVE_QRDMULH_SIGNED(x15, m), e);
}

/* edgernn_add16_out: RDBP(SMMLAR(raw, m2, raw), e) = RDBP(VQRDMULH(raw, m), e). */
static inline EDGERNN_ALWAYS_INLINE int32x4_t edgernn_mve_add16_out(int32x4_t raw, int32_t m2, int e)
{
    return edgernn_mve_qrdmulh_rdbp(raw, EDGERNN_MVE_HALF_M2(m2), e);
}

/* clamp16(edgernn_mul_s16(a, b, m2, e)) and clamp16(edgernn_add16_out(raw, m2, e)), 1 <= e <= 16,
 * in bottom form (fastloop_mve.py writes them for clamp_range_s16(... + 0, -32768, 32767)). */
static inline EDGERNN_ALWAYS_INLINE int32x4_t edgernn_mve_mul_s16_sat16(int32x4_t a, int32x4_t b, int32_t m2, int e)
{
    return edgernn_mve_qrdmulh_rdbp_sat16(EDGERNN_MVE_MUL16(a, b), EDGERNN_MVE_HALF_M2(m2), e);
}

static inline EDGERNN_ALWAYS_INLINE int32x4_t edgernn_mve_add16_out_sat16(int32x4_t raw, int32_t m2, int e)
{
    return edgernn_mve_qrdmulh_rdbp_sat16(raw, EDGERNN_MVE_HALF_M2(m2), e);
}

/* ---------------------------------------------------------------------------------------
 * int16 LOGISTIC / TANH on the shared 1 KB table (tables.act16_form).
 * ------------------------------------------------------------------------------------- */

/* edgernn_act16_scale: (x m + r) >> s, one VRSHR when r = 2^(s-1) (act16_form's rounding). */
static inline EDGERNN_ALWAYS_INLINE int32x4_t edgernn_mve_act16_scale(int32x4_t x, int32_t m, int32_t r, int s)
{
    if (s > 0 && r == (int32_t)1 << (s - 1)) {
        return vrshrq_n_s32(vmulq_n_s32(x, m), s);
    }
    return vshlq_r_s32(vaddq_n_s32(vmulq_n_s32(x, m), r), -s);
}

/* The same of a bottom-form x when r = 2^(s-1): VQRDMULH(x 2^k, M) with M = m 2^(31-s-k) < 2^31
 * is (x m 2^(32-s) + 2^31) >> 32 = (x m + 2^(s-1)) >> s exactly (k, M from fastloop_mve._act16_q,
 * checked there on all 65,536 x). */
#define edgernn_mve_act16_scale_q(x, k, m) vqrdmulhq_n_s32(vshllbq_n_s16(EDGERNN_MVE_B16(x), (k)), (int32_t)(m))

/* edgernn_act16_segment(a, bits) = min(a >> bits, 255) for a >= 0: a << (23 - bits) saturates
 * at 2^31 - 1 exactly when a >> bits > 255 (bits = 8 or 9); without `clamp` (the generator
 * proved a >> bits <= 255 for every int16 input of the op) just a >> bits. */
static inline EDGERNN_ALWAYS_INLINE uint32x4_t edgernn_mve_act16_segment(int32x4_t a, int bits, int clamp)
{
    return vreinterpretq_u32_s32(clamp ? vshrq_n_s32(vqshlq_n_s32(a, 23 - bits), 23) : vshrq_n_s32(a, bits));
}

/* The two table columns of segments i (VLDRH gathers, zero-extended). */
#define EDGERNN_MVE_ACT16_G(i) vreinterpretq_s32_u32(vldrhq_gather_shifted_offset_u32(edgernn_act16_g, (i)))
#define EDGERNN_MVE_ACT16_D(i) vreinterpretq_s32_u32(vldrhq_gather_shifted_offset_u32(edgernn_act16_d, (i)))

/* edgernn_sigmoid16: ((s ^ (G[i] << 8)) + v D[i] + 2^24 + 512) >> 10, i = min((v ^ s) >> 9, 255)
 * (2^24 + 512: the table's offset and rounding, edgernn_fast.h); edgernn_sigmoid16_abs (`absolute`):
 * the segment of |v| = (v ^ s) - s. */
static inline EDGERNN_ALWAYS_INLINE int32x4_t edgernn_mve_sigmoid16_c(int32x4_t v, int absolute, int clamp)
{
    const int32x4_t s = vshrq_n_s32(v, 31);
    const int32x4_t a = absolute ? vsubq_s32(veorq_s32(v, s), s) : veorq_s32(v, s);
    const uint32x4_t i = edgernn_mve_act16_segment(a, 9, clamp);
    const int32x4_t e = veorq_s32(vshlq_n_s32(EDGERNN_MVE_ACT16_G(i), 8), s);
    return vshrq_n_s32(vaddq_s32(e, vmlasq_n_s32(v, EDGERNN_MVE_ACT16_D(i), (1 << 24) + 512)), 10); /* VMLAS: v D + c */
}

/* edgernn_tanh16: ((s ^ (G[i] << 7)) + v D[i] + 128) >> 8 = VRSHR #8, i = min((v ^ s) >> 8, 255). */
static inline EDGERNN_ALWAYS_INLINE int32x4_t edgernn_mve_tanh16_c(int32x4_t v, int clamp)
{
    const int32x4_t s = vshrq_n_s32(v, 31);
    const uint32x4_t i = edgernn_mve_act16_segment(veorq_s32(v, s), 8, clamp);
    const int32x4_t e = veorq_s32(vshlq_n_s32(EDGERNN_MVE_ACT16_G(i), 7), s);
    return vrshrq_n_s32(vaddq_s32(e, vmulq_s32(v, EDGERNN_MVE_ACT16_D(i))), 8);
}

/* edgernn_tanh16 of a v whose segment needs no clamp (|v| < 2^16), on the tables over signed
 * segments (edgernn/backends/native/tables.py, tanh16_signed_table): with u = v + 2^16 >= 0,
 * (G'[u >> 8] + u D'[u >> 8] + 128) >> 8: the sign, its XOR and the shift of G folded into the
 * tables, which the gathers index from their start. */
static inline EDGERNN_ALWAYS_INLINE int32x4_t edgernn_mve_tanh16_u(int32x4_t u)
{
    const uint32x4_t j = vshrq_n_u32(vreinterpretq_u32_s32(u), 8);
    const int32x4_t g = vldrwq_gather_shifted_offset_s32(edgernn_act16_tanh_g, j);
    const int32x4_t d = vreinterpretq_s32_u32(vldrhq_gather_shifted_offset_u32(edgernn_act16_tanh_d, j));
    return vrshrq_n_s32(vaddq_s32(g, vmulq_s32(u, d)), 8);
}

/* The same on the input's scale as edgernn_mve_act16_scale_q: u = VQRDMULH(x 2^k, m) + 2^16 as one
 * VQRDMLASH ((2 (x 2^k) m + 2^16 2^32 + 2^31) >> 32, no saturation: |v| < 2^16). */
#define edgernn_mve_tanh16_nc_q(x, k, m)                                                                     \
    edgernn_mve_tanh16_u(vqrdmlashq_n_s32(vshllbq_n_s16(EDGERNN_MVE_B16(x), (k)), vdupq_n_s32((int32_t)(m)), \
                                          (int32_t)1 << 16))

/* The twins, and the same without the segment clamp (_nc, fastloop_mve._unclamped). */
#define edgernn_mve_sigmoid16(v) edgernn_mve_sigmoid16_c((v), 0, 1)
#define edgernn_mve_sigmoid16_abs(v) edgernn_mve_sigmoid16_c((v), 1, 1)
#define edgernn_mve_tanh16(v) edgernn_mve_tanh16_c((v), 1)
#define edgernn_mve_sigmoid16_nc(v) edgernn_mve_sigmoid16_c((v), 0, 0)
#define edgernn_mve_sigmoid16_abs_nc(v) edgernn_mve_sigmoid16_c((v), 1, 0)
#define edgernn_mve_tanh16_nc(v) edgernn_mve_tanh16_u(vaddq_n_s32((v), (int32_t)1 << 16))
#define edgernn_mve_tanh16_q(x, k, m) edgernn_mve_tanh16(edgernn_mve_act16_scale_q((x), (k), (m))) /* (clamped) */

/* ---------------------------------------------------------------------------------------
 * int8 ADD / SUB / MUL fits and tables (fastloop.fit_add, fit_mul, mul_prescaled).
 * ------------------------------------------------------------------------------------- */

/* edgernn_add_fit_s8: clamp((a P1 + b P2 + K) >> S). */
static inline EDGERNN_ALWAYS_INLINE int32x4_t edgernn_mve_add_fit_s8(int32x4_t a, int32x4_t b, int32_t p1, int32_t p2,
                                                                     int32_t k, int s, int32_t lo, int32_t hi)
{
    const int32x4_t v = vaddq_n_s32(vmlaq_n_s32(vmulq_n_s32(a, p1), b, p2), k);
    return edgernn_mve_clamp_range_s8(vshrq_n_s32(v, s), lo, hi);
}

/* edgernn_sub_fit_s8: clamp(((a - b) P1 + K) >> S). */
static inline EDGERNN_ALWAYS_INLINE int32x4_t edgernn_mve_sub_fit_s8(int32x4_t a, int32x4_t b, int32_t p1, int32_t k,
                                                                     int s, int32_t lo, int32_t hi)
{
    const int32x4_t v = vaddq_n_s32(vmulq_n_s32(vsubq_s32(a, b), p1), k);
    return edgernn_mve_clamp_range_s8(vshrq_n_s32(v, s), lo, hi);
}

/* edgernn_mul_fit_s8: clamp((K + (q >> 31) + q P) >> S), q = (a + o1)(b + o2). */
static inline EDGERNN_ALWAYS_INLINE int32x4_t edgernn_mve_mul_fit_s8(int32x4_t a, int32x4_t b, int32_t o1, int32_t o2,
                                                                     int32_t p, int32_t k, int s, int32_t lo,
                                                                     int32_t hi)
{
    const int32x4_t q = vmulq_s32(vaddq_n_s32(a, o1), vaddq_n_s32(b, o2));
    const int32x4_t v = vaddq_n_s32(vaddq_s32(vmulq_n_s32(q, p), vshrq_n_s32(q, 31)), k);
    return edgernn_mve_clamp_range_s8(vshrq_n_s32(v, s), lo, hi);
}

/* edgernn_mul_prescaled_s8: p = (a + o1)(b + o2) 2^k, clamp(SMMLAR(p, m, rounding [+ (p >> 31)])
 * >> rs); SMMULR(p, m) is VRMULH (exactly (p m + 2^31) >> 32). */
static inline EDGERNN_ALWAYS_INLINE int32x4_t edgernn_mve_mul_prescaled_s8(int32x4_t a, int32x4_t b, int32_t o1,
                                                                           int32_t o2, int32_t m, int k, int rs,
                                                                           int32_t rounding, int32_t lo, int32_t hi)
{
    const int32x4_t p = vshlq_n_s32(vmulq_s32(vaddq_n_s32(a, o1), vaddq_n_s32(b, o2)), k);
    int32x4_t v = vaddq_n_s32(vrmulhq_s32(p, vdupq_n_s32(m)), rounding);
    if (rs == 0) {
        return edgernn_mve_clamp_range_s8(v, lo, hi);
    }
    v = vaddq_s32(v, vshrq_n_s32(p, 31));
    return edgernn_mve_clamp_range_s8(vshrq_n_s32(v, rs), lo, hi);
}

/* (table + 128)[x] of an int8 x: a VLDRB gather (the lanes' offsets wrap below the middle). */
#define edgernn_mve_lut_s8(middle, x) vldrbq_gather_offset_s32((middle), vreinterpretq_u32_s32(x))

#ifdef __cplusplus
}
#endif

#endif /* EDGERNN_USE_MVE */

#endif /* EDGERNN_MVE_EW_H */
