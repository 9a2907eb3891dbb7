/* 2-means and the silhouette (core/kmeans.c, core/silhouette.c):
 * hand-computed cases, separable blobs, and sklearn's numbers on the
 * committed fixture (tests/fixtures/gen_cluster_fixture.py). */
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
#include "core/xalloc.h"
#include "core/kmeans.h"
#include "core/silhouette.h"
#include "testutil.h"

static void assert_rel(double got, double want, double rel)
{
    if (!(fabs(got - want) <= rel * fabs(want))) {
        print_error("got %.17g, want %.17g (rel %g)\n", got, want, rel);
        fail();
    }
}

/* Two blobs of n0 and n1 points in d dims, centres 0 and `sep` on every
 * coordinate, uniform noise of half-width 1: separable when sep > 2. */
static double *blobs(size_t n0, size_t n1, size_t d, double sep, uint64_t seed)
{
    qb_rng r;
    qb_rng_seed(&r, seed);
    double *x = xmalloc((n0 + n1) * d, sizeof(double));
    for (size_t i = 0; i < n0 + n1; i++)
        for (size_t j = 0; j < d; j++)
            x[i * d + j] = (i < n0 ? 0.0 : sep) + 2.0 * qb_rng_uniform(&r) - 1.0;
    return x;
}

static void test_kmeans_separable(void **state)
{
    (void)state;
    const size_t n0 = 300, n1 = 37, d = 10, n = n0 + n1;
    double *x = blobs(n0, n1, d, 4.0, 7);
    int *lab = xmalloc(n, sizeof(int));
    double ctr[20];
    for (uint64_t seed = 0; seed < 5; seed++) {
        qb_rng r;
        qb_rng_seed(&r, seed);
        int iters;
        double inertia = qb_kmeans(x, n, d, 2, 3, 300, &r, lab, ctr, &iters);
        assert_true(iters < 300);
        int a = lab[0];
        size_t sz[2] = {0, 0};
        for (size_t i = 0; i < n; i++) {
            assert_int_equal(lab[i], i < n0 ? a : 1 - a); /* the blobs, exactly */
            sz[lab[i]]++;
        }
        assert_int_equal(sz[a], n0);
        assert_int_equal(sz[1 - a], n1);
        /* centres are the blob means; inertia their squared distances */
        double want = 0.0;
        for (size_t i = 0; i < n; i++)
            for (size_t j = 0; j < d; j++) {
                double m = 0;
                size_t lo = i < n0 ? 0 : n0, hi = i < n0 ? n0 : n;
                for (size_t q = lo; q < hi; q++) m += x[q * d + j];
                m /= (double)(hi - lo);
                assert_rel(ctr[lab[i] * d + j], m, 1e-12);
                want += (x[i * d + j] - m) * (x[i * d + j] - m);
            }
        assert_rel(inertia, want, 1e-12);
    }
    free(x);
    free(lab);
}

/* Same seed, same result; more restarts (whose first run draws the same
 * numbers) never give a higher inertia. */
static void test_kmeans_deterministic(void **state)
{
    (void)state;
    const size_t n = 500, d = 4;
    qb_rng g;
    qb_rng_seed(&g, 3);
    double *x = xmalloc(n * d, sizeof(double));
    for (size_t i = 0; i < n * d; i++) x[i] = qb_rng_normal(&g); /* one blob: many local optima */
    int *l1 = xmalloc(n, sizeof(int)), *l2 = xmalloc(n, sizeof(int));
    qb_rng r1, r2;
    qb_rng_seed(&r1, 11);
    qb_rng_seed(&r2, 11);
    double i1 = qb_kmeans(x, n, d, 2, 4, 300, &r1, l1, NULL, NULL);
    double i2 = qb_kmeans(x, n, d, 2, 4, 300, &r2, l2, NULL, NULL);
    assert_memory_equal(&i1, &i2, sizeof i1);
    assert_memory_equal(l1, l2, n * sizeof(int));
    qb_rng_seed(&r1, 11);
    double one = qb_kmeans(x, n, d, 2, 1, 300, &r1, l1, NULL, NULL);
    qb_rng_seed(&r1, 11);
    double ten = qb_kmeans(x, n, d, 2, 10, 300, &r1, l1, NULL, NULL);
    assert_true(ten <= one);
    free(x);
    free(l1);
    free(l2);
}

/* All rows identical: both clusters still non-empty, inertia 0. Three
 * distinct rows into 3 clusters: one each. */
static void test_kmeans_degenerate(void **state)
{
    (void)state;
    double x[12] = {1, 2, 1, 2, 1, 2, 1, 2, 1, 2, 1, 2};
    int lab[6];
    qb_rng r;
    qb_rng_seed(&r, 1);
    double in = qb_kmeans(x, 6, 2, 2, 3, 50, &r, lab, NULL, NULL);
    assert_true(in == 0.0);
    int n1 = 0;
    for (int i = 0; i < 6; i++) n1 += lab[i];
    assert_true(n1 >= 1 && n1 <= 5);
    double y[3] = {0, 10, 20};
    int ly[3];
    in = qb_kmeans(y, 3, 1, 3, 2, 50, &r, ly, NULL, NULL);
    assert_true(in == 0.0);
    assert_true(ly[0] != ly[1] && ly[1] != ly[2] && ly[0] != ly[2]);
}

/* Points 0, 1 | 5, 6 on a line: s = 9/11 at the outer points, 7/9 at the
 * inner ones. */
static void test_silhouette_by_hand(void **state)
{
    (void)state;
    double x[4] = {0, 5, 1, 6};
    int lab[4] = {0, 1, 0, 1};
    assert_rel(qb_silhouette(x, 4, 1, lab, 2), (9.0 / 11 + 7.0 / 9) / 2, 1e-15);
    /* labels swapped: same score; a singleton cluster: its s is 0 */
    int sw[4] = {1, 0, 1, 0};
    assert_rel(qb_silhouette(x, 4, 1, sw, 2), (9.0 / 11 + 7.0 / 9) / 2, 1e-15);
    double y[3] = {0, 1, 10};
    int ly[3] = {0, 0, 1};
    /* s(0) = (10 - 1) / 10, s(1) = (9 - 1) / 9, s(10) = 0 */
    assert_rel(qb_silhouette(y, 3, 1, ly, 2), (0.9 + 8.0 / 9) / 3, 1e-15);
    /* undefined: one cluster, or as many clusters as points */
    int one[3] = {0, 0, 0}, all[3] = {0, 1, 2};
    assert_true(isnan(qb_silhouette(y, 3, 1, one, 2)));
    assert_true(isnan(qb_silhouette(y, 3, 1, all, 3)));
}

/* Below the cap the sampled score is the exact one without drawing;
 * above it a reproducible estimate close to the exact one. */
static void test_silhouette_sampled(void **state)
{
    (void)state;
    const size_t n0 = 700, n1 = 300, d = 3, n = n0 + n1;
    double *x = blobs(n0, n1, d, 1.5, 5); /* overlapping: s well inside (0, 1) */
    int *lab = xmalloc(n, sizeof(int));
    for (size_t i = 0; i < n; i++) lab[i] = i >= n0;
    double exact = qb_silhouette(x, n, d, lab, 2);
    qb_rng r, r0;
    qb_rng_seed(&r, 9);
    r0 = r;
    assert_true(qb_silhouette_sampled(x, n, d, lab, 2, n, &r) == exact);
    assert_memory_equal(&r, &r0, sizeof r); /* no draw */
    double s1 = qb_silhouette_sampled(x, n, d, lab, 2, 400, &r);
    qb_rng_seed(&r, 9);
    double s2 = qb_silhouette_sampled(x, n, d, lab, 2, 400, &r);
    assert_true(s1 == s2);
    assert_true(s1 != exact);
    assert_true(fabs(s1 - exact) < 0.05);
    free(x);
    free(lab);
}

static void read_reals(FILE *f, double *v, size_t n)
{
    for (size_t i = 0; i < n; i++) assert_int_equal(fscanf(f, "%lf", &v[i]), 1);
}

static void read_ints(FILE *f, int *v, size_t n)
{
    for (size_t i = 0; i < n; i++) assert_int_equal(fscanf(f, "%d", &v[i]), 1);
}

/* sklearn.metrics.silhouette_score and sklearn.cluster.KMeans on the
 * fixture's points. */
static void test_sklearn_fixture(void **state)
{
    (void)state;
    char *path = qb_test_fixture_path("cluster_sklearn.txt");
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    int n_sil = 0, n_km = 0;
    char kind[32];
    while (fscanf(f, "%31s", kind) == 1 && strcmp(kind, "end") != 0) {
        size_t n, d, k;
        if (!strcmp(kind, "pca")) {
            assert_int_equal(fscanf(f, "%zu %zu %zu", &n, &d, &k), 3);
            char tok[64];
            for (size_t i = 0; i < n * d + d + k + k * d + n * k; i++)
                assert_int_equal(fscanf(f, "%63s", tok), 1);
            continue;
        }
        if (!strcmp(kind, "silhouette")) {
            assert_int_equal(fscanf(f, "%zu %zu %zu", &n, &d, &k), 3);
            double *x = xmalloc(n * d, sizeof(double)), want;
            int *lab = xmalloc(n, sizeof(int));
            read_reals(f, x, n * d);
            read_ints(f, lab, n);
            read_reals(f, &want, 1);
            assert_rel(qb_silhouette(x, n, d, lab, (int)k), want, 1e-9);
            free(x);
            free(lab);
            n_sil++;
            continue;
        }
        assert_string_equal(kind, "kmeans");
        assert_int_equal(fscanf(f, "%zu %zu", &n, &d), 2);
        double *x = xmalloc(n * d, sizeof(double)), want;
        int *lw = xmalloc(n, sizeof(int)), *lab = xmalloc(n, sizeof(int));
        read_reals(f, x, n * d);
        read_ints(f, lw, n);
        read_reals(f, &want, 1);
        qb_rng r;
        qb_rng_seed(&r, 2024);
        double inertia = qb_kmeans(x, n, d, 2, 10, 300, &r, lab, NULL, NULL);
        int flip = lab[0] != lw[0];
        for (size_t i = 0; i < n; i++) assert_int_equal(lab[i], flip ? 1 - lw[i] : lw[i]);
        assert_rel(inertia, want, 1e-9);
        free(x);
        free(lw);
        free(lab);
        n_km++;
    }
    assert_string_equal(kind, "end");
    assert_int_equal(n_sil, 2);
    assert_int_equal(n_km, 1);
    fclose(f);
    free(path);
}

int main(void)
{
    return qb_test_run_group(cmocka_unit_test(test_kmeans_separable),
                             cmocka_unit_test(test_kmeans_deterministic),
                             cmocka_unit_test(test_kmeans_degenerate),
                             cmocka_unit_test(test_silhouette_by_hand),
                             cmocka_unit_test(test_silhouette_sampled),
                             cmocka_unit_test(test_sklearn_fixture));
}
