/* tinyhil builtin engine: CONV_2D, int8, per-channel requantization.
 *
 * im2col + GEMM. For three output pixels at a time the input patches are
 * expanded into int16 columns with the input offset added (padding taps
 * stay 0, as in TFLM where they are skipped); then every pair of output
 * channels is accumulated against the three columns, so each weight word
 * loaded and widened feeds six SMLADs and each column word two (th_simd.h):
 * 20 instructions per 24 MACs on Cortex-M4 (two pixels took 16 per 16).
 *
 * A patch (order [k_y][k_x][in_c], as a weight row) is zero-padded to kp =
 * K rounded up to 8. With few input channels (k_w * in_c not a multiple of
 * 4: an RGB image) each kernel row is padded to patch_row, a multiple of 4,
 * with zero weights (conv.py): a row is then copied as whole words (the
 * bytes past it are multiplied by zero) instead of byte by byte. Column
 * layout, per group of four patch elements x0..x3: pixel 0's words (x0, x2),
 * (x1, x3), then pixel 1's, then pixel 2's: what SXTB16 and SXTB16 ROR #8
 * make of a weight word w0..w3 pairs up with them.
 * Weights (conv.py conv_weights): per pair of output channels, per group,
 * channel 0's word then channel 1's; an odd last channel alone, per group.
 */
#include <string.h>

#include "th_conv.h"
#include "th_requant.h"
#include "th_simd.h"

/* A patch row's length in the columns and weights (conv.py conv_row). */
static inline int32_t th_conv_patch_row(const th_conv_params *p) {
    return p->patch_row != 0 ? p->patch_row : p->k_w * p->in_c;
}

/* Pixels per GEMM pass (column slots), and int16 entries per group of four
 * patch elements across the slots. */
#define TH_CONV_SLOTS 3
#define TH_CONV_GROUP (4 * TH_CONV_SLOTS)
#define TH_CONV_STR_(x) #x
#define TH_CONV_STR(x) TH_CONV_STR_(x)

/* Column index of patch element p of pixel slot `pix` (0 .. TH_CONV_SLOTS - 1). */
static inline int32_t th_col_index(int32_t p, int32_t pix) {
    return (p >> 2) * TH_CONV_GROUP + (pix << 2) + ((p & 1) << 1) + ((p >> 1) & 1);
}

/* n / 4 groups of four input bytes at src into the column words at dst (a
 * multiple of 4 entries in: 8-byte aligned), offset added: per group SXTAB16
 * and SXTAB16 ROR #8 (th_simd.h), the two words one STRD, the next group
 * 2 * TH_CONV_GROUP bytes on (the other slots' words between). */
static inline __attribute__((always_inline)) void th_col_words(int16_t *dst, const int8_t *src, int32_t n,
                                                               uint32_t off2) {
#if TH_SIMD_DSP
    /* 10 instructions per 8 entries; gcc's code for the C below takes 14 */
    if (n >= 8) {
        const int8_t *end = src + (n & ~7);
        uint32_t v0, v1, a, b;
        __asm__ volatile(
            "1:\n\t"
            "ldr %[v0], [%[src]], #4\n\t"
            "ldr %[v1], [%[src]], #4\n\t"
            "sxtab16 %[a], %[off2], %[v0]\n\t"
            "sxtab16 %[b], %[off2], %[v0], ror #8\n\t"
            "strd %[a], %[b], [%[dst]], #" TH_CONV_STR(2 * TH_CONV_GROUP) "\n\t"
            "sxtab16 %[a], %[off2], %[v1]\n\t"
            "sxtab16 %[b], %[off2], %[v1], ror #8\n\t"
            "strd %[a], %[b], [%[dst]], #" TH_CONV_STR(2 * TH_CONV_GROUP) "\n\t"
            "cmp %[src], %[end]\n\t"
            "bne 1b\n\t"
            : [src] "+r"(src), [dst] "+r"(dst), [v0] "=&r"(v0), [v1] "=&r"(v1), [a] "=&r"(a),
              [b] "=&r"(b)
            : [end] "r"(end), [off2] "r"(off2)
            : "cc", "memory");
    }
    n &= 7;
#endif
    for (; n >= 4; n -= 4) {
        const uint32_t v = th_read_s8x4(src);
        th_write_s16x2(dst, th_sxtab16(off2, v));
        th_write_s16x2(dst + 2, th_sxtab16_ror8(off2, v));
        src += 4;
        dst += TH_CONV_GROUP;
    }
}

/* Column entries [p, p + n) of slot pix from n input bytes at src, offset added. */
static inline __attribute__((always_inline)) void th_col_put(int16_t *col, int32_t pix, int32_t p,
                                                             const int8_t *src, int32_t n,
                                                             int32_t in_off) {
    const uint32_t off2 = th_dup16(in_off);
    if (((p | n) & 3) == 0) { /* the usual case: whole groups */
        th_col_words(col + th_col_index(p, pix), src, n, off2);
        return;
    }
    while (n > 0 && (p & 3) != 0) {
        col[th_col_index(p, pix)] = (int16_t)(*src++ + in_off);
        ++p;
        --n;
    }
    th_col_words(col + th_col_index(p, pix), src, n & ~3, off2);
    src += n & ~3;
    p += n & ~3;
    n &= 3;
    while (n > 0) {
        col[th_col_index(p, pix)] = (int16_t)(*src++ + in_off);
        ++p;
        --n;
    }
}

/* Slot pix of the column pair: output pixel n (batch-major, then rows, then columns). */
static void th_im2col(const th_conv_params *p, const int8_t *input, int32_t n, int16_t *col,
                      int32_t pix) {
    const int32_t in_c = p->in_c;
    const int32_t in_row = p->in_w * in_c;
    const int32_t f_row = th_conv_patch_row(p);
    const int32_t plane = p->out_h * p->out_w;
    const int32_t b = n / plane;
    const int32_t oy = (n - b * plane) / p->out_w;
    const int32_t ox = n - b * plane - oy * p->out_w;
    const int32_t iy0 = oy * p->stride_h - p->pad_h;
    const int32_t ix0 = ox * p->stride_w - p->pad_w;
    /* A window inside the image with rows of whole words (pointwise convs with
     * in_c % 4 == 0, 3x3 ones with 16 channels, padded RGB rows): each row one
     * th_col_words run, no bounds. A padded row reads f_row bytes, past the
     * last tap: allowed unless that runs past the input tensor. */
    if (p->dil_w == 1 && (f_row & 3) == 0 && iy0 >= 0 && ix0 >= 0 &&
        iy0 + (p->k_h - 1) * p->dil_h < p->in_h && ix0 + p->k_w <= p->in_w) {
        const int8_t *x = input + ((b * p->in_h + iy0) * p->in_w + ix0) * in_c;
        const int32_t step = p->dil_h * in_row;
        if (x + (p->k_h - 1) * step + f_row <= input + p->batches * p->in_h * in_row) {
            const uint32_t off2 = th_dup16(p->input_offset);
            int16_t *dst = col + (pix << 2);
            for (int32_t ky = 0; ky < p->k_h; ++ky) {
                th_col_words(dst, x, f_row, off2);
                dst += (f_row >> 2) * TH_CONV_GROUP;
                x += step;
            }
            return;
        }
    }
    int32_t ky_lo, ky_hi, kx_lo, kx_hi;
    th_conv_window(iy0, p->dil_h, p->in_h, p->k_h, &ky_lo, &ky_hi);
    th_conv_window(ix0, p->dil_w, p->in_w, p->k_w, &kx_lo, &kx_hi);
    if (ky_lo != 0 || ky_hi != p->k_h || kx_lo != 0 || kx_hi != p->k_w) {
        /* Padding taps contribute 0 (TFLM skips them): zero the slot's words. */
        const int32_t groups = (p->k_h * f_row + 3) >> 2;
        int16_t *z = col + (pix << 2);
        for (int32_t g = 0; g < groups; ++g) {
            th_write_s16x2(z, 0);
            th_write_s16x2(z + 2, 0);
            z += TH_CONV_GROUP;
        }
        if (kx_hi <= kx_lo) {
            return;
        }
    }
    const int8_t *in_b = input + b * p->in_h * in_row;
    /* A whole padded row (from a word-aligned column position) reads f_row
     * bytes: allowed unless that runs past the input tensor. */
    const int8_t *in_end = input + p->batches * p->in_h * in_row;
    const int32_t whole = (kx_lo == 0 && kx_hi == p->k_w) ? f_row : 0;
    for (int32_t ky = ky_lo; ky < ky_hi; ++ky) {
        const int8_t *x = in_b + (iy0 + ky * p->dil_h) * in_row + (ix0 + kx_lo * p->dil_w) * in_c;
        const int32_t pos = ky * f_row + kx_lo * in_c;
        if (p->dil_w == 1) {
            const int32_t n = (kx_hi - kx_lo) * in_c;
            th_col_put(col, pix, pos, x, (whole > n && x + whole <= in_end) ? whole : n,
                       p->input_offset);
        } else {
            for (int32_t kx = kx_lo; kx < kx_hi; ++kx) {
                th_col_put(col, pix, pos + (kx - kx_lo) * in_c, x, in_c, p->input_offset);
                x += p->dil_w * in_c;
            }
        }
    }
}

/* Output channels per accumulator block: the GEMM loop leaves every register
 * busy, so a pair's six accumulators are stored ([channel][pixel]) and a
 * block of channels is requantized by a loop of its own, its parameters in
 * registers (about 10 instructions per output instead of 17 when the
 * requantization followed each pair and reloaded everything from the stack). */
#define TH_CONV_BLOCK 16

/* Requantize, offset and clamp accumulators acc[c][0..2] of channels [oc, oc + n)
 * into out[s][oc + c]. Out of line: its own registers. */
static __attribute__((noinline)) void th_conv_requant(const th_conv_params *p, const int32_t *acc,
                                                      int32_t oc, int32_t n, int8_t *const *out) {
    const int32_t mode = p->requant_mode;
    const int32_t k = 1 + 2 * p->output_offset;
    const int32_t lo = p->act_min;
    const int32_t hi = p->act_max;
    int8_t *out0 = out[0] + oc;
    int8_t *out1 = out[1] + oc;
    int8_t *out2 = out[2] + oc;
    if (mode == TH_RQ_FAST_SAT8) {
        const int32_t *rq = p->rq + 2 * oc;
        for (int32_t c = 0; c < n; ++c) {
            const int32_t m = rq[0], s = rq[1];
            out0[c] = th_requant_fast_s_sat8(acc[0], m, s, k);
            out1[c] = th_requant_fast_s_sat8(acc[1], m, s, k);
            out2[c] = th_requant_fast_s_sat8(acc[2], m, s, k);
            rq += 2;
            acc += TH_CONV_SLOTS;
        }
    } else if (mode == TH_RQ_FAST) {
        const int32_t *rq = p->rq + 2 * oc;
        for (int32_t c = 0; c < n; ++c) {
            const int32_t m = rq[0], s = rq[1];
            out0[c] = th_clamp_s8(th_requant_fast_s(acc[0], m, s, k), lo, hi);
            out1[c] = th_clamp_s8(th_requant_fast_s(acc[1], m, s, k), lo, hi);
            out2[c] = th_clamp_s8(th_requant_fast_s(acc[2], m, s, k), lo, hi);
            rq += 2;
            acc += TH_CONV_SLOTS;
        }
    } else {
        const int32_t off = p->output_offset;
        for (int32_t c = 0; c < n; ++c) {
            const int32_t m = p->mult[oc + c], s = p->shift[oc + c];
            out0[c] = th_clamp_s8(th_requant(acc[0], m, s) + off, lo, hi);
            out1[c] = th_clamp_s8(th_requant(acc[1], m, s) + off, lo, hi);
            out2[c] = th_clamp_s8(th_requant(acc[2], m, s) + off, lo, hi);
            acc += TH_CONV_SLOTS;
        }
    }
}

/* All output channels of three pixels (out[s] repeats an earlier pixel's
 * row when fewer are left: the same values land twice). */
#if TH_SIMD_DSP
/* One group of four patch elements of the three pixels against a channel pair
 * (the loops below): one LDRD of the pair's weight words, four SXTB16, and per
 * pixel one LDRD of its column words and four SMLADs. */
#define TH_CONV_GROUP_ASM                                  \
    "ldrd %[w0], %[w1], [%[w]], #8\n\t"                    \
    "sxtb16 %[t0], %[w0]\n\t"                              \
    "sxtb16 %[w0], %[w0], ror #8\n\t"                      \
    "sxtb16 %[t1], %[w1]\n\t"                              \
    "sxtb16 %[w1], %[w1], ror #8\n\t"                      \
    "ldrd %[xa], %[xb], [%[x]], #8\n\t"                    \
    "smlad %[a00], %[t0], %[xa], %[a00]\n\t"               \
    "smlad %[a00], %[w0], %[xb], %[a00]\n\t"               \
    "smlad %[a10], %[t1], %[xa], %[a10]\n\t"               \
    "smlad %[a10], %[w1], %[xb], %[a10]\n\t"               \
    "ldrd %[xa], %[xb], [%[x]], #8\n\t"                    \
    "smlad %[a01], %[t0], %[xa], %[a01]\n\t"               \
    "smlad %[a01], %[w0], %[xb], %[a01]\n\t"               \
    "smlad %[a11], %[t1], %[xa], %[a11]\n\t"               \
    "smlad %[a11], %[w1], %[xb], %[a11]\n\t"               \
    "ldrd %[xa], %[xb], [%[x]], #8\n\t"                    \
    "smlad %[a02], %[t0], %[xa], %[a02]\n\t"               \
    "smlad %[a02], %[w0], %[xb], %[a02]\n\t"               \
    "smlad %[a12], %[t1], %[xa], %[a12]\n\t"               \
    "smlad %[a12], %[w1], %[xb], %[a12]\n\t"

/* A channel pair's six sums (label 2: starts a pair, the caller's code after
 * it ends one): the bias pair (from the stack pointer bp) into the three
 * pixels' accumulators, the columns from col, then the groups until w_end. */
#define TH_CONV_PAIR_SUMS_ASM                   \
    "2:\n\t"                                    \
    "ldr %[t0], %[bp]\n\t"                      \
    "ldrd %[a00], %[a10], [%[t0]], #8\n\t"      \
    "str %[t0], %[bp]\n\t"                      \
    "mov %[a01], %[a00]\n\t"                    \
    "mov %[a02], %[a00]\n\t"                    \
    "mov %[a11], %[a10]\n\t"                    \
    "mov %[a12], %[a10]\n\t"                    \
    "ldr %[x], %[col]\n\t"                      \
    "ldr %[t0], %[wstep]\n\t"                   \
    "add %[t0], %[w], %[t0]\n\t"                \
    "str %[t0], %[w_end]\n\t"                   \
    "1:\n\t"                                    \
    TH_CONV_GROUP_ASM                           \
    TH_CONV_GROUP_ASM                           \
    "ldr %[xa], %[w_end]\n\t"                   \
    "cmp %[w], %[xa]\n\t"                       \
    "bne 1b\n\t"

/* One sum requantized with the int8 clamp (th_requant_fast_s_sat8): M, S the
 * channel's multiplier and -shift - 1, k in t1. */
#define TH_CONV_RQ_ASM(A, M, S)                              \
    "lsl %[" A "], %[" A "], #1\n\t"                         \
    "smmulr %[" A "], %[" A "], %[" M "]\n\t"                \
    "add %[" A "], %[" A "], %[" A "], asr #31\n\t"          \
    "asr %[" A "], %[" A "], %[" S "]\n\t"                   \
    "add %[" A "], %[" A "], %[t1]\n\t"                      \
    "ssat %[" A "], #8, %[" A "], asr #1\n\t"

/* All channel pairs of three pixels, requantized in the same loop (mode
 * TH_RQ_FAST_SAT8, a bias): after a pair's sums, its (multiplier, -shift - 1)
 * pairs, then six outputs stored at o, o + d1 and o + d2 (the three pixels'
 * rows). About 9 instructions per output instead of 11 through th_conv_requant.
 * Returns the weights past the pairs. */
static const int8_t *th_conv_pairs_sat8(const th_conv_params *p, const int16_t *col, const int8_t *w,
                                        const int32_t *bias, int8_t *const *out, int32_t kp, int32_t paired) {
    const int32_t *bp = bias;
    const int32_t *rqp = p->rq;
    const int32_t *const rq_end = p->rq + 2 * paired;
    const int32_t wstep = 2 * kp;
    const int32_t k = 1 + 2 * p->output_offset;
    int8_t *o = out[0];
    const int32_t d1 = (int32_t)(out[1] - out[0]), d2 = (int32_t)(out[2] - out[0]);
    const int8_t *w_end;
    int32_t a00, a01, a02, a10, a11, a12;
    const int16_t *x;
    uint32_t xa, xb, w0, w1, t0, t1;
    __asm__ volatile(
        TH_CONV_PAIR_SUMS_ASM
        "ldr %[t0], %[rqp]\n\t"
        "ldrd %[w0], %[w1], [%[t0]], #8\n\t"
        "ldrd %[xa], %[xb], [%[t0]], #8\n\t"
        "str %[t0], %[rqp]\n\t"
        "ldr %[t1], %[k]\n\t"
        TH_CONV_RQ_ASM("a00", "w0", "w1") TH_CONV_RQ_ASM("a01", "w0", "w1") TH_CONV_RQ_ASM("a02", "w0", "w1")
        TH_CONV_RQ_ASM("a10", "xa", "xb") TH_CONV_RQ_ASM("a11", "xa", "xb") TH_CONV_RQ_ASM("a12", "xa", "xb")
        "ldr %[t0], %[o]\n\t"
        "ldr %[xa], %[d1]\n\t"
        "ldr %[xb], %[d2]\n\t"
        "strb %[a00], [%[t0]]\n\t"
        "strb %[a10], [%[t0], #1]\n\t"
        "add %[t1], %[t0], %[xa]\n\t"
        "strb %[a01], [%[t1]]\n\t"
        "strb %[a11], [%[t1], #1]\n\t"
        "add %[t1], %[t0], %[xb]\n\t"
        "strb %[a02], [%[t1]]\n\t"
        "strb %[a12], [%[t1], #1]\n\t"
        "add %[t0], %[t0], #2\n\t"
        "str %[t0], %[o]\n\t"
        "ldr %[t0], %[rqp]\n\t"
        "ldr %[t1], %[rq_end]\n\t"
        "cmp %[t0], %[t1]\n\t"
        "bne 2b\n\t"
        : [a00] "=&r"(a00), [a01] "=&r"(a01), [a02] "=&r"(a02), [a10] "=&r"(a10), [a11] "=&r"(a11),
          [a12] "=&r"(a12), [x] "=&r"(x), [w] "+r"(w), [xa] "=&r"(xa), [xb] "=&r"(xb), [w0] "=&r"(w0),
          [w1] "=&r"(w1), [t0] "=&r"(t0), [t1] "=&r"(t1), [bp] "+m"(bp), [rqp] "+m"(rqp), [o] "+m"(o),
          [w_end] "=m"(w_end)
        : [col] "m"(col), [wstep] "m"(wstep), [k] "m"(k), [rq_end] "m"(rq_end), [d1] "m"(d1), [d2] "m"(d2)
        : "cc", "memory");
    return w;
}
#endif

static void th_conv_pixels(const th_conv_params *p, const int16_t *col, const int8_t *filter,
                           const int32_t *bias, int8_t *const *out, int32_t kp) {
    const int32_t out_c = p->out_c;
    const int32_t paired = out_c & ~1;
    const int8_t *w = filter;
    int32_t acc[TH_CONV_SLOTS * TH_CONV_BLOCK];
    int32_t oc0 = 0;
#if TH_SIMD_DSP
    if (p->requant_mode == TH_RQ_FAST_SAT8 && bias != 0 && paired > 0) {
        w = th_conv_pairs_sat8(p, col, w, bias, out, kp, paired);
        oc0 = paired;
    }
#endif
    for (; oc0 < paired; oc0 += TH_CONV_BLOCK) {
        const int32_t n = TH_MIN(TH_CONV_BLOCK, paired - oc0);
#if TH_SIMD_DSP
        /* The block's channel pairs in one assembly loop. Per pair: the bias
         * pair, copied to the three pixels' accumulators; then per group of
         * four patch elements one LDRD of the pair's weight words, four
         * SXTB16, and per pixel one LDRD of its column words and four SMLADs
         * (20 instructions per 24 MACs); then the six sums stored as
         * acc[channel][pixel]. Every register is taken, so the pointers the
         * pair loop keeps (bias, accumulators, their ends) live on the stack. */
        static const int32_t th_zero_bias[TH_CONV_BLOCK] = {0};
        const int32_t *bp = bias != 0 ? bias + oc0 : th_zero_bias;
        int32_t *ap = acc;
        int32_t *const ap_end = acc + TH_CONV_SLOTS * n;
        const int32_t wstep = 2 * kp;
        const int8_t *w_end;
        int32_t a00, a01, a02, a10, a11, a12;
        const int16_t *x;
        uint32_t xa, xb, w0, w1, t0, t1;
        __asm__ volatile(
            TH_CONV_PAIR_SUMS_ASM
            "ldr %[t0], %[ap]\n\t"
            "strd %[a00], %[a01], [%[t0]], #8\n\t"
            "strd %[a02], %[a10], [%[t0]], #8\n\t"
            "strd %[a11], %[a12], [%[t0]], #8\n\t"
            "str %[t0], %[ap]\n\t"
            "ldr %[t1], %[ap_end]\n\t"
            "cmp %[t0], %[t1]\n\t"
            "bne 2b\n\t"
            : [a00] "=&r"(a00), [a01] "=&r"(a01), [a02] "=&r"(a02), [a10] "=&r"(a10),
              [a11] "=&r"(a11), [a12] "=&r"(a12), [x] "=&r"(x), [w] "+r"(w), [xa] "=&r"(xa),
              [xb] "=&r"(xb), [w0] "=&r"(w0), [w1] "=&r"(w1), [t0] "=&r"(t0), [t1] "=&r"(t1),
              [bp] "+m"(bp), [ap] "+m"(ap), [w_end] "=m"(w_end)
            : [col] "m"(col), [wstep] "m"(wstep), [ap_end] "m"(ap_end)
            : "cc", "memory");
#else
        int32_t *a = acc;
        for (int32_t oc = oc0; oc < oc0 + n; oc += 2) {
            int32_t a00 = bias != 0 ? bias[oc] : 0;
            int32_t a10 = bias != 0 ? bias[oc + 1] : 0;
            int32_t a01 = a00, a02 = a00, a11 = a10, a12 = a10;
            const int16_t *x = col;
            /* Without SIMD the same layout as plain multiply-adds (lane packing
             * in C costs more than it saves); each slot holds (x0, x2, x1, x3). */
            for (const int8_t *w_end = w + 2 * kp; w < w_end; w += 8) {
                int32_t *const acc0[TH_CONV_SLOTS] = {&a00, &a01, &a02};
                int32_t *const acc1[TH_CONV_SLOTS] = {&a10, &a11, &a12};
                for (int32_t sl = 0; sl < TH_CONV_SLOTS; ++sl) {
                    const int16_t *u = x + 4 * sl;
                    *acc0[sl] += w[0] * u[0] + w[1] * u[2] + w[2] * u[1] + w[3] * u[3];
                    *acc1[sl] += w[4] * u[0] + w[5] * u[2] + w[6] * u[1] + w[7] * u[3];
                }
                x += TH_CONV_GROUP;
            }
            a[0] = a00;
            a[1] = a01;
            a[2] = a02;
            a[3] = a10;
            a[4] = a11;
            a[5] = a12;
            a += 2 * TH_CONV_SLOTS;
        }
#endif
        th_conv_requant(p, acc, oc0, n, out);
    }
    if (out_c & 1) {
        const int32_t oc = out_c - 1;
        int32_t s0 = bias != 0 ? bias[oc] : 0;
        int32_t s1 = s0, s2 = s0;
        const int16_t *x = col;
        for (const int8_t *w_end = w + kp; w < w_end; w += 4) {
            const uint32_t wv = th_read_s8x4(w);
            const uint32_t wa = th_sxtb16(wv), wb = th_sxtb16_ror8(wv);
            s0 = th_smlad(wb, th_read_s16x2(x + 2), th_smlad(wa, th_read_s16x2(x), s0));
            s1 = th_smlad(wb, th_read_s16x2(x + 6), th_smlad(wa, th_read_s16x2(x + 4), s1));
            s2 = th_smlad(wb, th_read_s16x2(x + 10), th_smlad(wa, th_read_s16x2(x + 8), s2));
            x += TH_CONV_GROUP;
        }
        acc[0] = s0;
        acc[1] = s1;
        acc[2] = s2;
        th_conv_requant(p, acc, oc, 1, out);
    }
}

th_status th_conv2d_s8(const th_conv_params *p, const int8_t *input, const int8_t *filter,
                       const int32_t *bias, int8_t *output, int16_t *scratch) {
    const int32_t out_c = p->out_c;
    const int32_t kp = (p->k_h * th_conv_patch_row(p) + 7) & ~7;
    const int32_t pixels = p->batches * p->out_h * p->out_w;
    int16_t *col = scratch;

    if (p->depth_multiplier != 1) {
        return TH_ERROR;
    }
    /* The pad entries [K, kp) are never written by th_im2col. */
    memset(col, 0, (size_t)(TH_CONV_SLOTS * kp) * sizeof(int16_t));
    /* A pointwise, stride-1, unpadded conv over whole words: output pixel n reads
     * input pixel n, so the column fill needs no geometry (th_im2col's per-pixel
     * divisions and window checks cost about as much as its copy there). */
    const int pointwise = p->k_h == 1 && p->k_w == 1 && p->stride_h == 1 && p->stride_w == 1 && p->pad_h == 0 &&
                          p->pad_w == 0 && p->in_h == p->out_h && p->in_w == p->out_w &&
                          (p->in_c & 3) == 0 && th_conv_patch_row(p) == p->in_c;
    const uint32_t off2 = th_dup16(p->input_offset);
    for (int32_t px = 0; px < pixels; px += TH_CONV_SLOTS) {
        /* Past the last pixel a slot repeats it: its results land on the same bytes. */
        int8_t *out[TH_CONV_SLOTS];
        for (int32_t sl = 0; sl < TH_CONV_SLOTS; ++sl) {
            const int32_t n = TH_MIN(px + sl, pixels - 1);
            if (pointwise) {
                th_col_words(col + (sl << 2), input + n * p->in_c, p->in_c, off2);
            } else {
                th_im2col(p, input, n, col, sl);
            }
            out[sl] = output + n * out_c;
        }
        th_conv_pixels(p, col, filter, bias, out, kp);
    }
    return TH_OK;
}
