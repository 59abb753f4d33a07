/*
 * Board support for Espressif's Xtensa parts, ESP32 (LX6) and ESP32-S3 (LX7),
 * bare metal after the ROM loader: UART0 (the devkits' USB-serial bridge),
 * the ROM's watchdogs off, and the timer contract on the core's CCOUNT.
 *
 * Every address comes from the descriptor (-DTH_UART_BASE, -DTH_UART_CNT_MASK
 * for the FIFO counts' width, -DTH_RTC_WDT_CONFIG0/-DTH_RTC_WDT_PROTECT,
 * -DTH_TIMG0_WDT_CONFIG0/-DTH_TIMG0_WDT_PROTECT), taken from each chip's
 * Technical Reference Manual. The startup is firmware_templates/arch/xtensa
 * (ROM-loaded, the ROM's exception vectors). Compile-checked with Debian's
 * xtensa-lx106-elf-gcc; never run on a chip here: see docs/boards.md.
 */
#include "th_board.h"

/* The core clock as the ROM leaves it for the chip build (board builds pass
 * the descriptor's clock); both chips boot at 240 MHz from the devkits' ROM. */
#ifndef TH_CPU_HZ
#define TH_CPU_HZ 240000000u
#endif

#define TH_REG(addr) (*(volatile uint32_t *)(uintptr_t)(addr))

#define TH_UART_FIFO TH_REG(TH_UART_BASE + 0x00u)
#define TH_UART_STATUS TH_REG(TH_UART_BASE + 0x1Cu)
#define TH_UART_TX_FIFO_SIZE 128u
#define TH_WDT_KEY 0x50D83AA1u

static uint32_t th_timer_base;

static uint32_t th_ccount(void) {
    uint32_t c;
    __asm__ volatile("rsr.ccount %0" : "=a"(c));
    return c;
}

void th_board_init(void) {
    TH_REG(TH_RTC_WDT_PROTECT) = TH_WDT_KEY;
    TH_REG(TH_RTC_WDT_CONFIG0) = 0u;
    TH_REG(TH_RTC_WDT_PROTECT) = 0u;
    TH_REG(TH_TIMG0_WDT_PROTECT) = TH_WDT_KEY;
    TH_REG(TH_TIMG0_WDT_CONFIG0) = 0u;
    TH_REG(TH_TIMG0_WDT_PROTECT) = 0u;
}

void th_uart_putc(char c) {
    while (((TH_UART_STATUS >> 16) & TH_UART_CNT_MASK) >= TH_UART_TX_FIFO_SIZE - 1u) {
    }
    TH_UART_FIFO = (uint8_t)c;
}

char th_uart_getc(void) {
    while ((TH_UART_STATUS & TH_UART_CNT_MASK) == 0u) {
    }
    return (char)(TH_UART_FIFO & 0xFFu);
}

void th_timer_start(void) {
    th_timer_base = th_ccount();
}

uint32_t th_timer_read(void) {
    return th_ccount() - th_timer_base;
}

uint32_t th_timer_hz(void) {
    return TH_CPU_HZ;
}
