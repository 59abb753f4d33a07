/* tinyhil builtin engine: AVERAGE_POOL_2D / MAX_POOL_2D, int8 NHWC (TFLM reference arithmetic). */
#ifndef TH_POOL_H
#define TH_POOL_H

#include "th_nn_common.h"

typedef struct {
    int32_t batches;
    int32_t in_h;
    int32_t in_w;
    int32_t depth;    /* channels, same for input and output */
    int32_t out_h;
    int32_t out_w;
    int32_t stride_h;
    int32_t stride_w;
    int32_t filter_h;
    int32_t filter_w;
    int32_t pad_h;    /* top padding */
    int32_t pad_w;    /* left padding */
    int32_t act_min;  /* fused activation clamp, in output quanta */
    int32_t act_max;
} th_pool_params;

/* Input and output share one quantization; windows are clipped at the borders.
 * Returns TH_ERROR if a window holds no input element. */
th_status th_avg_pool_s8(const th_pool_params *p, const int8_t *input, int8_t *output);
th_status th_max_pool_s8(const th_pool_params *p, const int8_t *input, int8_t *output);

#endif /* TH_POOL_H */
