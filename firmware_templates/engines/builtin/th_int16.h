/*
 * tinyhil builtin engine: int16x8 kernels (int16 activations, int8 weights).
 *
 * TFLite's 16x8 scheme: activations are symmetric int16, weights symmetric
 * int8, conv/fully-connected biases int64 (or int32). The kernels reuse the
 * int8 kernels' parameter structs and follow TFLM's reference int16 paths:
 *
 *  - CONV_2D / FULLY_CONNECTED accumulate in int64 and requantize with the
 *    64-bit MultiplyByQuantizedMultiplier (multiplier reduced to 16 bits)
 *    when the bias is int64 (or absent); with an int32 bias TFLM accumulates
 *    in int32 (wrapping) and uses the 32-bit requantization.
 *  - DEPTHWISE_CONV_2D always takes the int64 path.
 *  - TFLM's int16 CONV_2D and DEPTHWISE_CONV_2D ignore zero points; its
 *    FULLY_CONNECTED applies them.
 *
 * CONV_2D, DEPTHWISE_CONV_2D and FULLY_CONNECTED run on the *_simd kernels
 * below; the plain convolutions take what those do not (depth multipliers
 * other than 1, a patch above int16x8.py's MAX_PATCH, a depthwise sum that
 * may leave int32).
 *  - ADD is the int8 arithmetic with a left shift of 15 instead of 20.
 */
#ifndef TH_INT16_H
#define TH_INT16_H

#include "th_conv.h"
#include "th_elementwise.h"
#include "th_fully_connected.h"
#include "th_nn_common.h"
#include "th_pool.h"
#include "th_quantize.h"
#include "th_requant.h"

/* TFLite MultiplyByQuantizedMultiplier(int64_t x, ...): -31 <= shift < 8. */
static inline int32_t th_mbqm64(int64_t x, int32_t multiplier, int32_t shift) {
    const int64_t reduced = multiplier < 0x7FFF0000 ? (multiplier + (1 << 15)) >> 16 : 0x7FFF;
    const int32_t total_shift = 15 - shift;
    const int64_t r = x * reduced + ((int64_t)1 << (total_shift - 1));
    /* TFLM truncates to int32 without saturating. */
    return (int32_t)(r >> total_shift);
}

static inline int16_t th_clamp_s16(int32_t v, int32_t lo, int32_t hi) {
    return (int16_t)(v < lo ? lo : (v > hi ? hi : v));
}

/* Plain convolutions: input_offset/output_offset in p are ignored (TFLM does). bias may be NULL. */
th_status th_conv2d_s16(const th_conv_params *p, const int16_t *input, const int8_t *filter,
                        const int64_t *bias, int16_t *output);
th_status th_conv2d_s16_acc32(const th_conv_params *p, const int16_t *input, const int8_t *filter,
                              const int32_t *bias, int16_t *output);
th_status th_depthwise_conv2d_s16(const th_conv_params *p, const int16_t *input,
                                  const int8_t *filter, const int64_t *bias, int16_t *output);

/*
 * SIMD kernels (DSP cores: SXTB16 and SMLAD / SMLABB / SMLATT; elsewhere the
 * same arithmetic in plain C). Weights are re-laid out at build time
 * (int16x8.py) so that SXTB16 of a weight word gives (w0, w1) and SXTB16 ROR
 * #8 gives (w2, w3), the lanes of two int16 input words read where they are:
 * each group of four weights is stored as w0, w2, w1, w3.
 *
 * The sums run in int32. An int8 x int16 product is at most 2^22 in
 * magnitude, and the generator knows every channel's sum of |w|, so it picks:
 *  - TH_RQ16_FAST: no partial or final sum (bias included) leaves int32 and
 *    every shift is in [-17, -1]. th_mbqm64(x) = (x * r + 2^(s - 1)) >> s
 *    with r the 16-bit multiplier and s = 15 - shift in [16, 32], which is
 *    SMMULR(x, r << (32 - s)): mult holds r << (17 + shift); one bias32.
 *  - TH_RQ16_EXACT64: TFLM's int64 path, th_mbqm64(sum + bias64); when a
 *    channel's sum may leave int32 (wide), partial sums of at most 259
 *    products (below 2^31) are added into int64 as they complete.
 *  - TH_RQ16_ACC32: TFLM's int32 accumulator (int32 bias or
 *    quantized_bias_type INT32), which wraps: so does SMLAD.
 */
#define TH_RQ16_EXACT64 0
#define TH_RQ16_FAST 1
#define TH_RQ16_ACC32 2

/* The SIMD kernels read the geometry from their th_conv_params / th_fc_params
 * and requantize through this (the params' mult and shift are not read). */
typedef struct {
    int32_t mode;          /* TH_RQ16_* */
    int32_t wide;          /* EXACT64: partial sums flushed into int64 (see above) */
    const int64_t *bias64; /* EXACT64; may be NULL */
    const int32_t *bias32; /* FAST and ACC32; may be NULL */
    const int32_t *mult;   /* EXACT64, ACC32: TFLM's multiplier; FAST: see above */
    const int32_t *shift;  /* EXACT64, ACC32 */
    int32_t output_offset; /* fully connected only (conv output zero points are 0) */
    int32_t act_min, act_max;
} th_rq16_params;

/* One output of the SIMD kernels, channel c: acc is the int32 sum (ACC32: modulo
 * 2^32), acc64 what a wide EXACT64 sum flushed so far (else 0). mode is a
 * constant where the kernels inline this. */
static inline __attribute__((always_inline)) int16_t th_rq16_out(const int32_t mode,
                                                                 const th_rq16_params *rq,
                                                                 int32_t c, int32_t acc,
                                                                 int64_t acc64) {
    int32_t v;
    if (mode == TH_RQ16_FAST) {
        v = th_smmulr(rq->bias32 != 0 ? acc + rq->bias32[c] : acc, rq->mult[c]);
    } else if (mode == TH_RQ16_ACC32) {
        const uint32_t a = (uint32_t)acc + (rq->bias32 != 0 ? (uint32_t)rq->bias32[c] : 0u);
        v = th_requant((int32_t)a, rq->mult[c], rq->shift[c]);
    } else {
        const int64_t x = acc64 + acc + (rq->bias64 != 0 ? rq->bias64[c] : 0);
        v = th_mbqm64(x, rq->mult[c], rq->shift[c]);
    }
    return th_clamp_s16(v + rq->output_offset, rq->act_min, rq->act_max);
}

/* How the SIMD kernels clamp TH_RQ16_FAST outputs without an output offset:
 * TH_SAT16_S16 for the whole int16 range (SSAT #16), TH_SAT16_U15 for [0,
 * 32767] (RELU; USAT #15), TH_SAT16_CLAMP for other ranges; TH_SAT16_NONE:
 * not a FAST output without offset (th_rq16_out). */
#define TH_SAT16_NONE (-1)
#define TH_SAT16_CLAMP 0
#define TH_SAT16_S16 1
#define TH_SAT16_U15 2

static inline int32_t th_rq16_sat(const th_rq16_params *rq) {
    if (rq->mode != TH_RQ16_FAST || rq->output_offset != 0) {
        return TH_SAT16_NONE;
    }
    if (rq->act_max == 32767 && rq->act_min == -32768) {
        return TH_SAT16_S16;
    }
    return rq->act_max == 32767 && rq->act_min == 0 ? TH_SAT16_U15 : TH_SAT16_CLAMP;
}

/* A FAST output: acc is the sum with the bias, m the FAST multiplier; sat a
 * constant where the kernels inline this. */
static inline __attribute__((always_inline)) int16_t th_rq16_fast(int32_t acc, int32_t m,
                                                                  const int32_t sat, int32_t lo,
                                                                  int32_t hi) {
    const int32_t v = th_smmulr(acc, m);
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    int32_t r;
    if (sat == TH_SAT16_S16) {
        __asm__("ssat %0, #16, %1" : "=r"(r) : "r"(v));
        return (int16_t)r;
    }
    if (sat == TH_SAT16_U15) {
        __asm__("usat %0, #15, %1" : "=r"(r) : "r"(v));
        return (int16_t)r;
    }
#else
    (void)sat; /* lo and hi are the same ranges */
#endif
    return th_clamp_s16(v, lo, hi);
}

/* CONV_2D, depth multiplier 1. filter (int16x8.py s16_weights): output
 * channels in blocks of four, then one at a time; per block the k = k_h *
 * k_w * in_c weights as groups of four (one word per channel, in the order
 * above), then the last k % 4 weights of each channel; word-aligned. A
 * patch that is one run of the input (1 x k_w windows never cut by the
 * padding: pointwise convolutions, fully connected) is read in place; other
 * patches are gathered into k int16 on the stack (0 where TFLM skips a tap;
 * rows outside the input are skipped when each is whole groups). */
th_status th_conv2d_s16_simd(const th_conv_params *p, const th_rq16_params *rq,
                             const int16_t *input, const int8_t *filter, int16_t *output);

/* The GEMM of th_conv2d_s16_simd over rows of k inputs read in place (its
 * pointwise case): output row r = filter x input row r, out_c channels. */
void th_s16_gemm_rows(const th_rq16_params *rq, const int16_t *input, int32_t rows, int32_t k,
                      const int8_t *filter, int32_t out_c, int16_t *output);

/* DEPTHWISE_CONV_2D, depth multiplier 1 (TH_RQ16_EXACT64 or FAST). filter
 * (int16x8.py dw_s16_weights): per group of four channels, one word per tap
 * (w0, w2, w1, w3); then the channels % 4 last channels as [tap][channel]. */
th_status th_depthwise_conv2d_s16_simd(const th_conv_params *p, const th_rq16_params *rq,
                                       const int16_t *input, const int8_t *filter,
                                       int16_t *output);

/* FULLY_CONNECTED: filter as th_conv2d_s16_simd's (k = accum_depth); the
 * input offset is folded into the bias at build time (p->input_offset and
 * filter_offset are not read). */
th_status th_fully_connected_s16_simd(const th_fc_params *p, const th_rq16_params *rq,
                                      const int16_t *input, const int8_t *filter,
                                      int16_t *output);

/* ADD with broadcasting; p->left_shift is 15. The output may be a same-shaped input. */
th_status th_add_s16(const th_add_params *p, const int16_t *input1, const int16_t *input2,
                     int16_t *output);

th_status th_avg_pool_s16(const th_pool_params *p, const int16_t *input, int16_t *output);
th_status th_max_pool_s16(const th_pool_params *p, const int16_t *input, int16_t *output);

/* SOFTMAX int16 -> int16 (TFLM SoftmaxInt16): input and output zero point 0,
 * output scale 1/32768. The two 513-entry tables are TFLM's LUTPopulate
 * results, computed by the code generator. The output may be the input. */
typedef struct {
    int32_t rows;
    int32_t depth;
    int32_t input_multiplier; /* beta * input scale / (10 / 65535) */
    int32_t input_shift;      /* > 0 is a left shift */
    const int16_t *exp_lut;   /* exp(x), x in [-10, 0] */
    const int16_t *recip_lut; /* 1 / (1 + x), x in [0, 1] */
} th_softmax_s16_params;

th_status th_softmax_s16(const th_softmax_s16_params *p, const int16_t *input, int16_t *output);

/* QUANTIZE / DEQUANTIZE at an int16 model's edges, and requantization to
 * and from int16 (params as for int8; the clamp is the output type's range). */
th_status th_quantize_f32_s16(const th_quantize_params *p, const float *input, int16_t *output);
th_status th_dequantize_s16_f32(const th_dequantize_params *p, const int16_t *input,
                                float *output);
th_status th_requantize_s16_s16(const th_requantize_params *p, const int16_t *input,
                                int16_t *output);
th_status th_requantize_s8_s16(const th_requantize_params *p, const int8_t *input,
                               int16_t *output);
th_status th_requantize_s16_s8(const th_requantize_params *p, const int16_t *input,
                               int8_t *output);

#endif /* TH_INT16_H */
