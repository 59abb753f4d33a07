/*
 * The device-under-test protocol: the MLPerf Tiny / EEMBC runner commands
 * plus tinyhil's th- extensions. A command is text ending in '%' ('\r' and
 * '\n' are ignored); every reply line ends in "\r\n"; every command finishes
 * with "m-ready".
 *
 *   name%              m-name-dut-[tinyhil]
 *   profile%           m-profile-[tinyhil], m-model-[<model>]
 *   db load N%         m-[Expecting N bytes]        (N = total input bytes)
 *   db <hex>%          appends to the input buffer; m-load-done when full
 *   infer N W%         W warm-up and N timed inferences, m-lap-us-*, m-th-ticks-*
 *   results%           m-results-[v0,...] (dequantized, 3 decimals), m-th-output-<hex>
 *   timestamp%         m-lap-us-<us>
 *   th-stack%          m-th-stack-bytes-<stack high-water mark>
 *   th-arena%          m-th-arena-bytes-<arena size>
 *   th-calibrate N%    m-th-ticks-<ticks of a 2N-instruction loop>
 *   th-dbb N%<N bytes> binary load: exactly N raw bytes follow the '%' (any
 *                      values, '%' and '\r' '\n' included); m-load-done,
 *                      m-th-crc-<CRC-32 of the bytes>. N must be the input size
 *                      (else the N bytes are discarded and e-[...] replied)
 *   th-batch K%<K*N bytes>  K inputs of N raw bytes each, each inferred once
 *                      as it arrives: m-th-out-[i,crc32,status,output hex] per
 *                      input (accuracy runs)
 *   th-profile%        m-th-layer-[op,ticks] per layer of the last inference,
 *                      m-th-profile-pairs-M, m-th-profile-pair-ticks-<t>
 *                      (only in builds with -DTH_PROFILE; see th_profile.h)
 *   th-info%           m-th-counter-[timer|cycles], m-th-counter-hz-<ticks per second>
 *   th-fault%          (only with -DTH_TEST_COMMANDS) executes an undefined
 *                      instruction (th_cpu_trap), to test the fault report
 * Errors are one "e-[...]" line (then m-ready). A CPU fault prints
 * m-th-fault-[...] and m-ready, then the firmware stops.
 *
 * "infer" before any "db load" runs on an all-zero input; during a load
 * (after "db load", before m-load-done) it is an error.
 */
#ifndef TH_DUT_H
#define TH_DUT_H

#include <stdint.h>

typedef enum { TH_DUT_OK = 0, TH_DUT_ERROR = 1 } th_dut_status;

/* Element types of model outputs, for m-results. */
typedef enum {
    TH_DTYPE_RAW = 0, /* printed byte by byte as integers */
    TH_DTYPE_INT8,
    TH_DTYPE_UINT8,
    TH_DTYPE_INT16,
    TH_DTYPE_INT32,
    TH_DTYPE_FLOAT32
} th_dtype;

/* One model output: value = (q - zero_point) * scale, with
 * scale_milli_q32 = round(scale * 1000 * 2^32) (1000 * 2^32 when unquantized). */
typedef struct {
    th_dtype dtype;
    int32_t zero_point;
    int64_t scale_milli_q32;
} th_output_spec;

/* Longest command accepted: "db " plus 1024 hex characters, with room to spare. */
#define TH_DUT_COMMAND_MAX 1100u

/* Prints the boot lines, ending with m-ready. */
void th_dut_boot(void);

/* Reads one command from the UART and runs it. */
th_dut_status th_dut_serve_one(void);

/* Runs one command (its text without the '%'). */
th_dut_status th_dut_command(const char *cmd);

#endif /* TH_DUT_H */
