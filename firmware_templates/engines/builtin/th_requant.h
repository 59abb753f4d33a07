/* tinyhil builtin engine: fast exact requantization for the int8 GEMM kernels. */
#ifndef TH_REQUANT_H
#define TH_REQUANT_H

#include "th_nn_common.h"

/*
 * th_mbqm (TFLite MultiplyByQuantizedMultiplier) for a multiplier in
 * [0, 2^31), which is what the lowerings' quantize_multiplier produces: then
 * SaturatingRoundingDoublingHighMul never saturates, and its rounding
 * division by 2^31 (nudge +2^30 for a non-negative product, 1 - 2^30 for a
 * negative one, then truncation toward zero) equals floor((ab + 2^30) / 2^31)
 * in both cases: one SMLAL and a 64-bit shift. The final rounding shift is
 * gemmlowp's RoundingDivideByPOT, unchanged.
 */
static inline int32_t th_requant(int32_t acc, int32_t mult, int32_t shift) {
    const int32_t left = shift > 0 ? shift : 0;
    const int32_t right = shift > 0 ? 0 : -shift;
    const int64_t ab = (int64_t)(int32_t)((uint32_t)acc << left) * mult + ((int64_t)1 << 30);
    const int32_t x = (int32_t)(ab >> 31);
    const int32_t mask = (int32_t)(((uint32_t)1 << right) - 1u);
    const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
    return (x >> right) + ((x & mask) > threshold ? 1 : 0);
}

#endif /* TH_REQUANT_H */
