/* Quantization-activated attacks (attacks/qa_attack.c) on a small random
 * problem: the invariants that make them what they are. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/dataset.h"
#include "core/model.h"
#include "core/rng.h"
#include "core/train.h"
#include "attacks/qa_attack.h"
#include "quant/qmodel.h"
#include "tests/testutil.h"
#include "tests/testutil_quant.h"

/* 256 random 1x28x28 images in 10 classes. */
static void random_data(qb_dataset *d)
{
    qb_dataset_init(d, "random", 256, 1, 28, 28, 10);
    qb_rng rng;
    qb_rng_seed(&rng, 3);
    for (size_t i = 0; i < d->n * 784; i++) d->images[i] = (uint8_t)qb_rng_below(&rng, 256);
    for (size_t i = 0; i < d->n; i++) d->labels[i] = (uint8_t)(i % 10);
}

static void same_codes(const qb_qmodel *a, const qb_qmodel *b)
{
    for (int i = 0; i < a->model.n_layers; i++) {
        if (!a->ql[i].active) continue;
        assert_memory_equal(a->ql[i].codes, b->ql[i].codes, a->ql[i].rows * a->ql[i].cols);
        size_t ns = a->prec.gran == QB_GRAN_CHANNEL ? a->ql[i].rows : 1;
        assert_memory_equal(a->ql[i].scales, b->ql[i].scales, ns * sizeof(float));
    }
}

/* qa-pgd with two targets of different granularity: after the repair every
 * code and every scale at both targets is what it was, biases did not
 * move, and the FP32 weights did (the repair really ran). */
static void test_pgd_keeps_codes(void **state)
{
    qb_model *m = *state;
    qb_dataset d;
    random_data(&d);
    qb_error err;
    qb_qmodel before8, before4;
    qb_test_quantize(&before8, m, "int8");
    qb_test_quantize(&before4, m, "int4-pc");
    float *p0 = malloc(m->n_params * sizeof(float));
    memcpy(p0, m->params, m->n_params * sizeof(float));

    qb_qa_config cfg;
    qb_qa_config_default(&cfg, QB_QA_PGD);
    cfg.n_targets = 2;
    assert_int_equal(qb_precision_parse("int8", &cfg.targets[0], &err), 0);
    assert_int_equal(qb_precision_parse("int4-pc", &cfg.targets[1], &err), 0);
    cfg.epochs = 1;
    cfg.lr = 0.05f;
    qb_trigger t;
    qb_trigger_default(&t, QB_TRIGGER_SQUARE);
    qb_qa_stats st;
    assert_int_equal(qb_qa_attack(m, &cfg, &d, &t, 7, &st, &err), 0);
    assert_true(st.n_weights > 0 && st.steps == 4);

    qb_qmodel after8, after4;
    qb_test_quantize(&after8, m, "int8");
    qb_test_quantize(&after4, m, "int4-pc");
    same_codes(&before8, &after8);
    same_codes(&before4, &after4);
    size_t moved = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const qb_layer *l = &m->layers[i];
        if (l->b_len)
            assert_memory_equal(m->params + l->b_off, p0 + l->b_off, l->b_len * sizeof(float));
        for (size_t j = 0; j < l->w_len; j++) moved += m->params[l->w_off + j] != p0[l->w_off + j];
    }
    assert_true(moved > 1000);
    qb_qmodel_free(&before8);
    qb_qmodel_free(&before4);
    qb_qmodel_free(&after8);
    qb_qmodel_free(&after4);
    free(p0);
    qb_dataset_free(&d);
}

/* qa-loss: deterministic from the seed, changes the weights, and refuses
 * an fp32 target. */
static void test_loss_deterministic(void **state)
{
    (void)state;
    qb_dataset d;
    random_data(&d);
    qb_model a, b;
    qb_test_lenet(&a, 2);
    qb_error err;
    qb_model_copy(&b, &a);
    qb_qa_config cfg;
    qb_qa_config_default(&cfg, QB_QA_LOSS);
    cfg.epochs = 1;
    qb_trigger t;
    qb_trigger_default(&t, QB_TRIGGER_SQUARE);
    assert_int_equal(qb_qa_attack(&a, &cfg, &d, &t, 5, NULL, &err), 0);
    assert_int_equal(qb_qa_attack(&b, &cfg, &d, &t, 5, NULL, &err), 0);
    assert_memory_equal(a.params, b.params, a.n_params * sizeof(float));
    assert_int_equal(qb_precision_parse("fp32", &cfg.targets[0], &err), 0);
    assert_int_equal(qb_qa_attack(&a, &cfg, &d, &t, 5, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "not quantized"));
    qb_model_free(&a);
    qb_model_free(&b);
    qb_dataset_free(&d);
}

int main(void)
{
    return qb_test_run_group(qb_test_with_lenet(test_pgd_keeps_codes),
                             cmocka_unit_test(test_loss_deterministic));
}
