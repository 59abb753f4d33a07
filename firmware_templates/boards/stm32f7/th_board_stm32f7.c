/*
 * Board support for STM32F7 parts (STM32F746 on the 32F746GDISCOVERY, as
 * Renode's stm32f7_discovery-bb platform models it): USART1 (the ST-LINK
 * virtual COM port: TX on PA9, RX on PB7), TIM2 for time.
 *
 * The build passes -DTH_USART_BASE and -DTH_TIMER_BASE; optional
 * -DTH_TIMER_HZ (TIM2's counting rate). Board builds add -DTH_CLOCK_SETUP:
 * 216 MHz from the HSI through the PLL with over-drive, 7 flash wait states
 * with ART and prefetch, and the Cortex-M7 caches on, as the part is
 * benchmarked. Every wait on a ready bit is bounded, so an emulator whose
 * RCC or PWR is a stub never hangs here. Register addresses and bits are from
 * ST's RM0385; this family has not run on silicon here (docs/boards.md).
 */
#include "th_board.h"

#ifndef TH_USART_BASE
#error "TH_USART_BASE (USART base address) must be defined by the build"
#endif
#ifndef TH_TIMER_HZ
#define TH_TIMER_HZ 16000000u
#endif

#define TH_REG(base, offset) (*(volatile uint32_t *)((uintptr_t)(base) + (offset)))

/* RCC, PWR, flash interface. */
#define TH_RCC_BASE 0x40023800u
#define TH_RCC_CR TH_REG(TH_RCC_BASE, 0x00u)
#define TH_RCC_PLLCFGR TH_REG(TH_RCC_BASE, 0x04u)
#define TH_RCC_CFGR TH_REG(TH_RCC_BASE, 0x08u)
#define TH_RCC_AHB1ENR TH_REG(TH_RCC_BASE, 0x30u)
#define TH_RCC_APB1ENR TH_REG(TH_RCC_BASE, 0x40u)
#define TH_RCC_APB2ENR TH_REG(TH_RCC_BASE, 0x44u)
#define TH_PWR_CR1 TH_REG(0x40007000u, 0x00u)
#define TH_PWR_CSR1 TH_REG(0x40007000u, 0x04u)
#define TH_FLASH_ACR TH_REG(0x40023C00u, 0x00u)

/* GPIOA (PA9 = USART1_TX) and GPIOB (PB7 = USART1_RX), alternate function 7. */
#define TH_GPIOA_BASE 0x40020000u
#define TH_GPIOB_BASE 0x40020400u
#define TH_GPIO_MODER(base) TH_REG(base, 0x00u)
#define TH_GPIO_AFRL(base) TH_REG(base, 0x20u)
#define TH_GPIO_AFRH(base) TH_REG(base, 0x24u)

/* USART (STM32F7 register layout: ISR/RDR/TDR). */
#define TH_USART_CR1 TH_REG(TH_USART_BASE, 0x00u)
#define TH_USART_BRR TH_REG(TH_USART_BASE, 0x0Cu)
#define TH_USART_ISR TH_REG(TH_USART_BASE, 0x1Cu)
#define TH_USART_RDR TH_REG(TH_USART_BASE, 0x24u)
#define TH_USART_TDR TH_REG(TH_USART_BASE, 0x28u)
#define TH_USART_ISR_RXNE (1u << 5)
#define TH_USART_ISR_TXE (1u << 7)
#define TH_USART_CR1_UE (1u << 0)
#define TH_USART_CR1_RE (1u << 2)
#define TH_USART_CR1_TE (1u << 3)


/* Cortex-M7 caches (System Control Block). */
#define TH_SCB_CCR (*(volatile uint32_t *)0xE000ED14u)
#define TH_SCB_CCSIDR (*(volatile uint32_t *)0xE000ED80u)
#define TH_SCB_CSSELR (*(volatile uint32_t *)0xE000ED84u)
#define TH_SCB_ICIALLU (*(volatile uint32_t *)0xE000EF50u)
#define TH_SCB_DCISW (*(volatile uint32_t *)0xE000EF60u)
#define TH_SCB_CCR_DC (1u << 16)
#define TH_SCB_CCR_IC (1u << 17)

#ifdef TH_CLOCK_SETUP
#define TH_READY_SPINS 1000000u

static int th_wait_set(volatile uint32_t *reg, uint32_t mask, uint32_t value) {
    for (uint32_t i = 0; i < TH_READY_SPINS; ++i) {
        if ((*reg & mask) == value) {
            return 0;
        }
    }
    return -1;
}

static void th_caches_on(void) {
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    TH_SCB_ICIALLU = 0u;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
    TH_SCB_CCR |= TH_SCB_CCR_IC;
    TH_SCB_CSSELR = 0u; /* level 1 data cache */
    __asm__ volatile("dsb" ::: "memory");
    uint32_t ccsidr = TH_SCB_CCSIDR;
    uint32_t sets = ((ccsidr >> 13) & 0x7FFFu) + 1u;
    uint32_t ways = ((ccsidr >> 3) & 0x3FFu) + 1u;
    uint32_t set_shift = (ccsidr & 0x7u) + 4u;
    uint32_t way_shift = ways > 1u ? (uint32_t)__builtin_clz(ways - 1u) : 0u;
    for (uint32_t s = 0; s < sets; ++s) {
        for (uint32_t w = 0; w < ways; ++w) {
            TH_SCB_DCISW = (s << set_shift) | (w << way_shift);
        }
    }
    __asm__ volatile("dsb" ::: "memory");
    TH_SCB_CCR |= TH_SCB_CCR_DC;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
}

/* 216 MHz: HSI 16 MHz / M 16 * N 432 / P 2; AHB /1, APB1 /4, APB2 /2 (108 MHz). */
static void th_clock_setup(void) {
    TH_RCC_APB1ENR |= 1u << 28; /* PWR */
    TH_PWR_CR1 |= 3u << 14;     /* VOS: scale 1 */
    TH_RCC_PLLCFGR = 16u | (432u << 6) | (0u << 16) | (9u << 24);
    TH_RCC_CR |= 1u << 24; /* PLLON */
    (void)th_wait_set(&TH_RCC_CR, 1u << 25, 1u << 25);
    TH_PWR_CR1 |= 1u << 16; /* over-drive */
    (void)th_wait_set(&TH_PWR_CSR1, 1u << 16, 1u << 16);
    TH_PWR_CR1 |= 1u << 17; /* over-drive switching */
    (void)th_wait_set(&TH_PWR_CSR1, 1u << 17, 1u << 17);
    TH_FLASH_ACR = 7u | (1u << 8) | (1u << 9); /* 7 wait states, prefetch, ART */
    TH_RCC_CFGR = (TH_RCC_CFGR & ~0xFCF3u) | (5u << 10) | (4u << 13) | 2u;
    (void)th_wait_set(&TH_RCC_CFGR, 0xCu, 0x8u); /* SWS = PLL */
    th_caches_on();
}
#define TH_USART_CLOCK_HZ 108000000u
#else
#define TH_USART_CLOCK_HZ 16000000u
#endif

void th_board_init(void) {
#ifdef TH_CLOCK_SETUP
    th_clock_setup();
#endif
    TH_RCC_AHB1ENR |= (1u << 0) | (1u << 1); /* GPIOA, GPIOB */
    TH_RCC_APB1ENR |= (1u << 0) | (1u << 3); /* TIM2, TIM5 */
    TH_RCC_APB2ENR |= 1u << 4;                 /* USART1 */
    TH_GPIO_MODER(TH_GPIOA_BASE) = (TH_GPIO_MODER(TH_GPIOA_BASE) & ~(3u << 18)) | (2u << 18);
    TH_GPIO_AFRH(TH_GPIOA_BASE) = (TH_GPIO_AFRH(TH_GPIOA_BASE) & ~(0xFu << 4)) | (7u << 4);
    TH_GPIO_MODER(TH_GPIOB_BASE) = (TH_GPIO_MODER(TH_GPIOB_BASE) & ~(3u << 14)) | (2u << 14);
    TH_GPIO_AFRL(TH_GPIOB_BASE) = (TH_GPIO_AFRL(TH_GPIOB_BASE) & ~(0xFu << 28)) | (7u << 28);
    TH_USART_BRR = (TH_USART_CLOCK_HZ + 115200u / 2u) / 115200u; /* oversampling by 16 */
    TH_USART_CR1 = TH_USART_CR1_UE | TH_USART_CR1_TE | TH_USART_CR1_RE;
}

void th_uart_putc(char c) {
    while (!(TH_USART_ISR & TH_USART_ISR_TXE)) {
    }
    TH_USART_TDR = (uint8_t)c;
}

char th_uart_getc(void) {
    while (!(TH_USART_ISR & TH_USART_ISR_RXNE)) {
    }
    return (char)(TH_USART_RDR & 0xFFu);
}

#ifdef TH_ENERGY_MODE
/* EnergyRunner's timestamp pin (th_board.h): GPIOA..GPIOK every 0x400 bytes
 * from 0x40020000, clocked by RCC_AHB1ENR bits 0..10 (RM0385 memory map, RCC). */
#define TH_GPIO_PORT0_BASE 0x40020000u
#define TH_GPIO_PORTS 11
#define TH_GPIO_CLOCK_ENR TH_RCC_AHB1ENR
#define TH_TIMESTAMP_MAX_HZ 216000000u
#include "th_stm32_timestamp.h"
#endif

#include "th_stm32_tim.h"
