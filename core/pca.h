/* Principal axes of a set of rows: the scatter matrix and its top
 * eigenpairs in our own double-precision code (core/symeig.h), every sum
 * in a fixed order, so the axes are the same bits on every x86-64 CPU (no
 * BLAS or LAPACK involved). Used by Activation Clustering (reduction to a
 * few dimensions) and Spectral Signatures (top singular vector and the two
 * largest singular values of a centred class). */
#ifndef QB_PCA_H
#define QB_PCA_H

#include <stddef.h>

#include "core/error.h"

/* The top k principal axes of the rows of x (n, d), n >= 1, 1 <= k <= d.
 *
 * In double precision: mean (d) = column means; Xc = x - mean; the scatter
 * matrix S = Xc^T Xc (d, d) (no 1/(n-1): its eigenvalues are the squared
 * singular values of Xc), each entry summed over the rows in ascending
 * order; its k largest eigenpairs by qb_symeig_top.
 * Outputs (caller-allocated):
 *   mean  (d)
 *   evals (k)     descending eigenvalues of S (= sigma_i^2 of Xc, >= 0:
 *                 round-off negatives are clamped to 0)
 *   evecs (k, d)  row i is the unit axis of evals[i] (= the i-th right
 *                 singular vector of Xc), its sign fixed so that its entry
 *                 of largest magnitude is positive (first such on ties)
 * Returns 0, or -1 with err set when the data are not finite or the
 * eigensolver fails (core/symeig.h). */
int qb_pca_fit(const float *x, size_t n, size_t d, size_t k, double *mean, double *evals,
               double *evecs, qb_error *err);

/* proj (n, k) = (x - mean) evecs^T for rows x (n, d), with mean (d) and
 * evecs (k, d) from qb_pca_fit. */
void qb_pca_project(const float *x, size_t n, size_t d, size_t k, const double *mean,
                    const double *evecs, double *proj);

#endif
