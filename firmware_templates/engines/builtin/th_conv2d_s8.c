/* tinyhil builtin engine: CONV_2D, int8, per-channel requantization. */
#include "th_conv.h"

th_status th_conv2d_s8(const th_conv_params *p, const int8_t *input, const int8_t *filter,
                       const int32_t *bias, int8_t *output) {
    const int32_t in_c = p->in_c;
    const int32_t out_c = p->out_c;
    const int32_t in_off = p->input_offset;
    const int32_t dil_w = p->dil_w;
    const int32_t in_row = p->in_w * in_c;      /* elements per input row */
    const int32_t f_row = p->k_w * in_c;        /* elements per filter row */
    const int32_t f_size = p->k_h * f_row;      /* elements per output channel */
    int8_t *out = output;

    if (p->depth_multiplier != 1) {
        return TH_ERROR;
    }
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *in_b = input + b * p->in_h * in_row;
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t iy0 = oy * p->stride_h - p->pad_h;
            int32_t ky_lo, ky_hi;
            th_conv_window(iy0, p->dil_h, p->in_h, p->k_h, &ky_lo, &ky_hi);
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t ix0 = ox * p->stride_w - p->pad_w;
                int32_t kx_lo, kx_hi;
                th_conv_window(ix0, dil_w, p->in_w, p->k_w, &kx_lo, &kx_hi);
                const int32_t span = kx_hi - kx_lo;
                /* No tap inside the image: the sums stay zero. */
                const int32_t ky_end = span > 0 ? ky_hi : ky_lo;
                for (int32_t oc = 0; oc < out_c; ++oc) {
                    const int8_t *f_oc = filter + oc * f_size;
                    int32_t acc = 0;
                    for (int32_t ky = ky_lo; ky < ky_end; ++ky) {
                        const int8_t *x = in_b + (iy0 + ky * p->dil_h) * in_row
                                          + (ix0 + kx_lo * dil_w) * in_c;
                        const int8_t *w = f_oc + ky * f_row + kx_lo * in_c;
                        if (dil_w == 1) {
                            /* The taps of one row are contiguous in both tensors. */
                            const int32_t n = span * in_c;
                            for (int32_t i = 0; i < n; ++i) {
                                acc += (int32_t)w[i] * ((int32_t)x[i] + in_off);
                            }
                        } else {
                            for (int32_t kx = 0; kx < span; ++kx) {
                                for (int32_t ic = 0; ic < in_c; ++ic) {
                                    acc += (int32_t)w[ic] * ((int32_t)x[ic] + in_off);
                                }
                                w += in_c;
                                if (kx + 1 < span) {
                                    x += dil_w * in_c;
                                }
                            }
                        }
                    }
                    if (bias != 0) {
                        acc += bias[oc];
                    }
                    acc = th_mbqm(acc, p->mult[oc], p->shift[oc]) + p->output_offset;
                    out[oc] = th_clamp_s8(acc, p->act_min, p->act_max);
                }
                out += out_c;
            }
        }
    }
    return TH_OK;
}
