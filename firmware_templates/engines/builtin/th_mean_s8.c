/* tinyhil builtin engine: MEAN, int8. */
#include "th_mean.h"

/* Advance a row-major multi-index by one; returns the change of the offset. */
static int32_t th_mean_advance(int32_t n, const int32_t *dims, const int32_t *strides, int32_t *idx) {
    int32_t delta = 0;
    for (int32_t d = n - 1; d >= 0; --d) {
        idx[d] += 1;
        if (idx[d] < dims[d]) {
            return delta + strides[d];
        }
        idx[d] = 0;
        delta -= strides[d] * (dims[d] - 1);
    }
    return delta;
}

th_status th_mean_s8(const th_mean_params *p, const int8_t *input, int8_t *output) {
    int32_t outer_idx[TH_MEAN_MAX_DIMS];
    int32_t inner_idx[TH_MEAN_MAX_DIMS];
    if (p->n_outer > TH_MEAN_MAX_DIMS || p->n_inner > TH_MEAN_MAX_DIMS || p->count <= 0) {
        return TH_ERROR;
    }
    for (int32_t d = 0; d < p->n_outer; ++d) {
        outer_idx[d] = 0;
    }
    /* The zero-point correction, wrapped to 32 bits as TFLM's int32 cast does. */
    const uint32_t zp_total = (uint32_t)p->input_zp * (uint32_t)p->count;
    int32_t base = 0;
    for (int32_t o = 0; o < p->num_outputs; ++o) {
        for (int32_t d = 0; d < p->n_inner; ++d) {
            inner_idx[d] = 0;
        }
        /* Sum with 32-bit wrap-around (order-independent, like TFLM's). */
        uint32_t acc = 0;
        int32_t off = base;
        for (int32_t r = 0; r < p->count; ++r) {
            acc += (uint32_t)(int32_t)input[off];
            off += th_mean_advance(p->n_inner, p->inner_dims, p->inner_strides, inner_idx);
        }
        const int32_t centered = (int32_t)(acc - zp_total);
        const int32_t v = th_mbqm(centered, p->mult, p->shift) + p->output_zp;
        output[o] = th_clamp_s8(v, INT8_MIN, INT8_MAX);
        base += th_mean_advance(p->n_outer, p->outer_dims, p->outer_strides, outer_idx);
    }
    return TH_OK;
}
