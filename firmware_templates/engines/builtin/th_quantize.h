/* tinyhil builtin engine: QUANTIZE and DEQUANTIZE (TFLM reference arithmetic). */
#ifndef TH_QUANTIZE_H
#define TH_QUANTIZE_H

#include "th_nn_common.h"

/* float32 -> int8: q = clamp(round_half_away(x / scale) + zero_point). */
typedef struct {
    int32_t size;
    float scale;        /* the output's float32 scale */
    int32_t zero_point; /* the output's zero point */
} th_quantize_params;

/* int8 -> int8: q = clamp(mbqm(x - input_zp, mult, shift) + output_zp). */
typedef struct {
    int32_t size;
    int32_t input_zp;
    int32_t mult;       /* QuantizeMultiplier(in_scale / out_scale) */
    int32_t shift;
    int32_t output_zp;
} th_requantize_params;

/* int8 -> float32: x = scale * (q - zero_point). */
typedef struct {
    int32_t size;
    float scale;        /* the input's float32 scale */
    int32_t zero_point; /* the input's zero point */
} th_dequantize_params;

th_status th_quantize_f32_s8(const th_quantize_params *p, const float *input, int8_t *output);
/* output may equal input (element i is read before it is written). */
th_status th_requantize_s8(const th_requantize_params *p, const int8_t *input, int8_t *output);
th_status th_dequantize_s8_f32(const th_dequantize_params *p, const int8_t *input, float *output);

#endif /* TH_QUANTIZE_H */
