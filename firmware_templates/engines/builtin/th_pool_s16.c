/* tinyhil builtin engine: AVERAGE_POOL_2D and MAX_POOL_2D, int16 (TFLM reference arithmetic). */
#include "th_int16.h"

th_status th_avg_pool_s16(const th_pool_params *p, const int16_t *input, int16_t *output) {
    const int32_t depth = p->depth;
    for (int32_t b = 0; b < p->batches; ++b) {
        const int16_t *in_b = input + b * p->in_h * p->in_w * depth;
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t y0 = oy * p->stride_h - p->pad_h;
            const int32_t ky_lo = TH_MAX(0, -y0);
            const int32_t ky_hi = TH_MIN(p->filter_h, p->in_h - y0);
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t x0 = ox * p->stride_w - p->pad_w;
                const int32_t kx_lo = TH_MAX(0, -x0);
                const int32_t kx_hi = TH_MIN(p->filter_w, p->in_w - x0);
                const int32_t count = (ky_hi - ky_lo) * (kx_hi - kx_lo);
                if (ky_hi <= ky_lo || kx_hi <= kx_lo) {
                    return TH_ERROR;
                }
                for (int32_t ch = 0; ch < depth; ++ch) {
                    int32_t sum = 0; /* int32, as TFLM: windows up to 2^16 elements */
                    for (int32_t ky = ky_lo; ky < ky_hi; ++ky) {
                        const int32_t row = ((y0 + ky) * p->in_w + x0) * depth + ch;
                        for (int32_t kx = kx_lo; kx < kx_hi; ++kx) {
                            sum += in_b[row + kx * depth];
                        }
                    }
                    /* Nearest integer, halves away from zero (C division truncates). */
                    sum = sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
                    *output++ = th_clamp_s16(sum, p->act_min, p->act_max);
                }
            }
        }
    }
    return TH_OK;
}

th_status th_max_pool_s16(const th_pool_params *p, const int16_t *input, int16_t *output) {
    const int32_t depth = p->depth;
    for (int32_t b = 0; b < p->batches; ++b) {
        const int16_t *in_b = input + b * p->in_h * p->in_w * depth;
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t y0 = oy * p->stride_h - p->pad_h;
            const int32_t ky_lo = TH_MAX(0, -y0);
            const int32_t ky_hi = TH_MIN(p->filter_h, p->in_h - y0);
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t x0 = ox * p->stride_w - p->pad_w;
                const int32_t kx_lo = TH_MAX(0, -x0);
                const int32_t kx_hi = TH_MIN(p->filter_w, p->in_w - x0);
                for (int32_t ch = 0; ch < depth; ++ch) {
                    int32_t m = INT16_MIN;
                    for (int32_t ky = ky_lo; ky < ky_hi; ++ky) {
                        const int32_t row = ((y0 + ky) * p->in_w + x0) * depth + ch;
                        for (int32_t kx = kx_lo; kx < kx_hi; ++kx) {
                            m = TH_MAX(m, (int32_t)in_b[row + kx * depth]);
                        }
                    }
                    *output++ = th_clamp_s16(m, p->act_min, p->act_max);
                }
            }
        }
    }
    return TH_OK;
}
