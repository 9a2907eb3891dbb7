/* k-means clustering (Lloyd's algorithm with k-means++ seeding and
 * restarts), as Activation Clustering uses it: 2 clusters of a class's
 * reduced activations. */
#ifndef QB_KMEANS_H
#define QB_KMEANS_H

#include <stddef.h>

#include "core/rng.h"

/* Cluster the rows of x (n, d) into k clusters, 1 <= k <= n.
 *
 * Each of `restarts` (>= 1) runs seeds its centers by k-means++ (Arthur &
 * Vassilvitskii 2007: the first uniformly, each next with probability
 * proportional to the squared distance to the nearest chosen one; the
 * plain variant, not sklearn's greedy one), then alternates assignment
 * (nearest center, lower index on ties) and update (cluster means) until
 * no assignment changes or max_iter (>= 1) assignments were made. A
 * cluster left empty takes the point farthest from its own center (as
 * sklearn does), so every cluster is non-empty when the rows are not all
 * identical. The run of lowest inertia is kept (the first on ties).
 *
 * Outputs: labels (n) in [0, k); centers (k, d) or NULL; *iters (or NULL)
 * the kept run's assignment steps (< max_iter: it converged). Returns the
 * kept run's inertia: the sum of squared distances of the rows to their
 * cluster means. Draws from rng only (deterministic given its state). */
double qb_kmeans(const double *x, size_t n, size_t d, int k, int restarts, int max_iter,
                 qb_rng *rng, int *labels, double *centers, int *iters);

#endif
