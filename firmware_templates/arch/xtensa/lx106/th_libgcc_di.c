/*
 * 64-bit integer helpers for Debian's xtensa-lx106-elf toolchain, whose libgcc.a
 * lacks them (gcc emits calls to them for 64-bit multiply and divide). Each
 * function is compiled on its own (-DTH_L_<name>) and archived only when that
 * libgcc does not define it (harness/lx106.py). Plain shift-and-subtract: these
 * run outside every measured region (number formatting, time conversion).
 */
#include <stdint.h>

typedef unsigned long long th_u64;
typedef long long th_s64;

uint64_t __umulsidi3(uint32_t a, uint32_t b); /* lib1funcs.S */

#if defined(TH_L_udivdi3) || defined(TH_L_umoddi3) || defined(TH_L_divdi3) || defined(TH_L_moddi3)
static th_u64 th_udivmod64(th_u64 n, th_u64 d, th_u64 *rem) {
    th_u64 q = 0u;
    th_u64 r = 0u;
    for (int i = 63; i >= 0; --i) {
        r = (r << 1) | ((n >> i) & 1u);
        if (r >= d) {
            r -= d;
            q |= (th_u64)1u << i;
        }
    }
    *rem = r;
    return q;
}
#endif

#ifdef TH_L_muldi3
th_u64 __muldi3(th_u64 a, th_u64 b);
th_u64 __muldi3(th_u64 a, th_u64 b) {
    uint32_t al = (uint32_t)a, ah = (uint32_t)(a >> 32), bl = (uint32_t)b, bh = (uint32_t)(b >> 32);
    return __umulsidi3(al, bl) + ((th_u64)(al * bh + ah * bl) << 32);
}
#endif

#ifdef TH_L_udivdi3
th_u64 __udivdi3(th_u64 n, th_u64 d);
th_u64 __udivdi3(th_u64 n, th_u64 d) {
    th_u64 r;
    return th_udivmod64(n, d, &r);
}
#endif

#ifdef TH_L_umoddi3
th_u64 __umoddi3(th_u64 n, th_u64 d);
th_u64 __umoddi3(th_u64 n, th_u64 d) {
    th_u64 r;
    (void)th_udivmod64(n, d, &r);
    return r;
}
#endif

#if defined(TH_L_divdi3) || defined(TH_L_moddi3)
static th_u64 th_magnitude(th_s64 v) {
    return v < 0 ? (th_u64)0u - (th_u64)v : (th_u64)v;
}
#endif

#ifdef TH_L_divdi3
th_s64 __divdi3(th_s64 n, th_s64 d);
th_s64 __divdi3(th_s64 n, th_s64 d) {
    th_u64 r;
    th_u64 q = th_udivmod64(th_magnitude(n), th_magnitude(d), &r);
    return (th_s64)((n < 0) != (d < 0) ? (th_u64)0u - q : q);
}
#endif

#ifdef TH_L_moddi3
th_s64 __moddi3(th_s64 n, th_s64 d);
th_s64 __moddi3(th_s64 n, th_s64 d) {
    th_u64 r;
    (void)th_udivmod64(th_magnitude(n), th_magnitude(d), &r);
    return (th_s64)(n < 0 ? (th_u64)0u - r : r);
}
#endif
