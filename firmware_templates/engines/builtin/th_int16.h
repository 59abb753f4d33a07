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
 *    in int32 and uses the 32-bit requantization (the *_acc32 variants).
 *  - DEPTHWISE_CONV_2D always takes the int64 path.
 *  - TFLM's int16 CONV_2D and DEPTHWISE_CONV_2D ignore zero points.
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

/* Convolutions: input_offset/output_offset in p are ignored (TFLM does). bias may be NULL. */
th_status th_conv2d_s16(const th_conv_params *p, const int16_t *input, const int8_t *filter,
                        const int64_t *bias, int16_t *output);
th_status th_conv2d_s16_acc32(const th_conv_params *p, const int16_t *input, const int8_t *filter,
                              const int32_t *bias, int16_t *output);
th_status th_depthwise_conv2d_s16(const th_conv_params *p, const int16_t *input,
                                  const int8_t *filter, const int64_t *bias, int16_t *output);

/* Fully connected: offsets are applied as in the int8 kernel. bias may be NULL. */
th_status th_fully_connected_s16(const th_fc_params *p, const int16_t *input, const int8_t *filter,
                                 const int64_t *bias, int16_t *output);
th_status th_fully_connected_s16_acc32(const th_fc_params *p, const int16_t *input,
                                       const int8_t *filter, const int32_t *bias,
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
