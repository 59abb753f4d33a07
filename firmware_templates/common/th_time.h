/*
 * Time on top of the board's 32-bit tick counter: a 64-bit clock since boot
 * (for the protocol's m-lap-us timestamps) and phase-aligned interval
 * measurements (for m-th-ticks).
 *
 * The 64-bit clock stays right as long as it is read (or marked) at least
 * once per counter wrap: 2^32 ticks, 171 s at 25 MHz, 4.3 s at 1 GHz. Every
 * measurement marks, so timestamps within one command are always right.
 */
#ifndef TH_TIME_H
#define TH_TIME_H

#include <stdint.h>

/* Starts the board timer; the clock reads 0 here. */
void th_time_init(void);

/* Ticks since th_time_init(). */
uint64_t th_time_ticks(void);

/* Microseconds since th_time_init() (ticks scaled by the timer rate). */
uint64_t th_time_us(void);

/* Starts an interval: folds the counter into the clock and restarts it, so
 * the interval begins exactly on a tick edge. */
void th_time_mark(void);

/* Ticks since the last th_time_mark(). */
uint32_t th_time_since_mark(void);

/* What a tick is: "timer" (the board timer) or "cycles" (the core's cycle
 * counter, used when built with -DTH_COUNTER_CYCLES and the core has one). */
const char *th_time_counter_name(void);

/* Ticks per second. */
uint32_t th_time_counter_hz(void);

#endif /* TH_TIME_H */
