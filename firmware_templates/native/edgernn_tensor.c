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

/* Runs the statement(s) after d for every index (i0, i1, i2, i3) < (d[0], d[1], d[2], d[3]), in
 * order (the loops of the reductions, boxes and broadcasts; sizes of 1 cost nothing). */
#define EDGERNN_FOR_BOX4(d, ...)                                                                       \
    do {                                                                                               \
        int32_t i0;                                                                                    \
        int32_t i1;                                                                                    \
        int32_t i2;                                                                                    \
        int32_t i3;                                                                                    \
        for (i0 = 0; i0 < (d)[0]; ++i0) {                                                              \
            for (i1 = 0; i1 < (d)[1]; ++i1) {                                                          \
                for (i2 = 0; i2 < (d)[2]; ++i2) {                                                      \
                    for (i3 = 0; i3 < (d)[3]; ++i3) {                                                  \
                        __VA_ARGS__;                                                                   \
                    }                                                                                  \
                }                                                                                      \
            }                                                                                          \
        }                                                                                              \
    } while (0)

/* Runs the statement(s) after `channels` for every output position of a convolution or pool
 * `p`, in order, with `image` (the batch's input), iy0 and ix0 (the window's top left corner in
 * the input, before the padding) in scope. */
#define EDGERNN_FOR_POSITIONS(p, channels, ...)                                                        \
    do {                                                                                               \
        int32_t b_;                                                                                    \
        int32_t oy_;                                                                                   \
        int32_t ox_;                                                                                   \
        for (b_ = 0; b_ < (p)->batches; ++b_) {                                                        \
            const int8_t *image = input + (long)b_ * (p)->in_h * (p)->in_w * (channels);               \
            for (oy_ = 0; oy_ < (p)->out_h; ++oy_) {                                                   \
                const int32_t iy0 = oy_ * (p)->stride_h - (p)->pad_top;                                \
                for (ox_ = 0; ox_ < (p)->out_w; ++ox_) {                                               \
                    const int32_t ix0 = ox_ * (p)->stride_w - (p)->pad_left;                           \
                    __VA_ARGS__;                                                                       \
                }                                                                                      \
            }                                                                                          \
        }                                                                                              \
    } while (0)

/* The offset of element (i0, i1, i2, i3) of a box with strides s. */
static inline long edgernn_offset4(const int32_t *s, int32_t i0, int32_t i1, int32_t i2, int32_t i3)
{
    return (long)i0 * s[0] + (long)i1 * s[1] + (long)i2 * s[2] + (long)i3 * s[3];
}

/* One value into a pool's or reduction's running result: the sum (average / mean), the max or
 * the min. */
static inline int32_t edgernn_reduce_one(int32_t kind, int32_t acc, int32_t v)
{
    if (kind == EDGERNN_REDUCE_MEAN) {
        return acc + v;
    }
    if (kind == EDGERNN_REDUCE_MAX) {
        return v > acc ? v : acc;
    }
    return v < acc ? v : acc;
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
/* The out_c outputs of one position of a CONV_2D (dilation, groups). */
static int8_t *edgernn_conv_position(const edgernn_conv_params *p, const int8_t *image, int32_t iy0, int32_t ix0,
                                     int8_t *output)
{
    const int32_t fh = p->filter_h;
    const int32_t fw = p->filter_w;
    const int32_t fc = p->filter_c;
    const int32_t in_c = p->in_c;
    const int32_t per_group = p->out_c / (in_c / fc);
    const int row_inside = p->dilation_w == 1 && fc == in_c && ix0 >= 0 && ix0 + fw <= p->in_w;
    int32_t o;
    int32_t fy;
    int32_t fx;
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
            if (row_inside) { /* the row's taps are fw * in_c contiguous bytes */
                acc += edgernn_dot_s8(w_row, image + ((long)iy * p->in_w + ix0) * in_c, fw * in_c);
                continue;
            }
            for (fx = 0; fx < fw; ++fx) {
                const int32_t ix = ix0 + fx * p->dilation_w;
                if (ix < 0 || ix >= p->in_w) {
                    acc += p->input_zero_point * edgernn_tensor_sum(w_row + fx * fc, fc);
                } else {
                    acc += edgernn_dot_s8(w_row + fx * fc, image + ((long)iy * p->in_w + ix) * in_c + c0, fc);
                }
            }
        }
        acc = edgernn_mbqm(acc, p->multiplier[o], (int)p->shift[o]) + p->output_zero_point;
        *output++ = (int8_t)edgernn_tensor_clamp(acc, p->activation_min, p->activation_max);
    }
    return output;
}

/* The out_c outputs of one position of a DEPTHWISE_CONV_2D. */
static int8_t *edgernn_depthwise_position(const edgernn_conv_params *p, const int8_t *image, int32_t iy0,
                                          int32_t ix0, int8_t *output)
{
    const int32_t out_c = p->out_c;
    int32_t o;
    int32_t fy;
    int32_t fx;
    for (o = 0; o < out_c; ++o) {
        const int32_t c = o / p->depth_multiplier;
        int32_t acc = p->bias[o];
        for (fy = 0; fy < p->filter_h; ++fy) {
            const int32_t iy = iy0 + fy * p->dilation_h;
            for (fx = 0; fx < p->filter_w; ++fx) {
                const int32_t ix = ix0 + fx * p->dilation_w;
                const int32_t w = p->weights[((long)fy * p->filter_w + fx) * out_c + o];
                const int inside = iy >= 0 && iy < p->in_h && ix >= 0 && ix < p->in_w;
                acc += w * (inside ? (int32_t)image[((long)iy * p->in_w + ix) * p->in_c + c] : p->input_zero_point);
            }
        }
        acc = edgernn_mbqm(acc, p->multiplier[o], (int)p->shift[o]) + p->output_zero_point;
        *output++ = (int8_t)edgernn_tensor_clamp(acc, p->activation_min, p->activation_max);
    }
    return output;
}

void edgernn_conv_s8(const edgernn_conv_params *p, const int8_t *input, int8_t *output)
{
    if (p->depth_multiplier > 0) {
        EDGERNN_FOR_POSITIONS(p, p->in_c, output = edgernn_depthwise_position(p, image, iy0, ix0, output));
    } else {
        EDGERNN_FOR_POSITIONS(p, p->in_c, output = edgernn_conv_position(p, image, iy0, ix0, output));
    }
}

/* n int8 values at src as int16 times scale (2^(1 + left shift)), a zero after an odd n; the
 * common scale 2 folds to a constant. */
static void edgernn_widen_window(const int8_t *src, int16_t *dst, int32_t n, int32_t scale)
{
    if (scale == 2) {
        edgernn_widen_scaled_s8(src, dst, (int)n, 2);
    } else {
        edgernn_widen_scaled_s8(src, dst, (int)n, scale);
    }
}

static void edgernn_fill_window(int16_t *dst, int32_t n, int16_t value)
{
    int32_t i;
    for (i = 0; i < n; ++i) {
        dst[i] = value;
    }
}

/* The window of one position, in filter order (fy, fx, c): the pairs kernel's int16 input. */
static void edgernn_conv_window(const edgernn_conv_params *p, const int8_t *image, int32_t iy0, int32_t ix0,
                                int32_t scale, int16_t *window)
{
    const int32_t in_c = p->in_c;
    const int32_t fw = p->filter_w;
    const int16_t fill = (int16_t)(p->input_zero_point * scale);
    const int row_inside = p->dilation_w == 1 && ix0 >= 0 && ix0 + fw <= p->in_w;
    int16_t *dst = window;
    int32_t fy;
    int32_t fx;
    for (fy = 0; fy < p->filter_h; ++fy) {
        const int32_t iy = iy0 + fy * p->dilation_h;
        const int8_t *row = image + (long)iy * p->in_w * in_c;
        if (iy < 0 || iy >= p->in_h) {
            edgernn_fill_window(dst, fw * in_c, fill);
        } else if (row_inside) {
            edgernn_widen_window(row + (long)ix0 * in_c, dst, fw * in_c, scale);
        } else {
            for (fx = 0; fx < fw; ++fx) {
                const int32_t ix = ix0 + fx * p->dilation_w;
                if (ix < 0 || ix >= p->in_w) {
                    edgernn_fill_window(dst + fx * in_c, in_c, fill);
                } else {
                    edgernn_widen_window(row + (long)ix * in_c, dst + fx * in_c, in_c, scale);
                }
            }
        }
        dst += fw * in_c;
    }
    if ((dst - window) % 2) {
        *dst = 0;
    }
}

/* The activation range narrower than int8 (a ReLU whose zero point is above -128...), applied to
 * the out_c outputs the kernel wrote; returns the next position's output. */
static int8_t *edgernn_conv_pairs_clamp(const edgernn_conv_params *p, int8_t *output)
{
    if (p->activation_min > -128 || p->activation_max < 127) {
        int32_t o;
        for (o = 0; o < p->out_c; ++o) {
            output[o] = (int8_t)edgernn_tensor_clamp(output[o], p->activation_min, p->activation_max);
        }
    }
    return output + p->out_c;
}

static int8_t *edgernn_conv_pairs_position(const edgernn_conv_pairs *c, const int8_t *image, int32_t iy0,
                                           int32_t ix0, int8_t *output, int16_t *window)
{
    const edgernn_conv_params *p = c->conv;
    edgernn_fc8 fc;
    fc.stream = c->stream;
    fc.x16 = window;
    fc.passes_end = c->passes_end;
    fc.out = output;
    edgernn_conv_window(p, image, iy0, ix0, c->scale, window);
    c->kernel(&fc);
    return edgernn_conv_pairs_clamp(p, output);
}

/* Input column ix of an image row (the zero point outside), widened into ring slot k and its
 * copy filter_w slots on. */
static void edgernn_ring_column(const edgernn_conv_pairs *c, const int8_t *row, int32_t ix, int16_t *ring, int32_t k)
{
    const edgernn_conv_params *p = c->conv;
    const int32_t in_c = p->in_c;
    int16_t *a = ring + k * in_c;
    int16_t *b = a + p->filter_w * in_c;
    int32_t i;
    if (ix < 0 || ix >= p->in_w) {
        edgernn_fill_window(a, in_c, (int16_t)(p->input_zero_point * c->scale));
    } else {
        edgernn_widen_window(row + (long)ix * in_c, a, in_c, c->scale);
    }
    for (i = 0; i < in_c; i += 2) { /* in_c is even: whole words */
        uint32_t v;
        memcpy(&v, a + i, 4);
        memcpy(b + i, &v, 4);
    }
}

/* The outputs of one image row on a ring (edgernn_conv_pairs.ring): the window of position ox
 * is the filter_w columns from slot ox % filter_w on. */
static int8_t *edgernn_conv_pairs_ring(const edgernn_conv_pairs *c, const int8_t *row, int8_t *output, int16_t *ring)
{
    const edgernn_conv_params *p = c->conv;
    const int32_t fw = p->filter_w;
    int32_t ox;
    int32_t k;
    for (k = 0; k < fw - 1; ++k) {
        edgernn_ring_column(c, row, k - p->pad_left, ring, k);
    }
    for (ox = 0; ox < p->out_w; ++ox) {
        edgernn_fc8 fc;
        edgernn_ring_column(c, row, ox + fw - 1 - p->pad_left, ring, (ox + fw - 1) % fw);
        fc.stream = c->stream;
        fc.x16 = ring + (ox % fw) * p->in_c;
        fc.passes_end = c->passes_end;
        fc.out = output;
        c->kernel(&fc);
        output = edgernn_conv_pairs_clamp(p, output);
    }
    return output;
}

void edgernn_conv_pairs_s8(const edgernn_conv_pairs *c, const int8_t *input, int8_t *output, int16_t *window)
{
    const edgernn_conv_params *p = c->conv;
    int32_t b;
    int32_t oy;
    if (!c->ring) {
        EDGERNN_FOR_POSITIONS(p, p->in_c, output = edgernn_conv_pairs_position(c, image, iy0, ix0, output, window));
        return;
    }
    for (b = 0; b < p->batches; ++b) { /* one filter row, no padding above: row oy * stride_h */
        for (oy = 0; oy < p->out_h; ++oy) {
            const int8_t *row = input + ((long)b * p->in_h + (long)oy * p->stride_h) * p->in_w * p->in_c;
            output = edgernn_conv_pairs_ring(c, row, output, window);
        }
    }
}

/* The int8 window of one position for the rows kernel: where it lies in the input when its taps
 * are contiguous there, else copied into `window` in filter order (the zero point outside). */
static const int8_t *edgernn_conv_rows_window(const edgernn_conv_params *p, const int8_t *image, int32_t iy0,
                                              int32_t ix0, int8_t *window)
{
    const int32_t in_c = p->in_c;
    const int32_t fw = p->filter_w;
    const int32_t fh = p->filter_h;
    const int row_inside = p->dilation_w == 1 && ix0 >= 0 && ix0 + fw <= p->in_w;
    const int rows_inside = iy0 >= 0 && iy0 + (fh - 1) * p->dilation_h < p->in_h;
    int8_t *dst = window;
    int32_t fy;
    int32_t fx;
    if (row_inside && rows_inside && (fh == 1 || (fw == p->in_w && p->dilation_h == 1))) {
        return image + ((long)iy0 * p->in_w + ix0) * in_c;
    }
    for (fy = 0; fy < fh; ++fy) {
        const int32_t iy = iy0 + fy * p->dilation_h;
        const int8_t *row = image + (long)iy * p->in_w * in_c;
        if (iy < 0 || iy >= p->in_h) {
            memset(dst, p->input_zero_point, (size_t)(fw * in_c));
        } else if (row_inside) {
            memcpy(dst, row + (long)ix0 * in_c, (size_t)(fw * in_c));
        } else {
            for (fx = 0; fx < fw; ++fx) {
                const int32_t ix = ix0 + fx * p->dilation_w;
                if (ix < 0 || ix >= p->in_w) {
                    memset(dst + fx * in_c, p->input_zero_point, (size_t)in_c);
                } else {
                    memcpy(dst + fx * in_c, row + (long)ix * in_c, (size_t)in_c);
                }
            }
        }
        dst += fw * in_c;
    }
    return window;
}

void edgernn_conv_rows_s8(const edgernn_conv_rows *c, const int8_t *input, int8_t *output, int8_t *window)
{
    const edgernn_conv_params *p = c->conv;
    const int32_t out_c = p->out_c;
    int32_t b;
    int32_t oy;
    int32_t ox;
    if (window == NULL) { /* every window lies in the input, no padding: the next one starts stride_w columns on */
        const int32_t step = p->stride_w * p->in_c;
        for (b = 0; b < p->batches; ++b) {
            for (oy = 0; oy < p->out_h; ++oy) {
                const int8_t *x = input + ((long)b * p->in_h + (long)oy * p->stride_h) * p->in_w * p->in_c;
                for (ox = 0; ox < p->out_w; ++ox) {
                    c->kernel(x, output);
                    x += step;
                    output += out_c;
                }
            }
        }
        return;
    }
    EDGERNN_FOR_POSITIONS(p, p->in_c, {
        c->kernel(edgernn_conv_rows_window(p, image, iy0, ix0, window), output);
        output += out_c;
    });
}

/* The window of one depthwise position, channel-major: window[c * taps + t]. */
static void edgernn_depthwise_window(const edgernn_conv_params *p, const int8_t *image, int32_t iy0, int32_t ix0,
                                     int32_t scale, int32_t taps, int16_t *window)
{
    const int32_t in_c = p->in_c;
    const int16_t fill = (int16_t)(p->input_zero_point * scale);
    int32_t t = 0;
    int32_t fy;
    int32_t fx;
    int32_t c;
    for (fy = 0; fy < p->filter_h; ++fy) {
        const int32_t iy = iy0 + fy * p->dilation_h;
        for (fx = 0; fx < p->filter_w; ++fx, ++t) {
            const int32_t ix = ix0 + fx * p->dilation_w;
            if (iy < 0 || iy >= p->in_h || ix < 0 || ix >= p->in_w) {
                for (c = 0; c < in_c; ++c) {
                    window[c * taps + t] = fill;
                }
            } else {
                const int8_t *src = image + ((long)iy * p->in_w + ix) * in_c;
                for (c = 0; c < in_c; ++c) {
                    window[c * taps + t] = (int16_t)(src[c] * scale);
                }
            }
        }
    }
    if (t < taps) {
        for (c = 0; c < in_c; ++c) {
            window[c * taps + t] = 0;
        }
    }
}

static int8_t *edgernn_depthwise_pairs_position(const edgernn_depthwise_pairs *d, const int8_t *image, int32_t iy0,
                                                int32_t ix0, int8_t *output, int16_t *window)
{
    const edgernn_conv_params *p = d->conv;
    const int32_t half = d->taps / 2;
    const uint32_t *w = d->words;
    int32_t o;
    int32_t j;
    edgernn_depthwise_window(p, image, iy0, ix0, d->scale, d->taps, window);
    for (o = 0; o < p->out_c; ++o) {
        const int16_t *x = window + (o / p->depth_multiplier) * d->taps;
        const int32_t m = (int32_t)w[1];
        const int32_t rounding = (int32_t)w[2];
        const int32_t rs = (int32_t)w[3];
        int32_t acc = (int32_t)w[0];
        int32_t r;
        w += 4;
        for (j = 0; j < half; ++j) {
#if EDGERNN_USE_SMLAD
            uint32_t xx;
            memcpy(&xx, x + 2 * j, 4);
            acc = __smlad((int32_t)w[j], (int32_t)xx, acc);
#else
            acc += (int32_t)(int16_t)(w[j] & 0xFFFFu) * x[2 * j] + (int32_t)(int16_t)(w[j] >> 16) * x[2 * j + 1];
#endif
        }
        w += half;
        r = rs == 0 ? edgernn_smmlar(acc, m, rounding) : edgernn_smmlar(acc, m, rounding + (acc >> 31)) >> rs;
        *output++ = (int8_t)edgernn_tensor_clamp(edgernn_clamp_s8(r), p->activation_min, p->activation_max);
    }
    return output;
}

void edgernn_depthwise_pairs_s8(const edgernn_depthwise_pairs *c, const int8_t *input, int8_t *output,
                                int16_t *window)
{
    const edgernn_conv_params *p = c->conv;
    EDGERNN_FOR_POSITIONS(p, p->in_c, output = edgernn_depthwise_pairs_position(c, image, iy0, ix0, output, window));
}

/* ---------------------------------------------------------------------------------------
 * MAX_POOL_2D / AVERAGE_POOL_2D over the in-image part of each window
 * ------------------------------------------------------------------------------------- */
static int8_t *edgernn_pool_position(const edgernn_pool_params *p, const int8_t *image, int32_t y0, int32_t x0,
                                     int8_t *output)
{
    const int32_t y_start = y0 < 0 ? 0 : y0;
    const int32_t y_end = y0 + p->filter_h > p->in_h ? p->in_h : y0 + p->filter_h;
    const int32_t x_start = x0 < 0 ? 0 : x0;
    const int32_t x_end = x0 + p->filter_w > p->in_w ? p->in_w : x0 + p->filter_w;
    const int32_t count = (y_end - y_start) * (x_end - x_start);
    const int32_t kind = p->average ? EDGERNN_REDUCE_MEAN : EDGERNN_REDUCE_MAX;
    int32_t c;
    int32_t iy;
    int32_t ix;
    for (c = 0; c < p->channels; ++c) {
        int32_t acc = p->average ? 0 : -128;
        for (iy = y_start; iy < y_end; ++iy) {
            for (ix = x_start; ix < x_end; ++ix) {
                acc = edgernn_reduce_one(kind, acc, image[((long)iy * p->in_w + ix) * p->channels + c]);
            }
        }
        if (p->average) { /* raw sum rounded half away from zero (C division truncates) */
            acc = acc > 0 ? (acc + count / 2) / count : (acc - count / 2) / count;
        }
        *output++ = (int8_t)edgernn_tensor_clamp(acc, p->activation_min, p->activation_max);
    }
    return output;
}

void edgernn_pool_s8(const edgernn_pool_params *p, const int8_t *input, int8_t *output)
{
    EDGERNN_FOR_POSITIONS(p, p->channels, output = edgernn_pool_position(p, image, iy0, ix0, output));
}

/* ---------------------------------------------------------------------------------------
 * MEAN / SUM / REDUCE_MAX / REDUCE_MIN
 * ------------------------------------------------------------------------------------- */
static int32_t edgernn_reduce_box(const edgernn_reduce_params *p, const int8_t *base)
{
    const int32_t *s = p->inner_strides;
    int32_t acc = p->kind == EDGERNN_REDUCE_MEAN ? 0 : (p->kind == EDGERNN_REDUCE_MAX ? -128 : 127);
    EDGERNN_FOR_BOX4(p->inner_dims, acc = edgernn_reduce_one(p->kind, acc, base[edgernn_offset4(s, i0, i1, i2, i3)]));
    return acc;
}

static int8_t edgernn_reduce_out(const edgernn_reduce_params *p, const int8_t *base)
{
    int32_t acc = edgernn_reduce_box(p, base);
    if (p->kind == EDGERNN_REDUCE_MEAN) {
        /* wraps like TFLM's int32 (done unsigned to stay defined) */
        acc = (int32_t)((uint32_t)acc - (uint32_t)p->input_zero_point * (uint32_t)p->count);
        acc = edgernn_mbqm(acc, p->multiplier, (int)p->shift) + p->output_zero_point;
        acc = edgernn_tensor_clamp(acc, -128, 127);
    }
    return (int8_t)acc;
}

void edgernn_reduce_s8(const edgernn_reduce_params *p, const int8_t *input, int8_t *output)
{
    EDGERNN_FOR_BOX4(p->outer_dims, *output++ = edgernn_reduce_out(p, input + edgernn_offset4(p->outer_strides, i0, i1, i2, i3)));
}

/* ---------------------------------------------------------------------------------------
 * Boxes and broadcasts (five nested loops; sizes of 1 cost nothing)
 * ------------------------------------------------------------------------------------- */
static void edgernn_copy_run_s8(const int8_t *from, int8_t *to, int32_t n, int32_t s, int32_t t)
{
    int32_t i;
    if (s == 1 && t == 1) {
        memcpy(to, from, (size_t)n);
        return;
    }
    for (i = 0; i < n; ++i) {
        to[(long)i * t] = from[(long)i * s];
    }
}

void edgernn_copy_box_s8(const edgernn_box *b, const int8_t *src, int8_t *dst)
{
    const int32_t *s = b->src_strides;
    const int32_t *t = b->dst_strides;
    EDGERNN_FOR_BOX4(b->dims, edgernn_copy_run_s8(src + edgernn_offset4(s, i0, i1, i2, i3),
                                                  dst + edgernn_offset4(t, i0, i1, i2, i3), b->dims[4], s[4], t[4]));
}

/* Walks the output box in order, calling the elementwise kernel on runs along the last axis
 * where both inputs advance by one element (or stay put: a broadcast scalar run). */
#define EDGERNN_BROADCAST_LOOP(BODY)                                                                  \
    do {                                                                                               \
        const int32_t *sa = g->a_strides;                                                              \
        const int32_t *sb = g->b_strides;                                                              \
        int32_t i4;                                                                                    \
        EDGERNN_FOR_BOX4(g->dims, {                                                                    \
            const int8_t *ra = a + edgernn_offset4(sa, i0, i1, i2, i3);                                \
            const int8_t *rb = b + edgernn_offset4(sb, i0, i1, i2, i3);                                \
            for (i4 = 0; i4 < g->dims[4]; ++i4) {                                                      \
                const int8_t va = ra[(long)i4 * sa[4]];                                                \
                const int8_t vb = rb[(long)i4 * sb[4]];                                                \
                BODY;                                                                                  \
            }                                                                                          \
        });                                                                                            \
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
