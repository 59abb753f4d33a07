/* tinyhil builtin engine: FULLY_CONNECTED, int8 (TFLM reference arithmetic). */
#ifndef TH_FULLY_CONNECTED_H
#define TH_FULLY_CONNECTED_H

#include "th_nn_common.h"

typedef struct {
    int32_t batches;       /* input elements / accum_depth */
    int32_t accum_depth;   /* filter shape[1] */
    int32_t out_depth;     /* filter shape[0] */
    int32_t input_offset;  /* -input zero point */
    int32_t filter_offset; /* -filter zero point (0 for symmetric weights) */
    int32_t output_offset; /* output zero point */
    int32_t act_min;
    int32_t act_max;
    const int32_t *mult;   /* one per output channel (per-tensor: repeated) */
    const int32_t *shift;
    int32_t requant_mode;  /* th_fully_connected_s8_simd only: TH_RQ_* (th_requant.h) */
} th_fc_params;

/* bias may be NULL. */
th_status th_fully_connected_s8(const th_fc_params *p, const int8_t *input, const int8_t *filter,
                                const int32_t *bias, int8_t *output);

/* filter_offset must be 0. filter is re-laid out at build time (fully_connected.py
 * fc_weights): rows zero-padded to dp = accum_depth rounded up to 8; blocks of
 * four rows (then a pair, then a single row) interleaved by groups of 4 weights;
 * word-aligned. The input is widened group by group inside the block loop: no
 * scratch (th_scratch) is needed; input may be at any address. */
th_status th_fully_connected_s8_simd(const th_fc_params *p, const int8_t *input,
                                     const int8_t *filter, const int32_t *bias, int8_t *output);

/* LUT-compressed weights (lutw.py): rows of indices into per-row value tables. */
typedef struct {
    /* Each row's depth padded to a multiple of 8 and cut into groups of 8 indices,
     * each packed into `bits` bytes: index j of a group in bits [j*bits, (j+1)*bits)
     * of the group's little-endian integer (4 bits: one word, nibble j = weight j).
     * Rows in pairs, interleaved group by group; an odd last row alone. */
    const uint8_t *indices;
    const int8_t *tables;  /* row o's values at tables + o * table_stride */
    int32_t table_stride;  /* 0: one table for every row */
    int32_t bits;          /* 1..7 */
} th_fc_lut;

/* th_fully_connected_s8's arithmetic with filter_offset 0 (requant_mode as the SIMD
 * kernel's), each weight decoded from lut where it is multiplied: no scratch. */
th_status th_fully_connected_s8_lut(const th_fc_params *p, const th_fc_lut *lut, const int8_t *input,
                                    const int32_t *bias, int8_t *output);

#endif /* TH_FULLY_CONNECTED_H */
