/* tinyhil builtin engine: ADD, int8. */
#include "th_elementwise.h"
#include "th_mve.h"
#include "th_requant.h"

static inline int8_t th_add_one(const th_add_params *p, int32_t a, int32_t b) {
    /* |a + offset| <= 255, so the left shift by 20 stays inside int32. */
    const int32_t x1 = (a + p->input1_offset) * ((int32_t)1 << p->left_shift);
    const int32_t x2 = (b + p->input2_offset) * ((int32_t)1 << p->left_shift);
    const int32_t s1 = th_mbqm_smaller_than_one(x1, p->input1_multiplier, p->input1_shift);
    const int32_t s2 = th_mbqm_smaller_than_one(x2, p->input2_multiplier, p->input2_shift);
    const int32_t out = th_mbqm_smaller_than_one(s1 + s2, p->output_multiplier, p->output_shift)
                        + p->output_offset;
    return th_clamp_s8(out, p->act_min, p->act_max);
}

/*
 * Equal shapes with the generator's tables: an int8 input has 256 values, so
 * each input's rescaling (a shift and a rounding multiply, the per-element
 * bulk of th_add_one) is one table read; the sum's requantization is th_requant_out,
 * with the fast form where the generator proved it exact. Always inlined per mode.
 */
static inline __attribute__((always_inline)) void th_add_lut(const th_add_params *p, const int8_t *a,
                                                             const int8_t *b, int8_t *out, int32_t n,
                                                             const int32_t mode) {
    const int32_t *const l1 = p->lut1 + 128;
    const int32_t *const l2 = p->lut2 + 128;
    const int32_t m = p->output_multiplier, s = p->output_shift, off = p->output_offset;
    const int32_t lo = p->act_min, hi = p->act_max;
    int32_t i = 0;
    for (; i + 2 <= n; i += 2) {
        const int32_t x0 = l1[a[i]] + l2[b[i]];
        const int32_t x1 = l1[a[i + 1]] + l2[b[i + 1]];
        out[i] = th_requant_out(mode, x0, m, s, off, lo, hi);
        out[i + 1] = th_requant_out(mode, x1, m, s, off, lo, hi);
    }
    if (i < n) {
        out[i] = th_requant_out(mode, l1[a[i]] + l2[b[i]], m, s, off, lo, hi);
    }
}

#if TH_MVE_NATIVE
/* Helium: four elements per step, the tables read with gathers, th_vrequant (TFLM's
 * arithmetic, equal to every th_requant_out mode where that mode applies). */
static void th_add_lut_mve(const th_add_params *p, const int8_t *a, const int8_t *b, int8_t *out, int32_t n) {
    const th_s32x4 mult = th_vdup(p->output_multiplier), shift = th_vdup(p->output_shift);
    const th_s32x4 off = th_vdup(p->output_offset), lo = th_vdup(p->act_min), hi = th_vdup(p->act_max);
    const th_s32x4 bias = th_vdup(128);
    for (int32_t i = 0; i < n; i += 4) {
        const th_pred m = th_vctp32((uint32_t)(n - i));
        const th_u32x4 ia = th_vas_u32(th_vadd(th_vld_s8w_z(a + i, m), bias));
        const th_u32x4 ib = th_vas_u32(th_vadd(th_vld_s8w_z(b + i, m), bias));
        const th_s32x4 x = th_vadd(th_vgather_s32_z(p->lut1, ia, m), th_vgather_s32_z(p->lut2, ib, m));
        th_vst_s8w_p(out + i, th_vrequant_v(x, mult, shift, off, lo, hi), m);
    }
}
#endif

th_status th_add_s8(const th_add_params *p, const int8_t *input1, const int8_t *input2,
                    int8_t *output) {
    if (p->lut1 != 0 && p->ndims == 1) {
        const int32_t n = p->shape[0];
#if TH_MVE_NATIVE
        th_add_lut_mve(p, input1, input2, output, n);
        return TH_OK;
#endif
        if (p->requant_mode == TH_RQ_FAST_SAT8) {
            th_add_lut(p, input1, input2, output, n, TH_RQ_FAST_SAT8);
        } else if (p->requant_mode == TH_RQ_FAST) {
            th_add_lut(p, input1, input2, output, n, TH_RQ_FAST);
        } else {
            th_add_lut(p, input1, input2, output, n, TH_RQ_EXACT);
        }
        return TH_OK;
    }
    TH_BCAST_APPLY(th_add_one, p, input1, input2, output);
    return TH_OK;
}
