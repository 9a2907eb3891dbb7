#include "core/conv2d.h"

#include <stdlib.h>
#include <string.h>

#include "core/gemm_f32.h"
#include "core/im2col.h"
#include "core/simd.h"

/* Chunk budget: im2col (K x N) plus the GEMM output (OC x N) of one chunk,
 * 512 KiB: they stay in L2 between im2col, the GEMM and the scatter, and
 * each GEMM gets several images (its per-call costs amortised). The chunk
 * never changes a bit: a chunk boundary only stores the weight gradient's
 * running sums and reloads them (core/gemm_f32.h). */
#define QB_CONV_CHUNK_FLOATS (128 * 1024)



/* The chunk of the generic path: it also defines the bias gradient, whose
 * sum (sum_fixed) runs over one such chunk's columns at a time. */
static int conv_chunk(const qb_layer *l, int b)
{
    size_t k = (size_t)l->in_c * l->k * l->k;
    size_t per_image = (k + (size_t)l->out_c) * l->out_h * l->out_w;
    size_t nb = QB_CONV_CHUNK_FLOATS / (per_image ? per_image : 1);
    if (nb < 1) nb = 1;
    if (nb > (size_t)b) nb = (size_t)b;
    return (int)nb;
}

/* Wide chunks: a layer with many weights and few output positions per
 * image (preact-resnet18's 512 channels at 4x4: K = 4608, 16 columns) would
 * stream its whole weight matrix (9.4 MB) through the forward GEMM, and
 * read and write its whole weight gradient, for every 16 columns. The fast
 * path runs such layers (weights over the chunk budget, which would not
 * stay in L2 from one image to the next) in chunks of whole generic chunks, up to
 * QB_CONV_MIN_COLUMNS columns and QB_CONV_WIDE_FLOATS floats of im2col +
 * output; the bias gradient is still summed generic chunk by generic chunk
 * (contiguous slices of the wide chunk's rows), so no bit changes. */
#define QB_CONV_MIN_COLUMNS 256
#define QB_CONV_WIDE_FLOATS (2 * 1024 * 1024)

/* Images per chunk of the path that runs (a multiple of conv_chunk). */
static int conv_run_chunk(const qb_layer *l, int b)
{
    const int c = conv_chunk(l, b);
    /* weights within the chunk budget stay in L2 across images anyway */
    if (!qb_im2col_fast() || (size_t)l->out_c * l->in_c * l->k * l->k <= QB_CONV_CHUNK_FLOATS)
        return c;
    const size_t ohw = (size_t)l->out_h * l->out_w;
    const size_t per_image = ((size_t)l->in_c * l->k * l->k + (size_t)l->out_c) * ohw;
    int m = 1;
    while ((size_t)(m + 1) * c <= (size_t)b && (size_t)m * c * ohw < QB_CONV_MIN_COLUMNS &&
           (size_t)(m + 1) * c * per_image <= QB_CONV_WIDE_FLOATS)
        m++;
    return m * c;
}

size_t qb_conv2d_col_size(const qb_layer *l, int b)
{
    return (size_t)b * l->in_c * l->k * l->k * l->out_h * l->out_w;
}

int qb_conv2d_col_cache_worth(const qb_layer *l, int b)
{
    if (qb_im2col_pointwise(l)) return 0;
    size_t per_image = qb_conv2d_col_size(l, 1) * sizeof(float);
    return per_image <= QB_CONV_CACHE_IMAGE_BYTES &&
           per_image * (size_t)(b > 0 ? b : 1) <= QB_CONV_CACHE_MAX_BYTES;
}

/* The transposed weight gradient of the backward pass (dw_gemm): for
 * layers with more inputs per output (K) than outputs (OC) whose weights
 * fit in QB_CONV_DWT_FLOATS (the 3x3 layers of cnn-small and resnet20;
 * preact-resnet18's large ones keep dw as it is: measured no faster). */
#define QB_CONV_DWT_FLOATS (256 * 1024)

static int dwt_fits(const qb_layer *l)
{
    const size_t k = (size_t)l->in_c * l->k * l->k;
    /* K > OC: the shapes whose dw GEMM runs transposed (measured: with
     * K < OC, e.g. 1x1 shortcuts widening the channels, it is slower) */
    return k > (size_t)l->out_c && (size_t)l->out_c * k <= QB_CONV_DWT_FLOATS;
}

/* Where in the work buffer dwt lives: after the chunk's im2col, GEMM
 * output and padded images. */
static size_t dwt_offset(const qb_layer *l, int b)
{
    size_t k = (size_t)l->in_c * l->k * l->k;
    int c = conv_chunk(l, b), r = conv_run_chunk(l, b);
    size_t nb = (size_t)(r > c ? r : c), n = nb * l->out_h * l->out_w;
    return (k + (size_t)l->out_c) * n + qb_im2col_pad_size(l, (int)nb);
}

size_t qb_conv2d_work_size(const qb_layer *l, int b)
{
    size_t dwt = dwt_fits(l) ? (size_t)l->out_c * l->in_c * l->k * l->k : 0;
    return dwt_offset(l, b) + dwt;
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

void qb_conv2d_set_generic(int on) { qb_im2col_set_generic(on); }

/* ---- epilogues: GEMM output (OC, n) <-> NCHW ----------------------------- */

/* The bias as the scatters add it: -0.0f when there is none, since
 * v + (-0.0f) == v for every float v (+0.0f would turn -0.0f into +0.0f). */
static inline float bias_at(const float *bias, int oc) { return bias ? bias[oc] : -0.0f; }


/* y[i] (OC, OH*OW) = tmp[:, i] + bias, optionally ReLU. */
QB_CLONES
static void scatter_plain(int OC, size_t ohw, size_t n, int nb, int relu, const float *tmp,
                          const float *bias, float *y)
{
    for (int i = 0; i < nb; i++)
        for (int oc = 0; oc < OC; oc++) {
            const float *src = tmp + (size_t)oc * n + (size_t)i * ohw;
            float *dst = y + ((size_t)i * OC + oc) * ohw;
            const float bv = bias_at(bias, oc);
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
                row(r0, r0 + OW, bias_at(bias, oc), relu, PW, OW, 2 * py * OW, dst + (size_t)py * PW,
                    am ? am + (size_t)py * PW : NULL);
            }
        }
}

/* db[oc] += the row's sums, slice by slice of `slice` columns (the
 * generic chunks a wide chunk holds), in order. */
static inline float row_sum_add(float acc, const float *row, size_t n, size_t slice)
{
    for (size_t s0 = 0; s0 < n; s0 += slice)
        acc += sum_fixed(row + s0, n - s0 < slice ? n - s0 : slice);
    return acc;
}

/* dyt (OC, n) from dy (NCHW), masked by the ReLU; db += row sums (per
 * slice of `slice` columns). */
QB_CLONES
static void gather_plain(int OC, size_t ohw, size_t n, int nb, int relu, const float *y,
                         const float *dy, float *dyt, float *db, size_t slice)
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
        if (db) db[oc] = row_sum_add(db[oc], dyt + (size_t)oc * n, n, slice);
    }
}

/* dyt (OC, n): zero except each pooled output's argmax, which receives its
 * gradient where the (ReLU'd) output is > 0. db += row sums. */
QB_CLONES
static void gather_pool(int OC, int OH, int OW, size_t n, int nb, int relu, const float *y,
                        const int32_t *argmax, const float *dy, float *dyt, float *db,
                        size_t slice)
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
        if (db) db[oc] = row_sum_add(db[oc], row, n, slice);
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

/* Band budget: an image whose im2col exceeds it (cnn-small's 32x32 layers:
 * 1.2 MB, more than a core's L2) is convolved in bands of output rows,
 * each band's im2col (K, rows*OW) written and read by the GEMM while it is
 * in L2. Bands split only the GEMM's columns (the outputs) and, for the
 * weight gradient, its k range in order: no bit changes. 512 KiB: measured
 * (bench/bench_conv, 32 and 64 channels at 32x32) 10-15% faster forward
 * than 256 KiB or no bands, the same as 1 MiB. The input gradient is not
 * banded: its dcol split by channel groups measured no faster. */
#define QB_CONV_BAND_FLOATS (128 * 1024)

/* Output rows per band for one image of l: OH (no banding) unless the
 * AVX-512 im2col runs and one image's im2col exceeds the budget. */
static int conv_band_rows(const qb_layer *l)
{
    const size_t k = (size_t)l->in_c * l->k * l->k, row = k * l->out_w;
    if (!qb_im2col_rows_ok(l) || qb_im2col_pointwise(l) ||
        row * l->out_h <= QB_CONV_BAND_FLOATS)
        return l->out_h;
    size_t rows = QB_CONV_BAND_FLOATS / row;
    return rows < 1 ? 1 : (int)rows;
}

/* The weight gradient's GEMM: dw (OC, K) += dyt (OC, nc) * col (K, nc)^T,
 * with dyt's and col's rows ldd and ldc apart; or, when dwt is not NULL,
 * its transpose dwt (K, OC) += col * dyt^T: the same fmaf chains (fmaf is
 * symmetric in its factors), and the GEMM then writes the orientation it
 * prefers for these shapes (K rows, OC columns) straight, instead of
 * passing every tile of a transposed C through a buffer element by
 * element (5-6% of cnn-small's and resnet20's training). */
static void dw_gemm(int OC, int K, size_t nc, const float *dyt, size_t ldd, const float *col,
                    size_t ldc, float *dw, float *dwt)
{
    if (dwt)
        qb_gemm_f32(QB_GEMM_N, QB_GEMM_T, K, OC, (int)nc, col, ldc, dyt, ldd, 1, dwt, (size_t)OC);
    else
        qb_gemm_f32(QB_GEMM_N, QB_GEMM_T, OC, K, (int)nc, dyt, ldd, col, ldc, 1, dw, (size_t)K);
}

/* dst (cols, rows) = src (rows, cols)^T. */
QB_CLONES
static void transpose(int rows, int cols, const float *src, float *dst)
{
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) dst[(size_t)c * rows + r] = src[(size_t)r * cols + c];
}

/* y (nb planes of (OC, ohw), each its image's output) += bias, then ReLU,
 * in place: the direct-output form of scatter_plain (the GEMM wrote y). */
QB_CLONES
static void bias_relu_inplace(int OC, size_t ohw, int nb, int relu, const float *bias, float *y)
{
    if (!bias && !relu) return;
    for (size_t p0 = 0; p0 < (size_t)nb * OC; p0++) {
        float *dst = y + p0 * ohw;
        const float bv = bias_at(bias, (int)(p0 % (size_t)OC));
        if (relu)
            for (size_t p = 0; p < ohw; p++) {
                float v = dst[p] + bv;
                dst[p] = v > 0.0f ? v : 0.0f;
            }
        else
            for (size_t p = 0; p < ohw; p++) dst[p] += bv;
    }
}

/* x[i] = x[i] + 0.0f: -0.0f becomes +0.0f, every other value stays. What
 * col2im's "zero, then add" does to a lone term. */
QB_CLONES
static void plus_zero(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++) x[i] += 0.0f;
}

void qb_conv2d_forward_ex(const qb_layer *l, const qb_conv_epilogue *ep, int b, const float *x,
                          const float *w, const float *bias, float *y, int32_t *argmax,
                          float *work)
{
    const int OC = l->out_c, K = l->in_c * l->k * l->k;
    const size_t ohw = (size_t)l->out_h * l->out_w;
    const size_t in_size = qb_layer_in_size(l);
    const size_t y_size = ep->pool ? (size_t)OC * (l->out_h / 2) * (l->out_w / 2) : OC * ohw;
    const int chunk = conv_run_chunk(l, b);
    const int fast = qb_im2col_fast();
    /* pointwise: the GEMM reads the images in place (no im2col, no cache) */
    const int pointwise = fast && qb_im2col_pointwise(l);
    for (int i0 = 0; i0 < b; i0 += chunk) {
        int nb = b - i0 < chunk ? b - i0 : chunk;
        size_t n = (size_t)nb * ohw;
        const float *xc = x + (size_t)i0 * in_size;
        float *yc = y + (size_t)i0 * y_size;
        float *tmp = work + (size_t)K * n; /* (OC, n) */
        /* direct: image j's GEMM output (OC, ohw) is its NCHW output plane
         * set, so the GEMM writes y and the epilogue runs in place */
        const int direct = fast && !ep->pool && (nb == 1 || pointwise);
        const int band = nb == 1 && !ep->col_cache ? conv_band_rows(l) : l->out_h;
        const float *col = NULL; /* (K, n) */
        float *pad = NULL;       /* the chunk's padded images */
        if (!pointwise && qb_im2col_padded_ok(l)) {
            pad = work + (size_t)(K + OC) * chunk * ohw;
            qb_im2col_pad(l, nb, xc, pad);
        }
        if (band < l->out_h) {
            /* one image in bands of output rows: dst (OC, ohw) column by band */
            float *dst = direct ? yc : tmp;
            for (int oy0 = 0; oy0 < l->out_h; oy0 += band) {
                int oy1 = oy0 + band < l->out_h ? oy0 + band : l->out_h;
                size_t nc = (size_t)(oy1 - oy0) * l->out_w;
                qb_im2col_rows(l, 1, xc, pad, oy0, oy1, work);
                qb_gemm_f32(QB_GEMM_N, QB_GEMM_N, OC, (int)nc, K, w, (size_t)K, work, nc, 0,
                            dst + (size_t)oy0 * l->out_w, ohw);
            }
        } else if (!pointwise) {
            float *c = ep->col_cache ? ep->col_cache + (size_t)i0 * K * ohw : work;
            qb_im2col_rows(l, nb, xc, pad, 0, l->out_h, c);
            col = c;
        }
        if (band < l->out_h) {
            /* done above */
        } else if (!pointwise && !direct) {
            qb_gemm_f32(QB_GEMM_N, QB_GEMM_N, OC, (int)n, K, w, (size_t)K, col, n, 0, tmp, n);
        } else {
            /* one GEMM per image: the same fmaf chain for every output */
            for (int j = 0; j < nb; j++) {
                const float *bj = pointwise ? xc + (size_t)j * in_size : col + (size_t)j * ohw;
                float *cj = direct ? yc + (size_t)j * y_size : tmp + (size_t)j * ohw;
                qb_gemm_f32(QB_GEMM_N, QB_GEMM_N, OC, (int)ohw, K, w, (size_t)K, bj,
                            pointwise ? ohw : n, 0, cj, direct ? ohw : n);
            }
        }
        if (direct)
            bias_relu_inplace(OC, ohw, nb, ep->relu, bias, yc);
        else if (ep->pool)
            scatter_pool(OC, l->out_h, l->out_w, n, nb, ep->relu, tmp, bias, yc,
                         argmax ? argmax + (size_t)i0 * y_size : NULL);
        else
            scatter_plain(OC, ohw, n, nb, ep->relu, tmp, bias, yc);
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
    const int chunk = conv_run_chunk(l, b);
    const size_t slice = (size_t)conv_chunk(l, b) * ohw; /* db's sums */
    const int fast = qb_im2col_fast();
    const int pointwise = fast && qb_im2col_pointwise(l);
    /* dwt (K, OC): dw transposed for the layer's pass (dw_gemm) */
    float *dwt = dw && fast && dwt_fits(l) ? work + dwt_offset(l, b) : NULL;
    if (dwt) transpose(OC, K, dw, dwt);
    for (int i0 = 0; i0 < b; i0 += chunk) {
        int nb = b - i0 < chunk ? b - i0 : chunk;
        size_t n = (size_t)nb * ohw;
        float *col = work;                  /* (K, n), then dcol */
        const float *dyt = work + (size_t)K * n; /* (OC, n) */
        const float *xc = x + (size_t)i0 * in_size;
        size_t off = (size_t)i0 * y_size;
        if (fast && !ep->pool && !ep->relu && nb == 1) {
            /* one image, nothing to mask: dy is dyt already */
            dyt = dy + off;
            if (db)
                for (int oc = 0; oc < OC; oc++) db[oc] += sum_fixed(dyt + (size_t)oc * n, n);
        } else if (ep->pool) {
            gather_pool(OC, l->out_h, l->out_w, n, nb, ep->relu, y + off, argmax + off, dy + off,
                        work + (size_t)K * n, db, slice);
        } else {
            gather_plain(OC, ohw, n, nb, ep->relu, y ? y + off : NULL, dy + off,
                         work + (size_t)K * n, db, slice);
        }
        if (dw) {
            float *pad = NULL; /* the chunk's padded images, for the im2col */
            if (!pointwise && !ep->col_cache && qb_im2col_padded_ok(l)) {
                pad = work + (size_t)(K + OC) * chunk * ohw;
                qb_im2col_pad(l, nb, xc, pad);
            }
            if (pointwise) {
                /* dw (OC, C) += dyt_j (OC, ohw) * x_j^T (ohw, C), image by
                 * image: the chain over the chunk's columns, continued */
                for (int j = 0; j < nb; j++)
                    dw_gemm(OC, K, ohw, dyt + (size_t)j * ohw, n, xc + (size_t)j * in_size, ohw,
                            dw, dwt);
            } else if (nb == 1 && !ep->col_cache && conv_band_rows(l) < l->out_h) {
                /* dw += dyt (OC, band) * col_band^T, band after band */
                const int band = conv_band_rows(l);
                for (int oy0 = 0; oy0 < l->out_h; oy0 += band) {
                    int oy1 = oy0 + band < l->out_h ? oy0 + band : l->out_h;
                    size_t nc = (size_t)(oy1 - oy0) * l->out_w;
                    qb_im2col_rows(l, 1, xc, pad, oy0, oy1, col);
                    dw_gemm(OC, K, nc, dyt + (size_t)oy0 * l->out_w, n, col, nc, dw, dwt);
                }
            } else {
                const float *xcol = col;
                if (ep->col_cache)
                    xcol = ep->col_cache + (size_t)i0 * K * ohw;
                else
                    qb_im2col_rows(l, nb, xc, pad, 0, l->out_h, col);
                /* dw (OC, K) += dyt (OC, n) * col^T (n, K) */
                dw_gemm(OC, K, n, dyt, n, xcol, n, dw, dwt);
            }
        }
        if (dx) {
            float *dxc = dx + (size_t)i0 * in_size;
            if (pointwise) {
                /* dx_j (C, ohw) = w^T (C, OC) * dyt_j (OC, ohw), written in
                 * place; + 0.0f as col2im's zeroed sum would */
                for (int j = 0; j < nb; j++)
                    qb_gemm_f32(QB_GEMM_T, QB_GEMM_N, K, (int)ohw, OC, w, (size_t)K,
                                dyt + (size_t)j * ohw, n, 0, dxc + (size_t)j * in_size, ohw);
                plus_zero(dxc, (size_t)nb * in_size);
            } else {
                /* dcol (K, n) = w^T (K, OC) * dyt (OC, n) */
                qb_gemm_f32(QB_GEMM_T, QB_GEMM_N, K, (int)n, OC, w, (size_t)K, dyt, n, 0, col, n);
                qb_col2im(l, nb, col, dxc);
            }
        }
    }
    if (dwt) transpose(K, OC, dwt, dw);
}

void qb_conv2d_backward(const qb_layer *l, int b, const float *x, const float *w,
                        const float *dy, float *dw, float *db, float *dx, float *work)
{
    const qb_conv_epilogue none = {0, NULL, NULL};
    qb_conv2d_backward_ex(l, &none, b, x, w, NULL, NULL, dy, dw, db, dx, work);
}
