/*
 * A tiny output formatter over th_uart_putc: strings, decimal and hex
 * integers, and fixed-point thousandths. No printf: it keeps flash small.
 */
#ifndef TH_FMT_H
#define TH_FMT_H

#include <stdint.h>

void th_put(const char *s);
/* Writes s followed by "\r\n". */
void th_put_line(const char *s);
void th_put_eol(void);
void th_put_u64(uint64_t v);
void th_put_i64(int64_t v);
/* Two lowercase hex digits. */
void th_put_hex8(uint8_t v);
/* milli / 1000 with exactly three digits after the point, e.g. -0.250. */
void th_put_milli(int64_t milli);

#endif /* TH_FMT_H */
