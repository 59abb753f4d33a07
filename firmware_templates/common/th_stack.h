/*
 * Stack high-water mark by painting: fill the unused stack with a pattern at
 * boot, later find the deepest word that no longer holds it. The linker
 * script defines __th_stack_bottom and __th_stack_top.
 */
#ifndef TH_STACK_H
#define TH_STACK_H

#include <stdint.h>

/* Paints from the stack bottom up to just below the caller's frame. */
void th_stack_paint(void);

/* Bytes of stack used since boot (from the top to the deepest change). */
uint32_t th_stack_high_water(void);

/* The stack's size in bytes. */
uint32_t th_stack_size(void);

#endif /* TH_STACK_H */
