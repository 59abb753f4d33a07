/* tinyhil firmware: Xtensa CPU helpers (see th_cpu.h). */
#include "th_cpu.h"

void th_cpu_spin(uint32_t iterations) {
    /* addi + bnez: two instructions per iteration, whatever the compiler does. */
    __asm__ volatile("1:\n\taddi %0, %0, -1\n\tbnez %0, 1b" : "+a"(iterations));
}

uint32_t th_cpu_cycles(void) {
    uint32_t c;
    __asm__ volatile("rsr.ccount %0" : "=a"(c));
    return c;
}

int th_cpu_cycles_init(void) {
    uint32_t before = th_cpu_cycles();
    th_cpu_spin(16u);
    return th_cpu_cycles() == before ? -1 : 0;
}

void th_cpu_trap(void) {
    __asm__ volatile("ill");
    for (;;) {
    }
}

/*
 * Phase alignment of CCOUNT for emulators that derive it from virtual time.
 *
 * Under QEMU -icount shift=0 an instruction is 1 ns and CCOUNT counts at the
 * CPU clock, 240 MHz: CCOUNT = floor(6 * I / 25) for the I-th instruction, one
 * tick every 25/6 instructions. A measurement that starts a fixed number of
 * instructions after a host-paced wait (the UART) starts at any of 25 phases
 * of that pattern, and the ticks of the same instructions then differ by one
 * from run to run. th_cpu_cycles_align() reads CCOUNT 25 times, every second
 * instruction (S, S+2, ..., S+48); the sum of the increments over the first
 * read, g, is 132..156 and different for each of the 25 phases r of S. A table
 * turns g into a delay of (24 - r) mod 25 single-instruction NOPs, entered by
 * a computed call into a sled, so the instruction after it always sits at the
 * same phase, and every count after it is a function of the instructions alone.
 * The work is the same whatever the phase, so the phase it reaches is fixed.
 * On silicon CCOUNT counts every cycle: g is 600 or more, out of the table, and
 * nothing is delayed (the count is exact there anyway).
 */
void th_nop_sled(void);
void th_nop_sled_end(void);
__asm__(
    "    .section .text.th_nop_sled,\"ax\",@progbits\n"
    "    .align 4\n"
    "    .global th_nop_sled\n"
    "    .global th_nop_sled_end\n"
    "    .begin no-transform\n"
    "th_nop_sled:\n"
    "    .rept 24\n"
    "    nop.n\n"
    "    .endr\n"
    "th_nop_sled_end:\n"
    "    ret\n"
    "    .end no-transform\n"
    "    .text\n");

#define TH_ALIGN_G_MIN 132u
/* (24 - r) mod 25 at index g(r) - 132, g(r) = sum over i < 25 of floor(6 (r + 2i) / 25) - 25 floor(6 r / 25). */
static const uint8_t th_align_delay[25] = {
    24u, 3u, 7u, 11u, 15u, 19u, 23u, 2u, 6u, 10u, 14u, 18u, 22u, 1u, 5u, 9u, 13u, 17u, 21u, 0u, 4u, 8u, 12u, 16u, 20u,
};

void th_cpu_cycles_align(void) {
    uint32_t first;
    uint32_t sum;
    uint32_t t;
    __asm__ volatile(
        ".begin no-transform\n\t"
        "rsr.ccount %[first]\n\t"
        "mov %[sum], %[first]\n\t"
        ".rept 24\n\t"
        "rsr.ccount %[t]\n\t"
        "add %[sum], %[sum], %[t]\n\t"
        ".endr\n\t"
        ".end no-transform"
        : [first] "=&a"(first), [sum] "=&a"(sum), [t] "=&a"(t));
    uint32_t index = sum - first * 25u - TH_ALIGN_G_MIN;
    if (index < 25u) {
        void (*delay)(void) = (void (*)(void))((uintptr_t)th_nop_sled_end - 2u * th_align_delay[index]);
        delay();
    }
}
