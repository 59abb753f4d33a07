/* tinyhil builtin engine: the Helium (MVE) int8 kernels (th_mve_s8.c). */
#ifndef TH_MVE_S8_H
#define TH_MVE_S8_H

#include "th_conv.h"
#include "th_fully_connected.h"

/* Weights in their TFLite layout ([out][depth]); bias_eff = bias + input_offset
 * * (sum of the row's weights), never NULL. No scratch. */
th_status th_fully_connected_s8_mve(const th_fc_params *p, const int8_t *input, const int8_t *filter,
                                    const int32_t *bias_eff, int8_t *output);

/* Weights [out_c][k_h][k_w][in_c]; bias_eff as above; scratch holds four
 * patches of k_h * k_w * in_c bytes. */
th_status th_conv2d_s8_mve(const th_conv_params *p, const int8_t *input, const int8_t *filter,
                           const int32_t *bias_eff, int8_t *output, int8_t *scratch);

/* Depth multiplier 1, at most 32 taps. Weights [1][k_h][k_w][c]; bias_eff =
 * bias + input_offset * (sum of the channel's taps); zp_row: c bytes of the
 * input zero point. */
th_status th_depthwise_conv2d_s8_mve(const th_conv_params *p, const int8_t *input, const int8_t *filter,
                                     const int32_t *bias_eff, int8_t *output, const int8_t *zp_row);

#endif /* TH_MVE_S8_H */
