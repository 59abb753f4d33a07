/*
 * Board support for Arm's MPS3 AN547 FPGA image (Corstone-300: SSE-300 with a
 * Cortex-M55) as QEMU's mps3-an547 models it: a CMSDK APB UART, as on the
 * mps2 family, and the SSE-300 system counter for time.
 *
 * The AN547 has no fast CMSDK timer (the SSE-300's only one, s32ktimer, runs
 * at 32 kHz); its timers are the SSE system timers, all driven by one 64-bit
 * system counter clocked at 32 MHz. A 32 MHz tick is 31.25 ns, not a whole
 * number of instructions under -icount shift=0, so the counter is scaled:
 * CNTSCR = 0.9765625 (8.24 fixed point) makes it count at 31.25 MHz, one tick
 * per 32 ns of virtual time (32 instructions).
 *
 * The build passes: -DTH_UART_BASE (CMSDK UART), -DTH_COUNTER_CTRL_BASE (the
 * counter's control frame, secure only), -DTH_COUNTER_READ_BASE (its
 * read-only status frame), -DTH_TIMER_HZ (the scaled rate), optionally
 * -DTH_UART_RX_IRQ.
 */
#include "th_board.h"
#include "th_cmsdk_uart.h"

#if !defined(TH_COUNTER_CTRL_BASE) || !defined(TH_COUNTER_READ_BASE)
#error "TH_COUNTER_CTRL_BASE and TH_COUNTER_READ_BASE (SSE system counter frames) must be defined by the build"
#endif
#ifndef TH_TIMER_HZ
#error "TH_TIMER_HZ (the scaled system counter rate) must be defined by the build"
#endif

#define TH_REG(base, offset) (*(volatile uint32_t *)((uintptr_t)(base) + (offset)))

/* SSE system counter: control frame (CNTCR, CNTCV, CNTSCR) and status frame
 * (CNTCV read-only). CNTCV = top 64 bits of an 88-bit (64.24) count that
 * gains CNTSCR per input clock when CNTCR.SCEN is set. */
#define TH_CNT_CR TH_REG(TH_COUNTER_CTRL_BASE, 0x00u)
#define TH_CNT_CV_LO TH_REG(TH_COUNTER_CTRL_BASE, 0x08u)
#define TH_CNT_CV_HI TH_REG(TH_COUNTER_CTRL_BASE, 0x0Cu)
#define TH_CNT_SCR TH_REG(TH_COUNTER_CTRL_BASE, 0x10u)
#define TH_CNT_READ_LO TH_REG(TH_COUNTER_READ_BASE, 0x00u)
#define TH_CNT_CR_EN 0x1u
#define TH_CNT_CR_SCEN 0x4u
/* 31.25 MHz / 32 MHz = 0.9765625 = 0x00FA0000 / 2^24, exact. */
#define TH_CNT_SCALE 0x00FA0000u

void th_board_init(void) {
    th_cmsdk_uart_init();
}

void th_timer_start(void) {
    /* The scale may only change while the counter is stopped. */
    TH_CNT_CR = 0u;
    TH_CNT_SCR = TH_CNT_SCALE;
    TH_CNT_CV_LO = 0u;
    TH_CNT_CV_HI = 0u;
    TH_CNT_CR = TH_CNT_CR_EN | TH_CNT_CR_SCEN;
}

uint32_t th_timer_read(void) {
    /* An up-counter: the low word wraps at 2^32 and unsigned subtraction of
     * two readings stays right across the wrap (137 s of virtual time). */
    return TH_CNT_READ_LO;
}

uint32_t th_timer_hz(void) {
    return TH_TIMER_HZ;
}
