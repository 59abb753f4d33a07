/*
 * tinyhil builtin engine: shared types and TFLM-exact fixed-point helpers.
 *
 * The integer arithmetic here reproduces TFLite's reference kernels
 * (gemmlowp-style double rounding, the TFLM default build) so that every
 * kernel's output is bit-exact with the tflite-micro interpreter.
 */
#ifndef TH_NN_COMMON_H
#define TH_NN_COMMON_H

#include <stdint.h>

typedef enum { TH_OK = 0, TH_ERROR = 1 } th_status;

#define TH_MIN(a, b) ((a) < (b) ? (a) : (b))
#define TH_MAX(a, b) ((a) > (b) ? (a) : (b))

/* gemmlowp SaturatingRoundingDoublingHighMul. */
static inline int32_t th_srdhm(int32_t a, int32_t b) {
    if (a == b && a == INT32_MIN) {
        return INT32_MAX;
    }
    int64_t ab = (int64_t)a * (int64_t)b;
    int32_t nudge = ab >= 0 ? (1 << 30) : (1 - (1 << 30));
    return (int32_t)((ab + nudge) / ((int64_t)1 << 31));
}

/* gemmlowp RoundingDivideByPOT (round half away from zero). */
static inline int32_t th_rdbpot(int32_t x, int32_t exponent) {
    int32_t mask = (int32_t)(((int64_t)1 << exponent) - 1);
    int32_t remainder = x & mask;
    int32_t threshold = (mask >> 1) + ((x < 0) ? 1 : 0);
    return (x >> exponent) + ((remainder > threshold) ? 1 : 0);
}

/* TFLite MultiplyByQuantizedMultiplier: shift > 0 is a left shift. */
static inline int32_t th_mbqm(int32_t x, int32_t multiplier, int32_t shift) {
    int32_t left = shift > 0 ? shift : 0;
    int32_t right = shift > 0 ? 0 : -shift;
    return th_rdbpot(th_srdhm((int32_t)((uint32_t)x << left), multiplier), right);
}

/* MultiplyByQuantizedMultiplierSmallerThanOneExp (shift <= 0). */
static inline int32_t th_mbqm_smaller_than_one(int32_t x, int32_t multiplier, int32_t shift) {
    return th_rdbpot(th_srdhm(x, multiplier), -shift);
}

/* MultiplyByQuantizedMultiplierGreaterThanOne (shift >= 0). */
static inline int32_t th_mbqm_greater_than_one(int32_t x, int32_t multiplier, int32_t shift) {
    return th_srdhm((int32_t)((uint32_t)x << shift), multiplier);
}

static inline int8_t th_clamp_s8(int32_t v, int32_t lo, int32_t hi) {
    return (int8_t)(v < lo ? lo : (v > hi ? hi : v));
}

#endif /* TH_NN_COMMON_H */
