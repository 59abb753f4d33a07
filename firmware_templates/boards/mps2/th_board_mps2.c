/*
 * Board support for Arm's MPS2/MPS2+ FPGA images as QEMU models them
 * (mps2-an386, mps2-an500, mps2-an505): CMSDK APB UART and CMSDK APB timer.
 *
 * The build passes the peripheral bases (they differ between images, and the
 * AN505 reaches them through its secure alias): -DTH_UART_BASE, -DTH_TIMER_BASE,
 * and optionally -DTH_TIMER_HZ (default 25 MHz, the AN386/AN500 APB clock).
 */
#include "th_board.h"

#ifdef TH_UART_RX_IRQ
#include "th_cpu.h"
#endif

#ifndef TH_UART_BASE
#error "TH_UART_BASE (CMSDK UART base address) must be defined by the build"
#endif
#ifndef TH_TIMER_BASE
#error "TH_TIMER_BASE (CMSDK timer base address) must be defined by the build"
#endif
#ifndef TH_TIMER_HZ
#define TH_TIMER_HZ 25000000u
#endif

#define TH_REG(base, offset) (*(volatile uint32_t *)((uintptr_t)(base) + (offset)))

/* CMSDK APB UART registers and bits. */
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

/* CMSDK APB timer registers and bits: a 32-bit down-counter. */
#define TH_TIMER_CTRL TH_REG(TH_TIMER_BASE, 0x00u)
#define TH_TIMER_VALUE TH_REG(TH_TIMER_BASE, 0x04u)
#define TH_TIMER_RELOAD TH_REG(TH_TIMER_BASE, 0x08u)
#define TH_TIMER_CTRL_EN 0x1u

void th_board_init(void) {
    TH_UART_BAUDDIV = 16u; /* the smallest legal divider; QEMU ignores the rate */
    TH_UART_CTRL = TH_UART_CTRL_TX_EN | TH_UART_CTRL_RX_EN;
    /* QEMU's UART offers no byte until RX is enabled, and only asks its
     * chardev again when DATA is read: a dummy read here saves the first
     * command a ~1 s wait. */
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
