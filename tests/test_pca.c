/* PCA (core/pca.c, our own eigensolver): axes known by construction, and
 * numpy's SVD on the committed fixture (tests/fixtures/gen_cluster_fixture.py). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/train.h"
#include "core/xalloc.h"
#include "core/pca.h"
#include "testutil.h"

static void assert_close(double got, double want, double tol)
{
    if (!(fabs(got - want) <= tol)) {
        print_error("got %.17g, want %.17g (tol %g)\n", got, want, tol);
        fail();
    }
}

/* Four points at +-3 e1 and +-1 e2 around an offset: scatter diag(18, 2, 0),
 * axes e1 then e2. */
static void test_known_axes(void **state)
{
    (void)state;
    const float off[3] = {5.0f, -2.0f, 0.5f};
    const float pts[4][3] = {{3, 0, 0}, {-3, 0, 0}, {0, 1, 0}, {0, -1, 0}};
    float x[12];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 3; j++) x[i * 3 + j] = pts[i][j] + off[j];
    double mean[3], ev[2], vec[6], proj[8];
    qb_error err;
    assert_int_equal(qb_pca_fit(x, 4, 3, 2, mean, ev, vec, &err), 0);
    for (int j = 0; j < 3; j++) assert_close(mean[j], off[j], 1e-12);
    assert_close(ev[0], 18.0, 1e-12);
    assert_close(ev[1], 2.0, 1e-12);
    const double axes[6] = {1, 0, 0, 0, 1, 0}; /* sign: largest entry positive */
    for (int j = 0; j < 6; j++) assert_close(vec[j], axes[j], 1e-12);
    qb_pca_project(x, 4, 3, 2, mean, vec, proj);
    const double want[8] = {3, 0, -3, 0, 0, 1, 0, -1};
    for (int j = 0; j < 8; j++) assert_close(proj[j], want[j], 1e-12);

    /* k = d: all eigenpairs, the zero one clamped to >= 0 */
    double ev3[3], vec3[9];
    assert_int_equal(qb_pca_fit(x, 4, 3, 3, mean, ev3, vec3, &err), 0);
    assert_close(ev3[2], 0.0, 1e-12);
    assert_true(ev3[2] >= 0.0);
    assert_close(fabs(vec3[8]), 1.0, 1e-12);
}

/* One sample: zero scatter, still k unit axes. */
static void test_single_row(void **state)
{
    (void)state;
    float x[4] = {1, 2, 3, 4};
    double mean[4], ev[2], vec[8];
    qb_error err;
    assert_int_equal(qb_pca_fit(x, 1, 4, 2, mean, ev, vec, &err), 0);
    assert_close(ev[0], 0.0, 0.0);
    for (int i = 0; i < 2; i++) {
        double nn = 0;
        for (int j = 0; j < 4; j++) nn += vec[i * 4 + j] * vec[i * 4 + j];
        assert_close(nn, 1.0, 1e-12);
    }
}

static void read_hexf(FILE *f, float *v, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        char tok[16];
        assert_int_equal(fscanf(f, "%15s", tok), 1);
        assert_int_equal(strlen(tok), 8);
        uint8_t b[4];
        for (int k = 0; k < 4; k++) {
            unsigned u;
            assert_int_equal(sscanf(tok + 2 * k, "%2x", &u), 1);
            b[k] = (uint8_t)u;
        }
        uint32_t bits = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                        (uint32_t)b[3] << 24;
        memcpy(&v[i], &bits, 4);
    }
}

static void read_reals(FILE *f, double *v, size_t n)
{
    for (size_t i = 0; i < n; i++) assert_int_equal(fscanf(f, "%lf", &v[i]), 1);
}

static void skip_tokens(FILE *f, size_t n)
{
    char tok[64];
    for (size_t i = 0; i < n; i++) assert_int_equal(fscanf(f, "%63s", tok), 1);
}

/* numpy.linalg.svd of the centred rows: means, squared singular values,
 * right singular vectors (the top one is Spectral Signatures' direction),
 * projections. */
static void test_numpy_fixture(void **state)
{
    (void)state;
    char *path = qb_test_fixture_path("cluster_sklearn.txt");
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int cases = 0;
    char kind[32];
    while (fscanf(f, "%31s", kind) == 1 && strcmp(kind, "end") != 0) {
        size_t n, d, k;
        if (!strcmp(kind, "silhouette")) {
            assert_int_equal(fscanf(f, "%zu %zu %zu", &n, &d, &k), 3);
            skip_tokens(f, n * d + n + 1);
            continue;
        }
        if (!strcmp(kind, "kmeans")) {
            assert_int_equal(fscanf(f, "%zu %zu", &n, &d), 2);
            skip_tokens(f, n * d + n + 1);
            continue;
        }
        assert_string_equal(kind, "pca");
        assert_int_equal(fscanf(f, "%zu %zu %zu", &n, &d, &k), 3);
        float *x = xmalloc(n * d, sizeof(float));
        double *mean_w = xmalloc(d, sizeof(double)), *ev_w = xmalloc(k, sizeof(double));
        double *vec_w = xmalloc(k * d, sizeof(double)), *proj_w = xmalloc(n * k, sizeof(double));
        read_hexf(f, x, n * d);
        read_reals(f, mean_w, d);
        read_reals(f, ev_w, k);
        read_reals(f, vec_w, k * d);
        read_reals(f, proj_w, n * k);

        double *mean = xmalloc(d, sizeof(double)), *ev = xmalloc(k, sizeof(double));
        double *vec = xmalloc(k * d, sizeof(double)), *proj = xmalloc(n * k, sizeof(double));
        qb_error err;
        assert_int_equal(qb_pca_fit(x, n, d, k, mean, ev, vec, &err), 0);
        qb_pca_project(x, n, d, k, mean, vec, proj);
        double scale = sqrt(ev_w[0]);
        for (size_t j = 0; j < d; j++) assert_close(mean[j], mean_w[j], 1e-12 * (1 + fabs(mean_w[j])));
        for (size_t i = 0; i < k; i++) assert_close(ev[i], ev_w[i], 1e-9 * ev_w[i]);
        for (size_t i = 0; i < k * d; i++) assert_close(vec[i], vec_w[i], 1e-8);
        for (size_t i = 0; i < n * k; i++) assert_close(proj[i], proj_w[i], 1e-8 * scale);
        free(x);
        free(mean_w);
        free(ev_w);
        free(vec_w);
        free(proj_w);
        free(mean);
        free(ev);
        free(vec);
        free(proj);
        cases++;
    }
    assert_string_equal(kind, "end");
    assert_int_equal(cases, 2);
    fclose(f);
    free(path);
}

int main(void)
{
    return qb_test_run_group(cmocka_unit_test(test_known_axes), cmocka_unit_test(test_single_row),
                             cmocka_unit_test(test_numpy_fixture));
}
