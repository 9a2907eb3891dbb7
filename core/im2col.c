/* im2col and col2im for core/conv2d.c: the generic loops that define the
 * convolution's bits, and the fast kernels that reproduce them (see
 * core/im2col.h). */
#include "core/im2col.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/simd.h"

size_t qb_im2col_pad_size(const qb_layer *l, int nb)
{
    return (size_t)nb * l->in_c * (l->in_h + 2 * l->pad) * (l->in_w + 2 * l->pad) + 64;
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

void qb_im2col_set_generic(int on) { force_generic = on != 0; }

int qb_im2col_fast(void)
{
    if (force_generic < 0) {
        const char *scalar = getenv("QBLIND_SCALAR");
        force_generic = scalar && *scalar == '1';
    }
    return !force_generic;
}

int qb_im2col_avx512(void)
{
#if defined(__x86_64__) && defined(__GNUC__)
    static int has = -1;
    if (has < 0) {
        __builtin_cpu_init();
        has = __builtin_cpu_supports("avx512f") != 0;
    }
    return has && qb_im2col_fast();
#else
    return 0;
#endif
}

int qb_im2col_pointwise(const qb_layer *l)
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
    if (!qb_im2col_fast()) {
        im2col_generic(l, nb, x, col);
        return;
    }
    if (l->stride == 1 && l->pad == 0) {
        unpadded_to_col(l, nb, x, col);
        return;
    }
#if defined(__x86_64__) && defined(__GNUC__)
    if ((l->stride == 1 || l->stride == 2) && l->out_w <= 16 * QB_CONV_MAX_BLOCKS &&
        qb_im2col_avx512()) {
        im2col_avx512(l, nb, x, 0, l->out_h, col);
        return;
    }
#endif
    im2col_generic(l, nb, x, col);
}

void qb_col2im(const qb_layer *l, int nb, const float *dcol, float *dx)
{
    if (!qb_im2col_fast()) {
        col2im_generic(l, nb, dcol, dx);
        return;
    }
#if defined(__x86_64__) && defined(__GNUC__)
    if (l->stride == 1 && qb_im2col_avx512()) {
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

int qb_im2col_rows_ok(const qb_layer *l)
{
    return qb_im2col_avx512() && (l->stride == 1 || l->stride == 2) &&
           l->out_w <= 16 * QB_CONV_MAX_BLOCKS;
}

int qb_im2col_padded_ok(const qb_layer *l) { return l->pad > 0 && qb_im2col_rows_ok(l); }

void qb_im2col_pad(const qb_layer *l, int nb, const float *x, float *pad)
{
    pad_images(l, nb, x, pad);
}

void qb_im2col_rows(const qb_layer *l, int nb, const float *x, const float *pad, int oy0,
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
