/* Every layer's backward pass against finite differences, the convolution
 * against a direct nested-loop reference (no im2col), the fused conv
 * epilogues against the separate layers (bit-identical), and whole models
 * (lenet 1x28x28, cnn-small 3x8x8, batch 2): parameter and input gradients
 * by finite differences, fused vs unfused bit-identical.
 *
 * How the gradient checks stay tight. The loss is L = sum(r * y) with a
 * fixed random r (softmax cross-entropy: its own mean loss), evaluated by
 * the float engine and summed in double; inputs and parameters are
 * perturbed in float by h = 1e-2 (conv: 2^-7, 2^-8 with an epilogue). Every
 * function checked here except softmax cross-entropy is piecewise linear
 * in each single input or parameter (conv and linear are linear in each
 * argument; relu and maxpool only select), so on one linear piece the
 * difference quotient is exact up to float rounding, whatever h. Kinks (a
 * ReLU changes sign, a max-pool argmax moves) are detected by a signature
 * of the forward pass (ReLU signs, argmax indices): the step shrinks to
 * h/2, h/4, h/8 until an interval (two-sided, else one-sided) holds none,
 * and an element with none is skipped; at least half of the samples (or
 * 16) must be checked. Where kinks can be kept away by construction (relu
 * inputs |x| > 0.05, maxpool windows of distinct values 0.02 apart)
 * nothing is skipped.
 *
 * Error measure, per checked element j:
 *     err_j = |analytic_j - numeric_j| / max(|numeric_j|, 0.01 * max_k |numeric_k|)
 * i.e. relative error; elements far smaller than the largest gradient of
 * the same tensor are measured against 1% of it (their numeric value is
 * mostly rounding). Bound: err_j < 1e-2 (observed: 1e-6 .. 6e-3 for the
 * layers), except for the convolution: conv_grad_case draws x, w, bias and
 * r on dyadic grids on which every float operation of the forward pass,
 * of L, of the difference quotient and of the backward pass is exact (the
 * proof is there), so its bound is 0: numeric and analytic agree to the
 * bit on any BLAS kernel. (With uniform random floats the rounding of the
 * ~800 outputs one input feeds, divided by a one-sided step, reached 1% on
 * OpenBLAS's Prescott kernels; no honest allowance for it was tight.) For
 * whole models a perturbation changes every
 * logit, so the rounding of L (measured <= 2 eps * sum|r * logits|,
 * eps = 2^-24) is subtracted first (allowance 8 eps sum|r * logits| /
 * denominator; raw errors without it are printed, up to 3e-2 on tiny
 * gradients). A real bug is far above the bound: wrong sign err 2, a
 * wrong or missing index, sample or channel >= 1/3; scaling every model
 * gradient by 1.02 already fails (err 0.0196), checked when the bound was
 * chosen. Softmax cross-entropy is smooth: its central-difference
 * truncation error is h^2/6 |L'''| ~ 1e-5. */
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
#include "core/linear.h"
#include "core/maxpool.h"
#include "core/model.h"
#include "core/relu.h"
#include "core/rng.h"
#include "core/softmax_xent.h"
#include "core/train.h"
#include "tests/testutil.h"

/* ---- helpers ------------------------------------------------------------ */

static int32_t *ialloc(size_t n)
{
    int32_t *p = calloc(n ? n : 1, sizeof(int32_t));
    assert_non_null(p);
    return p;
}

/* n values k * 2^-bits, k uniform over the integers of [lo 2^bits, hi 2^bits]
 * (lo and hi multiples of 2^-bits): data on which float arithmetic is exact
 * (see conv_grad_case). */
static float *grid_floats(qb_rng *r, size_t n, float lo, float hi, int bits)
{
    float *p = qb_test_falloc(n);
    const int klo = (int)ldexpf(lo, bits), khi = (int)ldexpf(hi, bits);
    for (size_t i = 0; i < n; i++)
        p[i] = ldexpf((float)(klo + (int)qb_rng_below(r, (uint32_t)(khi - klo + 1))), -bits);
    return p;
}

static void fill_nan(float *p, size_t n)
{
    for (size_t i = 0; i < n; i++) p[i] = NAN;
}

/* sum(r * y), accumulated in double. */
static double dot_r(const float *r, const float *y, size_t n)
{
    double s = 0.0;
    for (size_t i = 0; i < n; i++) s += (double)r[i] * (double)y[i];
    return s;
}

static void assert_bits_equal(const char *what, const void *a, const void *b, size_t bytes)
{
    if (memcmp(a, b, bytes) != 0) {
        const unsigned char *x = a, *y = b;
        size_t i = 0;
        while (x[i] == y[i]) i++;
        print_error("%s: not bit-identical (first difference at byte %zu, float %zu)\n", what,
                    i, i / 4);
        fail();
    }
}

/* count distinct indices in [0, n): all of them if count >= n, else a
 * random sample (partial Fisher-Yates). Returns a malloc'd array. */
static size_t *pick_indices(qb_rng *r, size_t n, size_t count, size_t *out_count)
{
    size_t *all = malloc((n ? n : 1) * sizeof *all);
    assert_non_null(all);
    for (size_t i = 0; i < n; i++) all[i] = i;
    if (count > n) count = n;
    for (size_t i = 0; i < count; i++) {
        size_t j = i + qb_rng_below(r, (uint32_t)(n - i));
        size_t t = all[i];
        all[i] = all[j];
        all[j] = t;
    }
    *out_count = count;
    return all;
}

/* ---- finite differences ------------------------------------------------- */

typedef struct fd_check {
    const char *what;
    qb_test_loss_fn fn; /* L; the signature has sig_len int32 */
    void *ctx;
    size_t sig_len;     /* 0: the function is smooth / linear, no pattern */
    float h;            /* largest step; down to h/8 near kinks */
    double tol;         /* bound on max err_j (see the top of the file) */
    double mag;         /* 0, or sum |r * y| when a perturbation changes every
                           output (whole models): sets the rounding term */
} fd_check;

#define FD_EPS (1.0 / 16777216.0) /* float's 2^-24 */

/* Compare analytic[j] with the difference quotient of fn in p[j] for
 * count sampled indices j of [0, n).
 *
 * Steps: the largest of h, h/2, h/4, h/8 for which the interval [p-h, p+h]
 * holds no kink (same signature at both ends as at p) gives the central
 * difference; if only one side [p-h, p] or [p, p+h] is clean, that
 * one-sided difference is used (equally exact on a linear piece). An
 * element whose every step crosses a kink on both sides is skipped; at
 * least half of the sampled elements, or 16, must be checked.
 *
 * With mag > 0 the rounding of L itself is allowed for: each evaluation is
 * off by ~eps * mag (measured: at most 1.5 eps * mag on lenet and
 * cnn-small), so 2 * 4 eps * mag / D (D = the denominator of the quotient)
 * is subtracted from |a - n| before the relative test. */
static void check_fd(const fd_check *c, qb_rng *rng, float *p, const float *analytic, size_t n,
                     size_t count)
{
    size_t k;
    size_t *idx = pick_indices(rng, n, count, &k);
    int32_t *sig0 = NULL, *sig = NULL;
    if (c->sig_len) {
        sig0 = ialloc(c->sig_len);
        sig = ialloc(c->sig_len);
    }
    const double l0 = c->fn(c->ctx, sig0);
    double *num = malloc((k ? k : 1) * sizeof *num), *den = malloc((k ? k : 1) * sizeof *den);
    char *used = calloc(k ? k : 1, 1);
    assert_non_null(num);
    assert_non_null(den);
    assert_non_null(used);
    size_t skipped = 0, one_sided = 0;
    double scale = 0.0;
    for (size_t t = 0; t < k; t++) {
        int kind = qb_test_fd_quotient(c->fn, c->ctx, c->sig_len, sig0, sig, l0, p, idx[t], c->h,
                                       &num[t], &den[t]);
        if (!kind) {
            skipped++;
            continue;
        }
        used[t] = 1;
        one_sided += kind == 1;
        if (fabs(num[t]) > scale) scale = fabs(num[t]);
    }
    c->fn(c->ctx, NULL); /* leave the forward state at the unperturbed point */
    double floor_ = 0.01 * scale > 1e-12 ? 0.01 * scale : 1e-12;
    double worst = 0.0, raw = 0.0, noise_units = 0.0;
    size_t worst_j = 0;
    for (size_t t = 0; t < k; t++) {
        if (!used[t]) continue;
        double a = analytic[idx[t]];
        double d = fabs(num[t]) > floor_ ? fabs(num[t]) : floor_;
        double allow = 8.0 * FD_EPS * c->mag / den[t];
        double diff = fabs(a - num[t]) - allow;
        double e = diff > 0.0 ? diff / d : 0.0;
        if (fabs(a - num[t]) / d > raw) raw = fabs(a - num[t]) / d;
        if (c->mag > 0.0 && fabs(a - num[t]) * den[t] / (2.0 * FD_EPS * c->mag) > noise_units)
            noise_units = fabs(a - num[t]) * den[t] / (2.0 * FD_EPS * c->mag);
        if (e > worst || isnan(a)) {
            worst = isnan(a) ? INFINITY : e;
            worst_j = t;
        }
    }
    size_t checked = k - skipped;
    print_message("  %-36s %4zu checked (%zu one-sided), %3zu skipped, max err %.2e (bound %.0e; "
                  "%.2e before the rounding allowance, %.2f eps*mag)\n",
                  c->what, checked, one_sided, skipped, worst, c->tol, raw, noise_units);
    if (worst > c->tol) {
        print_error("%s: element %zu: analytic %.8g numeric %.8g (err %.3g > %.3g)\n", c->what,
                    idx[worst_j], (double)analytic[idx[worst_j]], num[worst_j], worst, c->tol);
        fail();
    }
    if (2 * checked < k && checked < 16) {
        print_error("%s: only %zu of %zu elements checked: the others crossed a kink\n", c->what,
                    checked, k);
        fail();
    }
    assert_true(k == 0 || scale > 0.0); /* an all-zero gradient checks nothing */
    free(used);
    free(den);
    free(num);
    free(sig);
    free(sig0);
    free(idx);
}

/* ---- layer constructors ------------------------------------------------- */

static qb_layer conv_layer(int c, int h, int w, int oc, int k, int s, int p)
{
    qb_layer l;
    memset(&l, 0, sizeof l);
    l.kind = QB_LAYER_CONV2D;
    l.in_c = c;
    l.in_h = h;
    l.in_w = w;
    l.out_c = oc;
    l.out_h = (h + 2 * p - k) / s + 1;
    l.out_w = (w + 2 * p - k) / s + 1;
    l.k = k;
    l.stride = s;
    l.pad = p;
    l.w_len = (size_t)oc * c * k * k;
    l.b_off = l.w_len;
    l.b_len = (size_t)oc;
    return l;
}

static qb_layer pool_layer(int c, int h, int w, int k, int s)
{
    qb_layer l;
    memset(&l, 0, sizeof l);
    l.kind = QB_LAYER_MAXPOOL;
    l.in_c = l.out_c = c;
    l.in_h = h;
    l.in_w = w;
    l.out_h = (h - k) / s + 1;
    l.out_w = (w - k) / s + 1;
    l.k = k;
    l.stride = s;
    return l;
}

typedef struct conv_shape {
    int c, h, w, oc, k, s, p, b;
} conv_shape;

/* Shapes: 1x1 kernels, odd and non-square inputs, stride 2 with and
 * without a remainder, padding 0/1/2, C > 1, batch 3, and one layer whose
 * im2col does not fit the L2 chunk budget (16x20x20, k5: one image per
 * chunk, three chunks), which exercises the chunk offsets and the
 * accumulation of dw/db across chunks. The last three take conv2d.c's
 * fast paths where the generic one would not show them: a 32-channel
 * 32x32 3x3 padded layer (bands of output rows, dcol by channel groups),
 * a padded 3x3 stride-2 layer and a 1x1 stride-2 one (1x1 stride 1, the
 * pointwise path, is 4x6x6 above). */
static const conv_shape conv_shapes[] = {
    {1, 5, 5, 1, 3, 1, 0, 1},  {3, 7, 9, 4, 3, 1, 1, 3},   {2, 9, 8, 5, 3, 2, 1, 3},
    {3, 11, 11, 2, 5, 2, 0, 3}, {4, 6, 6, 3, 1, 1, 0, 2},  {2, 10, 10, 3, 3, 2, 0, 3},
    {2, 8, 7, 3, 4, 2, 1, 3},  {16, 20, 20, 32, 5, 1, 2, 3}, {32, 32, 32, 8, 3, 1, 1, 1},
    {8, 12, 13, 6, 3, 2, 1, 2}, {6, 9, 9, 5, 1, 2, 0, 3},
};
#define N_CONV_SHAPES (sizeof conv_shapes / sizeof conv_shapes[0])

/* ---- conv forward vs a direct reference --------------------------------- */

static void test_conv_forward_reference(void **state)
{
    (void)state;
    qb_rng rng;
    qb_rng_seed(&rng, 11);
    for (size_t s = 0; s < N_CONV_SHAPES; s++) {
        const conv_shape *cs = &conv_shapes[s];
        qb_layer l = conv_layer(cs->c, cs->h, cs->w, cs->oc, cs->k, cs->s, cs->p);
        size_t nx = (size_t)cs->b * qb_layer_in_size(&l), ny = (size_t)cs->b * qb_layer_out_size(&l);
        float *x = qb_test_random_floats(&rng, nx, -1, 1);
        float *w = qb_test_random_floats(&rng, l.w_len, -0.5f, 0.5f);
        float *bias = qb_test_random_floats(&rng, l.b_len, -0.5f, 0.5f);
        float *y = qb_test_falloc(ny), *work = qb_test_falloc(qb_conv2d_work_size(&l, cs->b));
        double *ref = malloc(ny * sizeof *ref), *mag = malloc(ny * sizeof *mag);
        assert_non_null(ref);
        assert_non_null(mag);
        fill_nan(y, ny);
        qb_conv2d_forward(&l, cs->b, x, w, bias, y, work);
        qb_test_layer_direct(&l, cs->b, x, w, bias, ref, mag);
        /* float GEMM vs a double sum: |error| <= K * eps * sum|terms| in the
         * worst case; 1e-5 * sum|terms| (K * eps = 2.4e-5 for K = 400) is
         * never reached by rounding in practice, while a wrong tap, channel
         * or padding offset is an error of the size of a term. */
        for (size_t i = 0; i < ny; i++) {
            double bound = 1e-5 * mag[i] + 1e-7;
            if (!(fabs((double)y[i] - ref[i]) <= bound)) {
                print_error("shape %zu output %zu: conv %.8g, direct %.8g\n", s, i, (double)y[i],
                            ref[i]);
                fail();
            }
        }
        /* Epilogues against the same reference: relu(conv) and, for even
         * or odd sizes, maxpool2x2(relu(conv)) with floor sizes. */
        qb_layer pl = pool_layer(l.out_c, l.out_h, l.out_w, 2, 2);
        if (pl.out_h >= 1 && pl.out_w >= 1) {
            qb_conv_epilogue ep = {.relu = 1, .pool = &pl};
            size_t np = (size_t)cs->b * qb_layer_out_size(&pl);
            float *yp = qb_test_falloc(np);
            int32_t *am = ialloc(np);
            qb_conv2d_forward_ex(&l, &ep, cs->b, x, w, bias, yp, am, work);
            for (size_t pi = 0; pi < np; pi++) {
                size_t plane = pi / ((size_t)pl.out_h * pl.out_w);
                size_t rem = pi % ((size_t)pl.out_h * pl.out_w);
                int py = (int)(rem / (size_t)pl.out_w), px = (int)(rem % (size_t)pl.out_w);
                double best = -INFINITY, bmag = 0.0;
                for (int dy = 0; dy < 2; dy++)
                    for (int dx = 0; dx < 2; dx++) {
                        size_t o = plane * l.out_h * l.out_w +
                                   (size_t)(2 * py + dy) * l.out_w + (size_t)(2 * px + dx);
                        double v = ref[o] > 0 ? ref[o] : 0.0;
                        if (v > best) best = v;
                        if (mag[o] > bmag) bmag = mag[o];
                    }
                if (!(fabs((double)yp[pi] - best) <= 1e-5 * bmag + 1e-7)) {
                    print_error("shape %zu pooled output %zu: %.8g, direct %.8g\n", s, pi,
                                (double)yp[pi], best);
                    fail();
                }
            }
            free(am);
            free(yp);
        }
        free(mag);
        free(ref);
        free(work);
        free(y);
        free(bias);
        free(w);
        free(x);
    }
}

/* ---- conv backward by finite differences --------------------------------- */

typedef struct conv_ctx {
    qb_layer l;
    qb_conv_epilogue ep;
    int b;
    float *x, *w, *bias, *y, *r, *work;
    int32_t *argmax;
    size_t ny;
} conv_ctx;

static double conv_loss(void *vctx, int32_t *sig)
{
    conv_ctx *c = vctx;
    qb_conv2d_forward_ex(&c->l, &c->ep, c->b, c->x, c->w, c->bias, c->y, c->argmax, c->work);
    if (sig)
        for (size_t i = 0; i < c->ny; i++)
            sig[i] = c->y[i] > 0.0f ? (c->ep.pool ? 1 + c->argmax[i] : 1) : 0;
    return dot_r(c->r, c->y, c->ny);
}

static void conv_ctx_free(conv_ctx *c)
{
    free(c->work);
    free(c->argmax);
    free(c->y);
    free(c->r);
    free(c->bias);
    free(c->w);
    free(c->x);
}

/* Gradients of L = sum(r * y) for conv (epi 0), conv+relu (1),
 * conv+relu+maxpool2x2 (2), through qb_conv2d_backward_ex (and for epi 0
 * also qb_conv2d_backward, which must agree bit for bit). nobias: the
 * layer has no bias (bias and db NULL). */
static void conv_grad_case(const conv_shape *cs, int epi, int nobias, qb_rng *rng)
{
    conv_ctx c;
    memset(&c, 0, sizeof c);
    c.l = conv_layer(cs->c, cs->h, cs->w, cs->oc, cs->k, cs->s, cs->p);
    qb_layer pl = pool_layer(c.l.out_c, c.l.out_h, c.l.out_w, 2, 2);
    if (epi == 2 && (pl.out_h < 1 || pl.out_w < 1)) return;
    c.ep.relu = epi >= 1;
    c.ep.pool = epi == 2 ? &pl : NULL;
    c.b = cs->b;
    size_t nx = (size_t)c.b * qb_layer_in_size(&c.l);
    c.ny = (size_t)c.b * (epi == 2 ? qb_layer_out_size(&pl) : qb_layer_out_size(&c.l));
    /* Exact arithmetic. x, w, bias on the grid 2^-5, r on 2^-7, steps h =
     * 2^-7 (conv alone) or 2^-8 .. 2^-11 (epilogue; the finest step 2^-hb):
     * a perturbed x or w lies on 2^-hb, every product x w on 2^-(hb + 5), and
     * every partial sum of a conv output (any order, FMA or not) is bounded
     * by K max|x| max|w| + max|bias| < 2^(19 - hb) (asserted below): fewer
     * than 2^24 units of 2^-(hb + 5), exact in float. Then every r y is exact
     * in double (units of 2^-(hb + 12), < 2^(19 - hb)), and so are L = sum(r y)
     * (ny < 2^16 terms: < 2^47 units, within double's 53 bits), the
     * difference of two L, the step (a power of two) and their quotient,
     * which on a linear piece IS the derivative (units of 2^-12, few bits).
     * The analytic gradients are exact too, whatever the BLAS kernel: dx sums
     * r w over <= OC k^2 < 2^10 outputs (units of 2^-12, |.| < 2^9), dw sums
     * r x over b OH OW < 2^11 positions (|.| < 2^11), db sums r. So numeric
     * and analytic agree to the bit: tolerance 0, no rounding allowance. */
    const int hb = epi ? 11 : 7;
    c.x = grid_floats(rng, nx, -1, 1, 5);
    c.w = grid_floats(rng, c.l.w_len, -0.5f, 0.5f, 5);
    c.bias = nobias ? NULL : grid_floats(rng, c.l.b_len, -0.5f, 0.5f, 5);
    c.r = grid_floats(rng, c.ny, -1, 1, 7);
    const double K = (double)c.l.in_c * c.l.k * c.l.k, hmax = epi ? 0x1p-8 : 0x1p-7;
    assert_true(K * (1.0 + hmax) * (0.5 + hmax) + 0.5 + hmax < ldexp(1.0, 19 - hb));
    assert_true((double)c.ny < 0x1p16 && (double)c.b * c.l.out_h * c.l.out_w < 0x1p11 &&
                (double)c.l.out_c * c.l.k * c.l.k < 0x1p10);
    c.y = qb_test_falloc(c.ny);
    c.argmax = ialloc(c.ny);
    c.work = qb_test_falloc(qb_conv2d_work_size(&c.l, c.b));
    conv_loss(&c, NULL);

    /* analytic: dw, db from zero; dx prefilled with NaN (must be overwritten) */
    float *dw = qb_test_falloc(c.l.w_len), *dx = qb_test_falloc(nx);
    float *db = nobias ? NULL : qb_test_falloc(c.l.b_len);
    fill_nan(dx, nx);
    qb_conv2d_backward_ex(&c.l, &c.ep, c.b, c.x, c.w, c.y, c.ep.pool ? c.argmax : NULL, c.r, dw,
                          db, dx, c.work);

    /* contract: dw and db accumulate (+=), dx is not needed for them */
    float *dw2 = qb_test_random_floats(rng, c.l.w_len, -1, 1), *db2 = qb_test_random_floats(rng, c.l.b_len, -1, 1);
    float *dw0 = qb_test_falloc(c.l.w_len), *db0 = qb_test_falloc(c.l.b_len);
    memcpy(dw0, dw2, c.l.w_len * sizeof(float));
    memcpy(db0, db2, c.l.b_len * sizeof(float));
    qb_conv2d_backward_ex(&c.l, &c.ep, c.b, c.x, c.w, c.y, c.ep.pool ? c.argmax : NULL, c.r, dw2,
                          nobias ? NULL : db2, NULL, c.work);
    for (size_t i = 0; i < c.l.w_len; i++)
        assert_true(fabsf(dw2[i] - dw0[i] - dw[i]) <= 1e-5f * (1.0f + fabsf(dw[i])));
    for (size_t i = 0; !nobias && i < c.l.b_len; i++)
        assert_true(fabsf(db2[i] - db0[i] - db[i]) <= 1e-5f * (1.0f + fabsf(db[i])));
    if (epi == 0 && !nobias) {
        float *dwb = qb_test_falloc(c.l.w_len), *dbb = qb_test_falloc(c.l.b_len), *dxb = qb_test_falloc(nx);
        qb_conv2d_backward(&c.l, c.b, c.x, c.w, c.r, dwb, dbb, dxb, c.work);
        assert_bits_equal("qb_conv2d_backward dw", dw, dwb, c.l.w_len * sizeof(float));
        assert_bits_equal("qb_conv2d_backward db", db, dbb, c.l.b_len * sizeof(float));
        assert_bits_equal("qb_conv2d_backward dx", dx, dxb, nx * sizeof(float));
        free(dxb);
        free(dbb);
        free(dwb);
    }

    char what[96];
    static const char *const epi_name[] = {"", "+relu", "+relu+pool", " no bias", "+relu no bias",
                                           "+relu+pool no bias"};
    const int name = epi + (nobias ? 3 : 0);
    /* conv alone is linear: h = 2^-7. With an epilogue, h from 2^-8 down to
     * 2^-11 near kinks. Tolerance 0: the arithmetic is exact (above). */
    fd_check fc = {what, conv_loss, &c, epi ? c.ny : 0, epi ? 0x1p-8f : 0x1p-7f, 0.0, 0.0};
    snprintf(what, sizeof what, "conv %dx%dx%d k%d s%d p%d%s dx", cs->c, cs->h, cs->w, cs->k,
             cs->s, cs->p, epi_name[name]);
    check_fd(&fc, rng, c.x, dx, nx, 200);
    snprintf(what, sizeof what, "conv %dx%dx%d k%d s%d p%d%s dw", cs->c, cs->h, cs->w, cs->k,
             cs->s, cs->p, epi_name[name]);
    check_fd(&fc, rng, c.w, dw, c.l.w_len, 200);
    if (!nobias) {
        snprintf(what, sizeof what, "conv %dx%dx%d k%d s%d p%d%s db", cs->c, cs->h, cs->w, cs->k,
                 cs->s, cs->p, epi_name[name]);
        check_fd(&fc, rng, c.bias, db, c.l.b_len, 64);
    }

    free(db0);
    free(dw0);
    free(db2);
    free(dw2);
    free(dx);
    free(db);
    free(dw);
    conv_ctx_free(&c);
}

static void test_conv_backward_fd(void **state)
{
    (void)state;
    qb_rng rng;
    qb_rng_seed(&rng, 12);
    for (size_t s = 0; s < N_CONV_SHAPES; s++) conv_grad_case(&conv_shapes[s], 0, 0, &rng);
}

/* A layer without bias (bias = NULL, db = NULL: ResNets' convolutions). */
static void test_conv_nobias_backward_fd(void **state)
{
    (void)state;
    qb_rng rng;
    qb_rng_seed(&rng, 15);
    for (size_t s = 0; s < N_CONV_SHAPES; s++)
        for (int epi = 0; epi < 3; epi++) conv_grad_case(&conv_shapes[s], epi, 1, &rng);
}

static void test_conv_epilogue_backward_fd(void **state)
{
    (void)state;
    qb_rng rng;
    qb_rng_seed(&rng, 13);
    for (size_t s = 0; s < N_CONV_SHAPES; s++) {
        conv_grad_case(&conv_shapes[s], 1, 0, &rng);
        conv_grad_case(&conv_shapes[s], 2, 0, &rng);
    }
}

/* The fused epilogue vs conv, relu, maxpool run separately: forward output
 * and backward dw, db, dx bit-identical (the header's promise), including
 * odd conv output sizes (the pool drops the last row/column) and a
 * multi-chunk layer. */
static void test_conv_epilogue_matches_layers(void **state)
{
    (void)state;
    qb_rng rng;
    qb_rng_seed(&rng, 14);
    static const conv_shape shapes[] = {
        {3, 9, 9, 4, 3, 1, 1, 3}, {2, 11, 10, 3, 3, 2, 0, 3}, {16, 20, 20, 32, 5, 1, 2, 3},
        {1, 28, 28, 16, 5, 1, 0, 4},
    };
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        const conv_shape *cs = &shapes[s];
        qb_layer l = conv_layer(cs->c, cs->h, cs->w, cs->oc, cs->k, cs->s, cs->p);
        qb_layer pl = pool_layer(l.out_c, l.out_h, l.out_w, 2, 2);
        const int b = cs->b;
        size_t nx = (size_t)b * qb_layer_in_size(&l), nc = (size_t)b * qb_layer_out_size(&l);
        size_t np = (size_t)b * qb_layer_out_size(&pl);
        float *x = qb_test_random_floats(&rng, nx, -1, 1);
        float *w = qb_test_random_floats(&rng, l.w_len, -0.5f, 0.5f);
        float *bias = qb_test_random_floats(&rng, l.b_len, -0.5f, 0.5f);
        float *work = qb_test_falloc(qb_conv2d_work_size(&l, b));
        /* separate layers */
        float *yc = qb_test_falloc(nc), *yr = qb_test_falloc(nc), *yp = qb_test_falloc(np);
        int32_t *amp = ialloc(np);
        qb_conv2d_forward(&l, b, x, w, bias, yc, work);
        qb_relu_forward(nc, yc, yr);
        qb_maxpool_forward(&pl, b, yr, yp, amp);
        /* fused */
        qb_conv_epilogue ep_r = {.relu = 1}, ep_rp = {.relu = 1, .pool = &pl};
        float *fr = qb_test_falloc(nc), *fp = qb_test_falloc(np);
        int32_t *amf = ialloc(np);
        qb_conv2d_forward_ex(&l, &ep_r, b, x, w, bias, fr, NULL, work);
        qb_conv2d_forward_ex(&l, &ep_rp, b, x, w, bias, fp, amf, work);
        assert_bits_equal("conv+relu forward", yr, fr, nc * sizeof(float));
        assert_bits_equal("conv+relu+pool forward", yp, fp, np * sizeof(float));
        /* argmax may differ only where the output is 0 (all four <= 0) */
        for (size_t i = 0; i < np; i++)
            if (fp[i] > 0.0f) assert_int_equal(amp[i], amf[i]);

        float *dy = qb_test_random_floats(&rng, np, -1, 1), *dyr = qb_test_random_floats(&rng, nc, -1, 1);
        float *d1 = qb_test_falloc(nc), *d2 = qb_test_falloc(nc);
        float *dw_s = qb_test_falloc(l.w_len), *db_s = qb_test_falloc(l.b_len), *dx_s = qb_test_falloc(nx);
        float *dw_f = qb_test_falloc(l.w_len), *db_f = qb_test_falloc(l.b_len), *dx_f = qb_test_falloc(nx);
        /* relu+pool */
        qb_maxpool_backward(&pl, b, dy, amp, d1);
        qb_relu_backward(nc, yr, d1, d2);
        qb_conv2d_backward(&l, b, x, w, d2, dw_s, db_s, dx_s, work);
        qb_conv2d_backward_ex(&l, &ep_rp, b, x, w, fp, amf, dy, dw_f, db_f, dx_f, work);
        assert_bits_equal("conv+relu+pool backward dw", dw_s, dw_f, l.w_len * sizeof(float));
        assert_bits_equal("conv+relu+pool backward db", db_s, db_f, l.b_len * sizeof(float));
        assert_bits_equal("conv+relu+pool backward dx", dx_s, dx_f, nx * sizeof(float));
        /* the same through an im2col cache kept from the forward pass */
        {
            float *cache = qb_test_falloc(qb_conv2d_col_size(&l, b)), *fc = qb_test_falloc(np);
            int32_t *amc = ialloc(np);
            float *dw_c = qb_test_falloc(l.w_len), *db_c = qb_test_falloc(l.b_len), *dx_c = qb_test_falloc(nx);
            qb_conv_epilogue ep_c = {.relu = 1, .pool = &pl, .col_cache = cache};
            qb_conv2d_forward_ex(&l, &ep_c, b, x, w, bias, fc, amc, work);
            assert_bits_equal("conv+relu+pool forward (col cache)", fp, fc, np * sizeof(float));
            qb_conv2d_backward_ex(&l, &ep_c, b, x, w, fc, amc, dy, dw_c, db_c, dx_c, work);
            assert_bits_equal("conv+relu+pool backward dw (col cache)", dw_s, dw_c,
                              l.w_len * sizeof(float));
            assert_bits_equal("conv+relu+pool backward db (col cache)", db_s, db_c,
                              l.b_len * sizeof(float));
            assert_bits_equal("conv+relu+pool backward dx (col cache)", dx_s, dx_c,
                              nx * sizeof(float));
            free(dx_c);
            free(db_c);
            free(dw_c);
            free(amc);
            free(fc);
            free(cache);
        }
        /* relu only */
        memset(dw_s, 0, l.w_len * sizeof(float));
        memset(db_s, 0, l.b_len * sizeof(float));
        memset(dw_f, 0, l.w_len * sizeof(float));
        memset(db_f, 0, l.b_len * sizeof(float));
        qb_relu_backward(nc, yr, dyr, d2);
        qb_conv2d_backward(&l, b, x, w, d2, dw_s, db_s, dx_s, work);
        qb_conv2d_backward_ex(&l, &ep_r, b, x, w, fr, NULL, dyr, dw_f, db_f, dx_f, work);
        assert_bits_equal("conv+relu backward dw", dw_s, dw_f, l.w_len * sizeof(float));
        assert_bits_equal("conv+relu backward db", db_s, db_f, l.b_len * sizeof(float));
        assert_bits_equal("conv+relu backward dx", dx_s, dx_f, nx * sizeof(float));

        free(dx_f);
        free(db_f);
        free(dw_f);
        free(dx_s);
        free(db_s);
        free(dw_s);
        free(d2);
        free(d1);
        free(dyr);
        free(dy);
        free(amf);
        free(fp);
        free(fr);
        free(amp);
        free(yp);
        free(yr);
        free(yc);
        free(work);
        free(bias);
        free(w);
        free(x);
    }
}

/* ---- maxpool ------------------------------------------------------------- */

typedef struct pool_ctx {
    qb_layer l;
    int b;
    float *x, *y, *r;
    int32_t *argmax;
    size_t ny;
} pool_ctx;

static double pool_loss(void *vctx, int32_t *sig)
{
    pool_ctx *c = vctx;
    qb_maxpool_forward(&c->l, c->b, c->x, c->y, c->argmax);
    if (sig) memcpy(sig, c->argmax, c->ny * sizeof *sig);
    return dot_r(c->r, c->y, c->ny);
}

static void pool_ctx_free(pool_ctx *c)
{
    free(c->argmax);
    free(c->r);
    free(c->y);
    free(c->x);
}

static void pool_case(int b, int ch, int h, int w, int k, int s, qb_rng *rng)
{
    pool_ctx c;
    memset(&c, 0, sizeof c);
    c.l = pool_layer(ch, h, w, k, s);
    c.b = b;
    size_t hw = (size_t)h * w, nx = (size_t)b * ch * hw;
    c.ny = (size_t)b * qb_layer_out_size(&c.l);
    /* every plane: a random permutation of values 0.02 apart, so no two
     * window entries are within 2h of each other: no argmax can move */
    c.x = qb_test_falloc(nx);
    for (size_t p = 0; p < (size_t)b * ch; p++) {
        size_t cnt;
        size_t *perm = pick_indices(rng, hw, hw, &cnt);
        for (size_t i = 0; i < hw; i++) c.x[p * hw + i] = -0.5f + 0.02f * (float)perm[i];
        free(perm);
    }
    c.y = qb_test_falloc(c.ny);
    c.r = qb_test_random_floats(rng, c.ny, -1, 1);
    c.argmax = ialloc(c.ny);
    pool_loss(&c, NULL);

    /* forward against a direct max over each window */
    for (size_t p = 0; p < (size_t)b * ch; p++)
        for (int oy = 0; oy < c.l.out_h; oy++)
            for (int ox = 0; ox < c.l.out_w; ox++) {
                float m = -INFINITY;
                for (int ky = 0; ky < k; ky++)
                    for (int kx = 0; kx < k; kx++) {
                        float v = c.x[p * hw + (size_t)(oy * s + ky) * w + (size_t)(ox * s + kx)];
                        if (v > m) m = v;
                    }
                size_t o = p * c.l.out_h * c.l.out_w + (size_t)oy * c.l.out_w + ox;
                assert_true(c.y[o] == m);
                assert_true(c.x[p * hw + (size_t)c.argmax[o]] == m);
            }

    float *dx = qb_test_falloc(nx);
    fill_nan(dx, nx);
    qb_maxpool_backward(&c.l, b, c.r, c.argmax, dx);
    char what[64];
    snprintf(what, sizeof what, "maxpool %dx%dx%d k%d s%d dx", ch, h, w, k, s);
    fd_check fc = {what, pool_loss, &c, c.ny, 5e-3f, 1e-2, 0.0};
    check_fd(&fc, rng, c.x, dx, nx, nx);
    free(dx);
    pool_ctx_free(&c);
}

static void test_maxpool_fd(void **state)
{
    (void)state;
    qb_rng rng;
    qb_rng_seed(&rng, 21);
    pool_case(3, 2, 8, 8, 2, 2, &rng);
    pool_case(3, 2, 7, 9, 2, 2, &rng); /* odd: last row/column dropped */
    pool_case(3, 2, 9, 7, 3, 2, &rng); /* overlapping windows: dx accumulates */
    pool_case(2, 3, 10, 11, 3, 3, &rng);
}

/* Ties: the first maximum in row-major window order wins (as PyTorch), in
 * both the 2x2 fast path and the general path. */
static void test_maxpool_ties(void **state)
{
    (void)state;
    float x[36];
    for (int i = 0; i < 36; i++) x[i] = 1.0f;
    float y[9];
    int32_t am[9];
    qb_layer l2 = pool_layer(1, 6, 6, 2, 2);
    qb_maxpool_forward(&l2, 1, x, y, am);
    for (int oy = 0; oy < 3; oy++)
        for (int ox = 0; ox < 3; ox++) assert_int_equal(am[oy * 3 + ox], 2 * oy * 6 + 2 * ox);
    qb_layer l3 = pool_layer(1, 6, 6, 3, 3);
    qb_maxpool_forward(&l3, 1, x, y, am);
    for (int oy = 0; oy < 2; oy++)
        for (int ox = 0; ox < 2; ox++) assert_int_equal(am[oy * 2 + ox], 3 * oy * 6 + 3 * ox);
    /* a tie between the 2nd and 4th entry: the 2nd wins */
    float z[4] = {0.0f, 2.0f, 1.0f, 2.0f};
    qb_layer l1 = pool_layer(1, 2, 2, 2, 2);
    qb_maxpool_forward(&l1, 1, z, y, am);
    assert_int_equal(am[0], 1);
    assert_true(y[0] == 2.0f);
}

/* ---- relu ---------------------------------------------------------------- */

typedef struct relu_ctx {
    size_t n;
    float *x, *y, *r;
} relu_ctx;

static double relu_loss(void *vctx, int32_t *sig)
{
    relu_ctx *c = vctx;
    qb_relu_forward(c->n, c->x, c->y);
    if (sig)
        for (size_t i = 0; i < c->n; i++) sig[i] = c->y[i] > 0.0f;
    return dot_r(c->r, c->y, c->n);
}

static void test_relu_fd(void **state)
{
    (void)state;
    qb_rng rng;
    qb_rng_seed(&rng, 31);
    relu_ctx c;
    c.n = 301;
    c.x = qb_test_falloc(c.n);
    /* |x| >= 0.05 > h: no element crosses 0 */
    for (size_t i = 0; i < c.n; i++) {
        float v = qb_rng_uniform(&rng) * 0.95f + 0.05f;
        c.x[i] = qb_rng_uniform(&rng) < 0.5f ? -v : v;
    }
    c.y = qb_test_falloc(c.n);
    c.r = qb_test_random_floats(&rng, c.n, -1, 1);
    relu_loss(&c, NULL);
    for (size_t i = 0; i < c.n; i++) assert_true(c.y[i] == (c.x[i] > 0 ? c.x[i] : 0.0f));
    float *dx = qb_test_falloc(c.n);
    fill_nan(dx, c.n);
    qb_relu_backward(c.n, c.y, c.r, dx);
    fd_check fc = {"relu dx", relu_loss, &c, c.n, 1e-2f, 1e-2, 0.0};
    check_fd(&fc, &rng, c.x, dx, c.n, c.n);
    /* dx may alias dy */
    float *d = qb_test_falloc(c.n);
    memcpy(d, c.r, c.n * sizeof(float));
    qb_relu_backward(c.n, c.y, d, d);
    assert_bits_equal("relu backward in place", d, dx, c.n * sizeof(float));
    free(d);
    free(dx);
    free(c.r);
    free(c.y);
    free(c.x);
}

/* ---- linear -------------------------------------------------------------- */

typedef struct linear_ctx {
    int b, in, out;
    float *x, *w, *bias, *y, *r;
} linear_ctx;

static double linear_loss(void *vctx, int32_t *sig)
{
    (void)sig;
    linear_ctx *c = vctx;
    qb_linear_forward(c->b, c->in, c->out, c->x, c->w, c->bias, c->y);
    return dot_r(c->r, c->y, (size_t)c->b * c->out);
}

static void linear_case(int b, int in, int out, qb_rng *rng)
{
    linear_ctx c = {b, in, out, NULL, NULL, NULL, NULL, NULL};
    size_t nx = (size_t)b * in, nw = (size_t)out * in, ny = (size_t)b * out;
    c.x = qb_test_random_floats(rng, nx, -1, 1);
    c.w = qb_test_random_floats(rng, nw, -0.5f, 0.5f);
    c.bias = qb_test_random_floats(rng, (size_t)out, -0.5f, 0.5f);
    c.y = qb_test_falloc(ny);
    c.r = qb_test_random_floats(rng, ny, -1, 1);
    linear_loss(&c, NULL);
    /* forward against the definition */
    for (int i = 0; i < b; i++)
        for (int o = 0; o < out; o++) {
            double s = c.bias[o], a = fabs((double)c.bias[o]);
            for (int j = 0; j < in; j++) {
                double t = (double)c.w[(size_t)o * in + j] * c.x[(size_t)i * in + j];
                s += t;
                a += fabs(t);
            }
            assert_true(fabs(c.y[(size_t)i * out + o] - s) <= 1e-5 * a + 1e-7);
        }
    float *dw = qb_test_falloc(nw), *db = qb_test_falloc((size_t)out), *dx = qb_test_falloc(nx);
    fill_nan(dx, nx);
    qb_linear_backward(b, in, out, c.x, c.w, c.r, dw, db, dx);
    /* accumulation: a second call with dx NULL doubles dw and db */
    float *dw2 = qb_test_falloc(nw), *db2 = qb_test_falloc((size_t)out);
    memcpy(dw2, dw, nw * sizeof(float));
    memcpy(db2, db, (size_t)out * sizeof(float));
    qb_linear_backward(b, in, out, c.x, c.w, c.r, dw2, db2, NULL);
    for (size_t i = 0; i < nw; i++) assert_true(fabsf(dw2[i] - 2.0f * dw[i]) <= 1e-5f * (1.0f + fabsf(dw[i])));
    for (int i = 0; i < out; i++) assert_true(fabsf(db2[i] - 2.0f * db[i]) <= 1e-5f * (1.0f + fabsf(db[i])));

    char what[64];
    fd_check fc = {what, linear_loss, &c, 0, 1e-2f, 1e-2, 0.0};
    snprintf(what, sizeof what, "linear %d->%d b%d dx", in, out, b);
    check_fd(&fc, rng, c.x, dx, nx, 200);
    snprintf(what, sizeof what, "linear %d->%d b%d dw", in, out, b);
    check_fd(&fc, rng, c.w, dw, nw, 200);
    snprintf(what, sizeof what, "linear %d->%d b%d db", in, out, b);
    check_fd(&fc, rng, c.bias, db, (size_t)out, 64);
    free(db2);
    free(dw2);
    free(dx);
    free(db);
    free(dw);
    free(c.r);
    free(c.y);
    free(c.bias);
    free(c.w);
    free(c.x);
}

static void test_linear_fd(void **state)
{
    (void)state;
    qb_rng rng;
    qb_rng_seed(&rng, 41);
    linear_case(3, 7, 5, &rng);
    linear_case(4, 33, 17, &rng);
    linear_case(1, 1, 1, &rng);
}

/* ---- softmax cross-entropy ----------------------------------------------- */

typedef struct xent_ctx {
    int b, classes;
    float *z;
    const uint8_t *labels;
} xent_ctx;

static double xent_loss(void *vctx, int32_t *sig)
{
    (void)sig;
    xent_ctx *c = vctx;
    return qb_softmax_xent(c->b, c->classes, c->z, c->labels, NULL);
}

static void test_softmax_xent(void **state)
{
    (void)state;
    qb_rng rng;
    qb_rng_seed(&rng, 51);
    const int b = 3, classes = 5;
    const uint8_t labels[3] = {0, 4, 2};
    xent_ctx c = {b, classes, qb_test_random_floats(&rng, (size_t)b * classes, -3, 3), labels};
    float *dz = qb_test_falloc((size_t)b * classes);
    float loss = qb_softmax_xent(b, classes, c.z, labels, dz);
    /* the loss against log-sum-exp in double */
    double ref = 0.0;
    for (int i = 0; i < b; i++) {
        double s = 0.0;
        for (int k = 0; k < classes; k++) s += exp((double)c.z[i * classes + k]);
        ref += log(s) - c.z[i * classes + labels[i]];
    }
    ref /= b;
    assert_true(fabs((double)loss - ref) <= 1e-6 * fabs(ref));
    /* probabilities and the gradient (softmax - onehot) / b */
    float *pr = qb_test_falloc((size_t)b * classes);
    qb_softmax(b, classes, c.z, pr);
    for (int i = 0; i < b; i++) {
        double sp = 0.0, sd = 0.0;
        for (int k = 0; k < classes; k++) {
            float want = (pr[i * classes + k] - (k == labels[i] ? 1.0f : 0.0f)) / (float)b;
            assert_true(fabsf(dz[i * classes + k] - want) <= 1e-6f);
            sp += pr[i * classes + k];
            sd += dz[i * classes + k];
        }
        assert_true(fabs(sp - 1.0) <= 1e-6);
        assert_true(fabs(sd) <= 1e-6);
    }
    /* the loss is smooth: h = 1e-2, truncation h^2/6 |L'''| ~ 1e-5 */
    fd_check fc = {"softmax_xent dlogits (mean loss)", xent_loss, &c, 0, 1e-2f, 1e-2, 0.0};
    check_fd(&fc, &rng, c.z, dz, (size_t)b * classes, (size_t)b * classes);

    /* numerically stable for huge logits: finite loss, rows of dz sum to 0 */
    float big[6] = {1e4f, -1e4f, 3e4f, 88.0f, 89.0f, -200.0f};
    const uint8_t lb[2] = {1, 2};
    float dbig[6];
    float lbig = qb_softmax_xent(2, 3, big, lb, dbig);
    assert_true(isfinite(lbig));
    /* row 0: lse = 3e4, loss 3e4 - (-1e4); row 1: lse = 89 + log(1 + e^-1), loss lse + 200 */
    double want_big = (4e4 + 289.0 + log(1.0 + exp(-1.0))) / 2.0;
    assert_true(fabs((double)lbig - want_big) <= 1e-6 * want_big);
    for (int i = 0; i < 6; i++) assert_true(isfinite(dbig[i]));
    assert_true(fabsf(dbig[0] + dbig[1] + dbig[2]) < 1e-6f);
    assert_true(fabsf(dbig[3] + dbig[4] + dbig[5]) < 1e-6f);
    qb_softmax(2, 3, big, pr);
    for (int i = 0; i < 6; i++) assert_true(isfinite(pr[i]));
    free(pr);
    free(dz);
    free(c.z);
}

/* ---- whole models -------------------------------------------------------- */

/* qb_model_backward (default, fused workspace) against finite differences
 * of L = sum(r * logits) for sampled weights and biases of every layer and
 * sampled input elements.
 *
 * The weights are PyTorch's default init scaled by sqrt(6) (Kaiming
 * uniform for ReLU): with the default init the activations shrink ~2x per
 * layer, the first layer's gradients are ~1e-5 and a float forward's
 * rounding (~1e-7 of the logits) is then a percent of a difference
 * quotient. With the scaling the signal is 1e2..1e4 x the rounding. */
static void model_fd_case(const char *arch, int ch, int h, int w, int b, uint64_t seed)
{
    qb_error err;
    qb_model m;
    assert_int_equal(qb_model_build(&m, arch, ch, h, w, 10, &err), 0);
    qb_model_init_params(&m, seed);
    for (int i = 0; i < m.n_layers; i++)
        for (size_t j = 0; j < m.layers[i].w_len; j++)
            m.params[m.layers[i].w_off + j] *= 2.4494897f;
    qb_rng rng;
    qb_rng_seed(&rng, seed);
    size_t nx = (size_t)b * ch * h * w;
    float *x = qb_test_random_floats(&rng, nx, 0, 1);
    float *r = qb_test_random_floats(&rng, (size_t)b * m.classes, -1, 1);

    qb_model_ws ws;
    qb_model_ws_init(&ws, &m, b);
    float *grads = qb_test_falloc(m.n_params), *dx = qb_test_falloc(nx);
    fill_nan(dx, nx);
    qb_model_forward(&m, &ws, x, b, 1);
    qb_model_backward(&m, &ws, r, b, grads, dx);

    /* L = sum(r * logits) with the region signature (tests/testutil.h),
     * which makes the central difference exact where it is equal at
     * p - h, p and p + h */
    qb_test_fd_model c;
    qb_test_fd_model_init(&c, &m, x, r, b);
    char what[96];
    fd_check fc = {what, qb_test_fd_model_loss, &c, qb_test_region_sig_len(&m, b), 1e-2f, 1e-2,
                   qb_test_fd_model_mag(&c)};
    for (int i = 0; i < m.n_layers; i++) {
        const qb_layer *l = &m.layers[i];
        if (l->w_len == 0) continue;
        snprintf(what, sizeof what, "%s layer %d (%s) weight", arch, i, qb_layer_kind_name(l->kind));
        check_fd(&fc, &rng, m.params + l->w_off, grads + l->w_off, l->w_len, 64);
        snprintf(what, sizeof what, "%s layer %d (%s) bias", arch, i, qb_layer_kind_name(l->kind));
        check_fd(&fc, &rng, m.params + l->b_off, grads + l->b_off, l->b_len, 16);
    }
    snprintf(what, sizeof what, "%s input dx", arch);
    check_fd(&fc, &rng, x, dx, nx, 160);

    qb_test_fd_model_free(&c);
    qb_model_ws_free(&ws);
    free(dx);
    free(grads);
    free(r);
    free(x);
    qb_model_free(&m);
}

static void test_model_lenet_fd(void **state)
{
    (void)state;
    model_fd_case("lenet", 1, 28, 28, 2, 61);
}

static void test_model_cnn_small_fd(void **state)
{
    (void)state;
    /* 3x8x8 still runs every layer (padding in each conv, both pools, the
     * 256-wide flatten); larger inputs have so many ReLU/argmax kinks per
     * channel that most bias perturbations cross one at every step */
    model_fd_case("cnn-small", 3, 8, 8, 2, 62);
}

/* Fused (default) vs unfused workspaces: logits, every parameter gradient
 * and dx bit-identical; inference forward equals training forward. */
static void fused_case(const char *arch, int ch, int h, int w, int b, uint64_t seed)
{
    qb_error err;
    qb_model m;
    assert_int_equal(qb_model_build(&m, arch, ch, h, w, 10, &err), 0);
    qb_model_init_params(&m, seed);
    qb_rng rng;
    qb_rng_seed(&rng, seed);
    size_t nx = (size_t)b * ch * h * w, nl = (size_t)b * m.classes;
    float *x = qb_test_random_floats(&rng, nx, 0, 1);
    float *dl = qb_test_random_floats(&rng, nl, -1, 1);
    qb_model_ws wf, wu;
    qb_model_ws_init(&wf, &m, b);
    qb_model_ws_init(&wu, &m, b);
    qb_model_ws_set_fused(&wu, 0);
    float *lf = qb_test_falloc(nl), *lu = qb_test_falloc(nl), *li = qb_test_falloc(nl);
    float *gf = qb_test_falloc(m.n_params), *gu = qb_test_falloc(m.n_params);
    float *dxf = qb_test_falloc(nx), *dxu = qb_test_falloc(nx);
    memcpy(li, qb_model_forward(&m, &wf, x, b, 0), nl * sizeof(float));
    memcpy(lf, qb_model_forward(&m, &wf, x, b, 1), nl * sizeof(float));
    memcpy(lu, qb_model_forward(&m, &wu, x, b, 1), nl * sizeof(float));
    char what[96];
    snprintf(what, sizeof what, "%s %dx%dx%d logits fused/unfused", arch, ch, h, w);
    assert_bits_equal(what, lf, lu, nl * sizeof(float));
    snprintf(what, sizeof what, "%s %dx%dx%d logits inference/training", arch, ch, h, w);
    assert_bits_equal(what, lf, li, nl * sizeof(float));
    qb_model_backward(&m, &wf, dl, b, gf, dxf);
    qb_model_backward(&m, &wu, dl, b, gu, dxu);
    for (int i = 0; i < m.n_layers; i++) {
        const qb_layer *l = &m.layers[i];
        if (l->w_len == 0) continue;
        snprintf(what, sizeof what, "%s layer %d weight grads fused/unfused", arch, i);
        assert_bits_equal(what, gf + l->w_off, gu + l->w_off, l->w_len * sizeof(float));
        snprintf(what, sizeof what, "%s layer %d bias grads fused/unfused", arch, i);
        assert_bits_equal(what, gf + l->b_off, gu + l->b_off, l->b_len * sizeof(float));
    }
    snprintf(what, sizeof what, "%s dx fused/unfused", arch);
    assert_bits_equal(what, dxf, dxu, nx * sizeof(float));
    /* input gradients only (grads NULL): the same dx, both workspaces */
    float *dxn = qb_test_falloc(nx);
    qb_model_forward(&m, &wf, x, b, 1);
    qb_model_backward(&m, &wf, dl, b, NULL, dxn);
    snprintf(what, sizeof what, "%s dx without parameter gradients (fused)", arch);
    assert_bits_equal(what, dxf, dxn, nx * sizeof(float));
    qb_model_forward(&m, &wu, x, b, 1);
    qb_model_backward(&m, &wu, dl, b, NULL, dxn);
    snprintf(what, sizeof what, "%s dx without parameter gradients (unfused)", arch);
    assert_bits_equal(what, dxf, dxn, nx * sizeof(float));
    free(dxn);
    /* the gradients are not trivially zero */
    size_t nonzero = 0;
    for (size_t i = 0; i < m.n_params; i++) nonzero += gf[i] != 0.0f;
    assert_true(nonzero > m.n_params / 4);
    free(dxu);
    free(dxf);
    free(gu);
    free(gf);
    free(li);
    free(lu);
    free(lf);
    qb_model_ws_free(&wu);
    qb_model_ws_free(&wf);
    free(dl);
    free(x);
    qb_model_free(&m);
}

static void test_model_fused_bit_identical(void **state)
{
    (void)state;
    fused_case("lenet", 1, 28, 28, 5, 71);
    fused_case("lenet", 1, 32, 30, 3, 72);    /* conv outputs 28x26, 10x9: odd pool input */
    fused_case("cnn-small", 3, 32, 32, 3, 73);
    fused_case("cnn-small", 3, 17, 15, 4, 74); /* odd sizes: pools drop a row/column */
}

/* The pooled-row kernel chosen for this CPU (AVX-512 where available)
 * against the scalar reference: identical values and argmax on every
 * width 1..40 (tails of the 16-lane loop), with ties and negative values
 * on purpose (values from a 5-level grid), with and without ReLU. */
static void test_pool_rows_simd_vs_reference(void **state)
{
    (void)state;
    qb_rng rng;
    qb_rng_seed(&rng, 77);
    for (int PW = 1; PW <= 40; PW++)
        for (int relu = 0; relu <= 1; relu++) {
            int OW = 2 * PW + (PW % 3 == 0); /* odd OW too: last column unused */
            float r0[96], r1[96], y_ref[48], y_simd[48];
            int32_t a_ref[48], a_simd[48];
            for (int i = 0; i < OW; i++) {
                r0[i] = (float)((int)qb_rng_below(&rng, 5) - 2) * 0.5f;
                r1[i] = (float)((int)qb_rng_below(&rng, 5) - 2) * 0.5f;
            }
            float bias = (float)((int)qb_rng_below(&rng, 3) - 1) * 0.25f;
            int32_t base = (int32_t)qb_rng_below(&rng, 1000);
            qb_conv2d_pool_rows(0, r0, r1, bias, relu, PW, OW, base, y_ref, a_ref);
            qb_conv2d_pool_rows(1, r0, r1, bias, relu, PW, OW, base, y_simd, a_simd);
            assert_memory_equal(y_ref, y_simd, sizeof(float) * PW);
            assert_memory_equal(a_ref, a_simd, sizeof(int32_t) * PW);
            /* and the reference itself against the definition */
            for (int px = 0; px < PW; px++) {
                float v[4] = {r0[2 * px] + bias, r0[2 * px + 1] + bias, r1[2 * px] + bias,
                              r1[2 * px + 1] + bias};
                int32_t off[4] = {0, 1, OW, OW + 1};
                int best = 0;
                for (int k = 1; k < 4; k++)
                    if (v[k] > v[best]) best = k;
                float m = relu && v[best] < 0.0f ? 0.0f : v[best];
                assert_true(y_ref[px] == m);
                assert_int_equal(a_ref[px], base + 2 * px + off[best]);
            }
        }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_rows_simd_vs_reference),
        cmocka_unit_test(test_conv_forward_reference),
        cmocka_unit_test(test_conv_backward_fd),
        cmocka_unit_test(test_conv_epilogue_backward_fd),
        cmocka_unit_test(test_conv_nobias_backward_fd),
        cmocka_unit_test(test_conv_epilogue_matches_layers),
        cmocka_unit_test(test_maxpool_fd),
        cmocka_unit_test(test_maxpool_ties),
        cmocka_unit_test(test_relu_fd),
        cmocka_unit_test(test_linear_fd),
        cmocka_unit_test(test_softmax_xent),
        cmocka_unit_test(test_model_lenet_fd),
        cmocka_unit_test(test_model_cnn_small_fd),
        cmocka_unit_test(test_model_fused_bit_identical),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
