/* tinyhil firmware: Cortex-M CPU helpers (see th_cpu.h). */
#include "th_cpu.h"

/* GCC switches inline assembly to divided syntax on Thumb-1-only cores
 * (Cortex-M0/M0+), where "subs" needs unified syntax. */
#if defined(__thumb__) && !defined(__thumb2__)
#define TH_ASM_UNIFIED ".syntax unified\n\t"
#define TH_ASM_DIVIDED "\n\t.syntax divided"
#else
#define TH_ASM_UNIFIED ""
#define TH_ASM_DIVIDED ""
#endif

void th_cpu_spin(uint32_t iterations) {
    /* subs + bne: two instructions per iteration, whatever the compiler does. */
    __asm__ volatile(TH_ASM_UNIFIED "1:\n\tsubs %0, %0, #1\n\tbne 1b" TH_ASM_DIVIDED
                     : "+l"(iterations)
                     :
                     : "cc");
}
