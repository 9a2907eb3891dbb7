/* The silhouette coefficient of a clustering (Rousseeuw 1987), the
 * separation measure of Activation Clustering. */
#ifndef QB_SILHOUETTE_H
#define QB_SILHOUETTE_H

#include <stddef.h>

#include "core/rng.h"

/* Mean silhouette of the rows of x (n, d) clustered by labels (n) in
 * [0, k), with Euclidean distances, exactly (all n (n - 1) / 2 pairs, in
 * double): for row i with a = mean distance to the other rows of its
 * cluster and b = the smallest mean distance to the rows of another
 * cluster, s_i = (b - a) / max(a, b); s_i = 0 for a row alone in its
 * cluster or when a = b = 0 (sklearn.metrics.silhouette_score's
 * conventions). Returns NaN when the number of non-empty clusters is not
 * in [2, n - 1] (where sklearn raises). Time O(n^2 d), memory O(n (d + k)). */
double qb_silhouette(const double *x, size_t n, size_t d, const int *labels, int k);

/* As qb_silhouette, but when n > max_n (>= 2) the score is computed on
 * max_n rows drawn uniformly without replacement from rng (the
 * `sample_size` of sklearn.metrics.silhouette_score): an estimate, to
 * bound the quadratic cost. Draws from rng only when it subsamples. */
double qb_silhouette_sampled(const double *x, size_t n, size_t d, const int *labels, int k,
                             size_t max_n, qb_rng *rng);

#endif
