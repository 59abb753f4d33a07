/*
 * tinyhil builtin engine: SOFTMAX, int8.
 *
 * Fixed-point formats (Qm.n: m integer bits, n = 31 - m fraction bits):
 *   scaled input differences  Q5.26
 *   exponentials              Q0.31
 *   running sum of exps       Q12.19
 * exp(x) for x <= 0 splits x into a part in [-1/4, 0) (a 4th-order Taylor
 * polynomial around -1/8) and whole quarters (a product of exp(-2^k)
 * constants); 1/sum comes from Newton-Raphson on a normalised sum. Every
 * step rounds as gemmlowp's fixed-point library does, which TFLM uses.
 */
#include "th_softmax.h"

/* Plain wrapping add/sub (the fixed-point library does not saturate these). */
static inline int32_t th_fx_add(int32_t a, int32_t b) {
    return (int32_t)((uint32_t)a + (uint32_t)b);
}

static inline int32_t th_fx_sub(int32_t a, int32_t b) {
    return (int32_t)((uint32_t)a - (uint32_t)b);
}

/* x * 2^e for 0 < e < 31, saturating to the int32 range. */
static inline int32_t th_fx_sat_shl(int32_t x, int32_t e) {
    const int32_t limit = (int32_t)(((uint32_t)1 << (31 - e)) - 1u);
    if (x > limit) {
        return INT32_MAX;
    }
    if (x < -limit) {
        return INT32_MIN;
    }
    return (int32_t)((uint32_t)x << e);
}

/* exp(a) for a in [-1/4, 0), a and result in Q0.31. */
static int32_t th_exp_quarter(int32_t a) {
    const int32_t exp_minus_eighth = 1895147668; /* exp(-1/8) */
    const int32_t one_third = 715827883;         /* 1/3 */
    const int32_t x = th_fx_add(a, (int32_t)1 << 28); /* x = a + 1/8 */
    const int32_t x2 = th_srdhm(x, x);
    const int32_t x3 = th_srdhm(x2, x);
    const int32_t x4 = th_srdhm(x2, x2);
    const int32_t x4_over_4 = th_rdbpot(x4, 2);
    /* x^2/2 + x^3/6 + x^4/24 */
    const int32_t tail = th_rdbpot(th_fx_add(th_srdhm(th_fx_add(x4_over_4, x3), one_third), x2), 1);
    return th_fx_add(exp_minus_eighth, th_srdhm(exp_minus_eighth, th_fx_add(x, tail)));
}

/* exp(a) for a <= 0; a in Q5.26, result in Q0.31. */
static int32_t th_exp_negative_q5(int32_t a) {
    /* exp(-2^k) for k = -2 .. 4, in Q0.31. */
    static const int32_t exp_minus_pow2[7] = {
        1672461947, 1302514674, 790015084, 290630308, 39332535, 720401, 242
    };
    const int32_t quarter = (int32_t)1 << 24;
    /* a = r - q: r in [-1/4, 0), q >= 0 a whole number of quarters. */
    const int32_t r = th_fx_sub(a & (quarter - 1), quarter);
    int32_t result = th_exp_quarter(th_fx_sat_shl(r, 5));
    const int32_t q = th_fx_sub(r, a);
    for (int32_t k = 0; k < 7; ++k) {
        if (q & ((int32_t)1 << (24 + k))) {
            result = th_srdhm(result, exp_minus_pow2[k]);
        }
    }
    return a == 0 ? INT32_MAX : result;
}

/* 1 / (1 + a) for a in [0, 1); a in Q0.31, result in Q0.31. */
static int32_t th_one_over_one_plus_x(int32_t a) {
    const int32_t c48_17 = 1515870810;      /* 48/17 in Q2.29 */
    const int32_t c_neg32_17 = -1010580540; /* -32/17 in Q2.29 */
    const int32_t one_q2 = (int32_t)1 << 29;
    /* (1 + a) / 2 rounded, in Q0.31 (a >= 0 so the sum is positive). */
    const int32_t half_den = (int32_t)(((int64_t)a + INT32_MAX + 1) / 2);
    int32_t x = th_fx_add(c48_17, th_srdhm(half_den, c_neg32_17)); /* Q2.29 */
    for (int32_t i = 0; i < 3; ++i) {
        const int32_t err = th_fx_sub(one_q2, th_srdhm(half_den, x)); /* Q2.29 */
        x = th_fx_add(x, th_fx_sat_shl(th_srdhm(x, err), 2));        /* Q4.27 -> Q2.29 */
    }
    /* x / 2 read as Q1.30, brought to Q0.31. */
    return th_fx_sat_shl(x, 1);
}

static inline int32_t th_clz32(uint32_t v) {
    int32_t n = 0;
    if (v == 0) {
        return 32;
    }
    while ((v & 0x80000000u) == 0) {
        v <<= 1;
        ++n;
    }
    return n;
}

th_status th_softmax_s8(const th_softmax_params *p, const int8_t *input, int8_t *output) {
    const int32_t depth = p->depth;
    for (int32_t row = 0; row < p->rows; ++row) {
        const int8_t *in = input + row * depth;
        int8_t *out = output + row * depth;
        int32_t max_v = -128;
        for (int32_t c = 0; c < depth; ++c) {
            max_v = in[c] > max_v ? in[c] : max_v;
        }
        int32_t sum = 0; /* Q12.19 */
        for (int32_t c = 0; c < depth; ++c) {
            const int32_t diff = in[c] - max_v;
            if (diff >= p->diff_min) {
                const int32_t scaled = th_mbqm_greater_than_one(diff, p->input_multiplier,
                                                                p->input_left_shift);
                sum += th_rdbpot(th_exp_negative_q5(scaled), 12);
            }
        }
        /* sum = 2^bits_over_unit * (1 + frac): reciprocal of the normalised sum. */
        const int32_t headroom_plus_one = th_clz32((uint32_t)sum);
        const int32_t bits_over_unit = 12 - headroom_plus_one;
        const int32_t frac = (int32_t)(((uint32_t)sum << headroom_plus_one) - 0x80000000u);
        const int32_t recip = th_one_over_one_plus_x(frac);
        const int32_t exponent = bits_over_unit + 31 - 8;
        if (exponent < 0 || exponent > 31) {
            return TH_ERROR;
        }
        /* Every read of row `row` precedes its writes: the output may alias the input. */
        for (int32_t c = 0; c < depth; ++c) {
            const int32_t diff = in[c] - max_v;
            int32_t v = -128;
            if (diff >= p->diff_min) {
                const int32_t scaled = th_mbqm_greater_than_one(diff, p->input_multiplier,
                                                                p->input_left_shift);
                v = th_rdbpot(th_srdhm(recip, th_exp_negative_q5(scaled)), exponent) - 128;
            }
            out[c] = th_clamp_s8(v, -128, 127);
        }
    }
    return TH_OK;
}
