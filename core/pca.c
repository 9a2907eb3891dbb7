/* PCA in our own double-precision code: the scatter matrix by a kernel
 * with a fixed per-entry summation order, its top eigenpairs by
 * core/symeig.c. No BLAS or LAPACK: the result is a pure function of the
 * input bits, whatever CPU OpenBLAS would have picked kernels for. */
#include "core/pca.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/symeig.h"
#include "core/xalloc.h"

/* Rows are centred and packed in blocks of this many (memory O(block * d)
 * whatever n is; a 4-column panel of a block is 8 KiB, an L1's share). */
#define PCA_ROWS 256
/* Columns per panel: the scatter kernel's tile is PANEL x PANEL. */
#define PANEL 4

/* s (dp, dp) += the panels' products over b rows, for panel pairs
 * jp <= lp. pk (np, b, PANEL): pk[(p * b + i) * PANEL + t] = Xc[i][p * PANEL
 * + t]. Entry (j, l) of s is one accumulator that takes the rows in
 * ascending order: s_jl = (...((s_jl + x_0j x_0l) + x_1j x_1l) + ...), so
 * blocking over rows or panels never changes a bit, and the compiler's
 * vector code (across the tile's independent entries) gives the scalar
 * bits. */
static void scatter_panels(const double *pk, size_t b, size_t np, double *s)
{
    size_t dp = np * PANEL;
    for (size_t jp = 0; jp < np; jp++) {
        const double *pj = pk + jp * b * PANEL;
        for (size_t lp = jp; lp < np; lp++) {
            const double *pl = pk + lp * b * PANEL;
            double acc[PANEL][PANEL];
            for (int t = 0; t < PANEL; t++)
                for (int u = 0; u < PANEL; u++)
                    acc[t][u] = s[(jp * PANEL + t) * dp + lp * PANEL + u];
            for (size_t i = 0; i < b; i++) {
                const double *xa = pj + i * PANEL, *xb = pl + i * PANEL;
                for (int t = 0; t < PANEL; t++)
                    for (int u = 0; u < PANEL; u++) acc[t][u] += xa[t] * xb[u];
            }
            for (int t = 0; t < PANEL; t++)
                for (int u = 0; u < PANEL; u++)
                    s[(jp * PANEL + t) * dp + lp * PANEL + u] = acc[t][u];
        }
    }
}

/* The upper triangle of S = Xc^T Xc (d, d), Xc = x - mean, into s. */
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
        scatter_panels(pk, b, np, sp);
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
