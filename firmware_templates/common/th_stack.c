/* tinyhil firmware: stack painting and high-water scan (see th_stack.h). */
#include "th_stack.h"

#define TH_STACK_PATTERN 0xC5A5C5A5u
/* Left unpainted below the painter's own frame. */
#define TH_STACK_MARGIN 64u

extern uint32_t __th_stack_bottom[];
extern uint32_t __th_stack_top[];

/* noinline: the marker's address must lie in this function's own frame. */
__attribute__((noinline)) void th_stack_paint(void) {
    volatile uint32_t marker = 0;
    uintptr_t limit = ((uintptr_t)&marker - TH_STACK_MARGIN) & ~(uintptr_t)3;
    for (volatile uint32_t *p = __th_stack_bottom; (uintptr_t)p < limit; ++p) {
        *p = TH_STACK_PATTERN;
    }
    (void)marker;
}

uint32_t th_stack_high_water(void) {
    const uint32_t *p = __th_stack_bottom;
    while (p < __th_stack_top && *p == TH_STACK_PATTERN) {
        ++p;
    }
    return (uint32_t)((uintptr_t)__th_stack_top - (uintptr_t)p);
}

uint32_t th_stack_size(void) {
    return (uint32_t)((uintptr_t)__th_stack_top - (uintptr_t)__th_stack_bottom);
}
