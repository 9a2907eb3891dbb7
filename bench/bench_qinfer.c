/* Inference throughput of a deployed model, the counterpart of
 * bench/peer_torch_int8.py: lenet on Fashion-MNIST (the 60k training
 * images) or cnn-small on random 3x32x32 images (10k), batch 256, one
 * thread, at a precision: fp32 runs the plain model, anything else the
 * qb_qmodel (int8: the integer kernels). The images are converted to float
 * before timing (as the peer holds float tensors) and one batch runs
 * untimed first (scratch buffers grow on the first call). Prints one line:
 *     qblind <arch> <precision> <batch> <images/s>
 * Run both through bench/qinfer_vs_torch.sh, which alternates them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench/data.h"
#include "core/dataset.h"
#include "core/model.h"
#include "core/train.h"
#include "core/xalloc.h"
#include "quant/precision.h"
#include "quant/qmodel.h"

int main(int argc, char **argv)
{
    const char *arch = "lenet", *prec_name = "int8";
    int batch = 256, passes = 1;
    long images = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (qb_bench_common_opt(argv, i, &arch, &batch, &images)) continue;
        if (!strcmp(argv[i], "--prec")) prec_name = argv[i + 1];
        else if (!strcmp(argv[i], "--passes")) passes = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: bench_qinfer [--arch NAME] [--prec fp32|int8|...] "
                            "[--batch N] [--images N] [--passes N]\n");
            return 2;
        }
    }
    if (batch < 1 || passes < 1 || images < 0) {
        fprintf(stderr, "bench_qinfer: --batch and --passes must be >= 1\n");
        return 2;
    }
    qb_error err;
    qb_precision prec;
    if (qb_precision_parse(prec_name, &prec, &err)) {
        qb_error_print(&err);
        return 2;
    }
    qb_dataset data;
    qb_model m;
    size_t n = images > 0 ? (size_t)images : strcmp(arch, "lenet") ? 10000 : 0;
    if (qb_bench_model_load(arch, n, &data, &m, &err)) {
        qb_error_print(&err);
        return 1;
    }
    qb_qmodel qm;
    if (qb_qmodel_init(&qm, &m, &prec, 0.0f, 0, &err)) {
        qb_error_print(&err);
        return 1;
    }
    const qb_model *run = qb_precision_is_float(&prec) ? &m : &qm.model;

    const size_t per = qb_dataset_image_size(&data);
    float *x = xaligned(data.n * per, sizeof(float));
    qb_dataset_batch_float(&data, NULL, 0, data.n, x);
    qb_model_ws ws;
    qb_model_ws_init(&ws, run, batch);
    qb_model_forward(run, &ws, x, (size_t)batch < data.n ? batch : (int)data.n, 0); /* warm-up */
    double t0 = qb_now();
    for (int p = 0; p < passes; p++)
        for (size_t first = 0; first < data.n; first += (size_t)batch) {
            int b = data.n - first < (size_t)batch ? (int)(data.n - first) : batch;
            qb_model_forward(run, &ws, x + first * per, b, 0);
        }
    double rate = (double)data.n * passes / (qb_now() - t0);
    printf("qblind %s %s %d %.0f\n", arch, prec.name, batch, rate);
    qb_model_ws_free(&ws);
    free(x);
    qb_qmodel_free(&qm);
    qb_model_free(&m);
    qb_dataset_free(&data);
    return 0;
}
