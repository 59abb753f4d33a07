/*
 * The board contract's timer (th_board.h: th_timer_start/read/hz) on an STM32
 * general-purpose 32-bit timer (TIM2 or TIM5), the same registers on the F4,
 * F7 and L4 families. Included once, by an STM32 board family's C file.
 *
 * The build passes -DTH_TIMER_BASE; the board file defines TH_TIMER_HZ (the
 * counting rate after the prescaler) and may define TH_TIMER_PSC (default 0).
 */
#ifndef TH_STM32_TIM_H
#define TH_STM32_TIM_H

#include <stdint.h>

#ifndef TH_TIMER_BASE
#error "TH_TIMER_BASE (TIM2 or TIM5 base address) must be defined by the build"
#endif
#ifndef TH_TIMER_HZ
#error "the board file defines TH_TIMER_HZ before including th_stm32_tim.h"
#endif
#ifndef TH_TIMER_PSC
#define TH_TIMER_PSC 0u
#endif

#define TH_TIM_REG(offset) (*(volatile uint32_t *)((uintptr_t)(TH_TIMER_BASE) + (offset)))
#define TH_TIM_CR1 TH_TIM_REG(0x00u)
#define TH_TIM_EGR TH_TIM_REG(0x14u)
#define TH_TIM_CNT TH_TIM_REG(0x24u)
#define TH_TIM_PSC TH_TIM_REG(0x28u)
#define TH_TIM_ARR TH_TIM_REG(0x2Cu)

void th_timer_start(void) {
    TH_TIM_CR1 = 0u;
    TH_TIM_PSC = TH_TIMER_PSC;
    TH_TIM_ARR = 0xFFFFFFFFu;
    TH_TIM_EGR = 1u; /* UG: load the prescaler, clear the counter */
    TH_TIM_CNT = 0u;
    TH_TIM_CR1 = 1u; /* CEN */
}

uint32_t th_timer_read(void) {
    return TH_TIM_CNT;
}

uint32_t th_timer_hz(void) {
    return TH_TIMER_HZ;
}

#endif /* TH_STM32_TIM_H */
