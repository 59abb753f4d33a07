/* tinyhil builtin engine: ADD, int16 (TFLM's general int16 path, AddElementwise/BroadcastAdd6DSlow). */
#include "th_int16.h"

static inline int16_t th_add_one_s16(const th_add_params *p, int32_t a, int32_t b) {
    /* Symmetric inputs: |a| <= 2^15, so the left shift by 15 stays inside int32.
     * With a zero point it can wrap, as TFLM's int32 arithmetic does. */
    const int32_t x1 = (int32_t)((uint32_t)(a + p->input1_offset) << p->left_shift);
    const int32_t x2 = (int32_t)((uint32_t)(b + p->input2_offset) << p->left_shift);
    const int32_t s1 = th_mbqm_smaller_than_one(x1, p->input1_multiplier, p->input1_shift);
    const int32_t s2 = th_mbqm_smaller_than_one(x2, p->input2_multiplier, p->input2_shift);
    const int32_t out = th_mbqm_smaller_than_one(s1 + s2, p->output_multiplier, p->output_shift)
                        + p->output_offset;
    return th_clamp_s16(out, p->act_min, p->act_max);
}

th_status th_add_s16(const th_add_params *p, const int16_t *input1, const int16_t *input2,
                     int16_t *output) {
    TH_BCAST_APPLY_T(int16_t, th_add_one_s16, p, input1, input2, output);
    return TH_OK;
}
