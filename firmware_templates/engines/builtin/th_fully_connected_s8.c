/* tinyhil builtin engine: FULLY_CONNECTED, int8. */
#include "th_fully_connected.h"

th_status th_fully_connected_s8(const th_fc_params *p, const int8_t *input, const int8_t *filter,
                                const int32_t *bias, int8_t *output) {
    const int32_t depth = p->accum_depth;
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *in = input + b * depth;
        int8_t *out = output + b * p->out_depth;
        for (int32_t o = 0; o < p->out_depth; ++o) {
            const int8_t *w = filter + o * depth;
            int32_t acc = 0;
            for (int32_t d = 0; d < depth; ++d) {
                acc += (w[d] + p->filter_offset) * (in[d] + p->input_offset);
            }
            if (bias != 0) {
                acc += bias[o];
            }
            acc = th_mbqm(acc, p->mult[o], p->shift[o]) + p->output_offset;
            out[o] = th_clamp_s8(acc, p->act_min, p->act_max);
        }
    }
    return TH_OK;
}
