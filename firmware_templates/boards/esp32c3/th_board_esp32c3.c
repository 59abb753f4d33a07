/*
 * Board support for the ESP32-C3, bare metal after the ROM loader: UART0 (the
 * USB-serial bridge on ESP32-C3-DevKitM-1), watchdogs off, and the timer
 * contract on the core's performance counter (the chip has no mcycle).
 *
 * Register addresses are from Espressif's ESP32-C3 Technical Reference
 * Manual. This family is compile-checked in tinyhil's tests but has never
 * run on a chip here: see docs/boards.md for how to verify it on a board.
 *
 * Clocks stay as the ROM leaves them; board builds count cycles
 * (-DTH_COUNTER_CYCLES), which do not depend on the clock for code and data
 * in SRAM, and the latency estimate uses the descriptor's clock.
 */
#include "th_board.h"
#include "th_cpu.h"

#ifndef TH_UART_BASE
#define TH_UART_BASE 0x60000000u
#endif

#define TH_REG(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

/* UART0: FIFO window and status (RX count in bits 9:0, TX count in 25:16). */
#define TH_UART_FIFO TH_REG(TH_UART_BASE + 0x00u)
#define TH_UART_STATUS TH_REG(TH_UART_BASE + 0x1Cu)
#define TH_UART_TX_FIFO_SIZE 128u

/* Watchdogs the ROM leaves running: RTC WDT, super WDT, timer group 0 WDT. */
#define TH_RTC_CNTL_BASE 0x60008000u
#define TH_RTC_WDTCONFIG0 TH_REG(TH_RTC_CNTL_BASE + 0x90u)
#define TH_RTC_WDTWPROTECT TH_REG(TH_RTC_CNTL_BASE + 0xA8u)
#define TH_RTC_SWD_CONF TH_REG(TH_RTC_CNTL_BASE + 0xACu)
#define TH_RTC_SWD_WPROTECT TH_REG(TH_RTC_CNTL_BASE + 0xB0u)
#define TH_RTC_SWD_DISABLE (1u << 30)
#define TH_TIMG0_BASE 0x6001F000u
#define TH_TIMG0_WDTCONFIG0 TH_REG(TH_TIMG0_BASE + 0x48u)
#define TH_TIMG0_WDTWPROTECT TH_REG(TH_TIMG0_BASE + 0x64u)
#define TH_WDT_KEY 0x50D83AA1u
#define TH_SWD_KEY 0x8F1D312Au

static uint32_t th_timer_base;

void th_board_init(void) {
    TH_RTC_WDTWPROTECT = TH_WDT_KEY;
    TH_RTC_WDTCONFIG0 = 0u;
    TH_RTC_WDTWPROTECT = 0u;
    TH_RTC_SWD_WPROTECT = TH_SWD_KEY;
    TH_RTC_SWD_CONF |= TH_RTC_SWD_DISABLE;
    TH_RTC_SWD_WPROTECT = 0u;
    TH_TIMG0_WDTWPROTECT = TH_WDT_KEY;
    TH_TIMG0_WDTCONFIG0 = 0u;
    TH_TIMG0_WDTWPROTECT = 0u;
    (void)th_cpu_cycles_init();
}

void th_uart_putc(char c) {
    while (((TH_UART_STATUS >> 16) & 0x3FFu) >= TH_UART_TX_FIFO_SIZE - 1u) {
    }
    TH_UART_FIFO = (uint8_t)c;
}

char th_uart_getc(void) {
    while ((TH_UART_STATUS & 0x3FFu) == 0u) {
    }
    return (char)(TH_UART_FIFO & 0xFFu);
}

/* The timer contract on the cycle counter (mpccr): there is no free-running
 * timer the firmware owns without more setup, and a board build times with
 * the cycle counter anyway. */
void th_timer_start(void) {
    th_timer_base = th_cpu_cycles();
}

uint32_t th_timer_read(void) {
    return th_cpu_cycles() - th_timer_base;
}

uint32_t th_timer_hz(void) {
#ifdef TH_CPU_HZ
    return TH_CPU_HZ;
#else
    return 160000000u;
#endif
}
