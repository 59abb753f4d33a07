/* tinyhil builtin engine: DEPTHWISE_CONV_2D, int8, depth multiplier 1 (see th_depthwise.h).
 *
 * Four channels at a time: one 32-bit load brings a tap's four input
 * channels, another the four weights; on cores with the DSP extension
 * SXTB16 splits each into two halfword pairs and SMLABB/SMLATT accumulate
 * the four products. Elsewhere the same sums run on bytes. Interior pixels of
 * a 3x3 kernel with dilation 1 take an unrolled path with no bounds checks;
 * border pixels (and other kernel sizes) read the input zero point for taps
 * in the padding, which the folded bias turns into "no contribution". */
#include <string.h>

#include "th_depthwise.h"
#include "th_requant.h"

#if defined(__ARM_FEATURE_DSP) && __ARM_FEATURE_DSP
#include <arm_acle.h>
#define TH_DW_DSP 1
#else
#define TH_DW_DSP 0
#endif

/* The hot loops: out of line, and on GCC without pre-allocation scheduling
 * (which hoists all nine taps' loads and SXTB16s and then spills). clang has
 * no such option and needs none. */
#if defined(__GNUC__) && !defined(__clang__)
#define TH_DW_LOOP __attribute__((noinline, optimize("no-schedule-insns")))
#else
#define TH_DW_LOOP __attribute__((noinline))
#endif

static inline uint32_t th_dw_ld(const int8_t *p) {
    uint32_t v;
    memcpy(&v, p, sizeof v);
    return v;
}

/* acc[0..3] += x.byte[j] * w.byte[j] for the four signed bytes of two words. */
#if TH_DW_DSP
/* SXTB16 with its ROR #8 operand (bytes 1 and 3); GCC does not fold a rotate in. */
static inline int32_t th_dw_sxtb16_odd(uint32_t x) {
    int32_t r;
    __asm__("sxtb16 %0, %1, ror #8" : "=r"(r) : "r"(x));
    return r;
}

#define TH_DW_MAC4(a0, a1, a2, a3, xv, wv)              \
    do {                                                \
        const uint32_t th_x_ = (xv);                    \
        const uint32_t th_w_ = (wv);                    \
        const int32_t th_xe_ = __sxtb16(th_x_);         \
        const int32_t th_we_ = __sxtb16(th_w_);         \
        a0 = __smlabb(th_xe_, th_we_, a0);              \
        a2 = __smlatt(th_xe_, th_we_, a2);              \
        const int32_t th_xo_ = th_dw_sxtb16_odd(th_x_); \
        const int32_t th_wo_ = th_dw_sxtb16_odd(th_w_); \
        a1 = __smlabb(th_xo_, th_wo_, a1);              \
        a3 = __smlatt(th_xo_, th_wo_, a3);              \
    } while (0)

/* SMMULR: (a * b + 2^31) >> 32. */
static inline int32_t th_dw_smmulr(int32_t a, int32_t b) {
    int32_t r;
    __asm__("smmulr %0, %1, %2" : "=r"(r) : "r"(a), "r"(b));
    return r;
}
#else
#define TH_DW_MAC4(a0, a1, a2, a3, xv, wv)                                     \
    do {                                                                       \
        const uint32_t th_x_ = (xv);                                           \
        const uint32_t th_w_ = (wv);                                           \
        a0 += (int32_t)(int8_t)(th_x_) * (int32_t)(int8_t)(th_w_);             \
        a1 += (int32_t)(int8_t)(th_x_ >> 8) * (int32_t)(int8_t)(th_w_ >> 8);   \
        a2 += (int32_t)(int8_t)(th_x_ >> 16) * (int32_t)(int8_t)(th_w_ >> 16); \
        a3 += (int32_t)(int8_t)(th_x_ >> 24) * (int32_t)(int8_t)(th_w_ >> 24); \
    } while (0)

static inline int32_t th_dw_smmulr(int32_t a, int32_t b) {
    return (int32_t)(((int64_t)a * b + ((int64_t)1 << 31)) >> 32);
}
#endif

/* th_mbqm for a non-negative multiplier (always so for conv scales): the
 * gemmlowp nudge-and-truncate equals adding 2^30 and shifting right by 31. */
static inline int32_t th_dw_requant(int32_t acc, int32_t mult, int32_t shift) {
    if (shift > 0) {
        acc = (int32_t)((uint32_t)acc << shift);
    }
    int32_t x = (int32_t)(((int64_t)acc * mult + ((int64_t)1 << 30)) >> 31);
    if (shift < 0) {
        const int32_t e = -shift;
        const int32_t mask = (int32_t)(((int64_t)1 << e) - 1);
        const int32_t threshold = (mask >> 1) + (x < 0 ? 1 : 0);
        x = (x >> e) + ((x & mask) > threshold ? 1 : 0);
    }
    return x;
}

/* Requantization modes: the general sequence, or (when the generator proved
 * |acc| < 2^30 and every shift in [-31, -1]) SMMULR plus one rounding shift,
 * with the activation clamp as a plain saturation when it is the int8 range. */
#define TH_DW_EXACT 0
#define TH_DW_FAST 1
#define TH_DW_FAST_FULL 2

/* Fast requantization plus the output offset: (acc * m + 2^30) >> 31 is
 * SMMULR(2 acc, m); rounding half away from zero by e = -shift is
 * ((y >> (e - 1)) + 1) >> 1 with y = x - (x < 0); and e - 1 = ~shift. The
 * output offset rides along: k = 1 + 2 * offset. */
static inline int32_t th_dw_requant_fast(int32_t acc, int32_t mult, int32_t shift, int32_t k) {
    const int32_t x = th_dw_smmulr(acc * 2, mult);
    return (((x + (x >> 31)) >> ~shift) + k) >> 1;
}

/* Requantize, offset and clamp one accumulator of channel c. The fields are
 * read into locals first: an int8 store may alias anything, so a field read
 * through p would be reloaded after every store. */
#define TH_DW_OUT(MODE, c, acc)                                                             \
    ((MODE) == TH_DW_FAST_FULL                                                              \
         ? th_requant_fast_sat8((acc), mult[c], shift[c], k_off)                             \
     : (MODE) == TH_DW_FAST                                                                 \
         ? th_clamp_s8(th_dw_requant_fast((acc), mult[c], shift[c], k_off), act_min, act_max) \
         : th_clamp_s8(th_dw_requant((acc), mult[c], shift[c]) + out_off, act_min, act_max))

#define TH_DW_LOCALS(p)                                  \
    const int32_t *const mult = (p)->mult;               \
    const int32_t *const shift = (p)->shift;             \
    const int32_t out_off = (p)->output_offset;          \
    const int32_t k_off = 1 + 2 * (p)->output_offset;    \
    const int32_t act_min = (p)->act_min;                \
    const int32_t act_max = (p)->act_max;                \
    (void)out_off;                                       \
    (void)k_off

/* One interior output pixel of a 3x3, dilation-1 kernel, channels % 4 == 0: x
 * points at the window's top-left input pixel, rs is the input row stride. */
__attribute__((always_inline)) static inline void th_dw_pixel_3x3(const th_dw_params *p, const int8_t *x, int32_t rs,
                                   const int8_t *w, int8_t *out, const int mode) {
    const int32_t ch = p->channels;
    const int32_t down = rs - 2 * ch; /* from a row's third tap to the next row's first */
    const int32_t *fb = p->bias;
    TH_DW_LOCALS(p);
    for (int32_t c = 0; c < ch; c += 4) {
        const int8_t *q = x + c;
        int32_t a0 = fb[0], a1 = fb[1], a2 = fb[2], a3 = fb[3];
        TH_DW_MAC4(a0, a1, a2, a3, th_dw_ld(q), th_dw_ld(w));
        q += ch;
        TH_DW_MAC4(a0, a1, a2, a3, th_dw_ld(q), th_dw_ld(w + 4));
        q += ch;
        TH_DW_MAC4(a0, a1, a2, a3, th_dw_ld(q), th_dw_ld(w + 8));
        q += down;
        TH_DW_MAC4(a0, a1, a2, a3, th_dw_ld(q), th_dw_ld(w + 12));
        q += ch;
        TH_DW_MAC4(a0, a1, a2, a3, th_dw_ld(q), th_dw_ld(w + 16));
        q += ch;
        TH_DW_MAC4(a0, a1, a2, a3, th_dw_ld(q), th_dw_ld(w + 20));
        q += down;
        TH_DW_MAC4(a0, a1, a2, a3, th_dw_ld(q), th_dw_ld(w + 24));
        q += ch;
        TH_DW_MAC4(a0, a1, a2, a3, th_dw_ld(q), th_dw_ld(w + 28));
        q += ch;
        TH_DW_MAC4(a0, a1, a2, a3, th_dw_ld(q), th_dw_ld(w + 32));
        out[c] = TH_DW_OUT(mode, c, a0);
        out[c + 1] = TH_DW_OUT(mode, c + 1, a1);
        out[c + 2] = TH_DW_OUT(mode, c + 2, a2);
        out[c + 3] = TH_DW_OUT(mode, c + 3, a3);
        w += 36;
        fb += 4;
    }
}

/* Kept out of line so each loop gets the registers to itself. */
/* A run of n interior pixels along a row (input step xs bytes apart). GCC's
 * pre-allocation scheduling hoists the loads and SXTB16s of all nine taps and
 * then spills; without it the loop keeps its operands in registers (about
 * half the instructions on Cortex-M4). Out of line so the loop gets the
 * registers to itself. One copy per fast requantization mode; the exact mode
 * (rare: left shifts or huge accumulators) takes the generic pixel path. */
#define TH_DW_RUN_3X3(NAME, MODE)                                                             \
    TH_DW_LOOP static void NAME(                                                              \
        const th_dw_params *p, const int8_t *x, int32_t xs, int32_t n, int32_t rs,            \
        const int8_t *w, int8_t *out) {                                                       \
        for (int32_t i = 0; i < n; ++i) {                                                     \
            th_dw_pixel_3x3(p, x, rs, w, out, MODE);                                          \
            x += xs;                                                                          \
            out += p->channels;                                                               \
        }                                                                                     \
    }

TH_DW_RUN_3X3(th_dw_run_3x3_fast, TH_DW_FAST)
TH_DW_RUN_3X3(th_dw_run_3x3_full, TH_DW_FAST_FULL)

/* A border pixel of a 3x3 kernel, channels [c0, c1) (c1 - c0 <= TH_DW_ZP_BYTES):
 * tap t reads tp[t] + (c - c0), a padding tap points at a buffer of the input
 * zero point. Same loop as the interior with the tap addresses from a table. */
#define TH_DW_ZP_BYTES 64

__attribute__((always_inline)) static inline void th_dw_pixel_3x3_tab(
    const th_dw_params *p, const int8_t *const *tp, int32_t c0, int32_t c1, const int8_t *w,
    int8_t *out, const int mode) {
    const int32_t *fb = p->bias + c0;
    TH_DW_LOCALS(p);
    w += 9 * c0;
    for (int32_t c = c0; c < c1; c += 4) {
        const int32_t o = c - c0;
        int32_t a0 = fb[0], a1 = fb[1], a2 = fb[2], a3 = fb[3];
        TH_DW_MAC4(a0, a1, a2, a3, th_dw_ld(tp[0] + o), th_dw_ld(w));
        TH_DW_MAC4(a0, a1, a2, a3, th_dw_ld(tp[1] + o), th_dw_ld(w + 4));
        TH_DW_MAC4(a0, a1, a2, a3, th_dw_ld(tp[2] + o), th_dw_ld(w + 8));
        TH_DW_MAC4(a0, a1, a2, a3, th_dw_ld(tp[3] + o), th_dw_ld(w + 12));
        TH_DW_MAC4(a0, a1, a2, a3, th_dw_ld(tp[4] + o), th_dw_ld(w + 16));
        TH_DW_MAC4(a0, a1, a2, a3, th_dw_ld(tp[5] + o), th_dw_ld(w + 20));
        TH_DW_MAC4(a0, a1, a2, a3, th_dw_ld(tp[6] + o), th_dw_ld(w + 24));
        TH_DW_MAC4(a0, a1, a2, a3, th_dw_ld(tp[7] + o), th_dw_ld(w + 28));
        TH_DW_MAC4(a0, a1, a2, a3, th_dw_ld(tp[8] + o), th_dw_ld(w + 32));
        out[c] = TH_DW_OUT(mode, c, a0);
        out[c + 1] = TH_DW_OUT(mode, c + 1, a1);
        out[c + 2] = TH_DW_OUT(mode, c + 2, a2);
        out[c + 3] = TH_DW_OUT(mode, c + 3, a3);
        w += 36;
        fb += 4;
    }
}

TH_DW_LOOP static void th_dw_border_3x3(
    const th_dw_params *p, const int8_t *in_b, int32_t base, const int32_t *toff, uint32_t valid,
    const int8_t *zbuf, const int8_t *w, int8_t *out, int mode) {
    const int8_t *tp[9];
    for (int32_t c0 = 0; c0 < p->channels; c0 += TH_DW_ZP_BYTES) {
        const int32_t c1 = TH_MIN(c0 + TH_DW_ZP_BYTES, p->channels);
        for (int32_t t = 0; t < 9; ++t) {
            tp[t] = ((valid >> t) & 1u) ? in_b + (base + toff[t] + c0) : zbuf;
        }
        if (mode == TH_DW_FAST_FULL) {
            th_dw_pixel_3x3_tab(p, tp, c0, c1, w, out, TH_DW_FAST_FULL);
        } else {
            th_dw_pixel_3x3_tab(p, tp, c0, c1, w, out, TH_DW_FAST);
        }
    }
}

/* Any output pixel: tap t reads input byte offset base + toff[t] when bit t
 * of valid is set, else the input zero point (zp4: it in all four bytes). */
TH_DW_LOOP static void th_dw_pixel(const th_dw_params *p, const int8_t *in_b,
                                                  int32_t base, const int32_t *toff,
                                                  uint32_t valid, uint32_t zp4,
                                                  const int8_t *w, int8_t *out) {
    const int32_t ch = p->channels;
    const int32_t groups = ch >> 2;
    const int32_t taps = p->k_h * p->k_w;
    const int32_t *fb = p->bias;
    const int mode = p->fast_requant ? TH_DW_FAST : TH_DW_EXACT;
    TH_DW_LOCALS(p);
    for (int32_t g = 0; g < groups; ++g) {
        const int32_t xg = base + 4 * g;
        int32_t a0 = fb[0], a1 = fb[1], a2 = fb[2], a3 = fb[3];
        for (int32_t t = 0; t < taps; ++t) {
            const uint32_t xv = ((valid >> t) & 1u) ? th_dw_ld(in_b + (xg + toff[t])) : zp4;
            TH_DW_MAC4(a0, a1, a2, a3, xv, th_dw_ld(w));
            w += 4;
        }
        const int32_t c = 4 * g;
        out[c] = TH_DW_OUT(mode, c, a0);
        out[c + 1] = TH_DW_OUT(mode, c + 1, a1);
        out[c + 2] = TH_DW_OUT(mode, c + 2, a2);
        out[c + 3] = TH_DW_OUT(mode, c + 3, a3);
        fb += 4;
    }
    /* The channels % 4 left: weights [tap][channel]. */
    const int32_t rest = ch - 4 * groups;
    const int32_t zp = (int8_t)(zp4 & 0xffu);
    for (int32_t i = 0; i < rest; ++i) {
        const int32_t c = 4 * groups + i;
        int32_t acc = fb[i];
        for (int32_t t = 0; t < taps; ++t) {
            const int32_t xv = ((valid >> t) & 1u) ? in_b[(base + toff[t]) + c] : zp;
            acc += xv * w[t * rest + i];
        }
        out[c] = TH_DW_OUT(mode, c, acc);
    }
}

/* n bytes (a multiple of 4, both pointers word aligned) from src to dst, eight
 * words per LDM/STM pair on Arm. */
static void th_dw_copy_words(int8_t *dst, const int8_t *src, int32_t n) {
#if defined(__ARM_ARCH) && !defined(__ARM_FEATURE_MVE)
    if (n >= 32) {
        const int8_t *end = src + (n & ~31);
        __asm__ volatile(
            "1:\n\t"
            "ldmia %[s]!, {r3, r4, r5, r6}\n\t"
            "stmia %[d]!, {r3, r4, r5, r6}\n\t"
            "ldmia %[s]!, {r3, r4, r5, r6}\n\t"
            "stmia %[d]!, {r3, r4, r5, r6}\n\t"
            "cmp %[s], %[e]\n\t"
            "bne 1b\n\t"
            : [s] "+r"(src), [d] "+r"(dst)
            : [e] "r"(end)
            : "r3", "r4", "r5", "r6", "cc", "memory");
        n &= 31;
    }
#endif
    memcpy(dst, src, (size_t)n);
}

/* 3x3, stride 1 or 2: each output row through the padded window, two pixels
 * at a time (th_dw_pairs.h); an odd last pixel through the one-pixel run. */
static void th_dw_rows_paired(const th_dw_params *p, const int8_t *input, const int8_t *filter,
                              int8_t *output, int mode) {
    const int32_t ch = p->channels;
    const int32_t row = p->in_w * ch;
    const int32_t wrow = row + 2 * ch;
    const int zp = (int)(int8_t)(-p->input_offset);
    int8_t *const win = p->win;
    for (int32_t r = 0; r < 3; ++r) { /* the outer columns never change */
        memset(win + r * wrow, zp, (size_t)ch);
        memset(win + r * wrow + ch + row, zp, (size_t)ch);
    }
    const int8_t *x0 = win + (1 - p->pad_w) * ch; /* output column 0's window */
    const int32_t pairs = p->out_w >> 1;
    int8_t *out = output;
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *in_b = input + b * p->in_h * row;
        for (int32_t oy = 0; oy < p->out_h; ++oy, out += p->out_w * ch) {
            for (int32_t r = 0; r < 3; ++r) {
                const int32_t iy = oy * p->stride_h - p->pad_h + r;
                int8_t *dst = win + r * wrow + ch;
                if (iy >= 0 && iy < p->in_h) {
                    th_dw_copy_words(dst, in_b + iy * row, row);
                } else {
                    memset(dst, zp, (size_t)row);
                }
            }
            p->pairs(p, x0, pairs, filter, out);
            if (p->out_w & 1) {
                const int32_t ox = p->out_w - 1;
                const int8_t *x = x0 + ox * p->stride_w * ch;
                if (mode == TH_DW_FAST_FULL) {
                    th_dw_run_3x3_full(p, x, ch, 1, wrow, filter, out + ox * ch);
                } else {
                    th_dw_run_3x3_fast(p, x, ch, 1, wrow, filter, out + ox * ch);
                }
            }
        }
    }
}

th_status th_depthwise_conv2d_s8_dm1(const th_dw_params *p, const int8_t *input,
                                     const int8_t *filter, int8_t *output) {
    const int32_t ch = p->channels;
    const int32_t taps = p->k_h * p->k_w;
    const int32_t rs = p->in_w * ch;
    const uint32_t zp4 = (uint32_t)(uint8_t)(int8_t)(-p->input_offset) * 0x01010101u;
    const int mode = !p->fast_requant                             ? TH_DW_EXACT
                     : (p->act_min <= -128 && p->act_max >= 127) ? TH_DW_FAST_FULL
                                                                 : TH_DW_FAST;
    const int unrolled = p->k_h == 3 && p->k_w == 3 && p->dil_h == 1 && p->dil_w == 1 &&
                         (ch & 3) == 0 && mode != TH_DW_EXACT;
    int32_t toff[TH_DW_MAX_TAPS];
    int8_t zbuf[TH_DW_ZP_BYTES];
    int8_t *out = output;

    if (taps > TH_DW_MAX_TAPS) {
        return TH_ERROR;
    }
    if (p->pairs != 0) {
        if (!unrolled || p->stride_h != p->stride_w || p->stride_w < 1 || p->stride_w > 2 || p->pad_w > 1 ||
            p->win == 0 ||
            ((uintptr_t)input & 3u) != 0 || ((uintptr_t)p->win & 3u) != 0) {
            return TH_ERROR;
        }
        th_dw_rows_paired(p, input, filter, output, mode);
        return TH_OK;
    }
    memset(zbuf, (int)(int8_t)(-p->input_offset), sizeof zbuf);
    for (int32_t ky = 0; ky < p->k_h; ++ky) {
        for (int32_t kx = 0; kx < p->k_w; ++kx) {
            toff[ky * p->k_w + kx] = ky * p->dil_h * rs + kx * p->dil_w * ch;
        }
    }
    for (int32_t b = 0; b < p->batches; ++b) {
        const int8_t *in_b = input + b * p->in_h * rs;
        for (int32_t oy = 0; oy < p->out_h; ++oy) {
            const int32_t iy0 = oy * p->stride_h - p->pad_h;
            int32_t ky_lo, ky_hi;
            th_conv_window(iy0, p->dil_h, p->in_h, p->k_h, &ky_lo, &ky_hi);
            const int row_full = unrolled && ky_lo == 0 && ky_hi == p->k_h;
            /* Interior columns: ox in [ox_lo, ox_hi) has its whole window inside. */
            int32_t ox_lo = p->out_w, ox_hi = p->out_w;
            if (row_full) {
                const int32_t span = (p->k_w - 1) * p->dil_w;
                ox_lo = (p->pad_w + p->stride_w - 1) / p->stride_w;
                ox_hi = p->in_w - span + p->pad_w > 0
                            ? (p->in_w - span + p->pad_w - 1) / p->stride_w + 1
                            : 0;
                ox_hi = TH_MIN(ox_hi, p->out_w);
                if (ox_hi <= ox_lo) {
                    ox_lo = ox_hi = p->out_w;
                }
            }
            for (int32_t ox = 0; ox < p->out_w; ++ox) {
                if (ox == ox_lo) {
                    const int32_t n = ox_hi - ox_lo;
                    const int8_t *x = in_b + (iy0 * rs + (ox * p->stride_w - p->pad_w) * ch);
                    if (mode == TH_DW_FAST_FULL) {
                        th_dw_run_3x3_full(p, x, p->stride_w * ch, n, rs, filter, out);
                    } else {
                        th_dw_run_3x3_fast(p, x, p->stride_w * ch, n, rs, filter, out);
                    }
                    out += n * ch;
                    ox = ox_hi - 1;
                    continue;
                }
                const int32_t ix0 = ox * p->stride_w - p->pad_w;
                int32_t kx_lo, kx_hi;
                th_conv_window(ix0, p->dil_w, p->in_w, p->k_w, &kx_lo, &kx_hi);
                uint32_t valid = 0;
                for (int32_t ky = ky_lo; ky < ky_hi; ++ky) {
                    for (int32_t kx = kx_lo; kx < kx_hi; ++kx) {
                        valid |= 1u << (ky * p->k_w + kx);
                    }
                }
                if (unrolled) {
                    th_dw_border_3x3(p, in_b, iy0 * rs + ix0 * ch, toff, valid, zbuf, filter,
                                     out, mode);
                } else {
                    th_dw_pixel(p, in_b, iy0 * rs + ix0 * ch, toff, valid, zp4, filter, out);
                }
                out += ch;
            }
        }
    }
    return TH_OK;
}
