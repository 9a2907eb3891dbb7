/* Spectral Signatures (defenses/ss.c): planted outliers, the sv-ratio
 * outlier test on constructed classes, the detection rule, and the
 * defense end to end on a small model. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/train.h"
#include "core/xalloc.h"
#include "defenses/defense.h"
#include "defenses/ss.h"
#include "tests/testutil_defenses.h"
#include "tests/testutil.h"

/* A random unit vector of d dims. */
static void unit(qb_rng *r, float *u, int d)
{
    double nn = 0;
    for (int j = 0; j < d; j++) {
        u[j] = qb_rng_normal(r);
        nn += (double)u[j] * u[j];
    }
    for (int j = 0; j < d; j++) u[j] = (float)(u[j] / sqrt(nn));
}

/* Class 0: 400 points of N(0, I) and 20 "poisoned" ones shifted by 8 along
 * a direction u; class 1: 300 points of N(0, I); 20 dims, interleaved. */
static void test_planted_outliers(void **state)
{
    (void)state;
    enum { D = 20, N = 720 };
    qb_rng r;
    qb_rng_seed(&r, 8);
    float u[D];
    unit(&r, u, D);
    float *x = xmalloc((size_t)N * D, sizeof(float));
    uint8_t lab[N], pois[N], rem[N];
    double score[N];
    size_t left[2] = {420, 300}, planted = 20;
    for (int i = 0; i < N; i++) {
        int c = left[0] && (!left[1] || qb_rng_below(&r, 2)) ? 0 : 1;
        /* the planted points of class 0 spread over its samples */
        int p = c == 0 && qb_rng_below(&r, (uint32_t)left[0]) < planted;
        left[c]--;
        planted -= (size_t)p;
        lab[i] = (uint8_t)c;
        pois[i] = (uint8_t)p;
        for (int j = 0; j < D; j++) x[i * D + j] = qb_rng_normal(&r) + (p ? 8.0f * u[j] : 0.0f);
    }
    assert_int_equal(planted, 0);
    qb_ss_class cls[2];
    qb_error err;
    assert_int_equal(qb_ss_analyze(x, N, D, lab, 2, pois, 0.05, cls, score, rem, &err), 0);
    /* every planted point scores above every clean point of its class */
    double min_p = INFINITY, max_c = 0;
    for (int i = 0; i < N; i++) {
        if (lab[i] != 0) continue;
        if (pois[i]) min_p = fmin(min_p, score[i]);
        else max_c = fmax(max_c, score[i]);
    }
    assert_true(min_p > max_c);
    assert_int_equal(cls[0].n, 420);
    assert_int_equal(cls[0].n_poisoned, 20);
    assert_int_equal(cls[0].n_removed, 32); /* round(1.5 * 0.05 * 420) = round(31.5) */
    assert_int_equal(cls[0].removed_poisoned, 20);
    assert_true(cls[0].tpr == 1.0);
    assert_true(cls[0].fpr == 12.0 / 400.0);
    assert_int_equal(cls[1].n_removed, 23); /* round(22.5) */
    assert_true(isnan(cls[1].tpr));
    assert_true(cls[1].fpr == 23.0 / 300.0);
    size_t nrem = 0;
    for (int i = 0; i < N; i++) nrem += rem[i];
    assert_int_equal(nrem, 55);
    /* the planted direction dominates class 0's spectrum */
    assert_true(cls[0].sv_ratio > 1.5 && cls[1].sv_ratio < 1.5);
    assert_true(fabs(cls[0].sigma1 / cls[0].sigma2 - cls[0].sv_ratio) < 1e-12);

    /* scores are squared projections on a unit vector: their sum is sigma1^2 */
    double sum = 0;
    for (int i = 0; i < N; i++)
        if (lab[i] == 0) sum += score[i];
    assert_true(fabs(sum - cls[0].sigma1 * cls[0].sigma1) < 1e-9 * sum);
    free(x);
}

/* Ten classes of 200 points, 16 dims, coordinate 0 scaled by 3 (ratio
 * sigma1/sigma2 about 2.5), except: class 4 has 40% of its points shifted
 * by 10 along coordinate 0 (a much larger ratio: flagged), class 7 is
 * isotropic (a much smaller ratio: anomalous, but below the median, so not
 * flagged: the test is one-sided). */
static void test_sv_ratio_outlier(void **state)
{
    (void)state;
    enum { D = 16, C = 10, PER = 200, N = C * PER };
    float *x = xmalloc((size_t)N * D, sizeof(float));
    uint8_t *lab = xmalloc(N, 1), *rem = xmalloc(N, 1);
    qb_rng r;
    qb_rng_seed(&r, 4);
    for (int i = 0; i < N; i++) {
        int c = i % C, k = i / C;
        lab[i] = (uint8_t)c;
        for (int j = 0; j < D; j++) {
            float v = qb_rng_normal(&r);
            if (j == 0 && c != 7) v *= 3.0f;
            if (j == 0 && c == 4 && k < PER * 2 / 5) v += 10.0f;
            x[i * D + j] = v;
        }
    }
    qb_ss_class cls[C];
    qb_error err;
    assert_int_equal(qb_ss_analyze(x, N, D, lab, C, NULL, 0.1, cls, NULL, rem, &err), 0);
    double ratio[C], idx[C];
    for (int c = 0; c < C; c++) ratio[c] = cls[c].sv_ratio;
    qb_mad_anomaly(ratio, C, idx);
    for (int c = 0; c < C; c++) {
        assert_true(cls[c].sv_anomaly == idx[c]);
        assert_int_equal(cls[c].sv_outlier, c == 4);
        assert_true(isnan(cls[c].tpr));
        assert_true(cls[c].fpr == 30.0 / 200.0);
    }
    assert_true(cls[4].sv_anomaly > 2 * QB_SS_MAD);
    assert_true(cls[7].sv_anomaly > QB_SS_MAD); /* anomalous, low side */
    double recall;
    assert_int_equal(qb_ss_detected(cls, C, 0, 0, &recall), 1);
    assert_true(isnan(recall));
    free(x);
    free(lab);
    free(rem);
}

static void test_detected_rule(void **state)
{
    (void)state;
    qb_ss_class cls[3];
    memset(cls, 0, sizeof cls);
    double recall;
    cls[0].tpr = 0.6;
    assert_int_equal(qb_ss_detected(cls, 3, 0, 1, &recall), 1);
    assert_true(recall == 0.6);
    cls[0].tpr = 0.5;
    assert_int_equal(qb_ss_detected(cls, 3, 0, 1, &recall), 1);
    cls[0].tpr = 0.3;
    assert_int_equal(qb_ss_detected(cls, 3, 0, 1, &recall), 0);
    cls[0].tpr = NAN; /* target class without poisoned samples */
    assert_int_equal(qb_ss_detected(cls, 3, 0, 1, &recall), 0);
    assert_true(isnan(recall));
    cls[0].tpr = 0.9; /* a clean model: the recall rule does not apply */
    assert_int_equal(qb_ss_detected(cls, 3, 0, 0, &recall), 0);
    assert_true(isnan(recall));
    cls[2].sv_outlier = 1;
    assert_int_equal(qb_ss_detected(cls, 3, 0, 0, &recall), 1);
}

static void test_cannot_run(void **state)
{
    (void)state;
    float x[8 * 3];
    for (int i = 0; i < 24; i++) x[i] = (float)((i * 7) % 5);
    uint8_t rem[8];
    qb_ss_class cls[2];
    qb_error err;
    uint8_t lab[8] = {0, 1, 0, 0, 1, 0, 0, 0}; /* class 1: 2 samples */
    assert_int_equal(qb_ss_analyze(x, 8, 3, lab, 2, NULL, 0.1, cls, NULL, rem, &err), -1);
    assert_non_null(strstr(err.msg, "class 1 has 2"));
    uint8_t lab2[8] = {0, 1, 0, 1, 1, 0, 0, 0};
    float same[8 * 3];
    memcpy(same, x, sizeof x);
    for (int i = 0; i < 8; i++)
        if (lab2[i] == 1) same[i * 3] = 1, same[i * 3 + 1] = 2, same[i * 3 + 2] = 3;
    assert_int_equal(qb_ss_analyze(same, 8, 3, lab2, 2, NULL, 0.1, cls, NULL, rem, &err), -1);
    assert_non_null(strstr(err.msg, "class 1"));
    assert_non_null(strstr(err.msg, "identical"));
    assert_int_equal(qb_ss_analyze(x, 8, 1, lab2, 2, NULL, 0.1, cls, NULL, rem, &err), -1);
}

static void test_defense_end_to_end(void **state)
{
    (void)state;
    qb_test_train_case c;
    qb_test_train_case_init(&c, 5, qb_ss_params);
    c.trigger.target = 2;
    qb_test_train_case_run(&c, qb_defense_ss, 0);
    qb_test_train_case_run(&c, qb_defense_ss, 1);
    qb_test_run *r1 = &c.run[0], *r2 = &c.run[1];
    static const qb_test_detail_len written[] = {
        {"ss.tpr", 10}, {"ss.fpr", 10}, {"ss.sv_ratio", 10}, {"ss.sv_anomaly", 10},
        {"ss.sv_flagged", 10}, {"ss.removed", 10}, {"ss.target_recall", 1}, {"ss.confusion", 4}};
    qb_test_train_case_assert_same(&c, written, sizeof written / sizeof written[0]);
    const qb_detail *rem = qb_details_find(&r1->det, "ss.removed");
    const qb_detail *tpr = qb_details_find(&r1->det, "ss.tpr");
    const qb_detail *conf = qb_details_find(&r1->det, "ss.confusion");
    const qb_detail *flag = qb_details_find(&r1->det, "ss.sv_flagged");
    double recall = qb_details_find(&r1->det, "ss.target_recall")->v[0];
    size_t count[10] = {0};
    for (size_t i = 0; i < c.train.n; i++) count[c.train.labels[i]]++;
    double removed = 0;
    int any = 0;
    for (int k = 0; k < 10; k++) {
        assert_true(rem->v[k] == floor(1.5 * 0.10 * (double)count[k] + 0.5));
        removed += rem->v[k];
        any |= flag->v[k] != 0;
    }
    assert_true(conf->v[0] + conf->v[1] == removed);
    assert_true(conf->v[0] + conf->v[1] + conf->v[2] + conf->v[3] == (double)c.train.n);
    assert_true(conf->v[0] + conf->v[3] == (double)c.n_poisoned);
    assert_true(recall == tpr->v[2]);
    assert_int_equal(r1->res.detected, any || recall >= QB_SS_RECALL);

    /* a clean model: recall NaN, TP = FN = 0; eps from the spec */
    qb_test_train_case_unpoisoned(&c);
    qb_param_kv kv[] = {{"eps", "0.2"}};
    c.in.params.kv = kv;
    c.in.params.n = 1;
    qb_test_train_case_run(&c, qb_defense_ss, 1);
    assert_true(isnan(qb_details_find(&r2->det, "ss.target_recall")->v[0]));
    conf = qb_details_find(&r2->det, "ss.confusion");
    assert_true(conf->v[0] == 0 && conf->v[3] == 0);
    rem = qb_details_find(&r2->det, "ss.removed");
    for (int k = 0; k < 10; k++) assert_true(rem->v[k] == floor(1.5 * 0.2 * (double)count[k] + 0.5));

    qb_test_train_case_free(&c);
}

int main(void)
{
    return qb_test_run_group(cmocka_unit_test(test_planted_outliers),
                             cmocka_unit_test(test_sv_ratio_outlier),
                             cmocka_unit_test(test_detected_rule),
                             cmocka_unit_test(test_cannot_run),
                             cmocka_unit_test(test_defense_end_to_end));
}
