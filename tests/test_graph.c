/* Layer graphs (issue 15): batch norm, residual additions, global average
 * pooling, strided and 1x1 convolutions, the architecture text and the
 * presets built from it, and the .qbm version 2 file that carries them.
 *
 * Gradients are checked by finite differences the way tests/test_layers.c
 * checks the chain layers (its header explains the method and the bound
 * err_j < 1e-2 per element, with the rounding of L subtracted): the loss
 * L = sum(r * logits), each parameter or input perturbed in float, kinks of
 * the ReLUs detected by their sign signature (qb_test_fd_quotient). Batch
 * norm in training mode is smooth but not linear, so its central
 * difference also carries a truncation error ~h^2 |L'''|: that check uses
 * h = 2^-10 (with 2^-7 the curvature of a batch norm over 16 values
 * reached err 2.9; with 2^-10 the worst is 4e-3). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/arch.h"
#include "core/avgpool.h"
#include "core/batchnorm.h"
#include "core/model.h"
#include "core/model_io.h"
#include "core/rng.h"
#include "core/xalloc.h"
#include "tests/testutil.h"

/* Every new kind of layer in one small graph, on 3x8x8 inputs: a residual
 * block with an identity shortcut and one with a strided 1x1 projection. */
static const char tiny_res[] =
    "conv 8 k=3 pad=1 bias=0\n"
    "bn\n"
    "relu as=a\n"
    "conv 8 k=3 pad=1 bias=0\n"
    "bn\n"
    "add a\n"
    "relu as=b\n"
    "conv 16 k=1 stride=2 bias=0 in=b as=sc\n"
    "conv 16 k=3 stride=2 pad=1 in=b\n"
    "bn\n"
    "relu\n"
    "add sc\n"
    "avgpool\n"
    "flatten\n"
    "linear classes\n";

static void tiny_model(qb_model *m, uint64_t seed)
{
    qb_error err;
    assert_int_equal(qb_arch_declare("tiny-res", tiny_res, &err), 0);
    /* batch norms with non-trivial parameters and running statistics */
    static const qb_test_bn_ranges r = {0, 0.5, 1, 1, 0.2, 0.5, 1};
    qb_test_model_random(m, "tiny-res", 3, 8, 8, 5, seed, seed + 1, &r);
}

/* ---- finite differences of whole graphs ---------------------------------- */

typedef struct fd_graph {
    qb_test_fd_model fm;
    int bn_training;
} fd_graph;

static double graph_loss(void *ctx, int32_t *sig)
{
    fd_graph *g = ctx;
    qb_model_ws_set_bn_training(&g->fm.ws, g->bn_training);
    return qb_test_fd_model_loss(&g->fm, sig);
}

/* Check every parameter tensor (up to 12 elements each) and the input of
 * m at batch b against finite differences; returns the largest error. */
static double check_graph(qb_model *m, int b, int bn_training, uint64_t seed)
{
    qb_rng rng;
    qb_rng_seed(&rng, seed);
    size_t isz = (size_t)m->in_c * m->in_h * m->in_w;
    float *x = qb_test_random_floats(&rng, (size_t)b * isz, -1.0f, 1.0f);
    float *r = qb_test_random_floats(&rng, (size_t)b * m->classes, -1.0f, 1.0f);
    fd_graph g;
    qb_test_fd_model_init(&g.fm, m, x, r, b);
    g.bn_training = bn_training;

    /* analytic gradients */
    float *grads = xcalloc(m->n_params, sizeof(float));
    float *dx = xcalloc((size_t)b * isz, sizeof(float));
    qb_model_ws_set_bn_training(&g.fm.ws, bn_training);
    qb_model_forward(m, &g.fm.ws, x, b, 1);
    qb_model_backward(m, &g.fm.ws, r, b, grads, dx);

    size_t sig_len = qb_test_region_sig_len(m, b);
    int32_t *sig0 = xcalloc(sig_len + 1, sizeof(int32_t)), *sig = xcalloc(sig_len + 1, sizeof(int32_t));
    double l0 = graph_loss(&g, sig0);
    double mag = qb_test_fd_model_mag(&g.fm);
    const float h = bn_training ? 1.0f / 1024.0f : 1.0f / 128.0f;
    double worst = 0.0;
    int checked = 0, tried = 0;
    for (int t = -1; t < m->n_layers; t++) {
        /* t = -1: the input; else layer t's weights then bias */
        for (int part = 0; part < 2; part++) {
            float *p;
            const float *an;
            size_t n;
            if (t < 0) {
                if (part) continue;
                p = x, an = dx, n = (size_t)b * isz;
            } else {
                const qb_layer *l = &m->layers[t];
                size_t off = part ? l->b_off : l->w_off, len = part ? l->b_len : l->w_len;
                if (len == 0) continue;
                p = m->params + off, an = grads + off, n = len;
            }
            double num[12], den[12], amax = 0.0;
            size_t idx[12];
            int ok[12], k = 0;
            for (; k < 12 && (size_t)k < n; k++) {
                idx[k] = (size_t)(qb_rng_uniform(&rng) * (double)n) % n;
                ok[k] = qb_test_fd_quotient(graph_loss, &g, sig_len, sig0, sig, l0, p, idx[k], h,
                                            &num[k], &den[k]);
                if (ok[k] && fabs(num[k]) > amax) amax = fabs(num[k]);
            }
            for (int j = 0; j < k; j++) {
                tried++;
                if (!ok[j]) continue;
                checked++;
                double scale = fmax(fabs(num[j]), 0.01 * amax);
                double allowance = 8.0 * 0x1p-24 * mag / fabs(den[j]);
                double e = fabs((double)an[idx[j]] - num[j]) - allowance;
                e = (e > 0 ? e : 0) / (scale > 0 ? scale : 1);
                if (e > worst) worst = e;
                if (e >= 1e-2)
                    print_error("tensor %d.%d element %zu: analytic %g numeric %g (err %g)\n", t,
                                part, idx[j], (double)an[idx[j]], num[j], e);
            }
        }
    }
    assert_true(checked >= tried / 2);
    free(sig0);
    free(sig);
    free(grads);
    free(dx);
    free(x);
    free((void *)r);
    qb_test_fd_model_free(&g.fm);
    return worst;
}

static void test_graph_fd_eval_mode(void **state)
{
    (void)state;
    qb_model m;
    tiny_model(&m, 3);
    double worst = check_graph(&m, 3, 0, 11);
    print_message("tiny-res, batch norm evaluation mode: worst err %.2e\n", worst);
    assert_true(worst < 1e-2);
    qb_model_free(&m);
}

static void test_graph_fd_training_mode(void **state)
{
    (void)state;
    qb_model m;
    tiny_model(&m, 4);
    double worst = check_graph(&m, 4, 1, 12);
    print_message("tiny-res, batch norm training mode: worst err %.2e\n", worst);
    assert_true(worst < 1e-2);
    qb_model_free(&m);
}

static void test_resnet20_fd(void **state)
{
    (void)state;
    qb_model m;
    qb_error err;
    assert_int_equal(qb_model_build(&m, "resnet20", 3, 8, 8, 10, &err), 0);
    qb_model_init_params(&m, 5);
    /* evaluation mode: piecewise linear, so the whole graph's wiring is
     * checked exactly (training mode's batch norm is tiny-res's test: with
     * 2x2 maps in the last stage its curvature needs a step so small that
     * float rounding dominates) */
    double worst = check_graph(&m, 2, 0, 13);
    print_message("resnet20 on 3x8x8, evaluation mode: worst err %.2e\n", worst);
    assert_true(worst < 1e-2);
    qb_model_free(&m);
}

/* ---- batch norm by hand --------------------------------------------------- */

static void test_bn_hand_computed(void **state)
{
    (void)state;
    /* one channel, b = 2, HW = 2: x = {1, 3 | 5, 7}: mean 4, biased var 5,
     * unbiased 20/3; gamma 2, beta 1. */
    const float x[4] = {1, 3, 5, 7}, gamma = 2, beta = 1;
    float y[4], stat[2], uvar;
    qb_bn_forward_train(2, 1, 2, x, &gamma, &beta, y, stat, &uvar);
    double invstd = 1.0 / sqrt(5.0 + 1e-5);
    for (int i = 0; i < 4; i++) assert_float_equal(y[i], 2.0 * (x[i] - 4.0) * invstd + 1.0, 1e-6);
    assert_float_equal(stat[0], 4.0f, 0.0f);
    assert_float_equal(uvar, 20.0f / 3.0f, 1e-6);
    float running[2] = {0.0f, 1.0f};
    qb_bn_running_update(1, stat, &uvar, 0.1f, running);
    assert_float_equal(running[0], 0.4f, 1e-7);
    assert_float_equal(running[1], 0.9f + 0.1f * 20.0f / 3.0f, 1e-6);
    /* evaluation mode with those statistics */
    qb_bn_forward_eval(2, 1, 2, x, &gamma, &beta, running, y);
    for (int i = 0; i < 4; i++)
        assert_float_equal(y[i], 2.0 * (x[i] - 0.4) / sqrt(running[1] + 1e-5) + 1.0, 1e-5);
    /* global average pool */
    float g[2];
    qb_avgpool_forward(2, 1, 2, x, g);
    assert_float_equal(g[0], 2.0f, 0.0f);
    assert_float_equal(g[1], 6.0f, 0.0f);
}

/* qb_train's batch-norm bookkeeping: the running statistics move, the
 * trained parameters exclude them. */
static void test_bn_running_stats_in_model(void **state)
{
    (void)state;
    qb_model m;
    tiny_model(&m, 6);
    const qb_layer *bn = &m.layers[1];
    assert_int_equal(bn->kind, QB_LAYER_BATCHNORM);
    assert_true(bn->s_off >= m.n_train && bn->s_off + bn->s_len <= m.n_params);
    float before = m.params[bn->s_off];
    qb_model_ws ws;
    qb_model_ws_init(&ws, &m, 4);
    qb_rng rng;
    qb_rng_seed(&rng, 1);
    float *x = qb_test_random_floats(&rng, 4 * 3 * 8 * 8, 0.0f, 1.0f);
    qb_model_forward(&m, &ws, x, 4, 1); /* evaluation mode: nothing moves */
    qb_model_bn_update(&m, &ws);
    assert_float_equal(m.params[bn->s_off], before, 0.0f);
    qb_model_ws_set_bn_training(&ws, 1);
    qb_model_forward(&m, &ws, x, 4, 1);
    qb_model_bn_update(&m, &ws);
    float mean = ws.bn_stat[1][0];
    assert_float_equal(m.params[bn->s_off], 0.9f * before + 0.1f * mean, 1e-7);
    free(x);
    qb_model_ws_free(&ws);
    qb_model_free(&m);
}

/* ---- presets ------------------------------------------------------------- */

static void test_preset_sizes(void **state)
{
    (void)state;
    qb_model m;
    qb_error err;
    /* resnet20 (option B shortcuts), counted by hand: stem 432 + bn 32;
     * stage 1: 3 x (2 x 2304 + 64); stage 2: 4608 + 9216 + 128 + 512 + 64
     * and 2 x (2 x 9216 + 128); stage 3: 18432 + 36864 + 256 + 2048 + 128
     * and 2 x (2 x 36864 + 256); linear 650. */
    assert_int_equal(qb_model_plan(&m, "resnet20", 3, 32, 32, 10, &err), 0);
    assert_int_equal(m.n_train, 272474);
    /* PyTorch 1.13 counts BackdoorBench's PreActResNet18 at 11,171,146
     * parameters and 6,784 running-statistic values */
    assert_int_equal(qb_model_plan(&m, "preact-resnet18", 3, 32, 32, 10, &err), 0);
    assert_int_equal(m.n_train, 11171146);
    assert_int_equal(m.n_params - m.n_train, 6784);
    /* any input size that fits: 1x28x28 */
    assert_int_equal(qb_model_plan(&m, "preact-resnet18", 1, 28, 28, 10, &err), 0);
    assert_int_equal(qb_model_plan(&m, "resnet20", 1, 28, 28, 10, &err), 0);
    assert_int_equal(qb_model_plan(&m, "vgg11-bn", 3, 32, 32, 43, &err), 0);
    assert_int_equal(m.n_train, 9231114 - 5130 + 512 * 43 + 43);
    /* vgg11-bn needs 32x32: five 2x2 pools */
    assert_int_not_equal(qb_model_plan(&m, "vgg11-bn", 1, 28, 28, 10, &err), 0);
    qb_test_assert_msg_has(&err, "does not fit");
    /* the penultimate representation is the linear layer's input */
    assert_int_equal(qb_model_plan(&m, "resnet20", 3, 32, 32, 10, &err), 0);
    int pen = qb_model_penultimate_layer(&m);
    assert_int_equal(m.layers[pen].kind, QB_LAYER_AVGPOOL);
}

static void test_fused_bit_identical(void **state)
{
    (void)state;
    qb_model m;
    qb_error err;
    assert_int_equal(qb_model_build(&m, "resnet20", 3, 16, 16, 10, &err), 0);
    qb_model_init_params(&m, 8);
    qb_rng rng;
    qb_rng_seed(&rng, 2);
    float *x = qb_test_random_floats(&rng, 3 * 3 * 16 * 16, 0.0f, 1.0f);
    qb_model_ws a, b;
    qb_model_ws_init(&a, &m, 3);
    qb_model_ws_init(&b, &m, 3);
    qb_model_ws_set_fused(&b, 0);
    const float *ya = qb_model_forward(&m, &a, x, 3, 0), *yb = qb_model_forward(&m, &b, x, 3, 0);
    assert_memory_equal(ya, yb, 3 * 10 * sizeof(float));
    free(x);
    qb_model_ws_free(&a);
    qb_model_ws_free(&b);
    qb_model_free(&m);
}

/* Training passes in a fused workspace (ReLUs overwrite the batch norm or
 * addition output they read, inner conv activations not kept) and an
 * unfused one give the same bits: logits, every gradient, the input
 * gradient and the running statistics. */
static void test_fused_training_bit_identical(void **state)
{
    (void)state;
    const char *archs[] = {"resnet20", "preact-resnet18"};
    for (int a = 0; a < 2; a++) {
        qb_model m, m2;
        qb_error err;
        assert_int_equal(qb_model_build(&m, archs[a], 3, 8, 8, 10, &err), 0);
        qb_model_init_params(&m, 21);
        qb_model_copy(&m2, &m);
        qb_rng rng;
        qb_rng_seed(&rng, 3);
        const int B = 2;
        float *x = qb_test_random_floats(&rng, (size_t)B * 3 * 8 * 8, 0.0f, 1.0f);
        float *r = qb_test_random_floats(&rng, (size_t)B * 10, -1.0f, 1.0f);
        float *g[2], *dx[2];
        qb_model *mm[2] = {&m, &m2};
        for (int f = 0; f < 2; f++) {
            qb_model_ws ws;
            qb_model_ws_init(&ws, mm[f], B);
            qb_model_ws_set_fused(&ws, f);
            qb_model_ws_set_bn_training(&ws, 1);
            g[f] = xcalloc(m.n_params, sizeof(float));
            dx[f] = xcalloc((size_t)B * 3 * 8 * 8, sizeof(float));
            qb_model_forward(mm[f], &ws, x, B, 1);
            qb_model_bn_update(mm[f], &ws);
            qb_model_backward(mm[f], &ws, r, B, g[f], dx[f]);
            qb_model_ws_free(&ws);
        }
        assert_memory_equal(g[0], g[1], m.n_params * sizeof(float));
        assert_memory_equal(dx[0], dx[1], (size_t)B * 3 * 8 * 8 * sizeof(float));
        assert_memory_equal(m.params, m2.params, m.n_params * sizeof(float));
        for (int f = 0; f < 2; f++) {
            free(g[f]);
            free(dx[f]);
        }
        free(x);
        free(r);
        qb_model_free(&m);
        qb_model_free(&m2);
    }
}

/* ---- the architecture text's errors -------------------------------------- */

static void expect_arch_error(const char *text, int line, int col, const char *frag)
{
    qb_model m;
    qb_error err;
    qb_arch_where w;
    int rc = qb_arch_plan_text(&m, "t", text, 3, 16, 16, 10, &w, &err);
    if (rc == 0 || w.line != line || w.col != col || !strstr(err.msg, frag))
        print_error("text:\n%s\ngot rc %d at %d:%d: %s\nexpected %d:%d with \"%s\"\n", text, rc,
                    w.line, w.col, rc ? err.msg : "(planned)", line, col, frag);
    assert_int_not_equal(rc, 0);
    assert_int_equal(w.line, line);
    assert_int_equal(w.col, col);
    qb_test_assert_msg_has(&err, frag);
}

static void test_arch_errors(void **state)
{
    (void)state;
    expect_arch_error("conv 8\nbatchnorm\nlinear classes", 1, 0, "unknown layer \"batchnorm\"");
    expect_arch_error("conv 8 k=3 pad=1 as=a\nconv 16 k=3 pad=1\nadd a\nflatten\nlinear classes",
                      2, 4, "add: shapes differ");
    expect_arch_error("conv 8 k=3 pad=1\nconv 16 cin=4\nflatten\nlinear classes", 1, 0,
                      "cin=4");
    expect_arch_error("conv 8 k=3 pad=1 in=later\nrelu as=later\nflatten\nlinear classes", 0, 20,
                      "no earlier layer is named \"later\"");
    expect_arch_error("conv 8 k=3 pad=1 as=x\nadd x as=x\nflatten\nlinear classes", 1, 0 + 4,
                      "adds its input to itself");
    expect_arch_error("conv 8 k=3 strid=2\nflatten\nlinear classes", 0, 11, "unknown option");
    expect_arch_error("conv 8 k=0\nflatten\nlinear classes", 0, 9, "k must be");
    expect_arch_error("conv\nflatten\nlinear classes", 0, 4, "usage: conv OUT");
    expect_arch_error("flatten\nconv 8\nlinear classes", 1, 0, "flat vector");
    expect_arch_error("conv 8 k=17\nlinear classes", 0, 9, "k must be");
    expect_arch_error("conv 8 k=3 pad=1 as=a\nrelu as=a\nflatten\nlinear classes", 1, 8,
                      "already used");
    /* not about one line */
    qb_model m;
    qb_error err;
    qb_arch_where w;
    assert_int_not_equal(qb_arch_plan_text(&m, "t", "conv 8 as=a\nconv 8 in=a\nflatten\nlinear 7",
                                           3, 16, 16, 10, &w, &err), 0);
    qb_test_assert_msg_has(&err, "not the 10 classes");
    assert_int_not_equal(qb_arch_plan_text(&m, "t", "conv 8 as=a\nrelu\nconv 8 in=a\nflatten\n"
                                           "linear classes", 3, 16, 16, 10, &w, &err), 0);
    qb_test_assert_msg_has(&err, "never used");
    assert_int_equal(w.line, 1); /* the unused layer's line (the relu) */
    assert_int_equal(w.col, 0);
    /* the preset's names cannot be redeclared with other layers */
    assert_int_not_equal(qb_arch_declare("resnet20", "conv 8\nflatten\nlinear classes", &err), 0);
    qb_test_assert_msg_has(&err, "preset");
}

/* ---- the model file, version 2 -------------------------------------------- */

static void test_model_file_v2(void **state)
{
    (void)state;
    qb_model a, b;
    qb_error err;
    assert_int_equal(qb_model_build(&a, "resnet20", 3, 16, 16, 10, &err), 0);
    qb_model_init_params(&a, 9);
    for (size_t i = a.n_train; i < a.n_params; i++) a.params[i] = 0.25f + (float)(i % 7);
    uint8_t *buf;
    size_t len;
    assert_int_equal(qb_model_encode(&a, "k=v\n", &buf, &len, &err), 0);
    assert_int_equal(buf[8], 2);
    char *meta;
    assert_int_equal(qb_model_decode(buf, len, "buf", &b, &meta, &err), 0);
    assert_int_equal(b.n_layers, a.n_layers);
    assert_int_equal(b.n_train, a.n_train);
    assert_memory_equal(b.layers, a.layers, sizeof(qb_layer) * (size_t)a.n_layers);
    assert_memory_equal(b.params, a.params, a.n_params * sizeof(float));
    assert_string_equal(meta, "k=v\n");
    free(meta);
    qb_model_free(&b);
    /* a preset's name with other layers in its text: refused, even with a
     * valid checksum */
    const char *text = qb_arch_text("resnet20");
    uint8_t *p = NULL;
    for (size_t i = 0; !p && i + strlen(text) <= len; i++)
        if (memcmp(buf + i, text, strlen(text)) == 0) p = buf + i;
    assert_non_null(p);
    p[5] = '8'; /* "conv 16" -> "conv 86" */
    uLong crc = crc32(0L, buf, (uInt)(len - 4));
    for (int i = 0; i < 4; i++) buf[len - 4 + (size_t)i] = (uint8_t)(crc >> (8 * i));
    assert_int_not_equal(qb_model_decode(buf, len, "edited.qbm", &b, NULL, &err), 0);
    qb_test_assert_msg_has(&err, "differ from qblind's resnet20");
    free(buf);

    /* a declared architecture travels in the file */
    qb_model c;
    tiny_model(&c, 10);
    assert_int_equal(qb_model_encode(&c, NULL, &buf, &len, &err), 0);
    assert_int_equal(qb_model_decode(buf, len, "buf", &b, NULL, &err), 0);
    assert_memory_equal(b.params, c.params, c.n_params * sizeof(float));
    qb_model_free(&b);
    free(buf);
    qb_model_free(&c);
    qb_model_free(&a);
}

int main(void)
{
    return qb_test_run_group(cmocka_unit_test(test_bn_hand_computed),
                             cmocka_unit_test(test_bn_running_stats_in_model),
                             cmocka_unit_test(test_graph_fd_eval_mode),
                             cmocka_unit_test(test_graph_fd_training_mode),
                             cmocka_unit_test(test_resnet20_fd),
                             cmocka_unit_test(test_preset_sizes),
                             cmocka_unit_test(test_fused_bit_identical),
                             cmocka_unit_test(test_fused_training_bit_identical),
                             cmocka_unit_test(test_arch_errors),
                             cmocka_unit_test(test_model_file_v2));
}
