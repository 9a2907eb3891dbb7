/* What the throughput benches (bench_qinfer.c, bench_train.c) share: the
 * images they run on, the same as their PyTorch peers'
 * (bench/peer_torch_common.py), the model built for them, and the options
 * both take. */
#ifndef QB_BENCH_DATA_H
#define QB_BENCH_DATA_H

#include <stddef.h>

#include "core/dataset.h"
#include "core/error.h"
#include "core/model.h"

/* lenet: the Fashion-MNIST training set, its first n images (n = 0: all);
 * any other arch: n random 3x32x32 images with random labels of 10 classes
 * (seeded: throughput does not depend on content). Returns 0 (free *out
 * with qb_dataset_free) or -1 with err set. */
int qb_bench_data_load(const char *arch, size_t n, qb_dataset *out, qb_error *err);

/* qb_bench_data_load, then arch's model for those images with the
 * parameters of seed 0. Returns 0 (free both) or -1 with err set (nothing
 * to free). */
int qb_bench_model_load(const char *arch, size_t n, qb_dataset *data, qb_model *m,
                        qb_error *err);

/* The options of both benches, "--arch NAME", "--batch N", "--images N"
 * (the numbers read with atoi / atol): if argv[i] is one of them, stores
 * argv[i + 1] and returns 1; else 0. */
int qb_bench_common_opt(char **argv, int i, const char **arch, int *batch, long *images);

#endif
