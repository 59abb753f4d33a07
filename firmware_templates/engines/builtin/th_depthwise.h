/* tinyhil builtin engine: DEPTHWISE_CONV_2D, int8, depth multiplier 1 fast path. */
#ifndef TH_DEPTHWISE_H
#define TH_DEPTHWISE_H

#include "th_conv.h"

/* Largest k_h * k_w the fast kernel takes (a 32-bit valid-tap mask). */
#define TH_DW_MAX_TAPS 32

/* Depthwise convolution with depth_multiplier 1, prepared at build time:
 *
 * - weights re-laid out channel-group-major: for each group of 4 channels,
 *   for each tap t (row-major over k_h x k_w), the 4 channels' weights as one
 *   word; then the channels % 4 remaining channels as [tap][channel];
 * - bias[c] is folded: the model's bias + input_offset * sum_t w[t][c], so
 *   the inner loops multiply raw int8 inputs; a tap in the padding reads the
 *   input zero point (zero once offset), as TFLM skips it;
 * - fast_requant (set when the generator proved |accumulator| < 2^30 and every
 *   shift is in [-31, -1]): requantize with one rounding high multiply and a
 *   rounding shift instead of the general 64-bit sequence, same results.
 *
 * - pairs (optional, 3x3, stride 1, dilation 1, channels % 4 == 0, fast
 *   requantization, pad_w <= 1): the layer's th_dw_pairs.h function; each
 *   output row's three input rows are then copied into win (3 rows of
 *   in_w + 2 pixels, the outer columns and rows outside the image the input
 *   zero point) and the row runs through it two pixels at a time.
 *
 * Bit-exact with TFLM's DepthwiseConvPerChannel: the sums are the same
 * integers, re-associated. Shapes NHWC, geometry as th_conv_params. */
typedef struct th_dw_params th_dw_params;
typedef void (*th_dw_pairs_fn)(const th_dw_params *p, const int8_t *win, int32_t pairs, const int8_t *filter,
                               int8_t *out);
struct th_dw_params {
    int32_t batches;
    int32_t in_h, in_w;
    int32_t out_h, out_w;
    int32_t k_h, k_w;
    int32_t stride_h, stride_w;
    int32_t dil_h, dil_w;
    int32_t pad_h, pad_w;
    int32_t channels;
    int32_t input_offset;  /* -input zero point */
    int32_t output_offset; /* output zero point */
    int32_t act_min, act_max;
    int32_t fast_requant;
    const int32_t *bias; /* folded, one per channel */
    const int32_t *mult;
    const int32_t *shift; /* > 0 is a left shift (TFLM convention) */
    th_dw_pairs_fn pairs; /* 0: none */
    int8_t *win;          /* 3 * (in_w + 2) * channels bytes when pairs is set */
};

th_status th_depthwise_conv2d_s8_dm1(const th_dw_params *p, const int8_t *input,
                                     const int8_t *filter, int8_t *output);

#endif /* TH_DEPTHWISE_H */
