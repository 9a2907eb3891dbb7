/* k-means: k-means++ seeding, Lloyd iterations, restarts (kmeans.h). */
#include "core/kmeans.h"

#include <float.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/xalloc.h"

static double dist2(const double *a, const double *b, size_t d)
{
    double s = 0.0;
    for (size_t j = 0; j < d; j++) {
        double t = a[j] - b[j];
        s += t * t;
    }
    return s;
}

/* Uniform double in [0, 1) with 53 random bits. */
static double uniform53(qb_rng *rng) { return (double)(qb_rng_next(rng) >> 11) * 0x1p-53; }

/* k-means++ seeding into centers (k, d); near (n) is scratch. */
static void seed_plusplus(const double *x, size_t n, size_t d, int k, qb_rng *rng,
                          double *centers, double *near)
{
    QB_ASSERT(n <= UINT32_MAX);
    size_t first = qb_rng_below(rng, (uint32_t)n);
    memcpy(centers, x + first * d, d * sizeof(double));
    for (size_t i = 0; i < n; i++) near[i] = dist2(x + i * d, centers, d);
    for (int c = 1; c < k; c++) {
        double total = 0.0;
        for (size_t i = 0; i < n; i++) total += near[i];
        size_t pick;
        if (total > 0.0) {
            double u = uniform53(rng) * total, cum = 0.0;
            pick = n;
            size_t last_pos = 0;
            for (size_t i = 0; i < n; i++) {
                if (near[i] <= 0.0) continue;
                last_pos = i;
                cum += near[i];
                if (cum > u) {
                    pick = i;
                    break;
                }
            }
            if (pick == n) pick = last_pos; /* u within round-off of total */
        } else {
            pick = qb_rng_below(rng, (uint32_t)n); /* all rows coincide with the centers */
        }
        double *ctr = centers + (size_t)c * d;
        memcpy(ctr, x + pick * d, d * sizeof(double));
        for (size_t i = 0; i < n; i++) {
            double t = dist2(x + i * d, ctr, d);
            if (t < near[i]) near[i] = t;
        }
    }
}

/* Nearest center of row xi (lower index on ties); *dd receives the distance. */
static int nearest(const double *xi, const double *centers, size_t d, int k, double *dd)
{
    int best = 0;
    double bd = dist2(xi, centers, d);
    for (int c = 1; c < k; c++) {
        double t = dist2(xi, centers + (size_t)c * d, d);
        if (t < bd) {
            bd = t;
            best = c;
        }
    }
    *dd = bd;
    return best;
}

/* One Lloyd run from the given centers. labels (n), count (k), near (n)
 * scratch. Returns the inertia; centers end as the means of labels. */
static double lloyd(const double *x, size_t n, size_t d, int k, int max_iter, double *centers,
                    int *labels, size_t *count, double *near, int *iters)
{
    int it;
    for (size_t i = 0; i < n; i++) labels[i] = -1;
    for (it = 0; it < max_iter; it++) {
        size_t changed = 0;
        memset(count, 0, (size_t)k * sizeof(size_t));
        for (size_t i = 0; i < n; i++) {
            int c = nearest(x + i * d, centers, d, k, &near[i]);
            changed += c != labels[i];
            labels[i] = c;
            count[c]++;
        }
        if (changed == 0) break; /* centers are already the means of labels */
        /* Empty clusters take the row farthest from its center, from a
         * cluster that keeps at least one row. */
        for (int c = 0; c < k; c++) {
            if (count[c]) continue;
            size_t far = n;
            for (size_t i = 0; i < n; i++)
                if (count[labels[i]] > 1 && (far == n || near[i] > near[far])) far = i;
            if (far == n) break; /* fewer rows than clusters cannot happen (k <= n) */
            count[labels[far]]--;
            labels[far] = c;
            count[c] = 1;
            near[far] = 0.0;
        }
        memset(centers, 0, (size_t)k * d * sizeof(double));
        for (size_t i = 0; i < n; i++) {
            double *ctr = centers + (size_t)labels[i] * d;
            for (size_t j = 0; j < d; j++) ctr[j] += x[i * d + j];
        }
        for (int c = 0; c < k; c++)
            for (size_t j = 0; j < d; j++) centers[(size_t)c * d + j] /= (double)count[c];
    }
    *iters = it < max_iter ? it + 1 : max_iter;
    double inertia = 0.0;
    for (size_t i = 0; i < n; i++) inertia += dist2(x + i * d, centers + (size_t)labels[i] * d, d);
    return inertia;
}

double qb_kmeans(const double *x, size_t n, size_t d, int k, int restarts, int max_iter,
                 qb_rng *rng, int *labels, double *centers, int *iters)
{
    QB_ASSERT(k >= 1 && (size_t)k <= n && restarts >= 1 && max_iter >= 1);
    double *ctr = xmalloc((size_t)k * d, sizeof(double));
    double *near = xmalloc(n, sizeof(double));
    size_t *count = xmalloc((size_t)k, sizeof(size_t));
    int *lab = xmalloc(n, sizeof(int));
    double best = DBL_MAX;
    int best_iters = 0, have = 0;
    for (int r = 0; r < restarts; r++) {
        int it;
        seed_plusplus(x, n, d, k, rng, ctr, near);
        double inertia = lloyd(x, n, d, k, max_iter, ctr, lab, count, near, &it);
        if (!have || inertia < best) {
            have = 1;
            best = inertia;
            best_iters = it;
            memcpy(labels, lab, n * sizeof(int));
            if (centers) memcpy(centers, ctr, (size_t)k * d * sizeof(double));
        }
    }
    if (iters) *iters = best_iters;
    free(ctr);
    free(near);
    free(count);
    free(lab);
    return best;
}
