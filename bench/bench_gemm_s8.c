/* int8 GEMM throughput (quant/gemm_s8.h) against the machine's vpdpbusd
 * peak and OpenBLAS sgemm, one core, all in the same run.
 *
 *   bench_gemm_s8 [seconds per measurement, default 0.2]
 *
 * (a) peak: a register-only loop of 16 independent vpdpbusd zmm chains
 *     (inline asm, nothing else in the loop). One vpdpbusd on a zmm is
 *     64 int8 multiply-adds = 128 ops.
 * (b) qb_gemm_s8 per supported path on a large shape and on LeNet's layers
 *     (convs as im2col rows x output channels), ops = 2 N M K; weights
 *     packed once outside the timing, as in inference.
 * (c) cblas_sgemm on the large shape, the same Y = X W^T, held to 1 thread.
 * Every figure is the median of 5 rounds; each round repeats the call
 * until `seconds` have passed. Each path's result is checked against
 * qb_gemm_s8_ref once. */
#include <cblas.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/rng.h"
#include "core/sort.h"
#include "core/xalloc.h"
#include "quant/gemm_s8.h"

void openblas_set_num_threads(int);

enum { ROUNDS = 5 };

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, qb_cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

#if defined(__x86_64__) && defined(__GNUC__)
/* 16 independent accumulators (latency 5 x 2 per cycle needs >= 10). */
__attribute__((noinline, target("avx512f,avx512vnni"))) static void peak_loop(long iters)
{
    __asm__ volatile("vpxord %%zmm0, %%zmm0, %%zmm0\n\t"
                     ".irp r,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17\n\t"
                     "vmovdqa64 %%zmm0, %%zmm\\r\n\t"
                     ".endr\n"
                     "1:\n\t"
                     ".irp r,0,1,2,3,4,5,6,7,8,9,10,11,12,13,14,15\n\t"
                     "vpdpbusd %%zmm16, %%zmm17, %%zmm\\r\n\t"
                     ".endr\n\t"
                     "dec %0\n\t"
                     "jnz 1b\n\t"
                     : "+r"(iters)
                     :
                     : "cc", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6", "xmm7",
                       "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15",
                       "xmm16", "xmm17");
}

/* GOPS of peak_loop (0 if the CPU has no AVX-512 VNNI). */
static double peak_gops(double seconds)
{
    if (!qb_gemm_s8_supported(QB_GEMM_S8_VNNI)) return 0.0;
    double g[ROUNDS];
    const long chunk = 1000000;
    for (int r = 0; r < ROUNDS; r++) {
        long iters = 0;
        double t0 = now(), t;
        do {
            peak_loop(chunk);
            iters += chunk;
            t = now() - t0;
        } while (t < seconds);
        g[r] = (double)iters * 16.0 * 128.0 / t * 1e-9;
    }
    return median(g, ROUNDS);
}
#else
static double peak_gops(double seconds)
{
    (void)seconds;
    return 0.0;
}
#endif

static void fill_s8(qb_rng *r, int8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++) p[i] = (int8_t)((int)qb_rng_below(r, 255) - 127);
}

/* Median GOPS of qb_gemm_s8 on (N, M, K) with weights packed for path;
 * *ok = 0 if the result differs from the reference. */
static double gemm_gops(qb_gemm_s8_path path, int N, int M, int K, double seconds, int *ok)
{
    qb_rng r;
    qb_rng_seed(&r, 42);
    int8_t *X = xaligned((size_t)N * K, 1), *W = xaligned((size_t)M * K, 1);
    int32_t *Y = xaligned((size_t)N * M, sizeof(int32_t));
    int32_t *ref = xaligned((size_t)N * M, sizeof(int32_t));
    fill_s8(&r, X, (size_t)N * K);
    fill_s8(&r, W, (size_t)M * K);
    qb_s8_weights w;
    qb_s8_weights_pack(&w, W, M, K, (size_t)K, path);
    qb_gemm_s8(&w, N, X, (size_t)K, Y, (size_t)M);
    qb_gemm_s8_ref(N, M, K, X, (size_t)K, W, (size_t)K, ref, (size_t)M);
    *ok = !memcmp(Y, ref, (size_t)N * M * sizeof *Y);
    double g[ROUNDS];
    for (int rd = 0; rd < ROUNDS; rd++) {
        long calls = 0;
        double t0 = now(), t;
        do {
            qb_gemm_s8(&w, N, X, (size_t)K, Y, (size_t)M);
            calls++;
            t = now() - t0;
        } while (t < seconds);
        g[rd] = 2.0 * N * M * K * (double)calls / t * 1e-9;
    }
    qb_s8_weights_free(&w);
    free(X);
    free(W);
    free(Y);
    free(ref);
    return median(g, ROUNDS);
}

static double sgemm_gflops(int N, int M, int K, double seconds)
{
    qb_rng r;
    qb_rng_seed(&r, 43);
    float *X = xaligned((size_t)N * K, sizeof(float)), *W = xaligned((size_t)M * K, sizeof(float));
    float *Y = xaligned((size_t)N * M, sizeof(float));
    for (size_t i = 0; i < (size_t)N * K; i++) X[i] = qb_rng_uniform(&r) - 0.5f;
    for (size_t i = 0; i < (size_t)M * K; i++) W[i] = qb_rng_uniform(&r) - 0.5f;
    double g[ROUNDS];
    for (int rd = 0; rd < ROUNDS; rd++) {
        long calls = 0;
        double t0 = now(), t;
        do { /* Y (N, M) = X (N, K) W (M, K)^T */
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, N, M, K, 1.0f, X, K, W, K,
                        0.0f, Y, M);
            calls++;
            t = now() - t0;
        } while (t < seconds);
        g[rd] = 2.0 * N * M * K * (double)calls / t * 1e-9;
    }
    free(X);
    free(W);
    free(Y);
    return median(g, ROUNDS);
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 0.2;
    if (!(seconds > 0.0)) {
        fprintf(stderr, "usage: bench_gemm_s8 [seconds per measurement]\n");
        return 2;
    }
    openblas_set_num_threads(1);

    static const struct {
        const char *name;
        int N, M, K;
    } shapes[] = {
        {"large", 4096, 256, 1024},
        {"lenet conv1", 576, 16, 25},
        {"lenet conv2", 64, 32, 400},
        {"lenet fc1", 256, 128, 512},
        {"lenet fc2", 256, 10, 128},
    };
    static const qb_gemm_s8_path paths[] = {QB_GEMM_S8_VNNI, QB_GEMM_S8_AVX2, QB_GEMM_S8_REF};
    enum { NSH = sizeof shapes / sizeof shapes[0], NPA = sizeof paths / sizeof paths[0] };

    const double peak = peak_gops(seconds);
    printf("int8 GEMM, 1 thread, median of %d rounds of >= %.2f s; best path here: %s\n", ROUNDS,
           seconds, qb_gemm_s8_path_name(qb_gemm_s8_best()));
    if (peak > 0) printf("(a) vpdpbusd zmm register-only peak: %.1f GOPS\n", peak);
    else printf("(a) vpdpbusd peak: no AVX-512 VNNI on this CPU\n");

    printf("\n%-12s %5s %4s %5s  %-5s %9s %8s %s\n", "shape", "N", "M", "K", "path", "GOPS",
           "of peak", "check");
    int all_ok = 1;
    for (int s = 0; s < NSH; s++)
        for (int p = 0; p < NPA; p++) {
            if (!qb_gemm_s8_supported(paths[p])) continue;
            int ok;
            double g = gemm_gops(paths[p], shapes[s].N, shapes[s].M, shapes[s].K,
                                 paths[p] == QB_GEMM_S8_REF ? seconds / 4 : seconds, &ok);
            all_ok &= ok;
            char ratio[16] = "-";
            if (peak > 0) snprintf(ratio, sizeof ratio, "%.1f%%", 100.0 * g / peak);
            printf("%-12s %5d %4d %5d  %-5s %9.1f %8s %s\n", shapes[s].name, shapes[s].N,
                   shapes[s].M, shapes[s].K, qb_gemm_s8_path_name(paths[p]), g, ratio,
                   ok ? "exact" : "MISMATCH");
        }
    double sg = sgemm_gflops(shapes[0].N, shapes[0].M, shapes[0].K, seconds);
    char ratio[16] = "-";
    if (peak > 0) snprintf(ratio, sizeof ratio, "%.1f%%", 100.0 * sg / peak);
    printf("%-12s %5d %4d %5d  %-5s %9.1f %8s (GFLOPS, cblas_sgemm)\n", shapes[0].name,
           shapes[0].N, shapes[0].M, shapes[0].K, "sgemm", sg, ratio);
    return all_ok ? 0 : 1;
}
