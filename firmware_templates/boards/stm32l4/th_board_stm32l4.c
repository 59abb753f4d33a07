/*
 * Board support for STM32L4+ parts (STM32L4R5 on the NUCLEO-L4R5ZI, the MLPerf
 * Tiny reference board): LPUART1 (the ST-LINK virtual COM port: TX on PG7, RX
 * on PG8, alternate function 8; port G is powered from VDDIO2, which must be
 * declared valid first) clocked from the HSI16, and TIM2 for time.
 *
 * The build passes -DTH_TIMER_BASE (TIM2); optional -DTH_TIMER_HZ. Board
 * builds add -DTH_CLOCK_SETUP: 120 MHz from the HSI16 through the PLL in
 * range 1 boost mode, 5 flash wait states with prefetch and the ART caches,
 * as the part is benchmarked (MLPerf Tiny's reference runs). Every wait on a
 * ready bit is bounded. Register addresses and bits are from ST's RM0432;
 * this family has not run on silicon here (docs/boards.md).
 */
#include "th_board.h"


#define TH_REG(base, offset) (*(volatile uint32_t *)((uintptr_t)(base) + (offset)))

/* RCC, PWR, flash interface. */
#define TH_RCC_BASE 0x40021000u
#define TH_RCC_CR TH_REG(TH_RCC_BASE, 0x00u)
#define TH_RCC_CFGR TH_REG(TH_RCC_BASE, 0x08u)
#define TH_RCC_PLLCFGR TH_REG(TH_RCC_BASE, 0x0Cu)
#define TH_RCC_AHB2ENR TH_REG(TH_RCC_BASE, 0x4Cu)
#define TH_RCC_APB1ENR1 TH_REG(TH_RCC_BASE, 0x58u)
#define TH_RCC_APB1ENR2 TH_REG(TH_RCC_BASE, 0x5Cu)
#define TH_RCC_CCIPR TH_REG(TH_RCC_BASE, 0x88u)
#define TH_PWR_BASE 0x40007000u
#define TH_PWR_CR1 TH_REG(TH_PWR_BASE, 0x00u)
#define TH_PWR_CR2 TH_REG(TH_PWR_BASE, 0x04u)
#define TH_PWR_SR2 TH_REG(TH_PWR_BASE, 0x14u)
#define TH_PWR_CR5 TH_REG(TH_PWR_BASE, 0x80u)
#define TH_FLASH_ACR TH_REG(0x40022000u, 0x00u)

/* GPIOG: PG7 = LPUART1_TX, PG8 = LPUART1_RX, alternate function 8. */
#define TH_GPIOG_BASE 0x48001800u
#define TH_GPIO_MODER(base) TH_REG(base, 0x00u)
#define TH_GPIO_AFRL(base) TH_REG(base, 0x20u)
#define TH_GPIO_AFRH(base) TH_REG(base, 0x24u)

/* LPUART1 (the USART register layout: ISR/RDR/TDR; BRR = 256 * clock / baud). */
#define TH_LPUART_BASE 0x40008000u
#define TH_LPUART_CR1 TH_REG(TH_LPUART_BASE, 0x00u)
#define TH_LPUART_BRR TH_REG(TH_LPUART_BASE, 0x0Cu)
#define TH_LPUART_ISR TH_REG(TH_LPUART_BASE, 0x1Cu)
#define TH_LPUART_RDR TH_REG(TH_LPUART_BASE, 0x24u)
#define TH_LPUART_TDR TH_REG(TH_LPUART_BASE, 0x28u)
#define TH_LPUART_ISR_RXNE (1u << 5)
#define TH_LPUART_ISR_TXE (1u << 7)
#define TH_LPUART_CR1_UE (1u << 0)
#define TH_LPUART_CR1_RE (1u << 2)
#define TH_LPUART_CR1_TE (1u << 3)
#define TH_HSI16_HZ 16000000u


#define TH_READY_SPINS 1000000u

static int th_wait_set(volatile uint32_t *reg, uint32_t mask, uint32_t value) {
    for (uint32_t i = 0; i < TH_READY_SPINS; ++i) {
        if ((*reg & mask) == value) {
            return 0;
        }
    }
    return -1;
}

#ifdef TH_CLOCK_SETUP
/* 120 MHz: HSI16 / M 1 * N 15 / R 2, range 1 boost mode (R1MODE = 0), 5 wait
 * states; the AHB runs /2 for the switch above 80 MHz, as RM0432 asks. */
static void th_clock_setup(void) {
    TH_PWR_CR1 = (TH_PWR_CR1 & ~(3u << 9)) | (1u << 9); /* VOS: range 1 */
    (void)th_wait_set(&TH_PWR_SR2, 1u << 10, 0u);       /* VOSF clear */
    TH_PWR_CR5 &= ~(1u << 8);                           /* R1MODE: boost */
    TH_FLASH_ACR = (TH_FLASH_ACR & ~0xFu) | 5u | (1u << 8) | (1u << 9) | (1u << 10);
    (void)th_wait_set(&TH_FLASH_ACR, 0xFu, 5u);
    TH_RCC_PLLCFGR = 2u /* HSI16 */ | (0u << 4) /* M 1 */ | (15u << 8) /* N */ | (1u << 24) /* REN, R 2 */;
    TH_RCC_CR |= 1u << 24; /* PLLON */
    (void)th_wait_set(&TH_RCC_CR, 1u << 25, 1u << 25);
    TH_RCC_CFGR = (TH_RCC_CFGR & ~0xF3u) | (8u << 4) | 3u; /* AHB /2, SW = PLL */
    (void)th_wait_set(&TH_RCC_CFGR, 0xCu, 0xCu);
    for (volatile uint32_t i = 0; i < 200u; ++i) { /* > 1 us at 60 MHz */
    }
    TH_RCC_CFGR &= ~(0xFu << 4); /* AHB /1 */
}
#ifndef TH_TIMER_HZ
#define TH_TIMER_HZ 120000000u
#endif
#else
#ifndef TH_TIMER_HZ
#define TH_TIMER_HZ 4000000u /* MSI 4 MHz, the reset clock */
#endif
#endif

void th_board_init(void) {
    TH_RCC_APB1ENR1 |= (1u << 0) | (1u << 28); /* TIM2, PWR */
#ifdef TH_CLOCK_SETUP
    th_clock_setup();
#endif
    TH_RCC_CR |= 1u << 8; /* HSION: LPUART1's clock, whatever SYSCLK is */
    (void)th_wait_set(&TH_RCC_CR, 1u << 10, 1u << 10);
    TH_PWR_CR2 |= 1u << 9; /* IOSV: VDDIO2 valid, port G usable */
    TH_RCC_AHB2ENR |= 1u << 6; /* GPIOG */
    TH_RCC_APB1ENR2 |= 1u << 0; /* LPUART1 */
    TH_RCC_CCIPR = (TH_RCC_CCIPR & ~(3u << 10)) | (2u << 10); /* LPUART1SEL = HSI16 */
    TH_GPIO_MODER(TH_GPIOG_BASE) = (TH_GPIO_MODER(TH_GPIOG_BASE) & ~(0xFu << 14)) | (0xAu << 14);
    TH_GPIO_AFRL(TH_GPIOG_BASE) = (TH_GPIO_AFRL(TH_GPIOG_BASE) & ~(0xFu << 28)) | (8u << 28);
    TH_GPIO_AFRH(TH_GPIOG_BASE) = (TH_GPIO_AFRH(TH_GPIOG_BASE) & ~0xFu) | 8u;
    TH_LPUART_BRR = (uint32_t)(((uint64_t)TH_HSI16_HZ * 256u + 115200u / 2u) / 115200u);
    TH_LPUART_CR1 = TH_LPUART_CR1_UE | TH_LPUART_CR1_TE | TH_LPUART_CR1_RE;
}

void th_uart_putc(char c) {
    while (!(TH_LPUART_ISR & TH_LPUART_ISR_TXE)) {
    }
    TH_LPUART_TDR = (uint8_t)c;
}

char th_uart_getc(void) {
    while (!(TH_LPUART_ISR & TH_LPUART_ISR_RXNE)) {
    }
    return (char)(TH_LPUART_RDR & 0xFFu);
}

#ifdef TH_ENERGY_MODE
/* EnergyRunner's timestamp pin (th_board.h): GPIOA..GPIOI every 0x400 bytes
 * from 0x48000000 (AHB2), clocked by RCC_AHB2ENR bits 0..8 (RM0432 memory map,
 * RCC). Port G (PG2..PG15) is on VDDIO2, which th_board_init() declares valid. */
#define TH_GPIO_PORT0_BASE 0x48000000u
#define TH_GPIO_PORTS 9
#define TH_GPIO_CLOCK_ENR TH_RCC_AHB2ENR
#define TH_TIMESTAMP_MAX_HZ 120000000u
#include "th_stm32_timestamp.h"
#endif

#include "th_stm32_tim.h"
