/* tinyhil builtin engine: FULLY_CONNECTED, int16x8 (TFLM FullyConnected[PerChannel] int16).
 *
 * TFLM sums (w + filter_offset) * (x + input_offset) in int64 (int32 with an
 * int32 bias); the weights are symmetric (filter_offset 0) and the generator
 * folds input_offset * sum(w) into the bias, so what remains is a GEMM over
 * raw int16 inputs, th_conv2d_s16_simd's for pointwise convolutions
 * (th_s16_gemm_rows). */
#include "th_int16.h"

th_status th_fully_connected_s16_simd(const th_fc_params *p, const th_rq16_params *rq,
                                      const int16_t *input, const int8_t *filter,
                                      int16_t *output) {
    th_s16_gemm_rows(rq, input, p->batches, p->accum_depth, filter, p->out_depth, output);
    return TH_OK;
}
