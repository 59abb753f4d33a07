/* tinyhil builtin engine: CONV_2D, int16x8, per-channel requantization (TFLM ConvPerChannel int16). */
#include "th_int16.h"

/* One output pixel's dot product for channel oc, in int64 (exact for both
 * accumulator widths: an int32 accumulator is this sum modulo 2^32). */
static inline int64_t th_conv_s16_dot(const th_conv_params *p, const int16_t *in_b,
                                      const int8_t *f_oc, int32_t iy0, int32_t ix0, int32_t ky_lo,
                                      int32_t ky_end, int32_t kx_lo, int32_t span) {
    const int32_t in_c = p->in_c;
    const int32_t in_row = p->in_w * in_c;
    const int32_t f_row = p->k_w * in_c;
    int64_t acc = 0;
    for (int32_t ky = ky_lo; ky < ky_end; ++ky) {
        const int16_t *x = in_b + (iy0 + ky * p->dil_h) * in_row + (ix0 + kx_lo * p->dil_w) * in_c;
        const int8_t *w = f_oc + ky * f_row + kx_lo * in_c;
        if (p->dil_w == 1) {
            /* The taps of one row are contiguous in both tensors. */
            const int32_t n = span * in_c;
            for (int32_t i = 0; i < n; ++i) {
                /* int64 multiply-accumulate: one SMLAL on Cortex-M4. */
                acc += (int32_t)w[i] * (int32_t)x[i];
            }
            continue;
        }
        for (int32_t kx = 0; kx < span; ++kx) {
            const int32_t xo = kx * p->dil_w * in_c;
            const int32_t wo = kx * in_c;
            for (int32_t ic = 0; ic < in_c; ++ic) {
                acc += (int32_t)w[wo + ic] * (int32_t)x[xo + ic];
            }
        }
    }
    return acc;
}

static th_status th_conv2d_s16_impl(const th_conv_params *p, const int16_t *input,
                                    const int8_t *filter, const int64_t *bias64,
                                    const int32_t *bias32, int acc32, int16_t *output) {
    const int32_t in_c = p->in_c;
    const int32_t out_c = p->out_c;
    const int32_t f_size = p->k_h * p->k_w * in_c;
    int16_t *out = output;

    if (p->depth_multiplier != 1) {
        return TH_ERROR;
    }
    for (int32_t b = 0; b < p->batches; ++b) {
        const int16_t *in_b = input + b * p->in_h * p->in_w * in_c;
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t iy0 = oy * p->stride_h - p->pad_h;
            int32_t ky_lo, ky_hi;
            th_conv_window(iy0, p->dil_h, p->in_h, p->k_h, &ky_lo, &ky_hi);
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t ix0 = ox * p->stride_w - p->pad_w;
                int32_t kx_lo, kx_hi;
                th_conv_window(ix0, p->dil_w, p->in_w, p->k_w, &kx_lo, &kx_hi);
                const int32_t span = kx_hi - kx_lo;
                const int32_t ky_end = span > 0 ? ky_hi : ky_lo;
                for (int32_t oc = 0; oc < out_c; ++oc) {
                    const int64_t acc = th_conv_s16_dot(p, in_b, filter + oc * f_size, iy0, ix0,
                                                        ky_lo, ky_end, kx_lo, span);
                    int32_t v;
                    if (acc32) {
                        /* TFLM's int32 accumulator wraps; so does this sum. */
                        uint32_t a = (uint32_t)acc;
                        if (bias32 != 0) {
                            a += (uint32_t)bias32[oc];
                        }
                        v = th_mbqm((int32_t)a, p->mult[oc], p->shift[oc]);
                    } else {
                        v = th_mbqm64(bias64 != 0 ? acc + bias64[oc] : acc, p->mult[oc],
                                      p->shift[oc]);
                    }
                    out[oc] = th_clamp_s16(v, p->act_min, p->act_max);
                }
                out += out_c;
            }
        }
    }
    return TH_OK;
}

th_status th_conv2d_s16(const th_conv_params *p, const int16_t *input, const int8_t *filter,
                        const int64_t *bias, int16_t *output) {
    return th_conv2d_s16_impl(p, input, filter, bias, 0, 0, output);
}

th_status th_conv2d_s16_acc32(const th_conv_params *p, const int16_t *input, const int8_t *filter,
                              const int32_t *bias, int16_t *output) {
    return th_conv2d_s16_impl(p, input, filter, 0, bias, 1, output);
}
