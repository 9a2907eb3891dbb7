/* STRIP (Gao et al., ACSAC 2019), run on the deployed model.
 *
 * Data (consecutive slices of the defender's pool, qb_defense_clean_split):
 *   pool[0, n_overlay)                       overlay pool (clean images that
 *                                            are superimposed)
 *   pool[n_overlay, + n_calib)               calibration split: the threshold
 *   pool[n_overlay + n_calib, + n_frr)       FRR split: the false rejection
 *                                            rate is measured on images the
 *                                            threshold never saw
 *   pool[eval_from..), true label != target  the first n_trig of them with
 *                                            in->trigger stamped (uint8, as
 *                                            poisoning does): triggered inputs
 * Every input gets n overlays drawn from the overlay pool (with
 * replacement) by an rng seeded from the task: qb_seed_derive(in->seed,
 * "strip-overlay-calib" / "-frr" / "-trig"), one stream per split so a
 * split's draws do not depend on the other splits' sizes.
 *
 * Decision: threshold = qb_strip_threshold(calibration entropies, frr =
 * 0.01), an input is flagged when its entropy is below it; FRR on the FRR
 * split, TPR on the triggered inputs, AUROC of triggered vs FRR-split
 * entropies. detected = YES iff TPR >= 0.5 (docs/DESIGN.md), for backdoored and
 * clean models alike: on a clean model in->trigger is the probe trigger and
 * a YES is a false positive.
 *
 * The original code (garrisongys/STRIP) sets the threshold from a normal
 * distribution fitted to the clean entropies (scipy.stats.norm.ppf(0.01,
 * mu, sigma)); the issue asks for the empirical quantile, which does not
 * assume normality. The normal-fit threshold and its FRR/TPR are recorded
 * too (strip.threshold_normal, strip.frr_normal, strip.tpr_normal) but do
 * not enter `detected`.
 *
 * Details: strip.threshold, strip.frr, strip.tpr, strip.auroc,
 * strip.frr_calib (FRR on the calibration split itself), strip.entropy_clean
 * (FRR split, n_frr), strip.entropy_trig (n_trig), and the normal-fit
 * triple above. */
#include "defenses/strip.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attacks/poison.h"
#include "core/rng.h"
#include "core/sort.h"
#include "core/xalloc.h"
#include "defenses/defense.h"
#include "defenses/verdict.h"

/* STRIP's decision: TPR at the 1%-FRR threshold (docs/DESIGN.md). */
#define STRIP_MIN_TPR 0.5
/* Superimposed images per forward pass. */
#define STRIP_BATCH 256

const qb_param_def qb_strip_params[] = {
    {"n", QB_PARAM_INT, 100, 1, 10000, NULL,
     "overlays superimposed on each input (the paper's N = 100)"},
    {"n_overlay", QB_PARAM_INT, 1000, 1, 1000000, NULL,
     "clean images in the overlay pool (first slice of the defender's pool)"},
    {"n_calib", QB_PARAM_INT, 1000, 1, 1000000, NULL,
     "clean inputs that set the threshold (next slice)"},
    {"n_frr", QB_PARAM_INT, 1000, 1, 1000000, NULL,
     "clean inputs on which the false rejection rate is measured (next slice)"},
    {"n_trig", QB_PARAM_INT, 1000, 1, 1000000, NULL,
     "triggered inputs (non-target images of the pool's evaluation part)"},
    {"frr", QB_PARAM_REAL, 0.01, 0.0, 0.5, NULL,
     "false rejection rate the threshold is set for on the calibration split (docs/DESIGN.md: 1%)"},
    {"clip", QB_PARAM_INT, 0, 0, 1, NULL,
     "1: superimposed pixels saturate at 1 (uint8 addWeighted); 0: x + o unclipped, as the "
     "original code on float images"},
    {NULL, 0, 0, 0, 0, NULL, NULL},
};

/* ---- the steps ----------------------------------------------------------- */

double qb_strip_entropy_bits(const float *logits, int classes)
{
    double zmax = logits[0];
    for (int c = 1; c < classes; c++)
        if (logits[c] > zmax) zmax = logits[c];
    if (!isfinite(zmax)) return NAN;
    double s = 0.0;
    for (int c = 0; c < classes; c++) s += exp((double)logits[c] - zmax);
    /* H = -sum p ln p with ln p = (z - zmax) - ln s: H = ln s - sum p (z - zmax) */
    double e = 0.0;
    for (int c = 0; c < classes; c++) {
        double d = (double)logits[c] - zmax;
        e += exp(d) / s * d;
    }
    double h = (log(s) - e) / log(2.0);
    /* rounding can leave -1e-17 for a one-hot prediction */
    return h < 0.0 ? 0.0 : h;
}

void qb_strip_superimpose(const float *x, const float *o, size_t len, int clip, float *out)
{
    if (clip)
        for (size_t i = 0; i < len; i++) {
            float v = x[i] + o[i];
            out[i] = v > 1.0f ? 1.0f : v;
        }
    else
        for (size_t i = 0; i < len; i++) out[i] = x[i] + o[i];
}

static double *sorted_copy(const double *v, size_t n)
{
    double *t = xmalloc(n ? n : 1, sizeof(double));
    if (n) memcpy(t, v, n * sizeof(double));
    qsort(t, n, sizeof(double), qb_cmp_double);
    return t;
}

double qb_strip_threshold(const double *v, size_t n, double frr)
{
    QB_ASSERT(n >= 1);
    /* 1e-9 absorbs frr * n landing a hair below an integer (0.07 * 100) */
    double kf = floor(frr * (double)n + 1e-9);
    size_t k = kf <= 0.0 ? 0 : (size_t)kf;
    if (k > n - 1) k = n - 1;
    double *t = sorted_copy(v, n);
    double thr = t[k];
    free(t);
    return thr;
}

double qb_strip_rate_below(const double *v, size_t n, double thr)
{
    if (n == 0) return 0.0;
    size_t c = 0;
    for (size_t i = 0; i < n; i++) c += v[i] < thr;
    return (double)c / (double)n;
}

/* Number of entries of sorted t[0..n) strictly below x / at most x. */
static size_t count_below(const double *t, size_t n, double x)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t[mid] < x) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static size_t count_at_most(const double *t, size_t n, double x)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t[mid] <= x) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

double qb_auroc_lower(const double *pos, size_t n_pos, const double *neg, size_t n_neg)
{
    if (n_pos == 0 || n_neg == 0) return NAN;
    double *t = sorted_copy(neg, n_neg);
    /* twice U as an integer: 2 per negative above, 1 per tie */
    uint64_t u2 = 0;
    for (size_t i = 0; i < n_pos; i++) {
        size_t le = count_at_most(t, n_neg, pos[i]);
        size_t lt = count_below(t, n_neg, pos[i]);
        u2 += 2 * (uint64_t)(n_neg - le) + (uint64_t)(le - lt);
    }
    free(t);
    return (double)u2 / (2.0 * (double)n_pos * (double)n_neg);
}

int qb_strip_entropies(const qb_model *m, const qb_norm *norm, const float *inputs, size_t n,
                       const float *overlays, size_t n_overlay, int n_per_input, int clip,
                       uint64_t seed, double *out, qb_error *err)
{
    QB_ASSERT(n_overlay >= 1 && n_overlay <= UINT32_MAX && n_per_input >= 1);
    const size_t isz = (size_t)m->in_c * m->in_h * m->in_w;
    const size_t total = n * (size_t)n_per_input;
    const int B = total < STRIP_BATCH ? (int)(total ? total : 1) : STRIP_BATCH;
    qb_model_ws ws;
    qb_model_ws_init(&ws, m, B);
    float *x = xaligned((size_t)B * isz, sizeof(float)); /* (B, C, H, W) */
    size_t *owner = xmalloc((size_t)B, sizeof(size_t));  /* (B) input of each row */
    qb_rng rng;
    qb_rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++) out[i] = 0.0;

    int rc = 0;
    for (size_t first = 0; first < total && rc == 0; first += (size_t)B) {
        int b = total - first < (size_t)B ? (int)(total - first) : B;
        for (int r = 0; r < b; r++) {
            size_t pair = first + (size_t)r, i = pair / (size_t)n_per_input;
            /* draws happen in pair order: input by input, as documented */
            size_t o = qb_rng_below(&rng, (uint32_t)n_overlay);
            qb_strip_superimpose(inputs + i * isz, overlays + o * isz, isz, clip,
                                 x + (size_t)r * isz);
            owner[r] = i;
        }
        qb_norm_apply(norm, x, (size_t)b, m->in_c, (size_t)m->in_h * (size_t)m->in_w);
        const float *logits = qb_model_forward(m, &ws, x, b, 0);
        for (int r = 0; r < b; r++) {
            double h = qb_strip_entropy_bits(logits + (size_t)r * m->classes, m->classes);
            if (!isfinite(h)) {
                rc = QB_FAIL(err, "strip: the entropy of superimposed input %zu is not finite "
                                  "(the model's logits are not finite)",
                             owner[r]);
                break;
            }
            out[owner[r]] += h;
        }
    }
    for (size_t i = 0; i < n; i++) out[i] /= (double)n_per_input;
    free(owner);
    free(x);
    qb_model_ws_free(&ws);
    return rc;
}

double qb_normal_quantile(double p)
{
    QB_ASSERT(p > 0.0 && p < 1.0);
    /* Acklam's rational approximations for the central region and tails */
    static const double a[6] = {-3.969683028665376e+01, 2.209460984245205e+02,
                                -2.759285104469687e+02, 1.383577518672690e+02,
                                -3.066479806614716e+01, 2.506628277459239e+00};
    static const double b[5] = {-5.447609879822406e+01, 1.615858368580409e+02,
                                -1.556989798598866e+02, 6.680131188771972e+01,
                                -1.328068155288572e+01};
    static const double c[6] = {-7.784894002430293e-03, -3.223964580411365e-01,
                                -2.400758277161838e+00, -2.549732539343734e+00,
                                4.374664141464968e+00, 2.938163982698783e+00};
    static const double d[4] = {7.784695709041462e-03, 3.224671290700398e-01,
                                2.445134137142996e+00, 3.754408661907416e+00};
    const double lo = 0.02425, hi = 1.0 - lo;
    double x;
    if (p < lo) {
        double q = sqrt(-2.0 * log(p));
        x = (((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0);
    } else if (p <= hi) {
        double q = p - 0.5, r = q * q;
        x = (((((a[0] * r + a[1]) * r + a[2]) * r + a[3]) * r + a[4]) * r + a[5]) * q /
            (((((b[0] * r + b[1]) * r + b[2]) * r + b[3]) * r + b[4]) * r + 1.0);
    } else {
        double q = sqrt(-2.0 * log(1.0 - p));
        x = -(((((c[0] * q + c[1]) * q + c[2]) * q + c[3]) * q + c[4]) * q + c[5]) /
            ((((d[0] * q + d[1]) * q + d[2]) * q + d[3]) * q + 1.0);
    }
    /* one Halley step on Phi(x) - p brings the error to machine precision */
    double e = 0.5 * erfc(-x / sqrt(2.0)) - p;
    double u = e * sqrt(2.0 * M_PI) * exp(x * x / 2.0);
    return x - u / (1.0 + x * u / 2.0);
}

double qb_strip_threshold_normal(const double *v, size_t n, double frr)
{
    QB_ASSERT(n >= 1);
    double mean = 0.0, ss = 0.0;
    for (size_t i = 0; i < n; i++) mean += v[i];
    mean /= (double)n;
    for (size_t i = 0; i < n; i++) ss += (v[i] - mean) * (v[i] - mean);
    double sd = sqrt(ss / (double)n);
    if (!(frr > 0.0)) return -INFINITY;
    return mean + sd * qb_normal_quantile(frr);
}

/* ---- the defense --------------------------------------------------------- */

/* All images of d as pixels in [0, 1] (n, isz): STRIP superimposes
 * pixels; the model's normalisation applies to the superimposed image. */
static float *to_float(const qb_dataset *d)
{
    float *x = xaligned(d->n ? d->n * qb_dataset_image_size(d) : 1, sizeof(float));
    const qb_norm pixels = {0};
    qb_dataset px = qb_dataset_view_norm(d, &pixels);
    qb_dataset_batch_float(&px, NULL, 0, d->n, x);
    return x;
}

/* The triggered inputs: the first n images of pool[eval_from..) whose true
 * label is not the target, trigger stamped. */
static int triggered_split(const qb_defense_input *in, size_t n, qb_dataset *out, qb_error *err)
{
    qb_dataset eval, asr;
    qb_dataset_subset(&eval, in->test, in->pool + in->eval_from, in->n_pool - in->eval_from);
    qb_poison_asr_set(&eval, in->trigger, &asr);
    qb_dataset_free(&eval);
    if (asr.n < n) {
        size_t have = asr.n;
        qb_dataset_free(&asr);
        return QB_FAIL(err,
                       "strip needs %zu triggered inputs (non-target images of the pool's "
                       "evaluation part) but that part holds %zu",
                       n, have);
    }
    uint32_t *first = xmalloc(n ? n : 1, sizeof(uint32_t));
    for (size_t i = 0; i < n; i++) first[i] = (uint32_t)i;
    qb_dataset_subset(out, &asr, first, n);
    free(first);
    qb_dataset_free(&asr);
    return 0;
}

int qb_defense_strip(const qb_defense_input *in, qb_defense_result *res, qb_error *err)
{
    const qb_params *p = &in->params;
    const int N = qb_params_int(p, "n");
    const size_t n_ov = (size_t)qb_params_int(p, "n_overlay");
    const size_t n_cal = (size_t)qb_params_int(p, "n_calib");
    const size_t n_frr = (size_t)qb_params_int(p, "n_frr");
    const size_t n_trig = (size_t)qb_params_int(p, "n_trig");
    const double frr_target = qb_params_num(p, "frr");
    const int clip = qb_params_int(p, "clip");
    const qb_model *m = in->model;

    qb_dataset ov = {0}, cal = {0}, fr = {0}, tr = {0};
    float *x_ov = NULL, *x_cal = NULL, *x_fr = NULL, *x_tr = NULL;
    double *h_cal = NULL, *h_fr = NULL, *h_tr = NULL;
    int rc = -1;
    if (qb_defense_clean_split(in, "strip (overlay pool)", 0, n_ov, &ov, err) ||
        qb_defense_clean_split(in, "strip (calibration split)", n_ov, n_cal, &cal, err) ||
        qb_defense_clean_split(in, "strip (FRR split)", n_ov + n_cal, n_frr, &fr, err) ||
        triggered_split(in, n_trig, &tr, err))
        goto out;
    x_ov = to_float(&ov);
    x_cal = to_float(&cal);
    x_fr = to_float(&fr);
    x_tr = to_float(&tr);
    h_cal = xmalloc(n_cal, sizeof(double));
    h_fr = xmalloc(n_frr, sizeof(double));
    h_tr = xmalloc(n_trig, sizeof(double));
    if (qb_strip_entropies(m, &in->test->norm, x_cal, n_cal, x_ov, n_ov, N, clip,
                           qb_seed_derive(in->seed, "strip-overlay-calib"), h_cal, err) ||
        qb_strip_entropies(m, &in->test->norm, x_fr, n_frr, x_ov, n_ov, N, clip,
                           qb_seed_derive(in->seed, "strip-overlay-frr"), h_fr, err) ||
        qb_strip_entropies(m, &in->test->norm, x_tr, n_trig, x_ov, n_ov, N, clip,
                           qb_seed_derive(in->seed, "strip-overlay-trig"), h_tr, err))
        goto out;

    double thr = qb_strip_threshold(h_cal, n_cal, frr_target);
    double frr_calib = qb_strip_rate_below(h_cal, n_cal, thr);
    double frr = qb_strip_rate_below(h_fr, n_frr, thr);
    double tpr = qb_strip_rate_below(h_tr, n_trig, thr);
    double auroc = qb_auroc_lower(h_tr, n_trig, h_fr, n_frr);
    double thr_n = qb_strip_threshold_normal(h_cal, n_cal, frr_target);

    qb_details_add1(res->details, "strip.threshold", thr);
    qb_details_add1(res->details, "strip.frr", frr);
    qb_details_add1(res->details, "strip.tpr", tpr);
    qb_details_add1(res->details, "strip.auroc", auroc);
    qb_details_add1(res->details, "strip.frr_calib", frr_calib);
    qb_details_add1(res->details, "strip.threshold_normal", thr_n);
    qb_details_add1(res->details, "strip.frr_normal", qb_strip_rate_below(h_fr, n_frr, thr_n));
    qb_details_add1(res->details, "strip.tpr_normal", qb_strip_rate_below(h_tr, n_trig, thr_n));
    qb_details_add(res->details, "strip.entropy_clean", h_fr, n_frr);
    qb_details_add(res->details, "strip.entropy_trig", h_tr, n_trig);
    res->detected = tpr >= STRIP_MIN_TPR ? QB_DETECTED_YES : QB_DETECTED_NO;
    snprintf(res->summary, sizeof res->summary,
             "TPR %.1f%% at threshold %.4g bits (FRR %.1f%%), AUROC %.3f", 100.0 * tpr, thr,
             100.0 * frr, auroc);
    rc = 0;
out:
    free(h_cal);
    free(h_fr);
    free(h_tr);
    free(x_ov);
    free(x_cal);
    free(x_fr);
    free(x_tr);
    qb_dataset_free(&ov);
    qb_dataset_free(&cal);
    qb_dataset_free(&fr);
    qb_dataset_free(&tr);
    return rc;
}
