/* Every defense and every mitigation on a graph model (issue 15): resnet20
 * on small inputs (the synthetic data set shrunk to 3x16x16 by 2x2
 * averaging), trained briefly, deployed at fp32 (its batch norms as they
 * are) and at int8 (batch norms folded, integer inference), with budgets
 * small enough for a unit test. Each stage must run and give a verdict
 * (or a model), not an error; the checks specific to graphs:
 *   - AC/SS read the penultimate representation: the global average pool
 *     (64 channels);
 *   - Fine-Pruning ranks those 64 channels and prunes them in the last
 *     linear layer (the pruned columns are zero in the deployed result);
 *   - finetune at fp32 runs the batch norms in training mode (their
 *     running statistics move), and every mitigation's deployed model has
 *     the deployed model's layers (weights_changed/codes_changed compare
 *     them index by index). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dataset.h"
#include "core/metrics.h"
#include "core/model.h"
#include "core/train.h"
#include "core/xalloc.h"
#include "attacks/trigger.h"
#include "defenses/defense.h"
#include "defenses/verdict.h"
#include "mitigations/mitigation.h"
#include "quant/qmodel.h"
#include "tests/testutil.h"

/* d16 = d (3x32x32) averaged over 2x2 blocks (rounded). */
static void shrink(const qb_dataset *d, qb_dataset *d16)
{
    qb_dataset_init(d16, "synthetic16", d->n, d->c, d->h / 2, d->w / 2, d->classes);
    for (size_t i = 0; i < d->n; i++) {
        d16->labels[i] = d->labels[i];
        for (int c = 0; c < d->c; c++)
            for (int y = 0; y < d16->h; y++)
                for (int x = 0; x < d16->w; x++) {
                    const uint8_t *p = d->images + ((i * d->c + c) * d->h + 2 * y) * d->w + 2 * x;
                    int s = p[0] + p[1] + p[d->w] + p[d->w + 1];
                    d16->images[((i * d16->c + c) * d16->h + y) * d16->w + x] = (uint8_t)((s + 2) / 4);
                }
    }
}

typedef struct fixture {
    qb_dataset train, test;
    qb_model fp;        /* resnet20, trained */
    uint8_t *is_poisoned;
    uint32_t *pool;
    qb_trigger trigger;
} fixture;

static int setup(void **state)
{
    fixture *f = xcalloc(1, sizeof *f);
    qb_dataset tr, te;
    qb_synthetic_generate(3, 600, 400, &tr, &te);
    shrink(&tr, &f->train);
    shrink(&te, &f->test);
    qb_dataset_free(&tr);
    qb_dataset_free(&te);
    qb_error err;
    if (qb_model_build(&f->fp, "resnet20", 3, 16, 16, 10, &err)) return -1;
    qb_model_init_params(&f->fp, 1);
    qb_train_config cfg;
    qb_train_config_default(&cfg);
    cfg.epochs = 2;
    cfg.batch = 32;
    cfg.seed = 2;
    if (qb_train(&f->fp, &f->train, &cfg, NULL, &err)) return -1;
    f->is_poisoned = xcalloc(f->train.n, 1);
    for (size_t i = 0; i < f->train.n; i += 10) f->is_poisoned[i] = 1; /* ground truth only */
    f->pool = xmalloc(f->test.n, sizeof(uint32_t));
    for (size_t i = 0; i < f->test.n; i++) f->pool[i] = (uint32_t)i;
    qb_trigger_default(&f->trigger, QB_TRIGGER_SQUARE);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    qb_model_free(&f->fp);
    qb_dataset_free(&f->train);
    qb_dataset_free(&f->test);
    free(f->is_poisoned);
    free(f->pool);
    free(f);
    return 0;
}

/* The defense input of the deployed model qm, with parameters kv. */
static void input_of(const fixture *f, const qb_qmodel *qm, const qb_param_def *defs,
                     const qb_param_kv *kv, size_t n_kv, qb_defense_input *in)
{
    memset(in, 0, sizeof *in);
    in->model = &qm->model;
    in->qmodel = qm;
    in->fp32 = &f->fp;
    in->precision = &qm->prec;
    in->train = &f->train;
    in->is_poisoned = f->is_poisoned;
    for (size_t i = 0; i < f->train.n; i++) in->n_poisoned += f->is_poisoned[i];
    in->test = &f->test;
    in->pool = f->pool;
    in->n_pool = f->test.n;
    in->eval_from = 300;
    in->trigger = &f->trigger;
    in->attacked = 1;
    in->seed = 99;
    in->params = (qb_params){.defs = defs, .n = n_kv, .kv = kv};
}

/* Small budgets per stage. */
static const qb_param_kv nc_kv[] = {{"n_clean", "64"},        {"n_check", "64"},
                                    {"steps_per_epoch", "2"}, {"max_epochs", "3"},
                                    {"patience", "1"},        {"early_stop_patience", "2"}};
static const qb_param_kv strip_kv[] = {{"n", "8"},      {"n_overlay", "64"}, {"n_calib", "64"},
                                       {"n_frr", "64"}, {"n_trig", "64"}};
static const qb_param_kv fp_kv[] = {
    {"n_train", "160"}, {"n_val", "100"}, {"epochs", "1"}, {"batch", "32"}, {"max_ca_drop", "10"}};
static const qb_param_kv ft_kv[] = {{"samples", "128"}, {"epochs", "1"}, {"batch", "32"}};
static const qb_param_kv ac_kv[] = {{"restarts", "2"}, {"max_iter", "50"}};

static const qb_param_kv *kv_for(const char *name, size_t *n)
{
#define KV(a) (*n = sizeof(a) / sizeof(a[0]), a)
    if (!strcmp(name, "nc")) return KV(nc_kv);
    if (!strcmp(name, "strip")) return KV(strip_kv);
    if (!strcmp(name, "fp") || !strcmp(name, "fineprune")) return KV(fp_kv);
    if (!strcmp(name, "finetune")) return KV(ft_kv);
    if (!strcmp(name, "ac")) return KV(ac_kv);
#undef KV
    *n = 0;
    return NULL;
}

static void quantize(const qb_model *fp, const char *prec, qb_qmodel *qm)
{
    qb_precision p;
    qb_error err;
    assert_int_equal(qb_precision_parse(prec, &p, &err), 0);
    if (qb_qmodel_init(qm, fp, &p, 0.0f, 0, &err)) fail_msg("%s", err.msg);
}

static void defenses_at(fixture *f, const char *prec)
{
    qb_qmodel qm;
    quantize(&f->fp, prec, &qm);
    assert_int_equal(qm.folded, strcmp(prec, "fp32") != 0);
    const int pen = qb_model_penultimate_layer(&qm.model);
    assert_int_equal(qm.model.layers[pen].kind, QB_LAYER_AVGPOOL);
    print_message("  resnet20 %s: CA %.3f\n", prec, qb_metric_accuracy(&qm.model, &f->test));
    for (int k = 0; qb_defenses[k].key.name; k++) {
        const qb_defense_entry *e = &qb_defenses[k];
        if (e->key.alias_of) continue;
        size_t n;
        const qb_param_kv *kv = kv_for(e->key.name, &n);
        qb_defense_input in;
        input_of(f, &qm, e->params, kv, n, &in);
        qb_details det;
        qb_details_init(&det);
        qb_defense_result res = {.detected = 42, .details = &det};
        qb_error err;
        if (e->run(&in, &res, &err)) fail_msg("%s at %s: %s", e->key.name, prec, err.msg);
        assert_true(res.detected == QB_DETECTED_YES || res.detected == QB_DETECTED_NO ||
                    res.detected == QB_DETECTED_NA);
        assert_true(det.n > 0);
        print_message("  resnet20 %-5s %-9s -> %2d  %s\n", prec, e->key.name, res.detected,
                      res.summary);
        if (!strcmp(e->key.name, "fp")) {
            assert_int_equal((int)qb_test_detail1(&det, "fp.layer"), pen);
            const qb_detail *o = qb_details_find(&det, "fp.prune_order");
            assert_non_null(o);
            assert_int_equal(o->n, 64);
        }
        qb_details_free(&det);
    }
    qb_qmodel_free(&qm);
}

static void test_defenses_fp32(void **state) { defenses_at(*state, "fp32"); }
static void test_defenses_int8(void **state) { defenses_at(*state, "int8"); }

/* Running statistics of every batch norm of m: (sum over their tails). */
static int bn_stats_differ(const qb_model *a, const qb_model *b)
{
    return a->n_params != a->n_train &&
           memcmp(a->params + a->n_train, b->params + b->n_train,
                  (a->n_params - a->n_train) * sizeof(float)) != 0;
}

static void mitigations_at(fixture *f, const char *prec)
{
    qb_qmodel qm;
    quantize(&f->fp, prec, &qm);
    /* different layer tables (the FP32 model and a folded deployed one)
     * are not compared weight by weight */
    if (qm.folded) assert_true(isnan(qb_mitigation_weights_changed(&f->fp, &qm.model)));
    for (int k = 0; qb_mitigations[k].key.name; k++) {
        const qb_mitigation_entry *e = &qb_mitigations[k];
        if (e->key.alias_of) continue;
        size_t n;
        const qb_param_kv *kv = kv_for(e->key.name, &n);
        qb_defense_input in;
        input_of(f, &qm, e->params, kv, n, &in);
        qb_details det;
        qb_details_init(&det);
        qb_qmodel out;
        qb_error err;
        if (e->run(&in, &out, &det, &err)) fail_msg("%s at %s: %s", e->key.name, prec, err.msg);
        /* the deployed layers, index by index */
        assert_string_equal(out.model.arch, qm.model.arch);
        assert_int_equal(out.model.n_layers, qm.model.n_layers);
        assert_int_equal(out.model.n_params, qm.model.n_params);
        const double ca = qb_metric_accuracy(&out.model, &f->test);
        const double wc = qb_mitigation_weights_changed(&qm.model, &out.model);
        assert_true(isfinite(ca) && wc >= 0.0 && wc <= 1.0);
        print_message("  resnet20 %-5s %-13s CA %.3f, weights changed %.3f\n", prec, e->key.name,
                      ca, wc);
        if (!strcmp(e->key.name, "finetune") && !strcmp(prec, "fp32"))
            assert_true(bn_stats_differ(&qm.model, &out.model)); /* bn training mode */
        if (!strcmp(e->key.name, "fineprune")) {
            /* the pruned channels' columns of the linear layer are zero */
            const int np = (int)qb_test_detail1(&det, "fineprune.n_pruned");
            const qb_detail *o = qb_details_find(&det, "fineprune.prune_order");
            assert_non_null(o);
            const qb_layer *l = &out.model.layers[out.model.n_layers - 1];
            assert_int_equal(l->kind, QB_LAYER_LINEAR);
            for (int i = 0; i < np; i++)
                for (int r = 0; r < l->out_c; r++)
                    assert_true(out.model.params[l->w_off + (size_t)r * l->in_c +
                                                 (size_t)o->v[i]] == 0.0f);
        }
        qb_qmodel_free(&out);
        qb_details_free(&det);
    }
    qb_qmodel_free(&qm);
}

static void test_mitigations_fp32(void **state) { mitigations_at(*state, "fp32"); }
static void test_mitigations_int8(void **state) { mitigations_at(*state, "int8"); }

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defenses_fp32),
        cmocka_unit_test(test_defenses_int8),
        cmocka_unit_test(test_mitigations_fp32),
        cmocka_unit_test(test_mitigations_int8),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
