/*
 * Cortex-M startup shared by every Cortex-M board family: the vector table,
 * the reset handler (copy .data, zero .bss, enable the FPU, call main) and a
 * fault handler that reports over the UART and stops.
 *
 * Symbols come from the linker script that harness/build.py generates.
 */
#include <stdint.h>

#include "th_board.h"
#include "th_fmt.h"

#define TH_SCB_VTOR (*(volatile uint32_t *)0xE000ED08u)
#define TH_SCB_CPACR (*(volatile uint32_t *)0xE000ED88u)
/* The 16 system vectors, then external interrupts up to the UART's receive
 * interrupt when the target uses it (TH_UART_RX_IRQ, see th_board.h). */
#ifdef TH_UART_RX_IRQ
#define TH_VECTORS (16 + (TH_UART_RX_IRQ) + 1)
#else
#define TH_VECTORS 16
#endif

extern uint32_t __th_stack_top[];
extern uint32_t __th_data_load[];
extern uint32_t __th_data_start[];
extern uint32_t __th_data_end[];
extern uint32_t __th_bss_start[];
extern uint32_t __th_bss_end[];

int main(void);
void th_reset_handler(void);
void th_hardfault_handler(void);
void th_exception_handler(void);

__attribute__((section(".th_vectors"), used)) const uintptr_t th_vectors[TH_VECTORS] = {
    (uintptr_t)__th_stack_top,
    (uintptr_t)th_reset_handler,
    (uintptr_t)th_exception_handler, /* NMI */
    (uintptr_t)th_hardfault_handler,
    (uintptr_t)th_exception_handler, /* MemManage */
    (uintptr_t)th_exception_handler, /* BusFault */
    (uintptr_t)th_exception_handler, /* UsageFault */
    (uintptr_t)th_exception_handler, /* SecureFault (ARMv8-M) */
    0,
    0,
    0,
    (uintptr_t)th_exception_handler, /* SVCall */
    (uintptr_t)th_exception_handler, /* DebugMonitor */
    0,
    (uintptr_t)th_exception_handler, /* PendSV */
    (uintptr_t)th_exception_handler, /* SysTick */
#ifdef TH_UART_RX_IRQ
    /* Any other enabled interrupt is unexpected: it reports as an exception. */
#if TH_UART_RX_IRQ > 0
    [16 ... 16 + (TH_UART_RX_IRQ) - 1] = (uintptr_t)th_exception_handler,
#endif
    [16 + (TH_UART_RX_IRQ)] = (uintptr_t)th_uart_rx_handler,
#endif
};

/* Plain word loops, kept from turning into memcpy/memset calls. */
__attribute__((optimize("no-tree-loop-distribute-patterns"))) void th_reset_handler(void) {
    const uint32_t *src = __th_data_load;
    for (uint32_t *dst = __th_data_start; dst < __th_data_end; ++dst) {
        *dst = *src++;
    }
    for (uint32_t *dst = __th_bss_start; dst < __th_bss_end; ++dst) {
        *dst = 0;
    }
    TH_SCB_VTOR = (uint32_t)(uintptr_t)th_vectors;
#if defined(__ARM_FP)
    /* Full access to CP10/CP11 before any floating-point instruction runs. */
    TH_SCB_CPACR |= 0xFu << 20;
    __asm__ volatile("dsb\n\tisb" ::: "memory");
#endif
    (void)main();
    for (;;) {
        __asm__ volatile("wfi");
    }
}

/* The fault line is followed by m-ready so a host waiting for a reply sees it
 * at once; then the CPU sleeps for good. */
static void th_fault_stop(void) {
    th_put_line("m-ready");
    for (;;) {
        __asm__ volatile("wfi");
    }
}

void th_hardfault_handler(void) {
    th_put_eol(); /* in case the fault cut a line short */
    th_put_line("m-th-fault-[hardfault]");
    th_fault_stop();
}

void th_exception_handler(void) {
    uint32_t ipsr;
    __asm__ volatile("mrs %0, ipsr" : "=r"(ipsr));
    th_put_eol();
    th_put("m-th-fault-[exception-");
    th_put_u64(ipsr & 0x1FFu);
    th_put_line("]");
    th_fault_stop();
}
