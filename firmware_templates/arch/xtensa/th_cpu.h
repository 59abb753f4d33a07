/*
 * What the common firmware needs from the CPU architecture (Xtensa here: the
 * ESP32's LX6 and the ESP32-S3's LX7): a busy loop of exactly known length,
 * for timer calibration; the core's cycle counter (CCOUNT), for board builds;
 * and a deliberate fault.
 */
#ifndef TH_CPU_H
#define TH_CPU_H

#include <stdint.h>

/* Runs exactly 2 * iterations instructions in an addi/bnez loop (iterations >= 1). */
void th_cpu_spin(uint32_t iterations);

/* Starts the core's cycle counter: CCOUNT always runs; 0 when it moves, -1 when not. */
int th_cpu_cycles_init(void);

/* CCOUNT, the core's clock cycle counter (32 bits). */
uint32_t th_cpu_cycles(void);

/* Brings CCOUNT's phase to a fixed point where an emulator derives it from
 * virtual time at a non-integer rate (built with -DTH_CYCLES_ALIGN; th_cpu.c). */
void th_cpu_cycles_align(void);

/* Executes an illegal instruction (the fault report's test). */
void th_cpu_trap(void) __attribute__((noreturn));

#endif /* TH_CPU_H */
