/*
 * tinyhil builtin engine: int8 CONV_2D, DEPTHWISE_CONV_2D (depth multiplier 1)
 * and FULLY_CONNECTED for cores with Helium (MVE), through th_mve.h.
 *
 * The generator (--isa mve, chosen for cores with MVE) passes the weights in
 * their TFLite layout and folds the input offset into the bias:
 * bias_eff[c] = bias[c] + input_offset * (sum of channel c's weights), so the
 * kernels multiply raw int8 inputs (the same int32 sums as TFLM's
 * sum w * (x + input_offset) + bias, modulo 2^32 as TFLM's accumulator). A
 * padding tap reads the input zero point, whose product then cancels its part
 * of the folded bias: TFLM skips such a tap, which is the same sum.
 * Requantization is th_vrequant (th_mve.h): TFLM's arithmetic on four lanes,
 * or th_vrequant_fast_v when the layer's requant_mode says every shift is a
 * right shift (CONV_2D, DEPTHWISE_CONV_2D).
 */
#include "th_mve.h"
#include "th_mve_s8.h"

/* th_conv_params.requant_mode of a Helium CONV_2D or DEPTHWISE_CONV_2D layer: 0
 * (requant.EXACT), the general sequence; otherwise every shift is a right
 * shift by 1..31 and th_vrequant_fast_v gives the same integers
 * (requant.right_shifts_only). */
#define TH_MVE_RQ_EXACT 0
#define TH_MVE_RQ_FAST_SAT8 2 /* the fast form, and the clamp is the int8 range */

/* Requantize eight channels of one pixel held as even and odd lanes and store them
 * in channel order: with TH_MVE_RQ_FAST_SAT8 the clamp is the narrowing store's
 * saturation (fewer instructions, and no clamp vectors to keep in registers). */
static inline void th_vrequant_eo_store(int32_t mode, int8_t *out, th_s32x4 ae, th_s32x4 ao, th_s32x4 mue,
                                        th_s32x4 muo, th_s32x4 she, th_s32x4 sho, const th_conv_params *p) {
    if (mode == TH_MVE_RQ_FAST_SAT8) {
        th_vst_s8_eo_sat(out, th_vrequant_fast_noclamp(ae, mue, she, p->output_offset),
                         th_vrequant_fast_noclamp(ao, muo, sho, p->output_offset));
        return;
    }
    const th_s32x4 off = th_vdup(p->output_offset), lo = th_vdup(p->act_min), hi = th_vdup(p->act_max);
    if (mode != TH_MVE_RQ_EXACT) {
        th_vst_s8_eo(out, th_vrequant_fast_v(ae, mue, she, off, lo, hi), th_vrequant_fast_v(ao, muo, sho, off, lo, hi));
    } else {
        th_vst_s8_eo(out, th_vrequant_v(ae, mue, she, off, lo, hi), th_vrequant_v(ao, muo, sho, off, lo, hi));
    }
}

/* Requantize with th_vrequant_fast_v or th_vrequant_v by the layer's mode. */
static inline th_s32x4 th_vrequant_mode(int32_t mode, th_s32x4 acc, th_s32x4 mult, th_s32x4 shift, th_s32x4 off,
                                        th_s32x4 lo, th_s32x4 hi) {
    return mode != TH_MVE_RQ_EXACT ? th_vrequant_fast_v(acc, mult, shift, off, lo, hi)
                                   : th_vrequant_v(acc, mult, shift, off, lo, hi);
}


/* Four accumulators as one vector. */
static inline th_s32x4 th_vec4(int32_t a0, int32_t a1, int32_t a2, int32_t a3) {
    th_s32x4 v = th_vdup(a0);
    v = th_vsetlane(v, a1, 1);
    v = th_vsetlane(v, a2, 2);
    v = th_vsetlane(v, a3, 3);
    return v;
}

/* ------------------------------------ patches (CONV_2D), four-row dot products (CONV_2D, FC) */

/* n bytes from src to dst, 16 at a time (the last predicated). */
static inline void th_copy_s8(int8_t *dst, const int8_t *src, int32_t n) {
#if TH_MVE_NATIVE
    /* A tail-predicated low-overhead loop: 3 instructions per 16 bytes. */
    __asm__ volatile(
        "dlstp.8 lr, %[n]\n\t"
        "1:\n\t"
        "vldrb.8 q0, [%[s]], #16\n\t"
        "vstrb.8 q0, [%[d]], #16\n\t"
        "letp lr, 1b\n\t"
        : [s] "+r"(src), [d] "+r"(dst)
        : [n] "r"(n)
        : "q0", "lr", "memory");
    return;
#endif
    /* n >= 1; a do-while, so that a short run (a tap's channels) is one step. */
    do {
        const th_pred m = th_vctp8((uint32_t)n);
        th_vst_s8_p(dst, th_vld_s8_z(src, m), m);
        n -= 16;
        src += 16;
        dst += 16;
    } while (n > 0);
}

/* n bytes of v at dst. */
static inline void th_fill_s8(int8_t *dst, th_s8x16 v, int32_t n) {
    do {
        th_vst_s8_p(dst, v, th_vctp8((uint32_t)n));
        n -= 16;
        dst += 16;
    } while (n > 0);
}

/* Output pixel n's patch (order [k_y][k_x][in_c], as a weight row): a pointer
 * into the input when the patch is one contiguous run inside the image (a
 * pointwise conv), else its K bytes written to col, padding taps as the zero point. */
static const int8_t *th_patch(const th_conv_params *p, const int8_t *input, int32_t n, int8_t *col,
                              th_s8x16 zp) {
    const int32_t in_c = p->in_c;
    const int32_t plane = p->out_h * p->out_w;
    const int32_t b = n / plane;
    const int32_t oy = (n - b * plane) / p->out_w;
    const int32_t ox = n - b * plane - oy * p->out_w;
    const int32_t iy0 = oy * p->stride_h - p->pad_h;
    const int32_t ix0 = ox * p->stride_w - p->pad_w;
    const int8_t *in_b = input + b * p->in_h * p->in_w * in_c;
    if (p->k_h == 1 && p->k_w == 1 && iy0 >= 0 && ix0 >= 0 && iy0 < p->in_h && ix0 < p->in_w) {
        return in_b + (iy0 * p->in_w + ix0) * in_c;
    }
    int8_t *dst = col;
    const int32_t run = p->k_w * in_c;
    const int whole_rows = p->dil_w == 1 && ix0 >= 0 && ix0 + p->k_w <= p->in_w;
    for (int32_t ky = 0; ky < p->k_h; ++ky) {
        const int32_t iy = iy0 + ky * p->dil_h;
        if (iy < 0 || iy >= p->in_h) {
            th_fill_s8(dst, zp, run);
        } else if (whole_rows) { /* the row's taps are one run of the input */
            th_copy_s8(dst, in_b + (iy * p->in_w + ix0) * in_c, run);
        } else {
            for (int32_t kx = 0; kx < p->k_w; ++kx) {
                const int32_t ix = ix0 + kx * p->dil_w;
                if (ix >= 0 && ix < p->in_w) {
                    th_copy_s8(dst + kx * in_c, in_b + (iy * p->in_w + ix) * in_c, in_c);
                } else {
                    th_fill_s8(dst + kx * in_c, zp, in_c);
                }
            }
        }
        dst += run;
    }
    return col;
}

/* Channels per pass of th_conv2d_s8_mve: their sums for the four pixels wait in
 * a stack buffer (4 * 32 int32), then are requantized four channels at a time. */
#define TH_CONV_MVE_CHUNK 32

/* *a_i += sum over j < k of s[j] * p_i[j], for four rows p_i (four patches against a
 * weight row, or four weight rows against an input row): 16 multiply-adds per
 * VMLADAVA. On Helium a tail-predicated low-overhead loop (DLSTP.8/LETP: the last
 * partial vector is predicated by the loop itself, no separate tail): 9
 * instructions per 64 MACs. VMLADAVA accumulates into even registers only, hence
 * the fixed accumulator registers. */
static inline __attribute__((always_inline)) void th_mve_dot4(const int8_t *s, const int8_t *p0, const int8_t *p1,
                                                              const int8_t *p2, const int8_t *p3, int32_t k,
                                                              int32_t *a0, int32_t *a1, int32_t *a2, int32_t *a3) {
#if TH_MVE_NATIVE
    register int32_t r0 __asm__("r0") = *a0;
    register int32_t r2 __asm__("r2") = *a1;
    register int32_t r4 __asm__("r4") = *a2;
    register int32_t r6 __asm__("r6") = *a3;
    __asm__ volatile(
        "dlstp.8 lr, %[k]\n\t"
        "1:\n\t"
        "vldrb.8 q0, [%[s]], #16\n\t"
        "vldrb.8 q1, [%[p0]], #16\n\t"
        "vmladava.s8 %[a0], q0, q1\n\t"
        "vldrb.8 q2, [%[p1]], #16\n\t"
        "vmladava.s8 %[a1], q0, q2\n\t"
        "vldrb.8 q1, [%[p2]], #16\n\t"
        "vmladava.s8 %[a2], q0, q1\n\t"
        "vldrb.8 q2, [%[p3]], #16\n\t"
        "vmladava.s8 %[a3], q0, q2\n\t"
        "letp lr, 1b\n\t"
        : [a0] "+r"(r0), [a1] "+r"(r2), [a2] "+r"(r4), [a3] "+r"(r6), [s] "+r"(s), [p0] "+r"(p0), [p1] "+r"(p1),
          [p2] "+r"(p2), [p3] "+r"(p3)
        : [k] "r"(k)
        : "q0", "q1", "q2", "lr", "memory");
    *a0 = r0;
    *a1 = r2;
    *a2 = r4;
    *a3 = r6;
#else
    const int32_t full = k & ~15;
    int32_t x0 = *a0, x1 = *a1, x2 = *a2, x3 = *a3;
    for (int32_t d = 0; d < k; d += 16) {
        const th_pred m = d < full ? (th_pred)0xFFFFu : th_vctp8((uint32_t)(k - d));
        const th_s8x16 v = th_vld_s8_z(s + d, m);
        x0 = th_vmladava(x0, v, th_vld_s8_z(p0 + d, m));
        x1 = th_vmladava(x1, v, th_vld_s8_z(p1 + d, m));
        x2 = th_vmladava(x2, v, th_vld_s8_z(p2 + d, m));
        x3 = th_vmladava(x3, v, th_vld_s8_z(p3 + d, m));
    }
    *a0 = x0;
    *a1 = x1;
    *a2 = x2;
    *a3 = x3;
#endif
}

/* ---------------------------------------------------------------- FULLY_CONNECTED */

th_status th_fully_connected_s8_mve(const th_fc_params *p, const int8_t *input, const int8_t *filter,
                                    const int32_t *bias_eff, int8_t *output) {
    const int32_t depth = p->accum_depth;
    const int32_t out_depth = p->out_depth;
    const int32_t out_off = p->output_offset;
    const int32_t act_min = p->act_min;
    const int32_t act_max = p->act_max;
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *in = input + b * depth;
        int8_t *out = output + b * out_depth;
        for (int32_t o = 0; o < out_depth; o += 4) {
            const int32_t n = TH_MIN(4, out_depth - o);
            /* Four weight rows against the input; rows past the last repeat it (their
             * results are not stored). */
            const int8_t *w0 = filter + o * depth;
            int32_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
            th_mve_dot4(in, w0, n > 1 ? w0 + depth : w0, n > 2 ? w0 + 2 * depth : w0,
                        n > 3 ? w0 + 3 * depth : w0, depth, &a0, &a1, &a2, &a3);
            const th_pred lanes = th_vctp32((uint32_t)n);
            const th_s32x4 acc = th_vadd(th_vld_s32_z(bias_eff + o, lanes), th_vec4(a0, a1, a2, a3));
            const th_s32x4 y = th_vrequant(acc, th_vld_s32_z(p->mult + o, lanes),
                                           th_vld_s32_z(p->shift + o, lanes), out_off, act_min, act_max);
            th_vst_s8w_p(out + o, y, lanes);
        }
    }
    return TH_OK;
}

/* ---------------------------------------------------------------- CONV_2D */

/* Sums of channels [0, n) of `w` (rows of k weights) against four patches into
 * acc[i * TH_CONV_MVE_CHUNK + channel]; out of line, so that the loop keeps its
 * pointers in registers. */
__attribute__((noinline)) static void th_conv_mve_dots(const int8_t *w, int32_t k, const int8_t *c0,
                                                       const int8_t *c1, const int8_t *c2, const int8_t *c3,
                                                       const int32_t *bias_eff, int32_t n, int32_t *acc) {
    for (int32_t oc = 0; oc < n; ++oc, w += k) {
        int32_t a0 = bias_eff[oc];
        int32_t a1 = a0, a2 = a0, a3 = a0;
        th_mve_dot4(w, c0, c1, c2, c3, k, &a0, &a1, &a2, &a3);
        acc[oc] = a0;
        acc[TH_CONV_MVE_CHUNK + oc] = a1;
        acc[2 * TH_CONV_MVE_CHUNK + oc] = a2;
        acc[3 * TH_CONV_MVE_CHUNK + oc] = a3;
    }
}

/* scratch holds 4 * K bytes (K = k_h * k_w * in_c): four patches. */
th_status th_conv2d_s8_mve(const th_conv_params *p, const int8_t *input, const int8_t *filter,
                           const int32_t *bias_eff, int8_t *output, int8_t *scratch) {
    const int32_t out_c = p->out_c;
    const int32_t k = p->k_h * p->k_w * p->in_c;
    const int32_t pixels = p->batches * p->out_h * p->out_w;
    const th_s8x16 zp = th_vdup_s8((int8_t)(-p->input_offset));
    const int32_t out_off = p->output_offset;
    const int32_t act_min = p->act_min;
    const int32_t act_max = p->act_max;
    int32_t acc[4 * TH_CONV_MVE_CHUNK];
    const th_s32x4 off_v = th_vdup(out_off), lo_v = th_vdup(act_min), hi_v = th_vdup(act_max);
    if (p->depth_multiplier != 1) {
        return TH_ERROR;
    }
    for (int32_t px = 0; px < pixels; px += 4) {
        const int32_t n = TH_MIN(4, pixels - px);
        /* Missing pixels repeat the first; their results are not stored. */
        const int8_t *c0 = th_patch(p, input, px, scratch, zp);
        const int8_t *c1 = n > 1 ? th_patch(p, input, px + 1, scratch + k, zp) : c0;
        const int8_t *c2 = n > 2 ? th_patch(p, input, px + 2, scratch + 2 * k, zp) : c0;
        const int8_t *c3 = n > 3 ? th_patch(p, input, px + 3, scratch + 3 * k, zp) : c0;
        int8_t *out = output + px * out_c;
        for (int32_t oc0 = 0; oc0 < out_c; oc0 += TH_CONV_MVE_CHUNK) {
            const int32_t nc = TH_MIN(TH_CONV_MVE_CHUNK, out_c - oc0);
            th_conv_mve_dots(filter + oc0 * k, k, c0, c1, c2, c3, bias_eff + oc0, nc, acc);
            /* Four channels of one pixel per vector (contiguous outputs); each
             * channel group's multipliers and shifts are loaded once for the
             * pixels. */
            const int32_t *mult = p->mult + oc0, *shift = p->shift + oc0;
            int8_t *o = out + oc0;
            int32_t c = 0;
            if (p->requant_mode != TH_MVE_RQ_EXACT) {
                for (; c + 4 <= nc; c += 4) {
                    const th_s32x4 mu = th_vld_s32(mult + c), sh = th_vld_s32(shift + c);
                    for (int32_t i = 0; i < n; ++i) {
                        th_vst_s8w(o + i * out_c + c, th_vrequant_fast_v(th_vld_s32(acc + i * TH_CONV_MVE_CHUNK + c),
                                                                         mu, sh, off_v, lo_v, hi_v));
                    }
                }
            } else {
                for (; c + 4 <= nc; c += 4) {
                    const th_s32x4 mu = th_vld_s32(mult + c), sh = th_vld_s32(shift + c);
                    for (int32_t i = 0; i < n; ++i) {
                        th_vst_s8w(o + i * out_c + c, th_vrequant_v(th_vld_s32(acc + i * TH_CONV_MVE_CHUNK + c),
                                                                    mu, sh, off_v, lo_v, hi_v));
                    }
                }
            }
            if (c < nc) {
                const th_pred m = th_vctp32((uint32_t)(nc - c));
                const th_s32x4 mu = th_vld_s32_z(mult + c, m), sh = th_vld_s32_z(shift + c, m);
                for (int32_t i = 0; i < n; ++i) {
                    th_vst_s8w_p(o + i * out_c + c,
                                 th_vrequant_mode(p->requant_mode, th_vld_s32_z(acc + i * TH_CONV_MVE_CHUNK + c, m),
                                                  mu, sh, off_v, lo_v, hi_v), m);
                }
            }
        }
    }
    return TH_OK;
}

/* ---------------------------------------------------------------- DEPTHWISE_CONV_2D */

#define TH_DW_MVE_MAX_TAPS 32


/* Output channels [c, c + 4 * nv) of one pixel (nv = 1, 2 or 4 vectors of four
 * int32 lanes; `m` predicates the last vector when channels run out). Blocks of
 * eight channels take int16 lanes as th_dw_pair does. */
static inline __attribute__((always_inline)) void th_dw_block(
    const th_conv_params *p, const int8_t *const *tap, int32_t taps, const int8_t *filter, const int32_t *bias_eff,
    int8_t *out, int32_t c, int32_t nv, th_pred m, const int32_t mode) {
    const int32_t ch = p->in_c;
    const int8_t *w = filter + c;
    if (nv == 1) {
        const th_s32x4 off = th_vdup(p->output_offset), lo = th_vdup(p->act_min), hi = th_vdup(p->act_max);
        th_s32x4 a0 = th_vld_s32_z(bias_eff + c, m);
        for (int32_t i = 0; i < taps; ++i, w += ch) {
            a0 = th_vadd(a0, th_vmul(th_vld_s8w_z(tap[i] + c, m), th_vld_s8w_z(w, m)));
        }
        th_vst_s8w_p(out + c, th_vrequant_mode(mode, a0, th_vld_s32_z(p->mult + c, m), th_vld_s32_z(p->shift + c, m),
                                               off, lo, hi), m);
        return;
    }
    th_s32x4 e0, o0, e1 = th_vdup(0), o1 = th_vdup(0), mue, muo, she, sho;
    th_vld2_s32(bias_eff + c, &e0, &o0);
    if (nv > 2) {
        th_vld2_s32(bias_eff + c + 8, &e1, &o1);
    }
    for (int32_t i = 0; i < taps; ++i, w += ch) {
        const int8_t *x = tap[i] + c;
        const th_s16x8 w0 = th_vld_s8h(w), x0 = th_vld_s8h(x);
        e0 = th_vadd(e0, th_vmullb(x0, w0));
        o0 = th_vadd(o0, th_vmullt(x0, w0));
        if (nv > 2) {
            const th_s16x8 w1 = th_vld_s8h(w + 8), x1 = th_vld_s8h(x + 8);
            e1 = th_vadd(e1, th_vmullb(x1, w1));
            o1 = th_vadd(o1, th_vmullt(x1, w1));
        }
    }
    th_vld2_s32(p->mult + c, &mue, &muo);
    th_vld2_s32(p->shift + c, &she, &sho);
    th_vrequant_eo_store(mode, out + c, e0, o0, mue, muo, she, sho, p);
    if (nv > 2) {
        th_vld2_s32(p->mult + c + 8, &mue, &muo);
        th_vld2_s32(p->shift + c + 8, &she, &sho);
        th_vrequant_eo_store(mode, out + c + 8, e1, o1, mue, muo, she, sho, p);
    }
}

/* Two output pixels (taps ta[] and tb[]), channels [c, c + 4 * nv) (nv = 1 or 2;
 * `m` predicates the vector when nv is 1): each weight vector loaded once feeds
 * both pixels. */
static inline __attribute__((always_inline)) void th_dw_pair(
    const th_conv_params *p, const int8_t *const *ta, const int8_t *const *tb, int32_t taps, const int8_t *filter,
    const int32_t *bias_eff, int8_t *out0, int8_t *out1, int32_t c, int32_t nv, th_pred m, const int32_t mode) {
    const int32_t ch = p->in_c;
    const int8_t *w = filter + c;
    if (nv > 1) {
        /* Eight channels as int16 lanes: VMULLB/VMULLT multiply the even and
         * the odd channels to 32 bits, so a tap is three loads, four
         * multiplies and four adds for 32 MACs (int32 lanes: six loads, 21
         * instructions a tap in all, now 15). The accumulators, multipliers
         * and shifts are in even/odd order (VLD2); the stores interleave. */
        th_s32x4 ae, ao, mue, muo, she, sho;
        th_vld2_s32(bias_eff + c, &ae, &ao);
        th_s32x4 be = ae, bo = ao;
        for (int32_t i = 0; i < taps; ++i, w += ch) {
            const th_s16x8 wv = th_vld_s8h(w);
            const th_s16x8 xv = th_vld_s8h(ta[i] + c);
            const th_s16x8 yv = th_vld_s8h(tb[i] + c);
            ae = th_vadd(ae, th_vmullb(xv, wv));
            ao = th_vadd(ao, th_vmullt(xv, wv));
            be = th_vadd(be, th_vmullb(yv, wv));
            bo = th_vadd(bo, th_vmullt(yv, wv));
        }
        th_vld2_s32(p->mult + c, &mue, &muo);
        th_vld2_s32(p->shift + c, &she, &sho);
        th_vrequant_eo_store(mode, out0 + c, ae, ao, mue, muo, she, sho, p);
        th_vrequant_eo_store(mode, out1 + c, be, bo, mue, muo, she, sho, p);
        return;
    }
    const th_s32x4 off = th_vdup(p->output_offset), lo = th_vdup(p->act_min), hi = th_vdup(p->act_max);
    th_s32x4 a0 = th_vld_s32_z(bias_eff + c, m), a1 = a0;
    for (int32_t i = 0; i < taps; ++i, w += ch) {
        const th_s32x4 w0 = th_vld_s8w_z(w, m);
        a0 = th_vadd(a0, th_vmul(th_vld_s8w_z(ta[i] + c, m), w0));
        a1 = th_vadd(a1, th_vmul(th_vld_s8w_z(tb[i] + c, m), w0));
    }
    const th_s32x4 mu = th_vld_s32_z(p->mult + c, m), sh = th_vld_s32_z(p->shift + c, m);
    th_vst_s8w_p(out0 + c, th_vrequant_mode(mode, a0, mu, sh, off, lo, hi), m);
    th_vst_s8w_p(out1 + c, th_vrequant_mode(mode, a1, mu, sh, off, lo, hi), m);
}

/* Output pixel (oy, ox)'s tap pointers: interior pixels from the per-layer offsets,
 * others per tap, a padding tap at zp_row. */
static inline void th_dw_taps(const th_conv_params *p, const int8_t *in_b, const int32_t *tap_off, int32_t oy,
                              int32_t ox, const int8_t *zp_row, const int8_t **tap) {
    const int32_t ch = p->in_c;
    const int32_t iy0 = oy * p->stride_h - p->pad_h;
    const int32_t ix0 = ox * p->stride_w - p->pad_w;
    const int32_t taps = p->k_h * p->k_w;
    if (iy0 >= 0 && ix0 >= 0 && iy0 + (p->k_h - 1) * p->dil_h < p->in_h && ix0 + (p->k_w - 1) * p->dil_w < p->in_w) {
        const int8_t *x0 = in_b + (iy0 * p->in_w + ix0) * ch;
        for (int32_t t = 0; t < taps; ++t) {
            tap[t] = x0 + tap_off[t];
        }
        return;
    }
    int32_t t = 0;
    for (int32_t ky = 0; ky < p->k_h; ++ky) {
        const int32_t iy = iy0 + ky * p->dil_h;
        for (int32_t kx = 0; kx < p->k_w; ++kx) {
            const int32_t ix = ix0 + kx * p->dil_w;
            const int inside = iy >= 0 && iy < p->in_h && ix >= 0 && ix < p->in_w;
            tap[t++] = inside ? in_b + (iy * p->in_w + ix) * ch : zp_row;
        }
    }
}

/* Depth multiplier 1, at most TH_DW_MVE_MAX_TAPS taps. zp_row holds in_c
 * bytes of the input zero point: the row a padding tap reads. */
/* The layer with its requantization mode: a copy where it is the constant
 * TH_MVE_RQ_FAST_SAT8 (the MLPerf Tiny layers'), whose blocks then carry no mode
 * branches and hold no clamp vectors, and one for the others. */
static inline __attribute__((always_inline)) th_status th_dw_mve_layer(
    const th_conv_params *p, const int8_t *input, const int8_t *filter, const int32_t *bias_eff, int8_t *output,
    const int8_t *zp_row, const int32_t mode) {
    const int32_t ch = p->in_c;
    const int32_t taps = p->k_h * p->k_w;
    const int8_t *tap[TH_DW_MVE_MAX_TAPS];
    int32_t tap_off[TH_DW_MVE_MAX_TAPS]; /* an interior pixel's taps, from its first */
    if (p->depth_multiplier != 1 || taps > TH_DW_MVE_MAX_TAPS) {
        return TH_ERROR;
    }
    for (int32_t ky = 0, t = 0; ky < p->k_h; ++ky) {
        for (int32_t kx = 0; kx < p->k_w; ++kx) {
            tap_off[t++] = (ky * p->dil_h * p->in_w + kx * p->dil_w) * ch;
        }
    }
    const int8_t *tap2[TH_DW_MVE_MAX_TAPS];
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *in_b = input + b * p->in_h * p->in_w * ch;
        /* Pixels two at a time in raster order (a row's odd last pixel pairs
         * with the next row's first): each weight vector loaded feeds both. */
        const int32_t plane = p->out_h * p->out_w;
        int8_t *out = output + b * plane * ch;
        int32_t oy = 0, ox = 0;
        int32_t n = 0;
        for (; n + 2 <= plane; n += 2, out += 2 * ch) {
            th_dw_taps(p, in_b, tap_off, oy, ox, zp_row, tap);
            if (++ox == p->out_w) {
                ox = 0;
                ++oy;
            }
            th_dw_taps(p, in_b, tap_off, oy, ox, zp_row, tap2);
            if (++ox == p->out_w) {
                ox = 0;
                ++oy;
            }
            int32_t c = 0;
            for (; c + 8 <= ch; c += 8) {
                th_dw_pair(p, tap, tap2, taps, filter, bias_eff, out, out + ch, c, 2, 0xFFFFu, mode);
            }
            for (; c < ch; c += 4) {
                th_dw_pair(p, tap, tap2, taps, filter, bias_eff, out, out + ch, c, 1,
                           th_vctp32((uint32_t)(ch - c)), mode);
            }
        }
        if (n < plane) { /* an odd last pixel */
            th_dw_taps(p, in_b, tap_off, oy, ox, zp_row, tap);
            int32_t c = 0;
            for (; c + 16 <= ch; c += 16) {
                th_dw_block(p, tap, taps, filter, bias_eff, out, c, 4, 0xFFFFu, mode);
            }
            if (c + 8 <= ch) {
                th_dw_block(p, tap, taps, filter, bias_eff, out, c, 2, 0xFFFFu, mode);
                c += 8;
            }
            for (; c < ch; c += 4) {
                th_dw_block(p, tap, taps, filter, bias_eff, out, c, 1, th_vctp32((uint32_t)(ch - c)), mode);
            }
        }
    }
    return TH_OK;
}

th_status th_depthwise_conv2d_s8_mve(const th_conv_params *p, const int8_t *input, const int8_t *filter,
                                     const int32_t *bias_eff, int8_t *output, const int8_t *zp_row) {
    if (p->requant_mode == TH_MVE_RQ_FAST_SAT8) {
        return th_dw_mve_layer(p, input, filter, bias_eff, output, zp_row, TH_MVE_RQ_FAST_SAT8);
    }
    return th_dw_mve_layer(p, input, filter, bias_eff, output, zp_row, p->requant_mode);
}
