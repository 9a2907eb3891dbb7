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
#include <zlib.h>

#include "core/file.h"
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

/* ---- PyTorch fixtures ------------------------------------------------------ */

static uint32_t fix_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t fix_u64(const uint8_t *p)
{
    return (uint64_t)fix_u32(p) | (uint64_t)fix_u32(p + 4) << 32;
}

static size_t fix_dtype_size(uint32_t dt)
{
    switch (dt) {
    case QB_TFIX_F32: return 4;
    case QB_TFIX_I16Q:
    case QB_TFIX_I16Q12: return 2;
    case QB_TFIX_U8Q:
    case QB_TFIX_U8: return 1;
    }
    return 0;
}

void qb_test_fixture_load(qb_test_fixture *f, const char *path, const char *hint)
{
    qb_error err;
    if (qb_file_read_all(path, (size_t)256 << 20, &f->buf, &f->len, &err)) {
        print_error("%s\n(%s)\n", err.msg, hint);
        fail();
    }
    assert_true(f->len >= 16);
    assert_memory_equal(f->buf, "QBTFIX01", 8);
    uint32_t crc = (uint32_t)crc32(0L, f->buf, (uInt)(f->len - 4));
    if (crc != fix_u32(f->buf + f->len - 4)) {
        print_error("%s: CRC mismatch: the fixture is corrupt (%s)\n", path, hint);
        fail();
    }
    f->n_sections = fix_u32(f->buf + 8);
    size_t off = 12;
    for (uint32_t s = 0; s < f->n_sections; s++) {
        assert_true(off + 36 <= f->len - 4);
        size_t es = fix_dtype_size(fix_u32(f->buf + off + 24));
        assert_true(es != 0);
        uint64_t count = fix_u64(f->buf + off + 28);
        assert_true(count <= (f->len - 4 - off - 36) / es);
        off += 36 + (size_t)count * es;
    }
    assert_int_equal(off, f->len - 4);
}

void qb_test_fixture_free(qb_test_fixture *f)
{
    free(f->buf);
    memset(f, 0, sizeof *f);
}

/* Element i of a section's data d as float: exact for every code dtype. */
static float fix_value(const uint8_t *d, uint32_t dt, size_t i)
{
    switch (dt) {
    case QB_TFIX_F32: {
        uint32_t u = fix_u32(d + 4 * i);
        float v;
        memcpy(&v, &u, 4);
        return v;
    }
    case QB_TFIX_I16Q:
    case QB_TFIX_I16Q12: {
        int16_t k = (int16_t)(uint16_t)(d[2 * i] | d[2 * i + 1] << 8);
        return (float)k * (dt == QB_TFIX_I16Q ? 1.0f / 65536.0f : 1.0f / 4096.0f);
    }
    case QB_TFIX_U8Q: return (float)d[i] * (1.0f / 256.0f);
    default: return (float)d[i];
    }
}

float *qb_test_fixture_get(const qb_test_fixture *f, const char *name, int dtype, size_t count)
{
    size_t off = 12;
    for (uint32_t s = 0; s < f->n_sections; s++) {
        const uint8_t *h = f->buf + off;
        uint32_t dt = fix_u32(h + 24);
        uint64_t n = fix_u64(h + 28);
        if (strncmp((const char *)h, name, 24) == 0) {
            if (dt != (uint32_t)dtype || n != count) {
                print_error("fixture section %s: dtype %u with %llu elements, expected dtype %d "
                            "with %zu\n", name, dt, (unsigned long long)n, dtype, count);
                fail();
            }
            float *out = malloc((count ? count : 1) * sizeof(float));
            assert_non_null(out);
            for (size_t i = 0; i < count; i++) out[i] = fix_value(h + 36, dt, i);
            return out;
        }
        off += 36 + (size_t)n * fix_dtype_size(dt);
    }
    print_error("fixture has no section %s\n", name);
    fail();
    return NULL;
}

double qb_test_assert_close(const char *what, const float *got, const float *want, size_t n,
                            double rtol, double atol_rel)
{
    double scale = 0.0;
    for (size_t i = 0; i < n; i++)
        if (fabs((double)want[i]) > scale) scale = fabs((double)want[i]);
    double atol = atol_rel * scale, worst = 0.0;
    size_t worst_i = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]);
        double bound = rtol * fabs((double)want[i]) + atol;
        double r = d == 0.0 ? 0.0 : d / bound; /* fraction of the bound */
        if (!(r <= worst)) {
            worst = r;
            worst_i = i;
        }
    }
    print_message("  %-28s %8zu values, max|torch| %.3e, worst at %.3f of the bound\n", what, n,
                  scale, worst);
    if (!(worst <= 1.0)) {
        print_error("%s[%zu]: qblind %.9g, torch %.9g (bound %.3g)\n", what, worst_i,
                    (double)got[worst_i], (double)want[worst_i],
                    rtol * fabs((double)want[worst_i]) + atol);
        fail();
    }
    return worst;
}

double qb_test_assert_params_close(const char *what, const qb_model *m, const float *got,
                                   const float *want, double rtol, double atol_rel)
{
    double worst = 0.0;
    for (int i = 0; i < m->n_layers; i++) {
        const qb_layer *l = &m->layers[i];
        if (l->w_len == 0) continue;
        const char *wn = l->kind == QB_LAYER_BATCHNORM ? "gamma" : "weight";
        const char *bn = l->kind == QB_LAYER_BATCHNORM ? "beta" : "bias";
        char name[64];
        snprintf(name, sizeof name, "%s %d.%s", what, i, wn);
        double r = qb_test_assert_close(name, got + l->w_off, want + l->w_off, l->w_len, rtol,
                                        atol_rel);
        if (r > worst) worst = r;
        if (l->b_len == 0) continue;
        snprintf(name, sizeof name, "%s %d.%s", what, i, bn);
        r = qb_test_assert_close(name, got + l->b_off, want + l->b_off, l->b_len, rtol, atol_rel);
        if (r > worst) worst = r;
    }
    return worst;
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

void qb_test_model_random(qb_model *m, const char *arch, int c, int h, int w, int classes,
                          uint64_t seed, uint64_t bn_seed, const qb_test_bn_ranges *r)
{
    qb_error err;
    if (qb_model_build(m, arch, c, h, w, classes, &err)) fail_msg("%s", err.msg);
    qb_model_init_params(m, seed);
    qb_rng rng;
    qb_rng_seed(&rng, bn_seed);
    for (int i = 0; i < m->n_layers; i++) {
        const qb_layer *l = &m->layers[i];
        if (l->kind != QB_LAYER_BATCHNORM) continue;
        const int C = l->in_c;
        float *g = m->params + l->w_off, *be = m->params + l->b_off, *st = m->params + l->s_off;
        for (int k = 0; k < C; k++) {
            double sign = r->neg > 0 && qb_rng_uniform(&rng) < r->neg ? -1.0 : 1.0;
            g[k] = (float)(sign * (r->g_lo + r->g_w * qb_rng_uniform(&rng)));
            be[k] = (float)(r->b_w * (qb_rng_uniform(&rng) - 0.5));
            st[k] = (float)(r->m_w * (qb_rng_uniform(&rng) - 0.5));
            st[C + k] = (float)(r->v_lo + r->v_w * qb_rng_uniform(&rng));
        }
    }
}
