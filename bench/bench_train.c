/* Training / inference throughput of qblind's engine, the counterpart of
 * bench/peer_torch_lenet.py (same architectures, data, batch, optimizer).
 * Prints one line:  qblind <arch> train|infer <batch> <images/s>
 * Run both through bench/train_vs_torch.sh, which alternates them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/data.h"
#include "core/dataset.h"
#include "core/metrics.h"
#include "core/model.h"
#include "core/train.h"
#include "core/xalloc.h"

int main(int argc, char **argv)
{
    const char *arch = "lenet", *mode = "train";
    int batch = 64;
    long images = 60000;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (qb_bench_common_opt(argv, i, &arch, &batch, &images)) continue;
        if (!strcmp(argv[i], "--mode")) mode = argv[i + 1];
        else {
            fprintf(stderr, "usage: bench_train [--arch NAME] [--mode train|infer] "
                            "[--batch N] [--images N]\n");
            return 2;
        }
    }
    qb_error err;
    qb_dataset train;
    qb_model m;
    if (qb_bench_model_load(arch, (size_t)images, &train, &m, &err)) {
        qb_error_print(&err);
        return 1;
    }
    double rate;
    if (!strcmp(mode, "train")) {
        qb_train_config cfg;
        qb_train_config_default(&cfg);
        cfg.epochs = 1;
        cfg.batch = batch;
        qb_train_stats st;
        if (qb_train(&m, &train, &cfg, &st, &err)) {
            qb_error_print(&err);
            return 1;
        }
        rate = (double)train.n / st.seconds;
    } else {
        qb_model_ws ws;
        qb_model_ws_init(&ws, &m, batch);
        float *x = xaligned((size_t)batch * qb_dataset_image_size(&train), sizeof(float));
        double t0 = qb_now();
        for (size_t first = 0; first < train.n; first += (size_t)batch) {
            int b = train.n - first < (size_t)batch ? (int)(train.n - first) : batch;
            qb_dataset_batch_float(&train, NULL, first, (size_t)b, x);
            qb_model_forward(&m, &ws, x, b, 0);
        }
        rate = (double)train.n / (qb_now() - t0);
        free(x);
        qb_model_ws_free(&ws);
    }
    printf("qblind %s %s %d %.0f\n", arch, mode, batch, rate);
    qb_model_free(&m);
    qb_dataset_free(&train);
    return 0;
}
