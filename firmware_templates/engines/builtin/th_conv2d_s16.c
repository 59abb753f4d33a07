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


/* ------------------------------------------------------------------ SIMD */

#include "th_simd.h"

/* Groups of four products per partial sum in wide EXACT64 sums: 4 * 64 + 3
 * (the tail) products below 2^22 each stay below 2^30. */
#define TH_S16_SEG 64

/* o[0..3] += the sums of g groups of four inputs at x against a block of four
 * channels at w (per group one word per channel: w0, w2, w1, w3), then of
 * the t (< 4) inputs after them against the t weights per channel at wt. */
static inline __attribute__((always_inline)) void th_s16_dot4(const int16_t *x, const int8_t *w,
                                                             int32_t g, const int8_t *wt,
                                                             int32_t t, int32_t *o) {
    int32_t a0 = o[0], a1 = o[1], a2 = o[2], a3 = o[3];
#if TH_SIMD_DSP
    /* 20 instructions per 16 MACs, two groups per iteration. The inputs may
     * be unaligned (LDR), the weights are word-aligned (LDRD). */
#define TH_S16_G4                                   \
    "ldr %[xa], [%[x]], #4\n\t"                     \
    "ldr %[xb], [%[x]], #4\n\t"                     \
    "ldrd %[w0], %[w1], [%[w]], #8\n\t"             \
    "sxtb16 %[w2], %[w0]\n\t"                       \
    "sxtb16 %[w0], %[w0], ror #8\n\t"               \
    "smlad %[a0], %[w2], %[xa], %[a0]\n\t"          \
    "smlad %[a0], %[w0], %[xb], %[a0]\n\t"          \
    "sxtb16 %[w2], %[w1]\n\t"                       \
    "sxtb16 %[w1], %[w1], ror #8\n\t"               \
    "smlad %[a1], %[w2], %[xa], %[a1]\n\t"          \
    "smlad %[a1], %[w1], %[xb], %[a1]\n\t"          \
    "ldrd %[w2], %[w3], [%[w]], #8\n\t"             \
    "sxtb16 %[w0], %[w2]\n\t"                       \
    "sxtb16 %[w2], %[w2], ror #8\n\t"               \
    "smlad %[a2], %[w0], %[xa], %[a2]\n\t"          \
    "smlad %[a2], %[w2], %[xb], %[a2]\n\t"          \
    "sxtb16 %[w0], %[w3]\n\t"                       \
    "sxtb16 %[w3], %[w3], ror #8\n\t"               \
    "smlad %[a3], %[w0], %[xa], %[a3]\n\t"          \
    "smlad %[a3], %[w3], %[xb], %[a3]\n\t"
    uint32_t xa, xb, w0, w1, w2, w3;
    const int8_t *const w_end = w + 16 * g;
    __asm__ volatile(
        /* An odd group first (bit 4 of w_end - w), then pairs. */
        "sub %[xa], %[w_end], %[w]\n\t"
        "tst %[xa], #16\n\t"
        "beq 2f\n\t" TH_S16_G4
        "2:\n\t"
        "cmp %[w], %[w_end]\n\t"
        "beq 3f\n\t"
        "1:\n\t" TH_S16_G4 TH_S16_G4
        "cmp %[w], %[w_end]\n\t"
        "bne 1b\n"
        "3:\n\t"
        : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [x] "+r"(x), [w] "+r"(w),
          [xa] "=&r"(xa), [xb] "=&r"(xb), [w0] "=&r"(w0), [w1] "=&r"(w1), [w2] "=&r"(w2),
          [w3] "=&r"(w3)
        : [w_end] "r"(w_end)
        : "cc", "memory");
#undef TH_S16_G4
#else
    /* Plain multiply-adds over the same layout. Unsigned: an ACC32 sum wraps,
     * as TFLM's int32 accumulator. */
    for (int32_t i = 0; i < g; ++i) {
        const int32_t x0 = x[0], x1 = x[1], x2 = x[2], x3 = x[3];
        a0 = (int32_t)((uint32_t)a0 + (uint32_t)(w[0] * x0 + w[2] * x1 + w[1] * x2 + w[3] * x3));
        a1 = (int32_t)((uint32_t)a1 + (uint32_t)(w[4] * x0 + w[6] * x1 + w[5] * x2 + w[7] * x3));
        a2 = (int32_t)((uint32_t)a2 + (uint32_t)(w[8] * x0 + w[10] * x1 + w[9] * x2 + w[11] * x3));
        a3 = (int32_t)((uint32_t)a3 + (uint32_t)(w[12] * x0 + w[14] * x1 + w[13] * x2 + w[15] * x3));
        x += 4;
        w += 16;
    }
#endif
    for (int32_t i = 0; i < t; ++i) {
        const int32_t xi = x[i];
        a0 = (int32_t)((uint32_t)a0 + (uint32_t)(wt[i] * xi));
        a1 = (int32_t)((uint32_t)a1 + (uint32_t)(wt[t + i] * xi));
        a2 = (int32_t)((uint32_t)a2 + (uint32_t)(wt[2 * t + i] * xi));
        a3 = (int32_t)((uint32_t)a3 + (uint32_t)(wt[3 * t + i] * xi));
    }
    o[0] = a0;
    o[1] = a1;
    o[2] = a2;
    o[3] = a3;
}

/* The same for one channel (weights at any alignment), through th_simd.h:
 * returns a plus the sum. */
static inline int32_t th_s16_dot1(const int16_t *x, const int8_t *w, int32_t g, const int8_t *wt,
                                  int32_t t, int32_t a) {
    for (int32_t i = 0; i < g; ++i) {
        const uint32_t wv = th_read_s8x4(w);
        a = th_smlad(th_sxtb16(wv), th_read_s16x2(x), a);
        a = th_smlad(th_sxtb16_ror8(wv), th_read_s16x2(x + 2), a);
        x += 4;
        w += 4;
    }
    for (int32_t i = 0; i < t; ++i) {
        a = (int32_t)((uint32_t)a + (uint32_t)(wt[i] * x[i]));
    }
    return a;
}

/* out[c + i] for the n sums a[i] (wide: plus a64[i]). */
static __attribute__((noinline)) void th_s16_out(const th_rq16_params *rq, int32_t c,
                                                 const int32_t *a, const int64_t *a64, int32_t n,
                                                 int16_t *out) {
    if (rq->mode == TH_RQ16_FAST) {
        for (int32_t i = 0; i < n; ++i) {
            out[c + i] = th_rq16_out(TH_RQ16_FAST, rq, c + i, a[i], 0);
        }
    } else if (rq->mode == TH_RQ16_ACC32) {
        for (int32_t i = 0; i < n; ++i) {
            out[c + i] = th_rq16_out(TH_RQ16_ACC32, rq, c + i, a[i], 0);
        }
    } else {
        for (int32_t i = 0; i < n; ++i) {
            out[c + i] = th_rq16_out(TH_RQ16_EXACT64, rq, c + i, a[i], a64 != 0 ? a64[i] : 0);
        }
    }
}

/* Every output channel of one pixel: the k inputs of its patch at x, of
 * which groups [g_lo, g_hi) and the tail are read (the groups outside hold
 * zeros: rows outside the input). sat (th_rq16_sat) is a constant: a FAST
 * instance starts the sums at the bias and requantizes inline. */
static inline __attribute__((always_inline)) void th_s16_pixel_t(
    const int32_t sat, const th_rq16_params *rq, const int16_t *x, int32_t k, int32_t g_lo,
    int32_t g_hi, const int8_t *filter, int32_t out_c, int16_t *out) {
    const int32_t gk = k >> 2;
    const int32_t t = k & 3;
    const int32_t g = g_hi - g_lo;
    const int16_t *xg = x + 4 * g_lo;
    const int32_t *const bias = sat != TH_SAT16_NONE ? rq->bias32 : 0;
    const int32_t *const mult = rq->mult;
    const int32_t lo = rq->act_min;
    const int32_t hi = rq->act_max;
    const int8_t *wb = filter;
    int32_t oc = 0;
    for (; oc + 4 <= out_c; oc += 4) {
        int32_t a[4] = {0, 0, 0, 0};
        if (bias != 0) {
            a[0] = bias[oc];
            a[1] = bias[oc + 1];
            a[2] = bias[oc + 2];
            a[3] = bias[oc + 3];
        }
        th_s16_dot4(xg, wb + 16 * g_lo, g, wb + 16 * gk, t, a);
        wb += 4 * k;
        if (sat == TH_SAT16_NONE) {
            th_s16_out(rq, oc, a, 0, 4, out);
        } else {
            out[oc] = th_rq16_fast(a[0], mult[oc], sat, lo, hi);
            out[oc + 1] = th_rq16_fast(a[1], mult[oc + 1], sat, lo, hi);
            out[oc + 2] = th_rq16_fast(a[2], mult[oc + 2], sat, lo, hi);
            out[oc + 3] = th_rq16_fast(a[3], mult[oc + 3], sat, lo, hi);
        }
    }
    for (; oc < out_c; ++oc) {
        int32_t a = th_s16_dot1(xg, wb + 4 * g_lo, g, wb + 4 * gk, t, bias != 0 ? bias[oc] : 0);
        wb += k;
        if (sat == TH_SAT16_NONE) {
            th_s16_out(rq, oc, &a, 0, 1, out);
        } else {
            out[oc] = th_rq16_fast(a, mult[oc], sat, lo, hi);
        }
    }
}

static __attribute__((noinline)) void th_s16_pixel(const int32_t sat, const th_rq16_params *rq,
                                                   const int16_t *x, int32_t k, int32_t g_lo,
                                                   int32_t g_hi, const int8_t *filter,
                                                   int32_t out_c, int16_t *out) {
    if (sat == TH_SAT16_U15) {
        th_s16_pixel_t(TH_SAT16_U15, rq, x, k, g_lo, g_hi, filter, out_c, out);
    } else if (sat == TH_SAT16_S16) {
        th_s16_pixel_t(TH_SAT16_S16, rq, x, k, g_lo, g_hi, filter, out_c, out);
    } else if (sat == TH_SAT16_CLAMP) {
        th_s16_pixel_t(TH_SAT16_CLAMP, rq, x, k, g_lo, g_hi, filter, out_c, out);
    } else {
        th_s16_pixel_t(TH_SAT16_NONE, rq, x, k, g_lo, g_hi, filter, out_c, out);
    }
}

/* th_s16_pixel for wide EXACT64 sums: partial sums of at most TH_S16_SEG
 * groups (the last with the tail) added into int64 as they complete. */
static __attribute__((noinline)) void th_s16_pixel_wide(const th_rq16_params *rq,
                                                        const int16_t *x, int32_t k,
                                                        int32_t g_lo, int32_t g_hi,
                                                        const int8_t *filter, int32_t out_c,
                                                        int16_t *out) {
    const int32_t gk = k >> 2;
    const int32_t t = k & 3;
    const int8_t *wb = filter;
    for (int32_t oc = 0; oc < out_c;) {
        const int32_t n = out_c - oc >= 4 ? 4 : 1;
        int64_t a64[4] = {0, 0, 0, 0};
        int32_t a[4] = {0, 0, 0, 0};
        for (int32_t g = g_lo; g < g_hi || g == g_lo;) {
            const int32_t seg = g_hi - g > TH_S16_SEG ? TH_S16_SEG : g_hi - g;
            const int32_t tail = g + seg == g_hi ? t : 0;
            if (n == 4) {
                th_s16_dot4(x + 4 * g, wb + 16 * g, seg, wb + 16 * gk, tail, a);
            } else {
                a[0] = th_s16_dot1(x + 4 * g, wb + 4 * g, seg, wb + 4 * gk, tail, 0);
            }
            for (int32_t i = 0; i < n; ++i) {
                a64[i] += a[i];
                a[i] = 0;
            }
            g += seg;
            if (seg == 0) {
                break;
            }
        }
        wb += n * k;
        th_s16_out(rq, oc, a, a64, n, out);
        oc += n;
    }
}

/* Input rows [ky_lo, ky_hi) of one pixel's window into the patch, taps
 * outside [kx_lo, kx_hi) 0 (TFLM skips them); rows outside are left alone. */
static __attribute__((noinline)) void th_s16_gather(const th_conv_params *p, const int16_t *in_b,
                                                    int32_t iy0, int32_t ix0, int32_t ky_lo,
                                                    int32_t ky_hi, int32_t kx_lo, int32_t kx_hi,
                                                    int16_t *patch) {
    const int32_t in_c = p->in_c;
    const int32_t len = p->k_w * in_c;
    const int32_t row_step = p->dil_h * p->in_w * in_c;
    const int16_t *row = in_b + (iy0 + ky_lo * p->dil_h) * p->in_w * in_c;
    int16_t *dst = patch + ky_lo * len;
    for (int32_t ky = ky_lo; ky < ky_hi; ++ky) {
        int32_t i = 0;
        for (; i < kx_lo * in_c; ++i) {
            dst[i] = 0;
        }
        if (p->dil_w == 1) {
            /* The taps inside are one run of the input row. */
            const int16_t *src = row + (ix0 + kx_lo) * in_c;
            for (int32_t c = 0; i < kx_hi * in_c; ++i, ++c) {
                dst[i] = src[c];
            }
        } else {
            for (int32_t kx = kx_lo; kx < kx_hi; ++kx) {
                const int16_t *src = row + (ix0 + kx * p->dil_w) * in_c;
                for (int32_t c = 0; c < in_c; ++c) {
                    dst[i++] = src[c];
                }
            }
        }
        for (; i < len; ++i) {
            dst[i] = 0;
        }
        dst += len;
        if (ky + 1 < ky_hi) {
            row += row_step;
        }
    }
}

static __attribute__((noinline)) void th_conv2d_s16_simd_run(const th_conv_params *p,
                                                             const th_rq16_params *rq,
                                                             const int16_t *input,
                                                             const int8_t *filter,
                                                             int16_t *output, int16_t *patch) {
    const int32_t in_c = p->in_c;
    const int32_t out_c = p->out_c;
    const int32_t len = p->k_w * in_c;
    const int32_t k = p->k_h * len;
    /* Rows outside the input are skipped when they are whole groups. */
    const int32_t row_groups = (len & 3) == 0 ? len >> 2 : 0;
    const int32_t sat = th_rq16_sat(rq);
    int16_t *out = output;
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
                const int16_t *x = patch;
                int32_t g_lo = 0;
                int32_t g_hi = k >> 2;
                if (kx_lo >= kx_hi || ky_lo >= ky_hi) {
                    /* No tap inside the input: the bias alone. */
                    for (int32_t i = 0; i < k; ++i) {
                        patch[i] = 0;
                    }
                } else if (p->k_h == 1 && kx_lo == 0 && kx_hi == p->k_w &&
                           (p->dil_w == 1 || p->k_w == 1)) {
                    /* The patch is one run of the input: read in place. */
                    x = in_b + (iy0 * p->in_w + ix0) * in_c;
                } else {
                    th_s16_gather(p, in_b, iy0, ix0, ky_lo, ky_hi, kx_lo, kx_hi, patch);
                    if (row_groups != 0) {
                        g_lo = ky_lo * row_groups;
                        g_hi = ky_hi * row_groups;
                    } else {
                        for (int32_t i = 0; i < ky_lo * len; ++i) {
                            patch[i] = 0;
                        }
                        for (int32_t i = ky_hi * len; i < k; ++i) {
                            patch[i] = 0;
                        }
                    }
                }
                if (rq->wide) {
                    th_s16_pixel_wide(rq, x, k, g_lo, g_hi, filter, out_c, out);
                } else {
                    th_s16_pixel(sat, rq, x, k, g_lo, g_hi, filter, out_c, out);
                }
                out += out_c;
            }
        }
    }
}

void th_s16_gemm_rows(const th_rq16_params *rq, const int16_t *input, int32_t rows, int32_t k,
                      const int8_t *filter, int32_t out_c, int16_t *output) {
    const int32_t sat = th_rq16_sat(rq);
    for (int32_t r = 0; r < rows; ++r) {
        const int16_t *x = input + r * k;
        int16_t *out = output + r * out_c;
        if (rq->wide) {
            th_s16_pixel_wide(rq, x, k, 0, k >> 2, filter, out_c, out);
        } else {
            th_s16_pixel(sat, rq, x, k, 0, k >> 2, filter, out_c, out);
        }
    }
}

th_status th_conv2d_s16_simd(const th_conv_params *p, const th_rq16_params *rq,
                             const int16_t *input, const int8_t *filter, int16_t *output) {
    if (p->depth_multiplier != 1) {
        return TH_ERROR;
    }
    /* A patch on the stack unless every patch is read in place (a 1 x k_w
     * window never cut on the left or right; int16x8.py conv_patch). */
    const int32_t last_ix = (p->out_w - 1) * p->stride_w - p->pad_w + (p->k_w - 1) * p->dil_w;
    const int32_t in_place =
        p->k_h == 1 && (p->k_w == 1 || (p->dil_w == 1 && p->pad_w == 0 && last_ix < p->in_w));
    int16_t patch[in_place ? 1 : p->k_h * p->k_w * p->in_c];
    th_conv2d_s16_simd_run(p, rq, input, filter, output, patch);
    return TH_OK;
}
