/* The double-precision kernels of PCA and the eigensolver (core/pca.c,
 * core/symeig.c), in plain C compiled three times (baseline x86-64, AVX2,
 * AVX-512F) and picked per CPU at run time; QBLIND_SCALAR=1 in the
 * environment forces the baseline build, QBLIND_DKERNEL=avx2 the AVX2 one
 * (for the tests; ignored where the CPU lacks AVX2). Every output entry is one
 * accumulator that takes its terms in a fixed order, the vector code runs
 * across independent entries only, and a*b+c is never fused (this file
 * turns FP contraction off for itself), so all three builds give the same
 * bits: the baseline is the reference and tests/test_linalg_bits.c checks
 * the others against it. */
#ifndef QB_DKERNEL_H
#define QB_DKERNEL_H

#include <stddef.h>

/* Columns per packed panel of the scatter kernel. */
#define QB_DKERNEL_PANEL 8

/* s (dp, dp), dp = np * QB_DKERNEL_PANEL, row-major: for every panel
 * pair jp <= lp and every t, u < QB_DKERNEL_PANEL, with j = jp * P + t,
 * l = lp * P + u:
 *     s[j][l] = (...((s[j][l] + x_0j x_0l) + x_1j x_1l) + ...) + x_(b-1)j x_(b-1)l
 * where x_ij = pk[(p * b + i) * P + t] for column j = p * P + t of b rows
 * packed as pk (np, b, P). Entries with jp > lp are not touched. */
void qb_dkernel_scatter(const double *pk, size_t b, size_t np, double *s);

/* p (m) = B v, B (m, m) symmetric with row stride ld: p[i] = sum over j
 * ascending of B[j][i] v[j] (= (B v)[i] as B is symmetric). */
void qb_dkernel_symv(const double *bm, size_t ld, size_t m, const double *v, double *p);

/* B (m, m), row stride ld: B[i][j] -= v[i] w[j] + w[i] v[j] (stays
 * exactly symmetric: the two products round alike in either order). */
void qb_dkernel_syr2(double *bm, size_t ld, size_t m, const double *v, const double *w);

/* The build the kernels run: "avx512", "avx2" or "scalar". */
const char *qb_dkernel_path(void);

#endif
