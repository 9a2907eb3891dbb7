/* Exact mean silhouette (silhouette.h).
 *
 * The rows are reordered by cluster and stored transposed (d, n), so that
 * the distances from a few rows to a run of later rows are vectorisable
 * passes over contiguous coordinates, and the per-cluster sums of those
 * distances are sums over contiguous ranges. Each pair's distance is
 * computed once (exactly: differences, not the |x|^2 + |y|^2 - 2 x.y
 * shortcut) and credited to both rows. The summation order is fixed, so
 * the result is bit-reproducible. On a 12000-point class in 10 dimensions
 * this takes about 0.4 s on one core. */
#include "core/silhouette.h"

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/xalloc.h"

/* Tile of rows x later rows whose squared distances are accumulated
 * together: 16 KiB of doubles, L1-resident. */
#define SIL_ROWS 8
#define SIL_COLS 256

double qb_silhouette(const double *x, size_t n, size_t d, const int *labels, int k)
{
    QB_ASSERT(k >= 1);
    size_t *count = xcalloc((size_t)k, sizeof(size_t));
    for (size_t i = 0; i < n; i++) {
        QB_ASSERT(labels[i] >= 0 && labels[i] < k);
        count[labels[i]]++;
    }
    size_t nonempty = 0;
    for (int c = 0; c < k; c++) nonempty += count[c] > 0;
    if (nonempty < 2 || nonempty > n - 1) {
        free(count);
        return NAN;
    }
    /* start (k + 1): cluster c occupies sorted positions [start[c], start[c+1]). */
    size_t *start = xmalloc((size_t)k + 1, sizeof(size_t));
    start[0] = 0;
    for (int c = 0; c < k; c++) start[c + 1] = start[c] + count[c];
    size_t *fill = xmalloc((size_t)k, sizeof(size_t));
    memcpy(fill, start, (size_t)k * sizeof(size_t));
    double *xt = xmalloc(d * n, sizeof(double)); /* (d, n) in sorted order */
    int *lab = xmalloc(n, sizeof(int));          /* (n) sorted labels */
    for (size_t i = 0; i < n; i++) {
        size_t p = fill[labels[i]]++;
        lab[p] = labels[i];
        for (size_t j = 0; j < d; j++) xt[j * n + p] = x[i * d + j];
    }
    free(fill);

    /* Tiles of SIL_ROWS rows p against SIL_COLS later rows q: the squared
     * distances of a tile stay in L1 while the d coordinates stream
     * through it. Row p only takes q > p (each pair once). */
    double *sum = xcalloc((size_t)k * n, sizeof(double)); /* (k, n): row p's distance sum to cluster c */
    double *tile = xmalloc(SIL_ROWS * SIL_COLS, sizeof(double)); /* (SIL_ROWS, SIL_COLS) */
    for (size_t p0 = 0; p0 + 1 < n; p0 += SIL_ROWS) {
        size_t p1 = p0 + SIL_ROWS < n ? p0 + SIL_ROWS : n, rows = p1 - p0;
        for (size_t q0 = p0 + 1; q0 < n; q0 += SIL_COLS) {
            size_t q1 = q0 + SIL_COLS < n ? q0 + SIL_COLS : n, cols = q1 - q0;
            for (size_t r = 0; r < rows; r++) memset(tile + r * SIL_COLS, 0, cols * sizeof(double));
            for (size_t j = 0; j < d; j++) {
                const double *col = xt + j * n + q0;
                for (size_t r = 0; r < rows; r++) {
                    double v = xt[j * n + p0 + r], *t = tile + r * SIL_COLS;
                    for (size_t q = 0; q < cols; q++) {
                        double u = col[q] - v;
                        t[q] += u * u;
                    }
                }
            }
            for (size_t r = 0; r < rows; r++) {
                size_t p = p0 + r, lo = p + 1 > q0 ? p + 1 : q0; /* first q of this row */
                if (lo >= q1) continue;
                double *t = tile + r * SIL_COLS - q0; /* indexed by q */
                double *own = sum + (size_t)lab[p] * n;
                for (size_t q = lo; q < q1; q++) {
                    t[q] = sqrt(t[q]);
                    own[q] += t[q];
                }
                for (int c = 0; c < k; c++) {
                    size_t a = start[c] > lo ? start[c] : lo, b = start[c + 1] < q1 ? start[c + 1] : q1;
                    double acc = 0.0;
                    for (size_t q = a; q < b; q++) acc += t[q];
                    sum[(size_t)c * n + p] += acc;
                }
            }
        }
    }
    double total = 0.0;
    for (size_t p = 0; p < n; p++) {
        int lp = lab[p];
        if (count[lp] < 2) continue; /* s = 0 */
        double a = sum[(size_t)lp * n + p] / (double)(count[lp] - 1);
        double b = INFINITY;
        for (int c = 0; c < k; c++) {
            if (c == lp || !count[c]) continue;
            double m = sum[(size_t)c * n + p] / (double)count[c];
            if (m < b) b = m;
        }
        double den = a > b ? a : b;
        if (den > 0) total += (b - a) / den;
    }
    free(count);
    free(start);
    free(xt);
    free(lab);
    free(sum);
    free(tile);
    return total / (double)n;
}

double qb_silhouette_sampled(const double *x, size_t n, size_t d, const int *labels, int k,
                             size_t max_n, qb_rng *rng)
{
    QB_ASSERT(max_n >= 2);
    if (n <= max_n) return qb_silhouette(x, n, d, labels, k);
    QB_ASSERT(n <= UINT32_MAX);
    /* The first max_n of a Fisher-Yates shuffle, kept in index order. */
    uint32_t *idx = xmalloc(n, sizeof(uint32_t));
    for (size_t i = 0; i < n; i++) idx[i] = (uint32_t)i;
    for (size_t i = 0; i < max_n; i++) {
        size_t j = i + qb_rng_below(rng, (uint32_t)(n - i));
        uint32_t tmp = idx[i];
        idx[i] = idx[j];
        idx[j] = tmp;
    }
    uint8_t *take = xcalloc(n, 1);
    for (size_t i = 0; i < max_n; i++) take[idx[i]] = 1;
    double *xs = xmalloc(max_n * d, sizeof(double));
    int *ls = xmalloc(max_n, sizeof(int));
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        if (!take[i]) continue;
        memcpy(xs + m * d, x + i * d, d * sizeof(double));
        ls[m++] = labels[i];
    }
    double s = qb_silhouette(xs, m, d, ls, k);
    free(idx);
    free(take);
    free(xs);
    free(ls);
    return s;
}
