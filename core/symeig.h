/* The largest eigenpairs of a real symmetric matrix, in our own double-
 * precision code (no LAPACK): Householder tridiagonalisation, bisection on
 * Sturm counts for the eigenvalues, inverse iteration for the eigenvectors
 * of the tridiagonal matrix, back-transformed through the reflectors.
 *
 * Every sum runs in a fixed order in plain C (no FMA contraction: the
 * build does not enable it for these files), so the result is a pure
 * function of the input bits on any x86-64 CPU, whatever BLAS is loaded.
 * Accuracy is LAPACK's class: eigenvalues within a small multiple of
 * eps * ||A|| of the exact ones, residuals ||A v - l v|| of the same
 * order, eigenvectors orthonormal to a small multiple of eps * n (closer
 * eigenvalues are orthogonalised against each other explicitly). */
#ifndef QB_SYMEIG_H
#define QB_SYMEIG_H

#include <stddef.h>

#include "core/error.h"

/* The k largest eigenpairs of the symmetric matrix a (d, d), row-major,
 * d >= 1, 1 <= k <= d. Only the upper triangle (j >= i) of a is read; a is
 * overwritten (it is the workspace of the reduction).
 * Outputs (caller-allocated):
 *   evals (k)     eigenvalues, descending (equal ones in a fixed order)
 *   evecs (k, d)  row i is the unit eigenvector of evals[i], its sign
 *                 fixed so that its entry of largest magnitude is
 *                 positive (the first such on ties)
 * Returns 0, or -1 with err set when an entry of a is not finite or inverse
 * iteration does not reach a small residual (not seen on finite input). */
int qb_symeig_top(double *a, size_t d, size_t k, double *evals, double *evecs, qb_error *err);

#endif
