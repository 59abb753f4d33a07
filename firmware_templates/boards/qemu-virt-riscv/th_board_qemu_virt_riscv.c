/*
 * Board support for QEMU's RISC-V `virt` machine (qemu-system-riscv32 -M virt):
 * an NS16550A UART and the CLINT's machine timer (mtime).
 *
 * The build may pass -DTH_UART_BASE (default 0x10000000), -DTH_MTIME_ADDR
 * (default 0x0200BFF8, the CLINT's mtime) and -DTH_TIMER_HZ (default 10 MHz,
 * QEMU's CLINT timebase). Under `-icount shift=0` one instruction is 1 ns of
 * virtual time, so one mtime tick is 100 instructions.
 */
#include "th_board.h"

#ifndef TH_UART_BASE
#define TH_UART_BASE 0x10000000u
#endif
#ifndef TH_MTIME_ADDR
#define TH_MTIME_ADDR 0x0200BFF8u
#endif
#ifndef TH_TIMER_HZ
#define TH_TIMER_HZ 10000000u
#endif

#define TH_REG8(addr) (*(volatile uint8_t *)(uintptr_t)(addr))

/* NS16550A registers (byte-wide, no register shift on virt). */
#define TH_UART_RBR TH_REG8(TH_UART_BASE + 0u) /* read: receive buffer */
#define TH_UART_THR TH_REG8(TH_UART_BASE + 0u) /* write: transmit holding */
#define TH_UART_IER TH_REG8(TH_UART_BASE + 1u)
#define TH_UART_LSR TH_REG8(TH_UART_BASE + 5u)
#define TH_UART_LSR_DR 0x01u   /* data ready */
#define TH_UART_LSR_THRE 0x20u /* transmit holding register empty */

/* The low word of the 64-bit mtime: differences stay right across its wrap. */
#define TH_MTIME_LO (*(volatile uint32_t *)(uintptr_t)TH_MTIME_ADDR)

static uint32_t th_timer_base;

void th_board_init(void) {
    TH_UART_IER = 0u; /* polled: no interrupts */
}

void th_uart_putc(char c) {
    while (!(TH_UART_LSR & TH_UART_LSR_THRE)) {
    }
    TH_UART_THR = (uint8_t)c;
}

char th_uart_getc(void) {
    while (!(TH_UART_LSR & TH_UART_LSR_DR)) {
    }
    return (char)TH_UART_RBR;
}

void th_timer_start(void) {
    /* mtime cannot be restarted in phase, so wait for its next tick edge:
     * a measurement then starts a fixed few instructions after an edge,
     * whatever time the host's last UART byte arrived at. */
    uint32_t then = TH_MTIME_LO;
    uint32_t now;
    do {
        now = TH_MTIME_LO;
    } while (now == then);
    th_timer_base = now;
}

uint32_t th_timer_read(void) {
    return TH_MTIME_LO - th_timer_base;
}

uint32_t th_timer_hz(void) {
    return TH_TIMER_HZ;
}
