/* Our own linear algebra (core/symeig.c, core/lstsq.c, core/pca.c):
 * eigenpairs against hand-computed cases (diagonal, the 2x2 closed form,
 * repeated eigenvalues, a rank-deficient scatter matrix, Wilkinson's W21+
 * with its nearly equal pairs), against an independent cyclic Jacobi on
 * random matrices, with orthonormality and residual bounds; least squares
 * against closed forms. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/lstsq.h"
#include "core/pca.h"
#include "core/rng.h"
#include "core/symeig.h"
#include "core/xalloc.h"
#include "tests/testutil.h"

#define EPS DBL_EPSILON

static void assert_close(double got, double want, double tol)
{
    if (!(fabs(got - want) <= tol)) {
        print_error("got %.17g, want %.17g (tol %g)\n", got, want, tol);
        fail();
    }
}

/* max |entry| of a (d, d): a norm within a factor d of the 2-norm */
static double max_abs(const double *a, size_t d)
{
    double m = 0.0;
    for (size_t i = 0; i < d * d; i++) m = fmax(m, fabs(a[i]));
    return m;
}

/* The checks every solution must pass, on the original matrix a (d, d):
 * descending eigenvalues, unit orthogonal vectors (|V V^T - I| <= 8 d eps),
 * residuals ||A v - l v||_inf <= 8 d eps ||A||, sign convention. */
static void check_pairs(const double *a, size_t d, size_t k, const double *ev,
                        const double *vec)
{
    double anorm = fmax(max_abs(a, d) * (double)d, DBL_MIN);
    for (size_t i = 0; i + 1 < k; i++) assert_true(ev[i] >= ev[i + 1]);
    for (size_t i = 0; i < k; i++) {
        for (size_t j = 0; j <= i; j++) {
            double s = 0.0;
            for (size_t t = 0; t < d; t++) s += vec[i * d + t] * vec[j * d + t];
            assert_close(s, i == j ? 1.0 : 0.0, 8.0 * (double)d * EPS);
        }
        for (size_t r = 0; r < d; r++) {
            double s = 0.0;
            for (size_t t = 0; t < d; t++) s += a[r * d + t] * vec[i * d + t];
            assert_close(s, ev[i] * vec[i * d + r], 8.0 * (double)d * EPS * anorm);
        }
        size_t jmax = 0;
        for (size_t t = 1; t < d; t++)
            if (fabs(vec[i * d + t]) > fabs(vec[i * d + jmax])) jmax = t;
        assert_true(vec[i * d + jmax] > 0);
    }
}

/* qb_symeig_top on a copy of a (d, d); the pairs checked. */
static void solve(const double *a, size_t d, size_t k, double *ev, double *vec)
{
    double *w = xmalloc(d * d, sizeof(double));
    memcpy(w, a, d * d * sizeof(double));
    qb_error err;
    int rc = qb_symeig_top(w, d, k, ev, vec, &err);
    if (rc) print_error("%s\n", err.msg);
    assert_int_equal(rc, 0);
    free(w);
    check_pairs(a, d, k, ev, vec);
}

/* A diagonal matrix: its entries, sorted, with unit axes; equal entries in
 * the order of their position. Exact. */
static void test_diagonal(void **state)
{
    (void)state;
    const double dg[5] = {3, -1, 7, 0, 7};
    double a[25] = {0}, ev[5], vec[25];
    for (int i = 0; i < 5; i++) a[i * 5 + i] = dg[i];
    solve(a, 5, 5, ev, vec);
    const double want[5] = {7, 7, 3, 0, -1};
    const int axis[5] = {2, 4, 0, 3, 1};
    for (int i = 0; i < 5; i++) {
        assert_true(ev[i] == want[i]);
        for (int j = 0; j < 5; j++) assert_true(vec[i * 5 + j] == (j == axis[i] ? 1.0 : 0.0));
    }
    /* k < d: the largest only; a 1 x 1 matrix */
    solve(a, 5, 2, ev, vec);
    assert_true(ev[0] == 7 && ev[1] == 7);
    double one = -2.5, e1, v1;
    solve(&one, 1, 1, &e1, &v1);
    assert_true(e1 == -2.5 && v1 == 1.0);
}

/* [[p, q], [q, r]]: l = (p + r)/2 +- sqrt(((p - r)/2)^2 + q^2), the vector
 * of l proportional to (q, l - p). */
static void test_2x2_closed_form(void **state)
{
    (void)state;
    const double cases[][3] = {{2, 1, 2}, {1, 2, 4}, {-3, 0.5, 10}, {1e6, 1e-3, 1e6 + 1},
                               {0, 1, 0}, {5, -7, -1}};
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        double p = cases[c][0], q = cases[c][1], r = cases[c][2];
        double a[4] = {p, q, q, r}, ev[2], vec[4];
        solve(a, 2, 2, ev, vec);
        double h = 0.5 * (p - r), rad = sqrt(h * h + q * q), mid = 0.5 * (p + r);
        double scale = fmax(fabs(p), fmax(fabs(q), fabs(r)));
        assert_close(ev[0], mid + rad, 8 * EPS * scale);
        assert_close(ev[1], mid - rad, 8 * EPS * scale);
        for (int i = 0; i < 2; i++) {
            /* (q, l - p) and (l - r, q) are the same direction; take the
             * larger for accuracy */
            double l = i == 0 ? mid + rad : mid - rad, x = q, y = l - p;
            if (fabs(l - r) > fabs(y)) {
                x = l - r;
                y = q;
            }
            double nn = sqrt(x * x + y * y), sg = fabs(x) >= fabs(y) ? (x > 0 ? 1 : -1)
                                                                    : (y > 0 ? 1 : -1);
            assert_close(vec[i * 2], sg * x / nn, 1e-14);
            assert_close(vec[i * 2 + 1], sg * y / nn, 1e-14);
        }
    }
}

/* A = H diag(l) H, H = I - 2 u u^T / u^T u a reflection (symmetric,
 * orthogonal): eigenvalues l, eigenvectors the columns of H. */
static void reflected(const double *l, size_t d, uint64_t seed, double *a, double *h)
{
    qb_rng r;
    qb_rng_seed(&r, seed);
    double *u = xmalloc(d, sizeof(double)), uu = 0.0;
    for (size_t i = 0; i < d; i++) {
        u[i] = qb_rng_normal(&r);
        uu += u[i] * u[i];
    }
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j < d; j++) h[i * d + j] = (i == j) - 2.0 * u[i] * u[j] / uu;
    for (size_t i = 0; i < d; i++)
        for (size_t j = 0; j < d; j++) {
            double s = 0.0;
            for (size_t t = 0; t < d; t++) s += h[i * d + t] * l[t] * h[t * d + j];
            a[i * d + j] = s;
        }
    for (size_t i = 0; i < d; i++) /* exactly symmetric */
        for (size_t j = i + 1; j < d; j++) a[j * d + i] = a[i * d + j];
    free(u);
}

/* A triple and a double eigenvalue: the values, and every vector of the
 * triple inside its eigenspace (span of H's first three columns). */
static void test_repeated(void **state)
{
    (void)state;
    enum { D = 7 };
    const double l[D] = {5, 5, 5, 1, 0, 0, -2};
    double a[D * D], h[D * D], ev[D], vec[D * D];
    reflected(l, D, 11, a, h);
    solve(a, D, D, ev, vec);
    const double want[D] = {5, 5, 5, 1, 0, 0, -2};
    for (int i = 0; i < D; i++) assert_close(ev[i], want[i], 64 * EPS * 5);
    for (int i = 0; i < 3; i++) {
        double in = 0.0;
        for (int c = 0; c < 3; c++) {
            double s = 0.0;
            for (int t = 0; t < D; t++) s += h[t * D + c] * vec[i * D + t];
            in += s * s;
        }
        assert_close(in, 1.0, 1e-13);
    }
    /* the identity: one eigenvalue, any orthonormal basis */
    double id[16] = {1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1}, e4[4], v4[16];
    solve(id, 4, 4, e4, v4);
    for (int i = 0; i < 4; i++) assert_true(e4[i] == 1.0);
}

/* Three rows in 12 dimensions: the centred scatter matrix has rank 2. Its
 * eigenvalues sum to its trace, all but two are round-off, and the
 * pairs pass the bounds against the scatter matrix computed here. */
static void test_rank_deficient_scatter(void **state)
{
    (void)state;
    enum { N = 3, D = 12 };
    qb_rng r;
    qb_rng_seed(&r, 5);
    float *x = qb_test_random_floats(&r, N * D, -2.0f, 3.0f);
    double mean[D], ev[D], vec[D * D], s[D * D];
    qb_error err;
    assert_int_equal(qb_pca_fit(x, N, D, D, mean, ev, vec, &err), 0);
    double tr = 0.0;
    for (int i = 0; i < D; i++)
        for (int j = 0; j < D; j++) {
            double acc = 0.0;
            for (int t = 0; t < N; t++)
                acc += ((double)x[t * D + i] - mean[i]) * ((double)x[t * D + j] - mean[j]);
            s[i * D + j] = acc;
            if (i == j) tr += acc;
        }
    check_pairs(s, D, D, ev, vec);
    assert_true(ev[1] > 1e-3 * ev[0]);
    for (int i = 2; i < D; i++) {
        assert_true(ev[i] >= 0.0); /* clamped */
        assert_true(ev[i] <= 64 * D * EPS * ev[0]);
    }
    assert_close(ev[0] + ev[1], tr, 64 * EPS * tr);
    free(x);
}

/* Wilkinson's W21+ (diagonal |10 - i|, off-diagonal 1): its largest
 * eigenvalues come in pairs that agree to ~1e-14 (10.7461941829033...);
 * inverse iteration must still give orthogonal vectors. */
static void test_wilkinson(void **state)
{
    (void)state;
    enum { D = 21 };
    double a[D * D] = {0}, ev[D], vec[D * D];
    for (int i = 0; i < D; i++) {
        a[i * D + i] = fabs(10.0 - i);
        if (i + 1 < D) a[i * D + i + 1] = a[(i + 1) * D + i] = 1.0;
    }
    solve(a, D, D, ev, vec);
    assert_close(ev[0], 10.746194182903393, 1e-13);
    assert_close(ev[1], 10.746194182903322, 1e-13);
    assert_true(ev[0] - ev[1] < 1e-12);
    assert_close(ev[2], 9.210678647361332, 1e-13);
}

/* Cyclic Jacobi (Golub & Van Loan 8.5.3), the test's independent oracle:
 * the eigenvalues of a (d, d), overwritten, into w (unsorted). */
static void jacobi_values(double *a, size_t d, double *w)
{
    for (int sweep = 0; sweep < 60; sweep++) {
        double off = 0.0;
        for (size_t p = 0; p < d; p++)
            for (size_t q = p + 1; q < d; q++) off += a[p * d + q] * a[p * d + q];
        if (off == 0.0) break;
        for (size_t p = 0; p < d; p++)
            for (size_t q = p + 1; q < d; q++) {
                double apq = a[p * d + q];
                if (apq == 0.0) continue;
                double tau = (a[q * d + q] - a[p * d + p]) / (2.0 * apq);
                double t = (tau >= 0 ? 1.0 : -1.0) / (fabs(tau) + sqrt(1.0 + tau * tau));
                double c = 1.0 / sqrt(1.0 + t * t), s = t * c;
                for (size_t k = 0; k < d; k++) { /* A <- J^T A J */
                    double akp = a[k * d + p], akq = a[k * d + q];
                    a[k * d + p] = c * akp - s * akq;
                    a[k * d + q] = s * akp + c * akq;
                }
                for (size_t k = 0; k < d; k++) {
                    double apk = a[p * d + k], aqk = a[q * d + k];
                    a[p * d + k] = c * apk - s * aqk;
                    a[q * d + k] = s * apk + c * aqk;
                }
            }
    }
    for (size_t i = 0; i < d; i++) w[i] = a[i * d + i];
}

static int desc(const void *pa, const void *pb)
{
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a < b) - (a > b);
}

/* Random symmetric matrices of several sizes, and a clustered spectrum
 * (eigenvalues 1 + i * 1e-9): eigenvalues equal Jacobi's to 1e-12 ||A||,
 * the pairs pass the bounds, k < d gives the first k of k = d. */
static void test_random_vs_jacobi(void **state)
{
    (void)state;
    const size_t sizes[] = {2, 3, 5, 17, 40, 64};
    qb_rng r;
    qb_rng_seed(&r, 21);
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0] * 2; s++) {
        size_t d = sizes[s / 2];
        double *a = xmalloc(d * d, sizeof(double)), *b = xmalloc(d * d, sizeof(double));
        double *ev = xmalloc(d, sizeof(double)), *vec = xmalloc(d * d, sizeof(double));
        double *w = xmalloc(d, sizeof(double)), *h = xmalloc(d * d, sizeof(double));
        if (s % 2 == 0) {
            for (size_t i = 0; i < d; i++)
                for (size_t j = i; j < d; j++) a[i * d + j] = a[j * d + i] = qb_rng_normal(&r);
        } else {
            for (size_t i = 0; i < d; i++) w[i] = 1.0 + (double)i * 1e-9;
            reflected(w, d, 100 + s, a, h);
        }
        solve(a, d, d, ev, vec);
        memcpy(b, a, d * d * sizeof(double));
        jacobi_values(b, d, w);
        qsort(w, d, sizeof(double), desc);
        double anorm = max_abs(a, d) * (double)d;
        for (size_t i = 0; i < d; i++) assert_close(ev[i], w[i], 1e-12 * anorm);
        size_t k = d / 3 + 1;
        double *ek = xmalloc(k, sizeof(double)), *vk = xmalloc(k * d, sizeof(double));
        solve(a, d, k, ek, vk);
        for (size_t i = 0; i < k; i++) assert_true(ek[i] == ev[i]);
        free(ek);
        free(vk);
        free(a);
        free(b);
        free(ev);
        free(vec);
        free(w);
        free(h);
    }
}

static void test_nonfinite(void **state)
{
    (void)state;
    double a[4] = {1, NAN, NAN, 1}, ev[1], vec[2];
    qb_error err;
    assert_int_equal(qb_symeig_top(a, 2, 1, ev, vec, &err), -1);
    qb_test_assert_msg_has(&err, "not finite");
    float x[4] = {1, 2, INFINITY, 4};
    double mean[2];
    assert_int_equal(qb_pca_fit(x, 2, 2, 1, mean, ev, vec, &err), -1);
    qb_test_assert_msg_has(&err, "PCA: ");
}

/* Least squares: an exact quadratic is recovered; a line through three
 * points equals the closed form; the forensics' shape (10 x 3) equals the
 * normal equations solved by Cramer's rule; rank deficiency fails. */
static void test_lstsq(void **state)
{
    (void)state;
    qb_error err;
    double a[30], b[10], x[3];
    for (int i = 0; i < 6; i++) {
        double c = -0.3 + 0.1 * i;
        a[3 * i] = 1, a[3 * i + 1] = c, a[3 * i + 2] = c * c;
        b[i] = 0.5 - 2.0 * c + 3.0 * c * c;
    }
    assert_int_equal(qb_lstsq_solve(a, 6, 3, b, x, &err), 0);
    assert_close(x[0], 0.5, 1e-14);
    assert_close(x[1], -2.0, 1e-13);
    assert_close(x[2], 3.0, 1e-12);

    /* (0,0), (1,1), (2,3): slope 3/2, intercept -1/6 */
    double l[6] = {1, 0, 1, 1, 1, 2}, y[3] = {0, 1, 3}, c2[2];
    assert_int_equal(qb_lstsq_solve(l, 3, 2, y, c2, &err), 0);
    assert_close(c2[0], -1.0 / 6.0, 4 * EPS);
    assert_close(c2[1], 1.5, 8 * EPS);

    qb_rng r;
    qb_rng_seed(&r, 9);
    double g[9] = {0}, rhs[3] = {0}, keep[30], yk[10];
    for (int i = 0; i < 10; i++) {
        double c = (i < 5 ? -0.30 : 0.10) + 0.05 * (i % 5), row[3] = {1, c, c * c};
        yk[i] = 0.55 + 0.02 * qb_rng_normal(&r);
        for (int p = 0; p < 3; p++) {
            keep[3 * i + p] = row[p];
            rhs[p] += row[p] * yk[i];
            for (int q = 0; q < 3; q++) g[3 * p + q] += row[p] * row[q];
        }
    }
    memcpy(a, keep, sizeof keep);
    memcpy(b, yk, sizeof yk);
    assert_int_equal(qb_lstsq_solve(a, 10, 3, b, x, &err), 0);
    double det = g[0] * (g[4] * g[8] - g[5] * g[7]) - g[1] * (g[3] * g[8] - g[5] * g[6]) +
                 g[2] * (g[3] * g[7] - g[4] * g[6]);
    for (int p = 0; p < 3; p++) {
        double m[9];
        memcpy(m, g, sizeof m);
        for (int q = 0; q < 3; q++) m[3 * q + p] = rhs[q];
        double dp = m[0] * (m[4] * m[8] - m[5] * m[7]) - m[1] * (m[3] * m[8] - m[5] * m[6]) +
                    m[2] * (m[3] * m[7] - m[4] * m[6]);
        assert_close(x[p], dp / det, 1e-9 * (1 + fabs(x[p])));
    }

    double dup[6] = {1, 1, 2, 2, 3, 3}, yd[3] = {1, 2, 3};
    assert_int_equal(qb_lstsq_solve(dup, 3, 2, yd, c2, &err), -1);
    qb_test_assert_msg_has(&err, "rank-deficient");
}

int main(void)
{
    return qb_test_run_group(cmocka_unit_test(test_diagonal),
                             cmocka_unit_test(test_2x2_closed_form),
                             cmocka_unit_test(test_repeated),
                             cmocka_unit_test(test_rank_deficient_scatter),
                             cmocka_unit_test(test_wilkinson),
                             cmocka_unit_test(test_random_vs_jacobi),
                             cmocka_unit_test(test_nonfinite), cmocka_unit_test(test_lstsq));
}
