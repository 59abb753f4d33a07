/* tinyhil builtin engine: AVERAGE_POOL_2D, int8. */
#include "th_pool.h"
#include "th_simd.h"

/* TFLM's average: nearest integer, halves away from zero (C division truncates). */
static inline int8_t th_avg_out(int32_t sum, int32_t count, int32_t lo, int32_t hi) {
    sum = sum > 0 ? (sum + count / 2) / count : (sum - count / 2) / count;
    return th_clamp_s8(sum, lo, hi);
}

/* One output pixel's window, four channels per word: SXTAB16 adds bytes 0 and 2
 * (and, rotated, 1 and 3) into 16-bit lanes, which hold any sum of at most 255
 * int8 values (|sum| <= 32,640): 4 instructions per 4 inputs on DSP cores. */
static void th_avg_window4(const th_pool_params *p, const int8_t *in_b, int32_t y0, int32_t x0, int32_t ky_lo,
                           int32_t ky_hi, int32_t kx_lo, int32_t kx_hi, int32_t count, int8_t *out) {
    const int32_t depth = p->depth;
    for (int32_t c = 0; c < depth; c += 4) {
        uint32_t even = 0, odd = 0; /* lanes: channels (c, c + 2), (c + 1, c + 3) */
        for (int32_t ky = ky_lo; ky < ky_hi; ++ky) {
            const int8_t *q = in_b + ((y0 + ky) * p->in_w + x0 + kx_lo) * depth + c;
            for (int32_t kx = kx_lo; kx < kx_hi; ++kx, q += depth) {
                const uint32_t v = th_read_s8x4(q);
                even = th_sxtab16(even, v);
                odd = th_sxtab16_ror8(odd, v);
            }
        }
        out[c] = th_avg_out((int16_t)(even & 0xFFFFu), count, p->act_min, p->act_max);
        out[c + 1] = th_avg_out((int16_t)(odd & 0xFFFFu), count, p->act_min, p->act_max);
        out[c + 2] = th_avg_out((int16_t)(even >> 16), count, p->act_min, p->act_max);
        out[c + 3] = th_avg_out((int16_t)(odd >> 16), count, p->act_min, p->act_max);
    }
}

th_status th_avg_pool_s8(const th_pool_params *p, const int8_t *input, int8_t *output) {
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
                const int32_t count = (ky_hi - ky_lo) * (kx_hi - kx_lo);
                if (ky_hi <= ky_lo || kx_hi <= kx_lo) {
                    return TH_ERROR;
                }
                if ((depth & 3) == 0 && count <= 255) {
                    th_avg_window4(p, in_b, y0, x0, ky_lo, ky_hi, kx_lo, kx_hi, count, output);
                    output += depth;
                    continue;
                }
                for (int32_t ch = 0; ch < depth; ++ch) {
                    int32_t sum = 0;
                    for (int32_t ky = ky_lo; ky < ky_hi; ++ky) {
                        /* x0 may be negative: index with integers, never a pointer before in_b. */
                        const int32_t row = ((y0 + ky) * p->in_w + x0) * depth + ch;
                        for (int32_t kx = kx_lo; kx < kx_hi; ++kx) {
                            sum += in_b[row + kx * depth];
                        }
                    }
                    *output++ = th_avg_out(sum, count, p->act_min, p->act_max);
                }
            }
        }
    }
    return TH_OK;
}
