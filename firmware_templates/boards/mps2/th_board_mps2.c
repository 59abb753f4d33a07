/*
 * Board support for Arm's MPS2/MPS2+ FPGA images as QEMU models them
 * (mps2-an386, mps2-an500, mps2-an505): CMSDK APB UART and CMSDK APB timer.
 *
 * The build passes the peripheral bases (they differ between images, and the
 * AN505 reaches them through its secure alias): -DTH_UART_BASE, -DTH_TIMER_BASE,
 * and optionally -DTH_TIMER_HZ (default 25 MHz, the AN386/AN500 APB clock).
 */
#include "th_board.h"
#include "th_cmsdk_uart.h"

#ifndef TH_TIMER_BASE
#error "TH_TIMER_BASE (CMSDK timer base address) must be defined by the build"
#endif
#ifndef TH_TIMER_HZ
#define TH_TIMER_HZ 25000000u
#endif

#define TH_REG(base, offset) (*(volatile uint32_t *)((uintptr_t)(base) + (offset)))

/* CMSDK APB timer registers and bits: a 32-bit down-counter. */
#define TH_TIMER_CTRL TH_REG(TH_TIMER_BASE, 0x00u)
#define TH_TIMER_VALUE TH_REG(TH_TIMER_BASE, 0x04u)
#define TH_TIMER_RELOAD TH_REG(TH_TIMER_BASE, 0x08u)
#define TH_TIMER_CTRL_EN 0x1u

void th_board_init(void) {
    th_cmsdk_uart_init();
}

void th_timer_start(void) {
    TH_TIMER_CTRL = 0u;
    TH_TIMER_RELOAD = 0xFFFFFFFFu;
    TH_TIMER_VALUE = 0xFFFFFFFFu;
    TH_TIMER_CTRL = TH_TIMER_CTRL_EN;
}

uint32_t th_timer_read(void) {
    /* Counts down from 2^32 - 1: ticks elapsed = 0xFFFFFFFF - VALUE, and
     * unsigned subtraction of two readings stays right across a reload. */
    return 0xFFFFFFFFu - TH_TIMER_VALUE;
}

uint32_t th_timer_hz(void) {
    return TH_TIMER_HZ;
}
