/* tinyhil builtin engine: CONV_2D and DEPTHWISE_CONV_2D, int8 (TFLM reference arithmetic). */
#ifndef TH_CONV_H
#define TH_CONV_H

#include "th_nn_common.h"

/* Shapes are NHWC. Conv weights are [out_c][k_h][k_w][in_c]; depthwise
 * weights are [1][k_h][k_w][out_c] with out_c = in_c * depth_multiplier and
 * output channel c reading input channel c / depth_multiplier. */
typedef struct {
    int32_t batches;
    int32_t in_h, in_w;
    int32_t out_h, out_w;
    int32_t k_h, k_w;
    int32_t stride_h, stride_w;
    int32_t dil_h, dil_w;       /* dilation factors */
    int32_t pad_h, pad_w;       /* padding before row/column 0 */
    int32_t in_c, out_c;
    int32_t depth_multiplier;   /* depthwise only (1 for conv) */
    int32_t input_offset;       /* -input zero point */
    int32_t output_offset;      /* output zero point */
    int32_t act_min, act_max;
    const int32_t *mult;        /* one per output channel (per-tensor: repeated) */
    const int32_t *shift;
    int32_t requant_mode;       /* th_conv2d_s8 only: TH_RQ_* (th_requant.h), 0 = exact */
    const int32_t *rq;          /* th_conv2d_s8 only, fast modes: per channel (mult, -shift - 1),
                                 * in place of mult and shift */
    int32_t patch_row;          /* th_conv2d_s8 only: a patch row's length in the columns and
                                 * weights, k_w * in_c or that rounded up to 4 (0: k_w * in_c) */
} th_conv_params;

/* Taps k in [*lo, *hi) of a kernel of `taps` taps keep origin + k * dil inside [0, size). */
static inline void th_conv_window(int32_t origin, int32_t dil, int32_t size, int32_t taps,
                                  int32_t *lo, int32_t *hi) {
    int32_t a = 0;
    int32_t b = taps;
    if (origin < 0) {
        a = (-origin + dil - 1) / dil;
    }
    if (origin >= size) {
        b = 0;
    } else {
        int32_t last = (size - 1 - origin) / dil + 1;
        b = TH_MIN(b, last);
    }
    *lo = TH_MIN(a, b);
    *hi = b;
}

/* bias may be NULL. filter is re-laid out at build time (conv.py conv_weights):
 * each kernel row padded to patch_row, rows zero-padded to kp = k_h * patch_row
 * rounded up to 8, channel pairs interleaved by groups of 4. scratch holds
 * 3 * kp int16 (three im2col columns). */
th_status th_conv2d_s8(const th_conv_params *p, const int8_t *input, const int8_t *filter,
                       const int32_t *bias, int8_t *output, int16_t *scratch);
th_status th_depthwise_conv2d_s8(const th_conv_params *p, const int8_t *input, const int8_t *filter,
                                 const int32_t *bias, int8_t *output);

#endif /* TH_CONV_H */
