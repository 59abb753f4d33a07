/* tinyhil builtin engine: SOFTMAX over the last dimension, int8 -> int8 (TFLM reference arithmetic). */
#ifndef TH_SOFTMAX_H
#define TH_SOFTMAX_H

#include "th_nn_common.h"

typedef struct {
    int32_t rows;             /* elements / depth */
    int32_t depth;            /* last dimension, <= 4095 */
    int32_t input_multiplier; /* beta * input scale, as a Q5.26 rescaling multiplier */
    int32_t input_left_shift; /* >= 0 */
    int32_t diff_min;         /* input - row max below this contributes nothing */
} th_softmax_params;

/* Output quantization is fixed: scale 1/256, zero point -128. The output may
 * be the input's buffer. Returns TH_ERROR where TFLM aborts: a row whose sum
 * of exponentials reaches 512 (the reciprocal's shift would exceed 31). */
th_status th_softmax_s8(const th_softmax_params *p, const int8_t *input, int8_t *output);

#endif /* TH_SOFTMAX_H */
