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

#ifdef TH_UART_RX_IRQ
#include "th_cpu.h"
#endif

#ifndef TH_UART_BASE
#error "TH_UART_BASE (CMSDK UART base address) must be defined by the build"
#endif
#if !defined(TH_COUNTER_CTRL_BASE) || !defined(TH_COUNTER_READ_BASE)
#error "TH_COUNTER_CTRL_BASE and TH_COUNTER_READ_BASE (SSE system counter frames) must be defined by the build"
#endif
#ifndef TH_TIMER_HZ
#error "TH_TIMER_HZ (the scaled system counter rate) must be defined by the build"
#endif

#define TH_REG(base, offset) (*(volatile uint32_t *)((uintptr_t)(base) + (offset)))

/* CMSDK APB UART registers and bits (as on mps2). */
#define TH_UART_DATA TH_REG(TH_UART_BASE, 0x00u)
#define TH_UART_STATE TH_REG(TH_UART_BASE, 0x04u)
#define TH_UART_CTRL TH_REG(TH_UART_BASE, 0x08u)
#define TH_UART_INTCLEAR TH_REG(TH_UART_BASE, 0x0Cu)
#define TH_UART_BAUDDIV TH_REG(TH_UART_BASE, 0x10u)
#define TH_UART_STATE_TX_FULL 0x1u
#define TH_UART_STATE_RX_FULL 0x2u
#define TH_UART_CTRL_TX_EN 0x1u
#define TH_UART_CTRL_RX_EN 0x2u
#define TH_UART_CTRL_RX_INTEN 0x8u
#define TH_UART_INT_RX 0x2u

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
    TH_UART_BAUDDIV = 16u; /* the smallest legal divider; QEMU ignores the rate */
    TH_UART_CTRL = TH_UART_CTRL_TX_EN | TH_UART_CTRL_RX_EN;
    /* QEMU's UART offers no byte until RX is enabled, and only asks its
     * chardev again when DATA is read (see the mps2 family). */
    (void)TH_UART_DATA;
}

void th_uart_putc(char c) {
    while (TH_UART_STATE & TH_UART_STATE_TX_FULL) {
    }
    TH_UART_DATA = (uint8_t)c;
}

char th_uart_getc(void) {
    while (!(TH_UART_STATE & TH_UART_STATE_RX_FULL)) {
    }
    return (char)(TH_UART_DATA & 0xFFu);
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

#ifdef TH_UART_RX_IRQ
void th_uart_rx_irq(int enable) {
    if (!enable) {
        TH_UART_CTRL &= ~TH_UART_CTRL_RX_INTEN;
        th_cpu_irq_disable(TH_UART_RX_IRQ);
        TH_UART_INTCLEAR = TH_UART_INT_RX;
        return;
    }
    TH_UART_INTCLEAR = TH_UART_INT_RX;
    TH_UART_CTRL |= TH_UART_CTRL_RX_INTEN;
    th_cpu_irq_enable(TH_UART_RX_IRQ);
    /* The interrupt status is set when a byte arrives, not when the enable
     * is: a byte that came earlier must be handed over by hand. */
    if (TH_UART_STATE & TH_UART_STATE_RX_FULL) {
        th_cpu_irq_pend(TH_UART_RX_IRQ);
    }
}

void th_uart_rx_handler(void) {
    /* Clear first, then read: the next byte (let in by the read) sets the
     * status again, so no interrupt is lost. */
    TH_UART_INTCLEAR = TH_UART_INT_RX;
    if (TH_UART_STATE & TH_UART_STATE_RX_FULL) {
        th_uart_rx_byte((uint8_t)(TH_UART_DATA & 0xFFu));
    }
}
#endif
