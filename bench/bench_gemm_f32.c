/* qb_gemm_f32 (core/gemm_f32.h) against OpenBLAS cblas_sgemm on the GEMMs
 * of training LeNet and cnn-small (forward, weight and input gradients of
 * each layer, as core/conv2d.c and core/linear.c call them), one thread,
 * in the same run: rounds alternate the two, and each figure is the
 * median of the rounds. Run it under each OPENBLAS_CORETYPE the CPU can
 * run (bench/gemm_f32_vs_openblas.sh does) and with QBLIND_GEMM_F32 set
 * to each path. Prints one line per shape: GFLOPS of both and their ratio
 * (> 1: ours is faster). */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/gemm_f32.h"
#include "core/rng.h"
#include "core/xalloc.h"

#define ROUNDS 7

typedef struct shape {
    const char *name;
    int ta, tb, m, n, k, acc;
} shape;

/* conv: chunk of images n = nb*OH*OW as core/conv2d.c cuts the batch. */
static const shape SHAPES[] = {
    {"lenet conv1 fwd", 0, 0, 16, 5184, 25, 0},   {"lenet conv1 dw", 0, 1, 16, 25, 5184, 1},
    {"lenet conv2 fwd", 0, 0, 32, 576, 400, 0},   {"lenet conv2 dw", 0, 1, 32, 400, 576, 1},
    {"lenet conv2 dx", 1, 0, 400, 576, 32, 0},    {"lenet fc1 fwd", 0, 1, 64, 128, 512, 1},
    {"lenet fc1 dw", 1, 0, 128, 512, 64, 1},      {"lenet fc1 dx", 0, 0, 64, 512, 128, 0},
    {"cnn-small conv1 fwd", 0, 0, 32, 2048, 27, 0}, {"cnn-small conv2 fwd", 0, 0, 32, 2048, 288, 0},
    {"cnn-small conv2 dw", 0, 1, 32, 288, 2048, 1}, {"cnn-small conv2 dx", 1, 0, 288, 2048, 32, 0},
    {"cnn-small conv4 fwd", 0, 0, 64, 512, 576, 0}, {"cnn-small conv4 dw", 0, 1, 64, 576, 512, 1},
    {"cnn-small conv4 dx", 1, 0, 576, 512, 64, 0},  {"cnn-small fc1 fwd", 0, 1, 64, 256, 4096, 1},
};

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

/* GFLOPS of one call kind for `seconds`. */
static double run(const shape *s, int ours, const float *a, const float *b, float *c,
                  double seconds)
{
    const size_t lda = (size_t)(s->ta ? s->m : s->k), ldb = (size_t)(s->tb ? s->k : s->n);
    long calls = 0;
    double t0 = now(), t;
    do {
        if (ours)
            qb_gemm_f32(s->ta, s->tb, s->m, s->n, s->k, a, lda, b, ldb, s->acc, c, (size_t)s->n);
        else
            cblas_sgemm(CblasRowMajor, s->ta ? CblasTrans : CblasNoTrans,
                        s->tb ? CblasTrans : CblasNoTrans, s->m, s->n, s->k, 1.0f, a, (int)lda,
                        b, (int)ldb, s->acc ? 1.0f : 0.0f, c, s->n);
        calls++;
        t = now() - t0;
    } while (t < seconds);
    return 2.0 * s->m * s->n * (double)s->k * (double)calls / t * 1e-9;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 0.05;
    void openblas_set_num_threads(int);
    openblas_set_num_threads(1);
    char *openblas_get_corename(void);
    printf("# qb_gemm_f32 path %s, OpenBLAS core %s, %d rounds of %.2f s each, medians\n",
           qb_gemm_f32_path_name(qb_gemm_f32_best()), openblas_get_corename(), ROUNDS, seconds);
    printf("%-22s %5s %5s %5s %9s %9s %7s\n", "gemm", "m", "n", "k", "ours", "openblas",
           "ratio");
    double log_sum = 0;
    const int count = (int)(sizeof SHAPES / sizeof SHAPES[0]);
    for (int i = 0; i < count; i++) {
        const shape *s = &SHAPES[i];
        qb_rng r;
        qb_rng_seed(&r, 42 + (uint64_t)i);
        size_t na = (size_t)s->m * s->k, nb = (size_t)s->k * s->n, nc = (size_t)s->m * s->n;
        float *a = xaligned(na, sizeof(float)), *b = xaligned(nb, sizeof(float));
        float *c = xaligned(nc, sizeof(float));
        for (size_t j = 0; j < na; j++) a[j] = qb_rng_uniform(&r) - 0.5f;
        for (size_t j = 0; j < nb; j++) b[j] = qb_rng_uniform(&r) - 0.5f;
        memset(c, 0, nc * sizeof(float));
        double g_ours[ROUNDS], g_blas[ROUNDS];
        for (int rd = 0; rd < ROUNDS; rd++) {
            g_ours[rd] = run(s, 1, a, b, c, seconds);
            memset(c, 0, nc * sizeof(float));
            g_blas[rd] = run(s, 0, a, b, c, seconds);
            memset(c, 0, nc * sizeof(float));
        }
        double go = median(g_ours, ROUNDS), gb = median(g_blas, ROUNDS);
        printf("%-22s %5d %5d %5d %9.1f %9.1f %7.2f\n", s->name, s->m, s->n, s->k, go, gb,
               go / gb);
        log_sum += __builtin_log(go / gb);
        free(a);
        free(b);
        free(c);
    }
    printf("geometric mean ratio %.2f\n", __builtin_exp(log_sum / count));
    return 0;
}
