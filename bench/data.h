/* The images the throughput benches run on (bench_qinfer.c, bench_train.c),
 * the same as their PyTorch peers' (bench/peer_torch_common.py). */
#ifndef QB_BENCH_DATA_H
#define QB_BENCH_DATA_H

#include <stddef.h>

#include "core/dataset.h"
#include "core/error.h"

/* lenet: the Fashion-MNIST training set, its first n images (n = 0: all);
 * any other arch: n random 3x32x32 images with random labels of 10 classes
 * (seeded: throughput does not depend on content). Returns 0 (free *out
 * with qb_dataset_free) or -1 with err set. */
int qb_bench_data_load(const char *arch, size_t n, qb_dataset *out, qb_error *err);

#endif
