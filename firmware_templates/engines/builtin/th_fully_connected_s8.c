/* tinyhil builtin engine: FULLY_CONNECTED, int8. */
#include "th_fully_connected.h"
#include "th_requant.h"
#include "th_simd.h"

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

/*
 * The same arithmetic for symmetric weights (filter_offset 0), restructured
 * for SMLAD: each input row is widened once into int16 with the input
 * offset added, laid out per group of four as (x0, x2), (x1, x3), which is
 * what SXTB16 and SXTB16 ROR #8 make of a weight word w0..w3. Rows of
 * weights are zero-padded to dp = depth rounded up to 8 and interleaved by
 * pairs of outputs, per group of 4 (fully_connected.py fc_weights); an odd
 * last output row follows alone.
 */
th_status th_fully_connected_s8_simd(const th_fc_params *p, const int8_t *input,
                                     const int8_t *filter, const int32_t *bias, int8_t *output,
                                     int16_t *scratch) {
    const int32_t depth = p->accum_depth;
    const int32_t dp = (depth + 7) & ~7;
    const int32_t out_depth = p->out_depth;
    const uint32_t off2 = th_dup16(p->input_offset);
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *in = input + b * depth;
        int8_t *out = output + b * out_depth;
        int32_t d = 0;
        for (; d + 4 <= depth; d += 4) {
            const uint32_t v = th_read_s8x4(in + d);
            th_write_s16x2(scratch + d, th_sxtab16(off2, v));
            th_write_s16x2(scratch + d + 2, th_sxtab16_ror8(off2, v));
        }
        for (; d < dp; ++d) {
            const int32_t idx = (d & ~3) | ((d & 1) << 1) | ((d >> 1) & 1);
            scratch[idx] = (int16_t)(d < depth ? in[d] + p->input_offset : 0);
        }
        const int8_t *w = filter;
        int32_t o = 0;
        for (; o + 1 < out_depth; o += 2) {
            int32_t a0 = bias != 0 ? bias[o] : 0;
            int32_t a1 = bias != 0 ? bias[o + 1] : 0;
            const int16_t *x = scratch;
            const int8_t *w_end = w + 2 * dp;
            while (w < w_end) {
                const uint32_t xa = th_read_s16x2(x);
                const uint32_t xb = th_read_s16x2(x + 2);
                const uint32_t w0 = th_read_s8x4(w);
                const uint32_t w1 = th_read_s8x4(w + 4);
                a0 = th_smlad(th_sxtb16(w0), xa, a0);
                a0 = th_smlad(th_sxtb16_ror8(w0), xb, a0);
                a1 = th_smlad(th_sxtb16(w1), xa, a1);
                a1 = th_smlad(th_sxtb16_ror8(w1), xb, a1);
                x += 4;
                w += 8;
            }
            a0 = th_requant(a0, p->mult[o], p->shift[o]) + p->output_offset;
            a1 = th_requant(a1, p->mult[o + 1], p->shift[o + 1]) + p->output_offset;
            out[o] = th_clamp_s8(a0, p->act_min, p->act_max);
            out[o + 1] = th_clamp_s8(a1, p->act_min, p->act_max);
        }
        if (o < out_depth) {
            int32_t a0 = bias != 0 ? bias[o] : 0;
            const int16_t *x = scratch;
            const int8_t *w_end = w + dp;
            while (w < w_end) {
                const uint32_t w0 = th_read_s8x4(w);
                a0 = th_smlad(th_sxtb16(w0), th_read_s16x2(x), a0);
                a0 = th_smlad(th_sxtb16_ror8(w0), th_read_s16x2(x + 2), a0);
                x += 4;
                w += 4;
            }
            a0 = th_requant(a0, p->mult[o], p->shift[o]) + p->output_offset;
            out[o] = th_clamp_s8(a0, p->act_min, p->act_max);
        }
    }
    return TH_OK;
}
