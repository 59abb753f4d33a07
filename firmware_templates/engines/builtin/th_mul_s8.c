/* tinyhil builtin engine: MUL, int8. */
#include "th_elementwise.h"

static inline int8_t th_mul_one(const th_mul_params *p, int32_t a, int32_t b) {
    const int32_t prod = (a + p->input1_offset) * (b + p->input2_offset);
    const int32_t out = th_mbqm(prod, p->output_multiplier, p->output_shift) + p->output_offset;
    return th_clamp_s8(out, p->act_min, p->act_max);
}

th_status th_mul_s8(const th_mul_params *p, const int8_t *input1, const int8_t *input2,
                    int8_t *output) {
    TH_BCAST_APPLY(th_mul_one, p, input1, input2, output);
    return TH_OK;
}
