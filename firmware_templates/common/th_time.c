/* tinyhil firmware: 64-bit clock and interval timing (see th_time.h). */
#include "th_time.h"

#include "th_board.h"

static uint64_t th_clock_base; /* ticks before the last counter restart */
static uint32_t th_clock_last; /* counter value at the last read */
static uint64_t th_clock_wraps; /* wraps seen since the last restart, times 2^32 */

void th_time_init(void) {
    th_clock_base = 0;
    th_clock_last = 0;
    th_clock_wraps = 0;
    th_timer_start();
}

uint64_t th_time_ticks(void) {
    uint32_t now = th_timer_read();
    if (now < th_clock_last) {
        th_clock_wraps += (uint64_t)1 << 32;
    }
    th_clock_last = now;
    return th_clock_base + th_clock_wraps + now;
}

uint64_t th_time_us(void) {
    return th_time_ticks() * 1000000u / th_timer_hz();
}

void th_time_mark(void) {
    th_clock_base = th_time_ticks();
    th_clock_last = 0;
    th_clock_wraps = 0;
    th_timer_start();
}

uint32_t th_time_since_mark(void) {
    return th_timer_read();
}
