/*
 * What the common firmware needs from the CPU architecture (RV32 here): a
 * busy loop of exactly known length, for timer calibration; the core's cycle
 * counter, for board builds; and a deliberate fault.
 */
#ifndef TH_CPU_H
#define TH_CPU_H

#include <stdint.h>

/* Runs exactly 2 * iterations instructions in an addi/bnez loop (iterations >= 1). */
void th_cpu_spin(uint32_t iterations);

/* Starts the core's cycle counter; 0 when it runs, -1 when it does not move.
 * mcycle by default; with -DTH_RISCV_PCCR, Espressif's performance counter
 * (ESP32-C3: mpcer/mpcmr/mpccr, CSRs 0x7E0-0x7E2), which has no mcycle. */
int th_cpu_cycles_init(void);

/* The cycle counter's low 32 bits. */
uint32_t th_cpu_cycles(void);

/* Executes an illegal instruction (the fault report's test). */
void th_cpu_trap(void) __attribute__((noreturn));

#endif /* TH_CPU_H */
