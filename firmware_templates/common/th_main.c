/*
 * tinyhil firmware entry: paint the stack, bring up the board and the clock,
 * announce readiness, then serve DUT protocol commands forever.
 */
#include "th_board.h"
#include "th_dut.h"
#include "th_stack.h"
#include "th_time.h"

int main(void) {
    th_stack_paint();
    th_board_init();
    th_time_init();
    th_dut_boot();
    for (;;) {
        (void)th_dut_serve_one();
    }
}
