/* tinyhil builtin engine: DEPTHWISE_CONV_2D 3x3, stride 1 or 2, two output
 * pixels at a time with the layer's geometry built into the code.
 *
 * th_depthwise_conv2d_s8_dm1 copies the three input rows an output row reads
 * into a window padded with the input zero point (th_dw_params.win), so every
 * pixel is an interior one, and hands the row to the layer's pairs function.
 * The generator defines that function per layer with TH_DW_PAIRS_DEFINE: the
 * channel count CH and the window row stride RS are constants, so every tap
 * of both pixels is an immediate offset from one pointer, and on DSP cores
 * the inner block is assembly that keeps both pixels' accumulators for four
 * channels (8 registers) beside the widened input and weight words, in a
 * small out-of-line function per layer (inlined into the row loop, with all
 * 14 registers taken, gcc 12 could not always place it).
 *
 * Per group of four channels and per kernel row: three weight words and six
 * input words (pixel A's three columns, pixel B's three, one apart), each
 * loaded and split by SXTB16 into halfword pairs, and 24 SMLABB/SMLATT: 45
 * instructions per 24 MACs. One pixel at a time took 90 per 36 MACs plus
 * address arithmetic. Same integers as th_depthwise_conv2d_s8_dm1's other
 * paths (the weights and folded bias are the same arrays).
 */
#ifndef TH_DW_PAIRS_H
#define TH_DW_PAIRS_H

#include "th_depthwise.h"
#include "th_requant.h"
#include "th_simd.h"

#define TH_DWP_STR_(x) #x
#define TH_DWP_STR(x) TH_DWP_STR_(x)

#if TH_SIMD_DSP
/* A weight word at byte OFF of the group's 36, split into (w0, w2) and (w1, w3). */
#define TH_DWP_LDW(OFF)                                \
    "ldr %[we], [%[w], #" TH_DWP_STR(OFF) "]\n\t"       \
    "sxtb16 %[wo], %[we], ror #8\n\t"                  \
    "sxtb16 %[we], %[we]\n\t"
/* The input word of window row R, column J (pixel A's column 0 is column 0). */
#define TH_DWP_LDX(R, J)                                                              \
    "ldr %[xe], [%[q], #(" TH_DWP_STR(R) " * %c[rs] + " TH_DWP_STR(J) " * %c[ch])]\n\t" \
    "sxtb16 %[xo], %[xe], ror #8\n\t"                                                 \
    "sxtb16 %[xe], %[xe]\n\t"
/* The four channels' products of the current input and weight words into P's sums. */
#define TH_DWP_MAC(P)                                    \
    "smlabb %[" P "0], %[xe], %[we], %[" P "0]\n\t"       \
    "smlatt %[" P "2], %[xe], %[we], %[" P "2]\n\t"       \
    "smlabb %[" P "1], %[xo], %[wo], %[" P "1]\n\t"       \
    "smlatt %[" P "3], %[xo], %[wo], %[" P "3]\n\t"
/* One kernel row R of both pixels: weight kx meets pixel A's column kx and pixel
 * B's column kx + 1, which is pixel A's next column, still in registers. */
#define TH_DWP_ROW_ASM(R)                                                          \
    TH_DWP_LDW(12 * R) TH_DWP_LDX(R, 0) TH_DWP_MAC("a") TH_DWP_LDX(R, 1) TH_DWP_MAC("b") \
    TH_DWP_LDW(12 * R + 4) TH_DWP_MAC("a") TH_DWP_LDX(R, 2) TH_DWP_MAC("b")               \
    TH_DWP_LDW(12 * R + 8) TH_DWP_MAC("a") TH_DWP_LDX(R, 3) TH_DWP_MAC("b")
/* The same for stride 2: pixel B's column kx is pixel A's kx + 2, loaded apart. */
#define TH_DWP_ROW2_ASM(R)                                                                        \
    TH_DWP_LDW(12 * R) TH_DWP_LDX(R, 0) TH_DWP_MAC("a") TH_DWP_LDX(R, 2) TH_DWP_MAC("b")           \
    TH_DWP_LDW(12 * R + 4) TH_DWP_LDX(R, 1) TH_DWP_MAC("a") TH_DWP_LDX(R, 3) TH_DWP_MAC("b")       \
    TH_DWP_LDW(12 * R + 8) TH_DWP_LDX(R, 2) TH_DWP_MAC("a") TH_DWP_LDX(R, 4) TH_DWP_MAC("b")
#endif

/* Both pixels' sums for one group of four channels into acc[0..3] (pixel A)
 * and acc[4..7] (pixel B), from the group's bias: q points at pixel A's
 * window column 0 (row 0) for the group, pixel B is S CH bytes on (S the
 * stride, 1 or 2); w at the group's 9 weight words. The column
 * order above (A's column kx against weight kx, then B's column kx + 1 against
 * the same weight) reuses A's column kx + 1 for B's kx: four input loads per
 * row, not six. */
static inline __attribute__((always_inline)) void th_dwp_group(const int8_t *q, const int8_t *w,
                                                               const int32_t *bias, int32_t *acc,
                                                               const int32_t CH, const int32_t RS,
                                                               const int32_t S) {
    int32_t *const a = acc, *const b = acc + 4;
#if TH_SIMD_DSP
    int32_t a0 = bias[0], a1 = bias[1], a2 = bias[2], a3 = bias[3];
    int32_t b0 = a0, b1 = a1, b2 = a2, b3 = a3;
    uint32_t xe, xo, we, wo;
#define TH_DWP_OPERANDS                                                                                     \
    : [a0] "+r"(a0), [a1] "+r"(a1), [a2] "+r"(a2), [a3] "+r"(a3), [b0] "+r"(b0), [b1] "+r"(b1), [b2] "+r"(b2), \
      [b3] "+r"(b3), [xe] "=&r"(xe), [xo] "=&r"(xo), [we] "=&r"(we), [wo] "=&r"(wo)                          \
    : [q] "r"(q), [w] "r"(w), [ch] "i"(CH), [rs] "i"(RS)
    if (S == 1) {
        __asm__("" TH_DWP_ROW_ASM(0) TH_DWP_ROW_ASM(1) TH_DWP_ROW_ASM(2) TH_DWP_OPERANDS);
    } else {
        __asm__("" TH_DWP_ROW2_ASM(0) TH_DWP_ROW2_ASM(1) TH_DWP_ROW2_ASM(2) TH_DWP_OPERANDS);
    }
#undef TH_DWP_OPERANDS
    a[0] = a0, a[1] = a1, a[2] = a2, a[3] = a3;
    b[0] = b0, b[1] = b1, b[2] = b2, b[3] = b3;
#else
    for (int32_t j = 0; j < 4; ++j) {
        a[j] = b[j] = bias[j];
    }
    for (int32_t r = 0; r < 3; ++r) {
        for (int32_t kx = 0; kx < 3; ++kx) {
            const uint32_t wv = th_read_s8x4(w + 12 * r + 4 * kx);
            const uint32_t xa = th_read_s8x4(q + r * RS + kx * CH);
            const uint32_t xb = th_read_s8x4(q + r * RS + (kx + S) * CH);
            for (int32_t i = 0; i < 4; ++i) {
                const int32_t wi = (int8_t)(wv >> (8 * i));
                a[i] += (int8_t)(xa >> (8 * i)) * wi;
                b[i] += (int8_t)(xb >> (8 * i)) * wi;
            }
        }
    }
#endif
}

/* `pairs` pixel pairs along a window row: pixel 2k at win + 2k CH (its window
 * column 0), outputs to out (2 CH bytes per pair). MODE: TH_RQ_FAST_SAT8 or
 * TH_RQ_FAST (the generator uses this path for the fast requantization only). */
typedef void (*th_dwp_group_fn)(const int8_t *q, const int8_t *w, const int32_t *bias, int32_t *acc);

static inline __attribute__((always_inline)) void th_dwp_run(const th_dw_params *p, const int8_t *win,
                                                             int32_t pairs, const int8_t *filter, int8_t *out,
                                                             const int32_t CH, const int32_t S,
                                                             const int32_t MODE, th_dwp_group_fn group) {
    /* Fields into locals: an int8 store may alias anything, so a field read
     * through p would be reloaded after every output. */
    const int32_t k = 1 + 2 * p->output_offset;
    const int32_t lo = p->act_min, hi = p->act_max;
    const int32_t *const bias = p->bias, *const mult = p->mult, *const shift = p->shift;
    for (int32_t i = 0; i < pairs; ++i, win += 2 * S * CH, out += 2 * CH) {
        const int8_t *w = filter;
        for (int32_t c = 0; c < CH; c += 4, w += 36) {
            int32_t acc[8];
            const int32_t *const a = acc, *const b = acc + 4;
            group(win + c, w, bias + c, acc);
            for (int32_t j = 0; j < 4; ++j) {
                const int32_t m = mult[c + j], s = shift[c + j];
                if (MODE == TH_RQ_FAST_SAT8) {
                    out[c + j] = th_requant_fast_sat8(a[j], m, s, k);
                    out[CH + c + j] = th_requant_fast_sat8(b[j], m, s, k);
                } else {
                    out[c + j] = th_clamp_s8(th_requant_fast(a[j], m, s, k), lo, hi);
                    out[CH + c + j] = th_clamp_s8(th_requant_fast(b[j], m, s, k), lo, hi);
                }
            }
        }
    }
}

/* A layer's pairs function (th_dw_params.pairs), CH and RS literal constants. */
#define TH_DW_PAIRS_DEFINE(NAME, CH, RS, S, MODE)                                                      \
    static __attribute__((noinline)) void NAME##_group(const int8_t *q, const int8_t *w,           \
                                                       const int32_t *bias, int32_t *acc) {         \
        th_dwp_group(q, w, bias, acc, (CH), (RS), (S));                                                  \
    }                                                                                               \
    static void NAME(const th_dw_params *p, const int8_t *win, int32_t pairs, const int8_t *filter, \
                     int8_t *out) {                                                                 \
        th_dwp_run(p, win, pairs, filter, out, (CH), (S), (MODE), NAME##_group);                         \
    }

#endif /* TH_DW_PAIRS_H */
