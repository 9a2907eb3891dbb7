/* Quantization forensics (defenses/forensics.c) on constructed weights:
 * smooth weights are not flagged, weights pushed inside their rounding
 * cells (the qa-pgd box) are; the trusted-reference test tells a
 * quantization of the reference from a quantization of another model. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/model_io.h"
#include "defenses/defense.h"
#include "store/results.h"
#include "quant/qmodel.h"
#include "quant/quantizer.h"
#include "tests/testutil.h"
#include "tests/testutil_defenses.h"
#include "tests/testutil_quant.h"

/* Run forensics on fp deployed at `prec`; returns detected, p_cell in *p. */
static int run(const qb_model *fp, const char *prec, const char *reference, double *p_cell,
               double *outside)
{
    qb_qmodel qm;
    qb_test_quantize(&qm, fp, prec);
    qb_param_kv kv[1] = {{"reference", reference}};
    qb_defense_input in;
    qb_test_input_deployed(&in, &qm);
    in.fp32 = fp;
    in.params = (qb_params){qb_forensics_params, reference ? 1 : 0, kv};
    qb_test_run run;
    qb_test_run_init(&run, QB_DETECTED_NA);
    qb_error err;
    int rc = qb_defense_forensics(&in, &run.res, &err);
    if (rc) fprintf(stderr, "%s\n", err.msg);
    assert_int_equal(rc, 0);
    *p_cell = qb_details_find(&run.det, "forensics.p_cell")->v[0];
    const qb_detail *o = qb_details_find(&run.det, "forensics.ref_outside");
    if (outside) *outside = o ? o->v[0] : NAN;
    int detected = run.res.detected;
    qb_test_run_free(&run);
    qb_qmodel_free(&qm);
    return detected;
}

/* Move every weight of every conv/linear layer into its box
 * [(q - 1/2 + eps) s, (q + 1/2 - eps) s] on the per-tensor `bits` grid,
 * leaving the max-|w| weight (which fixes s) alone: what qa-pgd's
 * projection does. */
static void project_into_cells(qb_model *m, int bits, float eps)
{
    for (int i = 0; i < m->n_layers; i++) {
        const qb_layer *l = &m->layers[i];
        if (l->kind != QB_LAYER_CONV2D && l->kind != QB_LAYER_LINEAR) continue;
        float *w = m->params + l->w_off;
        float s = qb_quant_scale(w, l->w_len, bits);
        float mx = s * (float)qb_quant_qmax(bits);
        for (size_t k = 0; k < l->w_len; k++) {
            if (fabsf(w[k]) == mx) continue;
            float q = rintf(w[k] / s);
            float lo = (q - 0.5f + eps) * s, hi = (q + 0.5f - eps) * s;
            w[k] = w[k] < lo ? lo : w[k] > hi ? hi : w[k];
        }
    }
}

static void test_smooth_weights_not_flagged(void **state)
{
    (void)state;
    qb_model m;
    qb_error err;
    assert_int_equal(qb_model_build(&m, "lenet", 1, 28, 28, 10, &err), 0);
    for (uint64_t seed = 1; seed <= 3; seed++) {
        qb_model_init_params(&m, seed); /* uniform weights: a smooth density */
        double p;
        assert_int_equal(run(&m, "int8", NULL, &p, NULL), 0);
        assert_true(p > 0.01);
        assert_int_equal(run(&m, "int4", NULL, &p, NULL), 0);
        assert_true(p > 0.01);
        assert_int_equal(run(&m, "fp32", NULL, &p, NULL), 0); /* the 8-bit grid */
    }
    qb_model_free(&m);
}

static void test_boxed_weights_flagged(void **state)
{
    (void)state;
    qb_model m;
    qb_test_lenet(&m, 1);
    project_into_cells(&m, 4, 0.1f);
    double p;
    assert_int_equal(run(&m, "int4", NULL, &p, NULL), 1);
    assert_true(p < 1e-6);
    /* the 4-bit box is invisible on the 8-bit grid */
    assert_int_equal(run(&m, "int8", NULL, &p, NULL), 0);
    qb_model_free(&m);

    qb_test_lenet(&m, 2);
    project_into_cells(&m, 8, 0.1f);
    assert_int_equal(run(&m, "int8", NULL, &p, NULL), 1);
    assert_int_equal(run(&m, "fp32", NULL, &p, NULL), 1); /* fp32 task: 8-bit grid */
    qb_model_free(&m);
}

static void test_reference(void **state)
{
    const char *dir = *state;
    char path[512];
    snprintf(path, sizeof path, "%s/ref.qbm", dir);
    qb_model ref, other;
    qb_error err;
    qb_test_lenet(&ref, 5);
    assert_int_equal(qb_model_save(&ref, path, "", &err), 0);
    double p, outside;
    /* the deployed model is the reference quantized: nothing outside a cell */
    assert_int_equal(run(&ref, "int8", path, &p, &outside), 0);
    assert_true(outside == 0.0);
    assert_int_equal(run(&ref, "int4-pc-away", path, &p, &outside), 0);
    assert_true(outside == 0.0);
    assert_int_equal(run(&ref, "fp32", path, &p, &outside), 0);
    assert_true(outside == 0.0);
    /* a different model, or the reference nudged by a tenth of a cell */
    qb_test_lenet(&other, 6);
    assert_int_equal(run(&other, "int8", path, &p, &outside), 1);
    assert_true(outside > 1000);
    qb_model_free(&other);
    qb_model_copy(&other, &ref);
    const qb_layer *l = &other.layers[other.n_layers - 1];
    float s = qb_quant_scale(other.params + l->w_off, l->w_len, 8);
    for (size_t k = 0; k < l->w_len; k += 2) other.params[l->w_off + k] += 0.6f * s;
    assert_int_equal(run(&other, "int8", path, &p, &outside), 1);
    qb_model_free(&other);
    qb_model_free(&ref);
}

static void test_errors(void **state)
{
    qb_model *m = *state;
    qb_qmodel qm;
    qb_test_quantize(&qm, m, "int8");
    qb_defense_input in;
    qb_test_input_deployed(&in, &qm);
    qb_param_kv kv[1] = {{"reference", "/nonexistent/ref.qbm"}};
    in.params = (qb_params){qb_forensics_params, 1, kv};
    qb_test_run run;
    qb_test_run_init(&run, QB_DETECTED_NA);
    qb_error err;
    /* no FP32 model: cannot run */
    assert_int_equal(qb_defense_forensics(&in, &run.res, &err), -1);
    in.fp32 = m;
    /* a reference that cannot be read: an error, not "not detected" */
    assert_int_equal(qb_defense_forensics(&in, &run.res, &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent/ref.qbm"));
    qb_test_run_free(&run);
    qb_qmodel_free(&qm);
}

int main(void)
{
    return qb_test_run_group(cmocka_unit_test(test_smooth_weights_not_flagged),
                             cmocka_unit_test(test_boxed_weights_flagged),
                             qb_test_with_tmpdir(test_reference), qb_test_with_lenet(test_errors));
}
