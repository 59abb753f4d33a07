/*
 * Board support for STM32F4 parts (QEMU's netduinoplus2 is an STM32F405):
 * USART for the protocol, a 32-bit general-purpose timer (TIM2/TIM5) for time.
 *
 * The build passes -DTH_USART_BASE and -DTH_TIMER_BASE; optional
 * -DTH_TIMER_HZ (the timer's counting rate after the prescaler) and
 * -DTH_TIMER_PSC (prescaler value, default 0).
 *
 * Clocks stay at reset (16 MHz HSI). QEMU's RCC is an unimplemented stub, so
 * nothing here waits on a ready bit; the enable writes are for real silicon.
 * Board builds (-DTH_CLOCK_SETUP) switch to 168 MHz with bounded waits.
 */
#include "th_board.h"

#ifdef TH_UART_RX_IRQ
#include "th_cpu.h"
#endif

#ifndef TH_USART_BASE
#error "TH_USART_BASE (USART base address) must be defined by the build"
#endif
#ifndef TH_TIMER_HZ
#define TH_TIMER_HZ 16000000u
#endif

#define TH_REG(base, offset) (*(volatile uint32_t *)((uintptr_t)(base) + (offset)))

/* RCC clock enables and GPIOA (USART1 on PA9/PA10, alternate function 7). */
#define TH_RCC_BASE 0x40023800u
#define TH_RCC_AHB1ENR TH_REG(TH_RCC_BASE, 0x30u)
#define TH_RCC_APB1ENR TH_REG(TH_RCC_BASE, 0x40u)
#define TH_RCC_APB2ENR TH_REG(TH_RCC_BASE, 0x44u)
#define TH_GPIOA_BASE 0x40020000u
#define TH_GPIOA_MODER TH_REG(TH_GPIOA_BASE, 0x00u)
#define TH_GPIOA_AFRH TH_REG(TH_GPIOA_BASE, 0x24u)

/* USART registers and bits. */
#define TH_USART_SR TH_REG(TH_USART_BASE, 0x00u)
#define TH_USART_DR TH_REG(TH_USART_BASE, 0x04u)
#define TH_USART_BRR TH_REG(TH_USART_BASE, 0x08u)
#define TH_USART_CR1 TH_REG(TH_USART_BASE, 0x0Cu)
#define TH_USART_SR_RXNE (1u << 5)
#define TH_USART_SR_TXE (1u << 7)
#define TH_USART_CR1_RE (1u << 2)
#define TH_USART_CR1_RXNEIE (1u << 5)
#define TH_USART_CR1_TE (1u << 3)
#define TH_USART_CR1_UE (1u << 13)


#ifdef TH_CLOCK_SETUP
/* Board builds run at 168 MHz: HSI 16 MHz / M 16 * N 336 / P 2; AHB /1,
 * APB1 /4, APB2 /2 (84 MHz); 5 flash wait states with prefetch and the ART
 * caches. Waits on ready bits are bounded: QEMU's RCC is a stub. */
#define TH_RCC_CR TH_REG(TH_RCC_BASE, 0x00u)
#define TH_RCC_PLLCFGR TH_REG(TH_RCC_BASE, 0x04u)
#define TH_RCC_CFGR TH_REG(TH_RCC_BASE, 0x08u)
#define TH_FLASH_ACR TH_REG(0x40023C00u, 0x00u)
#define TH_USART_BRR_VALUE 0x2D9u /* 115200 baud from 84 MHz: 45 + 9/16 */

static void th_wait_bits(volatile uint32_t *reg, uint32_t mask, uint32_t value) {
    for (uint32_t i = 0; i < 1000000u && (*reg & mask) != value; ++i) {
    }
}

static void th_clock_setup(void) {
    TH_FLASH_ACR = 5u | (1u << 8) | (1u << 9) | (1u << 10);
    TH_RCC_PLLCFGR = 16u | (336u << 6) | (0u << 16) | (7u << 24);
    TH_RCC_CR |= 1u << 24; /* PLLON */
    th_wait_bits(&TH_RCC_CR, 1u << 25, 1u << 25);
    TH_RCC_CFGR = (TH_RCC_CFGR & ~0xFCF3u) | (5u << 10) | (4u << 13) | 2u;
    th_wait_bits(&TH_RCC_CFGR, 0xCu, 0x8u); /* SWS = PLL */
}
#else
#define TH_USART_BRR_VALUE 0x8Bu /* 115200 baud from 16 MHz: 8 + 11/16 */
#endif

void th_board_init(void) {
#ifdef TH_CLOCK_SETUP
    th_clock_setup();
#endif
    TH_RCC_AHB1ENR |= 1u << 0;                  /* GPIOA */
    TH_RCC_APB1ENR |= (1u << 0) | (1u << 3);    /* TIM2, TIM5 */
    TH_RCC_APB2ENR |= (1u << 4);                /* USART1 */
    TH_GPIOA_MODER = (TH_GPIOA_MODER & ~(0xFu << 18)) | (0xAu << 18); /* PA9, PA10: AF */
    TH_GPIOA_AFRH = (TH_GPIOA_AFRH & ~(0xFFu << 4)) | (0x77u << 4);   /* AF7 = USART1 */
    TH_USART_BRR = TH_USART_BRR_VALUE;
    TH_USART_CR1 = TH_USART_CR1_UE | TH_USART_CR1_TE | TH_USART_CR1_RE;
}

void th_uart_putc(char c) {
    while (!(TH_USART_SR & TH_USART_SR_TXE)) {
    }
    TH_USART_DR = (uint8_t)c;
}

char th_uart_getc(void) {
    while (!(TH_USART_SR & TH_USART_SR_RXNE)) {
    }
    return (char)(TH_USART_DR & 0xFFu);
}

#ifdef TH_ENERGY_MODE
/* EnergyRunner's timestamp pin (th_board.h): GPIOA..GPIOI every 0x400 bytes
 * from 0x40020000, clocked by RCC_AHB1ENR bits 0..8 (RM0090 memory map, RCC). */
#define TH_GPIO_PORT0_BASE 0x40020000u
#define TH_GPIO_PORTS 9
#define TH_GPIO_CLOCK_ENR TH_RCC_AHB1ENR
#define TH_TIMESTAMP_MAX_HZ 168000000u
#include "th_stm32_timestamp.h"
#endif

#include "th_stm32_tim.h"

#ifdef TH_UART_RX_IRQ
void th_uart_rx_irq(int enable) {
    if (!enable) {
        TH_USART_CR1 &= ~TH_USART_CR1_RXNEIE;
        th_cpu_irq_disable(TH_UART_RX_IRQ);
        return;
    }
    TH_USART_CR1 |= TH_USART_CR1_RXNEIE;
    th_cpu_irq_enable(TH_UART_RX_IRQ);
    if (TH_USART_SR & TH_USART_SR_RXNE) { /* a byte that came before the enable */
        th_cpu_irq_pend(TH_UART_RX_IRQ);
    }
}

void th_uart_rx_handler(void) {
    if (TH_USART_SR & TH_USART_SR_RXNE) {
        th_uart_rx_byte((uint8_t)(TH_USART_DR & 0xFFu)); /* reading DR clears RXNE */
    }
}
#endif
