/*
 * Board support for Espressif's Xtensa parts, ESP32 (LX6) and ESP32-S3 (LX7),
 * bare metal after the ROM loader: UART0 (the devkits' USB-serial bridge),
 * the ROM's watchdogs off, the CPU clock, and the timer contract on the core's
 * CCOUNT.
 *
 * Every address of the UART and watchdogs comes from the descriptor
 * (-DTH_UART_BASE, -DTH_UART_CNT_MASK for the FIFO counts' width,
 * -DTH_RTC_WDT_CONFIG0/-DTH_RTC_WDT_PROTECT, -DTH_TIMG0_WDT_CONFIG0/
 * -DTH_TIMG0_WDT_PROTECT), taken from each chip's Technical Reference Manual.
 * The startup is firmware_templates/arch/xtensa (ROM-loaded, the ROM's
 * exception vectors).
 *
 * The clock. The ROM runs the CPU from the 40 MHz crystal and jumps to the
 * image with the PLL off; ESP-IDF's bootloader and app switch it. A board
 * build (-DTH_CLOCK_SETUP) with -DTH_ESP32_PLL does what ESP-IDF's
 * rtc_clk_init does for 240 MHz on the ESP32 (components/esp_hw_support/port/
 * esp32/rtc_clk.c, hal/esp32/clk_tree_ll.h): power the BBPLL and the internal
 * I2C bus up, raise the digital core voltage to 1.25 V, program the BBPLL for
 * 480 MHz from the 40 MHz crystal through the ROM's rom_i2c_writeReg, wait for
 * it to lock, then select the PLL with CPUPERIOD_SEL 240 MHz (APB 80 MHz), set
 * REF_TICK's divider and rescale UART0's divider for the doubled APB clock.
 * Espressif's QEMU models the clock selection (RTC_CNTL_CLK_CONF.SOC_CLK_SEL,
 * DPORT_CPU_PER_CONF): CCOUNT then counts 240 per microsecond of virtual time,
 * which the emulator tests measure (`th-calibrate`). Without the clock setup
 * the CPU stays at the crystal's 40 MHz and the timer says so.
 */
#include "th_board.h"

/* The core clock: board builds pass the descriptor's (and set it up); the ROM
 * leaves both chips on the 40 MHz crystal. */
#ifndef TH_CPU_HZ
#define TH_CPU_HZ 40000000u
#endif
#if defined(TH_CLOCK_SETUP) && !defined(TH_ESP32_PLL)
#error "no clock setup for this chip: the ROM leaves it at 40 MHz (drop TH_CLOCK_SETUP or add the chip's PLL setup)"
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

#if defined(TH_CLOCK_SETUP) && defined(TH_ESP32_PLL)
/* ESP32 registers (TRM; ESP-IDF soc/esp32/include/soc/ rtc_cntl_reg.h, dport_reg.h, syscon_reg.h). */
#define TH_RTC_CNTL_OPTIONS0 0x3FF48000u
#define TH_RTC_CNTL_CLK_CONF 0x3FF48070u
#define TH_RTC_CNTL_REG 0x3FF4807Cu
#define TH_DPORT_CPU_PER_CONF 0x3FF0003Cu
#define TH_SYSCON_PLL_TICK_CONF 0x3FF66008u
#define TH_UART_CLKDIV TH_REG(TH_UART_BASE + 0x14u)
#define TH_OPT0_BB_I2C_FORCE_PD (1u << 6)
#define TH_OPT0_BBPLL_I2C_FORCE_PD (1u << 8)
#define TH_OPT0_BBPLL_FORCE_PD (1u << 10)
#define TH_OPT0_BIAS_I2C_FORCE_PD (1u << 18)
#define TH_DIG_DBIAS_SHIFT 11u
#define TH_DIG_DBIAS_1V25 7u
#define TH_SOC_CLK_SEL_SHIFT 27u
#define TH_SOC_CLK_SEL_PLL 1u
#define TH_CPUPERIOD_SEL_240 2u
#define TH_XTAL_HZ 40000000u
#define TH_APB_PLL_HZ 80000000u
#define TH_UART_BAUD 115200u
/* The ROM's rom_i2c_writeReg(block, host_id, reg, data) (esp32.rom.ld) and the BBPLL
 * on the internal I2C bus (soc/esp32/include/soc/regi2c_bbpll.h). */
#define TH_ROM_I2C_WRITE_REG 0x400041A4u
#define TH_I2C_BBPLL 0x66u
#define TH_I2C_BBPLL_HOSTID 4u

/* A windowed-ABI ROM function called from this call0 firmware: th_rom_call
 * (below) discards the ROM's register windows (never returned to), then CALLX8s
 * fn with four arguments and returns its a2. */
uint32_t th_rom_call(uint32_t fn, uint32_t a, uint32_t b, uint32_t c, uint32_t d);
__asm__(
    "    .section .text.th_rom_call,\"ax\",@progbits\n"
    "    .align 4\n"
    "    .global th_rom_call\n"
    "    .type th_rom_call,@function\n"
    "th_rom_call:\n"
    "    addi a1, a1, -32\n"
    "    s32i a0, a1, 0\n"         /* the callee may use our a8..a15: */
    "    s32i a12, a1, 4\n"        /* save the call0 ABI's callee-saved ones */
    "    s32i a13, a1, 8\n"
    "    s32i a14, a1, 12\n"
    "    s32i a15, a1, 16\n"
    "    mov a7, a2\n"
    "    mov a10, a3\n"            /* CALLX8: the callee's a2..a5 are our a10..a13 */
    "    mov a11, a4\n"
    "    mov a12, a5\n"
    "    mov a13, a6\n"
    "    .byte 0x80, 0x48, 0x03\n" /* rsr a8, WINDOWBASE (72) */
    "    movi a9, 1\n"
    "    ssl a8\n"
    "    sll a9, a9\n"
    "    .byte 0x90, 0x49, 0x13\n" /* wsr a9, WINDOWSTART (73): only this window is live */
    "    .byte 0x10, 0x20, 0x00\n" /* rsync */
    "    .byte 0xE0, 0x07, 0x00\n" /* callx8 a7 */
    "    mov a2, a10\n"
    "    l32i a0, a1, 0\n"
    "    l32i a12, a1, 4\n"
    "    l32i a13, a1, 8\n"
    "    l32i a14, a1, 12\n"
    "    l32i a15, a1, 16\n"
    "    addi a1, a1, 32\n"
    "    ret\n"
    "    .size th_rom_call, . - th_rom_call\n"
    "    .text\n");

static void th_bbpll_write(uint32_t reg, uint32_t value) {
    (void)th_rom_call(TH_ROM_I2C_WRITE_REG, TH_I2C_BBPLL, TH_I2C_BBPLL_HOSTID, reg, value);
}

static void th_delay_xtal_us(uint32_t us) {
    uint32_t start = th_ccount();
    while (th_ccount() - start < us * (TH_XTAL_HZ / 1000000u)) {
    }
}

static void th_clock_setup(void) {
    /* UART0 drains at the ROM's baud rate before its clock doubles. */
    while (((TH_UART_STATUS >> 16) & TH_UART_CNT_MASK) != 0u) {
    }
    th_delay_xtal_us(100u); /* the last character leaves the shift register */
    TH_REG(TH_RTC_CNTL_OPTIONS0) &= ~(TH_OPT0_BIAS_I2C_FORCE_PD | TH_OPT0_BB_I2C_FORCE_PD | TH_OPT0_BBPLL_FORCE_PD
                                      | TH_OPT0_BBPLL_I2C_FORCE_PD);
    th_bbpll_write(0u, 0x18u);  /* IR_CAL_DELAY: the BBPLL's reset configuration */
    th_bbpll_write(1u, 0x20u);  /* IR_CAL_EXT_CAP */
    th_bbpll_write(4u, 0x9Au);  /* OC_ENB_FCAL */
    th_bbpll_write(10u, 0x00u); /* OC_ENB_VCON */
    th_bbpll_write(12u, 0x00u); /* BBADC_CAL_7_0 */
    TH_REG(TH_RTC_CNTL_REG) = (TH_REG(TH_RTC_CNTL_REG) & ~(7u << TH_DIG_DBIAS_SHIFT))
                              | (TH_DIG_DBIAS_1V25 << TH_DIG_DBIAS_SHIFT);
    th_delay_xtal_us(3u);
    th_bbpll_write(11u, 0xC3u);                 /* ENDIV5: 480 MHz */
    th_bbpll_write(9u, 0x74u);                  /* BBADC_DSMP */
    th_bbpll_write(2u, 0x00u);                  /* OC_LREF: lref 0, div10_8 0, div_ref 0 */
    th_bbpll_write(3u, 28u);                    /* OC_DIV_7_0: 40 MHz crystal */
    th_bbpll_write(5u, (3u << 6) | 6u);         /* OC_DCUR: bw 3, dcur 6 */
    th_delay_xtal_us(80u);                      /* lock (RTC slow clock 150 kHz) */
    TH_REG(TH_DPORT_CPU_PER_CONF) = TH_CPUPERIOD_SEL_240;
    TH_REG(TH_RTC_CNTL_CLK_CONF) = (TH_REG(TH_RTC_CNTL_CLK_CONF) & ~(3u << TH_SOC_CLK_SEL_SHIFT))
                                   | (TH_SOC_CLK_SEL_PLL << TH_SOC_CLK_SEL_SHIFT);
    TH_REG(TH_SYSCON_PLL_TICK_CONF) = TH_APB_PLL_HZ / 1000000u - 1u; /* REF_TICK 1 MHz */
    /* UART_CLKDIV: integer part in bits 0..19, sixteenths in 20..23. */
    TH_UART_CLKDIV = (TH_APB_PLL_HZ / TH_UART_BAUD) | (((TH_APB_PLL_HZ * 16u / TH_UART_BAUD) & 0xFu) << 20);
}
#endif

void th_board_init(void) {
    TH_REG(TH_RTC_WDT_PROTECT) = TH_WDT_KEY;
    TH_REG(TH_RTC_WDT_CONFIG0) = 0u;
    TH_REG(TH_RTC_WDT_PROTECT) = 0u;
    TH_REG(TH_TIMG0_WDT_PROTECT) = TH_WDT_KEY;
    TH_REG(TH_TIMG0_WDT_CONFIG0) = 0u;
    TH_REG(TH_TIMG0_WDT_PROTECT) = 0u;
#if defined(TH_CLOCK_SETUP) && defined(TH_ESP32_PLL)
    th_clock_setup();
#endif
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
