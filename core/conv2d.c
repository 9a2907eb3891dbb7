#include "core/conv2d.h"

#include <stdlib.h>
#include <string.h>

#include "core/gemm_f32.h"
#include "core/simd.h"

/* Chunk budget: im2col (K x N) plus the GEMM output (OC x N) of one chunk,
 * 512 KiB: they stay in L2 between im2col, the GEMM and the scatter, and
 * each GEMM gets several images (its per-call costs amortised). The chunk
 * never changes a bit: a chunk boundary only stores the weight gradient's
 * running sums and reloads them (core/gemm_f32.h). */
#define QB_CONV_CHUNK_FLOATS (128 * 1024)

static int conv_chunk(const qb_layer *l, int b)
{
    size_t k = (size_t)l->in_c * l->k * l->k;
    size_t per_image = (k + (size_t)l->out_c) * l->out_h * l->out_w;
    size_t nb = QB_CONV_CHUNK_FLOATS / (per_image ? per_image : 1);
    if (nb < 1) nb = 1;
    if (nb > (size_t)b) nb = (size_t)b;
    return (int)nb;
}

size_t qb_conv2d_col_size(const qb_layer *l, int b)
{
    return (size_t)b * l->in_c * l->k * l->k * l->out_h * l->out_w;
}

size_t qb_conv2d_work_size(const qb_layer *l, int b)
{
    size_t k = (size_t)l->in_c * l->k * l->k;
    size_t n = (size_t)conv_chunk(l, b) * l->out_h * l->out_w;
    return (k + (size_t)l->out_c) * n;
}

/* Output columns [lo, hi) whose input column ox*S - P + kx lies in [0, W). */
static void valid_cols(const qb_layer *l, int kx, int *lo, int *hi)
{
    int a = 0, b = l->out_w;
    while (a < b && a * l->stride - l->pad + kx < 0) a++;
    while (b > a && (b - 1) * l->stride - l->pad + kx >= l->in_w) b--;
    *lo = a;
    *hi = b;
}

/* Copy n floats: 8-wide constant-size moves (one vector each) while they
 * fit, then the tail. Rows here are short (8, 24, 32 floats): a memcpy
 * call per row costs more than the copy. */
static inline void copy_row(float *dst, const float *src, int n)
{
    int i = 0;
    for (; i + 8 <= n; i += 8) memcpy(dst + i, src + i, 8 * sizeof(float));
    for (; i < n; i++) dst[i] = src[i];
}

/* dst[0..n) += src[0..n), 8 at a time as copy_row. */
static inline void add_row(float *dst, const float *src, int n)
{
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        float t[8], u[8];
        memcpy(t, dst + i, sizeof t);
        memcpy(u, src + i, sizeof u);
        for (int j = 0; j < 8; j++) t[j] += u[j];
        memcpy(dst + i, t, sizeof t);
    }
    for (; i < n; i++) dst[i] += src[i];
}

/* The stride-1, unpadded case of both directions: every window is inside
 * the image, so each row of a window is a plain shifted run (LeNet's case,
 * and the hot path of training). Column row (c, ky, kx), image i, output
 * row oy <-> image (i, c) row oy + ky from column kx. to_col: src is the
 * image (nb, C, H, W), dst the columns (C*K*K, nb*OH*OW), copied; else src
 * is the columns, added into dst, the image, in the order i, c, ky, kx, oy.
 * Inlined with a constant to_col into qb_im2col / qb_col2im. */
static inline void unpadded_windows(const qb_layer *l, int nb, const float *src, float *dst,
                                    int to_col)
{
    const int C = l->in_c, H = l->in_h, W = l->in_w, K = l->k;
    const int OH = l->out_h, OW = l->out_w;
    const size_t ohw = (size_t)OH * OW, n = (size_t)nb * ohw;
    for (int i = 0; i < nb; i++)
        for (int c = 0; c < C; c++)
            for (int ky = 0; ky < K; ky++)
                for (int kx = 0; kx < K; kx++) {
                    size_t co = ((size_t)(c * K + ky) * K + kx) * n + (size_t)i * ohw;
                    size_t xo = ((size_t)i * C + c) * H * W + (size_t)ky * W + kx;
                    for (int oy = 0; oy < OH; oy++) {
                        size_t cr = co + (size_t)oy * OW, xr = xo + (size_t)oy * W;
                        if (to_col)
                            copy_row(dst + cr, src + xr, OW);
                        else
                            add_row(dst + xr, src + cr, OW);
                    }
                }
}

/* Sum of x[0..n) in a fixed order that vectorises: 16 running partial sums
 * (lane j takes x[j], x[j+16], ...), combined pairwise, then the tail. The
 * order depends only on n, so every SIMD clone gives the same bits. */
static inline float sum_fixed(const float *x, size_t n)
{
    float acc[16] = {0};
    size_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int j = 0; j < 16; j++) acc[j] += x[i + j];
    for (int w = 8; w >= 1; w /= 2)
        for (int j = 0; j < w; j++) acc[j] += acc[j + w];
    float s = acc[0];
    for (; i < n; i++) s += x[i];
    return s;
}

QB_CLONES
void qb_im2col(const qb_layer *l, int nb, const float *x, float *col)
{
    const int C = l->in_c, H = l->in_h, W = l->in_w, K = l->k, S = l->stride, P = l->pad;
    const int OH = l->out_h, OW = l->out_w;
    const size_t ohw = (size_t)OH * OW, n = (size_t)nb * ohw;
    if (S == 1 && P == 0) {
        unpadded_windows(l, nb, x, col, 1);
        return;
    }
    for (int c = 0; c < C; c++)
        for (int ky = 0; ky < K; ky++)
            for (int kx = 0; kx < K; kx++) {
                float *row = col + ((size_t)(c * K + ky) * K + kx) * n;
                int lo, hi;
                valid_cols(l, kx, &lo, &hi);
                for (int i = 0; i < nb; i++) {
                    const float *plane = x + ((size_t)i * C + c) * H * W;
                    float *out = row + (size_t)i * ohw;
                    for (int oy = 0; oy < OH; oy++, out += OW) {
                        int iy = oy * S - P + ky;
                        if (iy < 0 || iy >= H) {
                            for (int ox = 0; ox < OW; ox++) out[ox] = 0.0f;
                            continue;
                        }
                        const float *src = plane + (size_t)iy * W - P + kx;
                        for (int ox = 0; ox < lo; ox++) out[ox] = 0.0f;
                        if (S == 1)
                            copy_row(out + lo, src + lo, hi - lo);
                        else
                            for (int ox = lo; ox < hi; ox++) out[ox] = src[ox * S];
                        for (int ox = hi; ox < OW; ox++) out[ox] = 0.0f;
                    }
                }
            }
}

QB_CLONES
void qb_col2im(const qb_layer *l, int nb, const float *dcol, float *dx)
{
    const int C = l->in_c, H = l->in_h, W = l->in_w, K = l->k, S = l->stride, P = l->pad;
    const int OH = l->out_h, OW = l->out_w;
    const size_t ohw = (size_t)OH * OW, n = (size_t)nb * ohw;
    memset(dx, 0, sizeof(float) * (size_t)nb * C * H * W);
    if (S == 1 && P == 0) {
        unpadded_windows(l, nb, dcol, dx, 0);
        return;
    }
    for (int c = 0; c < C; c++)
        for (int ky = 0; ky < K; ky++)
            for (int kx = 0; kx < K; kx++) {
                const float *row = dcol + ((size_t)(c * K + ky) * K + kx) * n;
                int lo, hi;
                valid_cols(l, kx, &lo, &hi);
                for (int i = 0; i < nb; i++) {
                    float *plane = dx + ((size_t)i * C + c) * H * W;
                    const float *in = row + (size_t)i * ohw;
                    for (int oy = 0; oy < OH; oy++, in += OW) {
                        int iy = oy * S - P + ky;
                        if (iy < 0 || iy >= H) continue;
                        float *dst = plane + (size_t)iy * W - P + kx;
                        if (S == 1)
                            add_row(dst + lo, in + lo, hi - lo);
                        else
                            for (int ox = lo; ox < hi; ox++) dst[ox * S] += in[ox];
                    }
                }
            }
}

/* ---- epilogues: GEMM output (OC, n) <-> NCHW ----------------------------- */

/* y[i] (OC, OH*OW) = tmp[:, i] + bias, optionally ReLU. */
QB_CLONES
static void scatter_plain(int OC, size_t ohw, size_t n, int nb, int relu, const float *tmp,
                          const float *bias, float *y)
{
    for (int i = 0; i < nb; i++)
        for (int oc = 0; oc < OC; oc++) {
            const float *src = tmp + (size_t)oc * n + (size_t)i * ohw;
            float *dst = y + ((size_t)i * OC + oc) * ohw;
            const float bv = bias[oc];
            if (relu)
                for (size_t p = 0; p < ohw; p++) {
                    float v = src[p] + bv;
                    dst[p] = v > 0.0f ? v : 0.0f;
                }
            else
                for (size_t p = 0; p < ohw; p++) dst[p] = src[p] + bv;
        }
}

/* One pooled row: dst[px] = relu?(max of the 2x2 window at (2py, 2px) of
 * r0/r1 (+ bias)), am[px] = base + its offset in the OH*OW plane. The
 * window is reduced as a tree, (v0 v1) (v2 v3) then the pair, with strict
 * ">" so the first maximum in row-major order wins (PyTorch's choice). This
 * scalar version is the reference for the AVX-512 one. */
static void pool_row_ref(const float *r0, const float *r1, float bv, int relu, int PW, int OW,
                         int32_t base, float *dst, int32_t *am)
{
    for (int px = 0; px < PW; px++) {
        int ix = 2 * px;
        float v0 = r0[ix] + bv, v1 = r0[ix + 1] + bv, v2 = r1[ix] + bv, v3 = r1[ix + 1] + bv;
        int k0 = v1 > v0, k1 = v3 > v2;
        float h0 = k0 ? v1 : v0, h1 = k1 ? v3 : v2;
        int32_t i0 = k0, i1 = OW + k1;
        int k2 = h1 > h0;
        float m = k2 ? h1 : h0;
        if (relu) m = m > 0.0f ? m : 0.0f;
        dst[px] = m;
        if (am) am[px] = base + ix + (k2 ? i1 : i0);
    }
}

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
__attribute__((target("avx512f")))
static void pool_row_avx512(const float *r0, const float *r1, float bv, int relu, int PW, int OW,
                            int32_t base, float *dst, int32_t *am)
{
    const __m512i even = _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    const __m512i odd = _mm512_add_epi32(even, _mm512_set1_epi32(1));
    const __m512 vb = _mm512_set1_ps(bv), zero = _mm512_setzero_ps();
    const __m512i one = _mm512_set1_epi32(1), vow = _mm512_set1_epi32(OW);
    const __m512i lane2 = _mm512_add_epi32(even, _mm512_set1_epi32(base));
    for (int px = 0; px < PW; px += 16) {
        int cnt = PW - px < 16 ? PW - px : 16;
        __mmask16 m_out = (__mmask16)((1u << cnt) - 1);
        __mmask16 m_lo = (__mmask16)(cnt >= 8 ? 0xFFFFu : (1u << (2 * cnt)) - 1);
        __mmask16 m_hi = (__mmask16)(cnt > 8 ? (1u << (2 * cnt - 16)) - 1 : 0);
        const float *a = r0 + 2 * px, *b = r1 + 2 * px;
        __m512 a_lo = _mm512_maskz_loadu_ps(m_lo, a), a_hi = _mm512_maskz_loadu_ps(m_hi, a + 16);
        __m512 b_lo = _mm512_maskz_loadu_ps(m_lo, b), b_hi = _mm512_maskz_loadu_ps(m_hi, b + 16);
        __m512 v0 = _mm512_add_ps(_mm512_permutex2var_ps(a_lo, even, a_hi), vb);
        __m512 v1 = _mm512_add_ps(_mm512_permutex2var_ps(a_lo, odd, a_hi), vb);
        __m512 v2 = _mm512_add_ps(_mm512_permutex2var_ps(b_lo, even, b_hi), vb);
        __m512 v3 = _mm512_add_ps(_mm512_permutex2var_ps(b_lo, odd, b_hi), vb);
        __mmask16 k0 = _mm512_cmp_ps_mask(v1, v0, _CMP_GT_OQ);
        __mmask16 k1 = _mm512_cmp_ps_mask(v3, v2, _CMP_GT_OQ);
        __m512 h0 = _mm512_mask_blend_ps(k0, v0, v1), h1 = _mm512_mask_blend_ps(k1, v2, v3);
        __m512i i0 = _mm512_maskz_mov_epi32(k0, one);
        __m512i i1 = _mm512_mask_add_epi32(vow, k1, vow, one);
        __mmask16 k2 = _mm512_cmp_ps_mask(h1, h0, _CMP_GT_OQ);
        __m512 m = _mm512_mask_blend_ps(k2, h0, h1);
        if (relu) m = _mm512_max_ps(m, zero); /* m > 0 ? m : 0, as the reference */
        _mm512_mask_storeu_ps(dst + px, m_out, m);
        if (am) {
            __m512i idx = _mm512_mask_blend_epi32(k2, i0, i1);
            idx = _mm512_add_epi32(idx, _mm512_add_epi32(lane2, _mm512_set1_epi32(2 * px)));
            _mm512_mask_storeu_epi32(am + px, m_out, idx);
        }
    }
}
#endif

typedef void (*pool_row_fn)(const float *, const float *, float, int, int, int, int32_t, float *,
                            int32_t *);

/* The pooled-row kernel for this CPU, chosen once at run time. Setting
 * QBLIND_SCALAR=1 in the environment forces the reference. */
static pool_row_fn pool_row_kernel(void)
{
    static pool_row_fn fn;
    if (!fn) {
        pool_row_fn f = pool_row_ref;
#if defined(__x86_64__) && defined(__GNUC__)
        const char *force = getenv("QBLIND_SCALAR");
        if (!(force && *force == '1') && __builtin_cpu_supports("avx512f")) f = pool_row_avx512;
#endif
        fn = f;
    }
    return fn;
}

void qb_conv2d_pool_rows(int simd, const float *r0, const float *r1, float bv, int relu, int PW,
                         int OW, int32_t base, float *dst, int32_t *am)
{
    pool_row_fn f = simd ? pool_row_kernel() : pool_row_ref;
    f(r0, r1, bv, relu, PW, OW, base, dst, am);
}

/* y[i] (OC, OH/2, OW/2) = relu?(maxpool2x2(tmp[:, i] + bias)) with argmax
 * in the OH*OW plane: the same choices as the separate layers. */
static void scatter_pool(int OC, int OH, int OW, size_t n, int nb, int relu, const float *tmp,
                         const float *bias, float *y, int32_t *argmax)
{
    const int PH = OH / 2, PW = OW / 2;
    const size_t ohw = (size_t)OH * OW, phw = (size_t)PH * PW;
    pool_row_fn row = pool_row_kernel();
    for (int i = 0; i < nb; i++)
        for (int oc = 0; oc < OC; oc++) {
            const float *src = tmp + (size_t)oc * n + (size_t)i * ohw;
            float *dst = y + ((size_t)i * OC + oc) * phw;
            int32_t *am = argmax ? argmax + ((size_t)i * OC + oc) * phw : NULL;
            for (int py = 0; py < PH; py++) {
                const float *r0 = src + (size_t)(2 * py) * OW;
                row(r0, r0 + OW, bias[oc], relu, PW, OW, 2 * py * OW, dst + (size_t)py * PW,
                    am ? am + (size_t)py * PW : NULL);
            }
        }
}

/* dyt (OC, n) from dy (NCHW), masked by the ReLU; db += row sums. */
QB_CLONES
static void gather_plain(int OC, size_t ohw, size_t n, int nb, int relu, const float *y,
                         const float *dy, float *dyt, float *db)
{
    for (int oc = 0; oc < OC; oc++) {
        for (int i = 0; i < nb; i++) {
            const float *src = dy + ((size_t)i * OC + oc) * ohw;
            const float *yy = relu ? y + ((size_t)i * OC + oc) * ohw : NULL;
            float *dst = dyt + (size_t)oc * n + (size_t)i * ohw;
            if (relu)
                for (size_t p = 0; p < ohw; p++) dst[p] = yy[p] > 0.0f ? src[p] : 0.0f;
            else
                for (size_t p = 0; p < ohw; p++) dst[p] = src[p];
        }
        if (db) db[oc] += sum_fixed(dyt + (size_t)oc * n, n);
    }
}

/* dyt (OC, n): zero except each pooled output's argmax, which receives its
 * gradient where the (ReLU'd) output is > 0. db += row sums. */
QB_CLONES
static void gather_pool(int OC, int OH, int OW, size_t n, int nb, int relu, const float *y,
                        const int32_t *argmax, const float *dy, float *dyt, float *db)
{
    const size_t ohw = (size_t)OH * OW, phw = (size_t)(OH / 2) * (OW / 2);
    memset(dyt, 0, sizeof(float) * (size_t)OC * n);
    for (int oc = 0; oc < OC; oc++) {
        float *row = dyt + (size_t)oc * n;
        for (int i = 0; i < nb; i++) {
            size_t o = ((size_t)i * OC + oc) * phw;
            float *dst = row + (size_t)i * ohw;
            for (size_t p = 0; p < phw; p++)
                if (!relu || y[o + p] > 0.0f) dst[argmax[o + p]] = dy[o + p];
        }
        /* summed over the full row, in the same order as gather_plain */
        if (db) db[oc] += sum_fixed(row, n);
    }
}

void qb_conv2d_epilogue_apply(const qb_layer *l, const qb_conv_epilogue *ep, int nb,
                              const float *tmp, const float *bias, float *y, int32_t *argmax)
{
    const size_t ohw = (size_t)l->out_h * l->out_w, n = (size_t)nb * ohw;
    if (ep->pool)
        scatter_pool(l->out_c, l->out_h, l->out_w, n, nb, ep->relu, tmp, bias, y, argmax);
    else
        scatter_plain(l->out_c, ohw, n, nb, ep->relu, tmp, bias, y);
}

/* ---- forward / backward -------------------------------------------------- */

void qb_conv2d_forward_ex(const qb_layer *l, const qb_conv_epilogue *ep, int b, const float *x,
                          const float *w, const float *bias, float *y, int32_t *argmax,
                          float *work)
{
    const int OC = l->out_c, K = l->in_c * l->k * l->k;
    const size_t ohw = (size_t)l->out_h * l->out_w;
    const size_t in_size = qb_layer_in_size(l);
    const size_t y_size = ep->pool ? (size_t)OC * (l->out_h / 2) * (l->out_w / 2) : OC * ohw;
    const int chunk = conv_chunk(l, b);
    for (int i0 = 0; i0 < b; i0 += chunk) {
        int nb = b - i0 < chunk ? b - i0 : chunk;
        size_t n = (size_t)nb * ohw;
        float *col = ep->col_cache ? ep->col_cache + (size_t)i0 * K * ohw : work; /* (K, n) */
        float *tmp = work + (size_t)K * n;   /* (OC, n) */
        qb_im2col(l, nb, x + (size_t)i0 * in_size, col);
        qb_gemm_f32(QB_GEMM_N, QB_GEMM_N, OC, (int)n, K, w, (size_t)K, col, n, 0, tmp, n);
        if (ep->pool)
            scatter_pool(OC, l->out_h, l->out_w, n, nb, ep->relu, tmp, bias,
                         y + (size_t)i0 * y_size, argmax ? argmax + (size_t)i0 * y_size : NULL);
        else
            scatter_plain(OC, ohw, n, nb, ep->relu, tmp, bias, y + (size_t)i0 * y_size);
    }
}

void qb_conv2d_forward(const qb_layer *l, int b, const float *x, const float *w,
                       const float *bias, float *y, float *work)
{
    const qb_conv_epilogue none = {0, NULL, NULL};
    qb_conv2d_forward_ex(l, &none, b, x, w, bias, y, NULL, work);
}

void qb_conv2d_backward_ex(const qb_layer *l, const qb_conv_epilogue *ep, int b, const float *x,
                           const float *w, const float *y, const int32_t *argmax,
                           const float *dy, float *dw, float *db, float *dx, float *work)
{
    const int OC = l->out_c, K = l->in_c * l->k * l->k;
    const size_t ohw = (size_t)l->out_h * l->out_w;
    const size_t in_size = qb_layer_in_size(l);
    const size_t y_size = ep->pool ? (size_t)OC * (l->out_h / 2) * (l->out_w / 2) : OC * ohw;
    const int chunk = conv_chunk(l, b);
    for (int i0 = 0; i0 < b; i0 += chunk) {
        int nb = b - i0 < chunk ? b - i0 : chunk;
        size_t n = (size_t)nb * ohw;
        float *col = work;                   /* (K, n), then dcol */
        float *dyt = work + (size_t)K * n;   /* (OC, n) */
        size_t off = (size_t)i0 * y_size;
        if (ep->pool)
            gather_pool(OC, l->out_h, l->out_w, n, nb, ep->relu, y + off, argmax + off, dy + off,
                        dyt, db);
        else
            gather_plain(OC, ohw, n, nb, ep->relu, y ? y + off : NULL, dy + off, dyt, db);
        if (dw) {
            const float *xcol = col;
            if (ep->col_cache)
                xcol = ep->col_cache + (size_t)i0 * K * ohw;
            else
                qb_im2col(l, nb, x + (size_t)i0 * in_size, col);
            /* dw (OC, K) += dyt (OC, n) * col^T (n, K) */
            qb_gemm_f32(QB_GEMM_N, QB_GEMM_T, OC, K, (int)n, dyt, n, xcol, n, 1, dw, (size_t)K);
        }
        if (dx) {
            /* dcol (K, n) = w^T (K, OC) * dyt (OC, n) */
            qb_gemm_f32(QB_GEMM_T, QB_GEMM_N, K, (int)n, OC, w, (size_t)K, dyt, n, 0, col, n);
            qb_col2im(l, nb, col, dx + (size_t)i0 * in_size);
        }
    }
}

void qb_conv2d_backward(const qb_layer *l, int b, const float *x, const float *w,
                        const float *dy, float *dw, float *db, float *dx, float *work)
{
    const qb_conv_epilogue none = {0, NULL, NULL};
    qb_conv2d_backward_ex(l, &none, b, x, w, NULL, NULL, dy, dw, db, dx, work);
}
