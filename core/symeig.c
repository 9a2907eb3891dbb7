/* Symmetric eigenpairs in our own code (core/symeig.h), from the textbook
 * algorithms (Golub & Van Loan, Matrix Computations, 4th ed.: 8.3.1
 * Householder tridiagonalisation, 8.4.1 Sturm sequences and bisection,
 * 8.2.2 / 7.6.1 inverse iteration):
 *
 *   1. A = Q T Q^T, T tridiagonal, Q = H_0 H_1 ... H_{d-3} (reflectors).
 *   2. T is split where an off-diagonal entry is below eps * ||T||
 *      (an absolute perturbation inside the reduction's own error), so each
 *      block is unreduced and has distinct eigenvalues.
 *   3. Per block, its largest min(k, m) eigenvalues by bisection on Sturm
 *      counts; the candidates of all blocks are merged, the k largest kept.
 *   4. Each kept eigenvalue's vector by inverse iteration on its block (LU
 *      with partial pivoting of T - lambda I), orthogonalised against the
 *      vectors already found for eigenvalues of the same block within
 *      1e-3 ||T_block|| (modified Gram-Schmidt), then y -> Q y.
 *
 * Cost: 4/3 d^3 for step 1 (the rest is O(k d^2)). Every sum has one
 * accumulator and a fixed order; the loops that gcc vectorises run across
 * independent outputs (core/dkernel.c), so vector code gives the scalar
 * bits. */

/* no a*b+c fused, whatever the global flags (core/dkernel.c) */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "core/symeig.h"

#include <float.h>
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/dkernel.h"
#include "core/xalloc.h"

#define EPS DBL_EPSILON
/* Inverse iterations per eigenvector at most (2-3 are used in practice). */
#define INVIT_MAX 10
/* Eigenvalues of a block closer than this times its norm are a cluster:
 * their vectors are orthogonalised against each other (LAPACK's choice). */
#define CLUSTER_REL 1e-3

/* Householder reduction of a (d, d) (full symmetric storage) to T:
 * diag (d), off (d - 1). Reflector c (c = 0..d-3) acts on entries c+1..d-1
 * as H_c = I - beta[c] v v^T with v stored in row c of a, columns
 * c+1..d-1; beta[c] = 0 means H_c = I. */
static void tridiag_reduce(double *a, size_t d, double *diag, double *off, double *beta,
                           double *p)
{
    for (size_t c = 0; c + 2 < d; c++) {
        size_t m = d - c - 1;
        double *v = a + c * d + c + 1; /* (m) the column below the diagonal */
        diag[c] = a[c * d + c];
        double amax = 0.0;
        for (size_t i = 0; i < m; i++)
            if (fabs(v[i]) > amax) amax = fabs(v[i]);
        double sigma = 0.0;
        for (size_t i = 1; i < m; i++) sigma += (v[i] / amax) * (v[i] / amax);
        if (amax == 0.0 || sigma == 0.0) { /* already tridiagonal here */
            beta[c] = 0.0;
            off[c] = v[0];
            continue;
        }
        for (size_t i = 0; i < m; i++) v[i] /= amax;
        double x0 = v[0], norm = sqrt(x0 * x0 + sigma);
        double alpha = x0 > 0 ? -norm : norm; /* v0 = x0 - alpha without cancellation */
        v[0] = x0 - alpha;
        double b = 2.0 / (v[0] * v[0] + sigma);
        beta[c] = b;
        off[c] = alpha * amax;

        /* B = rows/cols c+1.. of a; p = b B v, w = p - (b/2)(p.v) v */
        double *bm = a + (c + 1) * d + c + 1;
        qb_dkernel_symv(bm, d, m, v, p);
        double pv = 0.0;
        for (size_t i = 0; i < m; i++) {
            p[i] *= b;
            pv += p[i] * v[i];
        }
        double kk = 0.5 * b * pv;
        for (size_t i = 0; i < m; i++) p[i] -= kk * v[i];
        qb_dkernel_syr2(bm, d, m, v, p); /* B -= v w^T + w v^T */
    }
    if (d >= 2) {
        diag[d - 2] = a[(d - 2) * d + d - 2];
        off[d - 2] = a[(d - 2) * d + d - 1];
    }
    diag[d - 1] = a[(d - 1) * d + d - 1];
}

/* y (d) -> Q y, Q = H_0 ... H_{d-3} from tridiag_reduce. */
static void tridiag_back(const double *a, size_t d, const double *beta, double *y)
{
    for (size_t c = d >= 3 ? d - 2 : 0; c-- > 0;) {
        if (beta[c] == 0.0) continue;
        size_t m = d - c - 1;
        const double *v = a + c * d + c + 1;
        double *yy = y + c + 1;
        double s = 0.0;
        for (size_t i = 0; i < m; i++) s += v[i] * yy[i];
        s *= beta[c];
        for (size_t i = 0; i < m; i++) yy[i] -= s * v[i];
    }
}

/* Number of eigenvalues below x of the unreduced tridiagonal block with
 * diagonal dg (m) and squared off-diagonal e2 (m - 1): the negative terms
 * of the Sturm sequence (LDL^T pivots of T - x I). */
static size_t sturm_below(const double *dg, const double *e2, size_t m, double x, double pivmin)
{
    size_t count = 0;
    double q = dg[0] - x;
    if (fabs(q) < pivmin) q = -pivmin;
    count += q < 0;
    for (size_t i = 1; i < m; i++) {
        q = (dg[i] - x) - e2[i - 1] / q;
        if (fabs(q) < pivmin) q = -pivmin;
        count += q < 0;
    }
    return count;
}

/* The eigenvalue of ascending index r of the block, by bisection of
 * [lo, hi] (which holds all its eigenvalues) down to abstol + 2 eps |x|. */
static double bisect(const double *dg, const double *e2, size_t m, size_t r, double lo, double hi,
                     double pivmin, double abstol)
{
    for (int it = 0; it < 200; it++) {
        double mid = lo + 0.5 * (hi - lo);
        double tol = abstol + 2.0 * EPS * fmax(fabs(lo), fabs(hi));
        if (hi - lo <= tol || mid <= lo || mid >= hi) break;
        if (sturm_below(dg, e2, m, mid, pivmin) > r)
            hi = mid;
        else
            lo = mid;
    }
    return lo + 0.5 * (hi - lo);
}

typedef struct eig_cand {
    double val;
    size_t start, m; /* its block: rows start..start+m-1 of T */
} eig_cand;

/* Descending value; equal values by block position: a total order. */
static int cand_cmp(const void *pa, const void *pb)
{
    const eig_cand *a = pa, *b = pb;
    if (a->val != b->val) return a->val > b->val ? -1 : 1;
    return (a->start > b->start) - (a->start < b->start);
}

/* LU with partial pivoting of the (m, m) tridiagonal T - lambda I (diag
 * dg, off e): L's multipliers in dl (m-1) with row swaps piv (m-1), U's
 * diagonals dd (m), du (m-1), du2 (m-2). Pivots below tiny in magnitude are
 * set to +-tiny (the matrix is singular to working precision: that is the
 * point of shifting by an eigenvalue). */
typedef struct tri_lu {
    double *dl, *dd, *du, *du2;
    uint8_t *piv;
} tri_lu;

static void tri_lu_factor(const double *dg, const double *e, size_t m, double lambda, double tiny,
                          tri_lu *f)
{
    for (size_t i = 0; i < m; i++) f->dd[i] = dg[i] - lambda;
    for (size_t i = 0; i + 1 < m; i++) f->dl[i] = f->du[i] = e[i];
    for (size_t i = 0; i + 1 < m; i++) {
        if (i + 2 < m) f->du2[i] = 0.0;
        if (fabs(f->dd[i]) >= fabs(f->dl[i])) {
            f->piv[i] = 0;
            double l = f->dd[i] != 0.0 ? f->dl[i] / f->dd[i] : 0.0;
            f->dl[i] = l;
            f->dd[i + 1] -= l * f->du[i];
        } else { /* swap rows i and i + 1 */
            f->piv[i] = 1;
            double l = f->dd[i] / f->dl[i], t = f->dd[i + 1];
            f->dd[i] = f->dl[i];
            f->dd[i + 1] = f->du[i] - l * t;
            if (i + 2 < m) {
                f->du2[i] = f->du[i + 1];
                f->du[i + 1] = -l * f->du2[i];
            }
            f->du[i] = t;
            f->dl[i] = l;
        }
    }
    for (size_t i = 0; i < m; i++)
        if (fabs(f->dd[i]) < tiny) f->dd[i] = f->dd[i] < 0 ? -tiny : tiny;
}

/* x (m) <- (T - lambda I)^-1 x, up to a positive scale (rescaled when the
 * solution grows past 1e100, so it never overflows). */
static void tri_lu_solve(const tri_lu *f, size_t m, double *x)
{
    for (size_t i = 0; i + 1 < m; i++) {
        if (f->piv[i]) {
            double t = x[i];
            x[i] = x[i + 1];
            x[i + 1] = t;
        }
        x[i + 1] -= f->dl[i] * x[i];
    }
    for (size_t i = m; i-- > 0;) {
        double s = x[i];
        if (i + 1 < m) s -= f->du[i] * x[i + 1];
        if (i + 2 < m) s -= f->du2[i] * x[i + 2];
        x[i] = s / f->dd[i];
        if (fabs(x[i]) > 1e100)
            for (size_t j = 0; j < m; j++) x[j] *= 1e-100;
    }
}

/* ||(T - lambda I) y||_inf on the block. */
static double tri_residual(const double *dg, const double *e, size_t m, double lambda,
                           const double *y)
{
    double r = 0.0;
    for (size_t i = 0; i < m; i++) {
        double s = (dg[i] - lambda) * y[i];
        if (i > 0) s += e[i - 1] * y[i - 1];
        if (i + 1 < m) s += e[i] * y[i + 1];
        if (fabs(s) > r) r = fabs(s);
    }
    return r;
}

static double norm2(const double *x, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += x[i] * x[i];
    return sqrt(s);
}

/* A deterministic start vector in [-1, 1)^m (splitmix64 of seed, i). */
static void start_vector(double *x, size_t m, uint64_t seed)
{
    for (size_t i = 0; i < m; i++) {
        uint64_t z = seed * 0x9E3779B97F4A7C15ull + (uint64_t)(i + 1) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        z ^= z >> 31;
        x[i] = (double)(z >> 11) * 0x1.0p-52 - 1.0;
    }
}

/* The eigenvector y (m) of eigenvalue lambda of the block (dg, e), by
 * inverse iteration, orthogonal to the nclu unit vectors clu[j] (each
 * stored with stride d). Returns the final residual. */
static double block_vector(const double *dg, const double *e, size_t m, double lambda,
                           double bnorm, double *const *clu, size_t nclu, uint64_t seed,
                           tri_lu *f, double *y)
{
    double tiny = EPS * bnorm, tol = 4.0 * (double)m * EPS * bnorm, res = INFINITY;
    tri_lu_factor(dg, e, m, lambda, tiny, f);
    start_vector(y, m, seed);
    int extra = 0;
    for (int it = 0; it < INVIT_MAX && extra < 2; it++) {
        double n0 = norm2(y, m);
        for (size_t i = 0; i < m; i++) y[i] /= n0;
        tri_lu_solve(f, m, y);
        for (size_t j = 0; j < nclu; j++) { /* modified Gram-Schmidt */
            double t = 0.0;
            for (size_t i = 0; i < m; i++) t += clu[j][i] * y[i];
            for (size_t i = 0; i < m; i++) y[i] -= t * clu[j][i];
        }
        double nn = norm2(y, m);
        if (!(nn > 0)) { /* lost to the cluster: restart elsewhere */
            start_vector(y, m, seed + 0x1000u + (uint64_t)it);
            continue;
        }
        for (size_t i = 0; i < m; i++) y[i] /= nn;
        res = tri_residual(dg, e, m, lambda, y);
        if (res <= tol) extra++;
    }
    return res;
}

/* Flip v (d) so that its entry of largest magnitude (first on ties) is
 * positive, after scaling it to unit length. */
static void fix_sign_unit(double *v, size_t d)
{
    double nn = norm2(v, d);
    size_t jmax = 0;
    for (size_t j = 1; j < d; j++)
        if (fabs(v[j]) > fabs(v[jmax])) jmax = j;
    double s = v[jmax] < 0 ? -1.0 / nn : 1.0 / nn;
    for (size_t j = 0; j < d; j++) v[j] *= s;
}

/* The largest min(k, m) eigenvalues of each block of T (diag, off; d),
 * by bisection, merged into cand (at most d of them) in descending order:
 * cand[0..k) are the k largest eigenvalues of T. e2 (d) is workspace. */
static void tridiag_top_values(const double *diag, const double *off, size_t d, size_t k,
                               double tnorm, double *e2, eig_cand *cand)
{
    size_t nc = 0;
    for (size_t s = 0; s < d;) {
        size_t m = 1;
        while (s + m < d && fabs(off[s + m - 1]) > EPS * tnorm) m++;
        const double *dg = diag + s;
        double pivmin = DBL_MIN, gl = INFINITY, gu = -INFINITY;
        for (size_t i = 0; i + 1 < m; i++) {
            e2[i] = off[s + i] * off[s + i];
            pivmin = fmax(pivmin, DBL_MIN * e2[i]);
        }
        for (size_t i = 0; i < m; i++) {
            double rad = (i > 0 ? fabs(off[s + i - 1]) : 0.0) +
                         (i + 1 < m ? fabs(off[s + i]) : 0.0);
            gl = fmin(gl, dg[i] - rad);
            gu = fmax(gu, dg[i] + rad);
        }
        double bn = fmax(fabs(gl), fabs(gu));
        double pad = 2.1 * EPS * bn * (double)m + 4.2 * pivmin;
        size_t want = m < k ? m : k;
        for (size_t r = 0; r < want; r++) {
            double v = m == 1 ? dg[0]
                              : bisect(dg, e2, m, m - 1 - r, gl - pad, gu + pad, pivmin, EPS * bn);
            cand[nc++] = (eig_cand){v, s, m};
        }
        s += m;
    }
    qsort(cand, nc, sizeof *cand, cand_cmp);
}

int qb_symeig_top(double *a, size_t d, size_t k, double *evals, double *evecs, qb_error *err)
{
    QB_ASSERT(d >= 1 && k >= 1 && k <= d);
    for (size_t i = 0; i < d; i++)
        for (size_t j = i; j < d; j++) {
            if (!isfinite(a[i * d + j]))
                return QB_FAIL(err, "eigenpairs of a %zu x %zu matrix: entry (%zu, %zu) is not "
                                    "finite (%g)", d, d, i, j, a[i * d + j]);
            a[j * d + i] = a[i * d + j];
        }
    double *diag = xmalloc(d, sizeof(double)), *off = xcalloc(d, sizeof(double));
    double *beta = xcalloc(d, sizeof(double)), *work = xmalloc(d, sizeof(double));
    tridiag_reduce(a, d, diag, off, beta, work);
    double tnorm = 0.0;
    for (size_t i = 0; i < d; i++) {
        double r = fabs(diag[i]) + (i > 0 ? fabs(off[i - 1]) : 0.0) +
                   (i + 1 < d ? fabs(off[i]) : 0.0);
        if (r > tnorm) tnorm = r;
    }
    eig_cand *cand = xmalloc(d, sizeof *cand);
    tridiag_top_values(diag, off, d, k, tnorm, work, cand);

    /* Inverse iteration per kept eigenvalue, in descending order. */
    double *ty = xcalloc(k * d, sizeof(double)); /* (k, d) vectors of T */
    double **clu = xmalloc(k, sizeof(double *));
    double *shift = xmalloc(k, sizeof(double)); /* (k) the shifts used */
    tri_lu f = {xmalloc(d, sizeof(double)), xmalloc(d, sizeof(double)),
                xmalloc(d, sizeof(double)), xmalloc(d, sizeof(double)), xmalloc(d, 1)};
    int rc = 0;
    for (size_t i = 0; i < k && rc == 0; i++) {
        const eig_cand *c = &cand[i];
        double lambda = c->val;
        evals[i] = shift[i] = lambda;
        double *y = ty + i * d + c->start;
        if (c->m == 1) {
            y[0] = 1.0;
        } else {
            const double *dg = diag + c->start, *e = off + c->start;
            double bnorm = 0.0;
            for (size_t j = 0; j < c->m; j++) {
                double r = fabs(dg[j]) + (j > 0 ? fabs(e[j - 1]) : 0.0) +
                           (j + 1 < c->m ? fabs(e[j]) : 0.0);
                if (r > bnorm) bnorm = r;
            }
            size_t nclu = 0;
            double prev = INFINITY;
            for (size_t j = 0; j < i; j++) {
                if (cand[j].start != c->start) continue;
                prev = shift[j]; /* the closest above, in this block */
                if (evals[j] - lambda <= CLUSTER_REL * bnorm)
                    clu[nclu++] = ty + j * d + c->start;
            }
            /* equal to working precision: nudge apart so the shifted
             * matrices differ (their vectors are orthogonalised anyway) */
            double pert = 10.0 * EPS * fmax(fabs(lambda), EPS * bnorm);
            if (prev - lambda < pert) shift[i] = prev - pert;
            double res = block_vector(dg, e, c->m, shift[i], bnorm, clu, nclu, i, &f, y);
            if (!(res <= sqrt(EPS) * bnorm))
                rc = QB_FAIL(err, "eigenpairs of a %zu x %zu matrix: inverse iteration for "
                                  "eigenvalue %zu (%g) stopped at residual %g",
                             d, d, i, lambda, res);
        }
    }
    for (size_t i = 0; i < k && rc == 0; i++) {
        double *v = evecs + i * d;
        memcpy(v, ty + i * d, d * sizeof(double));
        tridiag_back(a, d, beta, v);
        fix_sign_unit(v, d);
    }
    free(f.dl);
    free(f.dd);
    free(f.du);
    free(f.du2);
    free(f.piv);
    free(clu);
    free(shift);
    free(ty);
    free(cand);
    free(diag);
    free(off);
    free(beta);
    free(work);
    return rc;
}
