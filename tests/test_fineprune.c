/* Fine-Pruning (defenses/fineprune.c): pruning a channel zeroes exactly its
 * outputs; channel means and the ranking on constructed cases; pruned
 * channels stay zero through fine-tuning; the stop rule on hand-made
 * curves; the `mitigated` rule; whole runs on a LeNet with a hand-wired
 * backdoor (tests/wired_lenet.h: the first pruned channel carries it) and
 * on a random model whose labels are its own predictions (pruning must
 * stop where validation accuracy falls); the `fp` defense's details and
 * `detected`. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/details.h"
#include "core/metrics.h"
#include "attacks/poison.h"
#include "core/rng.h"
#include "core/train.h"
#include "defenses/defense.h"
#include "defenses/fineprune.h"
#include "store/results.h"
#include "quant/qmodel.h"
#include "tests/testutil.h"
#include "tests/testutil_defenses.h"
#include "tests/testutil_quant.h"
#include "tests/wired_lenet.h"

#define CONV2 3 /* lenet's last conv layer */

static void random_images(float *x, size_t n, uint64_t seed)
{
    qb_rng rng;
    qb_rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++) x[i] = qb_rng_uniform(&rng);
}

/* ---- pruning a channel -------------------------------------------------- */

static void test_zero_channel_outputs(void **state)
{
    (void)state;
    qb_model a, b;
    qb_test_lenet(&a, 8);
    assert_int_equal(qb_model_last_conv(&a), CONV2);
    qb_model_copy(&b, &a);
    const int ch = 5;
    qb_fineprune_zero_channel(&b, CONV2, ch);
    /* the parameters: exactly that channel's 16*5*5 weights and its bias */
    const qb_layer *l = &a.layers[CONV2];
    size_t per = (size_t)l->in_c * 25, changed = 0;
    for (size_t i = 0; i < a.n_params; i++) {
        int in_ch = i >= l->w_off + ch * per && i < l->w_off + (ch + 1) * per;
        int is_b = i == l->b_off + (size_t)ch;
        if (in_ch || is_b) assert_true(b.params[i] == 0.0f);
        else assert_true(b.params[i] == a.params[i]);
        changed += a.params[i] != b.params[i];
    }
    assert_int_equal(changed, per + 1);
    /* the outputs: channel ch of conv2 (and its ReLU) all 0, the others unchanged */
    const int n = 8;
    float *x = malloc((size_t)n * 784 * sizeof(float));
    assert_non_null(x);
    random_images(x, (size_t)n * 784, 3);
    qb_model_ws wa, wb;
    qb_model_ws_init(&wa, &a, n);
    qb_model_ws_init(&wb, &b, n);
    qb_model_ws_set_fused(&wa, 0);
    qb_model_ws_set_fused(&wb, 0);
    qb_model_forward(&a, &wa, x, n, 0);
    qb_model_forward(&b, &wb, x, n, 0);
    const size_t hw = 64, osz = 32 * hw;
    size_t nonzero_before = 0;
    for (int layer = CONV2; layer <= CONV2 + 1; layer++)
        for (int i = 0; i < n; i++)
            for (int c = 0; c < 32; c++)
                for (size_t j = 0; j < hw; j++) {
                    size_t k = (size_t)i * osz + (size_t)c * hw + j;
                    float va = wa.act[layer + 1][k], vb = wb.act[layer + 1][k];
                    if (c == ch) {
                        assert_true(vb == 0.0f);
                        nonzero_before += va != 0.0f;
                    } else {
                        assert_true(va == vb);
                    }
                }
    assert_true(nonzero_before > 0); /* the channel did produce something before */
    qb_model_ws_free(&wa);
    qb_model_ws_free(&wb);

    /* at int8 (integer kernels) the pruned channel's output is exactly 0 too */
    qb_qmodel qm;
    qb_test_quantize(&qm, &b, "int8");
    qb_model_ws_init(&wb, &qm.model, n);
    qb_model_ws_set_fused(&wb, 0);
    qb_model_forward(&qm.model, &wb, x, n, 0);
    for (int i = 0; i < n; i++)
        for (size_t j = 0; j < hw; j++)
            assert_true(wb.act[CONV2 + 1][(size_t)i * osz + (size_t)ch * hw + j] == 0.0f);
    qb_model_ws_free(&wb);
    qb_qmodel_free(&qm);
    free(x);
    qb_model_free(&a);
    qb_model_free(&b);
}

/* ---- ranking ------------------------------------------------------------ */

static void test_rank_hand_list(void **state)
{
    (void)state;
    const double mean[6] = {0.3, 0.0, 0.3, 0.1, 0.0, -0.0};
    int order[6];
    qb_fineprune_rank(mean, 6, order);
    const int want[6] = {1, 4, 5, 3, 0, 2}; /* increasing, ties (incl. -0 == 0) by index */
    assert_memory_equal(order, want, sizeof want);
}

/* conv2 weights 0 and bias b[c]: its ReLU output is max(b[c], 0) everywhere,
 * so the channel means are known exactly, with ties. */
static void test_channel_means_constructed(void **state)
{
    (void)state;
    qb_model m;
    qb_test_lenet(&m, 4);
    const qb_layer *l = &m.layers[CONV2];
    memset(m.params + l->w_off, 0, l->w_len * sizeof(float));
    for (int c = 0; c < 32; c++)
        m.params[l->b_off + c] = c % 3 == 0 ? -(float)(c + 1) : (float)(32 - c);
    assert_int_equal(qb_fineprune_rank_layer(&m, CONV2), CONV2 + 1);
    const int labels[1] = {0};
    qb_dataset d;
    dim_dataset(&d, 300, labels, 1, 6); /* > 256: two batches */
    int want[32], k = 0;
    for (int c = 0; c < 32; c += 3) want[k++] = c;           /* mean 0, by index */
    for (int c = 31; c >= 0; c--)
        if (c % 3) want[k++] = c;                            /* 32 - c, increasing */
    const char *precs[2] = {"fp32", "int8"};
    for (int pi = 0; pi < 2; pi++) {
        qb_qmodel qm;
        qb_test_quantize(&qm, &m, precs[pi]);
        double mean[32];
        int order[32];
        qb_fineprune_channel_means(&qm.model, CONV2, &d, mean);
        for (int c = 0; c < 32; c++)
            assert_true(mean[c] == (c % 3 == 0 ? 0.0 : (double)(32 - c)));
        qb_fineprune_rank(mean, 32, order);
        assert_memory_equal(order, want, sizeof want);
        qb_qmodel_free(&qm);
    }
    qb_dataset_free(&d);
    qb_model_free(&m);
}

/* ---- pruned channels through fine-tuning -------------------------------- */

static void test_pruned_stay_zero_after_training(void **state)
{
    (void)state;
    qb_model m;
    qb_test_lenet(&m, 9);
    qb_error err;
    const int pruned[3] = {3, 17, 30};
    for (int i = 0; i < 3; i++) qb_fineprune_zero_channel(&m, CONV2, pruned[i]);
    qb_model before;
    qb_model_copy(&before, &m);
    const int labels[10] = {0, 1, 2, 3, 4, 5, 6, 7, 8, 9};
    qb_dataset d;
    dim_dataset(&d, 256, labels, 10, 12);
    qb_train_config cfg;
    qb_train_config_default(&cfg);
    cfg.epochs = 2;
    cfg.lr = 0.05f;
    cfg.seed = 1;
    assert_int_equal(qb_train(&m, &d, &cfg, NULL, &err), 0);
    const qb_layer *l = &m.layers[CONV2];
    size_t per = (size_t)l->in_c * 25, moved = 0;
    for (int c = 0; c < 32; c++) {
        int is_pruned = c == 3 || c == 17 || c == 30;
        for (size_t j = 0; j < per; j++) {
            float w = m.params[l->w_off + (size_t)c * per + j];
            if (is_pruned) assert_true(w == 0.0f);
            else moved += w != before.params[l->w_off + (size_t)c * per + j];
        }
        if (is_pruned) assert_true(m.params[l->b_off + c] == 0.0f);
    }
    assert_true(moved > 1000); /* the other channels did train */
    qb_dataset_free(&d);
    qb_model_free(&before);
    qb_model_free(&m);
}

/* ---- the rules ---------------------------------------------------------- */

static void test_stop_rule(void **state)
{
    (void)state;
    /* drops: -1, 2, 3.5, 4 (allowed: not more than 4), 4.5 (stop), then a
     * recovery that must not count */
    const double ca[8] = {0.90, 0.91, 0.88, 0.865, 0.86, 0.855, 0.90, 0.89};
    assert_int_equal(qb_fineprune_n_pruned(ca, 8, 4.0), 4);
    assert_int_equal(qb_fineprune_n_pruned(ca, 8, 4.6), 7); /* nothing exceeds 4.6 */
    assert_int_equal(qb_fineprune_n_pruned(ca, 8, 1.0), 1);
    assert_int_equal(qb_fineprune_n_pruned(ca, 8, 0.0), 1); /* a gain is no drop */
    assert_int_equal(qb_fineprune_n_pruned(ca, 1, 4.0), 0);
    const double fall[3] = {0.9, 0.5, 0.9};
    assert_int_equal(qb_fineprune_n_pruned(fall, 3, 4.0), 0);
    assert_true(qb_fineprune_step_ok(0.9, 0.86, 4.0));
    assert_false(qb_fineprune_step_ok(0.9, 0.859, 4.0));
    /* CA as counts over 1000 images: 40 fewer is exactly 4 points */
    assert_true(qb_fineprune_step_ok(903.0 / 1000, 863.0 / 1000, 4.0));
    assert_false(qb_fineprune_step_ok(903.0 / 1000, 862.0 / 1000, 4.0));
}

static void test_mitigated_rule(void **state)
{
    (void)state;
    assert_true(qb_fineprune_mitigated(0.90, 0.85, 0.20));   /* both bounds inclusive */
    assert_true(qb_fineprune_mitigated(0.90, 0.92, 0.0));
    assert_false(qb_fineprune_mitigated(0.90, 0.849, 0.10)); /* CA drop 5.1 points */
    assert_false(qb_fineprune_mitigated(0.90, 0.90, 0.201)); /* ASR above 20% */
    assert_true(qb_fineprune_mitigated(9000.0 / 10000, 8500.0 / 10000, 200.0 / 1000));
    assert_false(qb_fineprune_mitigated(0.9, 0.9, NAN));      /* no ASR: not mitigated */
}

/* ---- whole runs --------------------------------------------------------- */

typedef struct fp_sets {
    qb_dataset train, val, eval, eval_trig;
    qb_trigger trigger;
    qb_model fp; /* the wired LeNet, backdoor to the trigger's target */
} fp_sets;

/* The wired LeNet and its data: labels {0, 0, 0, 2}, trigger target 1, so
 * every image is a non-target one. */
static void sets_init(fp_sets *s)
{
    wired_lenet(&s->fp, 1, 1);
    const int labels[4] = {0, 0, 0, 2};
    dim_dataset(&s->train, 200, labels, 4, 31);
    dim_dataset(&s->val, 100, labels, 4, 32);
    dim_dataset(&s->eval, 200, labels, 4, 33);
    qb_trigger_default(&s->trigger, QB_TRIGGER_SQUARE);
    s->trigger.target = 1;
    qb_poison_asr_set(&s->eval, &s->trigger, &s->eval_trig);
    assert_int_equal(s->eval_trig.n, 200);
}

static void sets_free(fp_sets *s)
{
    qb_model_free(&s->fp);
    qb_dataset_free(&s->train);
    qb_dataset_free(&s->val);
    qb_dataset_free(&s->eval);
    qb_dataset_free(&s->eval_trig);
}

static void test_run_wired_backdoor(void **state)
{
    (void)state;
    fp_sets s;
    sets_init(&s);
    qb_fineprune_config cfg;
    qb_fineprune_config_default(&cfg);
    assert_true(cfg.max_ca_drop == 4.0);
    cfg.tune.epochs = 2;
    cfg.tune.seed = 5;
    const char *precs[2] = {"fp32", "int8"};
    for (int pi = 0; pi < 2; pi++) {
        qb_qmodel qm;
        qb_test_quantize(&qm, &s.fp, precs[pi]);
        const qb_precision *p = &qm.prec;
        qb_error err;
        qb_fineprune_result r, r2;
        qb_model tuned;
        assert_int_equal(qb_fineprune_run(&qm.model, p, &s.train, &s.val, &s.eval, &s.eval_trig,
                                          1, &cfg, &r, &tuned, &err),
                         0);
        assert_int_equal(r.layer, CONV2);
        assert_int_equal(r.channels, 32);
        /* every channel is dormant on clean data: ties, pruned by index */
        for (int c = 0; c < 32; c++) {
            assert_true(r.mean_act[c] == 0.0);
            assert_int_equal(r.order[c], c);
        }
        /* clean predictions never change, so everything is pruned */
        assert_int_equal(r.n_steps, 33);
        assert_int_equal(r.n_pruned, 32);
        for (int k = 0; k < r.n_steps; k++) {
            assert_int_equal(r.curve_pruned[k], k);
            assert_true(r.curve_ca[k] == r.curve_ca[0]);
        }
        /* the backdoor lives in channel 0: gone after the first step */
        assert_true(r.asr_before == 1.0);
        assert_true(r.curve_asr[0] == 1.0);
        for (int k = 1; k < r.n_steps; k++) assert_true(r.curve_asr[k] == 0.0);
        assert_true(r.asr_pruned == 0.0);
        assert_true(r.asr_tuned == 0.0);
        assert_true(r.pruned_drift == 0.0);
        assert_true(r.ca_tuned >= r.ca_before - 0.05);
        assert_int_equal(r.mitigated, 1);
        assert_true(isfinite(r.tune_loss));
        /* the returned model: float, pruned channels zero */
        assert_null(tuned.hooks);
        const qb_layer *l = &tuned.layers[CONV2];
        for (size_t j = 0; j < l->w_len + l->b_len; j++)
            assert_true(tuned.params[l->w_off + j] == 0.0f);
        /* deterministic */
        assert_int_equal(qb_fineprune_run(&qm.model, p, &s.train, &s.val, &s.eval, &s.eval_trig,
                                          1, &cfg, &r2, NULL, &err),
                         0);
        assert_true(r2.ca_tuned == r.ca_tuned && r2.asr_tuned == r.asr_tuned &&
                    r2.tune_loss == r.tune_loss && r2.n_pruned == r.n_pruned);
        qb_fineprune_result_free(&r2);
        qb_fineprune_result_free(&r);
        qb_model_free(&tuned);
        qb_qmodel_free(&qm);
    }
    sets_free(&s);
}

/* n images whose label y in 0..3 is the quadrant holding a bright 10x10
 * block (noise elsewhere), from `seed`. */
static void quadrant_dataset(qb_dataset *d, size_t n, uint64_t seed)
{
    qb_dataset_init(d, "quadrants", n, 1, 28, 28, 10);
    qb_rng rng;
    qb_rng_seed(&rng, seed);
    for (size_t i = 0; i < n; i++) {
        int y = (int)qb_rng_below(&rng, 4), oy = 2 + 14 * (y / 2), ox = 2 + 14 * (y % 2);
        uint8_t *img = d->images + i * 784;
        for (int j = 0; j < 784; j++) img[j] = (uint8_t)qb_rng_below(&rng, 60);
        for (int r = 0; r < 10; r++)
            for (int c = 0; c < 10; c++) img[(oy + r) * 28 + ox + c] = 200;
        d->labels[i] = (uint8_t)y;
    }
}

/* A small trained model, validation labels replaced by its own predictions
 * (CA 1 at step 0): pruning its active channels changes predictions, and
 * must stop at the first step that costs more than max_ca_drop points. */
static void test_run_stops(void **state)
{
    (void)state;
    qb_model m;
    qb_test_lenet(&m, 14);
    qb_error err;
    qb_dataset train, val, eval;
    quadrant_dataset(&train, 400, 1);
    quadrant_dataset(&val, 200, 2);
    quadrant_dataset(&eval, 200, 3);
    qb_train_config tc;
    qb_train_config_default(&tc);
    tc.epochs = 3;
    assert_int_equal(qb_train(&m, &train, &tc, NULL, &err), 0);
    assert_true(qb_metric_accuracy(&m, &val) > 0.9);
    qb_model_predict(&m, &val, val.labels);
    qb_precision p;
    assert_int_equal(qb_precision_parse("fp32", &p, &err), 0);
    qb_fineprune_config cfg;
    qb_fineprune_config_default(&cfg);
    cfg.max_ca_drop = 2.0;
    cfg.tune.epochs = 1;
    qb_fineprune_result r;
    assert_int_equal(qb_fineprune_run(&m, &p, &train, &val, &eval, NULL, 1, &cfg, &r, NULL, &err),
                     0);
    assert_true(r.curve_ca[0] == 1.0);
    assert_true(isnan(r.asr_before) && isnan(r.asr_tuned) && isnan(r.curve_asr[1]));
    assert_true(r.n_pruned < 32);
    assert_int_equal(r.n_steps, r.n_pruned + 2); /* the curve ends at the refused step */
    for (int k = 1; k <= r.n_pruned; k++) assert_true(r.curve_ca[k] >= 0.98 - 1e-12);
    assert_true(r.curve_ca[r.n_steps - 1] < 0.98);
    /* the pruned model's CA, recomputed */
    qb_model q;
    qb_model_copy(&q, &m);
    for (int k = 0; k < r.n_pruned; k++) qb_fineprune_zero_channel(&q, CONV2, r.order[k]);
    assert_true(r.ca_pruned == qb_metric_accuracy(&q, &eval));
    assert_true(r.curve_ca[r.n_pruned] == qb_metric_accuracy(&q, &val));
    assert_true(r.ca_before == qb_metric_accuracy(&m, &eval));
    /* the ranking is the increasing order of the recorded means */
    for (int k = 1; k < 32; k++)
        assert_true(r.mean_act[r.order[k - 1]] <= r.mean_act[r.order[k]]);
    qb_model_free(&q);
    qb_fineprune_result_free(&r);
    qb_dataset_free(&train);
    qb_dataset_free(&val);
    qb_dataset_free(&eval);
    qb_model_free(&m);
}

/* ---- the defense -------------------------------------------------------- */

static void test_defense_fp(void **state)
{
    (void)state;
    const int labels[4] = {0, 0, 0, 2};
    qb_dataset test;
    dim_dataset(&test, 600, labels, 4, 40);
    uint32_t pool[600];
    for (uint32_t i = 0; i < 600; i++) pool[i] = 599 - i;
    qb_trigger trig;
    qb_trigger_default(&trig, QB_TRIGGER_SQUARE);
    trig.target = 1;
    qb_param_kv kv[3] = {{"n_train", "200"}, {"n_val", "100"}, {"epochs", "2"}};
    qb_model fp;
    wired_lenet(&fp, 1, 1);
    qb_qmodel qm;
    qb_test_quantize(&qm, &fp, "int4");
    qb_defense_input in;
    qb_test_input_deployed(&in, &qm);
    qb_test_input_pool(&in, &test, pool, 600, 300);
    in.trigger = &trig;
    in.seed = 99;
    in.params = (qb_params){qb_fp_params, 3, kv};
    for (int attacked = 1; attacked >= 0; attacked--) {
        in.attacked = attacked;
        qb_test_run run;
        qb_test_run_init(&run, -7);
        const qb_details *det = &run.det;
        qb_error err;
        assert_int_equal(qb_defense_fp(&in, &run.res, &err), 0);
        assert_int_equal(run.res.detected, attacked ? QB_DETECTED_YES : QB_DETECTED_NA);
        assert_true(qb_test_detail1(det, "fp.mitigated") == 1.0);
        assert_true(qb_test_detail1(det, "fp.asr_before") == 1.0);
        assert_true(qb_test_detail1(det, "fp.asr_tuned") == 0.0);
        assert_true(qb_test_detail1(det, "fp.n_pruned") == 32.0);
        assert_true(qb_test_detail1(det, "fp.layer") == CONV2);
        const char *arrays[] = {"fp.prune_order", "fp.mean_act", "fp.curve_pruned",
                                "fp.curve_ca", "fp.curve_asr"};
        const size_t sizes[] = {32, 32, 33, 33, 33};
        for (int i = 0; i < 5; i++) {
            const qb_detail *e = qb_details_find(det, arrays[i]);
            assert_non_null(e);
            assert_int_equal(e->n, sizes[i]);
        }
        const char *scalars[] = {"fp.ca_before", "fp.ca_pruned", "fp.asr_pruned", "fp.ca_tuned",
                                 "fp.tune_loss", "fp.pruned_drift"};
        for (int i = 0; i < 6; i++) assert_true(isfinite(qb_test_detail1(det, scalars[i])));
        assert_true(strlen(run.res.summary) > 0);
        qb_test_run_free(&run);
    }
    /* the clean splits must fit before eval_from */
    kv[0].value = "250";
    qb_test_run run;
    qb_test_run_init(&run, 0);
    qb_test_defense_fails(qb_defense_fp, &in, &run, "validation split");
    qb_test_run_free(&run);
    qb_qmodel_free(&qm);
    qb_model_free(&fp);
    qb_dataset_free(&test);
}

int main(void)
{
    return qb_test_run_group(cmocka_unit_test(test_zero_channel_outputs),
                             cmocka_unit_test(test_rank_hand_list),
                             cmocka_unit_test(test_channel_means_constructed),
                             cmocka_unit_test(test_pruned_stay_zero_after_training),
                             cmocka_unit_test(test_stop_rule),
                             cmocka_unit_test(test_mitigated_rule),
                             cmocka_unit_test(test_run_wired_backdoor),
                             cmocka_unit_test(test_run_stops), cmocka_unit_test(test_defense_fp));
}
