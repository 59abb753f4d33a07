/* tinyhil builtin engine: CONCATENATION, int8 (a byte copy: equal quantization). */
#ifndef TH_CONCAT_H
#define TH_CONCAT_H

#include "th_nn_common.h"

typedef struct {
    int32_t outer;             /* product of the dims before the axis */
    int32_t num_inputs;
    const int32_t *copy_size;  /* per input: dim[axis] * product of the dims after it */
} th_concat_params;

th_status th_concat_s8(const th_concat_params *p, const int8_t *const *inputs, int8_t *output);

#endif /* TH_CONCAT_H */
