/* tinyhil builtin engine: FULLY_CONNECTED, int16x8 (TFLM FullyConnected[PerChannel] int16).
 *
 * TFLM sums (w + filter_offset) * (x + input_offset) in int64 (int32 with an
 * int32 bias); the weights are symmetric (filter_offset 0) and the generator
 * folds input_offset * sum(w) into the bias, so what remains is a GEMM over
 * raw int16 inputs: th_conv2d_s16_simd's, as a 1x1 convolution of a
 * batches x 1 image with accum_depth channels into out_depth channels. */
#include "th_int16.h"

th_status th_fully_connected_s16_simd(const th_fc_params *p, const th_rq16_params *rq,
                                      const int16_t *input, const int8_t *filter,
                                      int16_t *output) {
    th_conv_params c = {0};
    c.batches = 1;
    c.in_h = c.out_h = p->batches;
    c.in_w = c.out_w = 1;
    c.k_h = c.k_w = 1;
    c.stride_h = c.stride_w = 1;
    c.dil_h = c.dil_w = 1;
    c.in_c = p->accum_depth;
    c.out_c = p->out_depth;
    c.depth_multiplier = 1;
    return th_conv2d_s16_simd(&c, rq, input, filter, output);
}
