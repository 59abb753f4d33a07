/* tinyhil firmware: Xtensa CPU helpers (see th_cpu.h). */
#include "th_cpu.h"

void th_cpu_spin(uint32_t iterations) {
    /* addi + bnez: two instructions per iteration, whatever the compiler does. */
    __asm__ volatile("1:\n\taddi %0, %0, -1\n\tbnez %0, 1b" : "+a"(iterations));
}

uint32_t th_cpu_cycles(void) {
    uint32_t c;
    __asm__ volatile("rsr.ccount %0" : "=a"(c));
    return c;
}

int th_cpu_cycles_init(void) {
    uint32_t before = th_cpu_cycles();
    th_cpu_spin(16u);
    return th_cpu_cycles() == before ? -1 : 0;
}

void th_cpu_trap(void) {
    __asm__ volatile("ill");
    for (;;) {
    }
}
