/*
 * Host harness for the builtin engine: reads input sets from stdin (each the
 * concatenation of the model's inputs), runs one inference per set, and
 * writes the concatenated outputs to stdout. Used by `tinyhil engine check`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "th_model.h"

int main(void) {
    size_t in_bytes = 0;
    for (int i = 0; i < TH_MODEL_NUM_INPUTS; ++i) {
        in_bytes += tinyhil_input_bytes(i);
    }
    unsigned char *buf = (unsigned char *)malloc(in_bytes ? in_bytes : 1);
    if (buf == NULL) {
        return 2;
    }
    long count = 0;
    while (fread(buf, 1, in_bytes, stdin) == in_bytes) {
        size_t pos = 0;
        for (int i = 0; i < TH_MODEL_NUM_INPUTS; ++i) {
            memcpy(tinyhil_input(i), buf + pos, tinyhil_input_bytes(i));
            pos += tinyhil_input_bytes(i);
        }
        int st = tinyhil_invoke();
        if (st != 0) {
            fprintf(stderr, "tinyhil_invoke failed with status %d on input set %ld\n", st, count);
            free(buf);
            return 3;
        }
        for (int i = 0; i < TH_MODEL_NUM_OUTPUTS; ++i) {
            fwrite(tinyhil_output(i), 1, tinyhil_output_bytes(i), stdout);
        }
        ++count;
    }
    free(buf);
    return 0;
}
