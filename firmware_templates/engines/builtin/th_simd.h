/*
 * tinyhil builtin engine: packed 16-bit SIMD helpers.
 *
 * On cores with the DSP extension (Cortex-M4/M7/M33: __ARM_FEATURE_DSP) each
 * helper is one ACLE intrinsic, i.e. one instruction. Elsewhere (RV32, the host
 * build) each is an exact C emulation, so kernels restructured around these
 * helpers (packing, weight re-layout) compute the same integers everywhere and
 * the host tests exercise the same algorithm the firmware runs.
 *
 * A word holds two int16 lanes: lane 0 in bits 0..15, lane 1 in bits 16..31.
 */
#ifndef TH_SIMD_H
#define TH_SIMD_H

#include <stdint.h>
#include <string.h>

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
#define TH_SIMD_DSP 1
#else
#define TH_SIMD_DSP 0
#endif

/* Four int8 from any address (unaligned loads are fine on v7-M; memcpy becomes one LDR). */
static inline uint32_t th_read_s8x4(const int8_t *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* Two int16 from a 2-byte aligned address. */
static inline uint32_t th_read_s16x2(const int16_t *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

static inline void th_write_s16x2(int16_t *p, uint32_t v) { memcpy(p, &v, sizeof v); }

#if TH_SIMD_DSP

/* Bytes 0 and 2 of x, sign-extended into lanes 0 and 1. */
static inline uint32_t th_sxtb16(uint32_t x) { return (uint32_t)__sxtb16((int8x4_t)x); }

/* Bytes 1 and 3 of x, sign-extended into lanes 0 and 1: SXTB16 with ROR #8, one
 * instruction (gcc 12 has no __ror and does not fold a rotate into SXTB16). */
static inline uint32_t th_sxtb16_ror8(uint32_t x) {
    uint32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}

/* Lane-wise a + (bytes 0 and 2 of x, sign-extended), modulo 2^16 per lane. */
static inline uint32_t th_sxtab16(uint32_t a, uint32_t x) {
    return (uint32_t)__sxtab16((int16x2_t)a, (int8x4_t)x);
}

/* Lane-wise a + (bytes 1 and 3 of x, sign-extended). */
static inline uint32_t th_sxtab16_ror8(uint32_t a, uint32_t x) {
    uint32_t r;
    __asm__("sxtab16 %0, %1, %2, ror #8" : "=r"(r) : "r"(a), "r"(x));
    return r;
}

/* acc + x.lane0 * y.lane0 + x.lane1 * y.lane1 (signed 16-bit lanes). */
static inline int32_t th_smlad(uint32_t x, uint32_t y, int32_t acc) {
    return __smlad((int16x2_t)x, (int16x2_t)y, acc);
}

#else

static inline int32_t th_lane0(uint32_t x) { return (int16_t)(x & 0xFFFFu); }
static inline int32_t th_lane1(uint32_t x) { return (int16_t)(x >> 16); }
static inline uint32_t th_pack16(int32_t lo, int32_t hi) {
    return ((uint32_t)lo & 0xFFFFu) | ((uint32_t)hi << 16);
}

static inline uint32_t th_sxtb16(uint32_t x) {
    return th_pack16((int8_t)(x & 0xFFu), (int8_t)((x >> 16) & 0xFFu));
}

static inline uint32_t th_sxtb16_ror8(uint32_t x) {
    return th_pack16((int8_t)((x >> 8) & 0xFFu), (int8_t)(x >> 24));
}

static inline uint32_t th_sxtab16(uint32_t a, uint32_t x) {
    uint32_t b = th_sxtb16(x);
    return th_pack16(th_lane0(a) + th_lane0(b), th_lane1(a) + th_lane1(b));
}

static inline uint32_t th_sxtab16_ror8(uint32_t a, uint32_t x) {
    uint32_t b = th_sxtb16_ror8(x);
    return th_pack16(th_lane0(a) + th_lane0(b), th_lane1(a) + th_lane1(b));
}

/* SMLAD wraps modulo 2^32 (it only sets the Q flag); unsigned arithmetic keeps that defined. */
static inline int32_t th_smlad(uint32_t x, uint32_t y, int32_t acc) {
    uint32_t p0 = (uint32_t)(th_lane0(x) * th_lane0(y));
    uint32_t p1 = (uint32_t)(th_lane1(x) * th_lane1(y));
    return (int32_t)((uint32_t)acc + p0 + p1);
}

#endif /* TH_SIMD_DSP */

/* acc + x.lane0 * y.lane0 (SMLABB) and acc + x.lane1 * y.lane1 (SMLATT), signed
 * 16-bit lanes; both wrap modulo 2^32 like the instructions (which only set Q). */
#if TH_SIMD_DSP
static inline int32_t th_smlabb(uint32_t x, uint32_t y, int32_t acc) {
    return __smlabb((int32_t)x, (int32_t)y, acc);
}

static inline int32_t th_smlatt(uint32_t x, uint32_t y, int32_t acc) {
    return __smlatt((int32_t)x, (int32_t)y, acc);
}
#else
static inline int32_t th_smlabb(uint32_t x, uint32_t y, int32_t acc) {
    return (int32_t)((uint32_t)acc + (uint32_t)(th_lane0(x) * th_lane0(y)));
}

static inline int32_t th_smlatt(uint32_t x, uint32_t y, int32_t acc) {
    return (int32_t)((uint32_t)acc + (uint32_t)(th_lane1(x) * th_lane1(y)));
}
#endif

/* Lane-wise offset pair: the same 16-bit value in both lanes. */
static inline uint32_t th_dup16(int32_t v) { return ((uint32_t)v & 0xFFFFu) * 0x00010001u; }

#endif /* TH_SIMD_H */
