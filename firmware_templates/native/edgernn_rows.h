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

/* Adds the products of four rows over `cols` int8 values of v to acc[0..4), reading the
 * weights chunk by chunk from *w (and advancing it). */
static inline EDGERNN_ALWAYS_INLINE void edgernn_rows_product(const int8_t **w, const int8_t *v, int cols,
                                                              int32_t *acc)
{
    const int8_t *s = *w;
    int c0;
    for (c0 = 0; c0 < cols; c0 += EDGERNN_ROWS_CHUNK) {
        const int width = cols - c0 < EDGERNN_ROWS_CHUNK ? cols - c0 : EDGERNN_ROWS_CHUNK;
        int32_t s0 = 0;
        int32_t s1 = 0;
        int32_t s2 = 0;
        int32_t s3 = 0;
        int j;
        for (j = 0; j < width; ++j) {
            const int32_t vj = v[c0 + j];
            s0 += s[j] * vj;
            s1 += s[width + j] * vj;
            s2 += s[2 * width + j] * vj;
            s3 += s[3 * width + j] * vj;
        }
        acc[0] += s0;
        acc[1] += s1;
        acc[2] += s2;
        acc[3] += s3;
        s += EDGERNN_ROWS_PER_PASS * width;
    }
    *w = s;
}

/* The C kernel: the gate's pre-activations of `units` units (a multiple of four). */
static inline EDGERNN_ALWAYS_INLINE void edgernn_rows_gate_c(const edgernn_rows_gate *g, int units, int n_input,
                                                             int n_cell, int sx, int sh)
{
    const int8_t *w = g->weights;
    const int8_t *x = g->xh;
    const int8_t *h = g->xh + (n_input + EDGERNN_ROWS_CHUNK - 1) / EDGERNN_ROWS_CHUNK * EDGERNN_ROWS_CHUNK;
    int r0;
    for (r0 = 0; r0 < units; r0 += EDGERNN_ROWS_PER_PASS) {
        int32_t ax[EDGERNN_ROWS_PER_PASS];
        int32_t ah[EDGERNN_ROWS_PER_PASS];
        int r;
        for (r = 0; r < EDGERNN_ROWS_PER_PASS; ++r) {
            ax[r] = g->input_bias[r0 + r];
            ah[r] = g->recurrent_bias[r0 + r];
        }
        edgernn_rows_product(&w, x, n_input, ax);
        edgernn_rows_product(&w, h, n_cell, ah);
        for (r = 0; r < EDGERNN_ROWS_PER_PASS; ++r) {
            g->pre[r0 + r] = (int16_t)edgernn_clamp_s16(edgernn_clamp_s16(edgernn_mbqm(ax[r], g->input_multiplier, sx)) +
                                                        edgernn_clamp_s16(edgernn_mbqm(ah[r], g->recurrent_multiplier, sh)));
        }
    }
}

#define EDGERNN_ROWS_GATE_KERNEL(name, units, n_input, n_cell, sx, sh)  \
    static void name(const edgernn_rows_gate *gate)                    \
    {                                                                  \
        edgernn_rows_gate_c(gate, units, n_input, n_cell, sx, sh);     \
    }

#ifdef __cplusplus
}
#endif

#endif /* EDGERNN_ROWS_H */
