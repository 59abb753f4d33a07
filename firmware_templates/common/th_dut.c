/* tinyhil firmware: the DUT protocol (see th_dut.h). */
#include "th_dut.h"

#include <stddef.h>
#include <string.h>

#include "th_board.h"
#include "th_config.h"
#include "th_cpu.h"
#include "th_fmt.h"
#include "th_model.h"
#include "th_profile.h"
#include "th_stack.h"
#include "th_time.h"

/* The build's identity (its cache key, -DTH_BUILD_ID="..."), one string in
 * .rodata so the host can read it from the ELF and match the boot banner. */
#ifndef TH_BUILD_ID
#define TH_BUILD_ID "unknown"
#endif
#define TH_BUILD_LINE "m-th-build-[" TH_BUILD_ID "]"

/* The MLPerf Tiny benchmark id (kws01, vww01, ic01, ad01) the official runner
 * looks its test up by, for the four reference models; else the model's name. */
#ifdef TH_MLPERF_ID
#define TH_MODEL_ID TH_MLPERF_ID
#else
#define TH_MODEL_ID TH_MODEL_NAME
#endif

/* Inputs as loaded by "db": kept apart from the arena, which reuses the input
 * buffers for activations, and copied into the model before every inference.
 *
 * "db load N" takes any N up to the buffer, as the reference firmware does, and
 * the bytes are the EnergyRunner file's (th_config.h says how they map onto the
 * model's input, as the reference submissions convert them): uint8 RGB minus 128
 * (ic01, vww01), float32 windows quantized with the input's scale and zero point
 * (ad01; int8 of the input's size is taken as it is), else the input's bytes.
 * tinyhil's binary transfers (th-dbb, th-batch) carry the model's input bytes. */
#ifdef TH_INPUT_WIRE_FLOAT32
#define TH_FLOAT_BYTES (4u * TH_INPUT_ELEMENTS)
#define TH_INPUT_OFFSET TH_FLOAT_BYTES
#define TH_DB_BYTES (TH_FLOAT_BYTES + TH_INPUT_BYTES)
#else
#define TH_INPUT_OFFSET 0u
#define TH_DB_BYTES TH_INPUT_BYTES
#endif
uint8_t th_db_buf[TH_DB_BYTES > 0 ? TH_DB_BYTES : 1] __attribute__((aligned(8)));
#define th_db_input (th_db_buf + TH_INPUT_OFFSET) /* the model's input bytes */
static uint32_t th_db_fill;
static uint32_t th_db_expect; /* N of the "db load N" in progress */
static uint32_t th_db_loaded = TH_INPUT_BYTES; /* bytes of the last complete load (boot: zeros) */
static int th_db_loading;
#ifdef TH_INPUT_WIRE_FLOAT32
static int th_float_input; /* the last load was float32: the AD score compares with it */
#endif

/* The ad01 build prints a score instead of the outputs (th_put_results). */
#ifdef TH_INPUT_WIRE_FLOAT32
#define TH_OUTPUTS_UNUSED __attribute__((unused))
#else
#define TH_OUTPUTS_UNUSED
#endif

static const th_output_spec th_outputs[TH_MODEL_NUM_OUTPUTS] TH_OUTPUTS_UNUSED = TH_OUTPUT_SPECS;

static void th_put_results(void);

static th_dut_status th_reply_error(const char *what, const char *detail) {
    th_put("e-[");
    th_put(what);
    th_put(detail);
    th_put_line("]");
    return TH_DUT_ERROR;
}

static void th_reply_number(const char *prefix, uint64_t value) {
    th_put(prefix);
    th_put_u64(value);
    th_put_eol();
}

static int th_starts_with(const char *s, const char *prefix) {
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

static const char *th_skip_spaces(const char *s) {
    while (*s == ' ') {
        ++s;
    }
    return s;
}

/* Parses a decimal number (no sign) that ends at a space or the end of text. */
static th_dut_status th_parse_u32(const char **text, uint32_t *out) {
    const char *s = th_skip_spaces(*text);
    uint64_t v = 0;
    if (*s < '0' || *s > '9') {
        return TH_DUT_ERROR;
    }
    while (*s >= '0' && *s <= '9') {
        v = v * 10u + (uint64_t)(*s - '0');
        if (v > 0xFFFFFFFFu) {
            return TH_DUT_ERROR;
        }
        ++s;
    }
    if (*s != '\0' && *s != ' ') {
        return TH_DUT_ERROR;
    }
    *out = (uint32_t)v;
    *text = s;
    return TH_DUT_OK;
}

static int th_hex_value(char c) {
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

static void th_load_inputs(void) {
    uint32_t pos = 0;
    for (int i = 0; i < TH_MODEL_NUM_INPUTS; ++i) {
        size_t n = tinyhil_input_bytes(i);
        memcpy(tinyhil_input(i), th_db_input + pos, n);
        pos += (uint32_t)n;
    }
}

#ifdef TH_INPUT_WIRE_FLOAT32
static float th_db_float(uint32_t i) {
    float v;
    memcpy(&v, th_db_buf + 4u * i, sizeof v);
    return v;
}

/* The reference's QuantizeFloatToInt8: round(v / scale) + zero point, rounding
 * half away from zero (exact in double: +-0.5 then truncation), clamped. */
static int8_t th_quantize(float v) {
    double q = (double)(v / TH_INPUT_SCALE);
    long k = (long)(q >= 0.0 ? q + 0.5 : q - 0.5) + TH_INPUT_ZERO_POINT;
    return (int8_t)(k < -128 ? -128 : k > 127 ? 127 : k);
}
#endif

/* A load of n bytes is complete: turn the EnergyRunner bytes into the input. */
static void th_db_complete(uint32_t n) {
    th_db_loaded = n;
#ifdef TH_INPUT_WIRE_FLOAT32
    th_float_input = n == TH_FLOAT_BYTES;
    if (th_float_input) {
        for (uint32_t i = 0; i < TH_INPUT_ELEMENTS; ++i) {
            th_db_input[i] = (uint8_t)th_quantize(th_db_float(i));
        }
    } else if (n == TH_INPUT_BYTES) {
        memmove(th_db_input, th_db_buf, n);
    }
#elif defined(TH_INPUT_WIRE_UINT8)
    if (n == TH_INPUT_BYTES) {
        for (uint32_t i = 0; i < n; ++i) {
            th_db_buf[i] ^= 0x80u; /* uint8 - 128 as int8 */
        }
    }
#endif
}

/* Whether the last load is one the model can run on. */
static int th_db_usable(void) {
#ifdef TH_INPUT_WIRE_FLOAT32
    if (th_db_loaded == TH_FLOAT_BYTES) {
        return 1;
    }
#endif
    return th_db_loaded == TH_INPUT_BYTES;
}

#ifndef TH_ENERGY_MODE
/* The time m-lap-us reports: the counter's, or under emulation (built with
 * -DTH_LAP_SCALE_Q16) that time scaled to the target's, est. cycles / clock. */
static uint64_t th_lap_us(void) {
    uint64_t us = th_time_us();
#ifdef TH_LAP_SCALE_Q16
    us = (us * (uint64_t)TH_LAP_SCALE_Q16) >> 16;
#endif
    return us;
}
#endif

/* The reference's th_timestamp(): m-lap-us, or in energy mode (EnergyRunner's
 * power monitor timestamps the falling edges) a low pulse on the board's pin. */
static void th_timestamp(void) {
#ifdef TH_ENERGY_MODE
    th_board_timestamp();
#else
    th_reply_number("m-lap-us-", th_lap_us());
#endif
}

static th_dut_status th_cmd_db_load(const char *args) {
    uint32_t n;
    if (th_parse_u32(&args, &n) != TH_DUT_OK || *th_skip_spaces(args) != '\0') {
        return th_reply_error("db load: expected a byte count, got: ", args);
    }
    if (n == 0u || n > TH_DB_BYTES) {
        th_put("e-[db load: ");
        th_put_u64(n);
        th_put(" bytes; the input buffer holds 1 to ");
        th_put_u64(TH_DB_BYTES);
        th_put_line("]");
        return TH_DUT_ERROR;
    }
    th_db_fill = 0;
    th_db_expect = n;
    th_db_loading = 1;
    th_put("m-[Expecting ");
    th_put_u64(n);
    th_put_line(" bytes]");
    return TH_DUT_OK;
}

static th_dut_status th_cmd_db_data(const char *hex) {
    size_t len = strlen(hex);
    while (len > 0 && hex[len - 1] == ' ') {
        --len;
    }
    if (!th_db_loading) {
        return th_reply_error("db: no transfer in progress (send db load N first)", "");
    }
    if (len % 2u != 0u) {
        return th_reply_error("db: odd number of hex digits", "");
    }
    for (size_t i = 0; i < len; ++i) {
        if (th_hex_value(hex[i]) < 0) {
            return th_reply_error("db: not a hex digit in: ", hex);
        }
    }
    if (th_db_fill + len / 2u > th_db_expect) {
        th_put("e-[db: ");
        th_put_u64(th_db_fill + len / 2u - th_db_expect);
        th_put_line(" bytes more than expected]");
        return TH_DUT_ERROR;
    }
    for (size_t i = 0; i < len; i += 2u) {
        th_db_buf[th_db_fill++] = (uint8_t)((th_hex_value(hex[i]) << 4) | th_hex_value(hex[i + 1u]));
    }
    if (th_db_fill == th_db_expect) {
        th_db_loading = 0;
        th_db_complete(th_db_fill);
        th_put_line("m-load-done");
    }
    return TH_DUT_OK;
}

static th_dut_status th_cmd_infer(const char *args) {
    uint32_t runs, warmups = 0;
    if (th_parse_u32(&args, &runs) != TH_DUT_OK || runs == 0u) {
        return th_reply_error("infer: expected N >= 1 [W], got: ", args);
    }
    if (*th_skip_spaces(args) != '\0' &&
        (th_parse_u32(&args, &warmups) != TH_DUT_OK || *th_skip_spaces(args) != '\0')) {
        return th_reply_error("infer: expected N >= 1 [W], got: ", args);
    }
    if (th_db_loading) {
        th_put("e-[infer: input incomplete: ");
        th_put_u64(th_db_fill);
        th_put(" of ");
        th_put_u64(th_db_expect);
        th_put_line(" bytes loaded]");
        return TH_DUT_ERROR;
    }
    if (!th_db_usable()) {
        th_put("e-[infer: ");
        th_put_u64(th_db_loaded);
        th_put(" bytes loaded; the model's input is ");
        th_put_u64(TH_INPUT_BYTES);
#ifdef TH_INPUT_WIRE_FLOAT32
        th_put(" bytes (int8) or ");
        th_put_u64(TH_FLOAT_BYTES);
        th_put(" (float32)");
#else
        th_put(" bytes");
#endif
        th_put_line("]");
        return TH_DUT_ERROR;
    }
    int st = 0;
    th_reply_number("m-warmup-start-", warmups);
    for (uint32_t i = 0; i < warmups; ++i) {
        th_load_inputs();
        st = tinyhil_invoke();
    }
    th_put_line("m-warmup-done");
    th_reply_number("m-infer-start-", runs);
    th_timestamp();
    uint64_t total = 0;
    for (uint32_t i = 0; i < runs; ++i) {
        th_load_inputs();
        TH_PROFILE_START();
        th_time_mark();
        st = tinyhil_invoke();
        total += th_time_since_mark();
    }
    th_timestamp();
    th_put_line("m-infer-done");
    th_reply_number("m-th-ticks-", total);
    th_reply_number("m-th-runs-", runs);
    th_put("m-th-status-");
    th_put_i64(st);
    th_put_eol();
    th_put_results(); /* the reference's infer ends with th_results() */
    return TH_DUT_OK;
}

TH_OUTPUTS_UNUSED static uint32_t th_dtype_size(th_dtype t) {
    switch (t) {
    case TH_DTYPE_INT16: return 2u;
    case TH_DTYPE_INT32:
    case TH_DTYPE_FLOAT32: return 4u;
    default: return 1u;
    }
}

/* IEEE-754 single to thousandths, rounded, with integer arithmetic only. */
static int64_t th_f32_milli(uint32_t bits) {
    uint32_t exponent = (bits >> 23) & 0xFFu;
    uint64_t mantissa = bits & 0x7FFFFFu;
    uint64_t mag;
    if (exponent == 0xFFu) {
        mag = (uint64_t)INT64_MAX; /* inf, nan: saturate */
    } else {
        int32_t e = exponent == 0u ? -149 : (int32_t)exponent - 150;
        if (exponent != 0u) {
            mantissa |= 0x800000u;
        }
        mantissa *= 1000u; /* < 2^34 */
        if (e >= 0) {
            mag = e > 28 ? (uint64_t)INT64_MAX : mantissa << e;
        } else if (e < -40) {
            mag = 0;
        } else {
            mag = (mantissa + ((uint64_t)1 << (-e - 1))) >> -e;
        }
    }
    return (bits >> 31) ? -(int64_t)mag : (int64_t)mag;
}

TH_OUTPUTS_UNUSED static int64_t th_element_milli(const th_output_spec *spec, const uint8_t *p) {
    int64_t q;
    uint32_t u32;
    switch (spec->dtype) {
    case TH_DTYPE_INT8: q = (int8_t)p[0]; break;
    case TH_DTYPE_INT16: q = (int16_t)(uint16_t)(p[0] | (p[1] << 8)); break;
    case TH_DTYPE_INT32:
    case TH_DTYPE_FLOAT32:
        u32 = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
        if (spec->dtype == TH_DTYPE_FLOAT32) {
            return th_f32_milli(u32);
        }
        q = (int32_t)u32;
        break;
    default: q = p[0]; break;
    }
    q -= spec->zero_point;
    /* round half up: floor(q * scale * 1000 + 0.5) */
    return (q * spec->scale_milli_q32 + ((int64_t)1 << 31)) >> 32;
}

#ifdef TH_INPUT_WIRE_FLOAT32
static int64_t th_float_milli(float v) {
    uint32_t bits;
    memcpy(&bits, &v, sizeof bits);
    return th_f32_milli(bits);
}
#endif

/* m-results-[...]: the reference's th_results(). A classifier's dequantized outputs
 * (thousandths, as the reference's %0.3f); for ad01 the one score the reference
 * reports, the mean squared error between the float input window (the dequantized
 * int8 input when int8 was loaded) and the dequantized output. */
static void th_put_results(void) {
    th_put("m-results-[");
#ifdef TH_INPUT_WIRE_FLOAT32
    const int8_t *out = (const int8_t *)tinyhil_output(0);
    float sum = 0.0f;
    for (uint32_t i = 0; i < TH_INPUT_ELEMENTS; ++i) {
        float x = th_float_input ? th_db_float(i)
                                 : (float)((int8_t)th_db_input[i] - TH_INPUT_ZERO_POINT) * TH_INPUT_SCALE;
        float y = (float)(out[i] - TH_OUTPUT_ZERO_POINT) * TH_OUTPUT_SCALE;
        float d = y - x;
        sum += d * d;
    }
    th_put_milli(th_float_milli(sum / (float)TH_INPUT_ELEMENTS));
#else
    const char *sep = "";
    for (int o = 0; o < TH_MODEL_NUM_OUTPUTS; ++o) {
        const th_output_spec *spec = &th_outputs[o];
        const uint8_t *p = (const uint8_t *)tinyhil_output(o);
        uint32_t size = th_dtype_size(spec->dtype);
        uint32_t bytes = (uint32_t)tinyhil_output_bytes(o);
        for (uint32_t k = 0; k + size <= bytes; k += size) {
            th_put(sep);
            th_put_milli(th_element_milli(spec, p + k));
            sep = ",";
        }
    }
#endif
    th_put_line("]");
}

static th_dut_status th_cmd_results(void) {
    th_put_results();
    th_put("m-th-output-");
    for (int o = 0; o < TH_MODEL_NUM_OUTPUTS; ++o) {
        const uint8_t *p = (const uint8_t *)tinyhil_output(o);
        for (size_t k = 0; k < tinyhil_output_bytes(o); ++k) {
            th_put_hex8(p[k]);
        }
    }
    th_put_eol();
    return TH_DUT_OK;
}

static th_dut_status th_cmd_calibrate(const char *args) {
    uint32_t n;
    if (th_parse_u32(&args, &n) != TH_DUT_OK || n == 0u || *th_skip_spaces(args) != '\0') {
        return th_reply_error("th-calibrate: expected N >= 1, got: ", args);
    }
    th_time_mark();
    th_cpu_spin(n);
    th_reply_number("m-th-ticks-", th_time_since_mark());
    return TH_DUT_OK;
}

/* ---- Binary transfers (th-dbb, th-batch): raw bytes after the '%', no hex. */

static uint32_t th_crc32(const uint8_t *p, uint32_t n) {
    uint32_t crc = 0xFFFFFFFFu;
    for (uint32_t i = 0; i < n; ++i) {
        crc ^= p[i];
        for (int b = 0; b < 8; ++b) {
            crc = (crc >> 1) ^ (0xEDB88320u & (0u - (crc & 1u)));
        }
    }
    return ~crc;
}

static void th_put_hex32(uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) {
        th_put_hex8((uint8_t)(v >> shift));
    }
}

/* The receive in progress: th_rx_left more bytes go to th_rx_dst. */
static uint8_t *volatile th_rx_dst;
static volatile uint32_t th_rx_left;

#ifdef TH_UART_RX_IRQ
void th_uart_rx_byte(uint8_t c) {
    if (th_rx_left != 0u) {
        uint8_t *dst = th_rx_dst;
        *dst = c;
        th_rx_dst = dst + 1;
        --th_rx_left;
    }
    if (th_rx_left == 0u) {
        th_uart_rx_irq(0); /* later bytes wait in the UART for the next receive */
    }
}
#endif

/* Arms a receive of n bytes into dst. With a receive interrupt the bytes
 * arrive in the background from here on (while an inference runs); without
 * one th_rx_wait() reads them. */
static void th_rx_start(uint8_t *dst, uint32_t n) {
    th_rx_dst = dst;
    th_rx_left = n;
#ifdef TH_UART_RX_IRQ
    if (n != 0u) {
        th_uart_rx_irq(1);
    }
#endif
}

/* Returns once the armed receive is complete. */
static void th_rx_wait(void) {
#ifdef TH_UART_RX_IRQ
    th_cpu_wait_zero(&th_rx_left); /* sleeping leaves the host's CPU to QEMU's UART */
#else
    while (th_rx_left != 0u) {
        uint8_t *dst = th_rx_dst;
        *dst = (uint8_t)th_uart_getc();
        th_rx_dst = dst + 1;
        --th_rx_left;
    }
#endif
}

static void th_put_output_hex(void) {
    for (int o = 0; o < TH_MODEL_NUM_OUTPUTS; ++o) {
        const uint8_t *p = (const uint8_t *)tinyhil_output(o);
        for (size_t k = 0; k < tinyhil_output_bytes(o); ++k) {
            th_put_hex8(p[k]);
        }
    }
}

/* th-dbb N%: exactly N raw bytes follow; they become the input. */
static th_dut_status th_cmd_dbb(const char *args) {
    uint32_t n;
    if (th_parse_u32(&args, &n) != TH_DUT_OK || *th_skip_spaces(args) != '\0') {
        return th_reply_error("th-dbb: expected a byte count, got: ", args);
    }
    if (n != TH_INPUT_BYTES) {
        for (uint32_t i = 0; i < n; ++i) { /* the N bytes are data, never commands */
            (void)th_uart_getc();
        }
        th_put("e-[th-dbb: expected ");
        th_put_u64(TH_INPUT_BYTES);
        th_put(" bytes, got ");
        th_put_u64(n);
        th_put_line(" (discarded)]");
        return TH_DUT_ERROR;
    }
    th_db_loading = 0;
    th_rx_start(th_db_input, n);
    th_rx_wait();
    th_db_fill = n;
    th_db_loaded = n;
#ifdef TH_INPUT_WIRE_FLOAT32
    th_float_input = 0;
#endif
    th_put_line("m-load-done");
    th_put("m-th-crc-");
    th_put_hex32(th_crc32(th_db_input, n));
    th_put_eol();
    return TH_DUT_OK;
}

/* th-batch K%: K inputs of TH_INPUT_BYTES raw bytes follow; each is inferred
 * once as soon as it is in, and answered m-th-out-[i,crc32,status,output hex].
 * With a receive interrupt, input i+1 arrives while input i is inferred. */
static th_dut_status th_cmd_batch(const char *args) {
    uint32_t k;
    if (th_parse_u32(&args, &k) != TH_DUT_OK || k == 0u || *th_skip_spaces(args) != '\0') {
        return th_reply_error("th-batch: expected K >= 1, got: ", args);
    }
    th_db_loading = 0;
    th_db_loaded = TH_INPUT_BYTES;
#ifdef TH_INPUT_WIRE_FLOAT32
    th_float_input = 0;
#endif
    th_rx_start(th_db_input, TH_INPUT_BYTES);
    for (uint32_t i = 0; i < k; ++i) {
        th_rx_wait();
        uint32_t crc = th_crc32(th_db_input, TH_INPUT_BYTES);
        th_load_inputs();
        if (i + 1u < k) {
            th_rx_start(th_db_input, TH_INPUT_BYTES); /* the input is free until the next wait */
        }
        TH_PROFILE_START();
        int st = tinyhil_invoke();
        th_put("m-th-out-[");
        th_put_u64(i);
        th_put(",");
        th_put_hex32(crc);
        th_put(",");
        th_put_i64(st);
        th_put(",");
        th_put_output_hex();
        th_put_line("]");
    }
    th_db_fill = TH_INPUT_BYTES;
    return TH_DUT_OK;
}

static th_dut_status th_dispatch(const char *cmd) {
    if (strcmp(cmd, "name") == 0) {
        th_put_line("m-name-dut-[tinyhil]");
        return TH_DUT_OK;
    }
    if (strcmp(cmd, "profile") == 0) {
        th_put_line("m-profile-[tinyhil]");
        th_put_line("m-model-[" TH_MODEL_ID "]");
        return TH_DUT_OK;
    }
    if (th_starts_with(cmd, "db load") && (cmd[7] == ' ' || cmd[7] == '\0')) {
        return th_cmd_db_load(cmd + 7);
    }
    if (th_starts_with(cmd, "db ")) {
        return th_cmd_db_data(th_skip_spaces(cmd + 3));
    }
    if (th_starts_with(cmd, "infer") && (cmd[5] == ' ' || cmd[5] == '\0')) {
        return th_cmd_infer(cmd + 5);
    }
    if (strcmp(cmd, "results") == 0) {
        return th_cmd_results();
    }
    if (strcmp(cmd, "timestamp") == 0) {
        th_timestamp();
        return TH_DUT_OK;
    }
    if (strcmp(cmd, "th-stack") == 0) {
        th_reply_number("m-th-stack-bytes-", th_stack_high_water());
        return TH_DUT_OK;
    }
    if (strcmp(cmd, "th-arena") == 0) {
        th_reply_number("m-th-arena-bytes-", TH_ARENA_BYTES);
#ifdef TH_ARENA_USED_BYTES
        /* An engine that measures its arena at run time (TFLM's arena_used_bytes()). */
        th_reply_number("m-th-arena-used-bytes-", TH_ARENA_USED_BYTES());
#endif
        return TH_DUT_OK;
    }
    if (th_starts_with(cmd, "th-calibrate") && (cmd[12] == ' ' || cmd[12] == '\0')) {
        return th_cmd_calibrate(cmd + 12);
    }
    if (th_starts_with(cmd, "th-dbb") && (cmd[6] == ' ' || cmd[6] == '\0')) {
        return th_cmd_dbb(cmd + 6);
    }
    if (th_starts_with(cmd, "th-batch") && (cmd[8] == ' ' || cmd[8] == '\0')) {
        return th_cmd_batch(cmd + 8);
    }
    if (strcmp(cmd, "th-profile") == 0) {
        return th_profile_report() == 0 ? TH_DUT_OK : TH_DUT_ERROR;
    }
    if (strcmp(cmd, "th-info") == 0) {
        th_put("m-th-counter-[");
        th_put(th_time_counter_name());
        th_put_line("]");
        th_reply_number("m-th-counter-hz-", th_time_counter_hz());
        th_put_line(TH_BUILD_LINE);
        return TH_DUT_OK;
    }
#ifdef TH_TEST_COMMANDS
    if (strcmp(cmd, "th-fault") == 0) {
        th_cpu_trap();
    }
#endif
    return th_reply_error("unknown command: ", cmd);
}

void th_dut_boot(void) {
#ifdef TH_ENERGY_MODE
    th_board_timestamp_init();
    th_put_line("m-timestamp-mode-energy");
    th_board_timestamp(); /* the pin idles high after one pulse, as the reference's */
#else
    th_put_line("m-timestamp-mode-performance");
#endif
    th_put_line(TH_BUILD_LINE);
    th_put_line("m-init-done");
    th_put_line("m-ready");
}

th_dut_status th_dut_command(const char *cmd) {
    th_dut_status st = th_dispatch(th_skip_spaces(cmd));
    th_put_line("m-ready");
    return st;
}

th_dut_status th_dut_serve_one(void) {
    static char cmd[TH_DUT_COMMAND_MAX + 1u];
    uint32_t len = 0;
    int too_long = 0;
    for (;;) {
        char c = th_uart_getc();
        if (c == '%') {
            break;
        }
        if (c == '\r' || c == '\n') {
            continue;
        }
        if (len < TH_DUT_COMMAND_MAX) {
            cmd[len++] = c;
        } else {
            too_long = 1;
        }
    }
    cmd[len] = '\0';
    if (too_long) {
        th_put("e-[command too long: more than ");
        th_put_u64(TH_DUT_COMMAND_MAX);
        th_put_line(" characters]");
        th_put_line("m-ready");
        return TH_DUT_ERROR;
    }
    while (len > 0u && cmd[len - 1u] == ' ') {
        cmd[--len] = '\0';
    }
    return th_dut_command(cmd);
}
