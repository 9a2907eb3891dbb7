/* Quantized model files (.qbq): round trips and rejection of corrupt files. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/model.h"
#include "core/rng.h"
#include "core/train.h"
#include "core/xalloc.h"
#include "quant/qmodel_io.h"
#include "tests/testutil.h"
#include "tests/testutil_quant.h"

static void logits_of(const qb_model *m, float *out /* (4, 10) */)
{
    qb_model_ws ws;
    qb_model_ws_init(&ws, m, 4);
    float x[4 * 784];
    qb_rng rng;
    qb_rng_seed(&rng, 9);
    for (int i = 0; i < 4 * 784; i++) x[i] = qb_rng_uniform(&rng);
    memcpy(out, qb_model_forward(m, &ws, x, 4, 0), sizeof(float) * 40);
    qb_model_ws_free(&ws);
}

/* A graph (resnet20, batch norms folded before quantizing): the file
 * carries the folded architecture (its text, "resnet20.bnfold"), and the
 * loaded model has the same layers, codes, weights and bit-identical
 * logits, integer path and simulated alike. */
static void test_round_trip_resnet20(void **state)
{
    const char *dir = *state;
    char path[512];
    snprintf(path, sizeof path, "%s/r.qbq", dir);
    qb_model fp;
    qb_error err;
    assert_int_equal(qb_model_build(&fp, "resnet20", 3, 16, 16, 10, &err), 0);
    qb_model_init_params(&fp, 4);
    for (int i = 0; i < fp.n_layers; i++) /* non-trivial running statistics */
        if (fp.layers[i].kind == QB_LAYER_BATCHNORM)
            for (size_t k = 0; k < fp.layers[i].s_len; k++)
                fp.params[fp.layers[i].s_off + k] = 0.5f + 0.01f * (float)(k % 37);
    const char *names[] = {"int8", "w4a8-pc", "w3a32"};
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        qb_precision p;
        assert_int_equal(qb_precision_parse(names[k], &p, &err), 0);
        qb_qmodel a, b;
        assert_int_equal(qb_qmodel_init(&a, &fp, &p, 0.0f, 0, &err), 0);
        assert_true(a.folded);
        assert_int_equal(qb_qmodel_save(&a, path, &err), 0);
        if (qb_qmodel_load(&b, path, &err)) fail_msg("%s: %s", names[k], err.msg);
        assert_string_equal(b.model.arch, "resnet20.bnfold");
        assert_int_equal(b.model.n_layers, a.model.n_layers);
        assert_memory_equal(b.model.layers, a.model.layers,
                            sizeof(qb_layer) * (size_t)a.model.n_layers);
        assert_memory_equal(a.model.params, b.model.params, a.model.n_params * sizeof(float));
        int nq = 0;
        for (int i = 0; i < a.model.n_layers; i++) {
            assert_int_equal(a.ql[i].active, b.ql[i].active);
            if (!a.ql[i].active) continue;
            nq++;
            assert_memory_equal(a.ql[i].codes, b.ql[i].codes, a.ql[i].rows * a.ql[i].cols);
        }
        assert_int_equal(nq, 22); /* 21 convolutions and the linear layer */
        qb_rng rng;
        qb_rng_seed(&rng, 5);
        float *x = qb_test_random_floats(&rng, 2 * 3 * 16 * 16, 0.0f, 1.0f);
        float la[20];
        qb_model_ws wa, wb;
        qb_model_ws_init(&wa, &a.model, 2);
        qb_model_ws_init(&wb, &b.model, 2);
        memcpy(la, qb_model_forward(&a.model, &wa, x, 2, 0), sizeof la);
        assert_memory_equal(la, qb_model_forward(&b.model, &wb, x, 2, 0), sizeof la);
        qb_model_ws_free(&wb);
        qb_model_ws_free(&wa);
        free(x);
        qb_qmodel_free(&a);
        qb_qmodel_free(&b);
    }
    qb_model_free(&fp);
}

/* Every precision kind: the loaded model has the same codes, scales,
 * de-quantized weights, and (integer or float path) bit-identical logits. */
static void test_round_trip(void **state)
{
    const char *dir = *state;
    const char *names[] = {"int8", "int4-pc", "int8-linear", "w3a32", "w4a8-away", "w2a32-pc"};
    char path[512];
    snprintf(path, sizeof path, "%s/m.qbq", dir);
    for (size_t k = 0; k < sizeof names / sizeof names[0]; k++) {
        qb_qmodel a, b;
        qb_error err;
        qb_test_lenet_quantized(&a, names[k], 3 + k);
        assert_int_equal(qb_qmodel_save(&a, path, &err), 0);
        if (qb_qmodel_load(&b, path, &err)) fail_msg("%s: %s", names[k], err.msg);
        assert_string_equal(b.prec.name, names[k]);
        assert_int_equal(a.model.n_params, b.model.n_params);
        assert_memory_equal(a.model.params, b.model.params, a.model.n_params * sizeof(float));
        for (int i = 0; i < a.model.n_layers; i++) {
            assert_int_equal(a.ql[i].active, b.ql[i].active);
            if (!a.ql[i].active) continue;
            assert_memory_equal(a.ql[i].codes, b.ql[i].codes, a.ql[i].rows * a.ql[i].cols);
            size_t ns = a.prec.gran == QB_GRAN_CHANNEL ? a.ql[i].rows : 1;
            assert_memory_equal(a.ql[i].scales, b.ql[i].scales, ns * sizeof(float));
        }
        float la[40], lb[40];
        logits_of(&a.model, la);
        logits_of(&b.model, lb);
        assert_memory_equal(la, lb, sizeof la);
        qb_qmodel_free(&a);
        qb_qmodel_free(&b);
    }
    /* 4-bit codes are stored two per byte: the file is smaller than int8's */
    qb_qmodel q8, q4;
    uint8_t *b8, *b4;
    size_t n8, n4;
    qb_error err;
    qb_test_lenet_quantized(&q8, "int8", 1);
    qb_test_lenet_quantized(&q4, "w4a8", 1);
    assert_int_equal(qb_qmodel_encode(&q8, &b8, &n8, &err), 0);
    assert_int_equal(qb_qmodel_encode(&q4, &b4, &n4, &err), 0);
    size_t weights = 0;
    for (int i = 0; i < q8.model.n_layers; i++)
        if (q8.ql[i].active) weights += q8.ql[i].rows * q8.ql[i].cols;
    assert_true(n8 - n4 >= weights / 2 - 8);
    free(b8);
    free(b4);
    qb_qmodel_free(&q8);
    qb_qmodel_free(&q4);
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
static void fix_crc(uint8_t *b, size_t len)
{
    put_u32(b + len - 4, (uint32_t)crc32(0L, b, (uInt)(len - 4)));
}

static void expect_reject(const uint8_t *b, size_t len, const char *frag)
{
    qb_qmodel q;
    qb_error err;
    assert_int_equal(qb_qmodel_decode(b, len, "bad.qbq", &q, &err), -1);
    if (!strstr(err.msg, "bad.qbq") || !strstr(err.msg, frag))
        fail_msg("expected \"%s\" in: %s", frag, err.msg);
}

static void test_corrupt(void **state)
{
    (void)state;
    qb_qmodel q;
    qb_error err;
    qb_test_lenet_quantized(&q, "int4", 2);
    uint8_t *good, *b;
    size_t len;
    assert_int_equal(qb_qmodel_encode(&q, &good, &len, &err), 0);
    b = malloc(len + 8);

    memcpy(b, good, len);
    b[0] = 'X';
    expect_reject(b, len, "bad magic");

    memcpy(b, good, len);
    b[len / 2] ^= 0x40;
    expect_reject(b, len, "checksum mismatch");

    expect_reject(good, len - 100, "checksum mismatch"); /* truncated: CRC no longer matches */

    memcpy(b, good, len); /* precision name "int4" -> "int9" */
    b[16 + 3] = '9';
    fix_crc(b, len);
    expect_reject(b, len, "unknown precision");

    memcpy(b, good, len); /* version */
    put_u32(b + 8, 7);
    fix_crc(b, len);
    expect_reject(b, len, "version 7");

    /* offsets of the layer records: after the float part */
    uint64_t blob = (uint64_t)good[20] | (uint64_t)good[21] << 8 | (uint64_t)good[22] << 16 |
                    (uint64_t)good[23] << 24;
    size_t nq_off = 16 + 4 + 8 + (size_t)blob;
    memcpy(b, good, len);
    put_u32(b + nq_off, 3);
    fix_crc(b, len);
    expect_reject(b, len, "quantized layers");

    memcpy(b, good, len); /* first record's layer index */
    put_u32(b + nq_off + 4, 1);
    fix_crc(b, len);
    expect_reject(b, len, "does not match layer 0");

    memcpy(b, good, len); /* first scale negative */
    float neg = -1.0f;
    uint32_t u;
    memcpy(&u, &neg, 4);
    put_u32(b + nq_off + 4 + 16, u);
    fix_crc(b, len);
    expect_reject(b, len, "must be finite");

    memcpy(b, good, len); /* first code nibble = -8, outside [-7, 7] for 4 bits */
    b[nq_off + 4 + 16 + 4] = (uint8_t)((b[nq_off + 4 + 16 + 4] & 0xF0) | 0x08);
    fix_crc(b, len);
    expect_reject(b, len, "outside [-7, 7]");

    memcpy(b, good, len - 4); /* trailing garbage before the CRC */
    memset(b + len - 4, 0, 4);
    size_t glen = len + 4;
    fix_crc(b, glen);
    expect_reject(b, glen, "trailing garbage");

    memcpy(b, good, len); /* the float part's own checks run too */
    b[16 + 4 + 8 + 3] = 'X';
    fix_crc(b, len);
    expect_reject(b, len, "float part");

    free(b);
    free(good);
    qb_qmodel_free(&q);
}

int main(void)
{
    return qb_test_run_group(qb_test_with_tmpdir(test_round_trip),
                             qb_test_with_tmpdir(test_round_trip_resnet20),
                             cmocka_unit_test(test_corrupt));
}
