/* The defenses' linear algebra gives the same bits everywhere (issue 14):
 *
 * - the double kernels (core/dkernel.c) on this CPU's build equal, bit for
 *   bit, the source-order loops written out here;
 * - PCA, the eigensolver, least squares and Spectral Signatures equal the
 *   digests committed below (computed on another run; only IEEE +, -, *,
 *   /, sqrt and the program's own code are involved, so every x86-64 CPU
 *   and every kernel build must give them);
 * - with `--print` it prints a digest of every output, AC and forensics
 *   included, for tests/linalg_bits.sh, which runs it under each
 *   OPENBLAS_CORETYPE this CPU can run and with QBLIND_SCALAR=1 and
 *   requires identical lines.
 * Inputs come from a splitmix64 generator here, not the program's RNG. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dkernel.h"
#include "core/lstsq.h"
#include "core/model.h"
#include "core/pca.h"
#include "core/symeig.h"
#include "core/xalloc.h"
#include "defenses/ac.h"
#include "defenses/defense.h"
#include "defenses/ss.h"
#include "defenses/verdict.h"
#include "quant/qmodel.h"
#include "tests/testutil.h"
#include "tests/testutil_defenses.h"
#include "tests/testutil_quant.h"

static uint64_t mix(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* uniform in [lo, hi), exactly representable (24-bit grid) */
static float unif(uint64_t *s, float lo, float hi)
{
    return lo + (hi - lo) * (float)(mix(s) >> 40) * 0x1.0p-24f;
}

typedef struct digest {
    uint64_t h;
} digest;

static void dg_init(digest *g)
{
    g->h = 0xcbf29ce484222325ull;
}

static void dg_add(digest *g, const void *p, size_t len)
{
    const unsigned char *b = p;
    for (size_t i = 0; i < len; i++) g->h = (g->h ^ b[i]) * 0x100000001b3ull;
}

/* Activation-like rows: ReLU of a class-dependent rank-6 mixture. */
static float *rows(size_t n, size_t d, uint64_t seed)
{
    uint64_t s = seed;
    float *a = xmalloc(6 * d, sizeof(float)), *x = xmalloc(n * d, sizeof(float));
    for (size_t i = 0; i < 6 * d; i++) a[i] = unif(&s, -1.0f, 1.0f);
    for (size_t i = 0; i < n; i++) {
        float z[6];
        for (int t = 0; t < 6; t++) z[t] = unif(&s, -1.0f, 1.0f) * (float)(6 - t);
        for (size_t j = 0; j < d; j++) {
            float v = unif(&s, -0.2f, 0.2f);
            for (int t = 0; t < 6; t++) v += z[t] * a[t * d + j];
            x[i * d + j] = v > 0 ? v : 0.0f;
        }
    }
    free(a);
    return x;
}

static uint64_t pca_digest(void)
{
    const size_t shapes[][3] = {{700, 84, 10}, {300, 256, 2}, {1, 5, 2}, {3, 40, 40},
                                {2000, 128, 10}};
    digest g;
    dg_init(&g);
    for (size_t c = 0; c < sizeof shapes / sizeof shapes[0]; c++) {
        size_t n = shapes[c][0], d = shapes[c][1], k = shapes[c][2];
        float *x = rows(n, d, 100 + c);
        double *mean = xmalloc(d, sizeof(double)), *ev = xmalloc(k, sizeof(double));
        double *vec = xmalloc(k * d, sizeof(double)), *proj = xmalloc(n * k, sizeof(double));
        qb_error err;
        assert_int_equal(qb_pca_fit(x, n, d, k, mean, ev, vec, &err), 0);
        qb_pca_project(x, n, d, k, mean, vec, proj);
        dg_add(&g, mean, d * sizeof(double));
        dg_add(&g, ev, k * sizeof(double));
        dg_add(&g, vec, k * d * sizeof(double));
        dg_add(&g, proj, n * k * sizeof(double));
        free(x);
        free(mean);
        free(ev);
        free(vec);
        free(proj);
    }
    return g.h;
}

static uint64_t symeig_digest(void)
{
    enum { D = 50, W = 21 };
    digest g;
    dg_init(&g);
    uint64_t s = 7;
    double *a = xmalloc(D * D, sizeof(double)), ev[D], *vec = xmalloc(D * D, sizeof(double));
    for (int i = 0; i < D; i++)
        for (int j = i; j < D; j++) a[i * D + j] = unif(&s, -1.0f, 1.0f);
    qb_error err;
    assert_int_equal(qb_symeig_top(a, D, D, ev, vec, &err), 0);
    dg_add(&g, ev, sizeof ev);
    dg_add(&g, vec, D * D * sizeof(double));
    double w[W * W] = {0};
    for (int i = 0; i < W; i++) {
        w[i * W + i] = fabs(10.0 - i);
        if (i + 1 < W) w[i * W + i + 1] = 1.0;
    }
    assert_int_equal(qb_symeig_top(w, W, 6, ev, vec, &err), 0);
    dg_add(&g, ev, 6 * sizeof(double));
    dg_add(&g, vec, 6 * W * sizeof(double));
    free(a);
    free(vec);
    return g.h;
}

static uint64_t lstsq_digest(void)
{
    digest g;
    dg_init(&g);
    uint64_t s = 3;
    for (int rep = 0; rep < 20; rep++) {
        double a[30], b[10], x[3];
        for (int i = 0; i < 10; i++) {
            double c = (i < 5 ? -0.30 : 0.10) + 0.05 * (i % 5);
            a[3 * i] = 1.0, a[3 * i + 1] = c, a[3 * i + 2] = c * c;
            b[i] = unif(&s, 0.4f, 0.7f);
        }
        qb_error err;
        assert_int_equal(qb_lstsq_solve(a, 10, 3, b, x, &err), 0);
        dg_add(&g, x, sizeof x);
    }
    return g.h;
}

/* Three classes of 400, 300 and 350 rows (64 dims), a few rows of class 0
 * shifted along one direction: the SS and AC analyses. */
static void class_data(float **x, uint8_t *lab, uint8_t *pois, size_t n, size_t d)
{
    *x = rows(n, d, 55);
    uint64_t s = 9;
    for (size_t i = 0; i < n; i++) {
        lab[i] = (uint8_t)(i % 3 == 0 ? 0 : i % 3 == 1 ? 1 : 2);
        pois[i] = lab[i] == 0 && mix(&s) % 10 == 0;
        for (size_t j = 0; j < d; j++)
            (*x)[i * d + j] += (float)lab[i] * 0.25f + (pois[i] && j % 7 == 0 ? 2.0f : 0.0f);
    }
}

static uint64_t ss_digest(void)
{
    enum { N = 1050, D = 64 };
    float *x;
    uint8_t lab[N], pois[N], rem[N];
    class_data(&x, lab, pois, N, D);
    qb_ss_class cls[3];
    double score[N];
    qb_error err;
    assert_int_equal(qb_ss_analyze(x, N, D, lab, 3, pois, 0.1, cls, score, rem, &err), 0);
    digest g;
    dg_init(&g);
    dg_add(&g, score, sizeof score);
    dg_add(&g, rem, sizeof rem);
    for (int c = 0; c < 3; c++) {
        double v[4] = {cls[c].sigma1, cls[c].sigma2, cls[c].sv_ratio, cls[c].sv_anomaly};
        dg_add(&g, v, sizeof v);
    }
    free(x);
    return g.h;
}

static uint64_t ac_digest(void)
{
    enum { N = 1050, D = 64 };
    float *x;
    uint8_t lab[N], pois[N], small[N];
    class_data(&x, lab, pois, N, D);
    qb_ac_config cfg = {.dims = 10, .restarts = 4, .max_iter = 300, .silhouette_max = 15000,
                        .seed = 77};
    qb_ac_class cls[3];
    qb_error err;
    assert_int_equal(qb_ac_analyze(x, N, D, lab, 3, &cfg, cls, small, &err), 0);
    digest g;
    dg_init(&g);
    dg_add(&g, small, sizeof small);
    for (int c = 0; c < 3; c++) {
        double v[2] = {cls[c].small_frac, cls[c].silhouette};
        dg_add(&g, v, sizeof v);
    }
    free(x);
    return g.h;
}

/* Forensics on the test LeNet at int4: every detail's bits. */
static uint64_t forensics_digest(void)
{
    qb_model m;
    qb_test_lenet(&m, 4);
    qb_qmodel qm;
    qb_test_quantize(&qm, &m, "int4");
    qb_defense_input in;
    qb_test_input_deployed(&in, &qm);
    in.fp32 = &m;
    in.params = (qb_params){qb_forensics_params, 0, NULL};
    qb_test_run run;
    qb_test_run_init(&run, QB_DETECTED_NA);
    qb_error err;
    assert_int_equal(qb_defense_forensics(&in, &run.res, &err), 0);
    digest g;
    dg_init(&g);
    for (size_t i = 0; i < run.det.n; i++) {
        dg_add(&g, run.det.items[i].name, strlen(run.det.items[i].name));
        dg_add(&g, run.det.items[i].v, run.det.items[i].n * sizeof(double));
    }
    qb_test_run_free(&run);
    qb_qmodel_free(&qm);
    qb_model_free(&m);
    return g.h;
}

/* The kernels on this CPU's build against the loops in source order. */
static void test_kernels_match_source_order(void **state)
{
    (void)state;
    enum { B = 37, NP = 3, DP = NP * QB_DKERNEL_PANEL };
    uint64_t s = 11;
    double *pk = xmalloc(NP * B * QB_DKERNEL_PANEL, sizeof(double));
    for (size_t i = 0; i < NP * B * QB_DKERNEL_PANEL; i++) pk[i] = unif(&s, -3.0f, 3.0f) / 7.0;
    double *sk = xmalloc(DP * DP, sizeof(double)), *sr = xmalloc(DP * DP, sizeof(double));
    for (size_t i = 0; i < DP * DP; i++) sk[i] = sr[i] = unif(&s, -1.0f, 1.0f) / 3.0;
    qb_dkernel_scatter(pk, B, NP, sk);
    for (size_t j = 0; j < DP; j++)
        for (size_t l = 0; l < DP; l++) {
            size_t jp = j / QB_DKERNEL_PANEL, lp = l / QB_DKERNEL_PANEL;
            if (jp > lp) continue;
            double acc = sr[j * DP + l];
            for (size_t i = 0; i < B; i++)
                acc += pk[(jp * B + i) * QB_DKERNEL_PANEL + j % QB_DKERNEL_PANEL] *
                       pk[(lp * B + i) * QB_DKERNEL_PANEL + l % QB_DKERNEL_PANEL];
            sr[j * DP + l] = acc;
        }
    assert_memory_equal(sk, sr, DP * DP * sizeof(double));

    enum { M = 29, LD = 31 };
    double bm[M * LD], bm2[M * LD], v[M], w[M], p[M];
    for (int i = 0; i < M; i++) {
        v[i] = unif(&s, -1.0f, 1.0f) / 3.0;
        w[i] = unif(&s, -1.0f, 1.0f) / 5.0;
        for (int j = 0; j < LD; j++) bm[i * LD + j] = 0.0;
        for (int j = 0; j <= i; j++) bm[i * LD + j] = bm[j * LD + i] = unif(&s, -2.0f, 2.0f) / 9.0;
    }
    qb_dkernel_symv(bm, LD, M, v, p);
    for (int i = 0; i < M; i++) {
        double acc = 0.0;
        for (int j = 0; j < M; j++) acc += bm[j * LD + i] * v[j];
        assert_memory_equal(&acc, &p[i], sizeof acc);
    }
    memcpy(bm2, bm, sizeof bm);
    qb_dkernel_syr2(bm, LD, M, v, w);
    for (int i = 0; i < M; i++)
        for (int j = 0; j < M; j++) {
            double want = bm2[i * LD + j] - (v[i] * w[j] + w[i] * v[j]);
            assert_memory_equal(&want, &bm[i * LD + j], sizeof want);
        }
    free(pk);
    free(sk);
    free(sr);
}

/* Digests of the baseline kernel build (QBLIND_SCALAR=1) on an Intel Xeon
 * (Sapphire/Emerald Rapids), 2026-12-07; the AVX-512 build gave the same.
 * A change of algorithm changes them: then recompute them with
 * `test_linalg_bits --print` and say why in the commit. */
static void test_committed_digests(void **state)
{
    (void)state;
    uint64_t got[4] = {pca_digest(), symeig_digest(), lstsq_digest(), ss_digest()};
    const uint64_t want[4] = {0x0700c77a351eff91ull, 0x7278369c7dfca5d7ull,
                              0xd0408a5fa59aad89ull, 0xc7c0884a23932510ull};
    const char *name[4] = {"pca", "symeig", "lstsq", "ss"};
    int bad = 0;
    for (int i = 0; i < 4; i++)
        if (got[i] != want[i]) {
            print_error("%s: digest %016llx, committed %016llx (kernels: %s)\n", name[i],
                        (unsigned long long)got[i], (unsigned long long)want[i],
                        qb_dkernel_path());
            bad = 1;
        }
    assert_false(bad);
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], "--print")) {
        printf("pca %016llx\n", (unsigned long long)pca_digest());
        printf("symeig %016llx\n", (unsigned long long)symeig_digest());
        printf("lstsq %016llx\n", (unsigned long long)lstsq_digest());
        printf("ss %016llx\n", (unsigned long long)ss_digest());
        printf("ac %016llx\n", (unsigned long long)ac_digest());
        printf("forensics %016llx\n", (unsigned long long)forensics_digest());
        fprintf(stderr, "kernels: %s\n", qb_dkernel_path());
        return 0;
    }
    return qb_test_run_group(cmocka_unit_test(test_kernels_match_source_order),
                             cmocka_unit_test(test_committed_digests));
}
