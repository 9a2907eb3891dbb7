#include "report/stats.h"

#include <math.h>
#include <stdlib.h>

#include <gsl/gsl_cdf.h>

#include "core/rng.h"
#include "core/sort.h"
#include "core/xalloc.h"

void qb_stats_wilson(size_t k, size_t n, double level, double *lo, double *hi)
{
    if (n == 0) {
        *lo = *hi = NAN;
        return;
    }
    double z = gsl_cdf_ugaussian_Pinv(0.5 + 0.5 * level);
    double nn = (double)n, p = (double)k / nn, z2 = z * z;
    double centre = (p + z2 / (2.0 * nn)) / (1.0 + z2 / nn);
    double half = z / (1.0 + z2 / nn) * sqrt(p * (1.0 - p) / nn + z2 / (4.0 * nn * nn));
    *lo = centre - half;
    *hi = centre + half;
    /* the exact ends: rounding must not push 0/n or n/n off their bound */
    if (k == 0 || *lo < 0.0) *lo = 0.0;
    if (k == n || *hi > 1.0) *hi = 1.0;
}

void qb_stats_mean_std(const double *x, size_t n, double *mean, double *std)
{
    if (n == 0) {
        *mean = *std = NAN;
        return;
    }
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += x[i];
    double m = s / (double)n, ss = 0.0;
    for (size_t i = 0; i < n; i++) ss += (x[i] - m) * (x[i] - m);
    *mean = m;
    *std = n > 1 ? sqrt(ss / (double)(n - 1)) : NAN;
}

static double percentile_sorted(const double *m, size_t n, double q)
{
    double h = (double)(n - 1) * q;
    size_t i = (size_t)floor(h);
    if (i + 1 >= n) return m[n - 1];
    return m[i] + (h - (double)i) * (m[i + 1] - m[i]);
}

void qb_stats_bootstrap_mean(const double *x, size_t n, size_t n_resamples, uint64_t seed,
                             double level, double *lo, double *hi)
{
    if (n == 0 || n_resamples == 0) {
        *lo = *hi = NAN;
        return;
    }
    double *means = xmalloc(n_resamples, sizeof *means); /* (n_resamples) */
    qb_rng rng;
    qb_rng_seed(&rng, seed);
    for (size_t b = 0; b < n_resamples; b++) {
        double s = 0.0;
        for (size_t i = 0; i < n; i++) s += x[qb_rng_below(&rng, (uint32_t)n)];
        means[b] = s / (double)n;
    }
    qsort(means, n_resamples, sizeof *means, qb_cmp_double);
    double a = 0.5 * (1.0 - level);
    *lo = percentile_sorted(means, n_resamples, a);
    *hi = percentile_sorted(means, n_resamples, 1.0 - a);
    free(means);
}

double qb_stats_mcnemar_exact(size_t b, size_t c)
{
    size_t m = b + c;
    if (m == 0) return 1.0;
    size_t k = b < c ? b : c;
    double p = 2.0 * gsl_cdf_binomial_P((unsigned)k, 0.5, (unsigned)m);
    return p < 1.0 ? p : 1.0;
}

void qb_stats_paired_t(const double *x, const double *y, size_t n, double level, qb_paired_t *out)
{
    out->n = n;
    out->mean_diff = out->sd_diff = out->t = out->df = out->p = out->lo = out->hi = NAN;
    if (n == 0) return;
    double *d = xmalloc(n, sizeof *d); /* (n) */
    for (size_t i = 0; i < n; i++) d[i] = y[i] - x[i];
    qb_stats_mean_std(d, n, &out->mean_diff, &out->sd_diff);
    free(d);
    if (n < 2) return;
    out->df = (double)(n - 1);
    if (out->sd_diff == 0.0) {
        out->t = out->mean_diff == 0.0 ? 0.0 : copysign(INFINITY, out->mean_diff);
        out->p = out->mean_diff == 0.0 ? 1.0 : 0.0;
        out->lo = out->hi = out->mean_diff;
        return;
    }
    double se = out->sd_diff / sqrt((double)n);
    out->t = out->mean_diff / se;
    out->p = 2.0 * gsl_cdf_tdist_Q(fabs(out->t), out->df);
    if (out->p > 1.0) out->p = 1.0;
    double tq = gsl_cdf_tdist_Pinv(0.5 + 0.5 * level, out->df);
    out->lo = out->mean_diff - tq * se;
    out->hi = out->mean_diff + tq * se;
}
