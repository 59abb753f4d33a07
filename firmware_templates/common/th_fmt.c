/* tinyhil firmware: integer output formatting (see th_fmt.h). */
#include "th_fmt.h"

#include "th_board.h"

void th_put(const char *s) {
    while (*s != '\0') {
        th_uart_putc(*s++);
    }
}

void th_put_eol(void) {
    th_uart_putc('\r');
    th_uart_putc('\n');
}

void th_put_line(const char *s) {
    th_put(s);
    th_put_eol();
}

/* Digits by repeated subtraction of powers of ten: no 64-bit division. */
void th_put_u64(uint64_t v) {
    static const uint64_t pow10[] = {
        10000000000000000000u, 1000000000000000000u, 100000000000000000u,
        10000000000000000u,    1000000000000000u,    100000000000000u,
        10000000000000u,       1000000000000u,       100000000000u,
        10000000000u,          1000000000u,          100000000u,
        10000000u,             1000000u,             100000u,
        10000u,                1000u,                100u,
        10u,                   1u,
    };
    int started = 0;
    for (unsigned i = 0; i < sizeof(pow10) / sizeof(pow10[0]); ++i) {
        char digit = '0';
        while (v >= pow10[i]) {
            v -= pow10[i];
            ++digit;
        }
        if (digit != '0' || started || i + 1 == sizeof(pow10) / sizeof(pow10[0])) {
            th_uart_putc(digit);
            started = 1;
        }
    }
}

void th_put_i64(int64_t v) {
    if (v < 0) {
        th_uart_putc('-');
        th_put_u64((uint64_t)0 - (uint64_t)v);
    } else {
        th_put_u64((uint64_t)v);
    }
}

void th_put_hex8(uint8_t v) {
    static const char digits[] = "0123456789abcdef";
    th_uart_putc(digits[v >> 4]);
    th_uart_putc(digits[v & 0xFu]);
}

void th_put_milli(int64_t milli) {
    uint64_t mag = milli < 0 ? (uint64_t)0 - (uint64_t)milli : (uint64_t)milli;
    uint32_t frac = (uint32_t)(mag % 1000u);
    if (milli < 0) {
        th_uart_putc('-');
    }
    th_put_u64(mag / 1000u);
    th_uart_putc('.');
    th_uart_putc((char)('0' + frac / 100u));
    th_uart_putc((char)('0' + (frac / 10u) % 10u));
    th_uart_putc((char)('0' + frac % 10u));
}
