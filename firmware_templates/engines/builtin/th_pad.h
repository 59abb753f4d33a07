/* tinyhil builtin engine: PAD / PADV2 with a constant value, int8. */
#ifndef TH_PAD_H
#define TH_PAD_H

#include "th_nn_common.h"

#define TH_PAD_DIMS 5

/*
 * Shapes are extended to 5-D with leading 1s; the generator merges an axis
 * into its unpadded inner neighbour, so padding H and W of NHWC becomes
 * {1, 1, N, H, W*C} with the W padding scaled by C.
 */
typedef struct {
    int32_t in_dims[TH_PAD_DIMS];
    int32_t left[TH_PAD_DIMS];
    int32_t right[TH_PAD_DIMS];
    int32_t pad_value; /* int8 value written to padded elements */
} th_pad_params;

th_status th_pad_s8(const th_pad_params *p, const int8_t *input, int8_t *output);

#endif /* TH_PAD_H */
