#include "core/conv2d.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/gemm_f32.h"
#include "core/simd.h"

/* Chunk budget: im2col (K x N) plus the GEMM output (OC x N) of one chunk,
 * 512 KiB: they stay in L2 between im2col, the GEMM and the scatter, and
 * each GEMM gets several images (its per-call costs amortised). The chunk
 * never changes a bit: a chunk boundary only stores the weight gradient's
 * running sums and reloads them (core/gemm_f32.h). */
#define QB_CONV_CHUNK_FLOATS (128 * 1024)

static int conv_is_pointwise(const qb_layer *l);
static int conv_fast(void);

/* Floats of a zero-padded copy of nb images (C, H+2P, W+2P), with 64 floats
 * of slack the row kernels may read past the last row (never stored). */
static size_t pad_floats(const qb_layer *l, int nb)
{
    return (size_t)nb * l->in_c * (l->in_h + 2 * l->pad) * (l->in_w + 2 * l->pad) + 64;
}

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
    if (!conv_fast() || (size_t)l->out_c * l->in_c * l->k * l->k <= QB_CONV_CHUNK_FLOATS)
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
    if (conv_is_pointwise(l)) return 0;
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
    return (k + (size_t)l->out_c) * n + pad_floats(l, (int)nb);
}

size_t qb_conv2d_work_size(const qb_layer *l, int b)
{
    size_t dwt = dwt_fits(l) ? (size_t)l->out_c * l->in_c * l->k * l->k : 0;
    return dwt_offset(l, b) + dwt;
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

/* ---- im2col / col2im: the generic reference ------------------------------ */

/* col (C*k*k, nb*OH*OW) from nb images, row by row with per-row bounds:
 * the definition every faster path reproduces bit for bit (it only moves
 * floats and writes +0.0f where a window leaves the image). */
QB_CLONES
static void im2col_generic(const qb_layer *l, int nb, const float *x, float *col)
{
    const int C = l->in_c, H = l->in_h, W = l->in_w, K = l->k, S = l->stride, P = l->pad;
    const int OH = l->out_h, OW = l->out_w;
    const size_t ohw = (size_t)OH * OW, n = (size_t)nb * ohw;
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

/* dx = col2im(dcol): dx zeroed, then every column entry added to its input
 * pixel in the order c, ky, kx, image, oy, ox. Each pixel so receives its
 * terms in increasing (ky, kx), starting from +0.0f: the sum every faster
 * path must form in the same order. */
QB_CLONES
static void col2im_generic(const qb_layer *l, int nb, const float *dcol, float *dx)
{
    const int C = l->in_c, H = l->in_h, W = l->in_w, K = l->k, S = l->stride, P = l->pad;
    const int OH = l->out_h, OW = l->out_w;
    const size_t ohw = (size_t)OH * OW, n = (size_t)nb * ohw;
    memset(dx, 0, sizeof(float) * (size_t)nb * C * H * W);
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

void qb_im2col_ref(const qb_layer *l, int nb, const float *x, float *col)
{
    im2col_generic(l, nb, x, col);
}

void qb_col2im_ref(const qb_layer *l, int nb, const float *dcol, float *dx)
{
    col2im_generic(l, nb, dcol, dx);
}

/* ---- which paths run -------------------------------------------------------- */

static int force_generic = -1; /* -1: not decided yet (QBLIND_SCALAR read once) */

void qb_conv2d_set_generic(int on) { force_generic = on != 0; }

/* 1: the specialised paths (default); 0: only the generic ones. */
static int conv_fast(void)
{
    if (force_generic < 0) {
        const char *scalar = getenv("QBLIND_SCALAR");
        force_generic = scalar && *scalar == '1';
    }
    return !force_generic;
}

/* 1 if this CPU runs the AVX-512 row kernels (and the fast paths are on). */
static int conv_avx512(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    static int has = -1;
    if (has < 0) {
        __builtin_cpu_init();
        has = __builtin_cpu_supports("avx512f") != 0;
    }
    return has && conv_fast();
#else
    return 0;
#endif
}

/* A 1x1 stride-1 unpadded convolution: the input plane of image i is its
 * column matrix (C, H*W) already. */
static int conv_is_pointwise(const qb_layer *l)
{
    return l->k == 1 && l->stride == 1 && l->pad == 0;
}

/* ---- im2col / col2im: AVX-512 row kernels ------------------------------------ */

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>

/* Bits [a, b) of a 32-bit mask, with a and b clamped to [0, 32]. */
static inline uint32_t lanes_between(int a, int b)
{
    if (a < 0) a = 0;
    if (b > 32) b = 32;
    if (a >= b) return 0;
    uint64_t m = ((uint64_t)1 << b) - ((uint64_t)1 << a);
    return (uint32_t)m;
}

/* im2col for stride 1 or 2, any kernel and padding, of the output rows
 * [oy0, oy1) only (col (K, nb*(oy1-oy0)*OW)): each output row is 16
 * columns at a time one masked load of the input row (lanes outside the
 * image load +0.0f; stride 2: two loads and an even-lane permute) and one
 * masked store. Same layout and values as im2col_generic. */
/* Widest output row the AVX-512 kernels take: 16 blocks of 16 columns. */
#define QB_CONV_MAX_BLOCKS 16

/* One output row of im2col, stride S (1 or 2): block j is 16 columns; its
 * lanes load from src + start[j] under mask mi[j] (32 lanes for stride 2:
 * two loads and an even-lane permute); lanes outside the image load +0.0f.
 * Full blocks are stored plainly (a masked store costs several plain ones
 * on some CPUs), the tail under mo. */
__attribute__((target("avx512f"), always_inline))
static inline void im2col_row_avx512(int S, int blocks, const int *start, const uint32_t *mi,
                                     __mmask16 mo, const float *src, float *out)
{
    const __m512i even =
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    for (int j = 0; j < blocks; j++) {
        __m512 v;
        if (S == 1) {
            v = mi[j] == 0xFFFF ? _mm512_loadu_ps(src + start[j])
                                : _mm512_maskz_loadu_ps((__mmask16)mi[j], src + start[j]);
        } else {
            __m512 lo = _mm512_maskz_loadu_ps((__mmask16)mi[j], src + start[j]);
            __m512 hi = _mm512_maskz_loadu_ps((__mmask16)(mi[j] >> 16), src + start[j] + 16);
            v = _mm512_permutex2var_ps(lo, even, hi);
        }
        if (j + 1 < blocks || mo == 0xFFFF)
            _mm512_storeu_ps(out + 16 * j, v);
        else
            _mm512_mask_storeu_ps(out + 16 * j, mo, v);
    }
}

/* im2col for stride 1 or 2, any kernel and padding, output rows at most
 * 16 * QB_CONV_MAX_BLOCKS wide, of the output rows [oy0, oy1) only (col
 * (K, nb*(oy1-oy0)*OW)). The masks depend only on kx: computed once per
 * kernel column; rows whose input row is outside the image are zeros.
 * Same layout and values as im2col_generic. */
__attribute__((target("avx512f")))
static void im2col_avx512(const qb_layer *l, int nb, const float *x, int oy0, int oy1, float *col)
{
    const int C = l->in_c, H = l->in_h, W = l->in_w, K = l->k, S = l->stride, P = l->pad;
    const int OW = l->out_w, blocks = (OW + 15) / 16;
    const size_t ohw = (size_t)(oy1 - oy0) * OW, n = (size_t)nb * ohw;
    const __m512 zero = _mm512_setzero_ps();
    const __mmask16 mo = (__mmask16)lanes_between(0, OW - 16 * (blocks - 1));
    int start[QB_CONV_MAX_BLOCKS];
    uint32_t mi[QB_CONV_MAX_BLOCKS];
    for (int c = 0; c < C; c++)
        for (int ky = 0; ky < K; ky++) {
            /* output rows [ya, yb) of the band read input rows inside the image */
            int ya = oy0, yb = oy1;
            while (ya < yb && ya * S - P + ky < 0) ya++;
            while (yb > ya && (yb - 1) * S - P + ky >= H) yb--;
            for (int kx = 0; kx < K; kx++) {
                for (int j = 0; j < blocks; j++) {
                    const int cnt = OW - 16 * j < 16 ? OW - 16 * j : 16;
                    start[j] = 16 * j * S - P + kx; /* input column of the block's lane 0 */
                    mi[j] = lanes_between(-start[j], W - start[j]) &
                            lanes_between(0, S == 1 ? cnt : 2 * cnt - 1);
                }
                float *row = col + ((size_t)(c * K + ky) * K + kx) * n;
                for (int i = 0; i < nb; i++) {
                    const float *plane = x + ((size_t)i * C + c) * H * W;
                    float *out = row + (size_t)i * ohw;
                    for (int oy = oy0; oy < oy1; oy++, out += OW) {
                        if (oy < ya || oy >= yb) {
                            for (int j = 0; j < blocks; j++)
                                if (j + 1 < blocks || mo == 0xFFFF)
                                    _mm512_storeu_ps(out + 16 * j, zero);
                                else
                                    _mm512_mask_storeu_ps(out + 16 * j, mo, zero);
                            continue;
                        }
                        const float *src = plane + (size_t)(oy * S - P + ky) * W;
                        if (S == 1)
                            im2col_row_avx512(1, blocks, start, mi, mo, src, out);
                        else
                            im2col_row_avx512(2, blocks, start, mi, mo, src, out);
                    }
                }
            }
        }
}

/* im2col from zero-padded copies of the images (pad_images): every row is
 * plain unaligned loads (no masks, no rows outside the image), stride 1
 * or 2, output rows [oy0, oy1). The same values as im2col_generic: a padded
 * position holds +0.0f, as the generic path writes there. */
__attribute__((target("avx512f")))
static void im2col_padded_avx512(const qb_layer *l, int nb, const float *pad, int oy0, int oy1,
                                 float *col)
{
    const int C = l->in_c, K = l->k, S = l->stride;
    const int PH = l->in_h + 2 * l->pad, PW = l->in_w + 2 * l->pad;
    const int OW = l->out_w, blocks = (OW + 15) / 16;
    const size_t ohw = (size_t)(oy1 - oy0) * OW, n = (size_t)nb * ohw;
    const __mmask16 mo = (__mmask16)lanes_between(0, OW - 16 * (blocks - 1));
    const __m512i even =
        _mm512_setr_epi32(0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20, 22, 24, 26, 28, 30);
    for (int c = 0; c < C; c++)
        for (int ky = 0; ky < K; ky++)
            for (int kx = 0; kx < K; kx++) {
                float *row = col + ((size_t)(c * K + ky) * K + kx) * n;
                for (int i = 0; i < nb; i++) {
                    const float *plane = pad + ((size_t)i * C + c) * PH * PW;
                    float *out = row + (size_t)i * ohw;
                    for (int oy = oy0; oy < oy1; oy++, out += OW) {
                        const float *src = plane + (size_t)(oy * S + ky) * PW + kx;
                        for (int j = 0; j < blocks; j++) {
                            __m512 v;
                            if (S == 1) {
                                v = _mm512_loadu_ps(src + 16 * j);
                            } else {
                                __m512 lo = _mm512_loadu_ps(src + 32 * j);
                                __m512 hi = _mm512_loadu_ps(src + 32 * j + 16);
                                v = _mm512_permutex2var_ps(lo, even, hi);
                            }
                            if (j + 1 < blocks || mo == 0xFFFF)
                                _mm512_storeu_ps(out + 16 * j, v);
                            else
                                _mm512_mask_storeu_ps(out + 16 * j, mo, v);
                        }
                    }
                }
            }
}
#endif

/* pad (nb, C, H+2P, W+2P) = x with P zeros around every plane (+0.0f), and
 * the slack after it zeroed. */
QB_CLONES
static void pad_images(const qb_layer *l, int nb, const float *x, float *pad)
{
    const int H = l->in_h, W = l->in_w, P = l->pad, PH = H + 2 * P, PW = W + 2 * P;
    const size_t planes = (size_t)nb * l->in_c;
    for (size_t p = 0; p < planes; p++) {
        float *dst = pad + p * PH * PW;
        const float *src = x + p * H * W;
        memset(dst, 0, sizeof(float) * (size_t)P * PW);
        for (int y = 0; y < H; y++) {
            float *d = dst + (size_t)(P + y) * PW;
            for (int q = 0; q < P; q++) d[q] = 0.0f, d[P + W + q] = 0.0f;
            memcpy(d + P, src + (size_t)y * W, sizeof(float) * (size_t)W);
        }
        memset(dst + (size_t)(P + H) * PW, 0, sizeof(float) * (size_t)P * PW);
    }
    memset(pad + planes * PH * PW, 0, 64 * sizeof(float));
}

#if defined(__x86_64__) && defined(__GNUC__)
/* col2im for stride 1, any kernel and padding, as a gather: each input row
 * is formed 16 pixels at a time in a register, adding the column entries
 * that land on it in increasing (ky, kx) from +0.0f (masked adds: a pixel
 * a window misses receives nothing, as in col2im_generic), and stored
 * once. The same sums in the same order as col2im_generic. */
__attribute__((target("avx512f")))
static void col2im_s1_avx512(const qb_layer *l, int nb, const float *dcol, float *dx)
{
    const int C = l->in_c, H = l->in_h, W = l->in_w, K = l->k, P = l->pad;
    const int OH = l->out_h, OW = l->out_w;
    const size_t ohw = (size_t)OH * OW, n = (size_t)nb * ohw;
    for (int i = 0; i < nb; i++)
        for (int c = 0; c < C; c++) {
            float *plane = dx + ((size_t)i * C + c) * H * W;
            const float *rows = dcol + (size_t)c * K * K * n + (size_t)i * ohw;
            for (int iy = 0; iy < H; iy++)
                for (int x0 = 0; x0 < W; x0 += 16) {
                    const uint32_t mw = lanes_between(0, W - x0);
                    __m512 acc = _mm512_setzero_ps();
                    for (int ky = 0; ky < K; ky++) {
                        const int oy = iy + P - ky;
                        if (oy < 0 || oy >= OH) continue;
                        for (int kx = 0; kx < K; kx++) {
                            const int t = x0 + P - kx; /* output column of lane 0 */
                            const __mmask16 m = (__mmask16)(mw & lanes_between(-t, OW - t));
                            const float *src = rows + (size_t)(ky * K + kx) * n + (size_t)oy * OW;
                            acc = _mm512_mask_add_ps(acc, m, acc, _mm512_maskz_loadu_ps(m, src + t));
                        }
                    }
                    if (mw == 0xFFFF)
                        _mm512_storeu_ps(plane + (size_t)iy * W + x0, acc);
                    else
                        _mm512_mask_storeu_ps(plane + (size_t)iy * W + x0, (__mmask16)mw, acc);
                }
        }
}
#endif

/* The unpadded stride-1 windows, compiled per instruction set. */
QB_CLONES
static void unpadded_to_col(const qb_layer *l, int nb, const float *x, float *col)
{
    unpadded_windows(l, nb, x, col, 1);
}

QB_CLONES
static void unpadded_to_image(const qb_layer *l, int nb, const float *dcol, float *dx)
{
    memset(dx, 0, sizeof(float) * (size_t)nb * qb_layer_in_size(l));
    unpadded_windows(l, nb, dcol, dx, 0);
}

void qb_im2col(const qb_layer *l, int nb, const float *x, float *col)
{
    if (!conv_fast()) {
        im2col_generic(l, nb, x, col);
        return;
    }
    if (l->stride == 1 && l->pad == 0) {
        unpadded_to_col(l, nb, x, col);
        return;
    }
#if defined(__x86_64__) && defined(__GNUC__)
    if ((l->stride == 1 || l->stride == 2) && l->out_w <= 16 * QB_CONV_MAX_BLOCKS &&
        conv_avx512()) {
        im2col_avx512(l, nb, x, 0, l->out_h, col);
        return;
    }
#endif
    im2col_generic(l, nb, x, col);
}

void qb_col2im(const qb_layer *l, int nb, const float *dcol, float *dx)
{
    if (!conv_fast()) {
        col2im_generic(l, nb, dcol, dx);
        return;
    }
#if defined(__x86_64__) && defined(__GNUC__)
    if (l->stride == 1 && conv_avx512()) {
        col2im_s1_avx512(l, nb, dcol, dx);
        return;
    }
#endif
    if (l->stride == 1 && l->pad == 0) {
        unpadded_to_image(l, nb, dcol, dx);
        return;
    }
    col2im_generic(l, nb, dcol, dx);
}

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
    if (!conv_avx512() || (l->stride != 1 && l->stride != 2) || conv_is_pointwise(l) ||
        l->out_w > 16 * QB_CONV_MAX_BLOCKS ||
        row * l->out_h <= QB_CONV_BAND_FLOATS)
        return l->out_h;
    size_t rows = QB_CONV_BAND_FLOATS / row;
    return rows < 1 ? 1 : (int)rows;
}

/* The padded path: AVX-512, padding, stride 1 or 2, rows the kernels take.
 * The images of a chunk are copied once with their zero borders
 * (pad_images) and every im2col row is plain loads from the copy; the
 * masked loads of im2col_avx512 measured ~25% slower. */
static int conv_padded(const qb_layer *l)
{
    return conv_avx512() && l->pad > 0 && (l->stride == 1 || l->stride == 2) &&
           l->out_w <= 16 * QB_CONV_MAX_BLOCKS;
}

/* col (K, nb*(oy1-oy0)*OW): the im2col of nb images' output rows [oy0,
 * oy1), from their padded copy pad when not NULL (conv_padded; built by
 * the caller), else from x (bands only where the AVX-512 kernels run:
 * conv_band_rows). */
static void chunk_im2col(const qb_layer *l, int nb, const float *x, const float *pad, int oy0,
                         int oy1, float *col)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (pad) {
        im2col_padded_avx512(l, nb, pad, oy0, oy1, col);
        return;
    }
    if (oy0 != 0 || oy1 != l->out_h) {
        im2col_avx512(l, nb, x, oy0, oy1, col);
        return;
    }
#endif
    QB_ASSERT(!pad && oy0 == 0 && oy1 == l->out_h);
    qb_im2col(l, nb, x, col);
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
    const int fast = conv_fast();
    /* pointwise: the GEMM reads the images in place (no im2col, no cache) */
    const int pointwise = fast && conv_is_pointwise(l);
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
        if (!pointwise && conv_padded(l)) {
            pad = work + (size_t)(K + OC) * chunk * ohw;
            pad_images(l, nb, xc, pad);
        }
        if (band < l->out_h) {
            /* one image in bands of output rows: dst (OC, ohw) column by band */
            float *dst = direct ? yc : tmp;
            for (int oy0 = 0; oy0 < l->out_h; oy0 += band) {
                int oy1 = oy0 + band < l->out_h ? oy0 + band : l->out_h;
                size_t nc = (size_t)(oy1 - oy0) * l->out_w;
                chunk_im2col(l, 1, xc, pad, oy0, oy1, work);
                qb_gemm_f32(QB_GEMM_N, QB_GEMM_N, OC, (int)nc, K, w, (size_t)K, work, nc, 0,
                            dst + (size_t)oy0 * l->out_w, ohw);
            }
        } else if (!pointwise) {
            float *c = ep->col_cache ? ep->col_cache + (size_t)i0 * K * ohw : work;
            chunk_im2col(l, nb, xc, pad, 0, l->out_h, c);
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
    const int fast = conv_fast();
    const int pointwise = fast && conv_is_pointwise(l);
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
            if (!pointwise && !ep->col_cache && conv_padded(l)) {
                pad = work + (size_t)(K + OC) * chunk * ohw;
                pad_images(l, nb, xc, pad);
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
                    chunk_im2col(l, 1, xc, pad, oy0, oy1, col);
                    dw_gemm(OC, K, nc, dyt + (size_t)oy0 * l->out_w, n, col, nc, dw, dwt);
                }
            } else {
                const float *xcol = col;
                if (ep->col_cache)
                    xcol = ep->col_cache + (size_t)i0 * K * ohw;
                else
                    chunk_im2col(l, nb, xc, pad, 0, l->out_h, col);
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
