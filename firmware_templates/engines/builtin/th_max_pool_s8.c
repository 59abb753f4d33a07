/* tinyhil builtin engine: MAX_POOL_2D, int8. */
#include "th_pool.h"

th_status th_max_pool_s8(const th_pool_params *p, const int8_t *input, int8_t *output) {
    const int32_t depth = p->depth;
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *in_b = input + b * p->in_h * p->in_w * depth;
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t y0 = oy * p->stride_h - p->pad_h;
            const int32_t ky_lo = TH_MAX(0, -y0);
            const int32_t ky_hi = TH_MIN(p->filter_h, p->in_h - y0);
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t x0 = ox * p->stride_w - p->pad_w;
                const int32_t kx_lo = TH_MAX(0, -x0);
                const int32_t kx_hi = TH_MIN(p->filter_w, p->in_w - x0);
                for (int32_t ch = 0; ch < depth; ++ch) {
                    int32_t best = -128;
                    for (int32_t ky = ky_lo; ky < ky_hi; ++ky) {
                        /* x0 may be negative: index with integers, never a pointer before in_b. */
                        const int32_t row = ((y0 + ky) * p->in_w + x0) * depth + ch;
                        for (int32_t kx = kx_lo; kx < kx_hi; ++kx) {
                            const int32_t v = in_b[row + kx * depth];
                            best = v > best ? v : best;
                        }
                    }
                    *output++ = th_clamp_s8(best, p->act_min, p->act_max);
                }
            }
        }
    }
    return TH_OK;
}
