/* PCA through LAPACK: the scatter matrix in double, its top eigenpairs by
 * dsyevr (relatively robust representations; only the wanted eigenpairs
 * are computed). */
#include "core/pca.h"

#include <cblas.h>
#include <lapacke.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"

/* Rows are centred and accumulated into the scatter matrix in blocks of
 * this many, so memory stays O(block * d) whatever n is. */
#define PCA_BLOCK 2048

int qb_pca_fit(const float *x, size_t n, size_t d, size_t k, double *mean, double *evals,
               double *evecs, qb_error *err)
{
    QB_ASSERT(n >= 1 && k >= 1 && k <= d);
    if (d > (size_t)INT32_MAX / d || n > (size_t)INT32_MAX)
        return QB_FAIL(err, "PCA of %zu x %zu data: too large for LAPACK's int sizes", n, d);
    memset(mean, 0, d * sizeof(double));
    for (size_t i = 0; i < n; i++)
        for (size_t j = 0; j < d; j++) mean[j] += (double)x[i * d + j];
    for (size_t j = 0; j < d; j++) mean[j] /= (double)n;

    /* S = sum over blocks of Xc_b^T Xc_b (upper triangle, row-major). */
    double *s = xcalloc(d * d, sizeof(double));
    size_t bl = n < PCA_BLOCK ? n : PCA_BLOCK;
    double *xc = xmalloc(bl * d, sizeof(double));
    for (size_t i0 = 0; i0 < n; i0 += bl) {
        size_t b = n - i0 < bl ? n - i0 : bl;
        for (size_t i = 0; i < b; i++)
            for (size_t j = 0; j < d; j++)
                xc[i * d + j] = (double)x[(i0 + i) * d + j] - mean[j];
        cblas_dsyrk(CblasRowMajor, CblasUpper, CblasTrans, (int)d, (int)b, 1.0, xc, (int)d, 1.0,
                    s, (int)d);
    }
    free(xc);

    /* Eigenpairs il..iu (1-based, ascending) = the k largest. */
    lapack_int m = 0;
    double *w = xmalloc(d, sizeof(double));
    double *z = xmalloc(d * k, sizeof(double)); /* (d, k): column j = eigenvector j */
    lapack_int *isuppz = xmalloc(2 * d, sizeof(lapack_int));
    lapack_int info = LAPACKE_dsyevr(LAPACK_ROW_MAJOR, 'V', 'I', 'U', (lapack_int)d, s,
                                     (lapack_int)d, 0.0, 0.0, (lapack_int)(d - k + 1),
                                     (lapack_int)d, LAPACKE_dlamch('S'), &m, w, z, (lapack_int)k,
                                     isuppz);
    free(isuppz);
    free(s);
    if (info != 0 || (size_t)m != k) {
        free(w);
        free(z);
        if (info != 0)
            return QB_FAIL(err, "PCA: LAPACKE_dsyevr failed on a %zu x %zu scatter matrix (info %d)",
                           d, d, (int)info);
        return QB_FAIL(err, "PCA: LAPACKE_dsyevr returned %d of %zu eigenpairs", (int)m, k);
    }
    for (size_t i = 0; i < k; i++) {
        size_t col = k - 1 - i; /* descending */
        evals[i] = w[col] > 0 ? w[col] : 0.0;
        size_t jmax = 0;
        for (size_t j = 1; j < d; j++)
            if (fabs(z[j * k + col]) > fabs(z[jmax * k + col])) jmax = j;
        double sign = z[jmax * k + col] < 0 ? -1.0 : 1.0;
        for (size_t j = 0; j < d; j++) evecs[i * d + j] = sign * z[j * k + col];
    }
    free(w);
    free(z);
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
