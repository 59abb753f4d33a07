/* tinyhil builtin engine: FULLY_CONNECTED, int16x8 (TFLM FullyConnected[PerChannel] int16). */
#include "th_int16.h"

static th_status th_fc_s16_impl(const th_fc_params *p, const int16_t *input, const int8_t *filter,
                                const int64_t *bias64, const int32_t *bias32, int acc32,
                                int16_t *output) {
    const int32_t depth = p->accum_depth;
    for (int32_t b = 0; b < p->batches; ++b) {
        const int16_t *in = input + b * depth;
        int16_t *out = output + b * p->out_depth;
        for (int32_t o = 0; o < p->out_depth; ++o) {
            const int8_t *w = filter + o * depth;
            /* Exact; an int32 accumulator (acc32) is this sum modulo 2^32. */
            int64_t acc = 0;
            for (int32_t d = 0; d < depth; ++d) {
                acc += (int32_t)(w[d] + p->filter_offset) * (int32_t)(in[d] + p->input_offset);
            }
            int32_t v;
            if (acc32) {
                uint32_t a = (uint32_t)acc;
                if (bias32 != 0) {
                    a += (uint32_t)bias32[o];
                }
                v = th_mbqm((int32_t)a, p->mult[o], p->shift[o]);
            } else {
                v = th_mbqm64(bias64 != 0 ? acc + bias64[o] : acc, p->mult[o], p->shift[o]);
            }
            out[o] = th_clamp_s16(v + p->output_offset, p->act_min, p->act_max);
        }
    }
    return TH_OK;
}

th_status th_fully_connected_s16(const th_fc_params *p, const int16_t *input, const int8_t *filter,
                                 const int64_t *bias, int16_t *output) {
    return th_fc_s16_impl(p, input, filter, bias, 0, 0, output);
}

th_status th_fully_connected_s16_acc32(const th_fc_params *p, const int16_t *input,
                                       const int8_t *filter, const int32_t *bias,
                                       int16_t *output) {
    return th_fc_s16_impl(p, input, filter, 0, bias, 1, output);
}
