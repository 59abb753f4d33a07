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

/*
 * Optional: interrupt-driven receive, so the next input streams in while the
 * CPU computes (th-batch). A target opts in by defining TH_UART_RX_IRQ (the
 * UART's receive interrupt number) in its descriptor; its board family then
 * implements th_uart_rx_irq() and a handler named th_uart_rx_handler that
 * passes each received byte to th_uart_rx_byte() (the common firmware's).
 * Without TH_UART_RX_IRQ the common firmware polls th_uart_getc() instead.
 */
#ifdef TH_UART_RX_IRQ
/* Enables (1) or disables (0) the receive interrupt. Enabling with a byte
 * already waiting must still lead to the handler being called for it. */
void th_uart_rx_irq(int enable);

/* The receive interrupt handler (in the vector table at 16 + TH_UART_RX_IRQ). */
void th_uart_rx_handler(void);

/* Called by th_uart_rx_handler with each received byte. */
void th_uart_rx_byte(uint8_t c);
#endif

/*
 * Optional: EnergyRunner's energy mode (EEMBC / MLPerf Tiny, EE_CFG_ENERGY_MODE).
 * The energy monitor supplies the chip and timestamps the falling edges of one
 * GPIO: there th_timestamp() pulls the pin low instead of printing m-lap-us.
 * A target opts in with an [energy] timestamp_pin in its descriptor, which the
 * chip build passes as -DTH_TIMESTAMP_PORT (0 = port A, 1 = B, ...) and
 * -DTH_TIMESTAMP_PIN (0..15); `tinyhil build --energy` adds -DTH_ENERGY_MODE.
 * Optional: -DTH_TIMESTAMP_PUSH_PULL (drive high too, instead of open drain)
 * and -DTH_TIMESTAMP_HOLD_US (the low time, default 1 us).
 */
#ifdef TH_ENERGY_MODE
/* Makes the pin an open-drain output (internal pull-up on) that idles high.
 * Called once, after th_board_init(). */
void th_board_timestamp_init(void);

/* One timestamp: the pin low for at least TH_TIMESTAMP_HOLD_US at the core
 * clock (the falling edge is the time stamp), then released high. */
void th_board_timestamp(void);
#endif

#endif /* TH_BOARD_H */
