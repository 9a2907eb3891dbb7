/* The quantizer (quant/quantizer.c) and precision names (quant/precision.c):
 * hand-computed cases, packing round trips, and PyTorch's numbers. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "quant/precision.h"
#include "quant/quantizer.h"
#include "tests/testutil.h"

/* Scale 0.5 exactly (max 63.5 at 8 bits: 63.5 / 127), so r / s is exact
 * and the ties are real ties. */
static void test_ties_and_modes(void **state)
{
    (void)state;
    const float r[] = {63.5f, 0.25f, 0.75f, 1.25f, -0.25f, -0.75f, -1.25f, 0.0f, 0.2f, -63.5f};
    const int even[] = {127, 0, 2, 2, 0, -2, -2, 0, 0, -127};
    const int away[] = {127, 1, 2, 3, -1, -2, -3, 0, 0, -127};
    const size_t n = sizeof r / sizeof r[0];
    float s = qb_quant_scale(r, n, 8);
    assert_true(s == 0.5f);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(qb_quant_code(r[i], s, 8, QB_ROUND_HALF_EVEN), even[i]);
        assert_int_equal(qb_quant_code(r[i], s, 8, QB_ROUND_HALF_AWAY), away[i]);
    }
    int8_t q[10];
    float sc;
    qb_quantize_symmetric(r, 1, n, 8, QB_GRAN_TENSOR, QB_ROUND_HALF_AWAY, q, &sc);
    assert_true(sc == 0.5f);
    for (size_t i = 0; i < n; i++) assert_int_equal(q[i], away[i]);
    float out[10];
    qb_dequantize(q, 1, n, QB_GRAN_TENSOR, &sc, out);
    assert_true(out[1] == 0.5f && out[3] == 1.5f && out[6] == -1.5f);
}

/* 4 bits: qmax 7, scale 3.5 / 7 = 0.5. */
static void test_four_bits(void **state)
{
    (void)state;
    const float r[] = {3.5f, 0.25f, 1.75f, -3.5f, -1.25f};
    float s = qb_quant_scale(r, 5, 4);
    assert_true(s == 0.5f);
    assert_int_equal(qb_quant_code(0.25f, s, 4, QB_ROUND_HALF_EVEN), 0);
    assert_int_equal(qb_quant_code(1.75f, s, 4, QB_ROUND_HALF_EVEN), 4); /* 3.5 -> 4 */
    assert_int_equal(qb_quant_code(-1.25f, s, 4, QB_ROUND_HALF_EVEN), -2);
    assert_int_equal(qb_quant_code(-1.25f, s, 4, QB_ROUND_HALF_AWAY), -3);
    assert_int_equal(qb_quant_qmax(2), 1);
    assert_int_equal(qb_quant_qmax(3), 3);
    assert_int_equal(qb_quant_qmax(8), 127);
}

/* With an external scale values clamp at both ends: the formula's
 * [-2^(b-1), 2^(b-1)-1] for codes, the symmetric [-qmax, qmax] for the
 * integer kernels. */
static void test_clamping(void **state)
{
    (void)state;
    assert_int_equal(qb_quant_code(100.0f, 0.5f, 8, QB_ROUND_HALF_EVEN), 127);
    assert_int_equal(qb_quant_code(-100.0f, 0.5f, 8, QB_ROUND_HALF_EVEN), -128);
    assert_int_equal(qb_quant_code(-100.0f, 0.5f, 4, QB_ROUND_HALF_EVEN), -8);
    assert_int_equal(qb_quant_code(100.0f, 0.5f, 2, QB_ROUND_HALF_EVEN), 1);
    assert_int_equal(qb_quant_code(-100.0f, 0.5f, 2, QB_ROUND_HALF_EVEN), -2);
    const float r[] = {100.0f, -100.0f, 1.0f};
    int8_t q[3];
    qb_quantize_with_scale(r, 3, 0.5f, 8, QB_ROUND_HALF_EVEN, q);
    assert_int_equal(q[0], 127);
    assert_int_equal(q[1], -127);
    assert_int_equal(q[2], 2);
}

static void test_all_zero(void **state)
{
    (void)state;
    float r[6] = {0};
    int8_t q[6];
    float s[2] = {-1, -1}, out[6];
    qb_quantize_symmetric(r, 1, 6, 8, QB_GRAN_TENSOR, QB_ROUND_HALF_EVEN, q, s);
    assert_true(s[0] == 0.0f);
    for (int i = 0; i < 6; i++) assert_int_equal(q[i], 0);
    qb_fake_quant(r, 2, 3, 4, QB_GRAN_CHANNEL, QB_ROUND_HALF_EVEN, out);
    for (int i = 0; i < 6; i++) assert_true(out[i] == 0.0f && !signbit(out[i]));
}

/* Per channel: each row its own max; a zero row stays zero. */
static void test_per_channel(void **state)
{
    (void)state;
    const float r[3][4] = {{1.27f, -0.5f, 0.01f, 0.0f}, {0, 0, 0, 0}, {-0.254f, 0.1f, 0.127f, 0}};
    int8_t q[12];
    float s[3];
    qb_quantize_symmetric(&r[0][0], 3, 4, 8, QB_GRAN_CHANNEL, QB_ROUND_HALF_EVEN, q, s);
    assert_true(s[0] == 1.27f / 127.0f);
    assert_true(s[1] == 0.0f);
    assert_true(s[2] == 0.254f / 127.0f);
    assert_int_equal(q[0], 127);
    assert_int_equal(q[1], (int)rintf(-0.5f / s[0]));
    assert_int_equal(q[4], 0);
    assert_int_equal(q[8], -127);
    assert_int_equal(q[10], (int)rintf(0.127f / s[2]));
    /* per tensor on the same data: one scale, the small row loses precision */
    float st;
    qb_quantize_symmetric(&r[0][0], 3, 4, 8, QB_GRAN_TENSOR, QB_ROUND_HALF_EVEN, q, &st);
    assert_true(st == s[0]);
    assert_int_equal(q[10], (int)rintf(0.127f / st));
    /* fake-quant equals de-quantize(quantize) */
    float fq[12], dq[12];
    qb_quantize_symmetric(&r[0][0], 3, 4, 8, QB_GRAN_CHANNEL, QB_ROUND_HALF_EVEN, q, s);
    qb_dequantize(q, 3, 4, QB_GRAN_CHANNEL, s, dq);
    qb_fake_quant(&r[0][0], 3, 4, 8, QB_GRAN_CHANNEL, QB_ROUND_HALF_EVEN, fq);
    assert_memory_equal(fq, dq, sizeof fq);
}

static void test_pack_round_trip(void **state)
{
    (void)state;
    qb_rng rng;
    qb_rng_seed(&rng, 5);
    for (int bits = 2; bits <= 8; bits++) {
        int qmax = qb_quant_qmax(bits);
        for (size_t n = 1; n <= 33; n += 4) {
            int8_t q[33], back[33];
            uint8_t packed[33];
            for (size_t i = 0; i < n; i++)
                q[i] = (int8_t)((int)qb_rng_below(&rng, (uint32_t)(2 * qmax + 2)) - qmax - 1);
            q[0] = (int8_t)(-qmax - 1); /* both extremes */
            if (n > 1) q[n - 1] = (int8_t)qmax;
            size_t len = qb_quant_packed_size(n, bits);
            assert_int_equal(len, bits <= 4 ? (n + 1) / 2 : n);
            qb_quant_pack(q, n, bits, packed);
            qb_quant_unpack(packed, n, bits, back);
            assert_memory_equal(q, back, n);
        }
    }
    /* the nibble layout itself: element 0 low, element 1 high */
    const int8_t q[3] = {-1, 7, -8};
    uint8_t p[2];
    qb_quant_pack(q, 3, 4, p);
    assert_int_equal(p[0], 0x7F);
    assert_int_equal(p[1], 0x08);
}

static void test_precision_names(void **state)
{
    (void)state;
    struct { const char *name; int w, a, pc, away, lin, integer; } ok[] = {
        {"fp32", 32, 32, 0, 0, 0, 0},       {"int8", 8, 8, 0, 0, 0, 1},
        {"int8-linear", 8, 8, 0, 0, 1, 1},  {"int4", 4, 32, 0, 0, 0, 0},
        {"w4a8", 4, 8, 0, 0, 0, 1},         {"w3a32", 3, 32, 0, 0, 0, 0},
        {"w2a32", 2, 32, 0, 0, 0, 0},       {"int8-pc", 8, 8, 1, 0, 0, 1},
        {"int4-pc-away", 4, 32, 1, 1, 0, 0}, {"w8a4-away-pc", 8, 4, 1, 1, 0, 1},
        {"int8-linear-pc", 8, 8, 1, 0, 1, 1},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        qb_precision p;
        qb_error err;
        assert_int_equal(qb_precision_parse(ok[i].name, &p, &err), 0);
        assert_int_equal(p.w_bits, ok[i].w);
        assert_int_equal(p.a_bits, ok[i].a);
        assert_int_equal(p.gran == QB_GRAN_CHANNEL, ok[i].pc);
        assert_int_equal(p.round == QB_ROUND_HALF_AWAY, ok[i].away);
        assert_int_equal(p.linear_only, ok[i].lin);
        assert_int_equal(qb_precision_is_integer(&p), ok[i].integer);
        assert_string_equal(p.name, ok[i].name);
    }
    struct { const char *name, *msg; } bad[] = {
        {"int16", "unknown precision \"int16\""}, {"w9a8", "weight bits 9 outside 2..8"},
        {"w1a32", "weight bits 1"},               {"w4a16", "activation bits 16"},
        {"w4", "unknown precision"},             {"fp32-pc", "fp32 takes no"},
        {"int8-pc-pc", "unknown precision"},     {"", "unknown precision"},
        {"w4a8x", "unknown precision"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        qb_precision p;
        qb_error err;
        assert_int_equal(qb_precision_parse(bad[i].name, &p, &err), -1);
        if (!strstr(err.msg, bad[i].msg)) fail_msg("%s: got \"%s\"", bad[i].name, err.msg);
    }
}

static float hex_float(const char *h)
{
    uint32_t u = 0;
    for (int i = 0; i < 4; i++) {
        unsigned byte;
        assert_int_equal(sscanf(h + 2 * i, "%2x", &byte), 1);
        u |= (uint32_t)byte << (8 * i); /* little-endian bytes as written by struct.pack("<f") */
    }
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* PyTorch's numbers (tests/fixtures/gen_quant_fixture.py): our scale equals
 * torch's max|r| / qmax bit for bit; our codes equal torch.round(r / s)
 * exactly; and torch.quantize_per_tensor, which multiplies by a float32
 * 1/s, equals rintf(r * (1/s)) exactly (it may differ from the formula at
 * ties: those differences are counted, not hidden). */
static void test_torch_fixture(void **state)
{
    (void)state;
    char *path = qb_test_fixture_path("quant_torch.txt");
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int ncases;
    assert_int_equal(fscanf(f, "%d", &ncases), 1);
    assert_int_equal(ncases, 4);
    int differ_total = 0;
    for (int c = 0; c < ncases; c++) {
        int bits, n;
        char hs[16];
        assert_int_equal(fscanf(f, "%d %15s %d", &bits, hs, &n), 3);
        assert_true(n > 0 && n < 10000);
        float *r = malloc(sizeof(float) * n);
        int *formula = malloc(sizeof(int) * n), *qpt = malloc(sizeof(int) * n);
        for (int i = 0; i < n; i++) {
            char h[16];
            assert_int_equal(fscanf(f, "%15s", h), 1);
            r[i] = hex_float(h);
        }
        for (int i = 0; i < n; i++) assert_int_equal(fscanf(f, "%d", &formula[i]), 1);
        for (int i = 0; i < n; i++) assert_int_equal(fscanf(f, "%d", &qpt[i]), 1);
        float s = qb_quant_scale(r, (size_t)n, bits);
        assert_true(s == hex_float(hs));
        int qmax = qb_quant_qmax(bits), ties = 0;
        float inv = 1.0f / s;
        for (int i = 0; i < n; i++) {
            int ours = qb_quant_code(r[i], s, bits, QB_ROUND_HALF_EVEN);
            if (ours != formula[i]) fail_msg("bits %d r[%d]=%.9g: ours %d, torch.round %d", bits, i, (double)r[i], ours, formula[i]);
            float v = rintf(r[i] * inv);
            int mul = v > qmax ? qmax : v < -qmax - 1 ? -qmax - 1 : (int)v;
            assert_int_equal(mul, qpt[i]);
            ties += fabsf(r[i] / s - truncf(r[i] / s)) == 0.5f;
            differ_total += ours != qpt[i];
        }
        assert_true(ties > 0); /* the fixture really exercises ties */
        free(r);
        free(formula);
        free(qpt);
    }
    printf("quantize_per_tensor differs from round(r/s) on %d inputs (division vs 1/s)\n",
           differ_total);
    fclose(f);
    free(path);
}

int main(void)
{
    return qb_test_run_group(cmocka_unit_test(test_ties_and_modes), cmocka_unit_test(test_four_bits),
                             cmocka_unit_test(test_clamping),       cmocka_unit_test(test_all_zero),
                             cmocka_unit_test(test_per_channel),    cmocka_unit_test(test_pack_round_trip),
                             cmocka_unit_test(test_precision_names), cmocka_unit_test(test_torch_fixture));
}
