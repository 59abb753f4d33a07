/*
 * The board API: what every board family under firmware_templates/boards/
 * implements, and all the common firmware needs from the hardware.
 *
 * Timer contract: th_timer_start() (re)starts a free-running counter at 0;
 * th_timer_read() returns the ticks counted since, as an up-counting 32-bit
 * value that wraps at 2^32. Restarting is what makes a measurement start in
 * phase with the tick, so two runs of the same code read the same count.
 */
#ifndef TH_BOARD_H
#define TH_BOARD_H

#include <stdint.h>

/* Clocks, UART and timer; called once, before anything prints. */
void th_board_init(void);

/* Sends one byte; waits while the transmitter is full. */
void th_uart_putc(char c);

/* Returns the next received byte; waits until there is one. */
char th_uart_getc(void);

/* (Re)starts the tick counter at 0. */
void th_timer_start(void);

/* Ticks since th_timer_start(), wrapping at 2^32. */
uint32_t th_timer_read(void);

/* The tick rate in Hz (virtual time under QEMU). */
uint32_t th_timer_hz(void);

#endif /* TH_BOARD_H */
