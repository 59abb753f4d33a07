/*
 * tinyhil builtin engine: the Helium (MVE) operations the *_mve kernels use.
 *
 * With __ARM_FEATURE_MVE (gcc -mcpu=cortex-m55) each th_v* is the ACLE
 * intrinsic of arm_mve.h named beside it. Elsewhere (the host check, which
 * runs the MVE kernels through tinyhil engine check --isa mve) each is an
 * exact C emulation of that instruction as the Armv8.1-M Architecture
 * Reference Manual defines it: lanes are plain arrays, predicates one bit per
 * byte lane (as VPR.P0), and nothing here depends on the host's vector unit.
 *
 * Used: VCTP.8/.32, VLDRB.S8/.S32 (zeroing predicated forms), VLDRW.S32,
 * VMLADAVA.S8, VMUL.I32, VADD.I32, VDUP.32, VSHL.S32 (register), VQRDMULH.S32,
 * VRSHL.S32 (register), VQADD.S32, VAND, VSHR.S32, VMAX.S32, VMIN.S32,
 * VSTRB.32 (predicated) and its scatter form with a vector of byte offsets,
 * VDUP.8 and VSTRB.8 (predicated), VLDRW.S32 gather with shifted offsets,
 * VLDRB.S16, VMULLB.S16 and VMULLT.S16 (int), VLD20/VLD21.32, VMOVNB.I32,
 * VMOVNT.I32, VQMOVNB.S32, VQMOVNT.S32, VQMOVNB.S16, VADD.I32 (scalar) and
 * VSTRB.16.
 */
#ifndef TH_MVE_H
#define TH_MVE_H

#include <stdint.h>

#if defined(__ARM_FEATURE_MVE) && (__ARM_FEATURE_MVE & 1)
#include <arm_mve.h>
#define TH_MVE_NATIVE 1

typedef int8x16_t th_s8x16;
typedef int32x4_t th_s32x4;
typedef uint32x4_t th_u32x4;
typedef mve_pred16_t th_pred;

#define th_vctp8(n) vctp8q((uint32_t)(n))
#define th_vctp32(n) vctp32q((uint32_t)(n))
#define th_vld_s8_z(p, m) vldrbq_z_s8((p), (m))
#define th_vld_s8(p) vldrbq_s8(p)
#define th_vld_s8w_z(p, m) vldrbq_z_s32((p), (m))   /* 4 bytes sign-extended to 32 bits */
#define th_vld_s8w(p) vldrbq_s32(p)
#define th_vld_s32_z(p, m) vldrwq_z_s32((p), (m))
#define th_vld_s32(p) vldrwq_s32(p)
#define th_vmladava(acc, a, b) vmladavaq_s8((acc), (a), (b))
#define th_vmul(a, b) vmulq_s32((a), (b))
#define th_vadd(a, b) vaddq_s32((a), (b))
#define th_vdup(x) vdupq_n_s32(x)
#define th_vdup_u(x) vdupq_n_u32(x)
#define th_vshl(a, b) vshlq_s32((a), (b))
#define th_vqrdmulh(a, b) vqrdmulhq_s32((a), (b))
#define th_vrshl(a, b) vrshlq_s32((a), (b))
#define th_vqadd(a, b) vqaddq_s32((a), (b))
#define th_vand(a, b) vandq_s32((a), (b))
#define th_vshr31(a) vshrq_n_s32((a), 31)
#define th_vmax(a, b) vmaxq_s32((a), (b))
#define th_vmin(a, b) vminq_s32((a), (b))
#define th_vsetlane(v, x, i) vsetq_lane_s32((x), (v), (i))
#define th_vst_s8w_p(p, v, m) vstrbq_p_s32((p), (v), (m))
#define th_vst_s8w(p, v) vstrbq_s32((p), (v))
#define th_vst_s8w_scatter(p, off, v) vstrbq_scatter_offset_s32((p), (off), (v))
#define th_vld_u32(p) vldrwq_u32(p)
#define th_vdup_s8(x) vdupq_n_s8(x)
#define th_vas_u32(v) vreinterpretq_u32_s32(v)
#define th_vgather_s32(base, idx) vldrwq_gather_shifted_offset_s32((base), (idx))
#define th_vgather_s32_z(base, idx, m) vldrwq_gather_shifted_offset_z_s32((base), (idx), (m))
#define th_vst_s8_p(p, v, m) vstrbq_p_s8((p), (v), (m))
typedef int16x8_t th_s16x8;
#define th_vld_s8h(p) vldrbq_s16(p)           /* 8 bytes sign-extended to 16 bits */
#define th_vmullb(a, b) vmullbq_int_s16((a), (b)) /* lanes 0, 2, 4, 6 multiplied to 32 bits */
#define th_vmullt(a, b) vmulltq_int_s16((a), (b)) /* lanes 1, 3, 5, 7 */
/* Eight words de-interleaved: *even = p[0, 2, 4, 6], *odd = p[1, 3, 5, 7]. */
static inline void th_vld2_s32(const int32_t *p, th_s32x4 *even, th_s32x4 *odd) {
    /* gcc 12 would fold a following pointer step into VLD2x as a register
     * post-increment, which the instruction does not have: hide the address. */
    __asm__("" : "+r"(p));
    const int32x4x2_t v = vld2q_s32(p);
    *even = v.val[0];
    *odd = v.val[1];
}
/* The low bytes of even[0], odd[0], even[1], ... to p[0..7] (VMOVNB, VMOVNT, VSTRB.16). */
static inline void th_vst_s8_eo(int8_t *p, th_s32x4 even, th_s32x4 odd) {
    vstrbq_s16(p, vmovntq_s32(vmovnbq_s32(vuninitializedq_s16(), even), odd));
}
/* The same, each lane saturated to int8 on the way (VQMOVNB/VQMOVNT.S32 to int16,
 * VQMOVNB.S16 to the low byte of each halfword, VSTRB.16): the int8 clamp for free. */
static inline void th_vst_s8_eo_sat(int8_t *p, th_s32x4 even, th_s32x4 odd) {
    const int16x8_t h = vqmovntq_s32(vqmovnbq_s32(vuninitializedq_s16(), even), odd);
    vstrbq_s16(p, vreinterpretq_s16_s8(vqmovnbq_s16(vuninitializedq_s8(), h)));
}
#define th_vadd_n(a, x) vaddq_n_s32((a), (x))

#else /* the exact emulation */
#define TH_MVE_NATIVE 0

typedef struct { int8_t v[16]; } th_s8x16;
typedef struct { int32_t v[4]; } th_s32x4;
typedef struct { uint32_t v[4]; } th_u32x4;
typedef uint16_t th_pred;

/* VCTP: lanes [0, n) active; a 32-bit lane is four predicate bits. */
static inline th_pred th_vctp8(uint32_t n) {
    return (th_pred)(n >= 16u ? 0xFFFFu : (1u << n) - 1u);
}
static inline th_pred th_vctp32(uint32_t n) {
    return (th_pred)(n >= 4u ? 0xFFFFu : (1u << (4u * n)) - 1u);
}
static inline th_s8x16 th_vld_s8_z(const int8_t *p, th_pred m) {
    th_s8x16 r;
    for (int i = 0; i < 16; ++i) {
        r.v[i] = (m >> i) & 1u ? p[i] : 0;
    }
    return r;
}
static inline th_s8x16 th_vld_s8(const int8_t *p) { return th_vld_s8_z(p, 0xFFFFu); }
static inline th_s32x4 th_vld_s8w_z(const int8_t *p, th_pred m) {
    th_s32x4 r;
    for (int i = 0; i < 4; ++i) {
        r.v[i] = (m >> (4 * i)) & 1u ? (int32_t)p[i] : 0;
    }
    return r;
}
static inline th_s32x4 th_vld_s8w(const int8_t *p) { return th_vld_s8w_z(p, 0xFFFFu); }
static inline th_s32x4 th_vld_s32_z(const int32_t *p, th_pred m) {
    th_s32x4 r;
    for (int i = 0; i < 4; ++i) {
        r.v[i] = (m >> (4 * i)) & 1u ? p[i] : 0;
    }
    return r;
}
static inline th_s32x4 th_vld_s32(const int32_t *p) { return th_vld_s32_z(p, 0xFFFFu); }
static inline th_u32x4 th_vld_u32(const uint32_t *p) {
    th_u32x4 r;
    for (int i = 0; i < 4; ++i) {
        r.v[i] = p[i];
    }
    return r;
}
/* VMLADAVA.S8: acc + the sum of the 16 lane products (modulo 2^32). */
static inline int32_t th_vmladava(int32_t acc, th_s8x16 a, th_s8x16 b) {
    uint32_t s = (uint32_t)acc;
    for (int i = 0; i < 16; ++i) {
        s += (uint32_t)((int32_t)a.v[i] * (int32_t)b.v[i]);
    }
    return (int32_t)s;
}
static inline th_s32x4 th_vmul(th_s32x4 a, th_s32x4 b) {
    for (int i = 0; i < 4; ++i) {
        a.v[i] = (int32_t)((uint32_t)a.v[i] * (uint32_t)b.v[i]); /* the low 32 bits */
    }
    return a;
}
static inline th_s32x4 th_vadd(th_s32x4 a, th_s32x4 b) {
    for (int i = 0; i < 4; ++i) {
        a.v[i] = (int32_t)((uint32_t)a.v[i] + (uint32_t)b.v[i]);
    }
    return a;
}
static inline th_s32x4 th_vdup(int32_t x) {
    th_s32x4 r = {{x, x, x, x}};
    return r;
}
static inline th_u32x4 th_vdup_u(uint32_t x) {
    th_u32x4 r = {{x, x, x, x}};
    return r;
}
/* VSHL.S32 (register): shift left by the count's low byte, taken as signed;
 * a negative count shifts right (arithmetic, truncating); bits beyond 32 are lost. */
static inline int32_t th_shl1(int32_t x, int32_t count) {
    const int32_t c = (int8_t)(count & 0xFF);
    if (c >= 32) {
        return 0;
    }
    if (c >= 0) {
        return (int32_t)((uint32_t)x << c);
    }
    if (c <= -32) {
        return x < 0 ? -1 : 0;
    }
    return (int32_t)(x >> -c);
}
static inline th_s32x4 th_vshl(th_s32x4 a, th_s32x4 b) {
    for (int i = 0; i < 4; ++i) {
        a.v[i] = th_shl1(a.v[i], b.v[i]);
    }
    return a;
}
/* VQRDMULH.S32: saturate((2ab + 2^31) >> 32). */
static inline th_s32x4 th_vqrdmulh(th_s32x4 a, th_s32x4 b) {
    for (int i = 0; i < 4; ++i) {
        const int64_t p = (int64_t)a.v[i] * b.v[i];
        if (a.v[i] == INT32_MIN && b.v[i] == INT32_MIN) {
            a.v[i] = INT32_MAX;
        } else {
            /* 2p + 2^31 fits int64 (|p| <= 2^62 - 2^31 here). */
            a.v[i] = (int32_t)((2 * p + ((int64_t)1 << 31)) >> 32);
        }
    }
    return a;
}
/* VRSHL.S32 (register): a negative count is a rounding right shift,
 * (x + 2^(n-1)) >> n computed without overflow; a positive one shifts left. */
static inline th_s32x4 th_vrshl(th_s32x4 a, th_s32x4 b) {
    for (int i = 0; i < 4; ++i) {
        const int32_t c = (int8_t)(b.v[i] & 0xFF);
        if (c >= 0) {
            a.v[i] = th_shl1(a.v[i], c);
        } else if (c < -32) {
            a.v[i] = 0;
        } else {
            a.v[i] = (int32_t)(((int64_t)a.v[i] + ((int64_t)1 << (-c - 1))) >> -c);
        }
    }
    return a;
}
static inline th_s32x4 th_vqadd(th_s32x4 a, th_s32x4 b) {
    for (int i = 0; i < 4; ++i) {
        const int64_t s = (int64_t)a.v[i] + b.v[i];
        a.v[i] = (int32_t)(s > INT32_MAX ? INT32_MAX : (s < INT32_MIN ? INT32_MIN : s));
    }
    return a;
}
static inline th_s32x4 th_vand(th_s32x4 a, th_s32x4 b) {
    for (int i = 0; i < 4; ++i) {
        a.v[i] &= b.v[i];
    }
    return a;
}
static inline th_s32x4 th_vshr31(th_s32x4 a) {
    for (int i = 0; i < 4; ++i) {
        a.v[i] = a.v[i] < 0 ? -1 : 0;
    }
    return a;
}
static inline th_s32x4 th_vmax(th_s32x4 a, th_s32x4 b) {
    for (int i = 0; i < 4; ++i) {
        a.v[i] = a.v[i] > b.v[i] ? a.v[i] : b.v[i];
    }
    return a;
}
static inline th_s32x4 th_vmin(th_s32x4 a, th_s32x4 b) {
    for (int i = 0; i < 4; ++i) {
        a.v[i] = a.v[i] < b.v[i] ? a.v[i] : b.v[i];
    }
    return a;
}
static inline th_s32x4 th_vsetlane(th_s32x4 a, int32_t x, int i) {
    a.v[i] = x;
    return a;
}
/* VSTRB.32: the low byte of each active lane, to consecutive bytes. */
static inline void th_vst_s8w_p(int8_t *p, th_s32x4 v, th_pred m) {
    for (int i = 0; i < 4; ++i) {
        if ((m >> (4 * i)) & 1u) {
            p[i] = (int8_t)v.v[i];
        }
    }
}
static inline void th_vst_s8w(int8_t *p, th_s32x4 v) { th_vst_s8w_p(p, v, 0xFFFFu); }
static inline th_s8x16 th_vdup_s8(int8_t x) {
    th_s8x16 r;
    for (int i = 0; i < 16; ++i) {
        r.v[i] = x;
    }
    return r;
}
/* VSTRB.8 (predicated): active byte lanes only. */
static inline void th_vst_s8_p(int8_t *p, th_s8x16 v, th_pred m) {
    for (int i = 0; i < 16; ++i) {
        if ((m >> i) & 1u) {
            p[i] = v.v[i];
        }
    }
}
static inline th_u32x4 th_vas_u32(th_s32x4 v) {
    th_u32x4 r;
    for (int i = 0; i < 4; ++i) {
        r.v[i] = (uint32_t)v.v[i];
    }
    return r;
}
/* VLDRW.S32 gather, offsets shifted by 2: lane i = base[idx[i]] (0 where inactive). */
static inline th_s32x4 th_vgather_s32_z(const int32_t *base, th_u32x4 idx, th_pred m) {
    th_s32x4 r;
    for (int i = 0; i < 4; ++i) {
        r.v[i] = (m >> (4 * i)) & 1u ? base[idx.v[i]] : 0;
    }
    return r;
}
static inline th_s32x4 th_vgather_s32(const int32_t *base, th_u32x4 idx) {
    return th_vgather_s32_z(base, idx, 0xFFFFu);
}
/* VSTRB.32 scatter: lane i's low byte to p + off[i]. */
static inline void th_vst_s8w_scatter(int8_t *p, th_u32x4 off, th_s32x4 v) {
    for (int i = 0; i < 4; ++i) {
        p[off.v[i]] = (int8_t)v.v[i];
    }
}
typedef struct { int16_t v[8]; } th_s16x8;
static inline th_s16x8 th_vld_s8h(const int8_t *p) {
    th_s16x8 r;
    for (int i = 0; i < 8; ++i) {
        r.v[i] = p[i];
    }
    return r;
}
/* VMULLB/VMULLT.S16: the even (bottom) or odd (top) lanes' full 32-bit products. */
static inline th_s32x4 th_vmullb(th_s16x8 a, th_s16x8 b) {
    th_s32x4 r;
    for (int i = 0; i < 4; ++i) {
        r.v[i] = (int32_t)a.v[2 * i] * b.v[2 * i];
    }
    return r;
}
static inline th_s32x4 th_vmullt(th_s16x8 a, th_s16x8 b) {
    th_s32x4 r;
    for (int i = 0; i < 4; ++i) {
        r.v[i] = (int32_t)a.v[2 * i + 1] * b.v[2 * i + 1];
    }
    return r;
}
static inline void th_vld2_s32(const int32_t *p, th_s32x4 *even, th_s32x4 *odd) {
    for (int i = 0; i < 4; ++i) {
        even->v[i] = p[2 * i];
        odd->v[i] = p[2 * i + 1];
    }
}
/* VMOVNB/VMOVNT.I32 keep each lane's low 16 bits, VSTRB.16 their low bytes. */
static inline void th_vst_s8_eo(int8_t *p, th_s32x4 even, th_s32x4 odd) {
    for (int i = 0; i < 4; ++i) {
        p[2 * i] = (int8_t)even.v[i];
        p[2 * i + 1] = (int8_t)odd.v[i];
    }
}
/* VQMOVN saturates to the narrower type: to int16, then to int8. */
static inline int8_t th_sat8_via16(int32_t x) {
    const int32_t h = x < -32768 ? -32768 : (x > 32767 ? 32767 : x);
    return (int8_t)(h < -128 ? -128 : (h > 127 ? 127 : h));
}
static inline void th_vst_s8_eo_sat(int8_t *p, th_s32x4 even, th_s32x4 odd) {
    for (int i = 0; i < 4; ++i) {
        p[2 * i] = th_sat8_via16(even.v[i]);
        p[2 * i + 1] = th_sat8_via16(odd.v[i]);
    }
}
static inline th_s32x4 th_vadd_n(th_s32x4 a, int32_t x) {
    for (int i = 0; i < 4; ++i) {
        a.v[i] = (int32_t)((uint32_t)a.v[i] + (uint32_t)x);
    }
    return a;
}
#endif

/*
 * TFLite's MultiplyByQuantizedMultiplier on four lanes, then the output
 * offset and the activation clamp (what th_mbqm + th_clamp_s8 do per lane):
 * VSHL by the left shift (wrapping, as the reference's x * (1 << left)),
 * VQRDMULH (exactly gemmlowp's SaturatingRoundingDoublingHighMul), and
 * gemmlowp's RoundingDivideByPOT as VRSHL by -right after subtracting 1 from
 * negative lanes (saturating) where right > 0: that turns VRSHL's round half
 * up into round half away from zero and changes nothing else.
 */
static inline th_s32x4 th_vrequant_v(th_s32x4 acc, th_s32x4 mult, th_s32x4 shift, th_s32x4 out_off,
                                     th_s32x4 act_min, th_s32x4 act_max) {
    const th_s32x4 zero = th_vdup(0);
    const th_s32x4 left = th_vmax(shift, zero);
    const th_s32x4 right = th_vmin(shift, zero); /* -right shift, <= 0 */
    th_s32x4 x = th_vqrdmulh(th_vshl(acc, left), mult);
    /* -1 in lanes with x < 0 and a right shift: right >> 31 is -1 where right < 0. */
    x = th_vqadd(x, th_vand(th_vshr31(x), th_vshr31(right)));
    x = th_vadd(th_vrshl(x, right), out_off);
    return th_vmin(th_vmax(x, act_min), act_max);
}

/* th_vrequant_v when every lane's shift is a right shift by 1..31 (requant.py
 * right_shifts_only): no left shift, and the -1 for negative lanes needs no
 * mask. 7 instructions instead of 10. VQRDMULH never returns INT32_MIN for a
 * multiplier below 2^31, so the plain add cannot wrap. */
static inline th_s32x4 th_vrequant_fast_v(th_s32x4 acc, th_s32x4 mult, th_s32x4 shift, th_s32x4 out_off,
                                          th_s32x4 act_min, th_s32x4 act_max) {
    th_s32x4 x = th_vqrdmulh(acc, mult);
    x = th_vadd(x, th_vshr31(x));
    x = th_vadd(th_vrshl(x, shift), out_off);
    return th_vmin(th_vmax(x, act_min), act_max);
}

/* th_vrequant_fast_v without the clamp (the caller saturates to int8 as it
 * stores: th_vst_s8_eo_sat), the offset a scalar. */
static inline th_s32x4 th_vrequant_fast_noclamp(th_s32x4 acc, th_s32x4 mult, th_s32x4 shift, int32_t out_off) {
    th_s32x4 x = th_vqrdmulh(acc, mult);
    x = th_vadd(x, th_vshr31(x));
    return th_vadd_n(th_vrshl(x, shift), out_off);
}

/* th_vrequant_v with the offset and the clamp as scalars. */
static inline th_s32x4 th_vrequant(th_s32x4 acc, th_s32x4 mult, th_s32x4 shift, int32_t out_off,
                                   int32_t act_min, int32_t act_max) {
    return th_vrequant_v(acc, mult, shift, th_vdup(out_off), th_vdup(act_min), th_vdup(act_max));
}

#endif /* TH_MVE_H */
