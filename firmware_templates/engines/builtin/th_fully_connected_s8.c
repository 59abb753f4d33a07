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
 * groups of 4 (fully_connected.py fc_weights): blocks of four rows, then a
 * pair if two remain, then a last single row.
 */

/* Accumulate rows [o, o + n) (n = 1, 2 or 4, interleaved as one block) into acc. */
static const int8_t *th_fc_block(const int8_t *w, const int16_t *x, int32_t dp, int32_t n,
                                 int32_t *acc) {
    const int8_t *w_end = w + n * dp;
#if TH_SIMD_DSP
    if (n == 4) {
        /* 19 instructions per 16 MACs (one LDRD of input, two of weights),
         * two groups per iteration (dp is a multiple of 8). */
        int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
        uint32_t xa, xb, w0, w1, w2, w3, t;
        __asm__ volatile(
            "1:\n\t"
            "ldrd %[xa], %[xb], [%[x]], #8\n\t"
            "ldrd %[w0], %[w1], [%[w]], #8\n\t"
            "ldrd %[w2], %[w3], [%[w]], #8\n\t"
            "sxtb16 %[t], %[w0]\n\t"
            "sxtb16 %[w0], %[w0], ror #8\n\t"
            "smlad %[a0], %[t], %[xa], %[a0]\n\t"
            "smlad %[a0], %[w0], %[xb], %[a0]\n\t"
            "sxtb16 %[t], %[w1]\n\t"
            "sxtb16 %[w1], %[w1], ror #8\n\t"
            "smlad %[a1], %[t], %[xa], %[a1]\n\t"
            "smlad %[a1], %[w1], %[xb], %[a1]\n\t"
            "sxtb16 %[t], %[w2]\n\t"
            "sxtb16 %[w2], %[w2], ror #8\n\t"
            "smlad %[a2], %[t], %[xa], %[a2]\n\t"
            "smlad %[a2], %[w2], %[xb], %[a2]\n\t"
            "sxtb16 %[t], %[w3]\n\t"
            "sxtb16 %[w3], %[w3], ror #8\n\t"
            "smlad %[a3], %[t], %[xa], %[a3]\n\t"
            "smlad %[a3], %[w3], %[xb], %[a3]\n\t"
            "ldrd %[xa], %[xb], [%[x]], #8\n\t"
            "ldrd %[w0], %[w1], [%[w]], #8\n\t"
            "ldrd %[w2], %[w3], [%[w]], #8\n\t"
            "sxtb16 %[t], %[w0]\n\t"
            "sxtb16 %[w0], %[w0], ror #8\n\t"
            "smlad %[a0], %[t], %[xa], %[a0]\n\t"
            "smlad %[a0], %[w0], %[xb], %[a0]\n\t"
            "sxtb16 %[t], %[w1]\n\t"
            "sxtb16 %[w1], %[w1], ror #8\n\t"
            "smlad %[a1], %[t], %[xa], %[a1]\n\t"
            "smlad %[a1], %[w1], %[xb], %[a1]\n\t"
            "sxtb16 %[t], %[w2]\n\t"
            "sxtb16 %[w2], %[w2], ror #8\n\t"
            "smlad %[a2], %[t], %[xa], %[a2]\n\t"
            "smlad %[a2], %[w2], %[xb], %[a2]\n\t"
            "sxtb16 %[t], %[w3]\n\t"
            "sxtb16 %[w3], %[w3], ror #8\n\t"
            "smlad %[a3], %[t], %[xa], %[a3]\n\t"
            "smlad %[a3], %[w3], %[xb], %[a3]\n\t"
            "cmp %[w], %[w_end]\n\t"
            "bne 1b\n\t"
            : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [x] "+r"(x),
              [w] "+r"(w), [xa] "=&r"(xa), [xb] "=&r"(xb), [w0] "=&r"(w0), [w1] "=&r"(w1),
              [w2] "=&r"(w2), [w3] "=&r"(w3), [t] "=&r"(t)
            : [w_end] "r"(w_end)
            : "cc", "memory");
        acc[0] = a0;
        acc[1] = a1;
        acc[2] = a2;
        acc[3] = a3;
        return w;
    }
#else
    if (n == 4) {
        /* Without SIMD the same layout as plain multiply-adds (lane packing in
         * C costs more than it saves); the input group is (x0, x2, x1, x3).
         * Pairs and single rows below go through th_simd.h. */
        for (; w < w_end; w += 16, x += 4) {
            const int32_t x0 = x[0], x2 = x[1], x1 = x[2], x3 = x[3];
            for (int32_t i = 0; i < 4; ++i) {
                const int8_t *r = w + 4 * i;
                acc[i] += r[0] * x0 + r[1] * x1 + r[2] * x2 + r[3] * x3;
            }
        }
        return w;
    }
#endif
    while (w < w_end) {
        const uint32_t xa = th_read_s16x2(x);
        const uint32_t xb = th_read_s16x2(x + 2);
        for (int32_t i = 0; i < n; ++i) {
            const uint32_t wv = th_read_s8x4(w + 4 * i);
            acc[i] = th_smlad(th_sxtb16(wv), xa, acc[i]);
            acc[i] = th_smlad(th_sxtb16_ror8(wv), xb, acc[i]);
        }
        x += 4;
        w += 4 * n;
    }
    return w;
}

#define TH_FC_OUT(acc, o) th_requant_out(mode, (acc), mult[o], shift[o], out_off, act_min, act_max)

th_status th_fully_connected_s8_simd(const th_fc_params *p, const int8_t *input,
                                     const int8_t *filter, const int32_t *bias, int8_t *output,
                                     int16_t *scratch) {
    const int32_t depth = p->accum_depth;
    const int32_t dp = (depth + 7) & ~7;
    const int32_t out_depth = p->out_depth;
    const uint32_t off2 = th_dup16(p->input_offset);
    /* Locals: an int8 store may alias anything, so fields read through p
     * would be reloaded after every output. */
    const int32_t mode = p->requant_mode;
    const int32_t *const mult = p->mult;
    const int32_t *const shift = p->shift;
    const int32_t out_off = p->output_offset;
    const int32_t act_min = p->act_min;
    const int32_t act_max = p->act_max;
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
        for (int32_t o = 0; o < out_depth;) {
            const int32_t left = out_depth - o;
            const int32_t n = left >= 4 ? 4 : (left >= 2 ? 2 : 1);
            int32_t acc[4];
            for (int32_t i = 0; i < n; ++i) {
                acc[i] = bias != 0 ? bias[o + i] : 0;
            }
            w = th_fc_block(w, scratch, dp, n, acc);
            for (int32_t i = 0; i < n; ++i) {
                out[o + i] = TH_FC_OUT(acc[i], o + i);
            }
            o += n;
        }
    }
    return TH_OK;
}
