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

/* SMMULR: (a * b + 2^31) >> 32. */
static inline int32_t th_smmulr(int32_t a, int32_t b) {
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
#else
    return (int32_t)(((int64_t)a * b + ((int64_t)1 << 31)) >> 32);
#endif
}

/*
 * th_requant plus the output offset, when the generator proved |acc| < 2^30
 * and shift in [-31, -1] (requant.py): (acc * m + 2^30) >> 31 is then
 * SMMULR(2 acc, m), and rounding x half away from zero by e = -shift is
 * ((y >> (e - 1)) + 1) >> 1 with y = x - (x < 0); e - 1 = ~shift, and
 * k = 1 + 2 * output_offset carries the offset through the last shift.
 */
/* Before the last halving, with the shift given as s = -shift - 1 (its bit
 * complement); acc is doubled modulo 2^32: only a zero multiplier's
 * accumulator may wrap (requant.py). */
static inline int32_t th_requant_fast_s2(int32_t acc, int32_t mult, int32_t s, int32_t k) {
    const int32_t x = th_smmulr((int32_t)((uint32_t)acc << 1), mult);
    return ((x + (x >> 31)) >> s) + k;
}

static inline int32_t th_requant_fast(int32_t acc, int32_t mult, int32_t shift, int32_t k) {
    return th_requant_fast_s2(acc, mult, ~shift, k) >> 1;
}

/* th_requant_fast with the shift given as s = -shift - 1. */
static inline int32_t th_requant_fast_s(int32_t acc, int32_t mult, int32_t s, int32_t k) {
    return th_requant_fast_s2(acc, mult, s, k) >> 1;
}

/* Saturate to int8 (SSAT #8 on DSP cores). */
static inline int8_t th_ssat8(int32_t v) {
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    int32_t r;
    __asm__("ssat %0, #8, %1" : "=r"(r) : "r"(v));
    return (int8_t)r;
#else
    return (int8_t)(v < -128 ? -128 : (v > 127 ? 127 : v));
#endif
}

/* th_ssat8(v >> 1): SSAT's own ASR #1, one instruction on DSP cores. The fast
 * requantization's last step is that halving, so with the int8 clamp it costs
 * nothing (th_requant_fast_sat8). */
static inline int8_t th_ssat8_half(int32_t v) {
#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
    int32_t r;
    __asm__("ssat %0, #8, %1, asr #1" : "=r"(r) : "r"(v));
    return (int8_t)r;
#else
    return th_ssat8(v >> 1);
#endif
}

/* th_ssat8(th_requant_fast(...)) and the same for th_requant_fast_s. */
static inline int8_t th_requant_fast_sat8(int32_t acc, int32_t mult, int32_t shift, int32_t k) {
    return th_ssat8_half(th_requant_fast_s2(acc, mult, ~shift, k));
}

static inline int8_t th_requant_fast_s_sat8(int32_t acc, int32_t mult, int32_t s, int32_t k) {
    return th_ssat8_half(th_requant_fast_s2(acc, mult, s, k));
}

/* Requantization modes (requant.py). */
#define TH_RQ_EXACT 0
#define TH_RQ_FAST 1
#define TH_RQ_FAST_SAT8 2

/* Requantize, offset and clamp one accumulator; mode is loop-invariant. */
static inline int8_t th_requant_out(int32_t mode, int32_t acc, int32_t mult, int32_t shift,
                                    int32_t out_off, int32_t act_min, int32_t act_max) {
    if (mode == TH_RQ_FAST_SAT8) {
        return th_requant_fast_sat8(acc, mult, shift, 1 + 2 * out_off);
    }
    if (mode == TH_RQ_FAST) {
        return th_clamp_s8(th_requant_fast(acc, mult, shift, 1 + 2 * out_off), act_min, act_max);
    }
    return th_clamp_s8(th_requant(acc, mult, shift) + out_off, act_min, act_max);
}

#endif /* TH_REQUANT_H */
