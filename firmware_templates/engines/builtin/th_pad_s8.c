/* tinyhil builtin engine: PAD / PADV2, int8. */
#include <string.h>

#include "th_pad.h"

static int th_pad_outside(int32_t i, int32_t left, int32_t size) {
    return i < left || i >= left + size;
}

th_status th_pad_s8(const th_pad_params *p, const int8_t *input, int8_t *output) {
    int32_t od[TH_PAD_DIMS];
    for (int32_t k = 0; k < TH_PAD_DIMS; ++k) {
        if (p->left[k] < 0 || p->right[k] < 0 || p->in_dims[k] < 0) {
            return TH_ERROR;
        }
        od[k] = p->in_dims[k] + p->left[k] + p->right[k];
    }
    const int pad = (int)(int8_t)p->pad_value;
    const int32_t row = od[4];
    const int32_t in_row = p->in_dims[4];
    const int32_t left = p->left[4];
    const int32_t right = p->right[4];
    const int8_t *in = input;
    int8_t *out = output;
    for (int32_t a = 0; a < od[0]; ++a) {
        const int pa = th_pad_outside(a, p->left[0], p->in_dims[0]);
        for (int32_t b = 0; b < od[1]; ++b) {
            const int pb = pa || th_pad_outside(b, p->left[1], p->in_dims[1]);
            for (int32_t c = 0; c < od[2]; ++c) {
                const int pc = pb || th_pad_outside(c, p->left[2], p->in_dims[2]);
                for (int32_t d = 0; d < od[3]; ++d) {
                    if (pc || th_pad_outside(d, p->left[3], p->in_dims[3])) {
                        memset(out, pad, (size_t)row);
                    } else {
                        memset(out, pad, (size_t)left);
                        memcpy(out + left, in, (size_t)in_row);
                        memset(out + left + in_row, pad, (size_t)right);
                        in += in_row;
                    }
                    out += row;
                }
            }
        }
    }
    return TH_OK;
}
