/* tinyhil builtin engine: CONCATENATION, int8. */
#include <string.h>

#include "th_concat.h"

th_status th_concat_s8(const th_concat_params *p, const int8_t *const *inputs, int8_t *output) {
    int8_t *out = output;
    for (int32_t o = 0; o < p->outer; ++o) {
        for (int32_t i = 0; i < p->num_inputs; ++i) {
            const int32_t n = p->copy_size[i];
            memcpy(out, inputs[i] + o * n, (size_t)n);
            out += n;
        }
    }
    return TH_OK;
}
