/* tinyhil builtin engine: DEPTHWISE_CONV_2D, int16x8 (TFLM DepthwiseConvPerChannel int16). */
#include "th_int16.h"

/* Output channels accumulated together, so each tap reads contiguous channels. */
#define TH_DW16_BLOCK 16

th_status th_depthwise_conv2d_s16(const th_conv_params *p, const int16_t *input,
                                  const int8_t *filter, const int64_t *bias, int16_t *output) {
    const int32_t in_c = p->in_c;
    const int32_t out_c = p->out_c;
    const int32_t dm = p->depth_multiplier;
    int16_t *out = output;
    int64_t acc[TH_DW16_BLOCK];

    if (dm < 1 || out_c != in_c * dm) {
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
                for (int32_t c0 = 0; c0 < out_c; c0 += TH_DW16_BLOCK) {
                    const int32_t n = TH_MIN(TH_DW16_BLOCK, out_c - c0);
                    for (int32_t i = 0; i < n; ++i) {
                        acc[i] = 0;
                    }
                    for (int32_t ky = ky_lo; ky < ky_hi; ++ky) {
                        const int32_t iy = iy0 + ky * p->dil_h;
                        for (int32_t kx = kx_lo; kx < kx_hi; ++kx) {
                            const int32_t ix = ix0 + kx * p->dil_w;
                            const int16_t *x = in_b + (iy * p->in_w + ix) * in_c;
                            const int8_t *w = filter + (ky * p->k_w + kx) * out_c + c0;
                            if (dm == 1) {
                                x += c0;
                                for (int32_t i = 0; i < n; ++i) {
                                    acc[i] += (int32_t)w[i] * (int32_t)x[i];
                                }
                                continue;
                            }
                            /* Output channel c reads input channel c / dm. */
                            int32_t ic = c0 / dm;
                            int32_t m = c0 % dm;
                            for (int32_t i = 0; i < n; ++i) {
                                acc[i] += (int32_t)w[i] * (int32_t)x[ic];
                                if (++m == dm) {
                                    m = 0;
                                    ++ic;
                                }
                            }
                        }
                    }
                    for (int32_t i = 0; i < n; ++i) {
                        const int32_t c = c0 + i;
                        const int64_t v = bias != 0 ? acc[i] + bias[c] : acc[i];
                        out[c] = th_clamp_s16(th_mbqm64(v, p->mult[c], p->shift[c]), p->act_min,
                                              p->act_max);
                    }
                }
                out += out_c;
            }
        }
    }
    return TH_OK;
}
