#include "bench/data.h"

#include <stdint.h>
#include <stdlib.h>
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

int qb_bench_model_load(const char *arch, size_t n, qb_dataset *data, qb_model *m,
                        qb_error *err)
{
    if (qb_bench_data_load(arch, n, data, err)) return -1;
    if (qb_model_build(m, arch, data->c, data->h, data->w, data->classes, err)) {
        qb_dataset_free(data);
        return -1;
    }
    qb_model_init_params(m, 0);
    return 0;
}

int qb_bench_common_opt(char **argv, int i, const char **arch, int *batch, long *images)
{
    if (!strcmp(argv[i], "--arch")) *arch = argv[i + 1];
    else if (!strcmp(argv[i], "--batch")) *batch = atoi(argv[i + 1]);
    else if (!strcmp(argv[i], "--images")) *images = atol(argv[i + 1]);
    else return 0;
    return 1;
}
