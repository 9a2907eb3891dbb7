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

/* n random (c, h, w) images in 10 classes (labels i % 10), from seed. */
static void random_images(qb_dataset *d, const char *name, size_t n, int c, int h, int w,
                          uint64_t seed)
{
    qb_dataset_init(d, name, n, c, h, w, 10);
    qb_rng rng;
    qb_rng_seed(&rng, seed);
    for (size_t i = 0; i < d->n * qb_dataset_image_size(d); i++)
        d->images[i] = (uint8_t)qb_rng_below(&rng, 256);
    for (size_t i = 0; i < d->n; i++) d->labels[i] = (uint8_t)(i % 10);
}

/* 256 random 1x28x28 images. */
static void random_data(qb_dataset *d) { random_images(d, "random", 256, 1, 28, 28, 3); }

static void same_codes(const qb_qmodel *a, const qb_qmodel *b)
{
    for (int i = 0; i < a->model.n_layers; i++) {
        if (!a->ql[i].active) continue;
        assert_memory_equal(a->ql[i].codes, b->ql[i].codes, a->ql[i].rows * a->ql[i].cols);
        size_t ns = a->prec.gran == QB_GRAN_CHANNEL ? a->ql[i].rows : 1;
        assert_memory_equal(a->ql[i].scales, b->ql[i].scales, ns * sizeof(float));
    }
}

/* qa-pgd at int8 and int4-pc on m with d (1 epoch, lr 0.05, batch 0: the
 * default; square trigger, seed 7): asserts that it ran 4 steps on some
 * weights and left every code and every scale at both targets as it was.
 * Returns the parameters before the attack (free()); *folded (if not
 * NULL) says whether the deployed int8 model was batch-norm folded. */
static float *pgd_keeps_codes(qb_model *m, const qb_dataset *d, int batch, qb_qa_stats *st,
                              int *folded)
{
    qb_error err;
    qb_qmodel before8, before4;
    qb_test_quantize(&before8, m, "int8");
    qb_test_quantize(&before4, m, "int4-pc");
    if (folded) *folded = before8.folded;
    float *p0 = malloc(m->n_params * sizeof(float));
    assert_non_null(p0);
    memcpy(p0, m->params, m->n_params * sizeof(float));
    qb_qa_config cfg;
    qb_qa_config_default(&cfg, QB_QA_PGD);
    cfg.n_targets = 2;
    assert_int_equal(qb_precision_parse("int8", &cfg.targets[0], &err), 0);
    assert_int_equal(qb_precision_parse("int4-pc", &cfg.targets[1], &err), 0);
    cfg.epochs = 1;
    if (batch) cfg.batch = batch;
    cfg.lr = 0.05f;
    qb_trigger t;
    qb_trigger_default(&t, QB_TRIGGER_SQUARE);
    if (qb_qa_attack(m, &cfg, d, &t, 7, st, &err)) fail_msg("%s", err.msg);
    assert_true(st->n_weights > 0 && st->steps == 4);
    qb_qmodel after8, after4;
    qb_test_quantize(&after8, m, "int8");
    qb_test_quantize(&after4, m, "int4-pc");
    same_codes(&before8, &after8);
    same_codes(&before4, &after4);
    qb_qmodel_free(&before8);
    qb_qmodel_free(&before4);
    qb_qmodel_free(&after8);
    qb_qmodel_free(&after4);
    return p0;
}

/* qa-pgd with two targets of different granularity: after the repair every
 * code and every scale at both targets is what it was, biases did not
 * move, and the FP32 weights did (the repair really ran). */
static void test_pgd_keeps_codes(void **state)
{
    qb_model *m = *state;
    qb_dataset d;
    random_data(&d);
    qb_qa_stats st;
    float *p0 = pgd_keeps_codes(m, &d, 0, &st, NULL);
    size_t moved = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const qb_layer *l = &m->layers[i];
        if (l->b_len)
            assert_memory_equal(m->params + l->b_off, p0 + l->b_off, l->b_len * sizeof(float));
        for (size_t j = 0; j < l->w_len; j++) moved += m->params[l->w_off + j] != p0[l->w_off + j];
    }
    assert_true(moved > 1000);
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

/* 64 random 3x16x16 images. */
static void random_data_rgb(qb_dataset *d) { random_images(d, "random-rgb", 64, 3, 16, 16, 4); }

/* resnet20 (3x16x16) with random batch-norm affine parameters and running
 * statistics. */
static void resnet20_random(qb_model *m, uint64_t seed)
{
    static const qb_test_bn_ranges r = {0.1, 0.5, 1, 0.2, 0.2, 0.5, 1};
    qb_test_model_random(m, "resnet20", 3, 16, 16, 10, seed, seed + 1, &r);
}

/* qa-pgd on a batch-norm graph: the boxes are the folded weights' cells
 * (some gammas negative: the boxes' ends swap), so after the repair the
 * deployed (folded) models at both targets have every code and scale they
 * had; the batch norms' parameters and running statistics and the biases
 * did not move; the convolution weights did. */
static void test_pgd_keeps_codes_resnet20(void **state)
{
    (void)state;
    qb_model m;
    resnet20_random(&m, 8);
    qb_dataset d;
    random_data_rgb(&d);
    qb_qa_stats st;
    int folded;
    float *p0 = pgd_keeps_codes(&m, &d, 16, &st, &folded);
    assert_true(folded);
    assert_true(st.n_weights + st.n_pinned == m.n_train);
    size_t moved = 0;
    for (int i = 0; i < m.n_layers; i++) {
        const qb_layer *l = &m.layers[i];
        if (l->kind == QB_LAYER_BATCHNORM) {
            assert_memory_equal(m.params + l->w_off, p0 + l->w_off, l->w_len * sizeof(float));
            assert_memory_equal(m.params + l->s_off, p0 + l->s_off, l->s_len * sizeof(float));
        } else {
            for (size_t j = 0; j < l->w_len; j++)
                moved += m.params[l->w_off + j] != p0[l->w_off + j];
        }
        if (l->b_len)
            assert_memory_equal(m.params + l->b_off, p0 + l->b_off, l->b_len * sizeof(float));
    }
    print_message("  resnet20 qa-pgd: %zu weights boxed, %zu pinned, %zu empty; %zu moved\n",
                  st.n_weights, st.n_pinned, st.n_empty, moved);
    assert_true(moved > 1000);
    free(p0);
    qb_dataset_free(&d);
    qb_model_free(&m);
}

/* qa-loss on a batch-norm graph: the quantized objective's gradient comes
 * back through the fold (to the convolutions and to gamma and beta); the
 * running statistics are not trained; deterministic from the seed. */
static void test_loss_resnet20(void **state)
{
    (void)state;
    qb_model a, b;
    resnet20_random(&a, 9);
    qb_model_copy(&b, &a);
    float *p0 = malloc(a.n_params * sizeof(float));
    memcpy(p0, a.params, a.n_params * sizeof(float));
    qb_dataset d;
    random_data_rgb(&d);
    qb_error err;
    qb_qa_config cfg;
    qb_qa_config_default(&cfg, QB_QA_LOSS);
    cfg.epochs = 1;
    cfg.batch = 32;
    qb_trigger t;
    qb_trigger_default(&t, QB_TRIGGER_SQUARE);
    if (qb_qa_attack(&a, &cfg, &d, &t, 5, NULL, &err)) fail_msg("%s", err.msg);
    assert_int_equal(qb_qa_attack(&b, &cfg, &d, &t, 5, NULL, &err), 0);
    assert_memory_equal(a.params, b.params, a.n_params * sizeof(float));
    assert_memory_equal(a.params + a.n_train, p0 + a.n_train,
                        (a.n_params - a.n_train) * sizeof(float));
    size_t gamma_moved = 0;
    for (int i = 0; i < a.n_layers; i++) {
        const qb_layer *l = &a.layers[i];
        if (l->kind != QB_LAYER_BATCHNORM) continue;
        for (size_t j = 0; j < l->w_len; j++) gamma_moved += a.params[l->w_off + j] != p0[l->w_off + j];
    }
    assert_true(gamma_moved > 0);
    free(p0);
    qb_dataset_free(&d);
    qb_model_free(&a);
    qb_model_free(&b);
}

int main(void)
{
    return qb_test_run_group(qb_test_with_lenet(test_pgd_keeps_codes),
                             cmocka_unit_test(test_loss_deterministic),
                             cmocka_unit_test(test_pgd_keeps_codes_resnet20),
                             cmocka_unit_test(test_loss_resnet20));
}
