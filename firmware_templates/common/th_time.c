/* tinyhil firmware: 64-bit clock and interval timing (see th_time.h). */
#include "th_time.h"

#include "th_board.h"
#include "th_cpu.h"

/* The counter behind the clock: the board timer, or (built with
 * -DTH_COUNTER_CYCLES -DTH_CPU_HZ=<clock>, as board builds are) the core's
 * cycle counter when it turns out to have one. */
#ifdef TH_COUNTER_CYCLES
#ifndef TH_CPU_HZ
#error "TH_COUNTER_CYCLES needs TH_CPU_HZ (the core clock) from the build"
#endif
static int th_use_cycles;
static uint32_t th_cycles_base;
#endif

static void th_counter_start(void) {
#ifdef TH_COUNTER_CYCLES
    if (th_use_cycles) {
#ifdef TH_CYCLES_ALIGN
        th_cpu_cycles_align(); /* the arch's: counts that repeat under an emulator's clock */
#endif
        th_cycles_base = th_cpu_cycles();
        return;
    }
#endif
    th_timer_start();
}

static uint32_t th_counter_read(void) {
#ifdef TH_COUNTER_CYCLES
    if (th_use_cycles) {
        return th_cpu_cycles() - th_cycles_base;
    }
#endif
    return th_timer_read();
}

uint32_t th_time_counter_hz(void) {
#ifdef TH_COUNTER_CYCLES
    if (th_use_cycles) {
        return TH_CPU_HZ;
    }
#endif
    return th_timer_hz();
}

const char *th_time_counter_name(void) {
#ifdef TH_COUNTER_CYCLES
    if (th_use_cycles) {
        return "cycles";
    }
#endif
    return "timer";
}

static uint64_t th_clock_base; /* ticks before the last counter restart */
static uint32_t th_clock_last; /* counter value at the last read */
static uint64_t th_clock_wraps; /* wraps seen since the last restart, times 2^32 */

void th_time_init(void) {
    th_clock_base = 0;
    th_clock_last = 0;
    th_clock_wraps = 0;
#ifdef TH_COUNTER_CYCLES
    th_use_cycles = th_cpu_cycles_init() == 0;
#endif
    th_counter_start();
}

uint64_t th_time_ticks(void) {
    uint32_t now = th_counter_read();
    if (now < th_clock_last) {
        th_clock_wraps += (uint64_t)1 << 32;
    }
    th_clock_last = now;
    return th_clock_base + th_clock_wraps + now;
}

uint64_t th_time_us(void) {
    return th_time_ticks() * 1000000u / th_time_counter_hz();
}

void th_time_mark(void) {
    th_clock_base = th_time_ticks();
    th_clock_last = 0;
    th_clock_wraps = 0;
    th_counter_start();
}

uint32_t th_time_since_mark(void) {
    return th_counter_read();
}
