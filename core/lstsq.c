/* Householder QR least squares (Golub & Van Loan, Matrix Computations,
 * 4th ed., 5.3.3): A = Q R column by column, b <- Q^T b, then R x = (Q^T
 * b)[0..n) by back substitution. Sizes here are tiny (forensics: m <= 10,
 * n = 3), so there is no blocking; what matters is a fixed order. */
/* no a*b+c fused, whatever the global flags (core/dkernel.c) */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "core/lstsq.h"

#include <float.h>
#include <math.h>

int qb_lstsq_solve(double *a, size_t m, size_t n, double *b, double *x, qb_error *err)
{
    QB_ASSERT(m >= n && n >= 1);
    double anorm = 0.0; /* largest column 2-norm */
    for (size_t c = 0; c < n; c++) {
        double s = 0.0;
        for (size_t i = 0; i < m; i++) s += a[i * n + c] * a[i * n + c];
        if (!isfinite(s)) return QB_FAIL(err, "least squares: column %zu is not finite", c);
        if (sqrt(s) > anorm) anorm = sqrt(s);
    }
    for (size_t i = 0; i < m; i++)
        if (!isfinite(b[i])) return QB_FAIL(err, "least squares: b[%zu] is not finite", i);
    double tol = (double)m * DBL_EPSILON * anorm;
    for (size_t j = 0; j < n; j++) {
        /* reflector for column j below the diagonal: v = x - alpha e_0 */
        double rest = 0.0;
        for (size_t i = j + 1; i < m; i++) rest += a[i * n + j] * a[i * n + j];
        double x0 = a[j * n + j], norm = sqrt(x0 * x0 + rest);
        if (!(norm > tol))
            return QB_FAIL(err, "least squares: the %zu x %zu matrix is rank-deficient "
                                "(column %zu)", m, n, j);
        double alpha = x0 > 0 ? -norm : norm; /* v_0 = x0 - alpha without cancellation */
        double v0 = x0 - alpha;
        double vtv = v0 * v0 + rest;
        a[j * n + j] = v0; /* v lives in column j, rows j.. */
        for (size_t c = j + 1; c <= n; c++) { /* c == n: the right-hand side */
            double s = 0.0;
            for (size_t i = j; i < m; i++) s += a[i * n + j] * (c < n ? a[i * n + c] : b[i]);
            s = 2.0 * s / vtv;
            for (size_t i = j; i < m; i++) {
                double *t = c < n ? &a[i * n + c] : &b[i];
                *t -= s * a[i * n + j];
            }
        }
        a[j * n + j] = alpha; /* R_jj (the rest of v is left below it) */
    }
    for (size_t j = n; j-- > 0;) {
        double s = b[j];
        for (size_t c = j + 1; c < n; c++) s -= a[j * n + c] * x[c];
        x[j] = s / a[j * n + j];
    }
    return 0;
}
