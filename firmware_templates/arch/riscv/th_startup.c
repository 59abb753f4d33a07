/*
 * RV32 machine-mode startup shared by every RISC-V board family: the entry
 * point (stack pointer, then C), the C reset code (copy .data, zero .bss,
 * install the trap vector, call main) and a trap handler that reports over
 * the UART and stops.
 *
 * Symbols come from the linker script that harness/build.py generates; the
 * entry sits in .th_vectors, which the script places first in FLASH.
 */
#include <stdint.h>

#include "th_board.h"
#include "th_fmt.h"

extern uint32_t __th_stack_top[];
extern uint32_t __th_data_load[];
extern uint32_t __th_data_start[];
extern uint32_t __th_data_end[];
extern uint32_t __th_bss_start[];
extern uint32_t __th_bss_end[];

int main(void);
void th_reset_handler(void);
void th_reset_c(void);
void th_trap_handler(void);

/* No C before the stack pointer is set: a naked function is only its asm. */
__attribute__((naked, section(".th_vectors"), used)) void th_reset_handler(void) {
    __asm__ volatile(".option push\n\t"
                     ".option norelax\n\t"
                     "la sp, __th_stack_top\n\t"
                     ".option pop\n\t"
                     "j th_reset_c");
}

/* Plain word loops, kept from turning into memcpy/memset calls. */
__attribute__((optimize("no-tree-loop-distribute-patterns"), used)) void th_reset_c(void) {
    const uint32_t *src = __th_data_load;
    for (uint32_t *dst = __th_data_start; dst < __th_data_end; ++dst) {
        *dst = *src++;
    }
    for (uint32_t *dst = __th_bss_start; dst < __th_bss_end; ++dst) {
        *dst = 0;
    }
    /* Direct mode: every trap enters th_trap_handler (4-byte aligned). */
    __asm__ volatile("csrw mtvec, %0" ::"r"((uintptr_t)th_trap_handler));
    (void)main();
    for (;;) {
        __asm__ volatile("wfi");
    }
}

/* The fault line is followed by m-ready so a host waiting for a reply sees
 * it at once; then the hart sleeps for good. Interrupts are never enabled,
 * so every trap is an exception. */
__attribute__((aligned(4))) void th_trap_handler(void) {
    uint32_t mcause;
    __asm__ volatile("csrr %0, mcause" : "=r"(mcause));
    th_put_eol(); /* in case the fault cut a line short */
    th_put("m-th-fault-[exception-");
    th_put_u64(mcause & 0x7FFFFFFFu);
    th_put_line("]");
    th_put_line("m-ready");
    for (;;) {
        __asm__ volatile("wfi");
    }
}
