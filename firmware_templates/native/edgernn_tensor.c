/*
 * edgernn_tensor.c - int8 tensor kernels, bit-exact with TensorFlow Lite Micro.
 * See edgernn_tensor.h. C99, no malloc, no recursion, no floating point.
 */
#include "edgernn_tensor.h"

#include <string.h>

static inline int32_t edgernn_tensor_clamp(int32_t v, int32_t lo, int32_t hi)
{
    return v < lo ? lo : (v > hi ? hi : v);
}

/* sum w[i] * x[i], int8 x int8 in int32 (SMLAD on cores with the DSP extension). */
static int32_t edgernn_tensor_dot(const int8_t *w, const int8_t *x, int32_t n)
{
    int32_t acc = 0;
    int32_t i = 0;
#if EDGERNN_USE_SMLAD
    for (; i + 4 <= n; i += 4) {
        uint32_t w4;
        uint32_t x4;
        memcpy(&w4, w + i, 4);
        memcpy(&x4, x + i, 4);
        acc = __smlad(__sxtb16((int32_t)w4), __sxtb16((int32_t)x4), acc);
        acc = __smlad(edgernn_sxtb16_odd(w4), edgernn_sxtb16_odd(x4), acc);
    }
#endif
    for (; i < n; ++i) {
        acc += (int32_t)w[i] * (int32_t)x[i];
    }
    return acc;
}

static int32_t edgernn_tensor_sum(const int8_t *w, int32_t n)
{
    int32_t acc = 0;
    int32_t i;
    for (i = 0; i < n; ++i) {
        acc += w[i];
    }
    return acc;
}

/* ---------------------------------------------------------------------------------------
 * CONV_2D / DEPTHWISE_CONV_2D
 *
 * TFLM sums w * (x - zp) over the taps inside the input. The bias holds -zp * (sum of all the
 * channel's weights), so a tap inside adds w * x and a tap outside adds back w * zp: the same
 * integer. Rows of taps that lie wholly inside the input (dilation 1, no groups) are one dot
 * product over filter_w * in_c contiguous bytes.
 * ------------------------------------------------------------------------------------- */
static void edgernn_conv_plain_s8(const edgernn_conv_params *p, const int8_t *input, int8_t *output)
{
    const int32_t fh = p->filter_h;
    const int32_t fw = p->filter_w;
    const int32_t fc = p->filter_c;
    const int32_t in_c = p->in_c;
    const int32_t per_group = p->out_c / (in_c / fc);
    const int32_t row_span = fw * in_c;
    const int contiguous = p->dilation_w == 1 && fc == in_c;
    int32_t b;
    int32_t oy;
    int32_t ox;
    int32_t o;
    int32_t fy;
    int32_t fx;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *image = input + (long)b * p->in_h * p->in_w * in_c;
        for (oy = 0; oy < p->out_h; ++oy) {
            const int32_t iy0 = oy * p->stride_h - p->pad_top;
            for (ox = 0; ox < p->out_w; ++ox) {
                const int32_t ix0 = ox * p->stride_w - p->pad_left;
                const int row_inside = ix0 >= 0 && ix0 + fw <= p->in_w;
                for (o = 0; o < p->out_c; ++o) {
                    const int8_t *w = p->weights + (long)o * fh * fw * fc;
                    const int32_t c0 = (o / per_group) * fc;
                    int32_t acc = p->bias[o];
                    for (fy = 0; fy < fh; ++fy) {
                        const int32_t iy = iy0 + fy * p->dilation_h;
                        const int8_t *w_row = w + (long)fy * fw * fc;
                        if (iy < 0 || iy >= p->in_h) {
                            acc += p->input_zero_point * edgernn_tensor_sum(w_row, fw * fc);
                            continue;
                        }
                        if (contiguous && row_inside) {
                            acc += edgernn_tensor_dot(w_row, image + ((long)iy * p->in_w + ix0) * in_c, row_span);
                            continue;
                        }
                        for (fx = 0; fx < fw; ++fx) {
                            const int32_t ix = ix0 + fx * p->dilation_w;
                            if (ix < 0 || ix >= p->in_w) {
                                acc += p->input_zero_point * edgernn_tensor_sum(w_row + fx * fc, fc);
                            } else {
                                acc += edgernn_tensor_dot(w_row + fx * fc,
                                                          image + ((long)iy * p->in_w + ix) * in_c + c0, fc);
                            }
                        }
                    }
                    acc = edgernn_mbqm(acc, p->multiplier[o], (int)p->shift[o]) + p->output_zero_point;
                    *output++ = (int8_t)edgernn_tensor_clamp(acc, p->activation_min, p->activation_max);
                }
            }
        }
    }
}

static void edgernn_depthwise_conv_s8(const edgernn_conv_params *p, const int8_t *input, int8_t *output)
{
    const int32_t mult = p->depth_multiplier;
    const int32_t out_c = p->out_c;
    int32_t b;
    int32_t oy;
    int32_t ox;
    int32_t o;
    int32_t fy;
    int32_t fx;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *image = input + (long)b * p->in_h * p->in_w * p->in_c;
        for (oy = 0; oy < p->out_h; ++oy) {
            const int32_t iy0 = oy * p->stride_h - p->pad_top;
            for (ox = 0; ox < p->out_w; ++ox) {
                const int32_t ix0 = ox * p->stride_w - p->pad_left;
                for (o = 0; o < out_c; ++o) {
                    const int32_t c = o / mult;
                    int32_t acc = p->bias[o];
                    for (fy = 0; fy < p->filter_h; ++fy) {
                        const int32_t iy = iy0 + fy * p->dilation_h;
                        for (fx = 0; fx < p->filter_w; ++fx) {
                            const int32_t ix = ix0 + fx * p->dilation_w;
                            const int32_t w = p->weights[((long)fy * p->filter_w + fx) * out_c + o];
                            const int inside = iy >= 0 && iy < p->in_h && ix >= 0 && ix < p->in_w;
                            acc += w * (inside ? (int32_t)image[((long)iy * p->in_w + ix) * p->in_c + c]
                                               : p->input_zero_point);
                        }
                    }
                    acc = edgernn_mbqm(acc, p->multiplier[o], (int)p->shift[o]) + p->output_zero_point;
                    *output++ = (int8_t)edgernn_tensor_clamp(acc, p->activation_min, p->activation_max);
                }
            }
        }
    }
}

void edgernn_conv_s8(const edgernn_conv_params *p, const int8_t *input, int8_t *output)
{
    if (p->depth_multiplier > 0) {
        edgernn_depthwise_conv_s8(p, input, output);
    } else {
        edgernn_conv_plain_s8(p, input, output);
    }
}

/* ---------------------------------------------------------------------------------------
 * MAX_POOL_2D / AVERAGE_POOL_2D over the in-image part of each window
 * ------------------------------------------------------------------------------------- */
void edgernn_pool_s8(const edgernn_pool_params *p, const int8_t *input, int8_t *output)
{
    int32_t b;
    int32_t oy;
    int32_t ox;
    int32_t c;
    int32_t iy;
    int32_t ix;
    for (b = 0; b < p->batches; ++b) {
        const int8_t *image = input + (long)b * p->in_h * p->in_w * p->channels;
        for (oy = 0; oy < p->out_h; ++oy) {
            const int32_t y0 = oy * p->stride_h - p->pad_top;
            const int32_t y_start = y0 < 0 ? 0 : y0;
            const int32_t y_end = y0 + p->filter_h > p->in_h ? p->in_h : y0 + p->filter_h;
            for (ox = 0; ox < p->out_w; ++ox) {
                const int32_t x0 = ox * p->stride_w - p->pad_left;
                const int32_t x_start = x0 < 0 ? 0 : x0;
                const int32_t x_end = x0 + p->filter_w > p->in_w ? p->in_w : x0 + p->filter_w;
                const int32_t count = (y_end - y_start) * (x_end - x_start);
                for (c = 0; c < p->channels; ++c) {
                    int32_t acc = p->average ? 0 : -128;
                    for (iy = y_start; iy < y_end; ++iy) {
                        for (ix = x_start; ix < x_end; ++ix) {
                            const int32_t v = image[((long)iy * p->in_w + ix) * p->channels + c];
                            if (p->average) {
                                acc += v;
                            } else if (v > acc) {
                                acc = v;
                            }
                        }
                    }
                    if (p->average) { /* raw sum rounded half away from zero (C division truncates) */
                        acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
                    }
                    *output++ = (int8_t)edgernn_tensor_clamp(acc, p->activation_min, p->activation_max);
                }
            }
        }
    }
}

/* ---------------------------------------------------------------------------------------
 * MEAN / SUM / REDUCE_MAX / REDUCE_MIN
 * ------------------------------------------------------------------------------------- */
static int32_t edgernn_reduce_box(const edgernn_reduce_params *p, const int8_t *base)
{
    const int32_t *d = p->inner_dims;
    const int32_t *s = p->inner_strides;
    int32_t acc = p->kind == EDGERNN_REDUCE_MEAN ? 0 : (p->kind == EDGERNN_REDUCE_MAX ? -128 : 127);
    int32_t i0;
    int32_t i1;
    int32_t i2;
    int32_t i3;
    for (i0 = 0; i0 < d[0]; ++i0) {
        for (i1 = 0; i1 < d[1]; ++i1) {
            for (i2 = 0; i2 < d[2]; ++i2) {
                const int8_t *row = base + (long)i0 * s[0] + (long)i1 * s[1] + (long)i2 * s[2];
                for (i3 = 0; i3 < d[3]; ++i3) {
                    const int32_t v = row[(long)i3 * s[3]];
                    if (p->kind == EDGERNN_REDUCE_MEAN) {
                        acc += v;
                    } else if (p->kind == EDGERNN_REDUCE_MAX) {
                        acc = v > acc ? v : acc;
                    } else {
                        acc = v < acc ? v : acc;
                    }
                }
            }
        }
    }
    return acc;
}

void edgernn_reduce_s8(const edgernn_reduce_params *p, const int8_t *input, int8_t *output)
{
    const int32_t *d = p->outer_dims;
    const int32_t *s = p->outer_strides;
    int32_t i0;
    int32_t i1;
    int32_t i2;
    int32_t i3;
    for (i0 = 0; i0 < d[0]; ++i0) {
        for (i1 = 0; i1 < d[1]; ++i1) {
            for (i2 = 0; i2 < d[2]; ++i2) {
                for (i3 = 0; i3 < d[3]; ++i3) {
                    const int8_t *base = input + (long)i0 * s[0] + (long)i1 * s[1] + (long)i2 * s[2] + (long)i3 * s[3];
                    int32_t acc = edgernn_reduce_box(p, base);
                    if (p->kind == EDGERNN_REDUCE_MEAN) {
                        /* wraps like TFLM's int32 (done unsigned to stay defined) */
                        acc = (int32_t)((uint32_t)acc - (uint32_t)p->input_zero_point * (uint32_t)p->count);
                        acc = edgernn_mbqm(acc, p->multiplier, (int)p->shift) + p->output_zero_point;
                        acc = edgernn_tensor_clamp(acc, -128, 127);
                    }
                    *output++ = (int8_t)acc;
                }
            }
        }
    }
}

/* ---------------------------------------------------------------------------------------
 * Boxes and broadcasts (five nested loops; sizes of 1 cost nothing)
 * ------------------------------------------------------------------------------------- */
void edgernn_copy_box_s8(const edgernn_box *b, const int8_t *src, int8_t *dst)
{
    const int32_t *d = b->dims;
    const int32_t *s = b->src_strides;
    const int32_t *t = b->dst_strides;
    int32_t i0;
    int32_t i1;
    int32_t i2;
    int32_t i3;
    int32_t i4;
    for (i0 = 0; i0 < d[0]; ++i0) {
        for (i1 = 0; i1 < d[1]; ++i1) {
            for (i2 = 0; i2 < d[2]; ++i2) {
                for (i3 = 0; i3 < d[3]; ++i3) {
                    const int8_t *from = src + (long)i0 * s[0] + (long)i1 * s[1] + (long)i2 * s[2] + (long)i3 * s[3];
                    int8_t *to = dst + (long)i0 * t[0] + (long)i1 * t[1] + (long)i2 * t[2] + (long)i3 * t[3];
                    if (s[4] == 1 && t[4] == 1) {
                        memcpy(to, from, (size_t)d[4]);
                    } else {
                        for (i4 = 0; i4 < d[4]; ++i4) {
                            to[(long)i4 * t[4]] = from[(long)i4 * s[4]];
                        }
                    }
                }
            }
        }
    }
}

/* Walks the output box in order, calling the elementwise kernel on runs along the last axis
 * where both inputs advance by one element (or stay put: a broadcast scalar run). */
#define EDGERNN_BROADCAST_LOOP(BODY)                                                                  \
    do {                                                                                               \
        const int32_t *d = g->dims;                                                                    \
        const int32_t *sa = g->a_strides;                                                              \
        const int32_t *sb = g->b_strides;                                                              \
        int32_t i0;                                                                                    \
        int32_t i1;                                                                                    \
        int32_t i2;                                                                                    \
        int32_t i3;                                                                                    \
        int32_t i4;                                                                                    \
        for (i0 = 0; i0 < d[0]; ++i0) {                                                                \
            for (i1 = 0; i1 < d[1]; ++i1) {                                                            \
                for (i2 = 0; i2 < d[2]; ++i2) {                                                        \
                    for (i3 = 0; i3 < d[3]; ++i3) {                                                    \
                        const int8_t *ra = a + (long)i0 * sa[0] + (long)i1 * sa[1] + (long)i2 * sa[2] + \
                                           (long)i3 * sa[3];                                           \
                        const int8_t *rb = b + (long)i0 * sb[0] + (long)i1 * sb[1] + (long)i2 * sb[2] + \
                                           (long)i3 * sb[3];                                           \
                        for (i4 = 0; i4 < d[4]; ++i4) {                                                \
                            const int8_t va = ra[(long)i4 * sa[4]];                                    \
                            const int8_t vb = rb[(long)i4 * sb[4]];                                    \
                            BODY;                                                                      \
                        }                                                                              \
                    }                                                                                  \
                }                                                                                      \
            }                                                                                          \
        }                                                                                              \
    } while (0)

void edgernn_add_broadcast_s8(const edgernn_add_params *p, const edgernn_broadcast *g, const int8_t *a,
                              const int8_t *b, int8_t *out)
{
    EDGERNN_BROADCAST_LOOP(edgernn_add_run_s8(p, &va, &vb, out++, 1));
}

void edgernn_mul_broadcast_s8(const edgernn_mul_params *p, const edgernn_broadcast *g, const int8_t *a,
                              const int8_t *b, int8_t *out)
{
    EDGERNN_BROADCAST_LOOP(edgernn_mul_run_s8(p, &va, &vb, out++, 1));
}
