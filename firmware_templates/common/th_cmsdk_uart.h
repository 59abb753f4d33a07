/*
 * The board contract's UART (th_board.h: putc/getc and, with -DTH_UART_RX_IRQ,
 * the receive interrupt) on Arm's CMSDK APB UART, as the MPS2 and MPS3 FPGA
 * images have it and QEMU models it. Included once, by the board family's C
 * file, after th_board.h; the build passes -DTH_UART_BASE.
 */
#ifndef TH_CMSDK_UART_H
#define TH_CMSDK_UART_H

#include <stdint.h>

#ifdef TH_UART_RX_IRQ
#include "th_cpu.h"
#endif

#ifndef TH_UART_BASE
#error "TH_UART_BASE (CMSDK UART base address) must be defined by the build"
#endif

#define TH_UART_REG(offset) (*(volatile uint32_t *)((uintptr_t)(TH_UART_BASE) + (offset)))

/* CMSDK APB UART registers and bits. */
#define TH_UART_DATA TH_UART_REG(0x00u)
#define TH_UART_STATE TH_UART_REG(0x04u)
#define TH_UART_CTRL TH_UART_REG(0x08u)
#define TH_UART_INTCLEAR TH_UART_REG(0x0Cu)
#define TH_UART_BAUDDIV TH_UART_REG(0x10u)
#define TH_UART_STATE_TX_FULL 0x1u
#define TH_UART_STATE_RX_FULL 0x2u
#define TH_UART_CTRL_TX_EN 0x1u
#define TH_UART_CTRL_RX_EN 0x2u
#define TH_UART_CTRL_RX_INTEN 0x8u
#define TH_UART_INT_RX 0x2u

/* TX and RX on; QEMU's UART offers no byte until RX is enabled, and only asks
 * its chardev again when DATA is read: a dummy read here saves the first
 * command a ~1 s wait. */
static void th_cmsdk_uart_init(void) {
    TH_UART_BAUDDIV = 16u; /* the smallest legal divider; QEMU ignores the rate */
    TH_UART_CTRL = TH_UART_CTRL_TX_EN | TH_UART_CTRL_RX_EN;
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

#endif /* TH_CMSDK_UART_H */
