#include "tests/testutil.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ftw.h>
#include <math.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/model.h"
#include "core/rng.h"

char *qb_test_tmpdir(void)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    size_t len = strlen(base) + 32;
    char *path = malloc(len);
    assert_non_null(path);
    snprintf(path, len, "%s/qblind-test-XXXXXX", base);
    assert_non_null(mkdtemp(path));
    return path;
}

int qb_test_tmpdir_setup(void **state)
{
    *state = qb_test_tmpdir();
    return 0;
}

int qb_test_tmpdir_teardown(void **state)
{
    qb_test_tmpdir_remove(*state);
    free(*state);
    return 0;
}

char *qb_test_path_join(const char *dir, const char *name)
{
    size_t len = strlen(dir) + strlen(name) + 2;
    char *p = malloc(len);
    assert_non_null(p);
    snprintf(p, len, "%s/%s", dir, name);
    return p;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb; (void)flag; (void)ftw;
    return remove(path);
}

void qb_test_tmpdir_remove(const char *dir)
{
    nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

void qb_test_write_file(const char *path, const void *data, size_t len)
{
    FILE *f = fopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

char *qb_test_fixture_path(const char *name)
{
    const char *dir = getenv("QBLIND_FIXTURES");
    if (!dir) dir = "tests/fixtures";
    return qb_test_path_join(dir, name);
}

void qb_test_assert_msg_has(const qb_error *e, const char *frag)
{
    if (!strstr(e->msg, frag)) {
        print_error("message \"%s\" lacks \"%s\"\n", e->msg, frag);
        fail();
    }
}

double qb_test_detail1(const qb_details *d, const char *name)
{
    const qb_detail *e = qb_details_find(d, name);
    assert_non_null(e);
    assert_int_equal(e->n, 1);
    return e->v[0];
}

void qb_test_details_assert_equal(const qb_details *a, const qb_details *b)
{
    assert_int_equal(a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        assert_string_equal(a->items[i].name, b->items[i].name);
        assert_int_equal(a->items[i].n, b->items[i].n);
        if (a->items[i].n)
            assert_memory_equal(a->items[i].v, b->items[i].v, a->items[i].n * sizeof(double));
    }
}

void qb_test_lenet(qb_model *m, uint64_t seed)
{
    qb_error err;
    assert_int_equal(qb_model_build(m, "lenet", 1, 28, 28, 10, &err), 0);
    qb_model_init_params(m, seed);
}

int qb_test_lenet_setup(void **state)
{
    qb_model *m = malloc(sizeof *m);
    assert_non_null(m);
    qb_test_lenet(m, 1);
    *state = m;
    return 0;
}

int qb_test_lenet_teardown(void **state)
{
    qb_model_free(*state);
    free(*state);
    return 0;
}

/* ---- region signatures of whole models ----------------------------------- */

static int relu_feeds_pool(const qb_model *m, int i)
{
    return i + 1 < m->n_layers && m->layers[i + 1].kind == QB_LAYER_MAXPOOL;
}

size_t qb_test_region_sig_len(const qb_model *m, int b)
{
    size_t n = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const qb_layer *l = &m->layers[i];
        if ((l->kind == QB_LAYER_RELU && !relu_feeds_pool(m, i)) || l->kind == QB_LAYER_MAXPOOL)
            n += (size_t)b * qb_layer_out_size(l);
    }
    return n;
}

void qb_test_region_sig(const qb_model *m, const qb_model_ws *ws, int b, int32_t *sig)
{
    size_t o = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const qb_layer *l = &m->layers[i];
        const size_t n = (size_t)b * qb_layer_out_size(l);
        const float *y = ws->act[i + 1];
        if (l->kind == QB_LAYER_RELU && !relu_feeds_pool(m, i))
            for (size_t j = 0; j < n; j++) sig[o++] = y[j] > 0.0f;
        else if (l->kind == QB_LAYER_MAXPOOL)
            for (size_t j = 0; j < n; j++) sig[o++] = y[j] > 0.0f ? 1 + ws->argmax[i][j] : 0;
    }
}

/* ---- exact layer outputs ------------------------------------------------- */

int qb_test_fd_quotient(qb_test_loss_fn loss, void *ctx, size_t sig_len, const int32_t *sig0,
                        int32_t *sig, double l0, float *p, size_t j, float h, double *num,
                        double *den)
{
    const float v = p[j];
    *den = 0.0;
    for (int tries = 0; tries < 4; tries++, h *= 0.5f) {
        /* the perturbations actually applied, after rounding to float */
        const float vp = v + h, vm = v - h;
        p[j] = vp;
        double lp = loss(ctx, sig);
        int cp = sig_len && memcmp(sig, sig0, sig_len * sizeof *sig) != 0;
        p[j] = vm;
        double lm = loss(ctx, sig);
        int cm = sig_len && memcmp(sig, sig0, sig_len * sizeof *sig) != 0;
        p[j] = v;
        if (!cp && !cm) {
            *den = (double)vp - (double)vm;
            *num = (lp - lm) / *den;
            return 2;
        }
        if (!cp || !cm) {
            *den = cp ? (double)v - (double)vm : (double)vp - (double)v;
            *num = (cp ? l0 - lm : lp - l0) / *den;
            return 1;
        }
    }
    return 0;
}

void qb_test_fd_model_init(qb_test_fd_model *c, const qb_model *m, float *x, const float *r,
                           int b)
{
    memset(c, 0, sizeof *c);
    c->m = m;
    c->x = x;
    c->r = r;
    c->b = b;
    qb_model_ws_init(&c->ws, m, b);
    qb_model_ws_set_fused(&c->ws, 0);
}

void qb_test_fd_model_free(qb_test_fd_model *c)
{
    qb_model_ws_free(&c->ws);
}

double qb_test_fd_model_loss(void *ctx, int32_t *sig)
{
    qb_test_fd_model *c = ctx;
    const float *logits = qb_model_forward(c->m, &c->ws, c->x, c->b, 1);
    if (sig) qb_test_region_sig(c->m, &c->ws, c->b, sig);
    double s = 0.0;
    for (size_t j = 0; j < (size_t)c->b * c->m->classes; j++) s += (double)c->r[j] * logits[j];
    return s;
}

double qb_test_fd_model_mag(qb_test_fd_model *c)
{
    const float *logits = qb_model_forward(c->m, &c->ws, c->x, c->b, 1);
    double mag = 0.0;
    for (size_t j = 0; j < (size_t)c->b * c->m->classes; j++)
        mag += fabs((double)c->r[j] * logits[j]);
    return mag;
}

void qb_test_layer_direct(const qb_layer *l, int b, const float *x, const float *w,
                          const float *bias, double *y, double *mag)
{
    if (l->kind == QB_LAYER_LINEAR) {
        for (int i = 0; i < b; i++)
            for (int o = 0; o < l->out_c; o++) {
                double s = bias[o], a = fabs((double)bias[o]);
                for (int k = 0; k < l->in_c; k++) {
                    double t = (double)x[(size_t)i * l->in_c + k] * w[(size_t)o * l->in_c + k];
                    s += t;
                    a += fabs(t);
                }
                y[(size_t)i * l->out_c + o] = s;
                mag[(size_t)i * l->out_c + o] = a;
            }
        return;
    }
    const int C = l->in_c, H = l->in_h, W = l->in_w, K = l->k, S = l->stride, P = l->pad;
    for (int i = 0; i < b; i++)
        for (int oc = 0; oc < l->out_c; oc++)
            for (int oy = 0; oy < l->out_h; oy++)
                for (int ox = 0; ox < l->out_w; ox++) {
                    double s = bias[oc], a = fabs((double)bias[oc]);
                    for (int c = 0; c < C; c++)
                        for (int ky = 0; ky < K; ky++)
                            for (int kx = 0; kx < K; kx++) {
                                int iy = oy * S - P + ky, ix = ox * S - P + kx;
                                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                                double t = (double)w[((oc * C + c) * K + ky) * K + kx] *
                                           (double)x[((size_t)(i * C + c) * H + iy) * W + ix];
                                s += t;
                                a += fabs(t);
                            }
                    size_t o = (((size_t)i * l->out_c + oc) * l->out_h + oy) * l->out_w + ox;
                    y[o] = s;
                    mag[o] = a;
                }
}

float *qb_test_falloc(size_t n)
{
    float *p = calloc(n ? n : 1, sizeof(float));
    assert_non_null(p);
    return p;
}

float *qb_test_random_floats(qb_rng *r, size_t n, float lo, float hi)
{
    float *p = qb_test_falloc(n);
    for (size_t i = 0; i < n; i++) p[i] = lo + (hi - lo) * qb_rng_uniform(r);
    return p;
}

int qb_test_run_self(const char *mode, const char *arg, const char *asan_options)
{
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        char self[4096];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n <= 0) _exit(127);
        self[n] = '\0';
        if (asan_options) setenv("ASAN_OPTIONS", asan_options, 1);
        char *argv[] = {self, (char *)mode, (char *)arg, NULL};
        execv(self, argv);
        _exit(127);
    }
    int ws;
    assert_int_equal(waitpid(pid, &ws, 0), pid);
    return ws;
}
