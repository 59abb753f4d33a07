/* tinyhil builtin engine: QUANTIZE and DEQUANTIZE at int16 (TFLM AffineQuantize, Requantize, Dequantize). */
#include "th_int16.h"

/* std::round on a float (halves away from zero) without libm; see th_quantize.c. */
static float th_round_half_away_f16(float x) {
    if (!(x > -8388608.0f && x < 8388608.0f)) {
        return x;
    }
    float t = (float)(int32_t)x;
    float frac = x - t;
    if (frac >= 0.5f) {
        t += 1.0f;
    } else if (frac <= -0.5f) {
        t -= 1.0f;
    }
    return t;
}

th_status th_quantize_f32_s16(const th_quantize_params *p, const float *input, int16_t *output) {
    for (int32_t i = 0; i < p->size; ++i) {
        const float r = th_round_half_away_f16(input[i] / p->scale);
        int32_t q;
        /* Saturate far-out values before the int conversion (NaN -> low end). */
        if (r > 131072.0f) {
            q = 131072;
        } else if (r > -131072.0f) {
            q = (int32_t)r;
        } else {
            q = -131072;
        }
        output[i] = th_clamp_s16(q + p->zero_point, INT16_MIN, INT16_MAX);
    }
    return TH_OK;
}

th_status th_dequantize_s16_f32(const th_dequantize_params *p, const int16_t *input,
                                float *output) {
    /* TFLM: (float)((double)scale * (q - zp)). |q - zp| < 2^17 and the scale has
     * a 24-bit significand, so the double product is exact and one float
     * multiply of the same exact value rounds identically. */
    for (int32_t i = 0; i < p->size; ++i) {
        output[i] = p->scale * (float)((int32_t)input[i] - p->zero_point);
    }
    return TH_OK;
}

th_status th_requantize_s16_s16(const th_requantize_params *p, const int16_t *input,
                                int16_t *output) {
    for (int32_t i = 0; i < p->size; ++i) {
        const int32_t v = th_mbqm((int32_t)input[i] - p->input_zp, p->mult, p->shift) + p->output_zp;
        output[i] = th_clamp_s16(v, INT16_MIN, INT16_MAX);
    }
    return TH_OK;
}

th_status th_requantize_s8_s16(const th_requantize_params *p, const int8_t *input,
                               int16_t *output) {
    for (int32_t i = 0; i < p->size; ++i) {
        const int32_t v = th_mbqm((int32_t)input[i] - p->input_zp, p->mult, p->shift) + p->output_zp;
        output[i] = th_clamp_s16(v, INT16_MIN, INT16_MAX);
    }
    return TH_OK;
}

th_status th_requantize_s16_s8(const th_requantize_params *p, const int16_t *input,
                               int8_t *output) {
    for (int32_t i = 0; i < p->size; ++i) {
        const int32_t v = th_mbqm((int32_t)input[i] - p->input_zp, p->mult, p->shift) + p->output_zp;
        output[i] = th_clamp_s8(v, INT8_MIN, INT8_MAX);
    }
    return TH_OK;
}
