/* tinyhil builtin engine: MEAN, int8 (TFLM QuantizedMeanOrSum arithmetic). */
#ifndef TH_MEAN_H
#define TH_MEAN_H

#include "th_nn_common.h"

/* Most dimensions the generator emits for either index space. */
#define TH_MEAN_MAX_DIMS 8

/*
 * The input is seen as two index spaces: the kept ("outer") dimensions, in
 * row-major order of the output, and the reduced ("inner") dimensions. Each
 * dimension has a size and an input stride in elements; the generator drops
 * size-1 dimensions and merges neighbours, so a global average pool is
 * outer = {batch, channels}, inner = {height * width}.
 */
typedef struct {
    int32_t num_outputs;            /* product of outer_dims */
    int32_t n_outer;                /* 0..TH_MEAN_MAX_DIMS */
    const int32_t *outer_dims;
    const int32_t *outer_strides;
    int32_t n_inner;                /* 0..TH_MEAN_MAX_DIMS */
    const int32_t *inner_dims;
    const int32_t *inner_strides;
    int32_t count;                  /* elements averaged per output */
    int32_t input_zp;
    int32_t mult;                   /* in_scale / out_scale / count, folded */
    int32_t shift;
    int32_t output_zp;
} th_mean_params;

th_status th_mean_s8(const th_mean_params *p, const int8_t *input, int8_t *output);

#endif /* TH_MEAN_H */
