/*
 * The board contract's energy-mode timestamp pin (th_board.h, TH_ENERGY_MODE:
 * th_board_timestamp_init/th_board_timestamp) on an STM32 GPIO, the same
 * register layout on the F4, F7 and L4 families (MODER 0x00, OTYPER 0x04,
 * OSPEEDR 0x08, PUPDR 0x0C, BSRR 0x18). Included once, under TH_ENERGY_MODE,
 * by an STM32 board family's C file, which first defines:
 *
 *   TH_GPIO_PORT0_BASE   GPIOA's base address (ports follow every 0x400 bytes)
 *   TH_GPIO_PORTS        how many ports the family has (9: A..I, 11: A..K)
 *   TH_GPIO_CLOCK_ENR    the RCC register whose bit n enables port n's clock
 *   TH_TIMESTAMP_MAX_HZ  the family's top core clock, the hold time's bound
 *                        when the build does not say the clock (TH_CPU_HZ)
 *
 * The build passes -DTH_TIMESTAMP_PORT (0 = A) and -DTH_TIMESTAMP_PIN (0..15)
 * from the descriptor's [energy] timestamp_pin.
 */
#ifndef TH_STM32_TIMESTAMP_H
#define TH_STM32_TIMESTAMP_H

#include <stdint.h>

#include "th_board.h"

#ifndef TH_TIMESTAMP_PORT
#error "TH_ENERGY_MODE needs TH_TIMESTAMP_PORT (0 = GPIOA): the target's [energy] timestamp_pin, in the chip build"
#endif
#ifndef TH_TIMESTAMP_PIN
#error "TH_ENERGY_MODE needs TH_TIMESTAMP_PIN (0..15): the target's [energy] timestamp_pin, in the chip build"
#endif
#if (TH_TIMESTAMP_PORT) < 0 || (TH_TIMESTAMP_PORT) >= (TH_GPIO_PORTS)
#error "TH_TIMESTAMP_PORT: this STM32 family has no such GPIO port"
#endif
#if (TH_TIMESTAMP_PIN) < 0 || (TH_TIMESTAMP_PIN) > 15
#error "TH_TIMESTAMP_PIN: an STM32 GPIO port has pins 0..15"
#endif
#ifndef TH_TIMESTAMP_HOLD_US
#define TH_TIMESTAMP_HOLD_US 1u
#endif
#ifdef TH_CPU_HZ
#define TH_TIMESTAMP_CPU_HZ (TH_CPU_HZ)
#else
#define TH_TIMESTAMP_CPU_HZ (TH_TIMESTAMP_MAX_HZ)
#endif

#define TH_TS_BASE ((uint32_t)(TH_GPIO_PORT0_BASE) + 0x400u * (uint32_t)(TH_TIMESTAMP_PORT))
#define TH_TS_REG(offset) (*(volatile uint32_t *)(uintptr_t)(TH_TS_BASE + (offset)))
#define TH_TS_MODER TH_TS_REG(0x00u)
#define TH_TS_OTYPER TH_TS_REG(0x04u)
#define TH_TS_OSPEEDR TH_TS_REG(0x08u)
#define TH_TS_PUPDR TH_TS_REG(0x0Cu)
#define TH_TS_BSRR TH_TS_REG(0x18u)
#define TH_TS_BIT (1u << (TH_TIMESTAMP_PIN))
#define TH_TS_FIELD(value) ((uint32_t)(value) << (2u * (uint32_t)(TH_TIMESTAMP_PIN)))

/* Spin iterations for the low time: one per core cycle of the hold, rounded up
 * per microsecond; an iteration (nop, subtract, branch) takes at least one
 * cycle even dual-issued on the Cortex-M7, so the pin stays low at least that
 * long at the clock given (longer at a slower one, e.g. the reset clock). */
#define TH_TS_HOLD_LOOPS \
    ((uint32_t)(TH_TIMESTAMP_HOLD_US) * ((uint32_t)(TH_TIMESTAMP_CPU_HZ) / 1000000u + 1u))

void th_board_timestamp_init(void) {
    TH_GPIO_CLOCK_ENR |= 1u << (TH_TIMESTAMP_PORT);
    (void)TH_GPIO_CLOCK_ENR; /* read back: the port is clocked before its registers are written */
    TH_TS_BSRR = TH_TS_BIT;  /* output latch high first: no low glitch when the pin turns output */
#ifdef TH_TIMESTAMP_PUSH_PULL
    TH_TS_OTYPER &= ~TH_TS_BIT;
#else
    TH_TS_OTYPER |= TH_TS_BIT; /* open drain: the line is low or released */
#endif
    TH_TS_PUPDR = (TH_TS_PUPDR & ~TH_TS_FIELD(3u)) | TH_TS_FIELD(1u);       /* pull-up: idles high */
    TH_TS_OSPEEDR = (TH_TS_OSPEEDR & ~TH_TS_FIELD(3u)) | TH_TS_FIELD(1u);   /* medium speed */
    TH_TS_MODER = (TH_TS_MODER & ~TH_TS_FIELD(3u)) | TH_TS_FIELD(1u);       /* general-purpose output */
}

void th_board_timestamp(void) {
    TH_TS_BSRR = TH_TS_BIT << 16; /* reset: the falling edge the monitor timestamps */
    __asm__ volatile("dsb" ::: "memory"); /* the edge now, not when the write buffer drains */
    for (uint32_t i = 0; i < TH_TS_HOLD_LOOPS; ++i) {
        __asm__ volatile("nop");
    }
    TH_TS_BSRR = TH_TS_BIT; /* set: released high */
    __asm__ volatile("dsb" ::: "memory");
}

#endif /* TH_STM32_TIMESTAMP_H */
