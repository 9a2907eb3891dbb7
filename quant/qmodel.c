#include "quant/qmodel.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/conv2d.h"
#include "core/rng.h"
#include "core/simd.h"
#include "core/xalloc.h"

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

int qb_precision_quantizes_layer(const qb_precision *prec, const qb_model *m, int i)
{
    if (qb_precision_is_float(prec)) return 0;
    qb_layer_kind k = m->layers[i].kind;
    if (k == QB_LAYER_LINEAR) return 1;
    return k == QB_LAYER_CONV2D && !prec->linear_only;
}

/* Grow a scratch buffer to at least n elements of size `size`. */
static void *grow(void *p, size_t *len, size_t n, size_t size)
{
    if (n <= *len) return p;
    free(p);
    *len = n;
    return xaligned(n, size);
}

/* ---- float path: fake-quantized activations (straight-through) ---------- */

static const float *hook_input(void *ctx, const qb_model *m, int layer, int b, const float *x,
                               float *scratch)
{
    const qb_qmodel *qm = ctx;
    if (!qm->ql[layer].active || qm->prec.a_bits >= 32) return x;
    size_t n = (size_t)b * qb_layer_in_size(&m->layers[layer]);
    /* one scale for the whole batch tensor: "dynamic, per batch" */
    qb_fake_quant(x, 1, n, qm->prec.a_bits, QB_GRAN_TENSOR, qm->prec.round, scratch);
    return scratch;
}

/* ---- integer path -------------------------------------------------------- */

/* The integer path computes exactly its plain definition (qb_quant_scale
 * and qb_quantize_with_scale on the layer input, the GEMM's exact int32
 * sums, y = fl(fl(acc) * fl(sx * sw)), then the float epilogue of
 * qb_conv2d_epilogue_apply: + bias, ReLU, 2x2 max tree), in a
 * cache-friendlier order:
 *   - activations are quantized into a channels-last (H, W, C) int8 image
 *     with a zero border of `pad` (code 0 is the value 0), so every patch
 *     row of im2row is k runs of k*C contiguous bytes, copied as 8/32-byte
 *     words, and padding needs no tests; the conv weights are packed with
 *     their K dimension in the same (ky, kx, c) order (an exact integer sum
 *     does not depend on the order of its terms);
 *   - several images go through one GEMM (N = nb*OH*OW rows), as many as
 *     keep the chunk's patches and accumulators within an L2 share;
 *   - the rescale, bias, ReLU and pool read the GEMM output (positions,
 *     OC) as vectors over OC and write NCHW through short transposed tiles.
 * The loops are plain C compiled per CPU (QB_CLONES); their float
 * operations are the reference's, one by one (no FMA contraction: the
 * library is built as ISO C, where GCC's default is -ffp-contract=off, and
 * each product is its own statement, which clang's default never fuses).
 * tests/test_qmodel.c checks every layer against the definition. */

/* max |x[i]| over the non-NaN x (a NaN never wins qb_quant_scale's
 * "a > m"). On bit patterns: |x| is the pattern with the sign cleared, and
 * for non-NaN values (patterns <= 0x7f800000) float order is integer
 * order, so this is qb_quant_scale's running float max; an integer max is
 * associative, so the loop vectorizes. */
QB_CLONES
static float absmax(const float *x, size_t n)
{
    uint32_t m = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, x + i, 4);
        u &= 0x7fffffffu;
        u &= 0u - (uint32_t)(u <= 0x7f800000u); /* NaN -> 0, without a branch */
        m = u > m ? u : m;
    }
    float f;
    memcpy(&f, &m, 4);
    return f;
}

/* q[i] = qb_quant_code(x[i], s, ...) clamped to [-qmax, qmax] as
 * qb_quantize_with_scale, for s != 0: round(x / s) (a true division, as
 * the reference), out of range -> +-qmax, NaN -> -qmax. */
QB_CLONES
static void quant_codes(const float *restrict x, size_t n, float s, float qmax, int away,
                        int8_t *restrict q)
{
    if (away)
        for (size_t i = 0; i < n; i++) {
            float v = roundf(x[i] / s);
            v = v >= -qmax ? v : -qmax;
            v = v <= qmax ? v : qmax;
            q[i] = (int8_t)(int)v;
        }
    else
        for (size_t i = 0; i < n; i++) {
            float v = rintf(x[i] / s);
            v = v >= -qmax ? v : -qmax;
            v = v <= qmax ? v : qmax;
            q[i] = (int8_t)(int)v;
        }
}

/* The per-batch activation scale of the n floats at x (qb_quant_scale). */
static float act_scale(const qb_qmodel *qm, const float *x, size_t n)
{
    return absmax(x, n) / (float)qb_quant_qmax(qm->prec.a_bits);
}

/* q (n) = codes of x with scale s (qb_quantize_with_scale). */
static void quantize(const qb_qmodel *qm, const float *x, size_t n, float s, int8_t *q)
{
    if (s == 0.0f) { /* all-zero input: every code 0 */
        memset(q, 0, n);
        return;
    }
    quant_codes(x, n, s, (float)qb_quant_qmax(qm->prec.a_bits),
                qm->prec.round == QB_ROUND_HALF_AWAY, q);
}

#if defined(__SSE2__)
/* n rows of dst (row j at dst + j*ldd, 16 bytes) = byte j of each of the 16
 * rows of src (row i at src + i*lds, 16 bytes read): a 16x16 byte
 * transpose in four rounds of unpacks (SSE2 is baseline x86-64). */
static inline void transpose16(const int8_t *src, size_t lds, int8_t *dst, size_t ldd, int n)
{
    __m128i a[16], b[16];
    for (int i = 0; i < 16; i++)
        a[i] = _mm_loadu_si128((const __m128i *)(const void *)(src + (size_t)i * lds));
    /* b[p], b[p+8]: rows 2p, 2p+1 interleaved, columns 0-7 / 8-15 */
    for (int p = 0; p < 8; p++) {
        b[p] = _mm_unpacklo_epi8(a[2 * p], a[2 * p + 1]);
        b[p + 8] = _mm_unpackhi_epi8(a[2 * p], a[2 * p + 1]);
    }
    /* a[4g + q]: rows 4q..4q+3 of columns 4g..4g+3 */
    for (int h = 0; h < 2; h++)
        for (int q = 0; q < 4; q++) {
            a[8 * h + q] = _mm_unpacklo_epi16(b[8 * h + 2 * q], b[8 * h + 2 * q + 1]);
            a[8 * h + q + 4] = _mm_unpackhi_epi16(b[8 * h + 2 * q], b[8 * h + 2 * q + 1]);
        }
    /* b[2c + s]: rows 8s..8s+7 of columns 2c, 2c+1 */
    for (int g = 0; g < 4; g++)
        for (int s = 0; s < 2; s++) {
            b[4 * g + s] = _mm_unpacklo_epi32(a[4 * g + 2 * s], a[4 * g + 2 * s + 1]);
            b[4 * g + s + 2] = _mm_unpackhi_epi32(a[4 * g + 2 * s], a[4 * g + 2 * s + 1]);
        }
    /* a[j]: column j, all 16 rows */
    for (int c = 0; c < 8; c++) {
        a[2 * c] = _mm_unpacklo_epi64(b[2 * c], b[2 * c + 1]);
        a[2 * c + 1] = _mm_unpackhi_epi64(b[2 * c], b[2 * c + 1]);
    }
    for (int j = 0; j < n; j++) _mm_storeu_si128((__m128i *)(void *)(dst + (size_t)j * ldd), a[j]);
}
#endif

/* Bytes of slack after the codes, a patch row and the padded input: the
 * copies below move whole 16/32-byte words past the end of what they need
 * (reads past a row of codes or a run of the image; writes past a run are
 * overwritten by the next run or land in the row's slack). */
#define IM2ROW_SLACK 32

/* dst (H + 2P, W + 2P, C) = src (C, H, W) channels last, border zero.
 * Reads up to 15 bytes past src's last row when C % 16 == 0. */
static void to_hwc(const int8_t *src, int C, int H, int W, int P, int8_t *dst)
{
    const int Wp = W + 2 * P;
    const size_t hw = (size_t)H * W;
    if (P) memset(dst, 0, (size_t)(H + 2 * P) * Wp * C);
    for (int y = 0; y < H; y++) {
        int8_t *d = dst + ((size_t)(y + P) * Wp + P) * C;
        const int8_t *s = src + (size_t)y * W;
        if (C == 1) {
            memcpy(d, s, (size_t)W);
            continue;
        }
#if defined(__SSE2__)
        if (C % 16 == 0) {
            for (int x0 = 0; x0 < W; x0 += 16)
                for (int c0 = 0; c0 < C; c0 += 16)
                    transpose16(s + (size_t)c0 * hw + x0, hw, d + (size_t)x0 * C + c0, (size_t)C,
                                W - x0 < 16 ? W - x0 : 16);
            continue;
        }
#endif
        for (int x = 0; x < W; x++)
            for (int c = 0; c < C; c++) d[(size_t)x * C + c] = s[(size_t)c * hw + x];
    }
}

/* rows (OH*OW, ldr): the patch of output (oy, ox) in (ky, kx, c) order,
 * from the padded channels-last image xp (Hp, Wp, C): k runs of k*C
 * bytes, each copied as 8- or 32-byte words (ldr >= k*k*C + 32; 32-byte
 * copies are one ymm move in the AVX2/AVX-512 clones). Inlined with K
 * constant for the common kernel sizes so the run loop unrolls. */
#if defined(__GNUC__)
#define QB_ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define QB_ALWAYS_INLINE inline
#endif
static QB_ALWAYS_INLINE void im2row_k(const qb_layer *l, const int K, const int8_t *xp,
                                      int8_t *rows, size_t ldr)
{
    const int C = l->in_c, S = l->stride, Wp = l->in_w + 2 * l->pad;
    const size_t run = (size_t)K * C, line = (size_t)Wp * C;
    int8_t *r = rows;
    for (int oy = 0; oy < l->out_h; oy++) {
        const int8_t *src_y = xp + (size_t)oy * S * line;
        if (run <= 8)
            for (int ox = 0; ox < l->out_w; ox++, r += ldr) {
                const int8_t *src = src_y + (size_t)ox * S * C;
                for (int ky = 0; ky < K; ky++) memcpy(r + ky * run, src + ky * line, 8);
            }
        else
            for (int ox = 0; ox < l->out_w; ox++, r += ldr) {
                const int8_t *src = src_y + (size_t)ox * S * C;
                for (int ky = 0; ky < K; ky++)
                    for (size_t j = 0; j < run; j += 32)
                        memcpy(r + ky * run + j, src + ky * line + j, 32);
            }
    }
}

QB_CLONES
static void im2row_hwc(const qb_layer *l, const int8_t *xp, int8_t *rows, size_t ldr)
{
    switch (l->k) {
    case 3: im2row_k(l, 3, xp, rows, ldr); break;
    case 5: im2row_k(l, 5, xp, rows, ldr); break;
    default: im2row_k(l, l->k, xp, rows, ldr); break;
    }
}

/* Output positions per tile: values (TP, OC) computed as vectors over OC,
 * then written to the NCHW planes. */
#define TP 16

/* vals (n, OC) = (float)acc * f[oc] + bias[oc] (then ReLU), as
 * scatter_plain, for n consecutive output positions acc (n, OC). */
QB_CLONES
static void rescale_tile(int OC, int n, const int32_t *restrict acc, const float *restrict f,
                         const float *restrict bias, int relu, float *restrict vals)
{
    for (int j = 0; j < n; j++) {
        const int32_t *a = acc + (size_t)j * OC;
        float *v = vals + (size_t)j * OC;
        for (int oc = 0; oc < OC; oc++) {
            float t = (float)a[oc] * f[oc];
            float u = t + bias[oc];
            v[oc] = relu ? (u > 0.0f ? u : 0.0f) : u;
        }
    }
}

/* vals (n, OC): for n pooled outputs along a row, the 2x2 max of the
 * rescaled outputs (+ bias) as pool_row_ref (tree (v0 v1) (v2 v3), strict
 * ">", then ReLU). acc: the top-left position of the first window; the
 * window's rows are OW positions apart (acc rows are (positions, OC)). */
QB_CLONES
static void rescale_pool_tile(int OC, int n, const int32_t *restrict acc, int OW,
                              const float *restrict f, const float *restrict bias, int relu,
                              float *restrict vals)
{
    for (int j = 0; j < n; j++) {
        const int32_t *a0 = acc + (size_t)2 * j * OC, *a1 = a0 + OC;
        const int32_t *a2 = a0 + (size_t)OW * OC, *a3 = a2 + OC;
        float *v = vals + (size_t)j * OC;
        for (int oc = 0; oc < OC; oc++) {
            const float bv = bias[oc], fo = f[oc];
            float t0 = (float)a0[oc] * fo, t1 = (float)a1[oc] * fo;
            float t2 = (float)a2[oc] * fo, t3 = (float)a3[oc] * fo;
            float v0 = t0 + bv, v1 = t1 + bv, v2 = t2 + bv, v3 = t3 + bv;
            float h0 = v1 > v0 ? v1 : v0, h1 = v3 > v2 ? v3 : v2;
            float m = h1 > h0 ? h1 : h0;
            v[oc] = relu ? (m > 0.0f ? m : 0.0f) : m;
        }
    }
}

/* y (OC, plane) at columns [p0, p0 + n) = vals (n, OC) transposed, in
 * 4x4 blocks where there are whole ones. */
static void store_tile(int OC, int n, const float *vals, float *y, size_t plane, size_t p0)
{
    int oc0 = 0;
#if defined(__SSE2__)
    const int n4 = n & ~3;
    for (; oc0 + 4 <= OC; oc0 += 4) {
        float *d = y + (size_t)oc0 * plane + p0;
        for (int j = 0; j < n4; j += 4) {
            __m128 r0 = _mm_loadu_ps(vals + (size_t)j * OC + oc0);
            __m128 r1 = _mm_loadu_ps(vals + (size_t)(j + 1) * OC + oc0);
            __m128 r2 = _mm_loadu_ps(vals + (size_t)(j + 2) * OC + oc0);
            __m128 r3 = _mm_loadu_ps(vals + (size_t)(j + 3) * OC + oc0);
            _MM_TRANSPOSE4_PS(r0, r1, r2, r3);
            _mm_storeu_ps(d + j, r0);
            _mm_storeu_ps(d + plane + j, r1);
            _mm_storeu_ps(d + 2 * plane + j, r2);
            _mm_storeu_ps(d + 3 * plane + j, r3);
        }
        for (int k = 0; k < 4; k++)
            for (int j = n4; j < n; j++) d[k * plane + j] = vals[(size_t)j * OC + oc0 + k];
    }
#endif
    for (int oc = oc0; oc < OC; oc++) {
        float *d = y + (size_t)oc * plane + p0;
        for (int j = 0; j < n; j++) d[j] = vals[(size_t)j * OC + oc];
    }
}

/* The epilogue of one image: acc (OH*OW, OC) -> y (OC, OH, OW), or with a
 * pool (OC, OH/2, OW/2). vals: TP * OC floats of scratch. */
static void epilogue(const qb_layer *l, const qb_conv_epilogue *ep, const int32_t *acc,
                     const float *f, const float *bias, float *vals, float *y)
{
    const int OC = l->out_c, OH = l->out_h, OW = l->out_w;
    if (!ep->pool) {
        const size_t ohw = (size_t)OH * OW;
        for (size_t p0 = 0; p0 < ohw; p0 += TP) {
            const int n = ohw - p0 < TP ? (int)(ohw - p0) : TP;
            rescale_tile(OC, n, acc + p0 * OC, f, bias, ep->relu, vals);
            store_tile(OC, n, vals, y, ohw, p0);
        }
        return;
    }
    const int PH = OH / 2, PW = OW / 2;
    const size_t phw = (size_t)PH * PW;
    for (int py = 0; py < PH; py++)
        for (int px0 = 0; px0 < PW; px0 += TP) {
            const int n = PW - px0 < TP ? PW - px0 : TP;
            rescale_pool_tile(OC, n, acc + ((size_t)(2 * py) * OW + 2 * (size_t)px0) * OC, OW, f,
                              bias, ep->relu, vals);
            store_tile(OC, n, vals, y, phw, (size_t)py * PW + px0);
        }
}

/* f (rows) = sx * the weight scale of each output channel (the
 * reference's product), at the start of qm->tmp; returns f. */
static float *rescale_factors(qb_qmodel *qm, const qb_qlayer *q, float sx, size_t extra)
{
    qm->tmp = grow(qm->tmp, &qm->tmp_len, q->rows + extra, sizeof(float));
    for (size_t o = 0; o < q->rows; o++)
        qm->tmp[o] = sx * (qm->prec.gran == QB_GRAN_CHANNEL ? q->scales[o] : q->scales[0]);
    return qm->tmp;
}

/* Images per GEMM: as many as keep one chunk's working set (codes, padded
 * input, patches, accumulators) within this many bytes, a share of L2. */
#define CHUNK_BYTES ((size_t)384 << 10)

static void run_conv(qb_qmodel *qm, const qb_layer *l, const qb_qlayer *q,
                     const qb_conv_epilogue *ep, int b, const float *x, const float *bias,
                     float *y)
{
    const int C = l->in_c, OC = l->out_c;
    const size_t in_size = qb_layer_in_size(l), ohw = (size_t)l->out_h * l->out_w;
    const size_t ldr = (q->cols + IM2ROW_SLACK + 31) & ~(size_t)31;
    const size_t padded = (size_t)(l->in_h + 2 * l->pad) * (l->in_w + 2 * l->pad) * C;
    const size_t y_size =
        ep->pool ? (size_t)OC * (l->out_h / 2) * (l->out_w / 2) : (size_t)OC * ohw;
    const size_t per_image = in_size + padded + ohw * (ldr + (size_t)OC * sizeof(int32_t));
    size_t nb = CHUNK_BYTES / per_image;
    nb = nb < 1 ? 1 : nb > (size_t)b ? (size_t)b : nb;

    const float sx = act_scale(qm, x, (size_t)b * in_size);
    const float *f = rescale_factors(qm, q, sx, (size_t)TP * OC);
    float *vals = qm->tmp + OC;
    /* codes (nb, C, H, W), then the padded images (nb, Hp, Wp, C) */
    qm->xq = grow(qm->xq, &qm->xq_len, nb * (in_size + padded) + 2 * IM2ROW_SLACK, 1);
    qm->rows8 = grow(qm->rows8, &qm->rows8_len, nb * ohw * ldr, 1);
    qm->acc = grow(qm->acc, &qm->acc_len, nb * ohw * (size_t)OC, sizeof(int32_t));
    int8_t *codes = qm->xq, *xp = qm->xq + nb * in_size + IM2ROW_SLACK;
    for (size_t i0 = 0; i0 < (size_t)b; i0 += nb) {
        const size_t n = (size_t)b - i0 < nb ? (size_t)b - i0 : nb;
        quantize(qm, x + i0 * in_size, n * in_size, sx, codes);
        for (size_t i = 0; i < n; i++) {
            to_hwc(codes + i * in_size, C, l->in_h, l->in_w, l->pad, xp + i * padded);
            im2row_hwc(l, xp + i * padded, qm->rows8 + i * ohw * ldr, ldr);
        }
        /* acc (n*OH*OW, OC) = rows (n*OH*OW, k*k*C) * codes^T */
        qb_gemm_s8(&q->packed, (int)(n * ohw), qm->rows8, ldr, qm->acc, (size_t)OC);
        for (size_t i = 0; i < n; i++)
            epilogue(l, ep, qm->acc + i * ohw * OC, f, bias, vals, y + (i0 + i) * y_size);
    }
}

/* y (b, OUT) = (float)acc * f + bias. */
QB_CLONES
static void rescale_linear(int b, int OUT, const int32_t *restrict acc, const float *restrict f,
                           const float *restrict bias, float *restrict y)
{
    for (int i = 0; i < b; i++)
        for (int o = 0; o < OUT; o++) {
            float t = (float)acc[(size_t)i * OUT + o] * f[o];
            y[(size_t)i * OUT + o] = t + bias[o];
        }
}

static void run_linear(qb_qmodel *qm, const qb_layer *l, const qb_qlayer *q, int b,
                       const float *x, const float *bias, float *y)
{
    const size_t IN = q->cols, OUT = q->rows;
    (void)l;
    const float sx = act_scale(qm, x, (size_t)b * IN);
    const float *f = rescale_factors(qm, q, sx, 0);
    qm->xq = grow(qm->xq, &qm->xq_len, (size_t)b * IN, 1);
    quantize(qm, x, (size_t)b * IN, sx, qm->xq);
    qm->acc = grow(qm->acc, &qm->acc_len, (size_t)b * OUT, sizeof(int32_t));
    qb_gemm_s8(&q->packed, b, qm->xq, IN, qm->acc, OUT);
    rescale_linear(b, (int)OUT, qm->acc, f, bias, y);
}

static int hook_run(void *ctx, const qb_model *m, int layer, const qb_conv_epilogue *ep, int b,
                    const float *x, float *y)
{
    qb_qmodel *qm = ctx;
    const qb_qlayer *q = &qm->ql[layer];
    if (!qm->integer || !q->active) return 0;
    const qb_layer *l = &m->layers[layer];
    const float *bias = l->b_len ? m->params + l->b_off : qm->zero_bias;
    if (l->kind == QB_LAYER_CONV2D)
        run_conv(qm, l, q, ep, b, x, bias, y);
    else
        run_linear(qm, l, q, b, x, bias, y);
    return 1;
}

/* Pack a layer's codes for the GEMM. Conv weights (OC, C, k, k) are
 * packed as (OC, k, k, C), the K order of im2row_hwc's patches. */
static void pack_layer(qb_qlayer *q, const qb_layer *l)
{
    if (l->kind != QB_LAYER_CONV2D) {
        qb_s8_weights_pack(&q->packed, q->codes, (int)q->rows, (int)q->cols, q->cols,
                           QB_GEMM_S8_AUTO);
        return;
    }
    const size_t C = (size_t)l->in_c, KK = (size_t)l->k * l->k;
    int8_t *perm = xmalloc(q->rows * q->cols, 1);
    for (size_t o = 0; o < q->rows; o++)
        for (size_t c = 0; c < C; c++)
            for (size_t t = 0; t < KK; t++)
                perm[o * q->cols + t * C + c] = q->codes[o * q->cols + c * KK + t];
    qb_s8_weights_pack(&q->packed, perm, (int)q->rows, (int)q->cols, q->cols, QB_GEMM_S8_AUTO);
    free(perm);
}

/* ---- building ------------------------------------------------------------ */

int qb_qmodel_init(qb_qmodel *qm, const qb_model *fp, const qb_precision *prec,
                   float noise_std, uint64_t seed, qb_error *err)
{
    memset(qm, 0, sizeof *qm);
    if (!qb_precision_is_float(prec) && (prec->w_bits < 2 || prec->w_bits > 8))
        return QB_FAIL(err, "precision %s: weight bits %d outside 2..8", prec->name, prec->w_bits);
    if (!(noise_std >= 0.0f)) return QB_FAIL(err, "re-quantization noise must be >= 0");
    qm->prec = *prec;
    if (qb_precision_is_float(prec)) {
        qb_model_copy(&qm->model, fp);
        qm->model.hooks = NULL;
        qm->fold.n_src = qm->fold.n_dst = fp->n_layers;
        for (int i = 0; i < fp->n_layers; i++) {
            qm->fold.to[i] = qm->fold.from[i] = i;
            qm->fold.bn[i] = -1;
        }
        return 0;
    }
    /* the deployed layers: batch norms folded into their convolutions */
    if (qb_bn_fold(fp, &qm->model, &qm->fold, err)) {
        memset(qm, 0, sizeof *qm);
        return -1;
    }
    qm->folded = qm->fold.n_dst != qm->fold.n_src;
    const qb_model *dm = &qm->model;

    qb_rng rng;
    qb_rng_seed(&rng, qb_seed_derive(seed, "requant-noise"));
    for (int i = 0; i < dm->n_layers; i++) {
        if (!qb_precision_quantizes_layer(prec, dm, i)) continue;
        const qb_layer *l = &dm->layers[i];
        qb_qlayer *q = &qm->ql[i];
        q->active = 1;
        q->rows = (size_t)l->out_c;
        q->cols = l->w_len / q->rows;
        float *w = qm->model.params + l->w_off; /* (rows, cols), still FP32 */
        if (noise_std > 0.0f) {
            float s = qb_quant_scale(w, l->w_len, prec->w_bits);
            for (size_t j = 0; j < l->w_len; j++) w[j] += noise_std * s * qb_rng_normal(&rng);
        }
        q->codes = xmalloc(l->w_len, 1);
        q->scales = xmalloc(prec->gran == QB_GRAN_CHANNEL ? q->rows : 1, sizeof(float));
        qb_quantize_symmetric(w, q->rows, q->cols, prec->w_bits, prec->gran, prec->round,
                              q->codes, q->scales);
    }
    qb_qmodel_finish(qm);
    return 0;
}

void qb_qmodel_finish(qb_qmodel *qm)
{
    const qb_model *m = &qm->model;
    for (int i = 0; i < m->n_layers; i++) {
        qb_qlayer *q = &qm->ql[i];
        if (!q->active) continue;
        qb_dequantize(q->codes, q->rows, q->cols, qm->prec.gran, q->scales,
                      qm->model.params + m->layers[i].w_off);
    }
    qm->integer = qb_precision_is_integer(&qm->prec);
    if (qm->integer)
        for (int i = 0; i < m->n_layers; i++)
            if (qm->ql[i].active) pack_layer(&qm->ql[i], &m->layers[i]);
    int max_oc = 1;
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].out_c > max_oc) max_oc = m->layers[i].out_c;
    free(qm->zero_bias);
    qm->zero_bias = xcalloc((size_t)max_oc, sizeof(float));
    qm->hooks.ctx = qm;
    qm->hooks.input = hook_input;
    qm->hooks.run = hook_run;
    qm->model.hooks = &qm->hooks;
}

void qb_qmodel_free(qb_qmodel *qm)
{
    for (int i = 0; i < QB_MAX_LAYERS; i++) {
        free(qm->ql[i].codes);
        free(qm->ql[i].scales);
        if (qm->ql[i].packed.packed || qm->ql[i].packed.row_sums)
            qb_s8_weights_free(&qm->ql[i].packed);
    }
    free(qm->xq);
    free(qm->rows8);
    free(qm->acc);
    free(qm->tmp);
    free(qm->zero_bias);
    qb_model_free(&qm->model);
    memset(qm, 0, sizeof *qm);
}
