/* Layer graphs against PyTorch 1.13 (issue 15): batch norm alone in both
 * modes, a pre-activation residual block with a strided 1x1 shortcut, and
 * whole resnet20 and preact-resnet18 networks, each in training mode
 * (batch statistics: outputs, loss, every parameter gradient, the input
 * gradient, the running statistics after the step) and evaluation mode
 * (running statistics: outputs, loss, input gradient; parameter gradients
 * too for the batch norm and the block). The fixtures are written by
 * tests/fixtures/gen_graph_fixture.py (its docstring lists the sections):
 * graph_torch.bin is committed; preact-resnet18's (~70 MB) is written into
 * the build tree by the CTest setup test gen_preact_fixture, whose
 * directory reaches this test as $QBLIND_GENERATED_FIXTURES.
 *
 * Both sides start from bit-identical numbers (exact int16 / uint8 codes),
 * so the differences are float rounding in different summation orders
 * (PyTorch's mkldnn convolutions and single-precision batch-norm
 * reductions vs qblind's GEMMs and double-precision reductions), ~1e-7
 * relative per operation. One thing would not be rounding: a ReLU input
 * within the rounding difference of 0 (at the deepest ReLUs of
 * preact-resnet18 the two sides differ by up to ~2e-6 there) takes a
 * different side on each, and that element's gradient differs by O(1).
 * With ~1M ReLU inputs per network that happened in the first fixtures;
 * the generator now shifts batch-norm betas by 2^-12 until every ReLU
 * input is at least 1e-4 from 0 in both modes (clear_kinks there).
 *
 * Bound per element, as tests/test_torch_fixture.c:
 *     |qblind - torch| <= rtol * |torch| + atol_rel * max|torch|
 * with max over the tensor compared (each parameter tensor on its own):
 *   - batch norm alone and the block: rtol 1e-4, atol_rel 1e-5 (sums of a
 *     few hundred terms); observed worst 0.005 (bn) and 0.013 (block) of
 *     the bound;
 *   - resnet20 and preact-resnet18: rtol 3e-4, atol_rel 3e-5: rounding
 *     compounds over 20 layers, and training-mode batch norm divides by
 *     each channel's batch spread, which in the last stage is estimated
 *     from only 4 * 8 * 8 = 256 (resnet20) or 2 * 4 * 4 = 32
 *     (preact-resnet18) values. Observed worst 0.10 (resnet20) and 0.13
 *     (preact-resnet18) of the bound, i.e. ~3e-6 relative;
 *   - running statistics after the step: rtol 1e-5, atol_rel 1e-6 (one
 *     mean and variance per channel, moved by 10% of a batch statistic);
 *     observed worst 0.06 of the bound.
 * The preact-resnet18 fixture is written on the machine running the test,
 * so its PyTorch kernels may differ from the ones measured here: hence the
 * headroom. A real bug (swapped gamma/beta or mean/variance, the biased
 * instead of the unbiased variance in the running update, batch instead
 * of running statistics, a shortcut from the wrong node, a missing ReLU)
 * is an O(1e-2) to O(1) relative error: the fixtures use batch-norm scales
 * in [0.5, 1.5), shifts in [-0.25, 0.25) and warmed-up running statistics,
 * not the identity initialisation, and the test checks that the step
 * moved the running statistics by far more than their tolerance. */
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
#include "core/batchnorm.h"
#include "core/model.h"
#include "core/softmax_xent.h"
#include "core/xalloc.h"
#include "tests/testutil.h"

#define HINT_COMMITTED "regenerate: /usr/bin/python3 tests/fixtures/gen_graph_fixture.py"

/* Tolerances (header). */
#define SMALL_RTOL 1e-4
#define SMALL_ATOL 1e-5
#define NET_RTOL 3e-4
#define NET_ATOL 3e-5
#define RUN_RTOL 1e-5
#define RUN_ATOL 1e-6

static void load_committed(qb_test_fixture *f)
{
    char *path = qb_test_fixture_path("graph_torch.bin");
    qb_test_fixture_load(f, path, HINT_COMMITTED);
    free(path);
}

/* Every batch norm's running mean and variance (the model's tail, from
 * n_train) against want (the same layout), each vector on its own. */
static void assert_running_close(const char *what, const qb_model *m, const float *got,
                                 const float *want)
{
    for (int i = 0; i < m->n_layers; i++) {
        const qb_layer *l = &m->layers[i];
        if (l->kind != QB_LAYER_BATCHNORM) continue;
        size_t o = l->s_off - m->n_train, c = (size_t)l->in_c;
        char name[64];
        snprintf(name, sizeof name, "%s %d.mean", what, i);
        qb_test_assert_close(name, got + o, want + o, c, RUN_RTOL, RUN_ATOL);
        snprintf(name, sizeof name, "%s %d.var", what, i);
        qb_test_assert_close(name, got + o + c, want + o + c, c, RUN_RTOL, RUN_ATOL);
    }
}

/* The training step must move the running statistics (before: r0, after:
 * r1, n values) by far more than the tolerance, or comparing them would
 * not show that qblind updates them. */
static void assert_moved(const float *r0, const float *r1, size_t n)
{
    double moved = 0.0, scale = 0.0;
    for (size_t i = 0; i < n; i++) {
        moved += fabs((double)r1[i] - (double)r0[i]);
        scale += fabs((double)r0[i]);
    }
    print_message("  running statistics moved by %.3e relative (mean over the tail)\n",
                  moved / scale);
    assert_true(moved / scale > 100 * RUN_RTOL);
}

/* ---- batch norm alone ------------------------------------------------------ */

#define BN_B 4
#define BN_C 6
#define BN_HW (5 * 7)

static void test_bn_matches_torch(void **state)
{
    (void)state;
    qb_test_fixture f;
    load_committed(&f);
    const size_t n = (size_t)BN_B * BN_C * BN_HW;
    /* x, dy, y, dx (BN_B, BN_C, BN_HW); gamma, beta, dgamma, dbeta (BN_C);
     * running0, run (2 BN_C: mean then variance) */
    float *x = qb_test_fixture_get(&f, "bn.x", QB_TFIX_I16Q12, n);
    float *gamma = qb_test_fixture_get(&f, "bn.gamma", QB_TFIX_I16Q12, BN_C);
    float *beta = qb_test_fixture_get(&f, "bn.beta", QB_TFIX_I16Q12, BN_C);
    float *run0 = qb_test_fixture_get(&f, "bn.running0", QB_TFIX_I16Q12, 2 * BN_C);
    float *dy = qb_test_fixture_get(&f, "bn.dy", QB_TFIX_I16Q, n);
    float *y = qb_test_falloc(n), *dx = qb_test_falloc(n);
    float *dg = qb_test_falloc(BN_C), *db = qb_test_falloc(BN_C);
    float stat[2 * BN_C], uvar[BN_C], run[2 * BN_C];

    print_message("training mode\n");
    qb_bn_forward_train(BN_B, BN_C, BN_HW, x, gamma, beta, y, stat, uvar);
    qb_bn_backward_train(BN_B, BN_C, BN_HW, x, gamma, stat, dy, dg, db, dx);
    memcpy(run, run0, sizeof run);
    qb_bn_running_update(BN_C, stat, uvar, QB_BN_MOMENTUM, run);
    const char *train[] = {"bn.y", "bn.dx", "bn.dgamma", "bn.dbeta", "bn.running"};
    const float *train_got[] = {y, dx, dg, db, run};
    const size_t train_n[] = {n, n, BN_C, BN_C, 2 * BN_C};
    for (int k = 0; k < 5; k++) {
        float *want = qb_test_fixture_get(&f, train[k], QB_TFIX_F32, train_n[k]);
        if (k == 4) {
            assert_moved(run0, want, 2 * BN_C);
            qb_test_assert_close(train[k], train_got[k], want, train_n[k], RUN_RTOL, RUN_ATOL);
        } else {
            qb_test_assert_close(train[k], train_got[k], want, train_n[k], SMALL_RTOL,
                                 SMALL_ATOL);
        }
        free(want);
    }

    print_message("evaluation mode\n");
    memset(dg, 0, BN_C * sizeof(float));
    memset(db, 0, BN_C * sizeof(float));
    qb_bn_forward_eval(BN_B, BN_C, BN_HW, x, gamma, beta, run0, y);
    qb_bn_backward_eval(BN_B, BN_C, BN_HW, x, gamma, run0, dy, dg, db, dx);
    const char *eval[] = {"bn.ey", "bn.edx", "bn.edgamma", "bn.edbeta"};
    for (int k = 0; k < 4; k++) {
        float *want = qb_test_fixture_get(&f, eval[k], QB_TFIX_F32, train_n[k]);
        qb_test_assert_close(eval[k], train_got[k], want, train_n[k], SMALL_RTOL, SMALL_ATOL);
        free(want);
    }

    free(db);
    free(dg);
    free(dx);
    free(y);
    free(dy);
    free(run0);
    free(beta);
    free(gamma);
    free(x);
    qb_test_fixture_free(&f);
}

/* ---- one pre-activation block ------------------------------------------------ */

/* BackdoorBench's PreActBlock(4, 8, stride 2) on (4, 8, 6) inputs, its
 * (8, 4, 3) output taken as 96 "logits". */
static const char block_text[] =
    "bn\n"
    "relu as=pre\n"
    "conv 8 k=3 stride=2 pad=1 bias=0\n"
    "bn\n"
    "relu\n"
    "conv 8 k=3 pad=1 bias=0 as=body\n"
    "conv 8 k=1 stride=2 bias=0 in=pre\n"
    "add body\n";

#define BLK_B 3
#define BLK_IN (4 * 8 * 6)
#define BLK_OUT (8 * 4 * 3)

static void test_block_matches_torch(void **state)
{
    (void)state;
    qb_test_fixture f;
    load_committed(&f);
    qb_error err;
    qb_model m;
    assert_int_equal(qb_arch_declare("torch-preact-block", block_text, &err), 0);
    assert_int_equal(qb_model_build(&m, "torch-preact-block", 4, 8, 6, BLK_OUT, &err), 0);
    const size_t np = m.n_params, nt = m.n_train, nx = (size_t)BLK_B * BLK_IN,
                 ny = (size_t)BLK_B * BLK_OUT;
    /* p0, grads (np); x, dx (BLK_B, 4, 8, 6); dy, y (BLK_B, 8, 4, 3) */
    float *p0 = qb_test_fixture_get(&f, "blk.params0", QB_TFIX_I16Q12, np);
    float *x = qb_test_fixture_get(&f, "blk.x", QB_TFIX_I16Q12, nx);
    float *dy = qb_test_fixture_get(&f, "blk.dy", QB_TFIX_I16Q, ny);
    memcpy(m.params, p0, np * sizeof(float));
    qb_model_ws ws;
    qb_model_ws_init(&ws, &m, BLK_B);
    float *grads = qb_test_falloc(np), *dx = qb_test_falloc(nx);

    for (int mode = 1; mode >= 0; mode--) {
        print_message("%s mode\n", mode ? "training" : "evaluation");
        char name[32];
        const char *pre = mode ? "blk." : "blk.e";
        memset(grads, 0, np * sizeof(float));
        qb_model_ws_set_bn_training(&ws, mode);
        const float *y = qb_model_forward(&m, &ws, x, BLK_B, 1);
        snprintf(name, sizeof name, "%sy", pre);
        float *want = qb_test_fixture_get(&f, name, QB_TFIX_F32, ny);
        qb_test_assert_close(name, y, want, ny, SMALL_RTOL, SMALL_ATOL);
        free(want);
        qb_model_backward(&m, &ws, dy, BLK_B, grads, dx);
        snprintf(name, sizeof name, "%sdx", pre);
        want = qb_test_fixture_get(&f, name, QB_TFIX_F32, nx);
        qb_test_assert_close(name, dx, want, nx, SMALL_RTOL, SMALL_ATOL);
        free(want);
        snprintf(name, sizeof name, "%sgrads", pre);
        want = qb_test_fixture_get(&f, name, QB_TFIX_F32, nt);
        qb_test_assert_params_close(name, &m, grads, want, SMALL_RTOL, SMALL_ATOL);
        free(want);
        if (mode) {
            /* the evaluation mode then uses the updated statistics, as
             * the script's blk.eval() after the training forward */
            qb_model_bn_update(&m, &ws);
            want = qb_test_fixture_get(&f, "blk.running", QB_TFIX_F32, np - nt);
            assert_moved(p0 + nt, want, np - nt);
            assert_running_close("blk.running", &m, m.params + nt, want);
            free(want);
        }
    }

    free(dx);
    free(grads);
    qb_model_ws_free(&ws);
    free(dy);
    free(x);
    free(p0);
    qb_model_free(&m);
    qb_test_fixture_free(&f);
}

/* ---- whole networks ------------------------------------------------------------ */

#define NET_CLASSES 10
#define NET_IMG (3 * 32 * 32)

/* Model `arch` on batch b of 3x32x32 inputs against the fixture's
 * sections `prefix`*: a training-mode step (logits, loss, gradients, input
 * gradient, running statistics after it), then the evaluation mode with
 * those statistics (logits, loss, input gradient). */
static void check_network(const qb_test_fixture *f, const char *arch, const char *prefix, int b)
{
    qb_error err;
    qb_model m;
    assert_int_equal(qb_model_build(&m, arch, 3, 32, 32, NET_CLASSES, &err), 0);
    const size_t np = m.n_params, nt = m.n_train, nx = (size_t)b * NET_IMG,
                 nl = (size_t)b * NET_CLASSES;
    char name[32];
#define SEC(s) (snprintf(name, sizeof name, "%s%s", prefix, s), name)
    /* p0, grads (np); x, dx (b, 3, 32, 32); logits, dlogits (b, classes) */
    float *p0 = qb_test_fixture_get(f, SEC("params0"), QB_TFIX_I16Q12, np);
    float *x = qb_test_fixture_get(f, SEC("x"), QB_TFIX_U8Q, nx);
    float *lab = qb_test_fixture_get(f, SEC("labels"), QB_TFIX_U8, (size_t)b);
    uint8_t *labels = xmalloc((size_t)b, 1);
    for (int i = 0; i < b; i++) {
        assert_true(lab[i] >= 0.0f && lab[i] < (float)NET_CLASSES);
        labels[i] = (uint8_t)lab[i];
    }
    memcpy(m.params, p0, np * sizeof(float));
    qb_model_ws ws;
    qb_model_ws_init(&ws, &m, b);
    float *dlogits = qb_test_falloc(nl), *grads = qb_test_falloc(np), *dx = qb_test_falloc(nx);

    print_message("%s, training mode (%zu parameters, batch %d)\n", arch, nt, b);
    qb_model_ws_set_bn_training(&ws, 1);
    const float *logits = qb_model_forward(&m, &ws, x, b, 1);
    float *want = qb_test_fixture_get(f, SEC("logits"), QB_TFIX_F32, nl);
    qb_test_assert_close(name, logits, want, nl, NET_RTOL, NET_ATOL);
    free(want);
    float loss = qb_softmax_xent(b, NET_CLASSES, logits, labels, dlogits);
    want = qb_test_fixture_get(f, SEC("loss"), QB_TFIX_F32, 1);
    qb_test_assert_close(name, &loss, want, 1, NET_RTOL, 0.0);
    free(want);
    qb_model_backward(&m, &ws, dlogits, b, grads, dx);
    want = qb_test_fixture_get(f, SEC("grads"), QB_TFIX_F32, nt);
    qb_test_assert_params_close(name, &m, grads, want, NET_RTOL, NET_ATOL);
    free(want);
    want = qb_test_fixture_get(f, SEC("dx"), QB_TFIX_F32, nx);
    qb_test_assert_close(name, dx, want, nx, NET_RTOL, NET_ATOL);
    free(want);
    qb_model_bn_update(&m, &ws);
    want = qb_test_fixture_get(f, SEC("running"), QB_TFIX_F32, np - nt);
    assert_moved(p0 + nt, want, np - nt);
    assert_running_close(name, &m, m.params + nt, want);
    free(want);

    print_message("%s, evaluation mode\n", arch);
    qb_model_ws_set_bn_training(&ws, 0);
    logits = qb_model_forward(&m, &ws, x, b, 1);
    want = qb_test_fixture_get(f, SEC("elogits"), QB_TFIX_F32, nl);
    qb_test_assert_close(name, logits, want, nl, NET_RTOL, NET_ATOL);
    free(want);
    loss = qb_softmax_xent(b, NET_CLASSES, logits, labels, dlogits);
    want = qb_test_fixture_get(f, SEC("eloss"), QB_TFIX_F32, 1);
    qb_test_assert_close(name, &loss, want, 1, NET_RTOL, 0.0);
    free(want);
    qb_model_backward(&m, &ws, dlogits, b, NULL, dx);
    want = qb_test_fixture_get(f, SEC("edx"), QB_TFIX_F32, nx);
    qb_test_assert_close(name, dx, want, nx, NET_RTOL, NET_ATOL);
    free(want);
    /* inference (no backward state) gives the same logits */
    const float *inf = qb_model_forward(&m, &ws, x, b, 0);
    want = qb_test_fixture_get(f, SEC("elogits"), QB_TFIX_F32, nl);
    qb_test_assert_close(SEC("elogits (inference)"), inf, want, nl, NET_RTOL, NET_ATOL);
    free(want);
#undef SEC

    free(dx);
    free(grads);
    free(dlogits);
    qb_model_ws_free(&ws);
    free(labels);
    free(lab);
    free(x);
    free(p0);
    qb_model_free(&m);
}

static void test_resnet20_matches_torch(void **state)
{
    (void)state;
    qb_test_fixture f;
    load_committed(&f);
    check_network(&f, "resnet20", "r20.", 4);
    qb_test_fixture_free(&f);
}

static void test_preact_resnet18_matches_torch(void **state)
{
    (void)state;
    const char *dir = getenv("QBLIND_GENERATED_FIXTURES");
    if (!dir || !*dir) {
        print_error("QBLIND_GENERATED_FIXTURES is not set: run this test with ctest (its setup "
                    "test gen_preact_fixture writes the fixture), or write it with\n"
                    "  /usr/bin/python3 tests/fixtures/gen_graph_fixture.py --preact "
                    "DIR/preact_resnet18_torch.bin\nand set QBLIND_GENERATED_FIXTURES=DIR\n");
        fail();
    }
    char *path = qb_test_path_join(dir, "preact_resnet18_torch.bin");
    qb_test_fixture f;
    qb_test_fixture_load(&f, path,
                         "written by the CTest setup test gen_preact_fixture: "
                         "/usr/bin/python3 tests/fixtures/gen_graph_fixture.py --preact PATH "
                         "(needs python3-torch)");
    free(path);
    check_network(&f, "preact-resnet18", "pr18.", 2);
    qb_test_fixture_free(&f);
}

int main(void)
{
    return qb_test_run_group(cmocka_unit_test(test_bn_matches_torch),
                             cmocka_unit_test(test_block_matches_torch),
                             cmocka_unit_test(test_resnet20_matches_torch),
                             cmocka_unit_test(test_preact_resnet18_matches_torch));
}
