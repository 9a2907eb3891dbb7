/* What every defense relies on: detail lists and their packing between
 * ranks, parameter tables, the MAD anomaly index, the registry. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/details.h"
#include "defenses/defense.h"

static void test_details_pack_roundtrip(void **state)
{
    (void)state;
    qb_details d, e;
    qb_details_init(&d);
    double v[3] = {1.5, -0.0, NAN};
    qb_details_add(&d, "nc.mask_l1", v, 3);
    qb_details_add1(&d, "strip.tpr", 0.25);
    int iv[2] = {7, -3};
    qb_details_add_int(&d, "ac.class_size", iv, 2);
    qb_details_add(&d, "empty", NULL, 0);
    qb_details_add1(&d, "strip.tpr", 0.5); /* replaces */
    assert_int_equal(d.n, 4);
    size_t len;
    uint8_t *buf = qb_details_pack(&d, &len);
    qb_error err;
    assert_int_equal(qb_details_unpack(&e, buf, len, &err), 0);
    assert_int_equal(e.n, 4);
    const qb_detail *x = qb_details_find(&e, "nc.mask_l1");
    assert_non_null(x);
    assert_int_equal(x->n, 3);
    assert_memory_equal(x->v, v, 2 * sizeof(double)); /* -0.0 keeps its sign bit */
    assert_true(isnan(x->v[2]));
    assert_true(qb_details_find(&e, "strip.tpr")->v[0] == 0.5);
    assert_true(qb_details_find(&e, "ac.class_size")->v[1] == -3.0);
    assert_int_equal(qb_details_find(&e, "empty")->n, 0);
    /* every truncation is refused, never read past the end */
    for (size_t cut = 0; cut < len; cut++) {
        qb_details t;
        assert_int_equal(qb_details_unpack(&t, buf, cut, &err), -1);
        assert_int_equal(t.n, 0);
    }
    /* a count claiming more values than the buffer holds */
    uint8_t *bad = malloc(len);
    memcpy(bad, buf, len);
    bad[4 + 2 + strlen("nc.mask_l1") + 7] = 0x7f; /* high byte of the first n */
    qb_details t2;
    assert_int_equal(qb_details_unpack(&t2, bad, len, &err), -1);
    assert_int_equal(t2.n, 0);
    free(bad);
    free(buf);
    qb_details_free(&d);
    qb_details_free(&e);
}

static void test_detail_names(void **state)
{
    (void)state;
    assert_true(qb_detail_name_ok("nc.mask_l1"));
    assert_true(qb_detail_name_ok("a-b_c.9"));
    assert_false(qb_detail_name_ok(""));
    assert_false(qb_detail_name_ok("."));
    assert_false(qb_detail_name_ok(".."));
    assert_false(qb_detail_name_ok("a/b"));
    assert_false(qb_detail_name_ok("a b"));
}

static const qb_param_def defs[] = {
    {"steps", QB_PARAM_INT, 100, 1, 1000, NULL, "steps"},
    {"lr", QB_PARAM_REAL, 0.1, 1e-6, 10, NULL, "learning rate"},
    {"path", QB_PARAM_STR, 0, 0, 0, "", "a file"},
    {NULL, 0, 0, 0, 0, NULL, NULL},
};

static void test_params(void **state)
{
    (void)state;
    qb_error err;
    assert_int_equal(qb_params_check(defs, "steps", "5", &err), 0);
    assert_int_equal(qb_params_check(defs, "steps", "0", &err), -1);
    assert_string_equal(err.msg, "steps: expected an integer in [1, 1000]");
    assert_int_equal(qb_params_check(defs, "steps", "2.5", &err), -1);
    assert_int_equal(qb_params_check(defs, "steps", "", &err), -1);
    assert_int_equal(qb_params_check(defs, "lr", "1e-3", &err), 0);
    assert_int_equal(qb_params_check(defs, "lr", "nan", &err), -1);
    assert_int_equal(qb_params_check(defs, "lr", "0.1x", &err), -1);
    assert_int_equal(qb_params_check(defs, "path", "/x y", &err), 0);
    assert_int_equal(qb_params_check(defs, "rate", "1", &err), -1);
    assert_string_equal(err.msg, "unknown parameter \"rate\"; expected one of: steps lr path");
    qb_param_kv kv[] = {{"lr", "0.5"}, {"path", "/m.qbm"}};
    qb_params p = {defs, 2, kv};
    assert_int_equal(qb_params_int(&p, "steps"), 100); /* default */
    assert_true(qb_params_num(&p, "lr") == 0.5);
    assert_string_equal(qb_params_str(&p, "path"), "/m.qbm");
    qb_params none = {defs, 0, NULL};
    assert_string_equal(qb_params_str(&none, "path"), "");
}

static void test_mad_anomaly(void **state)
{
    (void)state;
    /* hand computation: median 10; |dev| = 9 0 1 1 2 0 3 -> median 1;
     * MAD = 1.4826; index of 1 = 9 / 1.4826 = 6.0704... */
    double v[7] = {1, 10, 11, 9, 12, 10, 13}, idx[7];
    qb_mad_anomaly(v, 7, idx);
    assert_true(fabs(idx[0] - 9 / 1.4826) < 1e-12);
    assert_true(idx[1] == 0.0);
    assert_true(fabs(idx[6] - 3 / 1.4826) < 1e-12);
    assert_true(qb_median(v, 7) == 10.0);
    double even[4] = {4, 1, 3, 2};
    assert_true(qb_median(even, 4) == 2.5);
    /* MAD 0: values off the median are infinitely anomalous */
    double flat[5] = {2, 2, 2, 2, 7}, fi[5];
    qb_mad_anomaly(flat, 5, fi);
    assert_true(fi[0] == 0.0 && isinf(fi[4]));
}

/* The defenses' registry (defenses/registry.c): six defenses, every
 * parameter documented with a default in its range. */
static void test_registry_params(void **state)
{
    (void)state;
    size_t n_def = 0;
    for (const qb_defense_entry *e = qb_defenses; e->key.name; e++) {
        n_def++;
        /* every parameter has a valid default and documentation */
        for (const qb_param_def *d = e->params; d->key; d++) {
            assert_non_null(d->doc);
            if (d->type != QB_PARAM_STR) assert_true(d->def >= d->min && d->def <= d->max);
        }
    }
    assert_int_equal(n_def, 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_details_pack_roundtrip),
        cmocka_unit_test(test_detail_names),
        cmocka_unit_test(test_params),
        cmocka_unit_test(test_mad_anomaly),
        cmocka_unit_test(test_registry_params),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
