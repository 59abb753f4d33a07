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
 * for SMLAD. Rows of weights are zero-padded to dp = depth rounded up to 8
 * and interleaved by groups of 4 (fully_connected.py fc_weights): blocks of
 * four rows, then a pair if two remain, then a last single row. The input
 * is read where it is, one group of four bytes at a time inside the block
 * loop, and widened there with the input offset added (SXTAB16 with the
 * offset in both lanes) into (x0, x2), (x1, x3): what SXTB16 and SXTB16
 * ROR #8 make of a weight word w0..w3. No scratch: the last depth % 8 inputs
 * (read past by the padded rows) are copied into an 8-byte local instead.
 */

/* Accumulate rows [o, o + n) (n = 1, 2 or 4, interleaved as one block) over
 * the len inputs at x (len a multiple of 4) into acc, through th_simd.h; off2
 * is the input offset in both lanes. Returns the weights after. For the pair
 * and single-row tails and the last depth % 8 inputs of every block: rare
 * enough that one out-of-line copy serves them all. */
static __attribute__((noinline)) const int8_t *th_fc_rows(const int8_t *w, const int8_t *x, int32_t len,
                                                          uint32_t off2, int32_t n, int32_t *acc) {
    const int8_t *const w_end = w + n * len;
    while (w < w_end) {
        const uint32_t v = th_read_s8x4(x);
        const uint32_t xa = th_sxtab16(off2, v);
        const uint32_t xb = th_sxtab16_ror8(off2, v);
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

/* The same for a block of four rows over len inputs, len a multiple of 8. */
static const int8_t *th_fc_block4(const int8_t *w, const int8_t *x, int32_t len, int32_t input_offset,
                                  int32_t *acc) {
    if (len <= 0) {
        return w;
    }
    const int8_t *const w_end = w + 4 * len;
#if TH_SIMD_DSP
    /* 21 instructions per 16 MACs (one LDR and two SXTAB16 of input, two LDRD
     * and eight SXTB16 of weights, eight SMLAD), two groups per iteration:
     * 14 registers, so the spare one of a weight pair serves as the temporary
     * of the other. (19 when the row was widened into th_scratch beforehand.) */
    const uint32_t off2 = th_dup16(input_offset);
    int32_t a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
    uint32_t xa, xb, w0, w1, w2, w3;
    __asm__ volatile(
        ".p2align 2\n"  /* the loop's first instruction is 32-bit: branch to a word */
        "1:\n\t"
        "ldr %[xb], [%[x]], #4\n\t"
        "ldrd %[w0], %[w1], [%[w]], #8\n\t"
        "sxtab16 %[xa], %[off2], %[xb]\n\t"
        "sxtab16 %[xb], %[off2], %[xb], ror #8\n\t"
        "sxtb16 %[w2], %[w0]\n\t"
        "sxtb16 %[w0], %[w0], ror #8\n\t"
        "smlad %[a0], %[w2], %[xa], %[a0]\n\t"
        "smlad %[a0], %[w0], %[xb], %[a0]\n\t"
        "sxtb16 %[w2], %[w1]\n\t"
        "sxtb16 %[w1], %[w1], ror #8\n\t"
        "smlad %[a1], %[w2], %[xa], %[a1]\n\t"
        "smlad %[a1], %[w1], %[xb], %[a1]\n\t"
        "ldrd %[w2], %[w3], [%[w]], #8\n\t"
        "sxtb16 %[w0], %[w2]\n\t"
        "sxtb16 %[w2], %[w2], ror #8\n\t"
        "smlad %[a2], %[w0], %[xa], %[a2]\n\t"
        "smlad %[a2], %[w2], %[xb], %[a2]\n\t"
        "sxtb16 %[w0], %[w3]\n\t"
        "sxtb16 %[w3], %[w3], ror #8\n\t"
        "smlad %[a3], %[w0], %[xa], %[a3]\n\t"
        "smlad %[a3], %[w3], %[xb], %[a3]\n\t"
        "ldr %[xb], [%[x]], #4\n\t"
        "ldrd %[w0], %[w1], [%[w]], #8\n\t"
        "sxtab16 %[xa], %[off2], %[xb]\n\t"
        "sxtab16 %[xb], %[off2], %[xb], ror #8\n\t"
        "sxtb16 %[w2], %[w0]\n\t"
        "sxtb16 %[w0], %[w0], ror #8\n\t"
        "smlad %[a0], %[w2], %[xa], %[a0]\n\t"
        "smlad %[a0], %[w0], %[xb], %[a0]\n\t"
        "sxtb16 %[w2], %[w1]\n\t"
        "sxtb16 %[w1], %[w1], ror #8\n\t"
        "smlad %[a1], %[w2], %[xa], %[a1]\n\t"
        "smlad %[a1], %[w1], %[xb], %[a1]\n\t"
        "ldrd %[w2], %[w3], [%[w]], #8\n\t"
        "sxtb16 %[w0], %[w2]\n\t"
        "sxtb16 %[w2], %[w2], ror #8\n\t"
        "smlad %[a2], %[w0], %[xa], %[a2]\n\t"
        "smlad %[a2], %[w2], %[xb], %[a2]\n\t"
        "sxtb16 %[w0], %[w3]\n\t"
        "sxtb16 %[w3], %[w3], ror #8\n\t"
        "smlad %[a3], %[w0], %[xa], %[a3]\n\t"
        "smlad %[a3], %[w3], %[xb], %[a3]\n\t"
        "cmp %[w], %[w_end]\n\t"
        "bne 1b\n\t"
        : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [x] "+r"(x),
          [w] "+r"(w), [xa] "=&r"(xa), [xb] "=&r"(xb), [w0] "=&r"(w0), [w1] "=&r"(w1),
          [w2] "=&r"(w2), [w3] "=&r"(w3)
        : [w_end] "r"(w_end), [off2] "r"(off2)
        : "cc", "memory");
    acc[0] = a0;
    acc[1] = a1;
    acc[2] = a2;
    acc[3] = a3;
#else
    /* Without SIMD the same layout as plain multiply-adds (lane packing in C
     * costs more than it saves). */
    for (; w < w_end; w += 16, x += 4) {
        const int32_t x0 = x[0] + input_offset, x1 = x[1] + input_offset;
        const int32_t x2 = x[2] + input_offset, x3 = x[3] + input_offset;
        for (int32_t i = 0; i < 4; ++i) {
            const int8_t *r = w + 4 * i;
            acc[i] += r[0] * x0 + r[1] * x1 + r[2] * x2 + r[3] * x3;
        }
    }
#endif
    return w;
}

#define TH_FC_OUT(acc, o) th_requant_out(mode, (acc), mult[o], shift[o], out_off, act_min, act_max)

th_status th_fully_connected_s8_simd(const th_fc_params *p, const int8_t *input,
                                     const int8_t *filter, const int32_t *bias, int8_t *output) {
    const int32_t depth = p->accum_depth;
    const int32_t d8 = depth & ~7; /* inputs read in place */
    const int32_t out_depth = p->out_depth;
    /* Locals: an int8 store may alias anything, so fields read through p
     * would be reloaded after every output. */
    const int32_t in_off = p->input_offset;
    const uint32_t off2 = th_dup16(in_off);
    const int32_t mode = p->requant_mode;
    const int32_t *const mult = p->mult;
    const int32_t *const shift = p->shift;
    const int32_t out_off = p->output_offset;
    const int32_t act_min = p->act_min;
    const int32_t act_max = p->act_max;
    /* The last depth % 8 inputs, zero-filled to a group of 8 (the padded
     * weights there are 0, so the filler never counts). */
    int8_t tail[8];
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *in = input + b * depth;
        int8_t *out = output + b * out_depth;
        for (int32_t d = 0; d < 8 && d8 < depth; ++d) {
            tail[d] = d8 + d < depth ? in[d8 + d] : 0;
        }
        const int8_t *w = filter;
        int32_t o = 0;
        for (; o + 4 <= out_depth; o += 4) {
            int32_t acc[4];
            for (int32_t i = 0; i < 4; ++i) {
                acc[i] = bias != 0 ? bias[o + i] : 0;
            }
            w = th_fc_block4(w, in, d8, in_off, acc);
            if (d8 < depth) {
                w = th_fc_rows(w, tail, 8, off2, 4, acc);
            }
            for (int32_t i = 0; i < 4; ++i) {
                out[o + i] = TH_FC_OUT(acc[i], o + i);
            }
        }
        while (o < out_depth) {
            const int32_t n = out_depth - o >= 2 ? 2 : 1;
            int32_t acc[2];
            for (int32_t i = 0; i < n; ++i) {
                acc[i] = bias != 0 ? bias[o + i] : 0;
            }
            w = th_fc_rows(w, in, d8, off2, n, acc);
            if (d8 < depth) {
                w = th_fc_rows(w, tail, 8, off2, n, acc);
            }
            for (int32_t i = 0; i < n; ++i) {
                out[o + i] = TH_FC_OUT(acc[i], o + i);
            }
            o += n;
        }
    }
    return TH_OK;
}

/*
 * LUT-compressed weights (th_fc_lut, lutw.py), decoded in the inner loop: each
 * weight is its row's table entry at its index, multiplied as it is looked up.
 * No scratch. TFLM's arithmetic on the same int8 weights: only where they come
 * from changes. Rows go in pairs (their indices interleaved group by group), so
 * each widened input group serves two rows.
 */

/* Index k of a group (`bits` bytes at src; index k in bits [k * bits, (k + 1) * bits)
 * of their little-endian integer). */
static uint32_t th_lut_index(const uint8_t *src, int32_t k, int32_t bits) {
    const int32_t bit = k * bits;
    const uint32_t lo = src[bit >> 3];
    const uint32_t hi = (bit & 7) + bits > 8 ? src[(bit >> 3) + 1] : 0u;
    return ((lo | hi << 8) >> (bit & 7)) & ((1u << bits) - 1u);
}

/* One row, any width, inputs [from, to): acc + sum table[index(d)] * (x[d] + input_offset);
 * group g of the row at idx + g * step. */
static int32_t th_lut_row(const uint8_t *idx, int32_t step, const int8_t *t, const int8_t *x, int32_t from,
                          int32_t to, int32_t in_off, int32_t bits, int32_t acc) {
    for (int32_t d = from; d < to; ++d) {
        acc += t[th_lut_index(idx + (d >> 3) * step, d & 7, bits)] * (x[d] + in_off);
    }
    return acc;
}

/* A pair of rows with 4-bit indices over the first d8 inputs (d8 a multiple of 8):
 * per group of 8 inputs one word of each row (nibble k = weight k), through tables
 * t0 and t1. */
static void th_lut4_pair(const uint8_t *idx, const int8_t *t0, const int8_t *t1, const int8_t *x, int32_t d8,
                         int32_t in_off, int32_t *acc) {
    if (d8 <= 0) {
        return;
    }
    const uint8_t *const end = idx + d8; /* 2 rows x 4 bytes per 8 inputs */
    int32_t a0 = acc[0], a1 = acc[1];
#if TH_SIMD_DSP
    /* 57 instructions per 16 MACs: per weight UBFX (or AND, LSR), LDRSB from the
     * row's table, SMLABB/SMLABT against the input lane; per 4 inputs one LDR and
     * two SXTAB16 (the offset in both lanes: (x0, x2), (x1, x3)); one LDRD of
     * indices per 8 inputs. 14 registers. */
    const uint32_t off2 = th_dup16(in_off);
    uint32_t xa, xb, v0, v1, p, q;
#define TH_LUT4_4(a, t, v, e0, e1, e2, e3)                     \
    e0 "\n\t" e1 "\n\t"                                        \
    "ldrsb %[p], [%[" t "], %[p]]\n\t"                         \
    "ldrsb %[q], [%[" t "], %[q]]\n\t"                         \
    "smlabb %[" a "], %[p], %[xa], %[" a "]\n\t"               \
    "smlabb %[" a "], %[q], %[xb], %[" a "]\n\t"               \
    e2 "\n\t" e3 "\n\t"                                        \
    "ldrsb %[p], [%[" t "], %[p]]\n\t"                         \
    "ldrsb %[q], [%[" t "], %[q]]\n\t"                         \
    "smlabt %[" a "], %[p], %[xa], %[" a "]\n\t"               \
    "smlabt %[" a "], %[q], %[xb], %[" a "]\n\t"
#define TH_LUT4_X                                              \
    "ldr %[xb], [%[x]], #4\n\t"                                \
    "sxtab16 %[xa], %[off2], %[xb]\n\t"                        \
    "sxtab16 %[xb], %[off2], %[xb], ror #8\n\t"
    __asm__ volatile(
        ".p2align 2\n"
        "1:\n\t"
        "ldrd %[v0], %[v1], [%[idx]], #8\n\t"
        TH_LUT4_X
        TH_LUT4_4("a0", "t0", "v0", "and %[p], %[v0], #15", "ubfx %[q], %[v0], #4, #4",
                  "ubfx %[p], %[v0], #8, #4", "ubfx %[q], %[v0], #12, #4")
        TH_LUT4_4("a1", "t1", "v1", "and %[p], %[v1], #15", "ubfx %[q], %[v1], #4, #4",
                  "ubfx %[p], %[v1], #8, #4", "ubfx %[q], %[v1], #12, #4")
        TH_LUT4_X
        TH_LUT4_4("a0", "t0", "v0", "ubfx %[p], %[v0], #16, #4", "ubfx %[q], %[v0], #20, #4",
                  "ubfx %[p], %[v0], #24, #4", "lsr %[q], %[v0], #28")
        TH_LUT4_4("a1", "t1", "v1", "ubfx %[p], %[v1], #16, #4", "ubfx %[q], %[v1], #20, #4",
                  "ubfx %[p], %[v1], #24, #4", "lsr %[q], %[v1], #28")
        "cmp %[idx], %[end]\n\t"
        "bne 1b\n\t"
        : [a0] "+r"(a0), [a1] "+r"(a1), [idx] "+r"(idx), [x] "+r"(x), [xa] "=&r"(xa), [xb] "=&r"(xb),
          [v0] "=&r"(v0), [v1] "=&r"(v1), [p] "=&r"(p), [q] "=&r"(q)
        : [t0] "r"(t0), [t1] "r"(t1), [end] "r"(end), [off2] "r"(off2)
        : "cc", "memory");
#undef TH_LUT4_4
#undef TH_LUT4_X
#else
    while (idx < end) {
        uint32_t v0, v1;
        memcpy(&v0, idx, sizeof v0);
        memcpy(&v1, idx + 4, sizeof v1);
        idx += 8;
        for (int32_t k = 0; k < 8; ++k) {
            const int32_t xk = x[k] + in_off;
            a0 += t0[(v0 >> (4 * k)) & 15u] * xk;
            a1 += t1[(v1 >> (4 * k)) & 15u] * xk;
        }
        x += 8;
    }
#endif
    acc[0] = a0;
    acc[1] = a1;
}

th_status th_fully_connected_s8_lut(const th_fc_params *p, const th_fc_lut *lut, const int8_t *input,
                                    const int32_t *bias, int8_t *output) {
    const int32_t depth = p->accum_depth;
    const int32_t d8 = depth & ~7;
    const int32_t out_depth = p->out_depth;
    const int32_t bits = lut->bits;
    const int32_t row_bytes = (depth + 7) / 8 * bits;
    const int32_t tstride = lut->table_stride;
    const int32_t in_off = p->input_offset;
    const int32_t mode = p->requant_mode;
    const int32_t *const mult = p->mult;
    const int32_t *const shift = p->shift;
    const int32_t out_off = p->output_offset;
    const int32_t act_min = p->act_min;
    const int32_t act_max = p->act_max;
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *in = input + b * depth;
        int8_t *out = output + b * out_depth;
        for (int32_t o = 0; o < out_depth;) {
            const int32_t n = out_depth - o >= 2 ? 2 : 1;
            /* Rows o, o + 1: group g of row o + r at idx + (g * n + r) * bits. */
            const uint8_t *const idx = lut->indices + o * row_bytes;
            const int8_t *const tab = lut->tables + o * tstride;
            int32_t acc[2];
            acc[0] = bias != 0 ? bias[o] : 0;
            acc[1] = bias != 0 && n == 2 ? bias[o + 1] : 0;
            int32_t from = 0;
            if (bits == 4 && n == 2) {
                th_lut4_pair(idx, tab, tab + tstride, in, d8, in_off, acc);
                from = d8;
            }
            if (from < depth) {
                for (int32_t i = 0; i < n; ++i) {
                    acc[i] = th_lut_row(idx + i * bits, n * bits, tab + i * tstride, in, from, depth, in_off, bits,
                                        acc[i]);
                }
            }
            for (int32_t i = 0; i < n; ++i) {
                out[o + i] = TH_FC_OUT(acc[i], o + i);
            }
            o += n;
        }
    }
    return TH_OK;
}
