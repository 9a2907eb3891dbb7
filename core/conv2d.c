#include "core/conv2d.h"

#include <cblas.h>
#include <string.h>

/* Chunk budget: im2col (K x N) plus the GEMM output (OC x N) of one chunk
 * should stay within about 1 MiB so they remain in L2 between im2col, the
 * GEMM and the scatter. */
#define QB_CONV_CHUNK_FLOATS (256 * 1024)

static int conv_chunk(const qb_layer *l, int b)
{
    size_t k = (size_t)l->in_c * l->k * l->k;
    size_t per_image = (k + (size_t)l->out_c) * l->out_h * l->out_w;
    size_t nb = QB_CONV_CHUNK_FLOATS / (per_image ? per_image : 1);
    if (nb < 1) nb = 1;
    if (nb > (size_t)b) nb = (size_t)b;
    return (int)nb;
}

size_t qb_conv2d_work_size(const qb_layer *l, int b)
{
    size_t k = (size_t)l->in_c * l->k * l->k;
    size_t n = (size_t)conv_chunk(l, b) * l->out_h * l->out_w;
    return (k + (size_t)l->out_c) * n;
}

void qb_im2col(const qb_layer *l, int nb, const float *x, float *col)
{
    const int C = l->in_c, H = l->in_h, W = l->in_w, K = l->k, S = l->stride, P = l->pad;
    const int OH = l->out_h, OW = l->out_w;
    const size_t ohw = (size_t)OH * OW, n = (size_t)nb * ohw;
    for (int c = 0; c < C; c++)
        for (int ky = 0; ky < K; ky++)
            for (int kx = 0; kx < K; kx++) {
                float *row = col + ((size_t)(c * K + ky) * K + kx) * n;
                /* output columns ox whose input column ix = ox*S - P + kx is inside [0, W) */
                int ox_lo = 0, ox_hi = OW;
                while (ox_lo < OW && ox_lo * S - P + kx < 0) ox_lo++;
                while (ox_hi > ox_lo && (ox_hi - 1) * S - P + kx >= W) ox_hi--;
                for (int i = 0; i < nb; i++) {
                    const float *plane = x + ((size_t)i * C + c) * H * W;
                    float *out = row + (size_t)i * ohw;
                    for (int oy = 0; oy < OH; oy++, out += OW) {
                        int iy = oy * S - P + ky;
                        if (iy < 0 || iy >= H) {
                            memset(out, 0, sizeof(float) * OW);
                            continue;
                        }
                        const float *src = plane + (size_t)iy * W - P + kx;
                        for (int ox = 0; ox < ox_lo; ox++) out[ox] = 0.0f;
                        if (S == 1) {
                            memcpy(out + ox_lo, src + ox_lo, sizeof(float) * (ox_hi - ox_lo));
                        } else {
                            for (int ox = ox_lo; ox < ox_hi; ox++) out[ox] = src[ox * S];
                        }
                        for (int ox = ox_hi; ox < OW; ox++) out[ox] = 0.0f;
                    }
                }
            }
}

void qb_col2im(const qb_layer *l, int nb, const float *dcol, float *dx)
{
    const int C = l->in_c, H = l->in_h, W = l->in_w, K = l->k, S = l->stride, P = l->pad;
    const int OH = l->out_h, OW = l->out_w;
    const size_t ohw = (size_t)OH * OW, n = (size_t)nb * ohw;
    memset(dx, 0, sizeof(float) * (size_t)nb * C * H * W);
    for (int c = 0; c < C; c++)
        for (int ky = 0; ky < K; ky++)
            for (int kx = 0; kx < K; kx++) {
                const float *row = dcol + ((size_t)(c * K + ky) * K + kx) * n;
                int ox_lo = 0, ox_hi = OW;
                while (ox_lo < OW && ox_lo * S - P + kx < 0) ox_lo++;
                while (ox_hi > ox_lo && (ox_hi - 1) * S - P + kx >= W) ox_hi--;
                for (int i = 0; i < nb; i++) {
                    float *plane = dx + ((size_t)i * C + c) * H * W;
                    const float *in = row + (size_t)i * ohw;
                    for (int oy = 0; oy < OH; oy++, in += OW) {
                        int iy = oy * S - P + ky;
                        if (iy < 0 || iy >= H) continue;
                        float *dst = plane + (size_t)iy * W - P + kx;
                        for (int ox = ox_lo; ox < ox_hi; ox++) dst[ox * S] += in[ox];
                    }
                }
            }
}

void qb_conv2d_forward(const qb_layer *l, int b, const float *x, const float *w,
                       const float *bias, float *y, float *work)
{
    const int OC = l->out_c, K = l->in_c * l->k * l->k;
    const size_t ohw = (size_t)l->out_h * l->out_w;
    const size_t in_size = qb_layer_in_size(l), out_size = qb_layer_out_size(l);
    const int chunk = conv_chunk(l, b);
    for (int i0 = 0; i0 < b; i0 += chunk) {
        int nb = b - i0 < chunk ? b - i0 : chunk;
        size_t n = (size_t)nb * ohw;
        float *col = work;                   /* (K, n) */
        float *tmp = work + (size_t)K * n;   /* (OC, n) */
        qb_im2col(l, nb, x + (size_t)i0 * in_size, col);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, OC, (int)n, K, 1.0f, w, K, col,
                    (int)n, 0.0f, tmp, (int)n);
        for (int i = 0; i < nb; i++) {
            float *yi = y + (size_t)(i0 + i) * out_size;
            for (int oc = 0; oc < OC; oc++) {
                const float *src = tmp + (size_t)oc * n + (size_t)i * ohw;
                float *dst = yi + (size_t)oc * ohw;
                const float bv = bias[oc];
                for (size_t p = 0; p < ohw; p++) dst[p] = src[p] + bv;
            }
        }
    }
}

void qb_conv2d_backward(const qb_layer *l, int b, const float *x, const float *w,
                        const float *dy, float *dw, float *db, float *dx, float *work)
{
    const int OC = l->out_c, K = l->in_c * l->k * l->k;
    const size_t ohw = (size_t)l->out_h * l->out_w;
    const size_t in_size = qb_layer_in_size(l), out_size = qb_layer_out_size(l);
    const int chunk = conv_chunk(l, b);
    for (int i0 = 0; i0 < b; i0 += chunk) {
        int nb = b - i0 < chunk ? b - i0 : chunk;
        size_t n = (size_t)nb * ohw;
        float *col = work;                   /* (K, n), reused for dcol */
        float *dyt = work + (size_t)K * n;   /* (OC, n) */
        for (int i = 0; i < nb; i++) {
            const float *dyi = dy + (size_t)(i0 + i) * out_size;
            for (int oc = 0; oc < OC; oc++) {
                const float *src = dyi + (size_t)oc * ohw;
                float *dst = dyt + (size_t)oc * n + (size_t)i * ohw;
                float s = 0.0f;
                for (size_t p = 0; p < ohw; p++) {
                    dst[p] = src[p];
                    s += src[p];
                }
                db[oc] += s;
            }
        }
        qb_im2col(l, nb, x + (size_t)i0 * in_size, col);
        /* dw (OC, K) += dyt (OC, n) * col^T (n, K) */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, OC, K, (int)n, 1.0f, dyt, (int)n,
                    col, (int)n, 1.0f, dw, K);
        if (dx) {
            /* dcol (K, n) = w^T (K, OC) * dyt (OC, n) */
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, (int)n, OC, 1.0f, w, K, dyt,
                        (int)n, 0.0f, col, (int)n);
            qb_col2im(l, nb, col, dx + (size_t)i0 * in_size);
        }
    }
}
