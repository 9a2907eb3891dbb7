/* The per-task pipeline (pipeline/pipeline.c) on the synthetic dataset. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/train.h"
#include "pipeline/pipeline.h"
#include "pipeline/preflight.h"
#include "tests/testutil.h"

/* The store key of the tests' models: the trigger name stands in for the
 * canonical description. */
static size_t trigger_key(const void *trigger, size_t model, char *buf, size_t n)
{
    (void)model;
    return (size_t)snprintf(buf, n, "%s", (const char *)trigger);
}

/* Entries that name no registered stage (what a task with an unknown name
 * would carry). */
static const qb_defense_entry unknown_defense = {{"nc2", NULL}, NULL, NULL};
static const qb_mitigation_entry unknown_mitigation = {{"retrain", NULL}, NULL, NULL};

static void params(qb_task_params *p, const char *trigger, const char *prec, uint64_t model_id,
                   int epochs)
{
    memset(p, 0, sizeof *p);
    p->dataset = "synthetic";
    qb_model_job_default(&p->job);
    snprintf(p->job.arch, sizeof p->job.arch, "lenet");
    p->job.train.epochs = epochs;
    p->job.seed = 4;
    qb_error err;
    assert_int_equal(qb_trigger_parse(trigger, &p->job.trigger, &err), 0);
    assert_int_equal(qb_precision_parse(prec, &p->precision, &err), 0);
    p->model_key = trigger_key;
    p->model_key_ctx = trigger;
    p->model_id = model_id;
    p->mitigation = NULL; /* none */
    p->defense = NULL;    /* none */
}

/* The model store dir/models (sdir: its path, 600 bytes). */
static void open_store(const char *dir, char *sdir, qb_model_store *store)
{
    qb_error err;
    snprintf(sdir, 600, "%s/models", dir);
    if (qb_model_store_open(store, sdir, &err)) fail_msg("%s", err.msg);
}

/* Two tasks of one model on one worker: trained once; a second worker
 * with the same store loads it instead of training; metrics identical. */
static void test_train_once_and_reuse(void **state)
{
    (void)state;
    char *dir = qb_test_tmpdir(), sdir[600];
    qb_model_store store;
    open_store(dir, sdir, &store);

    qb_worker w1, w2;
    qb_worker_init(&w1, &store);
    qb_worker_init(&w2, &store);
    qb_task_params a, b;
    params(&a, "square", "fp32", 101, 1);
    params(&b, "square", "int8", 101, 1);
    qb_task_outcome oa, ob, ob2;
    qb_pipeline_run(&w1, &a, &oa);
    qb_pipeline_run(&w1, &b, &ob);
    if (oa.status == QB_STATUS_FAILED) fail_msg("%s", oa.message);
    assert_int_equal(w1.trainings, 1);
    assert_int_equal(oa.trained, 1);
    assert_int_equal(ob.trained, 0);
    assert_true(oa.ca_quant > 0.5); /* learnable in one epoch */
    assert_false(isnan(oa.asr_quant));
    assert_int_equal(oa.detected, -1);

    qb_pipeline_run(&w2, &b, &ob2); /* another rank: from the store */
    assert_int_equal(w2.trainings, 0);
    assert_true(ob2.ca_quant == ob.ca_quant && ob2.asr_quant == ob.asr_quant);
    assert_true(ob.ca_mitig == ob.ca_quant);
    qb_worker_free(&w1);
    qb_worker_free(&w2);
    qb_test_tmpdir_remove(dir);
    free(dir);
}

/* Without training the backdoor cannot reach the bar: invalid, kept, with
 * the reason. A clean model is always valid; an unknown stage fails. */
static void test_status(void **state)
{
    (void)state;
    qb_worker w;
    qb_worker_init(&w, NULL);
    qb_task_params p;
    qb_task_outcome o;
    params(&p, "square", "fp32", 1, 0);
    qb_pipeline_run(&w, &p, &o);
    assert_int_equal(o.status, QB_STATUS_INVALID);
    assert_non_null(strstr(o.message, "validity bar"));
    params(&p, "clean", "fp32", 2, 0);
    qb_pipeline_run(&w, &p, &o);
    assert_int_equal(o.status, QB_STATUS_OK);
    assert_true(isnan(o.asr_quant));
    p.defense = &unknown_defense;
    qb_pipeline_run(&w, &p, &o);
    assert_int_equal(o.status, QB_STATUS_FAILED);
    assert_non_null(strstr(o.message, "unknown defense \"nc2\""));
    assert_int_equal(o.detected, 2);
    p.defense = NULL; /* none */
    p.dataset = "cifar10"; /* not installed here: a failed task, not a crash */
    p.data_dir = "/nonexistent";
    qb_pipeline_run(&w, &p, &o);
    assert_int_equal(o.status, QB_STATUS_FAILED);
    assert_non_null(strstr(o.message, "data: "));
    qb_worker_free(&w);
}

/* The defend stage: a defense's raw results come back as details, twice
 * the same; a defense that cannot run (too little clean data for its
 * default splits: synthetic has 2000 test images) fails the task with
 * detected = error, never "not detected". */
static void test_defend(void **state)
{
    (void)state;
    qb_worker w;
    qb_worker_init(&w, NULL);
    qb_task_params p;
    qb_task_outcome o, o2;
    params(&p, "square", "int8", 3, 0); /* untrained (invalid): the stages run all the same */
    p.defense = qb_defense_find("forensics");
    qb_pipeline_run(&w, &p, &o);
    if (o.status == QB_STATUS_FAILED) fail_msg("%s", o.message);
    assert_int_equal(o.status, QB_STATUS_INVALID);
    assert_true(o.detected == 0 || o.detected == 1);
    const qb_detail *d = qb_details_find(&o.details, "forensics.p_cell");
    assert_non_null(d);
    assert_int_equal(d->n, 1);

    p.defense = qb_defense_find("strip"); /* default splits need 3000 clean images before the evaluation half */
    qb_pipeline_run(&w, &p, &o2);
    assert_int_equal(o2.status, QB_STATUS_FAILED);
    assert_int_equal(o2.detected, QB_DETECTED_ERROR);
    assert_non_null(strstr(o2.message, "defend: strip: "));
    assert_false(isnan(o2.ca_quant)); /* the metrics measured before stay */
    qb_task_outcome_free(&o2);

    qb_param_kv kv[] = {{"n_calib", "200"}, {"n_frr", "200"}, {"n_overlay", "200"},
                        {"n_trig", "200"}, {"n", "20"}};
    p.defense_params = (qb_params){NULL, 5, kv};
    qb_pipeline_run(&w, &p, &o2);
    if (o2.status == QB_STATUS_FAILED) fail_msg("%s", o2.message);
    assert_non_null(qb_details_find(&o2.details, "strip.tpr"));
    qb_task_outcome o3;
    qb_pipeline_run(&w, &p, &o3); /* reproducible */
    assert_int_equal(o3.details.n, o2.details.n);
    for (size_t k = 0; k < o2.details.n; k++) {
        assert_int_equal(o3.details.items[k].n, o2.details.items[k].n);
        assert_memory_equal(o3.details.items[k].v, o2.details.items[k].v,
                            o2.details.items[k].n * sizeof(double));
    }
    qb_task_outcome_free(&o);
    qb_task_outcome_free(&o2);
    qb_task_outcome_free(&o3);

    /* a mitigation: its model is deployed, measured and defended */
    p.defense = qb_defense_find("forensics");
    p.defense_params = (qb_params){0};
    p.mitigation = qb_mitigation_find("requant-pc");
    qb_pipeline_run(&w, &p, &o);
    if (o.status == QB_STATUS_FAILED) fail_msg("%s", o.message);
    assert_false(isnan(o.ca_mitig));
    assert_non_null(qb_details_find(&o.details, "mitigation.ca_eval"));
    assert_true(qb_details_find(&o.details, "mitigation.codes_changed")->v[0] > 0.0);
    assert_non_null(qb_details_find(&o.details, "forensics.p_cell"));
    qb_task_outcome_free(&o);
    p.mitigation = &unknown_mitigation;
    qb_pipeline_run(&w, &p, &o);
    assert_int_equal(o.status, QB_STATUS_FAILED);
    assert_non_null(strstr(o.message, "mitigate: unknown mitigation \"retrain\""));
    qb_task_outcome_free(&o);
    qb_worker_free(&w);
}

/* A model store that cannot take the trained model (its directory gone:
 * what a full disk or lost permissions look like) is the environment's
 * failure: the task is measured with the model in memory, never recorded
 * as failed; the model is trained again where it is needed again. */
static void test_store_failure_is_not_a_task_failure(void **state)
{
    (void)state;
    char *dir = qb_test_tmpdir(), sdir[600];
    qb_model_store store;
    open_store(dir, sdir, &store);
    qb_test_tmpdir_remove(sdir); /* every put now fails */

    qb_worker w, w2;
    qb_worker_init(&w, &store);
    qb_worker_init(&w2, &store);
    qb_task_params a;
    params(&a, "square", "fp32", 102, 1);
    qb_task_outcome o, o2;
    qb_pipeline_run(&w, &a, &o);
    if (o.status == QB_STATUS_FAILED) fail_msg("recorded failed: %s", o.message);
    assert_true(o.status == QB_STATUS_OK || o.status == QB_STATUS_INVALID); /* measured */
    assert_int_equal(o.trained, 1);
    qb_pipeline_run(&w2, &a, &o2); /* another rank: not in the store, trained again */
    assert_int_equal(w2.trainings, 1);
    assert_true(o2.ca_quant == o.ca_quant && o2.asr_quant == o.asr_quant);
    qb_task_outcome_free(&o);
    qb_task_outcome_free(&o2);
    qb_worker_free(&w);
    qb_worker_free(&w2);
    qb_test_tmpdir_remove(dir);
    free(dir);
}

/* A spec whose every task would fail is refused before the first task:
 * a target class the dataset does not have, a trigger larger than the
 * images, a dataset that does not load. A good spec passes. */
static void preflight_case(const char *text, const char *frag)
{
    qb_spec s;
    qb_error err;
    if (qb_spec_parse(&s, text, strlen(text), "t.yaml", &err)) fail_msg("%s", err.msg);
    int rc = qb_spec_preflight(&s, &err);
    if (!frag) {
        if (rc) fail_msg("%s", err.msg);
    } else {
        assert_int_equal(rc, -1);
        qb_test_assert_msg_has(&err, frag);
        qb_test_assert_msg_has(&err, "t.yaml");
    }
    qb_spec_free(&s);
}

static void test_preflight(void **state)
{
    (void)state;
    const char *base = "dataset: synthetic\nseed: 0\ntrigger: [clean, square]\n"
                       "precision: fp32\ntrain: {arch: lenet, epochs: 1}\n";
    preflight_case(base, NULL);
    char text[512];
    snprintf(text, sizeof text, "%sattack: {target: 50}\n", base);
    preflight_case(text, "target class 50 outside 0..9");
    snprintf(text, sizeof text, "%sattack: {size: 40}\n", base);
    preflight_case(text, "`trigger: square`");
    preflight_case("dataset: mnist\nseed: 0\ntrigger: clean\nprecision: fp32\n"
                   "data_dir: /nonexistent/qblind-data\n",
                   "dataset mnist cannot be loaded");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_train_once_and_reuse),
        cmocka_unit_test(test_status),
        cmocka_unit_test(test_defend),
        cmocka_unit_test(test_store_failure_is_not_a_task_failure),
        cmocka_unit_test(test_preflight),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
