/* The float GEMM (core/gemm_f32.h): the reference against hand-computed
 * fused chains, then every path this CPU supports, with 1, 2 and 3
 * threads, against the reference bit for bit (memcmp), on odd shapes, all
 * four transpose cases, strided operands, accumulate on and off.
 *
 * Shapes: m, n over {1, 5, 6, 7, 13, 16, 17, 33, 65, 100} and k over
 * {1, 2, 25, 255, 256, 257, 600}: tails of the 6/8/12-row tiles, of the
 * 8/16/32/64-column panels, of the 256-k blocks; 100 x 1100 columns cross
 * the 96-row and 1024-column blocks. Values have mixed magnitudes (2^-20 ..
 * 2^20) and signs, so rounding differs at every step: any change of the
 * order of one output's sum shows in its bits. C's padding columns (ldc >
 * n) hold a sentinel that must survive. Paths the CPU lacks are skipped
 * with a message. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/gemm_f32.h"
#include "core/rng.h"
#include "core/threads.h"

#define SENTINEL 12345.0f

static const qb_gemm_f32_path all_paths[] = {QB_GEMM_F32_PORTABLE, QB_GEMM_F32_AVX2,
                                              QB_GEMM_F32_AVX512};
#define N_PATHS (sizeof all_paths / sizeof all_paths[0])

static float rand_value(qb_rng *r)
{
    float u = qb_rng_uniform(r) * 2.0f - 1.0f;
    int e = (int)qb_rng_below(r, 41) - 20;
    return ldexpf(u, e);
}

static float *rand_matrix(qb_rng *r, size_t len)
{
    float *p = malloc((len ? len : 1) * sizeof(float));
    assert_non_null(p);
    for (size_t i = 0; i < len; i++) p[i] = rand_value(r);
    return p;
}

/* The hand-computed case: a chain whose rounding depends on the order.
 * 1 + 2^-24 + 2^-24 in that order is 1 (each tiny term is lost), while
 * 2^-24 + 2^-24 + 1 is 1 + 2^-23: the definition adds in p order. */
static void test_reference_order(void **state)
{
    (void)state;
    const float a[3] = {1.0f, 1.0f, 1.0f};
    const float b1[3] = {1.0f, 0x1p-24f, 0x1p-24f};
    const float b2[3] = {0x1p-24f, 0x1p-24f, 1.0f};
    float c = 0.0f;
    qb_gemm_f32_ref(QB_GEMM_N, QB_GEMM_N, 1, 1, 3, a, 3, b1, 1, 0, &c, 1);
    assert_true(c == 1.0f);
    qb_gemm_f32_ref(QB_GEMM_N, QB_GEMM_N, 1, 1, 3, a, 3, b2, 1, 0, &c, 1);
    assert_true(c == 1.0f + 0x1p-23f);
    /* fused: (1 + 2^-12)^2 - (1 + 2^-11) is 2^-24 exactly with one rounding,
     * 0 with a rounded product. Accumulate starts from C. */
    const float x = 1.0f + 0x1p-12f;
    c = -(1.0f + 0x1p-11f);
    qb_gemm_f32_ref(QB_GEMM_N, QB_GEMM_N, 1, 1, 1, &x, 1, &x, 1, 1, &c, 1);
    assert_true(c == 0x1p-24f);
    for (size_t i = 0; i < N_PATHS; i++) {
        if (!qb_gemm_f32_supported(all_paths[i])) continue;
        c = -(1.0f + 0x1p-11f);
        qb_gemm_f32_on(all_paths[i], QB_GEMM_N, QB_GEMM_N, 1, 1, 1, &x, 1, &x, 1, 1, &c, 1);
        assert_true(c == 0x1p-24f);
        qb_gemm_f32_on(all_paths[i], QB_GEMM_N, QB_GEMM_N, 1, 1, 3, a, 3, b2, 1, 0, &c, 1);
        assert_true(c == 1.0f + 0x1p-23f);
    }
}

/* One shape and transpose case on every path and thread count vs ref. */
static void check_shape(qb_rng *r, int ta, int tb, int m, int n, int k, int acc)
{
    const size_t lda = (size_t)(ta ? m : k) + 3, ldb = (size_t)(tb ? k : n) + 1,
                 ldc = (size_t)n + 2;
    const size_t arows = (size_t)(ta ? k : m), brows = (size_t)(tb ? n : k);
    float *a = rand_matrix(r, arows * lda), *b = rand_matrix(r, brows * ldb);
    float *c0 = rand_matrix(r, (size_t)m * ldc);
    for (int i = 0; i < m; i++)
        for (size_t j = (size_t)n; j < ldc; j++) c0[(size_t)i * ldc + j] = SENTINEL;
    float *want = malloc((size_t)m * ldc * sizeof(float)), *got = malloc((size_t)m * ldc * sizeof(float));
    assert_non_null(want);
    assert_non_null(got);
    memcpy(want, c0, (size_t)m * ldc * sizeof(float));
    qb_gemm_f32_ref(ta, tb, m, n, k, a, lda, b, ldb, acc, want, ldc);
    for (size_t p = 0; p < N_PATHS; p++) {
        if (!qb_gemm_f32_supported(all_paths[p])) continue;
        memcpy(got, c0, (size_t)m * ldc * sizeof(float));
        qb_gemm_f32_on(all_paths[p], ta, tb, m, n, k, a, lda, b, ldb, acc, got, ldc);
        if (memcmp(got, want, (size_t)m * ldc * sizeof(float)))
            fail_msg("path %s differs: ta %d tb %d m %d n %d k %d acc %d",
                     qb_gemm_f32_path_name(all_paths[p]), ta, tb, m, n, k, acc);
    }
    for (int t = 2; t <= 3; t++) {
        assert_int_equal(qb_threads_set(t, NULL), 0);
        memcpy(got, c0, (size_t)m * ldc * sizeof(float));
        qb_gemm_f32(ta, tb, m, n, k, a, lda, b, ldb, acc, got, ldc);
        if (memcmp(got, want, (size_t)m * ldc * sizeof(float)))
            fail_msg("%d threads differ: ta %d tb %d m %d n %d k %d acc %d", t, ta, tb, m, n, k,
                     acc);
    }
    assert_int_equal(qb_threads_set(1, NULL), 0);
    free(a);
    free(b);
    free(c0);
    free(want);
    free(got);
}

static void test_paths_match_reference(void **state)
{
    (void)state;
    static const int mn[] = {1, 5, 6, 7, 13, 16, 17, 33, 65, 100};
    static const int ks[] = {1, 2, 25, 255, 256, 257, 600};
    qb_rng r;
    qb_rng_seed(&r, 7);
    for (int ta = 0; ta < 2; ta++)
        for (int tb = 0; tb < 2; tb++)
            for (size_t i = 0; i < sizeof mn / sizeof mn[0]; i += 2)
                for (size_t j = 1; j < sizeof mn / sizeof mn[0]; j += 2)
                    for (size_t q = 0; q < sizeof ks / sizeof ks[0]; q++)
                        check_shape(&r, ta, tb, mn[i], mn[j], ks[q], (int)((i + q) & 1));
    /* both orientations of thin shapes, and blocks of 96 rows x 1024 cols */
    check_shape(&r, 0, 0, 100, 1100, 40, 1);
    check_shape(&r, 1, 1, 1100, 7, 300, 0);
    check_shape(&r, 0, 1, 6, 25, 3000, 1);
}

/* k = 0: C unchanged when accumulating, zero otherwise; m or n = 0: no
 * write at all. */
static void test_degenerate_shapes(void **state)
{
    (void)state;
    float c[4] = {1, 2, 3, 4}, a[1] = {5}, b[1] = {6};
    qb_gemm_f32(QB_GEMM_N, QB_GEMM_N, 2, 2, 0, a, 1, b, 2, 1, c, 2);
    assert_true(c[0] == 1 && c[3] == 4);
    qb_gemm_f32(QB_GEMM_N, QB_GEMM_N, 2, 2, 0, a, 1, b, 2, 0, c, 2);
    assert_true(c[0] == 0 && c[1] == 0 && c[2] == 0 && c[3] == 0);
    c[0] = 9;
    qb_gemm_f32(QB_GEMM_N, QB_GEMM_N, 0, 2, 1, a, 1, b, 2, 0, c, 2);
    qb_gemm_f32(QB_GEMM_N, QB_GEMM_N, 2, 0, 1, a, 1, b, 2, 0, c, 2);
    assert_true(c[0] == 9);
}

/* Inf and NaN propagate as in the chain; padded lanes (Inf * 0) never
 * reach C. */
static void test_special_values(void **state)
{
    (void)state;
    const int m = 7, n = 19, k = 5;
    float a[7 * 5], b[5 * 19], want[7 * 19], got[7 * 19];
    for (int i = 0; i < m * k; i++) a[i] = (float)(i % 5) - 2.0f;
    for (int i = 0; i < k * n; i++) b[i] = (float)(i % 3);
    b[3] = INFINITY;
    b[n + 4] = NAN;
    a[2] = -0.0f;
    qb_gemm_f32_ref(QB_GEMM_N, QB_GEMM_N, m, n, k, a, k, b, n, 0, want, n);
    for (size_t p = 0; p < N_PATHS; p++) {
        if (!qb_gemm_f32_supported(all_paths[p])) continue;
        qb_gemm_f32_on(all_paths[p], QB_GEMM_N, QB_GEMM_N, m, n, k, a, k, b, n, 0, got, n);
        assert_memory_equal(got, want, sizeof want);
    }
    int finite = 0;
    for (int i = 0; i < m * n; i++) finite += isfinite(want[i]) != 0;
    assert_true(finite > 0 && finite < m * n);
}

static void test_threads_setting(void **state)
{
    (void)state;
    qb_error err;
    assert_int_equal(qb_threads_count(), 1);
    assert_int_equal(qb_threads_set(0, &err), -1);
    assert_non_null(strstr(err.msg, "threads must be in [1,"));
    assert_int_equal(qb_threads_set(QB_THREADS_MAX + 1, &err), -1);
    assert_int_equal(qb_threads_set(4, &err), 0);
    assert_int_equal(qb_threads_count(), 4);
    qb_threads_free();
    assert_int_equal(qb_threads_count(), 1);
    qb_threads_free();
}

int main(void)
{
    for (size_t p = 0; p < N_PATHS; p++)
        if (!qb_gemm_f32_supported(all_paths[p]))
            printf("# path %s: not supported by this CPU, skipped\n",
                   qb_gemm_f32_path_name(all_paths[p]));
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reference_order),
        cmocka_unit_test(test_paths_match_reference),
        cmocka_unit_test(test_degenerate_shapes),
        cmocka_unit_test(test_special_values),
        cmocka_unit_test(test_threads_setting),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    qb_threads_free();
    return rc;
}
