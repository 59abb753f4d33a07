/*
 * The engine ABI: what every inference engine's generated or glue code provides
 * to the common firmware (th_dut.c, th_main.c). One header for every engine; the
 * model's constants come from the generated th_model_config.h
 * (harness/firmware.py: model_config_header).
 *
 *   TH_MODEL_NAME, TH_MODEL_NUM_INPUTS, TH_MODEL_NUM_OUTPUTS, TH_MODEL_NUM_OPS,
 *   TH_ARENA_BYTES            always
 *   TH_ARENA_USED_BYTES()     when the engine measures its arena at run time (TFLM)
 */
#ifndef TH_MODEL_H
#define TH_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "th_model_config.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Runs one inference; returns 0 on success, else an engine-specific status (the
 * engine's explain() names it). Inputs must be written before every call: the
 * arena may reuse input buffers for activations. */
int tinyhil_invoke(void);
void *tinyhil_input(int index);
size_t tinyhil_input_bytes(int index);
void *tinyhil_output(int index);
size_t tinyhil_output_bytes(int index);
/* The arena bytes the engine measured (TFLM's arena_used_bytes()); engines that
 * do not measure need not define it (TH_ARENA_USED_BYTES stays undefined). */
size_t tinyhil_arena_used_bytes(void);

#ifdef __cplusplus
}
#endif

#endif /* TH_MODEL_H */
