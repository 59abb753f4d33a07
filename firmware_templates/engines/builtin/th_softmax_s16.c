/* tinyhil builtin engine: SOFTMAX, int16 -> int16 (TFLM reference SoftmaxInt16). */
#include "th_int16.h"

/* TFLM LUTLookup: the high 9 bits index a 513-entry table, the low 7 interpolate. */
static inline int16_t th_lut_lookup_s16(int16_t value, const int16_t *lut) {
    const int32_t index = 256 + (value >> 7);
    const int32_t offset = value & 0x7f;
    const int32_t base = lut[index];
    const int32_t slope = lut[index + 1] - lut[index];
    return (int16_t)(base + ((slope * offset + 64) >> 7));
}

static inline int32_t th_clamp_i32(int32_t v, int32_t lo, int32_t hi) {
    return v < lo ? lo : (v > hi ? hi : v);
}

static inline int32_t th_clz32_s16(uint32_t v) {
    int32_t n = 0;
    if (v == 0) {
        return 32;
    }
    while ((v & 0x80000000u) == 0) {
        v <<= 1;
        ++n;
    }
    return n;
}

th_status th_softmax_s16(const th_softmax_s16_params *p, const int16_t *input, int16_t *output) {
    const int32_t depth = p->depth;
    for (int32_t row = 0; row < p->rows; ++row) {
        const int16_t *in = input + row * depth;
        int16_t *out = output + row * depth;
        int32_t max_v = INT16_MIN;
        for (int32_t c = 0; c < depth; ++c) {
            max_v = in[c] > max_v ? in[c] : max_v;
        }
        /* exp(x - max) in Q0.15, cached in the output row as TFLM does (element
         * c is read before it is written, so the output may alias the input). */
        int32_t sum = 0; /* Q16.15 */
        for (int32_t c = 0; c < depth; ++c) {
            /* [-65535, 0] rescaled to [-10, 0] in the table's int16 coordinates. */
            const int32_t scaled = th_mbqm(in[c] - max_v, p->input_multiplier, p->input_shift);
            const int16_t e = th_lut_lookup_s16(
                (int16_t)th_clamp_i32(scaled + 32767, INT16_MIN, INT16_MAX), p->exp_lut);
            out[c] = e;
            sum += e;
        }
        /* 1 / sum from the 1/(1 + x) table, x = sum normalised to [1, 2) minus one. */
        const int32_t headroom_plus_one = th_clz32_s16((uint32_t)sum);
        const int32_t shifted = (int32_t)((((int64_t)sum << (headroom_plus_one - 1)) + (1 << 13)) >> 14);
        const int32_t sym = shifted - ((1 << 15) + (1 << 16));
        const int32_t recip = th_lut_lookup_s16((int16_t)th_clamp_i32(sym, INT16_MIN, INT16_MAX),
                                                p->recip_lut);
        const int32_t right_shift = 31 - headroom_plus_one;
        const int64_t round = (int64_t)1 << (right_shift - 1);
        for (int32_t c = 0; c < depth; ++c) {
            const int32_t v = (int32_t)(((int64_t)out[c] * recip + round) >> right_shift);
            out[c] = (int16_t)th_clamp_i32(v, 0, INT16_MAX);
        }
    }
    return TH_OK;
}
