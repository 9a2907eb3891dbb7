/* The int8 GEMM (quant/gemm_s8.h): the scalar reference against hand
 * computed values, then every SIMD path this CPU supports against the
 * reference, bit for bit (memcmp), on odd shapes with strided operands.
 *
 * Shapes: N, M, K each over {1, 7, 16, 33, 129}, K also over {3, 4, 5,
 * 25, 31, 32, 63, 64, 65, 400}: tails of the 4-k groups, of the 32/64-byte
 * activation chunks, of the 8/16-column panels, of the 4-, 6- and 12-row
 * tiles and of the panel groups. Values are uniform in [-127, 127] with
 * one in eight at an extreme (+-127); X rows 0 and 1 are all 127 and all
 * -127, W rows 0 and 1 all 127 and all -127 (the largest products and
 * sums; -127 * 127 rows too). X is allocated to end exactly at its last
 * row's K-th byte, so ASan reports any read past it; Y's padding columns
 * (ldy > M) hold a sentinel that must survive. The last test runs the
 * largest K whose sums fit int32 (133144) with extreme values, where the
 * VNNI accumulator wraps around its 128 * row_sum offset. Paths the CPU
 * lacks are skipped with a message. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "quant/gemm_s8.h"
#include "tests/testutil.h"

#define SENTINEL ((int32_t)0x5A5A5A5A)

static const qb_gemm_s8_path all_paths[] = {QB_GEMM_S8_REF, QB_GEMM_S8_AVX2, QB_GEMM_S8_VNNI};
#define N_PATHS (sizeof all_paths / sizeof all_paths[0])

static int8_t rand_s8(qb_rng *r)
{
    uint32_t u = qb_rng_below(r, 8 * 255);
    if (u < 255) return (u & 1) ? 127 : -127; /* 1 in 8: an extreme */
    return (int8_t)((int)(u % 255) - 127);
}

/* (rows, ld) int8 matrix ending right after row rows-1's `cols` bytes;
 * padding bytes random too (they must not matter). */
static int8_t *alloc_s8(qb_rng *r, int rows, int cols, size_t ld)
{
    size_t len = rows > 0 ? (size_t)(rows - 1) * ld + (size_t)cols : 0;
    int8_t *p = malloc(len ? len : 1);
    assert_non_null(p);
    for (size_t i = 0; i < len; i++) p[i] = rand_s8(r);
    return p;
}

static void fill_row(int8_t *row, int n, int8_t v)
{
    for (int i = 0; i < n; i++) row[i] = v;
}

static int32_t *alloc_y(int N, size_t ldy)
{
    size_t len = (size_t)(N > 0 ? N : 1) * ldy;
    int32_t *y = malloc((len ? len : 1) * sizeof *y);
    assert_non_null(y);
    for (size_t i = 0; i < len; i++) y[i] = SENTINEL;
    return y;
}

static void save_env(const char *name, char **saved)
{
    const char *v = getenv(name);
    *saved = v ? strdup(v) : NULL;
}

static void restore_env(const char *name, char *saved)
{
    if (saved) setenv(name, saved, 1);
    else unsetenv(name);
    free(saved);
}

/* ---- the reference ------------------------------------------------------ */

static void test_ref_hand(void **state)
{
    (void)state;
    /* X (2, 4) in rows of ldx 6; W (3, 4) in rows of ldw 5; Y (2, 3) in
     * rows of ldy 4. Padding bytes are junk that must be ignored. */
    const int8_t X[] = {1, 2, 3, 4, 99, 99, /**/ -1, 0, 5, -127, 99, 99};
    const int8_t W[] = {1, 0, 0, 0, 77, /**/ 1, 1, 1, 1, 77, /**/ 2, -3, 127, -127, 77};
    int32_t Y[8];
    for (int i = 0; i < 8; i++) Y[i] = SENTINEL;
    qb_gemm_s8_ref(2, 3, 4, X, 6, W, 5, Y, 4);
    /* row 0: 1; 1+2+3+4; 2-6+381-508        row 1: -1; -1+5-127; -2+635+16129 */
    const int32_t want[8] = {1, 10, -131, SENTINEL, -1, -123, 16762, SENTINEL};
    assert_memory_equal(Y, want, sizeof want);
}

static void test_ref_extremes(void **state)
{
    (void)state;
    enum { K = 1000 };
    static int8_t X[2 * K], W[2 * K];
    fill_row(X, K, 127);
    fill_row(X + K, K, -127);
    fill_row(W, K, 127);
    fill_row(W + K, K, -127);
    int32_t Y[4];
    qb_gemm_s8_ref(2, 2, K, X, K, W, K, Y, 2);
    assert_int_equal(Y[0], 127 * 127 * K);
    assert_int_equal(Y[1], -127 * 127 * K);
    assert_int_equal(Y[2], -127 * 127 * K);
    assert_int_equal(Y[3], 127 * 127 * K);
}

/* The REF packing and row sums. */
static void test_pack_ref_row_sums(void **state)
{
    (void)state;
    const int8_t W[] = {1, 2, 3, 0, /**/ -127, -127, 5, 0, /**/ 127, 127, 127, 0};
    qb_s8_weights w;
    qb_s8_weights_pack(&w, W, 3, 3, 4, QB_GEMM_S8_REF);
    assert_int_equal(w.path, QB_GEMM_S8_REF);
    assert_int_equal(w.M, 3);
    assert_int_equal(w.K, 3);
    assert_int_equal(w.row_sums[0], 6);
    assert_int_equal(w.row_sums[1], -249);
    assert_int_equal(w.row_sums[2], 381);
    const int8_t X[] = {1, -1, 2};
    int32_t Y[3];
    qb_gemm_s8(&w, 1, X, 3, Y, 3);
    assert_int_equal(Y[0], 1 - 2 + 6);
    assert_int_equal(Y[1], -127 + 127 + 10);
    assert_int_equal(Y[2], 127 - 127 + 254);
    qb_s8_weights_free(&w);
    assert_null(w.packed);
}

/* ---- every path against the reference ----------------------------------- */

/* One shape on one path; returns the number of mismatching values. */
static long check_shape(qb_gemm_s8_path path, qb_rng *r, int N, int M, int K)
{
    /* strides wider than the logical widths, by odd amounts */
    const size_t ldx = (size_t)K + 1 + (size_t)(K % 5), ldw = (size_t)K + 3, ldy = (size_t)M + 5;
    int8_t *X = alloc_s8(r, N, K, ldx), *W = alloc_s8(r, M, K, ldw);
    if (N >= 1) fill_row(X, K, 127);
    if (N >= 2) fill_row(X + ldx, K, -127);
    if (M >= 1) fill_row(W, K, 127);
    if (M >= 2) fill_row(W + ldw, K, -127);
    int32_t *want = alloc_y(N, ldy), *got = alloc_y(N, ldy);
    qb_gemm_s8_ref(N, M, K, X, ldx, W, ldw, want, ldy);

    qb_s8_weights w;
    qb_s8_weights_pack(&w, W, M, K, ldw, path);
    assert_int_equal(w.path, path);
    qb_gemm_s8(&w, N, X, ldx, got, ldy);
    long bad = 0;
    for (int n = 0; n < N; n++) {
        const int32_t *a = want + (size_t)n * ldy, *b = got + (size_t)n * ldy;
        if (memcmp(a, b, (size_t)M * sizeof *a)) {
            for (int m = 0; m < M; m++)
                if (a[m] != b[m] && bad++ < 3)
                    print_error("%s N=%d M=%d K=%d: Y[%d][%d] = %d, reference %d\n",
                                qb_gemm_s8_path_name(path), N, M, K, n, m, b[m], a[m]);
        }
        for (size_t j = (size_t)M; j < ldy; j++)
            if (b[j] != SENTINEL && bad++ < 3)
                print_error("%s N=%d M=%d K=%d: padding Y[%d][%zu] overwritten\n",
                            qb_gemm_s8_path_name(path), N, M, K, n, j);
    }
    qb_s8_weights_free(&w);
    free(X);
    free(W);
    free(want);
    free(got);
    return bad;
}

static void run_path(qb_gemm_s8_path path)
{
    if (!qb_gemm_s8_supported(path)) {
        print_message("[  SKIP    ] %s: not supported by this CPU\n", qb_gemm_s8_path_name(path));
        skip();
    }
    static const int sizes[] = {1, 7, 16, 33, 129};
    static const int extra_k[] = {3, 4, 5, 25, 31, 32, 63, 64, 65, 400};
    enum { NS = sizeof sizes / sizeof sizes[0], NE = sizeof extra_k / sizeof extra_k[0] };
    qb_rng r;
    qb_rng_seed(&r, 0x5eed0000u + (unsigned)path);
    long bad = 0, shapes = 0;
    for (int a = 0; a < NS; a++)
        for (int b = 0; b < NS; b++)
            for (int c = 0; c < NS + NE; c++) {
                const int K = c < NS ? sizes[c] : extra_k[c - NS];
                bad += check_shape(path, &r, sizes[a], sizes[b], K);
                shapes++;
            }
    /* LeNet's layers (conv as im2col rows x output channels), then K past
     * the kernels' on-stack activation buffers (heap path) and a partial
     * last block of short rows */
    static const int more[][3] = {{576, 16, 25}, {64, 32, 400}, {256, 128, 512}, {256, 10, 128},
                                  {30, 40, 1100}, {200, 16, 25}};
    for (size_t i = 0; i < sizeof more / sizeof more[0]; i++, shapes++)
        bad += check_shape(path, &r, more[i][0], more[i][1], more[i][2]);
    print_message("%s: %ld shapes, %ld mismatches\n", qb_gemm_s8_path_name(path), shapes, bad);
    assert_int_equal(bad, 0);
}

static void test_path_ref(void **state)
{
    (void)state;
    run_path(QB_GEMM_S8_REF);
}

static void test_path_avx2(void **state)
{
    (void)state;
    run_path(QB_GEMM_S8_AVX2);
}

static void test_path_vnni(void **state)
{
    (void)state;
    run_path(QB_GEMM_S8_VNNI);
}

/* The largest K whose sums fit int32: 127^2 * 133144 = 2147479576. */
static void test_largest_k(void **state)
{
    (void)state;
    enum { N = 3, M = 17, K = 133144 };
    int8_t *X = malloc((size_t)N * K), *W = malloc((size_t)M * K);
    assert_non_null(X);
    assert_non_null(W);
    fill_row(X, K, 127);
    fill_row(X + K, K, -127);
    for (int k = 0; k < K; k++) X[2 * (size_t)K + k] = (int8_t)(k % 2 ? 127 : -127);
    for (int m = 0; m < M; m++) fill_row(W + (size_t)m * K, K, (int8_t)(m % 2 ? -127 : 127));
    int32_t want[N * M], got[N * M];
    qb_gemm_s8_ref(N, M, K, X, K, W, K, want, M);
    assert_int_equal(want[0], 2147479576);
    assert_int_equal(want[1], -2147479576);
    for (size_t i = 0; i < N_PATHS; i++) {
        if (!qb_gemm_s8_supported(all_paths[i])) {
            print_message("[  SKIP    ] %s: not supported by this CPU\n",
                          qb_gemm_s8_path_name(all_paths[i]));
            continue;
        }
        qb_s8_weights w;
        qb_s8_weights_pack(&w, W, M, K, K, all_paths[i]);
        memset(got, 0, sizeof got);
        qb_gemm_s8(&w, N, X, K, got, M);
        assert_memory_equal(got, want, sizeof want);
        qb_s8_weights_free(&w);
    }
    free(X);
    free(W);
}

/* N = 0 writes nothing; K = 0 gives zeros; M = 0 is a no-op. */
static void test_empty(void **state)
{
    (void)state;
    for (size_t i = 0; i < N_PATHS; i++) {
        const qb_gemm_s8_path path = all_paths[i];
        if (!qb_gemm_s8_supported(path)) continue;
        const int8_t W[4] = {1, 2, 3, 4}, X[4] = {5, 6, 7, 8};
        int32_t Y[4] = {SENTINEL, SENTINEL, SENTINEL, SENTINEL};
        qb_s8_weights w;
        qb_s8_weights_pack(&w, W, 2, 0, 2, path);
        qb_gemm_s8(&w, 0, X, 2, Y, 2);
        assert_int_equal(Y[0], SENTINEL);
        qb_gemm_s8(&w, 2, X, 2, Y, 2);
        for (int j = 0; j < 4; j++) assert_int_equal(Y[j], 0);
        qb_s8_weights_free(&w);
        Y[0] = SENTINEL;
        qb_s8_weights_pack(&w, W, 0, 4, 4, path);
        qb_gemm_s8(&w, 1, X, 4, Y, 1);
        assert_int_equal(Y[0], SENTINEL);
        qb_s8_weights_free(&w);
    }
}

/* ---- dispatch ----------------------------------------------------------- */

static void test_dispatch(void **state)
{
    (void)state;
    char *scalar, *force;
    save_env("QBLIND_SCALAR", &scalar);
    save_env("QBLIND_GEMM_S8", &force);
    unsetenv("QBLIND_SCALAR");
    unsetenv("QBLIND_GEMM_S8");

    assert_true(qb_gemm_s8_supported(QB_GEMM_S8_REF));
    assert_string_equal(qb_gemm_s8_path_name(QB_GEMM_S8_REF), "ref");
    assert_string_equal(qb_gemm_s8_path_name(QB_GEMM_S8_AVX2), "avx2");
    assert_string_equal(qb_gemm_s8_path_name(QB_GEMM_S8_VNNI), "vnni");
#if !defined(__x86_64__)
    assert_false(qb_gemm_s8_supported(QB_GEMM_S8_AVX2));
    assert_false(qb_gemm_s8_supported(QB_GEMM_S8_VNNI));
#endif
    /* AUTO: the fastest supported path */
    const qb_gemm_s8_path fastest = qb_gemm_s8_supported(QB_GEMM_S8_VNNI)   ? QB_GEMM_S8_VNNI
                                    : qb_gemm_s8_supported(QB_GEMM_S8_AVX2) ? QB_GEMM_S8_AVX2
                                                                            : QB_GEMM_S8_REF;
    assert_int_equal(qb_gemm_s8_best(), fastest);
    print_message("best path on this CPU: %s\n", qb_gemm_s8_path_name(fastest));

    const int8_t W[6] = {1, 2, 3, 4, 5, 6};
    qb_s8_weights w;
    qb_s8_weights_pack(&w, W, 2, 3, 3, QB_GEMM_S8_AUTO);
    assert_int_equal(w.path, fastest);
    qb_s8_weights_free(&w);

    /* QBLIND_GEMM_S8 forces a supported path; unknown or unsupported
     * names fall back to the fastest */
    for (size_t i = 0; i < N_PATHS; i++) {
        setenv("QBLIND_GEMM_S8", qb_gemm_s8_path_name(all_paths[i]), 1);
        const qb_gemm_s8_path want = qb_gemm_s8_supported(all_paths[i]) ? all_paths[i] : fastest;
        assert_int_equal(qb_gemm_s8_best(), want);
        qb_s8_weights_pack(&w, W, 2, 3, 3, QB_GEMM_S8_AUTO);
        assert_int_equal(w.path, want);
        qb_s8_weights_free(&w);
    }
    setenv("QBLIND_GEMM_S8", "sse9", 1);
    assert_int_equal(qb_gemm_s8_best(), fastest);

    /* QBLIND_SCALAR=1 wins over everything */
    setenv("QBLIND_GEMM_S8", "vnni", 1);
    setenv("QBLIND_SCALAR", "1", 1);
    assert_int_equal(qb_gemm_s8_best(), QB_GEMM_S8_REF);
    qb_s8_weights_pack(&w, W, 2, 3, 3, QB_GEMM_S8_AUTO);
    assert_int_equal(w.path, QB_GEMM_S8_REF);
    qb_s8_weights_free(&w);
    setenv("QBLIND_SCALAR", "0", 1);
    unsetenv("QBLIND_GEMM_S8");
    assert_int_equal(qb_gemm_s8_best(), fastest);

    /* an explicit path the CPU lacks falls back to the best one */
    for (size_t i = 0; i < N_PATHS; i++) {
        qb_s8_weights_pack(&w, W, 2, 3, 3, all_paths[i]);
        assert_true(qb_gemm_s8_supported(w.path));
        assert_int_equal(w.path, qb_gemm_s8_supported(all_paths[i]) ? all_paths[i] : fastest);
        qb_s8_weights_free(&w);
    }

    restore_env("QBLIND_SCALAR", scalar);
    restore_env("QBLIND_GEMM_S8", force);
}

int main(void)
{
    return qb_test_run_group(cmocka_unit_test(test_ref_hand), cmocka_unit_test(test_ref_extremes),
                             cmocka_unit_test(test_pack_ref_row_sums),
                             cmocka_unit_test(test_path_ref), cmocka_unit_test(test_path_avx2),
                             cmocka_unit_test(test_path_vnni), cmocka_unit_test(test_largest_k),
                             cmocka_unit_test(test_empty), cmocka_unit_test(test_dispatch));
}
