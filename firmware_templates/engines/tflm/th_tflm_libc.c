/*
 * What newlib needs from a TFLM firmware, and no more.
 *
 * TFLM's default build keeps assert() and reports fatal errors with abort():
 * both end here like a hardfault does, with one m-th-fault line and m-ready,
 * so the host reports them at once instead of waiting for a timeout (newlib's
 * versions would drag in stdio and its syscalls). DebugLog's vsnprintf links
 * newlib's malloc, which finds no heap: TFLM allocates only from the tensor
 * arena, so _sbrk refuses every request.
 */
#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include "th_fmt.h"

void abort(void) __attribute__((noreturn));
void __assert_func(const char *file, int line, const char *func, const char *expr) __attribute__((noreturn));
void *_sbrk(ptrdiff_t increment);

static void th_tflm_stop(void) __attribute__((noreturn));

static void th_tflm_stop(void) {
    th_put_line("m-ready");
    for (;;) {
        __asm__ volatile("wfi");
    }
}

void abort(void) {
    th_put_eol(); /* in case the abort cut a line short */
    th_put_line("m-th-fault-[abort]");
    th_tflm_stop();
}

void __assert_func(const char *file, int line, const char *func, const char *expr) {
    (void)func;
    th_put_eol();
    th_put("m-th-fault-[assert ");
    th_put(file);
    th_put(":");
    th_put_i64(line);
    th_put(" ");
    th_put(expr);
    th_put_line("]");
    th_tflm_stop();
}

void *_sbrk(ptrdiff_t increment) {
    (void)increment;
    errno = ENOMEM;
    return (void *)-1;
}
