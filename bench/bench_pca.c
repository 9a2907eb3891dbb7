/* PCA as the defenses run it (core/pca.c: our fixed-order scatter kernel
 * and eigensolver) against the LAPACK version it replaced (cblas_dsyrk on
 * the centred rows + LAPACKE_dsyevr for the top k, kept here verbatim as
 * the baseline), on the shapes of AC (k = 10) and SS (k = 2): penultimate
 * widths 84..512, a class of 1000..12000 rows. One thread (OpenBLAS held
 * to one, as in a sweep). Synthetic activations: ReLU of a rank-24 mixture
 * plus noise, so the spectrum decays as a trained layer's does.
 * Prints per shape the best of `reps` CPU times (ms, this thread) of the whole fit and
 * of the eigensolver alone on the same scatter matrix, the ratio ours /
 * LAPACK, and how far apart the two results are (max relative eigenvalue
 * difference, max 1 - |<v_ours, v_lapack>|).
 * usage: bench_pca [reps [max_d]]; OPENBLAS_CORETYPE picks the baseline's
 * kernels, QBLIND_SCALAR=1 forces our kernels' baseline build
 * (core/dkernel.h). */
#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/dkernel.h"
#include "core/pca.h"
#include "core/rng.h"
#include "core/symeig.h"
#include "core/train.h"
#include "core/xalloc.h"

/* CPU seconds of this thread: the bench machine is shared, and wall time
 * there counts the other processes' share of the core too. */
static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The LAPACK scatter (upper triangle) of the rows x (n, d) about mean. */
static void lapack_scatter(const float *x, size_t n, size_t d, const double *mean, double *s)
{
    size_t bl = n < 2048 ? n : 2048;
    double *xc = xmalloc(bl * d, sizeof(double));
    memset(s, 0, d * d * sizeof(double));
    for (size_t i0 = 0; i0 < n; i0 += bl) {
        size_t b = n - i0 < bl ? n - i0 : bl;
        for (size_t i = 0; i < b; i++)
            for (size_t j = 0; j < d; j++) xc[i * d + j] = (double)x[(i0 + i) * d + j] - mean[j];
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)d, (int)b, 1.0, xc, (int)d, 1.0,
                    s, (int)d);
    }
    free(xc);
}

/* The top k eigenpairs of s by dsyevr, descending, sign as core/pca.h. */
static int lapack_top(double *s, size_t d, size_t k, double *evals, double *evecs)
{
    lapack_int m = 0;
    double *w = xmalloc(d, sizeof(double)), *z = xmalloc(d * k, sizeof(double));
    lapack_int *isuppz = xmalloc(2 * d, sizeof(lapack_int));
    lapack_int info = LAPACKE_dsyevr(LAPACK_ROW_MAJOR, 'V', 'I', 'U', (lapack_int)d, s,
                                     (lapack_int)d, 0.0, 0.0, (lapack_int)(d - k + 1),
                                     (lapack_int)d, LAPACKE_dlamch('S'), &m, w, z, (lapack_int)k,
                                     isuppz);
    for (size_t i = 0; info == 0 && i < k; i++) {
        size_t col = k - 1 - i;
        evals[i] = w[col] > 0 ? w[col] : 0.0;
        size_t jmax = 0;
        for (size_t j = 1; j < d; j++)
            if (fabs(z[j * k + col]) > fabs(z[jmax * k + col])) jmax = j;
        double sign = z[jmax * k + col] < 0 ? -1.0 : 1.0;
        for (size_t j = 0; j < d; j++) evecs[i * d + j] = sign * z[j * k + col];
    }
    free(w);
    free(z);
    free(isuppz);
    return info != 0 || (size_t)m != k;
}

static void column_mean(const float *x, size_t n, size_t d, double *mean)
{
    memset(mean, 0, d * sizeof(double));
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) mean[j] += (double)x[i * d + j];
    for (size_t j = 0; j < d; j++) mean[j] /= (double)n;
}

static int lapack_fit(const float *x, size_t n, size_t d, size_t k, double *mean, double *evals,
                      double *evecs)
{
    column_mean(x, n, d, mean);
    double *s = xmalloc(d * d, sizeof(double));
    lapack_scatter(x, n, d, mean, s);
    int rc = lapack_top(s, d, k, evals, evecs);
    free(s);
    return rc;
}

/* ReLU(Z A + noise): Z (n, 24) normal, A (24, d) normal / sqrt(24). */
static float *activations(size_t n, size_t d, uint64_t seed)
{
    enum { R = 24 };
    qb_rng r;
    qb_rng_seed(&r, seed);
    float *a = xmalloc(R * d, sizeof(float)), *x = xmalloc(n * d, sizeof(float));
    for (size_t i = 0; i < R * d; i++) a[i] = qb_rng_normal(&r) / sqrtf((float)R);
    float z[R];
    for (size_t i = 0; i < n; i++) {
        for (int t = 0; t < R; t++) z[t] = qb_rng_normal(&r) * (float)(R - t) / (float)R;
        for (size_t j = 0; j < d; j++) {
            float v = 0.1f * qb_rng_normal(&r);
            for (int t = 0; t < R; t++) v += z[t] * a[t * d + j];
            x[i * d + j] = v > 0 ? v : 0.0f;
        }
    }
    free(a);
    return x;
}

int main(int argc, char **argv)
{
    int reps = argc > 1 ? atoi(argv[1]) : 3;
    size_t max_d = argc > 2 ? (size_t)atol(argv[2]) : 512;
    if (reps < 1) reps = 1;
    const char *ct = getenv("OPENBLAS_CORETYPE");
    printf("OPENBLAS_CORETYPE=%s, our kernels: %s, best of %d (CPU ms)\n", ct ? ct : "(unset)",
           qb_dkernel_path(), reps);
    printf("%5s %6s %3s | %9s %9s %6s | %9s %9s %6s | %8s %8s\n", "d", "n", "k", "fit ours",
           "lapack", "ratio", "eig ours", "dsyevr", "ratio", "d_eval", "d_vec");
    const size_t shapes[][2] = {{84, 1000},  {84, 6000},  {84, 12000}, {128, 1000},
                                {128, 6000}, {128, 12000}, {256, 1000}, {256, 6000},
                                {256, 12000}, {512, 1000}, {512, 6000}, {512, 12000}};
    const size_t ks[2] = {2, 10};
    qb_error err;
    for (size_t sh = 0; sh < sizeof shapes / sizeof shapes[0]; sh++) {
        size_t d = shapes[sh][0], n = shapes[sh][1];
        if (d > max_d) continue;
        float *x = activations(n, d, 1000 + sh);
        double *mean = xmalloc(d, sizeof(double)), *s = xmalloc(d * d, sizeof(double));
        double *s0 = xmalloc(d * d, sizeof(double));
        column_mean(x, n, d, mean);
        lapack_scatter(x, n, d, mean, s0);
        for (int ki = 0; ki < 2; ki++) {
            size_t k = ks[ki];
            double ev[10], ev0[10], *vec = xmalloc(k * d, sizeof(double));
            double *vec0 = xmalloc(k * d, sizeof(double));
            double t_fit = INFINITY, t_fit0 = INFINITY, t_eig = INFINITY, t_eig0 = INFINITY;
            for (int r = 0; r < reps; r++) {
                double t0 = now();
                if (qb_pca_fit(x, n, d, k, mean, ev, vec, &err)) {
                    qb_error_print(&err);
                    return 1;
                }
                double t1 = now();
                if (lapack_fit(x, n, d, k, mean, ev0, vec0)) {
                    fprintf(stderr, "bench_pca: dsyevr failed\n");
                    return 1;
                }
                double t2 = now();
                t_fit = fmin(t_fit, t1 - t0);
                t_fit0 = fmin(t_fit0, t2 - t1);
                memcpy(s, s0, d * d * sizeof(double));
                t0 = now();
                if (qb_symeig_top(s, d, k, ev, vec, &err)) {
                    qb_error_print(&err);
                    return 1;
                }
                t1 = now();
                memcpy(s, s0, d * d * sizeof(double));
                if (lapack_top(s, d, k, ev0, vec0)) return 1;
                t2 = now();
                t_eig = fmin(t_eig, t1 - t0);
                t_eig0 = fmin(t_eig0, t2 - t1);
            }
            /* the fits' results, compared */
            if (qb_pca_fit(x, n, d, k, mean, ev, vec, &err) ||
                lapack_fit(x, n, d, k, mean, ev0, vec0))
                return 1;
            double de = 0.0, dv = 0.0;
            for (size_t i = 0; i < k; i++) {
                de = fmax(de, fabs(ev[i] - ev0[i]) / ev0[0]);
                double dot = 0.0;
                for (size_t j = 0; j < d; j++) dot += vec[i * d + j] * vec0[i * d + j];
                dv = fmax(dv, 1.0 - fabs(dot));
            }
            printf("%5zu %6zu %3zu | %9.2f %9.2f %6.2f | %9.2f %9.2f %6.2f | %8.1e %8.1e\n", d, n,
                   k, 1e3 * t_fit, 1e3 * t_fit0, t_fit / t_fit0, 1e3 * t_eig, 1e3 * t_eig0,
                   t_eig / t_eig0, de, dv);
            fflush(stdout);
            free(vec);
            free(vec0);
        }
        free(x);
        free(mean);
        free(s);
        free(s0);
    }
    return 0;
}
