/* tinyhil firmware: per-layer profile (see th_profile.h). */
#include "th_profile.h"

#include <stdint.h>

#include "th_fmt.h"

#ifdef TH_PROFILE
#include "th_model.h"
#include "th_time.h"

/* Empty BEGIN/END pairs timed to measure the hooks' own cost. */
#define TH_PROFILE_PAIRS 1000u

static int th_prof_op[TH_MODEL_NUM_OPS];
static uint32_t th_prof_stamp[TH_MODEL_NUM_OPS];
static uint32_t th_prof_end;
static uint32_t th_prof_n;

/* noinline: the calibration below must pay the same call as the model does. */
__attribute__((noinline)) void th_profile_begin(int op) {
    uint32_t now = th_time_since_mark();
    if (th_prof_n < TH_MODEL_NUM_OPS) {
        th_prof_op[th_prof_n] = op;
        th_prof_stamp[th_prof_n] = now;
        ++th_prof_n;
    }
}

__attribute__((noinline)) void th_profile_end(int op) {
    (void)op;
    th_prof_end = th_time_since_mark();
}

void th_profile_start(void) {
    th_prof_n = 0;
}

/* Ticks of TH_PROFILE_PAIRS empty pairs minus the same loop without them.
 * The stamps of the last inference are kept. */
static uint32_t th_profile_pair_ticks(void) {
    uint32_t n = th_prof_n, end = th_prof_end, stamp0 = th_prof_stamp[0];
    int op0 = th_prof_op[0];
    th_time_mark();
    for (uint32_t i = 0; i < TH_PROFILE_PAIRS; ++i) {
        th_prof_n = 0;
        th_profile_begin(0);
        th_profile_end(0);
    }
    uint32_t pairs = th_time_since_mark();
    th_time_mark();
    for (uint32_t i = 0; i < TH_PROFILE_PAIRS; ++i) {
        th_prof_n = 0;
        __asm__ volatile("" ::: "memory"); /* keep the loop and its store */
    }
    uint32_t loop = th_time_since_mark();
    th_prof_n = n;
    th_prof_end = end;
    th_prof_stamp[0] = stamp0;
    th_prof_op[0] = op0;
    return pairs > loop ? pairs - loop : 0u;
}

int th_profile_report(void) {
    uint32_t n = th_prof_n;
    for (uint32_t k = 0; k < n; ++k) {
        uint32_t until = k + 1u < n ? th_prof_stamp[k + 1u] : th_prof_end;
        th_put("m-th-layer-[");
        th_put_u64((uint64_t)th_prof_op[k]);
        th_put(",");
        th_put_u64(until - th_prof_stamp[k]);
        th_put_line("]");
    }
    th_put("m-th-profile-pairs-");
    th_put_u64(TH_PROFILE_PAIRS);
    th_put_eol();
    th_put("m-th-profile-pair-ticks-");
    th_put_u64(th_profile_pair_ticks());
    th_put_eol();
    return 0;
}

#else

int th_profile_report(void) {
    th_put_line("e-[th-profile: this firmware was built without TH_PROFILE (tinyhil bench --profile builds one)]");
    return 1;
}

#endif
