/* tinyhil builtin engine: ADD and MUL, int8, with broadcasting (TFLM reference arithmetic). */
#ifndef TH_ELEMENTWISE_H
#define TH_ELEMENTWISE_H

#include "th_nn_common.h"

#define TH_BCAST_MAX_DIMS 8

/* Loop nest over the output, outermost loop first, precomputed by the code
 * generator. The output is written contiguously; stride1/stride2 are the
 * inputs' element strides per loop, 0 where an input is broadcast. Equal
 * shapes give ndims == 1 with unit strides. */
#define TH_BCAST_FIELDS                      \
    int32_t ndims;                           \
    int32_t shape[TH_BCAST_MAX_DIMS];        \
    int32_t stride1[TH_BCAST_MAX_DIMS];      \
    int32_t stride2[TH_BCAST_MAX_DIMS]

typedef struct {
    TH_BCAST_FIELDS;
    int32_t input1_offset;     /* -input1 zero point */
    int32_t input2_offset;     /* -input2 zero point */
    int32_t output_offset;     /* output zero point */
    int32_t left_shift;        /* 20 for int8 */
    int32_t input1_multiplier; /* each input to twice the larger input scale */
    int32_t input1_shift;      /* <= 0 */
    int32_t input2_multiplier;
    int32_t input2_shift;      /* <= 0 */
    int32_t output_multiplier; /* sum to the output scale */
    int32_t output_shift;      /* <= 0 */
    int32_t act_min;
    int32_t act_max;
    /* th_add_s8 with equal shapes (ndims 1), when the generator set them: each
     * input's rescaled value for every int8 byte, lut[v + 128] =
     * MultiplyByQuantizedMultiplierSmallerThanOneExp((v + offset) << left_shift, ...),
     * and how the sum may be requantized (TH_RQ_*, th_requant.h). */
    const int32_t *lut1;
    const int32_t *lut2;
    int32_t requant_mode;
} th_add_params;

typedef struct {
    TH_BCAST_FIELDS;
    int32_t input1_offset;
    int32_t input2_offset;
    int32_t output_offset;
    int32_t output_multiplier; /* input1 scale * input2 scale / output scale */
    int32_t output_shift;      /* > 0 is a left shift */
    int32_t act_min;
    int32_t act_max;
} th_mul_params;

/* The output may be the same buffer as a same-shaped input. */
th_status th_add_s8(const th_add_params *p, const int8_t *input1, const int8_t *input2,
                    int8_t *output);
th_status th_mul_s8(const th_mul_params *p, const int8_t *input1, const int8_t *input2,
                    int8_t *output);

/* Odometer over the outer loops (all but the innermost) of a broadcast nest:
 * advances idx and the two input offsets; returns 0 once every loop is done. */
static inline int th_bcast_next(int32_t ndims, const int32_t *shape, const int32_t *stride1,
                                const int32_t *stride2, int32_t *idx, int32_t *off1,
                                int32_t *off2) {
    for (int32_t d = ndims - 2; d >= 0; --d) {
        *off1 += stride1[d];
        *off2 += stride2[d];
        if (++idx[d] < shape[d]) {
            return 1;
        }
        idx[d] = 0;
        *off1 -= stride1[d] * shape[d];
        *off2 -= stride2[d] * shape[d];
    }
    return 0;
}

/* The broadcast loop nest shared by ADD and MUL: calls ONE(p, a, b) for every
 * output element, with fast paths for the innermost loop (both contiguous, or
 * the second input constant along it). p has ndims/shape/stride1/stride2.
 * T is the element type (int8_t; int16_t for the int16x8 kernels). */
#define TH_BCAST_APPLY(ONE, p, input1, input2, output) \
    TH_BCAST_APPLY_T(int8_t, ONE, p, input1, input2, output)

#define TH_BCAST_APPLY_T(T, ONE, p, input1, input2, output)                              \
    do {                                                                                 \
        const int32_t th_last_ = (p)->ndims - 1;                                         \
        const int32_t th_n_ = (p)->shape[th_last_];                                      \
        const int32_t th_st1_ = (p)->stride1[th_last_];                                  \
        const int32_t th_st2_ = (p)->stride2[th_last_];                                  \
        int32_t th_idx_[TH_BCAST_MAX_DIMS] = {0};                                        \
        int32_t th_off1_ = 0;                                                            \
        int32_t th_off2_ = 0;                                                            \
        T *th_out_ = (output);                                                           \
        do {                                                                             \
            const T *th_a_ = (input1) + th_off1_;                                        \
            const T *th_b_ = (input2) + th_off2_;                                        \
            if (th_st1_ == 1 && th_st2_ == 1) {                                          \
                for (int32_t i = 0; i < th_n_; ++i) {                                    \
                    th_out_[i] = ONE((p), th_a_[i], th_b_[i]);                           \
                }                                                                        \
            } else if (th_st2_ == 0) {                                                   \
                const int32_t th_b0_ = th_b_[0];                                         \
                for (int32_t i = 0; i < th_n_; ++i) {                                    \
                    th_out_[i] = ONE((p), th_a_[i * th_st1_], th_b0_);                   \
                }                                                                        \
            } else {                                                                     \
                const int32_t th_a0_ = th_a_[0];                                         \
                for (int32_t i = 0; i < th_n_; ++i) {                                    \
                    th_out_[i] = ONE((p), th_st1_ == 0 ? th_a0_ : th_a_[i * th_st1_],    \
                                     th_b_[i * th_st2_]);                                \
                }                                                                        \
            }                                                                            \
            th_out_ += th_n_;                                                            \
        } while (th_bcast_next((p)->ndims, (p)->shape, (p)->stride1, (p)->stride2, th_idx_, \
                               &th_off1_, &th_off2_));                                   \
    } while (0)

#endif /* TH_ELEMENTWISE_H */
