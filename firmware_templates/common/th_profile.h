/*
 * Per-layer profile: the builtin engine wraps every kernel call in
 * TH_LAYER_BEGIN(op) / TH_LAYER_END(op). A profiling build (harness/build.py
 * passes -DTH_PROFILE -include th_profile.h) turns them into time stamps on
 * the same counter the "infer" command reads; other builds leave them empty.
 *
 * Layer k runs from its BEGIN stamp to the next layer's BEGIN stamp (the last
 * one to its END stamp), so the layers tile the inference: their sum is the
 * span from the first BEGIN to the last END, whatever the counter's tick
 * size, and each layer's count includes one BEGIN/END pair's own cost (which
 * "th-profile" measures and reports).
 *
 *   th-profile%   m-th-layer-[<op index>,<ticks>] per layer of the last
 *                 inference, in execution order; then
 *                 m-th-profile-pairs-<M>, m-th-profile-pair-ticks-<ticks of
 *                 M empty BEGIN/END pairs, loop overhead removed>
 */
#ifndef TH_PROFILE_H
#define TH_PROFILE_H

#ifdef TH_PROFILE
void th_profile_begin(int op);
void th_profile_end(int op);
/* Forgets the stamps: called before every inference. */
void th_profile_start(void);

#define TH_LAYER_BEGIN(op) th_profile_begin(op)
#define TH_LAYER_END(op) th_profile_end(op)
#define TH_PROFILE_START() th_profile_start()
#else
#define TH_PROFILE_START() ((void)0)
#endif

/* Prints the th-profile reply (an e-[...] line in a build without
 * TH_PROFILE); returns 0 on success. */
int th_profile_report(void);

#endif /* TH_PROFILE_H */
