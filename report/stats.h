/* Statistics for `qblind report`: Wilson intervals, a seeded percentile
 * bootstrap of the mean, McNemar's exact test and the paired t-test.
 *
 * Every distribution function comes from GSL (Debian libgsl-dev): no
 * special function is written here. Everything is deterministic: the
 * bootstrap draws from a qb_rng (core/rng.h) seeded by the caller. */
#ifndef QB_REPORT_STATS_H
#define QB_REPORT_STATS_H

#include <stddef.h>
#include <stdint.h>

/* Two-sided 95% intervals everywhere. */
#define QB_REPORT_LEVEL 0.95
/* Bootstrap resamples used by the report. */
#define QB_REPORT_BOOT_RESAMPLES 10000

/* Wilson score interval for k successes in n trials at confidence
 * `level` (z = the standard normal's (1 + level)/2 quantile). n = 0 gives
 * [NaN, NaN]. k <= n. */
void qb_stats_wilson(size_t k, size_t n, double level, double *lo, double *hi);

/* Mean and sample standard deviation (divisor n - 1) of x[0..n).
 * n = 0: both NaN; n = 1: std NaN. */
void qb_stats_mean_std(const double *x, size_t n, double *mean, double *std);

/* Percentile bootstrap interval of the mean of x[0..n) at `level`.
 * n_resamples resamples of size n, drawn with replacement by
 * qb_rng_below from a qb_rng seeded with `seed` (resample b draws its n
 * indices in order, b = 0, 1, ...); the bound for probability q is
 * numpy.percentile's default ("linear"): the sorted resample means m at
 * position h = (B - 1) q, m[floor h] + (h - floor h)(m[floor h + 1] - m[floor h]).
 * n = 0 or n_resamples = 0: [NaN, NaN]. */
void qb_stats_bootstrap_mean(const double *x, size_t n, size_t n_resamples, uint64_t seed,
                             double level, double *lo, double *hi);

/* McNemar's exact test on the discordant pairs: b pairs positive only
 * under the first condition, c only under the second. Two-sided
 * p = min(1, 2 P(X <= min(b, c))), X ~ Binomial(b + c, 1/2) (what
 * scipy.stats.binomtest(min(b, c), b + c, 0.5) gives). b + c = 0: p = 1. */
double qb_stats_mcnemar_exact(size_t b, size_t c);

/* Paired t-test of d = y - x on n pairs: t = mean(d) / (sd(d) / sqrt(n)),
 * df = n - 1, two-sided p = 2 Q_t(|t|; df) (scipy.stats.ttest_rel(y, x)).
 * Also the level-confidence t interval of mean(d). Conventions where the
 * statistic is undefined: n < 2: everything NaN but mean_diff; sd(d) = 0:
 * p = 1 when mean(d) = 0 (no difference at all), p = 0 otherwise, with a
 * zero-width interval (scipy returns NaN / 0 there). */
typedef struct qb_paired_t {
    size_t n;
    double mean_diff, sd_diff, t, df, p, lo, hi;
} qb_paired_t;
void qb_stats_paired_t(const double *x, const double *y, size_t n, double level, qb_paired_t *out);

#endif
