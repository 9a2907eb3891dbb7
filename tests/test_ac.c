/* Activation Clustering (defenses/ac.c): the class-level rule on
 * constructed activations, and the defense end to end on a small model. */
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
#include "defenses/ac.h"
#include "defenses/defense.h"
#include "tests/testutil_defenses.h"
#include "tests/testutil.h"

#define DIM 32

/* Constructed activations (n, DIM), samples of the classes interleaved:
 *   class 0: 300 points of N(0, I) and 100 of N(8, I) (the "poison"),
 *   class 1: 400 points of one N(0, I) blob,
 *   class 2: 150 points of N(0, I) and 150 of N(8, I) (two halves).
 * blob_b (n) marks the N(8, I) points. */
static size_t make_classes(float **act, uint8_t **labels, uint8_t **blob_b)
{
    const size_t n = 1100;
    float *x = xmalloc(n * DIM, sizeof(float));
    uint8_t *lab = xmalloc(n, 1), *b = xcalloc(n, 1);
    size_t left[3][2] = {{300, 100}, {400, 0}, {150, 150}};
    qb_rng r;
    qb_rng_seed(&r, 42);
    for (size_t i = 0; i < n; i++) {
        int c;
        do c = (int)qb_rng_below(&r, 3); while (left[c][0] + left[c][1] == 0);
        int far = qb_rng_below(&r, (uint32_t)(left[c][0] + left[c][1])) >= left[c][0];
        left[c][far]--;
        lab[i] = (uint8_t)c;
        b[i] = (uint8_t)far;
        for (int j = 0; j < DIM; j++) x[i * DIM + j] = qb_rng_normal(&r) + (far ? 8.0f : 0.0f);
    }
    *act = x;
    *labels = lab;
    *blob_b = b;
    return n;
}

static const qb_ac_config default_cfg = {
    .dims = 10, .restarts = 10, .max_iter = 300, .silhouette_max = 15000, .seed = 5};

static void test_rule_on_blobs(void **state)
{
    (void)state;
    float *act;
    uint8_t *lab, *far;
    size_t n = make_classes(&act, &lab, &far);
    qb_ac_class cls[3];
    uint8_t *small = xmalloc(n, 1);
    qb_error err;
    assert_int_equal(qb_ac_analyze(act, n, DIM, lab, 3, &default_cfg, cls, small, &err), 0);

    /* the 25% far blob: flagged, its samples exactly the smaller cluster */
    assert_int_equal(cls[0].n, 400);
    assert_int_equal(cls[0].n_small, 100);
    assert_true(cls[0].small_frac == 0.25);
    assert_true(cls[0].silhouette > 0.5);
    assert_int_equal(cls[0].flagged, 1);
    for (size_t i = 0; i < n; i++)
        if (lab[i] == 0) assert_int_equal(small[i], far[i]);
    /* one Gaussian blob: 2-means halves it, not flagged */
    assert_int_equal(cls[1].n, 400);
    assert_true(cls[1].small_frac > QB_AC_SMALL_FRAC);
    assert_true(cls[1].silhouette < 0.2);
    assert_int_equal(cls[1].flagged, 0);
    /* two well separated halves: high silhouette, but no small cluster */
    assert_true(cls[2].small_frac == 0.5);
    assert_true(cls[2].silhouette > 0.5);
    assert_int_equal(cls[2].flagged, 0);

    /* bit-identical on a second run; a subsampled silhouette differs only
     * a little and leaves the clusters alone */
    qb_ac_class again[3];
    uint8_t *small2 = xmalloc(n, 1);
    assert_int_equal(qb_ac_analyze(act, n, DIM, lab, 3, &default_cfg, again, small2, &err), 0);
    for (int c = 0; c < 3; c++) { /* field by field: the struct has padding */
        assert_int_equal(cls[c].n_small, again[c].n_small);
        assert_memory_equal(&cls[c].silhouette, &again[c].silhouette, sizeof(double));
        assert_int_equal(cls[c].flagged, again[c].flagged);
    }
    assert_memory_equal(small, small2, n);
    qb_ac_config sub = default_cfg;
    sub.silhouette_max = 200;
    assert_int_equal(qb_ac_analyze(act, n, DIM, lab, 3, &sub, again, small2, &err), 0);
    assert_memory_equal(small, small2, n);
    assert_true(again[0].silhouette != cls[0].silhouette);
    assert_true(fabs(again[0].silhouette - cls[0].silhouette) < 0.05);
    assert_int_equal(again[0].flagged, 1);
    free(small2);
    free(small);
    free(act);
    free(lab);
    free(far);
}

static void test_too_small_class(void **state)
{
    (void)state;
    float act[8 * 4];
    uint8_t lab[8] = {0, 0, 0, 1, 1, 0, 0, 0}; /* class 1 has 2 samples */
    for (int i = 0; i < 32; i++) act[i] = (float)(i % 7);
    qb_ac_class cls[2];
    uint8_t small[8];
    qb_error err;
    assert_int_equal(qb_ac_analyze(act, 8, 4, lab, 2, &default_cfg, cls, small, &err), -1);
    assert_non_null(strstr(err.msg, "class 1 has 2"));
    uint8_t lab3[8] = {0, 0, 0, 0, 0, 0, 0, 0}; /* class 1 empty */
    assert_int_equal(qb_ac_analyze(act, 8, 4, lab3, 2, &default_cfg, cls, small, &err), -1);
    assert_non_null(strstr(err.msg, "class 1 has 0"));
}

/* The defense on a small random-weight model over synthetic images: the
 * details and their consistency, determinism, no-poison ground truth. */
static void test_defense_end_to_end(void **state)
{
    (void)state;
    qb_test_train_case c;
    qb_test_train_case_init(&c, 7, qb_ac_params);
    qb_test_train_case_run(&c, qb_defense_ac, 0);
    qb_test_train_case_run(&c, qb_defense_ac, 1);
    qb_test_run *r1 = &c.run[0], *r2 = &c.run[1];
    static const qb_test_detail_len written[] = {
        {"ac.cluster_small_frac", 10}, {"ac.silhouette", 10}, {"ac.flagged", 10},
        {"ac.class_size", 10}, {"ac.small_poisoned", 10}, {"ac.confusion", 4}};
    qb_test_train_case_assert_same(&c, written, sizeof written / sizeof written[0]);
    const qb_detail *conf = qb_details_find(&r1->det, "ac.confusion");
    const qb_detail *flag = qb_details_find(&r1->det, "ac.flagged");
    const qb_detail *size = qb_details_find(&r1->det, "ac.class_size");
    const qb_detail *frac = qb_details_find(&r1->det, "ac.cluster_small_frac");
    const qb_detail *sil = qb_details_find(&r1->det, "ac.silhouette");
    assert_true(conf->v[0] + conf->v[1] + conf->v[2] + conf->v[3] == (double)c.train.n);
    assert_true(conf->v[0] + conf->v[3] == (double)c.n_poisoned);
    int any = 0;
    double total = 0;
    for (int k = 0; k < 10; k++) {
        int want = frac->v[k] < QB_AC_SMALL_FRAC && sil->v[k] > QB_AC_SILHOUETTE;
        assert_int_equal((int)flag->v[k], want);
        any |= want;
        total += size->v[k];
    }
    assert_int_equal(r1->res.detected, any);
    assert_true(total == (double)c.train.n);

    /* nothing poisoned: no TP/FN; a parameter from the spec is honoured */
    qb_test_train_case_unpoisoned(&c);
    qb_param_kv kv[] = {{"restarts", "1"}, {"silhouette_max", "100"}};
    c.in.params.kv = kv;
    c.in.params.n = 2;
    qb_test_train_case_run(&c, qb_defense_ac, 1);
    conf = qb_details_find(&r2->det, "ac.confusion");
    assert_true(conf->v[0] == 0 && conf->v[3] == 0);
    assert_true(conf->v[1] + conf->v[2] == (double)c.train.n);

    qb_test_train_case_free(&c);
}

int main(void)
{
    return qb_test_run_group(cmocka_unit_test(test_rule_on_blobs),
                             cmocka_unit_test(test_too_small_class),
                             cmocka_unit_test(test_defense_end_to_end));
}
