/* tinyhil builtin engine: QUANTIZE and DEQUANTIZE. */
#include "th_quantize.h"

/*
 * std::round on a float (halves away from zero) without libm. |x| >= 2^23 is
 * already integral (as are inf and NaN, returned unchanged); below that the
 * truncation and the fraction x - trunc(x) are exact in float.
 */
static float th_round_half_away_f(float x) {
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

th_status th_quantize_f32_s8(const th_quantize_params *p, const float *input, int8_t *output) {
    for (int32_t i = 0; i < p->size; ++i) {
        /* float32 division, as TFLM's AffineQuantize (val / (float)scale). */
        const float r = th_round_half_away_f(input[i] / p->scale);
        int32_t q;
        /* Saturate far-out values before the int conversion (NaN -> low end). */
        if (r > 1024.0f) {
            q = 1024;
        } else if (r > -1024.0f) {
            q = (int32_t)r;
        } else {
            q = -1024;
        }
        output[i] = th_clamp_s8(q + p->zero_point, INT8_MIN, INT8_MAX);
    }
    return TH_OK;
}

th_status th_requantize_s8(const th_requantize_params *p, const int8_t *input, int8_t *output) {
    for (int32_t i = 0; i < p->size; ++i) {
        const int32_t v = th_mbqm((int32_t)input[i] - p->input_zp, p->mult, p->shift) + p->output_zp;
        output[i] = th_clamp_s8(v, INT8_MIN, INT8_MAX);
    }
    return TH_OK;
}

th_status th_dequantize_s8_f32(const th_dequantize_params *p, const int8_t *input, float *output) {
    /*
     * TFLM computes (float)((double)scale * (q - zp)). The exact product of a
     * float32 scale (24-bit significand) and |q - zp| <= 255 fits in 32 bits,
     * so the double product is exact and the cast is the only rounding: one
     * float32 multiply rounds the same exact value the same way. Bit-exact,
     * without soft double on FPUs that are single precision only.
     */
    for (int32_t i = 0; i < p->size; ++i) {
        output[i] = p->scale * (float)((int32_t)input[i] - p->zero_point);
    }
    return TH_OK;
}
