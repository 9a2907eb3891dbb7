/* Quantization forensics (beyond the paper): does the FP32 model that was
 * quantized carry the fingerprint of a quantization-conditioned attack?
 *
 * 1. Cell positions. For every weight of a quantized layer, its phase
 *    u = w/s - round(w/s) in [-1/2, 1/2] on the deployed precision's grid
 *    (bits, granularity, scale s from the weights as the quantizer computes
 *    it; for an fp32 task the grid of `grid_bits`, default 8). qa-pgd keeps
 *    every weight inside [(q - 1/2 + eps) s, (q + 1/2 - eps) s], which
 *    empties the band next to each cell edge and piles weights onto the box
 *    boundary; other conditioned attacks push weights toward the edges.
 *
 *    What clean training produces. With s small against the spread of the
 *    weights (8 bits) the phases are uniform, but at 4 bits a cell is about
 *    as wide as the weights' spread, and the (convex) weight density puts
 *    more mass near cell edges than mid-cell: on clean Fashion-MNIST LeNets
 *    the share of the outer band below is 0.55-0.58 at 4 bits, not 0.5. So
 *    the null is taken from the same weights on neighbouring grids: for a
 *    band width b, let p(c) = n_outer / (n_outer + n_inner) with outer
 *    |u| in (1/2 - b, 1/2] and inner (1/2 - 2b, 1/2 - b], on the grid of
 *    scale c*s. A smooth density gives a p(c) that is smooth in c; an
 *    attack tied to the real grid shows up at c = 1 only. p0 = a quadratic
 *    least-squares fit (our Householder QR, core/lstsq.c) of p(c) over c in
 *    0.70..0.90 and 1.10..1.30 (steps of 0.05), evaluated at c = 1;
 *    z = (p(1) - p0) / sd with sd^2 = the fit's residual variance +
 *    p0(1 - p0)/n; two-sided normal p-value. Band widths b = 0.025, 0.05, 0.1, 0.2, Bonferroni
 *    corrected minimum: p_cell. Weights with code 0 (the density's peak is
 *    folded there) and at the clamp (|code| = qmax, the pinned max) are
 *    left out. Bands with no weights on the real grid are skipped.
 *
 * 2. Trusted reference (optional, parameter `reference`: a .qbm file of a
 *    trusted FP32 model of the same architecture). Under the null "the
 *    deployed model is the quantization of the reference" every de-quantized
 *    weight lies within half a cell of the reference weight, and the errors
 *    e are close to uniform on [-s/2, s/2]: E[e^2] = s^2/12, Var[e^2] =
 *    s^4/180. We report the number of weights outside their cell (any is
 *    impossible under the null), and the z-test of the sum of squared
 *    errors against its null mean (one-sided, p_ref).
 *
 * Batch-norm models. The quantizer sees the convolutions with their batch
 * norms folded in (quant/qmodel.h), so both tests examine folded weights:
 * the FP32 model is folded before its phases are counted (for an fp32
 * task too: the grid of grid_bits is the one a deployer would quantize
 * the folded model on), and a reference is folded before it is compared
 * with a folded deployed model.
 *
 * detected = YES if p_cell < alpha or (a reference is given and some weight
 * lies outside its cell or p_ref < alpha); alpha = 0.01, fixed. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/bn_fold.h"
#include "core/lstsq.h"
#include "core/model_io.h"
#include "core/xalloc.h"
#include "defenses/defense.h"
#include "defenses/verdict.h"
#include "quant/qmodel.h"
#include "quant/quantizer.h"

#define FORENSICS_ALPHA 0.01
#define N_BANDS 4
#define HIST_BINS 20
static const double band_width[N_BANDS] = {0.025, 0.05, 0.1, 0.2};

const qb_param_def qb_forensics_params[] = {
    {"grid_bits", QB_PARAM_INT, 8, 2, 8, NULL,
     "weight bits of the grid examined when the task's precision is fp32"},
    {"reference", QB_PARAM_STR, 0, 0, 0, "",
     "path of a trusted FP32 model (.qbm) of the same architecture; empty: no reference test"},
    {NULL, 0, 0, 0, 0, NULL, NULL},
};

#define N_SCALES 10
static const double null_scale[N_SCALES] = {0.70, 0.75, 0.80, 0.85, 0.90,
                                            1.10, 1.15, 1.20, 1.25, 1.30};

typedef struct band_counts {
    long outer[N_BANDS], inner[N_BANDS];
    long n;
} band_counts;

typedef struct cell_stats {
    band_counts real;                 /* on the deployed grid */
    band_counts scaled[N_SCALES];     /* on the null grids */
    double p_real[N_BANDS], p_null[N_BANDS], z[N_BANDS], p[N_BANDS], p_cell;
    double hist[HIST_BINS];           /* |u| on the deployed grid, normalised */
} cell_stats;

/* Count the phases of r[0..n) on the grid of scale s (bits, round). */
static void count_phases(const float *r, size_t n, float s, int bits, qb_round_mode round,
                         band_counts *bc, double *hist)
{
    int qmax = qb_quant_qmax(bits);
    for (size_t i = 0; i < n; i++) {
        float x = r[i] / s; /* the quantizer's own float32 division */
        float q = qb_quant_round(x, round);
        if (q == 0.0f || fabsf(q) >= (float)qmax) continue;
        double a = fabs((double)x - (double)q); /* |u| */
        if (a > 0.5) a = 0.5;
        bc->n++;
        if (hist) {
            int bin = (int)(a / 0.5 * HIST_BINS);
            hist[bin < HIST_BINS ? bin : HIST_BINS - 1] += 1.0;
        }
        for (int b = 0; b < N_BANDS; b++) {
            double bw = band_width[b];
            if (a > 0.5 - bw)
                bc->outer[b]++;
            else if (a > 0.5 - 2 * bw)
                bc->inner[b]++;
        }
    }
}

/* Phases of the weights w (rows, cols) on the grid (bits, gran, round)
 * and on the null grids. */
static void cell_accumulate(const float *w, size_t rows, size_t cols, int bits,
                            qb_granularity gran, qb_round_mode round, cell_stats *st)
{
    size_t groups = gran == QB_GRAN_CHANNEL ? rows : 1, per = rows * cols / groups;
    for (size_t g = 0; g < groups; g++) {
        const float *r = w + g * per;
        float s = qb_quant_scale(r, per, bits);
        if (s == 0.0f) continue;
        count_phases(r, per, s, bits, round, &st->real, st->hist);
        for (int k = 0; k < N_SCALES; k++)
            count_phases(r, per, s * (float)null_scale[k], bits, round, &st->scaled[k], NULL);
    }
}

static double outer_share(const band_counts *bc, int b)
{
    long n = bc->outer[b] + bc->inner[b];
    return n ? (double)bc->outer[b] / (double)n : NAN;
}

/* Quadratic fit of the null shares, the z statistic and p-value per band. */
static int cell_finish(cell_stats *st, qb_error *err)
{
    double pmin = 1.0;
    for (int b = 0; b < N_BANDS; b++) {
        st->p_real[b] = outer_share(&st->real, b);
        st->p_null[b] = st->z[b] = NAN;
        st->p[b] = 1.0;
        double a[N_SCALES * 3], y[N_SCALES];
        int m = 0;
        for (int k = 0; k < N_SCALES; k++) {
            double v = outer_share(&st->scaled[k], b);
            if (!isnan(v)) y[m++] = v;
        }
        long n1 = st->real.outer[b] + st->real.inner[b];
        if (m < 5 || n1 == 0) continue; /* nothing to compare */
        int r = 0; /* design matrix (m, 3), row-major: 1, c - 1, (c - 1)^2 */
        for (int k = 0; k < N_SCALES; k++) {
            if (isnan(outer_share(&st->scaled[k], b))) continue;
            double dc = null_scale[k] - 1.0;
            a[3 * r] = 1.0;
            a[3 * r + 1] = dc;
            a[3 * r + 2] = dc * dc;
            r++;
        }
        double yy[N_SCALES], coef[3];
        memcpy(yy, y, sizeof(double) * (size_t)m);
        if (qb_lstsq_solve(a, (size_t)m, 3, yy, coef, err))
            return qb_error_prefix(err, "forensics, band %d: ", b);
        double p0 = coef[0], rss = 0.0;
        r = 0;
        for (int k = 0; k < N_SCALES; k++) {
            if (isnan(outer_share(&st->scaled[k], b))) continue;
            double dc = null_scale[k] - 1.0;
            double e = y[r++] - (coef[0] + coef[1] * dc + coef[2] * dc * dc);
            rss += e * e;
        }
        double q0 = fmin(fmax(p0, 1e-6), 1.0 - 1e-6);
        double sd = sqrt(rss / (m - 3) + q0 * (1.0 - q0) / (double)n1);
        st->p_null[b] = p0;
        st->z[b] = (st->p_real[b] - p0) / sd;
        st->p[b] = erfc(fabs(st->z[b]) / sqrt(2.0));
        if (st->p[b] < pmin) pmin = st->p[b];
    }
    st->p_cell = fmin(1.0, pmin * N_BANDS);
    for (int i = 0; i < HIST_BINS; i++)
        st->hist[i] = st->real.n ? st->hist[i] / (double)st->real.n : 0.0;
    return 0;
}

typedef struct ref_stats {
    long n, outside;
    double sum_e2, null_mean, null_var, ms_ratio, p_ref;
} ref_stats;

static int reference_test(const qb_defense_input *in, const char *path, ref_stats *rs,
                          qb_error *err)
{
    memset(rs, 0, sizeof *rs);
    qb_model ref;
    if (qb_model_load(&ref, path, NULL, err)) return qb_error_prefix(err, "forensics reference: ");
    const qb_model *dep = in->model;
    if (qb_bn_fold_count(&ref) > 0 && qb_bn_fold_count(dep) == 0) {
        /* the deployed model is folded (core/bn_fold.h): so is the null's
         * reference, exactly as the quantizer folds */
        qb_model folded;
        int rc = qb_bn_fold(&ref, &folded, NULL, err);
        qb_model_free(&ref);
        if (rc) return qb_error_prefix(err, "forensics reference: ");
        ref = folded;
    }
    int same = ref.n_params == dep->n_params && ref.n_layers == dep->n_layers;
    for (int i = 0; same && i < ref.n_layers; i++)
        same = ref.layers[i].kind == dep->layers[i].kind &&
               ref.layers[i].w_len == dep->layers[i].w_len;
    if (!same) {
        qb_model_free(&ref);
        return QB_FAIL(err, "forensics reference %s: architecture %s differs from the deployed "
                            "model's (%s)", path, ref.arch, dep->arch);
    }
    const struct qb_qmodel *qm = in->qmodel;
    for (int i = 0; i < dep->n_layers; i++) {
        const qb_layer *l = &dep->layers[i];
        if (l->kind != QB_LAYER_CONV2D && l->kind != QB_LAYER_LINEAR) continue;
        const float *d = dep->params + l->w_off, *r = ref.params + l->w_off;
        const qb_qlayer *ql = qm ? &qm->ql[i] : NULL;
        for (size_t k = 0; k < l->w_len; k++) {
            double e = (double)d[k] - (double)r[k];
            rs->n++;
            if (!ql || !ql->active) { /* float layer: the null is equality */
                rs->outside += e != 0.0;
                continue;
            }
            size_t row = k / ql->cols;
            double s = ql->scales[in->precision->gran == QB_GRAN_CHANNEL ? row : 0];
            /* half a cell, with slack for the float32 rounding of r / s */
            rs->outside += fabs(e) > 0.5 * s * (1.0 + 1e-4) + 1e-12;
            rs->sum_e2 += e * e;
            rs->null_mean += s * s / 12.0;
            rs->null_var += s * s * s * s / 180.0;
        }
    }
    qb_model_free(&ref);
    rs->ms_ratio = rs->null_mean > 0 ? rs->sum_e2 / rs->null_mean : NAN;
    rs->p_ref = rs->null_var > 0
                    ? 0.5 * erfc((rs->sum_e2 - rs->null_mean) / sqrt(rs->null_var) / sqrt(2.0))
                    : NAN;
    return 0;
}

int qb_defense_forensics(const qb_defense_input *in, qb_defense_result *res, qb_error *err)
{
    if (!in->fp32) return QB_FAIL(err, "forensics needs the FP32 model that was quantized");
    /* the grid examined: the deployed precision's, or int8 for fp32 tasks */
    qb_precision grid = *in->precision;
    if (qb_precision_is_float(&grid)) {
        if (qb_precision_parse("int8", &grid, err)) return -1;
        grid.w_bits = qb_params_int(&in->params, "grid_bits");
    }
    cell_stats st;
    memset(&st, 0, sizeof st);
    /* the weights the quantizer sees: batch norms folded (core/bn_fold.h;
     * a copy for models without foldable batch norms) */
    qb_model m;
    if (qb_bn_fold(in->fp32, &m, NULL, err)) return qb_error_prefix(err, "forensics: ");
    for (int i = 0; i < m.n_layers; i++) {
        if (!qb_precision_quantizes_layer(&grid, &m, i)) continue;
        const qb_layer *l = &m.layers[i];
        cell_accumulate(m.params + l->w_off, (size_t)l->out_c, l->w_len / (size_t)l->out_c,
                        grid.w_bits, grid.gran, grid.round, &st);
    }
    qb_model_free(&m);
    if (st.real.n < 100)
        return QB_FAIL(err, "forensics: only %ld weights with a non-zero, unclamped code on the "
                            "%d-bit grid (need 100)", st.real.n, grid.w_bits);
    if (cell_finish(&st, err)) return -1;
    int flagged = st.p_cell < FORENSICS_ALPHA;

    double outer[N_BANDS], inner[N_BANDS];
    for (int b = 0; b < N_BANDS; b++) {
        outer[b] = (double)st.real.outer[b];
        inner[b] = (double)st.real.inner[b];
    }
    qb_details_add1(res->details, "forensics.grid_bits", grid.w_bits);
    qb_details_add1(res->details, "forensics.n_weights", (double)st.real.n);
    qb_details_add(res->details, "forensics.band_width", band_width, N_BANDS);
    qb_details_add(res->details, "forensics.band_outer", outer, N_BANDS);
    qb_details_add(res->details, "forensics.band_inner", inner, N_BANDS);
    qb_details_add(res->details, "forensics.band_share", st.p_real, N_BANDS);
    qb_details_add(res->details, "forensics.band_share_null", st.p_null, N_BANDS);
    qb_details_add(res->details, "forensics.band_z", st.z, N_BANDS);
    qb_details_add(res->details, "forensics.band_p", st.p, N_BANDS);
    qb_details_add1(res->details, "forensics.p_cell", st.p_cell);
    qb_details_add(res->details, "forensics.phase_hist", st.hist, HIST_BINS);

    const char *ref_path = qb_params_str(&in->params, "reference");
    ref_stats rs;
    memset(&rs, 0, sizeof rs);
    rs.ms_ratio = rs.p_ref = NAN;
    if (ref_path[0]) {
        if (reference_test(in, ref_path, &rs, err)) return -1;
        flagged |= rs.outside > 0 || rs.p_ref < FORENSICS_ALPHA;
        qb_details_add1(res->details, "forensics.ref_outside", (double)rs.outside);
        qb_details_add1(res->details, "forensics.ref_ms_ratio", rs.ms_ratio);
        qb_details_add1(res->details, "forensics.ref_p", rs.p_ref);
    }
    res->detected = flagged ? QB_DETECTED_YES : QB_DETECTED_NO;
    snprintf(res->summary, sizeof res->summary, "p_cell %.3g over %ld weights (%d-bit grid)%s",
             st.p_cell, st.real.n, grid.w_bits, ref_path[0] ? (rs.outside ? "; off the reference" : "; matches the reference") : "");
    return 0;
}
