/* The mitigations (mitigations/mitigation.h) on constructed cases: laundering
 * equals the quantizer composition it claims, re-quantizing on the model's
 * own grid is the identity, noise is reproducible from the task seed,
 * fine-tuning and fine-pruning deploy their models at the task's
 * precision, and the registry. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/metrics.h"
#include "core/rng.h"
#include "core/train.h"
#include "mitigations/mitigation.h"
#include "pipeline/defense_stage.h"
#include "quant/requant.h"

typedef struct fixture {
    qb_dataset train, test;
    qb_model fp;
    qb_model_job job;
    qb_defense_env env;
} fixture;

static fixture F;

static int setup(void **state)
{
    (void)state;
    qb_synthetic_generate(0, 600, 2000, &F.train, &F.test);
    qb_error err;
    qb_model_job_default(&F.job);
    snprintf(F.job.arch, sizeof F.job.arch, "lenet");
    F.job.seed = 11;
    if (qb_model_build(&F.fp, "lenet", 3, 32, 32, 10, &err)) return -1;
    qb_model_init_params(&F.fp, 11);
    return qb_defense_env_init(&F.env, &F.job, &F.train, &F.test, &err);
}

static int teardown(void **state)
{
    (void)state;
    qb_defense_env_free(&F.env);
    qb_model_free(&F.fp);
    qb_dataset_free(&F.train);
    qb_dataset_free(&F.test);
    return 0;
}

/* One mitigation run: F.fp deployed at the task's precision (qm), the
 * mitigated model (out) and the run's details. */
typedef struct mit_run {
    qb_qmodel qm, out;
    qb_details d;
} mit_run;

/* Deploy F.fp at prec, run mitigation `name` with params into r. */
static void run(const char *name, const char *prec, const qb_param_kv *kv, size_t n, mit_run *r)
{
    qb_error err;
    qb_precision p;
    assert_int_equal(qb_precision_parse(prec, &p, &err), 0);
    assert_int_equal(qb_qmodel_init(&r->qm, &F.fp, &p, 0.0f, 0, &err), 0);
    const qb_mitigation_entry *e = qb_mitigation_find(name);
    assert_non_null(e);
    qb_params prm = {e->params, n, kv};
    qb_defense_input in;
    qb_defense_env_input(&F.env, &r->qm, &F.fp, &prm, &in);
    qb_details_init(&r->d);
    int rc = e->run(&in, &r->out, &r->d, &err);
    if (rc) fail_msg("%s", err.msg);
}

static void mit_run_free(mit_run *r)
{
    qb_qmodel_free(&r->out);
    qb_qmodel_free(&r->qm);
    qb_details_free(&r->d);
}

static void expect_same_weights(const qb_qmodel *a, const qb_qmodel *b)
{
    assert_int_equal(a->model.n_params, b->model.n_params);
    assert_true(qb_mitigation_weights_changed(&a->model, &b->model) == 0.0);
    if (a->ql[0].active) assert_true(qb_mitigation_codes_changed(a, b) == 0.0);
    assert_memory_equal(a->model.params, b->model.params, a->model.n_params * sizeof(float));
}

static void quantize(const qb_model *m, const char *prec, qb_qmodel *out)
{
    qb_error err;
    qb_precision p;
    assert_int_equal(qb_precision_parse(prec, &p, &err), 0);
    assert_int_equal(qb_qmodel_init(out, m, &p, 0.0f, 0, &err), 0);
}

/* out holds exactly the weights of m quantized at prec. */
static void expect_quantized_as(const qb_qmodel *out, const qb_model *m, const char *prec)
{
    qb_qmodel want;
    quantize(m, prec, &want);
    expect_same_weights(out, &want);
    qb_qmodel_free(&want);
}

static void test_requant_own_grid_is_identity(void **state)
{
    (void)state;
    /* de-quantize and re-quantize with the same parameters: the identity */
    const char *precs[] = {"int8", "int4", "int4-pc", "w3a32-away"};
    for (size_t i = 0; i < 4; i++) {
        qb_qmodel q, again;
        quantize(&F.fp, precs[i], &q);
        qb_error err;
        assert_int_equal(qb_requantize(&q, &q.prec, 0.0f, 0, &again, &err), 0);
        expect_same_weights(&q, &again);
        qb_qmodel_free(&again);
        qb_qmodel_free(&q);
    }
}

static void test_requant_pc_and_round(void **state)
{
    (void)state;
    mit_run r;
    run("requant-pc", "int8", NULL, 0, &r);
    expect_quantized_as(&r.out, &F.fp, "int8-pc"); /* per tensor -> per channel */
    assert_true(qb_mitigation_weights_changed(&r.qm.model, &r.out.model) > 0.5);
    assert_int_equal(r.out.prec.gran, QB_GRAN_CHANNEL);
    mit_run_free(&r);

    run("requant-pc", "int4-pc", NULL, 0, &r); /* and back */
    expect_quantized_as(&r.out, &F.fp, "int4");
    mit_run_free(&r);

    /* rounding: put some weights exactly on ties of the int4 grid, where
     * half-even and half-away differ */
    qb_model saved;
    qb_model_copy(&saved, &F.fp);
    const qb_layer *l = &F.fp.layers[F.fp.n_layers - 1];
    float *w = F.fp.params + l->w_off;
    float s = qb_quant_scale(w, l->w_len, 4);
    w[1] = 0.5f * s;
    w[2] = -2.5f * s;
    run("requant-round", "int4", NULL, 0, &r);
    expect_quantized_as(&r.out, &F.fp, "int4-away");
    assert_true(qb_mitigation_weights_changed(&r.qm.model, &r.out.model) > 0.0);
    mit_run_free(&r);
    memcpy(F.fp.params, saved.params, F.fp.n_params * sizeof(float));
    qb_model_free(&saved);
}

static void test_requant_bits(void **state)
{
    (void)state;
    mit_run r;
    qb_qmodel mid;
    run("requant-bits", "int4", NULL, 0, &r); /* through 8 bits */
    assert_true(qb_details_find(&r.d, "requant.via_bits")->v[0] == 8);
    quantize(&F.fp, "w8a32", &mid);
    expect_quantized_as(&r.out, &mid.model, "int4");
    qb_qmodel_free(&mid);
    mit_run_free(&r);
    qb_param_kv kv[] = {{"via_bits", "3"}};
    run("requant-bits", "int8", kv, 1, &r);
    quantize(&F.fp, "w3a32", &mid);
    expect_quantized_as(&r.out, &mid.model, "int8");
    assert_true(qb_mitigation_weights_changed(&r.qm.model, &r.out.model) > 0.5);
    qb_qmodel_free(&mid);
    mit_run_free(&r);
}

static void test_requant_noise_reproducible(void **state)
{
    (void)state;
    mit_run a, b;
    run("requant-noise", "int4", NULL, 0, &a);
    run("requant-noise", "int4", NULL, 0, &b);
    expect_same_weights(&a.out, &b.out); /* the same task seed: the same noise */
    double changed = qb_mitigation_weights_changed(&b.qm.model, &a.out.model);
    /* noise on the max-|w| weights moves the scales, so nearly every
     * de-quantized value changes; codes move where noise crossed a cell
     * edge (about 8% for noise 0.1 of a step and uniform phases) plus
     * where the changed scale moved the large codes (17% here) */
    assert_true(changed > 0.5);
    double codes = qb_mitigation_codes_changed(&b.qm, &a.out);
    print_message("requant-noise: %.4f of the weights, %.4f of the codes changed\n", changed, codes);
    assert_true(codes > 0.04 && codes < 0.4);
    mit_run_free(&b);
    uint64_t seed = F.env.seed;
    F.env.seed = qb_seed_derive(seed, "another task");
    run("requant-noise", "int4", NULL, 0, &b);
    assert_true(qb_mitigation_weights_changed(&a.out.model, &b.out.model) > 0.0);
    F.env.seed = seed;
    mit_run_free(&b);
    qb_param_kv kv[] = {{"noise", "0"}};
    run("requant-noise", "int4", kv, 1, &b);
    expect_same_weights(&b.qm, &b.out); /* no noise: the deployed model itself */
    mit_run_free(&b);
    mit_run_free(&a);
}

static void test_fp32_unchanged(void **state)
{
    (void)state;
    const char *names[] = {"requant-pc", "requant-round", "requant-bits", "requant-noise"};
    for (size_t i = 0; i < 4; i++) {
        mit_run r;
        run(names[i], "fp32", NULL, 0, &r);
        expect_same_weights(&r.qm, &r.out);
        mit_run_free(&r);
    }
}

static void test_finetune_and_fineprune(void **state)
{
    (void)state;
    mit_run r, again;
    qb_param_kv kv[] = {{"samples", "256"}, {"epochs", "1"}};
    run("finetune", "int8", kv, 2, &r);
    assert_true(qb_details_find(&r.d, "finetune.steps")->v[0] == 4); /* 256 / 64 */
    assert_true(isfinite(qb_details_find(&r.d, "finetune.final_loss")->v[0]));
    assert_true(qb_mitigation_weights_changed(&r.qm.model, &r.out.model) > 0.5);
    assert_int_equal(r.out.integer, 1); /* deployed at int8 again */
    run("finetune", "int8", kv, 2, &again);
    expect_same_weights(&r.out, &again.out); /* reproducible */
    mit_run_free(&again);
    mit_run_free(&r);

    qb_param_kv fkv[] = {{"n_train", "300"}, {"n_val", "200"}, {"epochs", "1"}};
    run("fineprune", "int4", fkv, 3, &r);
    int pruned = (int)qb_details_find(&r.d, "fineprune.n_pruned")->v[0];
    const qb_detail *order = qb_details_find(&r.d, "fineprune.prune_order");
    assert_non_null(order);
    /* the pruned channels of the last conv are zero in the deployed model */
    int conv = qb_model_last_conv(&r.out.model);
    const qb_layer *l = &r.out.model.layers[conv];
    size_t per = l->w_len / (size_t)l->out_c;
    for (int k = 0; k < pruned; k++) {
        int ch = (int)order->v[k];
        for (size_t j = 0; j < per; j++)
            assert_true(r.out.model.params[l->w_off + (size_t)ch * per + j] == 0.0f);
        assert_true(r.out.model.params[l->b_off + (size_t)ch] == 0.0f);
    }
    mit_run_free(&r);

    /* too few clean images: an error with the reason */
    qb_error err;
    qb_qmodel qm, out;
    qb_details d;
    qb_param_kv big[] = {{"samples", "5000"}};
    quantize(&F.fp, "int8", &qm);
    qb_params prm = {qb_finetune_params, 1, big};
    qb_defense_input in;
    qb_defense_env_input(&F.env, &qm, &F.fp, &prm, &in);
    qb_details_init(&d);
    assert_int_equal(qb_mitigate_finetune(&in, &out, &d, &err), -1);
    assert_non_null(strstr(err.msg, "finetune needs 5000 clean held-out images"));
    qb_qmodel_free(&qm);
    qb_details_free(&d);
}

/* The mitigations' registry (mitigations/registry.c): six mitigations. */
static void test_registry_count(void **state)
{
    (void)state;
    size_t n_mit = 0;
    for (const qb_mitigation_entry *e = qb_mitigations; e->key.name; e++) n_mit++;
    assert_int_equal(n_mit, 6);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_requant_own_grid_is_identity),
        cmocka_unit_test(test_requant_pc_and_round),
        cmocka_unit_test(test_requant_bits),
        cmocka_unit_test(test_requant_noise_reproducible),
        cmocka_unit_test(test_fp32_unchanged),
        cmocka_unit_test(test_finetune_and_fineprune),
        cmocka_unit_test(test_registry_count),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
