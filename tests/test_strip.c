/* STRIP (defenses/strip.c): entropy of constant and uniform predictions,
 * superimposition with and without saturation, the threshold rule, the
 * AUROC (hand case with ties, and a brute-force count), the normal-fit
 * threshold of the original code, and whole runs of the defense on a
 * LeNet with a hand-wired backdoor (tests/wired_lenet.h) at fp32 and int8:
 * detected with TPR 1 / FRR 0 / AUROC 1, and not on the clean version. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/details.h"
#include "core/rng.h"
#include "core/train.h"
#include "attacks/trigger.h"
#include "defenses/defense.h"
#include "defenses/strip.h"
#include "store/results.h"
#include "quant/qmodel.h"
#include "tests/testutil.h"
#include "tests/testutil_defenses.h"
#include "tests/testutil_quant.h"
#include "tests/wired_lenet.h"

static const double LOG2_10 = 3.321928094887362347870319;

/* ---- entropy ------------------------------------------------------------ */

static void test_entropy_constant_and_uniform(void **state)
{
    (void)state;
    float z[10] = {0};
    /* uniform: log2(classes) */
    assert_true(fabs(qb_strip_entropy_bits(z, 10) - LOG2_10) < 1e-12);
    assert_true(fabs(qb_strip_entropy_bits(z, 2) - 1.0) < 1e-15);
    for (int c = 0; c < 10; c++) z[c] = 7.25f; /* any common value */
    assert_true(fabs(qb_strip_entropy_bits(z, 10) - LOG2_10) < 1e-12);
    /* one-hot (constant predictor): 0 bits */
    for (int c = 0; c < 10; c++) z[c] = 0.0f;
    z[4] = 200.0f;
    double h = qb_strip_entropy_bits(z, 10);
    assert_true(h >= 0.0 && h < 1e-60);
    /* p = (1/4, 3/4): -(1/4 log2 1/4 + 3/4 log2 3/4) = 0.8112781244591328 */
    float z2[2] = {0.0f, (float)log(3.0)};
    assert_true(fabs(qb_strip_entropy_bits(z2, 2) - 0.8112781244591328) < 1e-7);
    /* non-finite logits give a non-finite entropy (the defense fails on it) */
    z[4] = INFINITY;
    assert_false(isfinite(qb_strip_entropy_bits(z, 10)));
    z[4] = NAN;
    z[0] = NAN;
    assert_false(isfinite(qb_strip_entropy_bits(z, 10)));
}

/* ---- superimposition ---------------------------------------------------- */

static void test_superimpose(void **state)
{
    (void)state;
    const float x[4] = {0.2f, 0.7f, 1.0f, 0.0f}, o[4] = {0.3f, 0.5f, 1.0f, 0.0f};
    float out[4];
    qb_strip_superimpose(x, o, 4, 0, out); /* the original: float addWeighted, no clipping */
    assert_float_equal(out[0], 0.5f, 1e-7);
    assert_float_equal(out[1], 1.2f, 1e-7);
    assert_float_equal(out[2], 2.0f, 0);
    assert_float_equal(out[3], 0.0f, 0);
    qb_strip_superimpose(x, o, 4, 1, out); /* saturating (uint8 addWeighted) */
    assert_float_equal(out[0], 0.5f, 1e-7);
    assert_float_equal(out[1], 1.0f, 0);
    assert_float_equal(out[2], 1.0f, 0);
    assert_float_equal(out[3], 0.0f, 0);
}

/* ---- threshold ---------------------------------------------------------- */

static void test_threshold_rule(void **state)
{
    (void)state;
    const double v[10] = {5, 3, 9, 1, 7, 2, 8, 6, 4, 0};
    assert_true(qb_strip_threshold(v, 10, 0.10) == 1.0);  /* k = 1 */
    assert_true(qb_strip_rate_below(v, 10, 1.0) == 0.1);
    assert_true(qb_strip_threshold(v, 10, 0.01) == 0.0);  /* k = floor(0.1) = 0: the minimum */
    assert_true(qb_strip_rate_below(v, 10, 0.0) == 0.0);
    assert_true(qb_strip_threshold(v, 10, 0.25) == 2.0);  /* k = 2 */
    assert_true(qb_strip_threshold(v, 10, 0.5) == 5.0);   /* k = 5 */
    /* 0.07 * 100 = 7.000000000000001 and 0.29 * 100 = 28.999999999999996:
     * k = 7 and 29 (the rounding slack), not 28 */
    double w[100];
    for (int i = 0; i < 100; i++) w[i] = 99 - i;
    assert_true(qb_strip_threshold(w, 100, 0.07) == 7.0);
    assert_true(qb_strip_threshold(w, 100, 0.29) == 29.0);
    /* n = 1000, 1%: the 11th smallest, exactly 10 below it */
    double *u = malloc(1000 * sizeof(double));
    assert_non_null(u);
    for (int i = 0; i < 1000; i++) u[i] = (double)((i * 617) % 1000) / 1000.0; /* a permutation */
    double t = qb_strip_threshold(u, 1000, 0.01);
    assert_true(t == 0.010);
    assert_true(qb_strip_rate_below(u, 1000, t) == 0.01);
    free(u);
    /* ties at the threshold: fewer flagged, never more */
    const double tie[5] = {1, 1, 1, 2, 3};
    assert_true(qb_strip_threshold(tie, 5, 0.4) == 1.0);
    assert_true(qb_strip_rate_below(tie, 5, 1.0) == 0.0);
    assert_true(qb_strip_threshold(tie, 5, 0.5) == 1.0); /* k = 2 */
    /* k >= n clamps to the maximum */
    assert_true(qb_strip_threshold(tie, 5, 1.0) == 3.0);
    const double one[1] = {4.5};
    assert_true(qb_strip_threshold(one, 1, 0.01) == 4.5);
}

static void test_normal_threshold(void **state)
{
    (void)state;
    /* reference values: Python's statistics.NormalDist().inv_cdf */
    assert_true(fabs(qb_normal_quantile(0.01) - -2.3263478740408408) < 1e-12);
    assert_true(fabs(qb_normal_quantile(0.975) - 1.9599639845400536) < 1e-12);
    assert_true(fabs(qb_normal_quantile(1e-6) - -4.753424308822899) < 1e-11);
    assert_true(fabs(qb_normal_quantile(0.3) - -0.5244005127080407) < 1e-12);
    assert_true(fabs(qb_normal_quantile(0.5)) < 1e-15);
    /* norm.fit([1,2,3,4]) = (2.5, sqrt(1.25)); ppf(0.01) */
    const double v[4] = {1, 2, 3, 4};
    assert_true(fabs(qb_strip_threshold_normal(v, 4, 0.01) - -0.10093599283371946) < 1e-12);
}

/* ---- AUROC -------------------------------------------------------------- */

static double auroc_brute(const double *pos, size_t np, const double *neg, size_t nn)
{
    double s = 0.0;
    for (size_t i = 0; i < np; i++)
        for (size_t j = 0; j < nn; j++) s += pos[i] < neg[j] ? 1.0 : pos[i] == neg[j] ? 0.5 : 0.0;
    return s / ((double)np * (double)nn);
}

static void test_auroc(void **state)
{
    (void)state;
    /* by hand: pairs (1,2) 1, (1,4) 1, (2,2) 1/2, (2,4) 1, (3,2) 0, (3,4) 1 -> 4.5/6 */
    const double pos[3] = {1, 2, 3}, neg[2] = {4, 2};
    assert_true(qb_auroc_lower(pos, 3, neg, 2) == 0.75);
    /* perfect separation, reversed, all tied */
    const double lo[3] = {0, 0.1, 0.2}, hi[2] = {3, 3.3};
    assert_true(qb_auroc_lower(lo, 3, hi, 2) == 1.0);
    assert_true(qb_auroc_lower(hi, 2, lo, 3) == 0.0);
    const double same[4] = {2, 2, 2, 2};
    assert_true(qb_auroc_lower(same, 4, same, 3) == 0.5);
    assert_true(isnan(qb_auroc_lower(pos, 3, neg, 0)));
    /* random values with many ties against the O(n^2) count */
    qb_rng rng;
    qb_rng_seed(&rng, 42);
    double a[301], b[207];
    for (int i = 0; i < 301; i++) a[i] = (double)qb_rng_below(&rng, 15);
    for (int i = 0; i < 207; i++) b[i] = (double)qb_rng_below(&rng, 15) + 2.0;
    double fast = qb_auroc_lower(a, 301, b, 207), slow = auroc_brute(a, 301, b, 207);
    assert_true(fabs(fast - slow) < 1e-15);
    assert_true(fast > 0.5 && fast < 1.0);
}

/* ---- entropies through a model ------------------------------------------ */

static void test_entropies_constant_uniform_model(void **state)
{
    (void)state;
    qb_model m;
    qb_test_lenet(&m, 3);
    qb_error err;
    const qb_layer *last = &m.layers[m.n_layers - 1];
    memset(m.params + last->w_off, 0, (last->w_len + last->b_len) * sizeof(float));
    /* 7 inputs x 50 overlays = 350 images: one full batch and a partial one */
    const size_t n = 7, n_ov = 5, isz = 784;
    float *in = malloc(n * isz * sizeof(float)), *ov = malloc(n_ov * isz * sizeof(float));
    assert_non_null(in);
    assert_non_null(ov);
    qb_rng rng;
    qb_rng_seed(&rng, 1);
    for (size_t i = 0; i < n * isz; i++) in[i] = qb_rng_uniform(&rng);
    for (size_t i = 0; i < n_ov * isz; i++) ov[i] = qb_rng_uniform(&rng);
    double h[7], h2[7];
    /* uniform predictor: last layer zero -> logits 0 -> log2(10) bits */
    assert_int_equal(qb_strip_entropies(&m, NULL, in, n, ov, n_ov, 50, 0, 9, h, &err), 0);
    for (size_t i = 0; i < n; i++) assert_true(fabs(h[i] - LOG2_10) < 1e-12);
    /* constant predictor: a large bias on one class -> 0 bits, also at int8 */
    m.params[last->b_off + 3] = 100.0f;
    assert_int_equal(qb_strip_entropies(&m, NULL, in, n, ov, n_ov, 50, 1, 9, h, &err), 0);
    for (size_t i = 0; i < n; i++) assert_true(h[i] >= 0.0 && h[i] < 1e-30);
    qb_qmodel qm;
    qb_test_quantize(&qm, &m, "int8");
    assert_int_equal(qb_strip_entropies(&qm.model, NULL, in, n, ov, n_ov, 50, 0, 9, h, &err), 0);
    for (size_t i = 0; i < n; i++) assert_true(h[i] >= 0.0 && h[i] < 1e-30);
    qb_qmodel_free(&qm);
    /* a real model: entropies strictly inside (0, log2 10), reproducible,
     * and depending on the seed of the overlay draws */
    qb_model_init_params(&m, 3);
    assert_int_equal(qb_strip_entropies(&m, NULL, in, n, ov, n_ov, 50, 0, 9, h, &err), 0);
    assert_int_equal(qb_strip_entropies(&m, NULL, in, n, ov, n_ov, 50, 0, 9, h2, &err), 0);
    assert_memory_equal(h, h2, sizeof h);
    for (size_t i = 0; i < n; i++) assert_true(h[i] > 0.0 && h[i] < LOG2_10);
    assert_int_equal(qb_strip_entropies(&m, NULL, in, n, ov, n_ov, 50, 0, 10, h2, &err), 0);
    assert_true(memcmp(h, h2, sizeof h) != 0);
    /* a non-finite weight -> non-finite logits -> -1 with a message */
    m.params[last->w_off] = NAN;
    assert_int_equal(qb_strip_entropies(&m, NULL, in, n, ov, n_ov, 50, 0, 9, h, &err), -1);
    assert_non_null(strstr(err.msg, "not finite"));
    free(in);
    free(ov);
    qb_model_free(&m);
}


/* STRIP superimposes pixels, then normalises: with one overlay and one
 * draw, the entropy is that of the model on norm(x + o). Normalising the
 * inputs first and superimposing them after would add the mean/std twice
 * and give another entropy. */
static void test_entropies_normalised(void **state)
{
    (void)state;
    qb_model m;
    qb_test_lenet(&m, 3);
    qb_model_init_params(&m, 5);
    for (size_t i = 0; i < m.n_params; i++) m.params[i] *= 2.0f; /* sharper predictions */
    const size_t isz = 784;
    float *in = malloc(2 * isz * sizeof(float)), *ov = malloc(isz * sizeof(float));
    float *x = malloc(2 * isz * sizeof(float));
    assert_non_null(in);
    assert_non_null(ov);
    assert_non_null(x);
    qb_rng rng;
    qb_rng_seed(&rng, 4);
    for (size_t i = 0; i < 2 * isz; i++) in[i] = qb_rng_uniform(&rng);
    for (size_t i = 0; i < isz; i++) ov[i] = qb_rng_uniform(&rng);
    const qb_norm n = {1, {0.3f, 0.0f, 0.0f}, {0.2f, 1.0f, 1.0f}};
    double h[2], wrong[2];
    qb_error err;
    assert_int_equal(qb_strip_entropies(&m, &n, in, 2, ov, 1, 1, 0, 9, h, &err), 0);
    qb_model_ws ws;
    qb_model_ws_init(&ws, &m, 2);
    for (int k = 0; k < 2; k++) {
        qb_strip_superimpose(in + k * isz, ov, isz, 0, x + k * isz);
        for (size_t i = 0; i < isz; i++) x[k * isz + i] = (x[k * isz + i] - 0.3f) / 0.2f;
    }
    const float *z = qb_model_forward(&m, &ws, x, 2, 0);
    for (int k = 0; k < 2; k++) assert_true(fabs(h[k] - qb_strip_entropy_bits(z + k * 10, 10)) < 1e-9);
    /* the other order differs */
    for (size_t i = 0; i < 2 * isz; i++) x[i] = (in[i] - 0.3f) / 0.2f;
    float *ovn = malloc(isz * sizeof(float));
    assert_non_null(ovn);
    for (size_t i = 0; i < isz; i++) ovn[i] = (ov[i] - 0.3f) / 0.2f;
    assert_int_equal(qb_strip_entropies(&m, NULL, x, 2, ovn, 1, 1, 0, 9, wrong, &err), 0);
    assert_true(fabs(wrong[0] - h[0]) > 1e-6 || fabs(wrong[1] - h[1]) > 1e-6);
    qb_model_ws_free(&ws);
    free(ovn);
    free(x);
    free(in);
    free(ov);
    qb_model_free(&m);
}

/* ---- the defense on the wired backdoor ---------------------------------- */

typedef struct strip_case {
    qb_dataset test;
    uint32_t *pool;
    qb_trigger trigger;
    qb_param_kv kv[8];
    size_t n_kv;
} strip_case;

static void case_init(strip_case *c)
{
    memset(c, 0, sizeof *c);
    const int labels[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    dim_dataset(&c->test, 600, labels, 10, 77);
    c->pool = malloc(600 * sizeof(uint32_t));
    assert_non_null(c->pool);
    for (uint32_t i = 0; i < 600; i++) c->pool[i] = i;
    qb_rng rng;
    qb_rng_seed(&rng, 5);
    qb_rng_shuffle_u32(&rng, c->pool, 600);
    qb_trigger_default(&c->trigger, QB_TRIGGER_SQUARE); /* target 0 */
    /* 50 + 100 + 100 clean of the 300 before eval_from; 100 triggered */
    static const char *keys[] = {"n", "n_overlay", "n_calib", "n_frr", "n_trig"};
    static const char *vals[] = {"20", "50", "100", "100", "100"};
    for (size_t i = 0; i < 5; i++) c->kv[i] = (qb_param_kv){keys[i], vals[i]};
    c->n_kv = 5;
}

static void case_free(strip_case *c)
{
    qb_dataset_free(&c->test);
    free(c->pool);
}

static void case_input(strip_case *c, const qb_qmodel *qm, int attacked, qb_defense_input *in)
{
    qb_test_input_deployed(in, qm);
    qb_test_input_pool(in, &c->test, c->pool, 600, 300);
    in->trigger = &c->trigger;
    in->attacked = attacked;
    in->seed = 1234;
    in->params = (qb_params){qb_strip_params, c->n_kv, c->kv};
}

static void run_wired(const char *precision, int backdoor, int clip)
{
    strip_case c;
    case_init(&c);
    if (clip) c.kv[c.n_kv++] = (qb_param_kv){"clip", "1"};
    qb_model fp;
    wired_lenet(&fp, 0, backdoor);
    qb_qmodel qm;
    qb_test_quantize(&qm, &fp, precision);
    qb_defense_input in;
    case_input(&c, &qm, backdoor, &in);
    qb_test_run run;
    qb_test_run_init(&run, -7);
    const qb_details *det = &run.det;
    qb_error err;
    assert_int_equal(qb_defense_strip(&in, &run.res, &err), 0);

    const qb_detail *hc = qb_details_find(det, "strip.entropy_clean");
    const qb_detail *ht = qb_details_find(det, "strip.entropy_trig");
    assert_non_null(hc);
    assert_non_null(ht);
    assert_int_equal(hc->n, 100);
    assert_int_equal(ht->n, 100);
    /* clean inputs: every activation 0, uniform prediction, whatever overlay */
    for (size_t i = 0; i < hc->n; i++) assert_true(fabs(hc->v[i] - LOG2_10) < 1e-12);
    double thr = qb_test_detail1(det, "strip.threshold");
    assert_true(fabs(thr - LOG2_10) < 1e-12);
    assert_true(qb_test_detail1(det, "strip.frr") == 0.0); /* nothing strictly below a tie */
    assert_true(qb_test_detail1(det, "strip.frr_calib") == 0.0);
    if (backdoor) {
        for (size_t i = 0; i < ht->n; i++) assert_true(ht->v[i] < 1e-9);
        assert_true(qb_test_detail1(det, "strip.tpr") == 1.0);
        assert_true(qb_test_detail1(det, "strip.auroc") == 1.0);
        assert_int_equal(run.res.detected, QB_DETECTED_YES);
    } else {
        for (size_t i = 0; i < ht->n; i++) assert_true(fabs(ht->v[i] - LOG2_10) < 1e-12);
        assert_true(qb_test_detail1(det, "strip.tpr") == 0.0);
        assert_true(qb_test_detail1(det, "strip.auroc") == 0.5);
        assert_int_equal(run.res.detected, QB_DETECTED_NO);
    }
    assert_non_null(qb_details_find(det, "strip.threshold_normal"));
    assert_non_null(qb_details_find(det, "strip.tpr_normal"));
    assert_non_null(qb_details_find(det, "strip.frr_normal"));
    assert_true(strlen(run.res.summary) > 0);

    /* bit-identical on a second run */
    qb_test_rerun_same(qb_defense_strip, &in, det);
    qb_test_run_free(&run);
    qb_qmodel_free(&qm);
    qb_model_free(&fp);
    case_free(&c);
}

static void test_defense_wired_fp32(void **state)
{
    (void)state;
    run_wired("fp32", 1, 0);
    run_wired("fp32", 0, 0);
    run_wired("fp32", 1, 1);
}

static void test_defense_wired_int8(void **state)
{
    (void)state;
    run_wired("int8", 1, 0);
    run_wired("int8", 0, 0);
}

/* A real (random) model: the triggered inputs really are the pool's
 * non-target evaluation images with the trigger, and the numbers agree
 * with the entropies the defense reports. */
static void test_defense_consistency(void **state)
{
    (void)state;
    strip_case c;
    case_init(&c);
    qb_model fp;
    qb_test_lenet(&fp, 21);
    qb_qmodel qm;
    qb_test_quantize(&qm, &fp, "fp32");
    qb_defense_input in;
    case_input(&c, &qm, 1, &in);
    qb_test_run run;
    qb_test_run_init(&run, 0);
    const qb_details *det = &run.det;
    qb_error err;
    assert_int_equal(qb_defense_strip(&in, &run.res, &err), 0);
    const qb_detail *hc = qb_details_find(det, "strip.entropy_clean");
    const qb_detail *ht = qb_details_find(det, "strip.entropy_trig");
    double thr = qb_test_detail1(det, "strip.threshold");
    assert_true(qb_test_detail1(det, "strip.frr") == qb_strip_rate_below(hc->v, hc->n, thr));
    assert_true(qb_test_detail1(det, "strip.tpr") == qb_strip_rate_below(ht->v, ht->n, thr));
    assert_true(qb_test_detail1(det, "strip.auroc") == qb_auroc_lower(ht->v, ht->n, hc->v, hc->n));
    assert_int_equal(run.res.detected,
                     qb_test_detail1(det, "strip.tpr") >= 0.5 ? QB_DETECTED_YES : QB_DETECTED_NO);

    /* recompute the triggered entropies from the definition */
    qb_dataset trig;
    qb_dataset_init(&trig, "t", 100, 1, 28, 28, 10);
    size_t j = 0;
    for (size_t i = 300; i < 600 && j < 100; i++) {
        uint32_t s = c.pool[i];
        if (c.test.labels[s] == 0) continue;
        memcpy(trig.images + j * 784, c.test.images + (size_t)s * 784, 784);
        qb_trigger_apply(&c.trigger, trig.images + j * 784, 1, 28, 28);
        j++;
    }
    assert_int_equal(j, 100);
    float *xt = malloc(100 * 784 * sizeof(float)), *xo = malloc(50 * 784 * sizeof(float));
    assert_non_null(xt);
    assert_non_null(xo);
    qb_dataset_batch_float(&trig, NULL, 0, 100, xt);
    qb_dataset_batch_float(&c.test, c.pool, 0, 50, xo); /* the overlay pool: pool[0, 50) */
    double h[100];
    assert_int_equal(qb_strip_entropies(&qm.model, NULL, xt, 100, xo, 50, 20, 0,
                                        qb_seed_derive(1234, "strip-overlay-trig"), h, &err),
                     0);
    assert_memory_equal(h, ht->v, sizeof h);
    free(xt);
    free(xo);
    qb_dataset_free(&trig);
    qb_test_run_free(&run);
    qb_qmodel_free(&qm);
    qb_model_free(&fp);
    case_free(&c);
}

static void test_defense_too_little_data(void **state)
{
    (void)state;
    strip_case c;
    case_init(&c);
    qb_model fp;
    wired_lenet(&fp, 0, 1);
    qb_qmodel qm;
    qb_test_quantize(&qm, &fp, "fp32");
    qb_defense_input in;
    qb_test_run run;
    qb_test_run_init(&run, 0);
    /* the clean splits need more than the 300 images before eval_from */
    c.kv[3] = (qb_param_kv){"n_frr", "151"};
    case_input(&c, &qm, 1, &in);
    qb_test_defense_fails(qb_defense_strip, &in, &run, "FRR split");
    /* more triggered inputs than the evaluation part's non-target images */
    c.kv[3] = (qb_param_kv){"n_frr", "100"};
    c.kv[4] = (qb_param_kv){"n_trig", "299"};
    case_input(&c, &qm, 1, &in);
    qb_test_defense_fails(qb_defense_strip, &in, &run, "triggered inputs");
    qb_test_run_free(&run);
    qb_qmodel_free(&qm);
    qb_model_free(&fp);
    case_free(&c);
}

int main(void)
{
    return qb_test_run_group(cmocka_unit_test(test_entropy_constant_and_uniform),
                             cmocka_unit_test(test_superimpose),
                             cmocka_unit_test(test_threshold_rule),
                             cmocka_unit_test(test_normal_threshold), cmocka_unit_test(test_auroc),
                             cmocka_unit_test(test_entropies_constant_uniform_model),
                             cmocka_unit_test(test_entropies_normalised),
                             cmocka_unit_test(test_defense_wired_fp32),
                             cmocka_unit_test(test_defense_wired_int8),
                             cmocka_unit_test(test_defense_consistency),
                             cmocka_unit_test(test_defense_too_little_data));
}
