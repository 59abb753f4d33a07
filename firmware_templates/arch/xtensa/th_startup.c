/*
 * Xtensa startup for Espressif's chips (ESP32 LX6, ESP32-S3 LX7), bare metal
 * after the ROM loader, the way ESP-IDF's own second-stage bootloader starts:
 * the ROM loads the esptool image's segments (code into IRAM, constants and
 * data into DRAM: Xtensa's IRAM takes only 32-bit loads, so the linker script
 * keeps .rodata out of it) and calls the entry as a C function. The ROM's
 * exception vectors stay in place (VECBASE as the ROM left it), so its window
 * overflow/underflow handlers serve the windowed ABI, and an exception ends in
 * the ROM's own report on the UART rather than an m-th-fault line.
 *
 * The entry zeroes .bss (the ROM loads only the segments with contents), moves
 * the stack pointer to tinyhil's own stack (the linker script's, so its
 * high-water mark is measured like everywhere else) and calls main there.
 *
 * Written from the ESP32/ESP32-S3 Technical Reference Manuals and ESP-IDF's
 * bootloader; compile-checked here with Debian's xtensa-lx106-elf-gcc (the
 * call0 ABI branch), never run on a chip here: see docs/boards.md.
 */
#include <stdint.h>

#include "th_board.h"

extern uint32_t __th_stack_top[];
extern uint32_t __th_bss_start[];
extern uint32_t __th_bss_end[];

int main(void);
void th_reset_handler(void);
void th_start_main(void) __attribute__((noreturn, used));

/* The ABI's save areas sit just below a frame's stack pointer: leave room. */
#define TH_STACK_HEADROOM 32u

__attribute__((noreturn, used)) void th_start_main(void) {
    (void)main();
    for (;;) {
        __asm__ volatile("waiti 0");
    }
}

/* Plain word loop, kept from turning into a memset call. */
__attribute__((optimize("no-tree-loop-distribute-patterns"), noreturn, used)) void th_reset_handler(void) {
    for (uint32_t *dst = __th_bss_start; dst < __th_bss_end; ++dst) {
        *dst = 0;
    }
    uintptr_t sp = (uintptr_t)__th_stack_top - TH_STACK_HEADROOM;
#if defined(__XTENSA_WINDOWED_ABI__)
    /* call4 rotates the window: th_start_main's ENTRY derives its frame from
     * this a1. The ROM's frame is never returned to. */
    __asm__ volatile("mov a1, %0\n\tcall4 th_start_main" ::"a"(sp) : "memory");
#else
    __asm__ volatile("mov a1, %0\n\tcall0 th_start_main" ::"a"(sp) : "memory");
#endif
    for (;;) {
    }
}
