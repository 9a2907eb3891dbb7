/* The convolution's fast paths (core/conv2d.h) against its generic path,
 * bit for bit (memcmp):
 *   - qb_im2col / qb_col2im against qb_im2col_ref / qb_col2im_ref
 *     (AVX-512 row kernels for stride 1 and 2, the gather-form col2im);
 *   - whole forward and backward passes with the fast paths on against
 *     qb_conv2d_set_generic(1): pointwise 1x1 (no im2col), one-image
 *     chunks written straight into y, bands of output rows, dcol by channel
 *     groups, with every epilogue (none, ReLU, ReLU + 2x2 pool), with and
 *     without bias and im2col cache, dw/db accumulating onto random
 *     values, dx / dw / db left out;
 *   - bias = NULL against the direct double reference (no bias at all);
 *   - qb_conv2d_col_cache_worth on the layers the contract names.
 * Values have mixed magnitudes (2^-20 .. 2^20), signs, and signed zeros, so
 * a sum in another order, a +0.0f for a -0.0f or a skipped entry shows in
 * the bits; outputs start as NaN so an entry a path forgets to write shows
 * too. Shapes: odd and non-square sizes, padding 0..3, kernels 1..5,
 * strides 1..3 (3 takes the generic path inside the fast one), rows wider
 * than 16, 32 and 256 columns (the kernels' blocks and their limit),
 * batches whose chunks hold one or several images, many-channel layers
 * with few output positions, which the fast path runs in wide chunks of
 * 2 generic chunks and a remainder (the bias gradient still summed per
 * generic chunk), and layers with K > OC (dw accumulated transposed) and
 * K < OC (not). On a CPU without
 * AVX-512 the structural fast paths are still compared. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/conv2d.h"
#include "core/rng.h"
#include "tests/testutil.h"

typedef struct shape {
    int c, h, w, oc, k, s, p, b;
} shape;

static qb_layer conv_layer(const shape *sh)
{
    qb_layer l;
    memset(&l, 0, sizeof l);
    l.kind = QB_LAYER_CONV2D;
    l.in_c = sh->c;
    l.in_h = sh->h;
    l.in_w = sh->w;
    l.out_c = sh->oc;
    l.out_h = (sh->h + 2 * sh->p - sh->k) / sh->s + 1;
    l.out_w = (sh->w + 2 * sh->p - sh->k) / sh->s + 1;
    l.k = sh->k;
    l.stride = sh->s;
    l.pad = sh->p;
    l.w_len = (size_t)sh->oc * sh->c * sh->k * sh->k;
    l.b_off = l.w_len;
    l.b_len = (size_t)sh->oc;
    return l;
}

static qb_layer pool_layer(const qb_layer *cl)
{
    qb_layer l;
    memset(&l, 0, sizeof l);
    l.kind = QB_LAYER_MAXPOOL;
    l.in_c = l.out_c = cl->out_c;
    l.in_h = cl->out_h;
    l.in_w = cl->out_w;
    l.out_h = (cl->out_h - 2) / 2 + 1;
    l.out_w = (cl->out_w - 2) / 2 + 1;
    l.k = 2;
    l.stride = 2;
    return l;
}

/* n floats: sign * (1 + u) * 2^e with e in [-20, 20]; one in 16 is +0.0f or
 * -0.0f. */
static float *mixed_floats(qb_rng *r, size_t n)
{
    float *p = qb_test_falloc(n);
    for (size_t i = 0; i < n; i++) {
        uint64_t pick = qb_rng_below(r, 16);
        float sign = qb_rng_below(r, 2) ? -1.0f : 1.0f;
        if (pick == 0)
            p[i] = sign * 0.0f;
        else
            p[i] = sign * ldexpf(1.0f + qb_rng_uniform(r), (int)qb_rng_below(r, 41) - 20);
    }
    return p;
}

/* n floats uniform in [-1, 1), some zero of either sign. */
static float *plain_floats(qb_rng *r, size_t n)
{
    float *p = qb_test_random_floats(r, n, -1.0f, 1.0f);
    for (size_t i = 0; i < n; i += 13) p[i] = (i / 13) % 2 ? -0.0f : 0.0f;
    return p;
}

static float *nan_floats(size_t n)
{
    float *p = qb_test_falloc(n);
    for (size_t i = 0; i < n; i++) p[i] = NAN;
    return p;
}

static void bits_equal(const char *what, const shape *sh, const void *a, const void *b,
                       size_t bytes)
{
    if (memcmp(a, b, bytes) == 0) return;
    const unsigned char *x = a, *y = b;
    size_t i = 0;
    while (x[i] == y[i]) i++;
    size_t f = i / sizeof(float);
    float fa, fb;
    memcpy(&fa, x + f * sizeof(float), sizeof fa);
    memcpy(&fb, y + f * sizeof(float), sizeof fb);
    print_error("%s: conv %d %dx%d -> %d k%d s%d p%d b%d: float %zu differs: %.9g vs %.9g\n", what,
                sh->c, sh->h, sh->w, sh->oc, sh->k, sh->s, sh->p, sh->b, f, (double)fa,
                (double)fb);
    fail();
}

static const shape shapes[] = {
    {3, 9, 9, 4, 3, 1, 1, 3},      {2, 11, 10, 3, 3, 2, 0, 3},  {8, 12, 13, 6, 3, 2, 1, 2},
    {6, 9, 9, 5, 1, 2, 0, 3},      {5, 7, 7, 4, 1, 1, 0, 3},    {5, 7, 7, 4, 1, 1, 0, 1},
    {16, 20, 20, 8, 5, 1, 2, 2},   {3, 9, 35, 4, 3, 1, 1, 2},   {4, 10, 10, 3, 3, 3, 1, 3},
    {1, 28, 28, 16, 5, 1, 0, 4},   {16, 34, 34, 16, 3, 2, 1, 2}, {32, 32, 32, 8, 3, 1, 1, 2},
    {64, 32, 32, 8, 3, 2, 1, 1},   {2, 5, 300, 3, 3, 1, 1, 1},  {3, 6, 6, 2, 5, 1, 3, 2},
    {64, 8, 8, 16, 3, 1, 1, 5},    {4, 9, 9, 3, 2, 2, 1, 3},    {1, 5, 5, 1, 3, 1, 0, 1},
    {3, 17, 17, 5, 3, 1, 2, 2},    {256, 4, 4, 8, 3, 1, 1, 7},  {128, 4, 4, 128, 3, 1, 1, 13},
    {96, 8, 8, 160, 3, 2, 1, 20},  {4, 9, 9, 12, 1, 2, 0, 3},
};
#define N_SHAPES (sizeof shapes / sizeof shapes[0])

/* ---- im2col / col2im ------------------------------------------------------ */

static void test_im2col_col2im_vs_ref(void **state)
{
    (void)state;
    qb_rng rng;
    qb_rng_seed(&rng, 101);
    for (size_t s = 0; s < N_SHAPES; s++) {
        const shape *sh = &shapes[s];
        qb_layer l = conv_layer(sh);
        size_t nx = (size_t)sh->b * qb_layer_in_size(&l), ncol = qb_conv2d_col_size(&l, sh->b);
        float *x = mixed_floats(&rng, nx), *dcol = mixed_floats(&rng, ncol);
        float *c_ref = nan_floats(ncol), *c_fast = nan_floats(ncol);
        float *d_ref = nan_floats(nx), *d_fast = nan_floats(nx);
        qb_im2col_ref(&l, sh->b, x, c_ref);
        qb_im2col(&l, sh->b, x, c_fast);
        bits_equal("im2col", sh, c_ref, c_fast, ncol * sizeof(float));
        qb_col2im_ref(&l, sh->b, dcol, d_ref);
        qb_col2im(&l, sh->b, dcol, d_fast);
        bits_equal("col2im", sh, d_ref, d_fast, nx * sizeof(float));
        free(d_fast);
        free(d_ref);
        free(c_fast);
        free(c_ref);
        free(dcol);
        free(x);
    }
}

/* ---- whole passes --------------------------------------------------------- */

/* Everything one pass produces. */
typedef struct pass_out {
    float *y, *dw, *db, *dx;
    int32_t *argmax;
} pass_out;

typedef struct pass_in {
    const qb_layer *l;
    qb_conv_epilogue ep;
    int b;
    const float *x, *w, *bias, *dy, *dw0, *db0;
    size_t ny;
    int want_dw, want_db, want_dx;
} pass_in;

static void pass_run(const pass_in *in, int generic, int cache, pass_out *out)
{
    const qb_layer *l = in->l;
    size_t nx = (size_t)in->b * qb_layer_in_size(l);
    float *work = qb_test_falloc(qb_conv2d_work_size(l, in->b));
    qb_conv_epilogue ep = in->ep;
    ep.col_cache = cache ? nan_floats(qb_conv2d_col_size(l, in->b)) : NULL;
    out->y = nan_floats(in->ny);
    out->argmax = ep.pool ? malloc(in->ny * sizeof(int32_t)) : NULL;
    if (ep.pool) {
        assert_non_null(out->argmax);
        memset(out->argmax, 0xff, in->ny * sizeof(int32_t));
    }
    out->dw = qb_test_falloc(l->w_len);
    out->db = qb_test_falloc(l->b_len);
    memcpy(out->dw, in->dw0, l->w_len * sizeof(float));
    memcpy(out->db, in->db0, l->b_len * sizeof(float));
    out->dx = nan_floats(nx);
    qb_conv2d_set_generic(generic);
    qb_conv2d_forward_ex(l, &ep, in->b, in->x, in->w, in->bias, out->y, out->argmax, work);
    qb_conv2d_backward_ex(l, &ep, in->b, in->x, in->w, out->y, out->argmax, in->dy,
                          in->want_dw ? out->dw : NULL, in->want_db ? out->db : NULL,
                          in->want_dx ? out->dx : NULL, work);
    qb_conv2d_set_generic(0);
    free(ep.col_cache);
    free(work);
}

static void pass_free(pass_out *o)
{
    free(o->y);
    free(o->argmax);
    free(o->dw);
    free(o->db);
    free(o->dx);
}

static void compare_passes(const shape *sh, const pass_in *in, const char *what)
{
    const qb_layer *l = in->l;
    size_t nx = (size_t)in->b * qb_layer_in_size(l);
    for (int cache = 0; cache < 2; cache++) {
        pass_out g, f;
        pass_run(in, 1, cache, &g);
        pass_run(in, 0, cache, &f);
        char name[128];
        snprintf(name, sizeof name, "%s%s y", what, cache ? " (cache)" : "");
        bits_equal(name, sh, g.y, f.y, in->ny * sizeof(float));
        if (in->ep.pool) {
            snprintf(name, sizeof name, "%s%s argmax", what, cache ? " (cache)" : "");
            bits_equal(name, sh, g.argmax, f.argmax, in->ny * sizeof(int32_t));
        }
        snprintf(name, sizeof name, "%s%s dw", what, cache ? " (cache)" : "");
        bits_equal(name, sh, g.dw, f.dw, l->w_len * sizeof(float));
        snprintf(name, sizeof name, "%s%s db", what, cache ? " (cache)" : "");
        bits_equal(name, sh, g.db, f.db, l->b_len * sizeof(float));
        snprintf(name, sizeof name, "%s%s dx", what, cache ? " (cache)" : "");
        bits_equal(name, sh, g.dx, f.dx, nx * sizeof(float));
        /* the pass really ran: y and (if asked) dx have no NaN left */
        for (size_t i = 0; i < in->ny; i++) assert_false(isnan(f.y[i]));
        for (size_t i = 0; in->want_dx && i < nx; i++) assert_false(isnan(f.dx[i]));
        pass_free(&g);
        pass_free(&f);
    }
}

static void test_conv_fast_vs_generic(void **state)
{
    (void)state;
    qb_rng rng;
    qb_rng_seed(&rng, 102);
    for (size_t s = 0; s < N_SHAPES; s++) {
        const shape *sh = &shapes[s];
        if (sh->w > 256) continue; /* im2col_vs_ref covers it; a slow GEMM here */
        qb_layer l = conv_layer(sh);
        qb_layer pl = pool_layer(&l);
        size_t nx = (size_t)sh->b * qb_layer_in_size(&l);
        /* mixed magnitudes for x and w make every GEMM chain's rounding
         * depend on its order; plain values for dy keep ReLU masks busy */
        float *x = mixed_floats(&rng, nx), *w = mixed_floats(&rng, l.w_len);
        float *bias = plain_floats(&rng, l.b_len);
        float *dw0 = plain_floats(&rng, l.w_len), *db0 = plain_floats(&rng, l.b_len);
        for (int epi = 0; epi < 3; epi++) {
            if (epi == 2 && (l.out_h < 2 || l.out_w < 2)) continue;
            size_t ny = (size_t)sh->b * (epi == 2 ? qb_layer_out_size(&pl) : qb_layer_out_size(&l));
            float *dy = mixed_floats(&rng, ny);
            for (int nobias = 0; nobias < 2; nobias++)
                for (int subset = 0; subset < 4; subset++) {
                    pass_in in = {&l, {epi >= 1, epi == 2 ? &pl : NULL, NULL}, sh->b, x, w,
                                  nobias ? NULL : bias, dy, dw0, db0, ny,
                                  subset != 1, subset != 2 && !nobias, subset != 3};
                    char what[96];
                    snprintf(what, sizeof what, "%s%s%s", epi == 0 ? "conv" : epi == 1 ? "conv+relu"
                                                                               : "conv+relu+pool",
                             nobias ? " no bias" : "",
                             subset == 1 ? " no dw" : subset == 2 ? " no db" : subset == 3 ? " no dx" : "");
                    compare_passes(sh, &in, what);
                }
            free(dy);
        }
        free(db0);
        free(dw0);
        free(bias);
        free(w);
        free(x);
    }
}

/* Tiny values (2^-80 and below): products underflow to +0.0f or -0.0f, so
 * a GEMM chain can end in -0.0f, which col2im's "zero, then add" turns into
 * +0.0f. The pointwise path writes dx in place and must do the same. One
 * output channel: a chain of one product, -0.0f half the time. */
static void test_conv_signed_zero_sums(void **state)
{
    (void)state;
    qb_rng rng;
    qb_rng_seed(&rng, 104);
    static const shape tiny[] = {{3, 5, 5, 1, 1, 1, 0, 2}, {3, 6, 7, 1, 3, 1, 1, 2}};
    for (size_t s = 0; s < sizeof tiny / sizeof tiny[0]; s++) {
        const shape *sh = &tiny[s];
        qb_layer l = conv_layer(sh);
        size_t nx = (size_t)sh->b * qb_layer_in_size(&l), ny = (size_t)sh->b * qb_layer_out_size(&l);
        float *x = mixed_floats(&rng, nx), *w = mixed_floats(&rng, l.w_len);
        float *dy = mixed_floats(&rng, ny), *zero = qb_test_falloc(l.w_len + l.b_len);
        for (size_t i = 0; i < nx; i++) x[i] = ldexpf(x[i], -80);
        for (size_t i = 0; i < l.w_len; i++) w[i] = ldexpf(w[i], -80);
        for (size_t i = 0; i < ny; i++) dy[i] = ldexpf(dy[i], -80);
        pass_in in = {&l, {0, NULL, NULL}, sh->b, x, w, NULL, dy, zero, zero, ny, 1, 0, 1};
        compare_passes(sh, &in, "tiny values");
        /* the case is real: some dx entry is a signed zero */
        pass_out f;
        pass_run(&in, 0, 0, &f);
        size_t zeros = 0;
        for (size_t i = 0; i < nx; i++) zeros += f.dx[i] == 0.0f;
        assert_true(zeros > 0);
        pass_free(&f);
        free(zero);
        free(dy);
        free(w);
        free(x);
    }
}

/* ---- bias NULL is no bias --------------------------------------------------- */

static void test_conv_nobias_forward_reference(void **state)
{
    (void)state;
    qb_rng rng;
    qb_rng_seed(&rng, 103);
    for (size_t s = 0; s < N_SHAPES; s++) {
        const shape *sh = &shapes[s];
        if (sh->w > 256) continue;
        qb_layer l = conv_layer(sh);
        size_t nx = (size_t)sh->b * qb_layer_in_size(&l), ny = (size_t)sh->b * qb_layer_out_size(&l);
        float *x = qb_test_random_floats(&rng, nx, -1, 1);
        float *w = qb_test_random_floats(&rng, l.w_len, -0.5f, 0.5f);
        float *zero = qb_test_falloc(l.b_len);
        double *ref = malloc(ny * sizeof *ref), *mag = malloc(ny * sizeof *mag);
        assert_non_null(ref);
        assert_non_null(mag);
        qb_test_layer_direct(&l, sh->b, x, w, zero, ref, mag);
        float *work = qb_test_falloc(qb_conv2d_work_size(&l, sh->b));
        for (int generic = 0; generic < 2; generic++) {
            float *y = nan_floats(ny);
            qb_conv2d_set_generic(generic);
            qb_conv2d_forward(&l, sh->b, x, w, NULL, y, work);
            qb_conv2d_set_generic(0);
            for (size_t i = 0; i < ny; i++)
                if (!(fabs((double)y[i] - ref[i]) <= 1e-5 * mag[i] + 1e-7)) {
                    print_error("shape %zu output %zu: conv (no bias) %.8g, direct %.8g\n", s, i,
                                (double)y[i], ref[i]);
                    fail();
                }
            free(y);
        }
        free(work);
        free(mag);
        free(ref);
        free(zero);
        free(w);
        free(x);
    }
}

/* ---- the cache decision ------------------------------------------------------ */

static void test_col_cache_worth(void **state)
{
    (void)state;
    /* pointwise: no im2col to keep */
    shape pw = {64, 32, 32, 64, 1, 1, 0, 1};
    qb_layer l = conv_layer(&pw);
    assert_int_equal(qb_conv2d_col_cache_worth(&l, 1), 0);
    /* preact-resnet18's first stage at batch 128: 2.4 MB per image */
    shape big = {64, 32, 32, 64, 3, 1, 1, 1};
    l = conv_layer(&big);
    assert_int_equal(qb_conv2d_col_cache_worth(&l, 128), 0);
    assert_int_equal(qb_conv2d_col_cache_worth(&l, 1), 0);
    /* LeNet's first layer (58 KB per image) kept; its second (100 KB) and
     * cnn-small's first (110 KB) recomputed */
    shape c1 = {1, 28, 28, 16, 5, 1, 0, 1}, c2 = {16, 12, 12, 32, 5, 1, 0, 1};
    shape s1 = {3, 32, 32, 32, 3, 1, 1, 1};
    l = conv_layer(&c2);
    assert_int_equal(qb_conv2d_col_cache_worth(&l, 64), 0);
    l = conv_layer(&s1);
    assert_int_equal(qb_conv2d_col_cache_worth(&l, 128), 0);
    l = conv_layer(&c1);
    assert_int_equal(qb_conv2d_col_cache_worth(&l, 64), 1);
    /* small per image, too large in all */
    assert_int_equal(qb_conv2d_col_cache_worth(&l, 1 << 20), 0);
    /* the per-image and total limits, exactly */
    assert_true(qb_conv2d_col_size(&l, 1) * sizeof(float) <= QB_CONV_CACHE_IMAGE_BYTES);
    int bmax = (int)(QB_CONV_CACHE_MAX_BYTES / (qb_conv2d_col_size(&l, 1) * sizeof(float)));
    assert_int_equal(qb_conv2d_col_cache_worth(&l, bmax), 1);
    assert_int_equal(qb_conv2d_col_cache_worth(&l, bmax + 1), 0);
}

int main(void)
{
    return qb_test_run_group(cmocka_unit_test(test_im2col_col2im_vs_ref),
                             cmocka_unit_test(test_conv_fast_vs_generic),
                             cmocka_unit_test(test_conv_signed_zero_sums),
                             cmocka_unit_test(test_conv_nobias_forward_reference),
                             cmocka_unit_test(test_col_cache_worth));
}
