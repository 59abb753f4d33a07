/*
 * The Xtensa core options of Debian's xtensa-lx106-elf toolchain (the ESP8266's
 * LX106 configuration), as gcc's libgcc/config/xtensa/lib1funcs.S and
 * ieee754-{sf,df}.S read them. tinyhil assembles those files from Debian's
 * gcc-<major>-source package into the helpers Debian's lx106 libgcc.a lacks
 * (harness/lx106.py). The values are the instructions the lx106 assembler
 * accepts, all of which the ESP32's LX6 and the ESP32-S3's LX7 also have:
 * 16- and 32-bit multiply (no high word, no divide), NSA, ABS, ADDX, the
 * density option, L32R literals, little endian, call0 ABI, no FPU.
 */
#ifndef TH_LX106_XTENSA_CONFIG_H
#define TH_LX106_XTENSA_CONFIG_H

#define XCHAL_HAVE_BE 0
#define XCHAL_HAVE_DENSITY 1
#define XCHAL_HAVE_CONST16 0
#define XCHAL_HAVE_ABS 1
#define XCHAL_HAVE_ADDX 1
#define XCHAL_HAVE_L32R 1
#define XCHAL_HAVE_MAC16 0
#define XCHAL_HAVE_MUL16 1
#define XCHAL_HAVE_MUL32 1
#define XCHAL_HAVE_MUL32_HIGH 0
#define XCHAL_HAVE_DIV32 0
#define XCHAL_HAVE_NSA 1
#define XCHAL_HAVE_MINMAX 0
#define XCHAL_HAVE_SEXT 0
#define XCHAL_HAVE_LOOPS 0
#define XCHAL_HAVE_THREADPTR 0
#define XCHAL_HAVE_RELEASE_SYNC 0
#define XCHAL_HAVE_S32C1I 0
#define XCHAL_HAVE_BOOLEANS 0
#define XCHAL_HAVE_FP 0
#define XCHAL_HAVE_FP_DIV 0
#define XCHAL_HAVE_FP_RECIP 0
#define XCHAL_HAVE_FP_SQRT 0
#define XCHAL_HAVE_FP_RSQRT 0
#define XCHAL_HAVE_DFP 0
#define XCHAL_HAVE_DFP_DIV 0
#define XCHAL_HAVE_DFP_RECIP 0
#define XCHAL_HAVE_DFP_SQRT 0
#define XCHAL_HAVE_DFP_RSQRT 0
#define XCHAL_HAVE_DFP_accel 0
#define XCHAL_HAVE_WINDOWED 0
#define XCHAL_NUM_AREGS 16
#define XCHAL_HAVE_DEBUG 1
#define XCHAL_NUM_IBREAK 1
#define XCHAL_NUM_DBREAK 1
#define XCHAL_DEBUGLEVEL 2
#define XCHAL_MAX_INSTRUCTION_SIZE 3
#define XCHAL_INST_FETCH_WIDTH 4
#define XSHAL_ABI 2 /* call0 */

#endif /* TH_LX106_XTENSA_CONFIG_H */
