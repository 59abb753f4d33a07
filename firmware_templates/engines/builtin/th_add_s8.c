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
    TH_BCAST_APPLY(th_add_one, p, input1, input2, output);
    return TH_OK;
}
