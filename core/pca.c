/* PCA in our own double-precision code: the scatter matrix by a kernel
 * with a fixed per-entry summation order (core/dkernel.c), its top
 * eigenpairs by core/symeig.c. No BLAS or LAPACK: the result is a pure
 * function of the input bits, whatever CPU OpenBLAS would have picked
 * kernels for. */

/* no a*b+c fused, whatever the global flags (core/dkernel.c) */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif
#include "core/pca.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/dkernel.h"
#include "core/symeig.h"
#include "core/xalloc.h"

/* Rows are centred and packed in blocks of this many (memory O(block * d)
 * whatever n is; an 8-column panel of a block is 16 KiB, an L1's share). */
#define PCA_ROWS 256
#define PANEL QB_DKERNEL_PANEL

/* The upper triangle of S = Xc^T Xc (d, d), Xc = x - mean, into s: entry
 * (j, l) is one accumulator over the rows in ascending order
 * (core/dkernel.h), so blocking over rows or columns changes no bit. */
static void scatter(const float *x, size_t n, size_t d, const double *mean, double *s)
{
    size_t np = (d + PANEL - 1) / PANEL, dp = np * PANEL;
    size_t bl = n < PCA_ROWS ? n : PCA_ROWS;
    double *sp = xcalloc(dp * dp, sizeof(double)); /* (dp, dp), zero-padded */
    double *pk = xcalloc(np * bl * PANEL, sizeof(double)); /* (np, b, PANEL) */
    for (size_t i0 = 0; i0 < n; i0 += bl) {
        size_t b = n - i0 < bl ? n - i0 : bl;
        for (size_t i = 0; i < b; i++) {
            const float *xr = x + (i0 + i) * d;
            for (size_t j = 0; j < d; j++)
                pk[((j / PANEL) * b + i) * PANEL + j % PANEL] = (double)xr[j] - mean[j];
        }
        qb_dkernel_scatter(pk, b, np, sp);
    }
    for (size_t j = 0; j < d; j++) memcpy(s + j * d, sp + j * dp, d * sizeof(double));
    free(pk);
    free(sp);
}

int qb_pca_fit(const float *x, size_t n, size_t d, size_t k, double *mean, double *evals,
               double *evecs, qb_error *err)
{
    QB_ASSERT(n >= 1 && k >= 1 && k <= d);
    if (d > SIZE_MAX / sizeof(double) / d)
        return QB_FAIL(err, "PCA of %zu x %zu data: the scatter matrix does not fit in memory", n,
                       d);
    memset(mean, 0, d * sizeof(double));
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) mean[j] += (double)x[i * d + j];
    for (size_t j = 0; j < d; j++) mean[j] /= (double)n;

    double *s = xmalloc(d * d, sizeof(double));
    scatter(x, n, d, mean, s);
    int rc = qb_symeig_top(s, d, k, evals, evecs, err);
    free(s);
    if (rc) return qb_error_prefix(err, "PCA: ");
    for (size_t i = 0; i < k; i++)
        if (!(evals[i] > 0)) evals[i] = 0.0;
    return 0;
}

void qb_pca_project(const float *x, size_t n, size_t d, size_t k, const double *mean,
                    const double *evecs, double *proj)
{
    double *xc = xmalloc(d, sizeof(double));
    for (size_t i = 0; i < n; i++) {
        for (size_t j = 0; j < d; j++) xc[j] = (double)x[i * d + j] - mean[j];
        for (size_t c = 0; c < k; c++) {
            const double *v = evecs + c * d;
            double acc = 0.0;
            for (size_t j = 0; j < d; j++) acc += xc[j] * v[j];
            proj[i * k + c] = acc;
        }
    }
    free(xc);
}
