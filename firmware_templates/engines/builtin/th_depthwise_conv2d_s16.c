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

/* ------------------------------------------------------------------ SIMD */

#include "th_simd.h"

/* a0..a3 += four channels at x against their weights at w over the n taps
 * listed at tab: per tap the byte offsets of its input (from x) and of its
 * weight word (from w). */
static inline __attribute__((always_inline)) void th_dw16_taps4(const int16_t *x, const int8_t *w,
                                                               const int32_t *tab, int32_t n,
                                                               int32_t *a) {
    int32_t a0 = a[0], a1 = a[1], a2 = a[2], a3 = a[3];
#if TH_SIMD_DSP
    /* 12 instructions per tap (4 MACs): the words of channels (0, 1) and
     * (2, 3) against SXTB16 of the weight word (w0, w1) and its ROR #8 (w2,
     * w3), lane by lane (SMLABB, SMLATT). */
    const int32_t *const end = tab + 2 * n;
    const int16_t *const x4 = x + 2;
    uint32_t xo, wo, xl, xh;
    __asm__ volatile(
        "cmp %[tab], %[end]\n\t"
        "beq 2f\n"
        "1:\n\t"
        "ldrd %[xo], %[wo], [%[tab]], #8\n\t"
        "ldr %[wo], [%[w], %[wo]]\n\t"
        "ldr %[xl], [%[x], %[xo]]\n\t"
        "ldr %[xh], [%[x4], %[xo]]\n\t"
        "sxtb16 %[xo], %[wo]\n\t"
        "sxtb16 %[wo], %[wo], ror #8\n\t"
        "smlabb %[a0], %[xl], %[xo], %[a0]\n\t"
        "smlatt %[a1], %[xl], %[xo], %[a1]\n\t"
        "smlabb %[a2], %[xh], %[wo], %[a2]\n\t"
        "smlatt %[a3], %[xh], %[wo], %[a3]\n\t"
        "cmp %[tab], %[end]\n\t"
        "bne 1b\n"
        "2:\n\t"
        : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [tab] "+r"(tab),
          [xo] "=&r"(xo), [wo] "=&r"(wo), [xl] "=&r"(xl), [xh] "=&r"(xh)
        : [x] "r"(x), [x4] "r"(x4), [w] "r"(w), [end] "r"(end)
        : "cc", "memory");
#else
    /* The weight word holds w0, w2, w1, w3. Unsigned: wraps as SMLAxy. */
    for (int32_t i = 0; i < n; ++i) {
        const int16_t *xt = (const int16_t *)(const void *)((const char *)x + tab[2 * i]);
        const int8_t *wt = w + tab[2 * i + 1];
        a0 = (int32_t)((uint32_t)a0 + (uint32_t)(wt[0] * xt[0]));
        a1 = (int32_t)((uint32_t)a1 + (uint32_t)(wt[2] * xt[1]));
        a2 = (int32_t)((uint32_t)a2 + (uint32_t)(wt[1] * xt[2]));
        a3 = (int32_t)((uint32_t)a3 + (uint32_t)(wt[3] * xt[3]));
    }
#endif
    a[0] = a0;
    a[1] = a1;
    a[2] = a2;
    a[3] = a3;
}

/* Every channel of one output pixel over the n taps at tab (input offsets
 * from in_b, weight offsets within a group's words); sat (th_rq16_sat) is a
 * constant: a FAST instance starts the sums at the bias and requantizes
 * inline. */
static inline __attribute__((always_inline)) void th_dw16_pixel_t(
    const int32_t sat, const th_rq16_params *rq, int32_t ch, int32_t taps, const int16_t *in_b,
    const int32_t *tab, int32_t n, const int8_t *filter, int16_t *out) {
    const int32_t full = ch & ~3;
    const int32_t *const bias = sat != TH_SAT16_NONE ? rq->bias32 : 0;
    const int32_t *const mult = rq->mult;
    const int32_t lo = rq->act_min;
    const int32_t hi = rq->act_max;
#define TH_DW16_OUT(c, acc)                                                       \
    (sat == TH_SAT16_NONE ? th_rq16_out(TH_RQ16_EXACT64, rq, (c), (acc), 0) \
                          : th_rq16_fast((acc), mult[c], sat, lo, hi))
    for (int32_t c0 = 0; c0 < full; c0 += 4) {
        int32_t a[4] = {0, 0, 0, 0};
        if (bias != 0) {
            a[0] = bias[c0];
            a[1] = bias[c0 + 1];
            a[2] = bias[c0 + 2];
            a[3] = bias[c0 + 3];
        }
        th_dw16_taps4(in_b + c0, filter + c0 * taps, tab, n, a);
        out[c0] = TH_DW16_OUT(c0, a[0]);
        out[c0 + 1] = TH_DW16_OUT(c0 + 1, a[1]);
        out[c0 + 2] = TH_DW16_OUT(c0 + 2, a[2]);
        out[c0 + 3] = TH_DW16_OUT(c0 + 3, a[3]);
    }
    /* The last ch % 4 channels: weights [tap][channel] after the groups. */
    const int32_t rest = ch - full;
    for (int32_t c = full; c < ch; ++c) {
        int32_t a = bias != 0 ? bias[c] : 0;
        const int8_t *wc = filter + full * taps + (c - full);
        for (int32_t i = 0; i < n; ++i) {
            const int16_t *xt = (const int16_t *)(const void *)((const char *)(in_b + c) + tab[2 * i]);
            a = (int32_t)((uint32_t)a + (uint32_t)(wc[(tab[2 * i + 1] >> 2) * rest] * *xt));
        }
        out[c] = TH_DW16_OUT(c, a);
    }
#undef TH_DW16_OUT
}

static __attribute__((noinline)) void th_dw16_pixel(const int32_t sat, const th_rq16_params *rq,
                                                    int32_t ch, int32_t taps,
                                                    const int16_t *in_b, const int32_t *tab,
                                                    int32_t n, const int8_t *filter,
                                                    int16_t *out) {
    if (sat == TH_SAT16_U15) {
        th_dw16_pixel_t(TH_SAT16_U15, rq, ch, taps, in_b, tab, n, filter, out);
    } else if (sat == TH_SAT16_S16) {
        th_dw16_pixel_t(TH_SAT16_S16, rq, ch, taps, in_b, tab, n, filter, out);
    } else if (sat == TH_SAT16_CLAMP) {
        th_dw16_pixel_t(TH_SAT16_CLAMP, rq, ch, taps, in_b, tab, n, filter, out);
    } else {
        th_dw16_pixel_t(TH_SAT16_NONE, rq, ch, taps, in_b, tab, n, filter, out);
    }
}

static __attribute__((noinline)) void th_dw16_run(const th_conv_params *p,
                                                  const th_rq16_params *rq,
                                                  const int16_t *input, const int8_t *filter,
                                                  int16_t *output, int32_t *tab) {
    const int32_t ch = p->in_c;
    const int32_t taps = p->k_h * p->k_w;
    const int32_t sat = th_rq16_sat(rq);
    int16_t *out = output;
    for (int32_t b = 0; b < p->batches; ++b) {
        const int16_t *in_b = input + b * p->in_h * p->in_w * ch;
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t iy0 = oy * p->stride_h - p->pad_h;
            int32_t ky_lo, ky_hi;
            th_conv_window(iy0, p->dil_h, p->in_h, p->k_h, &ky_lo, &ky_hi);
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                const int32_t ix0 = ox * p->stride_w - p->pad_w;
                int32_t kx_lo, kx_hi;
                th_conv_window(ix0, p->dil_w, p->in_w, p->k_w, &kx_lo, &kx_hi);
                /* The taps inside the input. */
                int32_t n = 0;
                for (int32_t ky = ky_lo; ky < ky_hi; ++ky) {
                    const int32_t row = (iy0 + ky * p->dil_h) * p->in_w;
                    for (int32_t kx = kx_lo; kx < kx_hi; ++kx) {
                        tab[2 * n] = (row + ix0 + kx * p->dil_w) * ch * (int32_t)sizeof(int16_t);
                        tab[2 * n + 1] = (ky * p->k_w + kx) * 4;
                        ++n;
                    }
                }
                th_dw16_pixel(sat, rq, ch, taps, in_b, tab, n, filter, out);
                out += ch;
            }
        }
    }
}

th_status th_depthwise_conv2d_s16_simd(const th_conv_params *p, const th_rq16_params *rq,
                                       const int16_t *input, const int8_t *filter,
                                       int16_t *output) {
    if (p->depth_multiplier != 1 || p->out_c != p->in_c) {
        return TH_ERROR;
    }
    int32_t tab[2 * p->k_h * p->k_w]; /* per tap: input and weight byte offsets */
    th_dw16_run(p, rq, input, filter, output, tab);
    return TH_OK;
}
