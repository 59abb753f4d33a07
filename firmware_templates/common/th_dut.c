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

/* Inputs as loaded by "db": kept apart from the arena, which reuses the input
 * buffers for activations, and copied into the model before every inference. */
uint8_t th_db_buf[TH_INPUT_BYTES > 0 ? TH_INPUT_BYTES : 1] __attribute__((aligned(8)));
static uint32_t th_db_fill;
static int th_db_loading;

static const th_output_spec th_outputs[TH_MODEL_NUM_OUTPUTS] = TH_OUTPUT_SPECS;

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
        memcpy(tinyhil_input(i), th_db_buf + pos, n);
        pos += (uint32_t)n;
    }
}

static th_dut_status th_cmd_db_load(const char *args) {
    uint32_t n;
    if (th_parse_u32(&args, &n) != TH_DUT_OK || *th_skip_spaces(args) != '\0') {
        return th_reply_error("db load: expected a byte count, got: ", args);
    }
    if (n != TH_INPUT_BYTES) {
        th_put("e-[db load: expected ");
        th_put_u64(TH_INPUT_BYTES);
        th_put(" bytes, got ");
        th_put_u64(n);
        th_put_line("]");
        return TH_DUT_ERROR;
    }
    th_db_fill = 0;
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
    if (th_db_fill + len / 2u > TH_INPUT_BYTES) {
        th_put("e-[db: ");
        th_put_u64(th_db_fill + len / 2u - TH_INPUT_BYTES);
        th_put_line(" bytes more than expected]");
        return TH_DUT_ERROR;
    }
    for (size_t i = 0; i < len; i += 2u) {
        th_db_buf[th_db_fill++] = (uint8_t)((th_hex_value(hex[i]) << 4) | th_hex_value(hex[i + 1u]));
    }
    if (th_db_fill == TH_INPUT_BYTES) {
        th_db_loading = 0;
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
        th_put_u64(TH_INPUT_BYTES);
        th_put_line(" bytes loaded]");
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
    th_reply_number("m-lap-us-", th_time_us());
    uint64_t total = 0;
    for (uint32_t i = 0; i < runs; ++i) {
        th_load_inputs();
        TH_PROFILE_START();
        th_time_mark();
        st = tinyhil_invoke();
        total += th_time_since_mark();
    }
    th_reply_number("m-lap-us-", th_time_us());
    th_put_line("m-infer-done");
    th_reply_number("m-th-ticks-", total);
    th_reply_number("m-th-runs-", runs);
    th_put("m-th-status-");
    th_put_i64(st);
    th_put_eol();
    return TH_DUT_OK;
}

static uint32_t th_dtype_size(th_dtype t) {
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

static int64_t th_element_milli(const th_output_spec *spec, const uint8_t *p) {
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

static th_dut_status th_cmd_results(void) {
    const char *sep = "";
    th_put("m-results-[");
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
    th_put_line("]");
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
    th_rx_start(th_db_buf, n);
    th_rx_wait();
    th_db_fill = n;
    th_put_line("m-load-done");
    th_put("m-th-crc-");
    th_put_hex32(th_crc32(th_db_buf, n));
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
    th_rx_start(th_db_buf, TH_INPUT_BYTES);
    for (uint32_t i = 0; i < k; ++i) {
        th_rx_wait();
        uint32_t crc = th_crc32(th_db_buf, TH_INPUT_BYTES);
        th_load_inputs();
        if (i + 1u < k) {
            th_rx_start(th_db_buf, TH_INPUT_BYTES); /* th_db_buf is free until the next wait */
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
        th_put_line("m-model-[" TH_MODEL_NAME "]");
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
        th_reply_number("m-lap-us-", th_time_us());
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
    th_put_line("m-timestamp-mode-performance");
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
