/* tinyhil builtin engine: ADD, int8. */
#include "th_elementwise.h"

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

th_status th_add_s8(const th_add_params *p, const int8_t *input1, const int8_t *input2,
                    int8_t *output) {
    const int32_t last = p->ndims - 1;
    const int32_t n = p->shape[last];
    const int32_t st1 = p->stride1[last];
    const int32_t st2 = p->stride2[last];
    int32_t idx[TH_BCAST_MAX_DIMS] = {0};
    int32_t off1 = 0;
    int32_t off2 = 0;
    do {
        const int8_t *a = input1 + off1;
        const int8_t *b = input2 + off2;
        if (st1 == 1 && st2 == 1) {
            for (int32_t i = 0; i < n; ++i) {
                output[i] = th_add_one(p, a[i], b[i]);
            }
        } else if (st2 == 0) {
            const int32_t b0 = b[0];
            for (int32_t i = 0; i < n; ++i) {
                output[i] = th_add_one(p, a[i * st1], b0);
            }
        } else {
            const int32_t a0 = a[0];
            for (int32_t i = 0; i < n; ++i) {
                output[i] = th_add_one(p, st1 == 0 ? a0 : a[i * st1], b[i * st2]);
            }
        }
        output += n;
    } while (th_bcast_next(p->ndims, p->shape, p->stride1, p->stride2, idx, &off1, &off2));
    return TH_OK;
}
