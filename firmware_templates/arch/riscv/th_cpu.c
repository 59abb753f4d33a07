/* tinyhil firmware: RV32 CPU helpers (see th_cpu.h). */
#include "th_cpu.h"

void th_cpu_spin(uint32_t iterations) {
    /* addi + bnez: two instructions per iteration, whatever the compiler does. */
    __asm__ volatile("1:\n\taddi %0, %0, -1\n\tbnez %0, 1b" : "+r"(iterations));
}

uint32_t th_cpu_cycles(void) {
    uint32_t c;
#ifdef TH_RISCV_PCCR
    __asm__ volatile("csrr %0, 0x7e2" : "=r"(c));
#else
    __asm__ volatile("csrr %0, mcycle" : "=r"(c));
#endif
    return c;
}

int th_cpu_cycles_init(void) {
#ifdef TH_RISCV_PCCR
    __asm__ volatile("csrw 0x7e0, %0" ::"r"(1u)); /* mpcer: count clock cycles */
    __asm__ volatile("csrw 0x7e1, %0" ::"r"(1u)); /* mpcmr: counter on */
#endif
    uint32_t before = th_cpu_cycles();
    th_cpu_spin(16u);
    return th_cpu_cycles() == before ? -1 : 0;
}

void th_cpu_trap(void) {
    __asm__ volatile("unimp");
    for (;;) {
    }
}
