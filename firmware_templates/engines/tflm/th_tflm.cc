/*
 * tinyhil firmware: TensorFlow Lite Micro behind th_model.h's API, so the
 * common DUT protocol code and board support run it unchanged.
 *
 * The interpreter is set up on first use (the first tinyhil_* call, which the
 * DUT code makes inside a command, so TFLM's log lines reach the host within
 * that command's reply). Nothing is constructed before main(): the resolver
 * and interpreter live in static storage and are placement-new'ed, so the
 * firmware needs no C++ static constructors or atexit.
 *
 * A measuring build (TH_TFLM_MEASURE, with a roomy arena) also finds the
 * smallest arena, in 16-byte steps, with which AllocateTensors succeeds, and
 * reports it as m-th-tflm-arena-min-bytes-<n>: arena_used_bytes() alone is not
 * enough, it leaves out AllocateTensors' temporary allocations (the memory
 * planner's scratch), which may reach past the final layout.
 *
 * Generated per model: th_model_config.h (TH_ARENA_BYTES and the model's constants for
 * th_model.h, the engine ABI in firmware_templates/common),
 * th_tflm_ops.h (a MicroMutableOpResolver with the model's op types) and
 * th_tflm_model.cc (the .tflite as th_w_model, 16-byte aligned, in flash).
 */
#include <stddef.h>
#include <stdint.h>

#include <new>

#include "tensorflow/lite/micro/cortex_m_generic/debug_log_callback.h"
#include "tensorflow/lite/micro/micro_interpreter.h"
#include "tensorflow/lite/micro/micro_mutable_op_resolver.h"
#include "tensorflow/lite/schema/schema_generated.h"
#include "th_model.h"
#include "th_tflm_ops.h"

extern "C" {
#include "th_fmt.h"

extern const uint8_t th_w_model[];
/* The tensor arena, sized by tinyhil from TFLM's own arena_used_bytes(). */
alignas(16) uint8_t th_arena[TH_ARENA_BYTES];
}

namespace {

/* Why the interpreter is not ready; reported as tinyhil_invoke()'s status. */
enum th_tflm_state {
    TH_TFLM_READY = 0,
    TH_TFLM_SCHEMA = 1,   /* the model's schema version is not TFLM's */
    TH_TFLM_OPS = 2,      /* an op type could not be registered */
    TH_TFLM_ALLOCATE = 3, /* AllocateTensors failed (e.g. the arena is too small) */
    TH_TFLM_INVOKE = 4,   /* Invoke failed */
    TH_TFLM_UNSET = -1,
};

alignas(th_tflm_resolver) uint8_t th_resolver_mem[sizeof(th_tflm_resolver)];
alignas(tflite::MicroInterpreter) uint8_t th_interpreter_mem[sizeof(tflite::MicroInterpreter)];
tflite::MicroInterpreter *th_interpreter = nullptr;
int th_state = TH_TFLM_UNSET;
/* Where tinyhil_input/output point when the interpreter is not ready. */
alignas(16) uint8_t th_no_tensor[16];

/* TFLM's log as DUT lines: m-th-tflm-log-[text], one per line of text. */
char th_log_line[120];
size_t th_log_len = 0;
int th_log_quiet = 0; /* while measuring, failed attempts are expected */

void th_log_flush(void) {
    if (th_log_len == 0u) {
        return;
    }
    th_log_line[th_log_len] = '\0';
    th_put("m-th-tflm-log-[");
    th_put(th_log_line);
    th_put_line("]");
    th_log_len = 0;
}

void th_log(const char *s) {
    if (th_log_quiet) {
        return;
    }
    for (; *s != '\0'; ++s) {
        if (*s == '\n') {
            th_log_flush();
        } else if (*s != '\r') {
            th_log_line[th_log_len++] = *s;
            if (th_log_len == sizeof th_log_line - 1u) {
                th_log_flush();
            }
        }
    }
}

/* A fresh interpreter on the first `bytes` of the arena. The previous one is
 * dropped, not destroyed: everything it holds lives in the arena. */
bool th_allocate(const tflite::Model *model, th_tflm_resolver &resolver, size_t bytes) {
    th_interpreter = new (th_interpreter_mem) tflite::MicroInterpreter(model, resolver, th_arena, bytes);
    return th_interpreter->AllocateTensors() == kTfLiteOk;
}

#ifdef TH_TFLM_MEASURE
/* Bisects, in 16-byte steps, between arena_used_bytes() (never enough to go
 * below) and the whole arena (known to work); ends allocated at the minimum. */
void th_measure(const tflite::Model *model, th_tflm_resolver &resolver) {
    size_t hi = TH_ARENA_BYTES / 16u;
    size_t lo = (th_interpreter->arena_used_bytes() + 15u) / 16u - 1u;
    th_log_quiet = 1;
    while (hi - lo > 1u) {
        size_t mid = lo + (hi - lo) / 2u;
        if (th_allocate(model, resolver, mid * 16u)) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    th_log_quiet = 0;
    (void)th_allocate(model, resolver, hi * 16u);
    th_put("m-th-tflm-arena-min-bytes-");
    th_put_u64(hi * 16u);
    th_put_eol();
}
#endif

int th_ready(void) {
    if (th_state != TH_TFLM_UNSET) {
        return th_state;
    }
    RegisterDebugLogCallback(th_log);
    const tflite::Model *model = tflite::GetModel(th_w_model);
    if (model->version() != TFLITE_SCHEMA_VERSION) {
        th_state = TH_TFLM_SCHEMA;
        return th_state;
    }
    th_tflm_resolver *resolver = new (th_resolver_mem) th_tflm_resolver();
    if (th_tflm_add_ops(*resolver) != kTfLiteOk) {
        th_state = TH_TFLM_OPS;
        return th_state;
    }
    th_state = th_allocate(model, *resolver, TH_ARENA_BYTES) ? TH_TFLM_READY : TH_TFLM_ALLOCATE;
#ifdef TH_TFLM_MEASURE
    if (th_state == TH_TFLM_READY) {
        th_measure(model, *resolver);
    }
#endif
    th_log_flush();
    return th_state;
}

}  // namespace

extern "C" {

int tinyhil_invoke(void) {
    if (th_ready() != TH_TFLM_READY) {
        return th_state;
    }
    int st = th_interpreter->Invoke() == kTfLiteOk ? TH_TFLM_READY : TH_TFLM_INVOKE;
    th_log_flush();
    return st;
}

void *tinyhil_input(int index) {
    if (th_ready() != TH_TFLM_READY || index < 0 || (size_t)index >= th_interpreter->inputs_size()) {
        return th_no_tensor;
    }
    return th_interpreter->input(index)->data.raw;
}

size_t tinyhil_input_bytes(int index) {
    if (th_ready() != TH_TFLM_READY || index < 0 || (size_t)index >= th_interpreter->inputs_size()) {
        return 0;
    }
    return th_interpreter->input(index)->bytes;
}

void *tinyhil_output(int index) {
    if (th_ready() != TH_TFLM_READY || index < 0 || (size_t)index >= th_interpreter->outputs_size()) {
        return th_no_tensor;
    }
    return th_interpreter->output(index)->data.raw;
}

size_t tinyhil_output_bytes(int index) {
    if (th_ready() != TH_TFLM_READY || index < 0 || (size_t)index >= th_interpreter->outputs_size()) {
        return 0;
    }
    return th_interpreter->output(index)->bytes;
}

size_t tinyhil_arena_used_bytes(void) {
    return th_ready() == TH_TFLM_READY ? th_interpreter->arena_used_bytes() : 0u;
}

}  // extern "C"
