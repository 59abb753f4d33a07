/*
 * What the common firmware needs from the CPU architecture (Cortex-M here):
 * a busy loop of exactly known length, for timer calibration.
 */
#ifndef TH_CPU_H
#define TH_CPU_H

#include <stdint.h>

/* Runs exactly 2 * iterations instructions in a subs/bne loop (iterations >= 1). */
void th_cpu_spin(uint32_t iterations);

#endif /* TH_CPU_H */
