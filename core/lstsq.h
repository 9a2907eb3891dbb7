/* Linear least squares min ||A x - b||_2 for a small, tall, full-rank A,
 * by our own Householder QR in double precision (no LAPACK): every sum in
 * a fixed order, so x is a pure function of the input bits on any x86-64
 * CPU. Used by the forensics' quadratic fit (defenses/forensics.c). */
#ifndef QB_LSTSQ_H
#define QB_LSTSQ_H

#include <stddef.h>

#include "core/error.h"

/* x (n) = argmin ||A x - b|| for A (m, n) row-major, m >= n >= 1.
 * a and b (m) are overwritten (R and Q^T b). Returns 0, or -1 with err set
 * when A is rank-deficient to working precision (a diagonal entry of R at
 * most m * eps times A's largest column norm) or holds a non-finite
 * value. */
int qb_lstsq_solve(double *a, size_t m, size_t n, double *b, double *x, qb_error *err);

#endif
