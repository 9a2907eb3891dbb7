/* Re-quantization (quant/requant.c): identity with the same parameters,
 * real changes with other ones, reproducible noise. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "core/model.h"
#include "core/train.h"
#include "quant/requant.h"
#include "tests/testutil.h"
#include "tests/testutil_quant.h"

/* Count differing codes over all quantized layers (both must quantize the
 * same layers). */
static size_t code_diff(const qb_qmodel *a, const qb_qmodel *b)
{
    size_t d = 0;
    for (int i = 0; i < a->model.n_layers; i++) {
        assert_int_equal(a->ql[i].active, b->ql[i].active);
        if (!a->ql[i].active) continue;
        for (size_t k = 0; k < a->ql[i].rows * a->ql[i].cols; k++)
            d += a->ql[i].codes[k] != b->ql[i].codes[k];
    }
    return d;
}

static void test_same_parameters_identity(void **state)
{
    (void)state;
    const char *names[] = {"int8", "int4", "int8-pc", "w3a32-away", "w2a32"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        qb_qmodel a, b;
        qb_error err;
        qb_precision p;
        qb_test_lenet_quantized(&a, names[k], 11);
        assert_int_equal(qb_precision_parse(names[k], &p, &err), 0);
        assert_int_equal(qb_requantize(&a, &p, 0.0f, 0, &b, &err), 0);
        assert_int_equal(code_diff(&a, &b), 0);
        for (int i = 0; i < a.model.n_layers; i++)
            if (a.ql[i].active) {
                size_t ns = p.gran == QB_GRAN_CHANNEL ? a.ql[i].rows : 1;
                assert_memory_equal(a.ql[i].scales, b.ql[i].scales, ns * sizeof(float));
            }
        assert_memory_equal(a.model.params, b.model.params, a.model.n_params * sizeof(float));
        qb_qmodel_free(&a);
        qb_qmodel_free(&b);
    }
}

/* Per-tensor int8 re-quantized per channel: new scales, and codes of every
 * channel whose max is below the tensor's max change. */
static void test_other_granularity_changes(void **state)
{
    (void)state;
    qb_qmodel a, b;
    qb_error err;
    qb_precision pc;
    qb_test_lenet_quantized(&a, "int8", 12);
    assert_int_equal(qb_precision_parse("int8-pc", &pc, &err), 0);
    assert_int_equal(qb_requantize(&a, &pc, 0.0f, 0, &b, &err), 0);
    assert_true(code_diff(&a, &b) > 1000);
    qb_qmodel_free(&b);
    /* and a bit-width round trip int8 -> int4 -> int8 is lossy */
    qb_precision p4, p8;
    qb_qmodel c, d;
    assert_int_equal(qb_precision_parse("int4", &p4, &err), 0);
    assert_int_equal(qb_precision_parse("int8", &p8, &err), 0);
    assert_int_equal(qb_requantize(&a, &p4, 0.0f, 0, &c, &err), 0);
    assert_int_equal(qb_requantize(&c, &p8, 0.0f, 0, &d, &err), 0);
    assert_true(code_diff(&a, &d) > 1000);
    qb_qmodel_free(&a);
    qb_qmodel_free(&c);
    qb_qmodel_free(&d);
}

/* Noise before rounding: same seed same codes, another seed other codes,
 * and a negative noise level is an error. */
static void test_noise_reproducible(void **state)
{
    (void)state;
    qb_qmodel a, n1, n2, n3;
    qb_error err;
    qb_precision p;
    qb_test_lenet_quantized(&a, "int8", 13);
    assert_int_equal(qb_precision_parse("int8", &p, &err), 0);
    assert_int_equal(qb_requantize(&a, &p, 0.5f, 42, &n1, &err), 0);
    assert_int_equal(qb_requantize(&a, &p, 0.5f, 42, &n2, &err), 0);
    assert_int_equal(qb_requantize(&a, &p, 0.5f, 43, &n3, &err), 0);
    assert_int_equal(code_diff(&n1, &n2), 0);
    assert_true(code_diff(&n1, &n3) > 1000);
    assert_true(code_diff(&a, &n1) > 1000);
    qb_qmodel_free(&n3);
    assert_int_equal(qb_requantize(&a, &p, -1.0f, 42, &n3, &err), -1); /* negative noise */
    qb_qmodel_free(&a);
    qb_qmodel_free(&n1);
    qb_qmodel_free(&n2);
}

int main(void)
{
    return qb_test_run_group(cmocka_unit_test(test_same_parameters_identity),
                             cmocka_unit_test(test_other_granularity_changes),
                             cmocka_unit_test(test_noise_reproducible));
}
