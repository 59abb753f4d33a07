/*
 * What the common firmware needs from the CPU architecture (Cortex-M here):
 * a busy loop of exactly known length, for timer calibration; the core's
 * cycle counter (DWT CYCCNT), for board builds; and a deliberate fault.
 */
#ifndef TH_CPU_H
#define TH_CPU_H

#include <stdint.h>

/* Runs exactly 2 * iterations instructions in a subs/bne loop (iterations >= 1). */
void th_cpu_spin(uint32_t iterations);

/* Starts the core's cycle counter; 0 when it runs, -1 when the core has none
 * (Cortex-M0/M0+, or an emulator that does not model it). */
int th_cpu_cycles_init(void);

/* The cycle counter, wrapping at 2^32. */
uint32_t th_cpu_cycles(void);

/* Executes an undefined instruction (the fault report's test). */
void th_cpu_trap(void) __attribute__((noreturn));

/* NVIC: enable, disable or set pending external interrupt `irq` (0-based,
 * vector 16 + irq). */
void th_cpu_irq_enable(uint32_t irq);
void th_cpu_irq_disable(uint32_t irq);
void th_cpu_irq_pend(uint32_t irq);

/* Returns once *value is 0, sleeping (wfi) until each interrupt in between:
 * for a value that only interrupt handlers change. */
void th_cpu_wait_zero(volatile const uint32_t *value);

#endif /* TH_CPU_H */
