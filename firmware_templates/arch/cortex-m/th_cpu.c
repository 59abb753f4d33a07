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

/* DWT (ARMv7-M/ARMv8-M Debug Watchpoint and Trace unit) and its enable. */
#define TH_DEMCR (*(volatile uint32_t *)0xE000EDFCu)
#define TH_DEMCR_TRCENA (1u << 24)
#define TH_DWT_CTRL (*(volatile uint32_t *)0xE0001000u)
#define TH_DWT_CYCCNT (*(volatile uint32_t *)0xE0001004u)
#define TH_DWT_LAR (*(volatile uint32_t *)0xE0001FB0u)
#define TH_DWT_CTRL_CYCCNTENA 0x1u
#define TH_DWT_CTRL_NOCYCCNT (1u << 25)

int th_cpu_cycles_init(void) {
#if defined(__ARM_ARCH_7M__) || defined(__ARM_ARCH_7EM__) || defined(__ARM_ARCH_8M_MAIN__) || \
    defined(__ARM_ARCH_8_1M_MAIN__)
    TH_DEMCR |= TH_DEMCR_TRCENA;
    TH_DWT_LAR = 0xC5ACCE55u; /* the Cortex-M7 locks the DWT until this key is written */
    if (TH_DWT_CTRL & TH_DWT_CTRL_NOCYCCNT) {
        return -1;
    }
    TH_DWT_CYCCNT = 0u;
    TH_DWT_CTRL |= TH_DWT_CTRL_CYCCNTENA;
    /* A counter that reads back disabled or does not move is not there. */
    uint32_t before = TH_DWT_CYCCNT;
    th_cpu_spin(16u);
    if (!(TH_DWT_CTRL & TH_DWT_CTRL_CYCCNTENA) || TH_DWT_CYCCNT == before) {
        return -1;
    }
    return 0;
#else
    return -1; /* ARMv6-M/ARMv8-M Baseline: no CYCCNT */
#endif
}

uint32_t th_cpu_cycles(void) {
    return TH_DWT_CYCCNT;
}

void th_cpu_trap(void) {
    __asm__ volatile("udf #0");
    for (;;) {
    }
}

/* NVIC set-enable, clear-enable and set-pending registers, 32 interrupts each. */
#define TH_NVIC_ISER(n) (*(volatile uint32_t *)(0xE000E100u + 4u * (n)))
#define TH_NVIC_ICER(n) (*(volatile uint32_t *)(0xE000E180u + 4u * (n)))
#define TH_NVIC_ISPR(n) (*(volatile uint32_t *)(0xE000E200u + 4u * (n)))

void th_cpu_irq_enable(uint32_t irq) {
    TH_NVIC_ISER(irq >> 5) = 1u << (irq & 31u);
}

void th_cpu_irq_disable(uint32_t irq) {
    TH_NVIC_ICER(irq >> 5) = 1u << (irq & 31u);
    __asm__ volatile("dsb\n\tisb" ::: "memory"); /* no late entry after this returns */
}

void th_cpu_irq_pend(uint32_t irq) {
    TH_NVIC_ISPR(irq >> 5) = 1u << (irq & 31u);
}

void th_cpu_wait_zero(volatile const uint32_t *value) {
    /* Masked check then wfi: an interrupt between the two still wakes the wfi
     * (it is pending), and runs once interrupts are unmasked. */
    for (;;) {
        __asm__ volatile("cpsid i" ::: "memory");
        if (*value == 0u) {
            __asm__ volatile("cpsie i" ::: "memory");
            return;
        }
        __asm__ volatile("wfi" ::: "memory");
        __asm__ volatile("cpsie i" ::: "memory");
    }
}
