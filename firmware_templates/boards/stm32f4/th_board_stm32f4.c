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
 */
#include "th_board.h"

#ifndef TH_USART_BASE
#error "TH_USART_BASE (USART base address) must be defined by the build"
#endif
#ifndef TH_TIMER_BASE
#error "TH_TIMER_BASE (TIM2 or TIM5 base address) must be defined by the build"
#endif
#ifndef TH_TIMER_PSC
#define TH_TIMER_PSC 0u
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
#define TH_USART_CR1_TE (1u << 3)
#define TH_USART_CR1_UE (1u << 13)

/* General-purpose timer registers and bits. */
#define TH_TIM_CR1 TH_REG(TH_TIMER_BASE, 0x00u)
#define TH_TIM_EGR TH_REG(TH_TIMER_BASE, 0x14u)
#define TH_TIM_CNT TH_REG(TH_TIMER_BASE, 0x24u)
#define TH_TIM_PSC TH_REG(TH_TIMER_BASE, 0x28u)
#define TH_TIM_ARR TH_REG(TH_TIMER_BASE, 0x2Cu)
#define TH_TIM_CR1_CEN 0x1u
#define TH_TIM_EGR_UG 0x1u

void th_board_init(void) {
    TH_RCC_AHB1ENR |= 1u << 0;                  /* GPIOA */
    TH_RCC_APB1ENR |= (1u << 0) | (1u << 3);    /* TIM2, TIM5 */
    TH_RCC_APB2ENR |= (1u << 4);                /* USART1 */
    TH_GPIOA_MODER = (TH_GPIOA_MODER & ~(0xFu << 18)) | (0xAu << 18); /* PA9, PA10: AF */
    TH_GPIOA_AFRH = (TH_GPIOA_AFRH & ~(0xFFu << 4)) | (0x77u << 4);   /* AF7 = USART1 */
    TH_USART_BRR = 0x8Bu; /* 115200 baud from 16 MHz: 8 + 11/16 */
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

void th_timer_start(void) {
    TH_TIM_CR1 = 0u;
    TH_TIM_PSC = TH_TIMER_PSC;
    TH_TIM_ARR = 0xFFFFFFFFu;
    TH_TIM_EGR = TH_TIM_EGR_UG; /* load the prescaler, clear the counter */
    TH_TIM_CNT = 0u;
    TH_TIM_CR1 = TH_TIM_CR1_CEN;
}

uint32_t th_timer_read(void) {
    return TH_TIM_CNT;
}

uint32_t th_timer_hz(void) {
    return TH_TIMER_HZ;
}
