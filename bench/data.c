#include "bench/data.h"

#include <stdint.h>
#include <string.h>

#include "core/rng.h"

int qb_bench_data_load(const char *arch, size_t n, qb_dataset *out, qb_error *err)
{
    if (!strcmp(arch, "lenet")) {
        qb_dataset test;
        if (qb_dataset_load("fashion-mnist", NULL, 0, out, &test, err)) return -1;
        qb_dataset_free(&test);
        if (n > 0 && n < out->n) out->n = n;
        return 0;
    }
    qb_dataset_init(out, "random", n, 3, 32, 32, 10);
    qb_rng rng;
    qb_rng_seed(&rng, 1);
    for (size_t i = 0; i < out->n * 3072; i++) out->images[i] = (uint8_t)qb_rng_below(&rng, 256);
    for (size_t i = 0; i < out->n; i++) out->labels[i] = (uint8_t)qb_rng_below(&rng, 10);
    return 0;
}
