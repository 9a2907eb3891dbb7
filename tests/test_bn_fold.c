/* Batch-norm folding (core/bn_fold.c): the folded model computes what the
 * unfolded one computes in evaluation mode, has the expected layers, saves
 * and loads under its derived architecture, and its gradients map back to
 * the source's parameters.
 *
 * Tolerance. Folding changes the rounding only: a[oc] * W then a sum,
 * instead of the sum then * a[oc] (+ c), so each folded layer's output
 * differs by a few float roundings relative to its magnitude; through
 * resnet20's 20 layers, preact-resnet18's 18 and vgg11-bn's 9 the logits
 * stay within 1e-5 * (max|logit| + 1) (observed: printed, <= 2e-7 absolute).
 * The parameters are random (batch norms: gamma in [0.5, 1.5], beta and the
 * running mean in [-0.5, 0.5], the running variance in [0.25, 2]), so a
 * batch norm left out or folded wrongly moves the logits by O(1). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arch.h"
#include "core/bn_fold.h"
#include "core/model.h"
#include "core/model_io.h"
#include "core/rng.h"
#include "tests/testutil.h"

/* arch for (c, h, w) inputs, 10 classes, random weights and batch norms. */
static void random_model(qb_model *m, const char *arch, int c, int h, int w, uint64_t seed)
{
    static const qb_test_bn_ranges r = {0, 0.5, 1, 1, 1, 0.25, 1.75};
    qb_test_model_random(m, arch, c, h, w, 10, seed, seed + 1, &r);
}

static int count_kind(const qb_model *m, qb_layer_kind k)
{
    int n = 0;
    for (int i = 0; i < m->n_layers; i++) n += m->layers[i].kind == k;
    return n;
}

static void fold_case(const char *arch, int c, int h, int w, int b, int expect_folds,
                      int expect_bn_left, uint64_t seed)
{
    qb_model m, f;
    random_model(&m, arch, c, h, w, seed);
    assert_int_equal(qb_bn_fold_count(&m), expect_folds);
    qb_bn_fold_map map;
    qb_error err;
    if (qb_bn_fold(&m, &f, &map, &err)) {
        print_error("%s\n", err.msg);
        fail();
    }
    char want[64];
    snprintf(want, sizeof want, "%s.bnfold", arch);
    assert_string_equal(f.arch, want);
    assert_int_equal(f.n_layers, m.n_layers - expect_folds);
    assert_int_equal(count_kind(&f, QB_LAYER_BATCHNORM), expect_bn_left);
    assert_int_equal(count_kind(&f, QB_LAYER_CONV2D), count_kind(&m, QB_LAYER_CONV2D));
    assert_int_equal(qb_bn_fold_count(&f), 0);
    size_t tail = 0; /* the untrained tail: the kept batch norms' statistics */
    for (int i = 0; i < f.n_layers; i++) tail += f.layers[i].s_len;
    assert_int_equal(f.n_params - f.n_train, tail);

    qb_rng rng;
    qb_rng_seed(&rng, seed + 2);
    const size_t nin = (size_t)b * c * h * w, nl = (size_t)b * 10;
    float *x = qb_test_random_floats(&rng, nin, 0.0f, 1.0f);
    float *lu = qb_test_falloc(nl);
    qb_model_ws wm, wf;
    qb_model_ws_init(&wm, &m, b);
    qb_model_ws_init(&wf, &f, b);
    memcpy(lu, qb_model_forward(&m, &wm, x, b, 0), nl * sizeof(float));
    const float *lf = qb_model_forward(&f, &wf, x, b, 0);
    double lmax = 0.0, dmax = 0.0;
    for (size_t j = 0; j < nl; j++) {
        lmax = fmax(lmax, fabs(lu[j]));
        dmax = fmax(dmax, fabs((double)lu[j] - lf[j]));
    }
    print_message("  %-16s %dx%dx%d: %d batch norms folded, %d left; max|folded - unfolded| "
                  "%.3g, max|logit| %.3g (tolerance 1e-5 (max|logit| + 1))\n",
                  arch, c, h, w, expect_folds, expect_bn_left, dmax, lmax);
    assert_true(dmax <= 1e-5 * (lmax + 1.0));
    assert_true(lmax > 1e-3); /* the comparison sees something */

    /* the folded model saves and loads under its derived architecture */
    uint8_t *buf;
    size_t len;
    assert_int_equal(qb_model_encode(&f, NULL, &buf, &len, &err), 0);
    qb_model g;
    if (qb_model_decode(buf, len, "folded", &g, NULL, &err)) {
        print_error("%s\n", err.msg);
        fail();
    }
    assert_string_equal(g.arch, f.arch);
    assert_int_equal(g.n_params, f.n_params);
    assert_memory_equal(g.params, f.params, f.n_params * sizeof(float));
    assert_memory_equal(g.layers, f.layers, sizeof(qb_layer) * (size_t)f.n_layers);
    free(buf);
    qb_model_free(&g);

    qb_model_ws_free(&wf);
    qb_model_ws_free(&wm);
    free(lu);
    free(x);
    qb_model_free(&f);
    qb_model_free(&m);
}

static void test_fold_resnet20(void **state)
{
    (void)state;
    /* 19 body convolutions and the 2 projection shortcuts, each with its bn */
    fold_case("resnet20", 3, 16, 16, 3, 21, 0, 5);
}

static void test_fold_preact_resnet18(void **state)
{
    (void)state;
    /* the first conv of each of the 8 blocks folds; the 8 pre-activation
     * batch norms read the stem or an addition, which the shortcut also
     * reads: they stay */
    fold_case("preact-resnet18", 3, 8, 8, 2, 8, 8, 6);
}

static void test_fold_vgg11_bn(void **state)
{
    (void)state;
    fold_case("vgg11-bn", 3, 32, 32, 2, 8, 0, 7);
}

static void test_fold_chain_is_copy(void **state)
{
    (void)state;
    qb_model m, f;
    random_model(&m, "lenet", 1, 28, 28, 3);
    qb_error err;
    assert_int_equal(qb_bn_fold(&m, &f, NULL, &err), 0);
    assert_string_equal(f.arch, "lenet");
    assert_int_equal(f.n_params, m.n_params);
    assert_memory_equal(f.params, m.params, m.n_params * sizeof(float));
    qb_model_free(&f);
    qb_model_free(&m);
}

/* A spec-declared architecture with a long name, a conv whose output also
 * feeds a shortcut (no fold) and one with a bias and a batch norm that is
 * not on the next line (fold): the derived name and text are planned and
 * folded correctly. */
static void test_fold_declared(void **state)
{
    (void)state;
    static const char text[] =
        "conv 8 k=3 pad=1 as=a   # feeds a batch norm and the shortcut: stays\n"
        "bn\n"
        "relu as=r\n"
        "conv 8 k=3 pad=1 in=r as=c\n"
        "relu in=a as=q\n"
        "bn in=c\n"
        "add q\n"
        "avgpool\n"
        "flatten\n"
        "linear 12\n"
        "relu\n"
        "linear classes\n";
    qb_error err;
    assert_int_equal(qb_arch_declare("a-rather-long-declared-arch-nam", text, &err), 0);
    qb_model m, f;
    random_model(&m, "a-rather-long-declared-arch-nam", 3, 6, 6, 9);
    assert_int_equal(qb_bn_fold_count(&m), 1);
    assert_int_equal(qb_bn_fold(&m, &f, NULL, &err), 0);
    assert_true(strlen(f.arch) < QB_ARCH_NAME_MAX);
    assert_non_null(strstr(f.arch, ".bnfold"));
    assert_int_equal(count_kind(&f, QB_LAYER_BATCHNORM), 1);
    /* the derived text keeps `linear classes` and the hidden width */
    const char *t = qb_arch_text(f.arch);
    assert_non_null(t);
    assert_non_null(strstr(t, "linear classes"));
    assert_non_null(strstr(t, "linear 12"));
    qb_rng rng;
    qb_rng_seed(&rng, 10);
    float *x = qb_test_random_floats(&rng, 2 * 3 * 6 * 6, 0.0f, 1.0f);
    qb_model_ws wm, wf;
    qb_model_ws_init(&wm, &m, 2);
    qb_model_ws_init(&wf, &f, 2);
    float lu[20];
    memcpy(lu, qb_model_forward(&m, &wm, x, 2, 0), sizeof lu);
    const float *lf = qb_model_forward(&f, &wf, x, 2, 0);
    for (int j = 0; j < 20; j++) assert_true(fabs(lu[j] - lf[j]) <= 1e-4 * (fabs(lu[j]) + 1.0));
    qb_model_ws_free(&wf);
    qb_model_ws_free(&wm);
    free(x);
    qb_model_free(&f);
    qb_model_free(&m);
}

/* qb_bn_fold_grad: the folded model's gradient mapped back equals the
 * unfolded model's own gradient in evaluation mode (the chain rule of
 * folding is exact there), to float rounding: per parameter within
 * 1e-3 * (max|g| over the tensor) + 1e-6. */
static void test_fold_grad(void **state)
{
    (void)state;
    qb_model m, f;
    random_model(&m, "resnet20", 3, 8, 8, 21);
    qb_bn_fold_map map;
    qb_error err;
    assert_int_equal(qb_bn_fold(&m, &f, &map, &err), 0);
    const int b = 3;
    qb_rng rng;
    qb_rng_seed(&rng, 22);
    float *x = qb_test_random_floats(&rng, (size_t)b * 3 * 8 * 8, 0.0f, 1.0f);
    float *r = qb_test_random_floats(&rng, (size_t)b * 10, -1.0f, 1.0f);
    float *gm = qb_test_falloc(m.n_params), *gf = qb_test_falloc(f.n_params);
    float *gmap = qb_test_falloc(m.n_params);
    qb_model_ws wm, wf;
    qb_model_ws_init(&wm, &m, b);
    qb_model_ws_init(&wf, &f, b);
    qb_model_forward(&m, &wm, x, b, 1); /* bn evaluation mode (the default) */
    qb_model_backward(&m, &wm, r, b, gm, NULL);
    qb_model_forward(&f, &wf, x, b, 1);
    qb_model_backward(&f, &wf, r, b, gf, NULL);
    qb_bn_fold_grad(&m, &map, &f, gf, gmap);
    double worst = 0.0;
    for (int i = 0; i < m.n_layers; i++) {
        const qb_layer *l = &m.layers[i];
        const size_t offs[2] = {l->w_off, l->b_off}, lens[2] = {l->w_len, l->b_len};
        for (int t = 0; t < 2; t++) {
            double gmax = 0.0;
            for (size_t k = 0; k < lens[t]; k++) gmax = fmax(gmax, fabs(gm[offs[t] + k]));
            for (size_t k = 0; k < lens[t]; k++) {
                double d = fabs((double)gm[offs[t] + k] - gmap[offs[t] + k]);
                worst = fmax(worst, d / (gmax + 1e-30));
                if (!(d <= 1e-3 * gmax + 1e-6)) {
                    print_error("layer %d (%s) %s %zu: direct %.9g mapped %.9g\n", i,
                                qb_layer_kind_name(l->kind), t ? "bias/beta" : "weight/gamma", k,
                                (double)gm[offs[t] + k], (double)gmap[offs[t] + k]);
                    fail();
                }
            }
        }
    }
    for (size_t j = m.n_train; j < m.n_params; j++) assert_true(gmap[j] == 0.0f);
    print_message("  resnet20 gradients through the fold: worst %.3g of the tensor's max|g|\n",
                  worst);
    qb_model_ws_free(&wf);
    qb_model_ws_free(&wm);
    free(gmap);
    free(gf);
    free(gm);
    free(r);
    free(x);
    qb_model_free(&f);
    qb_model_free(&m);
}

int main(void)
{
    return qb_test_run_group(cmocka_unit_test(test_fold_resnet20),
                             cmocka_unit_test(test_fold_preact_resnet18),
                             cmocka_unit_test(test_fold_vgg11_bn),
                             cmocka_unit_test(test_fold_chain_is_copy),
                             cmocka_unit_test(test_fold_declared),
                             cmocka_unit_test(test_fold_grad));
}
