#include "core/maxpool.h"

#include <string.h>

/* The common 2x2 stride-2 window, unrolled: a quarter of PyTorch's LeNet
 * training time is max-pooling, so this path matters. */
static void pool2x2(int planes, int H, int W, int OH, int OW, const float *x, float *y,
                    int32_t *argmax)
{
    for (int p = 0; p < planes; p++) {
        const float *xp = x + (size_t)p * H * W;
        float *yp = y + (size_t)p * OH * OW;
        int32_t *ap = argmax ? argmax + (size_t)p * OH * OW : NULL;
        for (int oy = 0; oy < OH; oy++) {
            const float *r0 = xp + (size_t)(2 * oy) * W;
            const float *r1 = r0 + W;
            for (int ox = 0; ox < OW; ox++) {
                int ix = 2 * ox;
                float m = r0[ix];
                int32_t a = 2 * oy * W + ix;
                if (r0[ix + 1] > m) { m = r0[ix + 1]; a = 2 * oy * W + ix + 1; }
                if (r1[ix] > m) { m = r1[ix]; a = (2 * oy + 1) * W + ix; }
                if (r1[ix + 1] > m) { m = r1[ix + 1]; a = (2 * oy + 1) * W + ix + 1; }
                yp[oy * OW + ox] = m;
                if (ap) ap[oy * OW + ox] = a;
            }
        }
    }
}

void qb_maxpool_forward(const qb_layer *l, int b, const float *x, float *y, int32_t *argmax)
{
    const int H = l->in_h, W = l->in_w, OH = l->out_h, OW = l->out_w, K = l->k, S = l->stride;
    const int planes = b * l->in_c;
    if (K == 2 && S == 2) {
        pool2x2(planes, H, W, OH, OW, x, y, argmax);
        return;
    }
    for (int p = 0; p < planes; p++) {
        const float *xp = x + (size_t)p * H * W;
        for (int oy = 0; oy < OH; oy++)
            for (int ox = 0; ox < OW; ox++) {
                int32_t a = oy * S * W + ox * S;
                float m = xp[a];
                for (int ky = 0; ky < K; ky++)
                    for (int kx = 0; kx < K; kx++) {
                        int32_t i = (oy * S + ky) * W + ox * S + kx;
                        if (xp[i] > m) { m = xp[i]; a = i; }
                    }
                size_t o = (size_t)p * OH * OW + (size_t)oy * OW + ox;
                y[o] = m;
                if (argmax) argmax[o] = a;
            }
    }
}

void qb_maxpool_backward(const qb_layer *l, int b, const float *dy, const int32_t *argmax,
                         float *dx)
{
    const size_t hw = (size_t)l->in_h * l->in_w, ohw = (size_t)l->out_h * l->out_w;
    const int planes = b * l->in_c;
    memset(dx, 0, sizeof(float) * (size_t)planes * hw);
    for (int p = 0; p < planes; p++) {
        float *dxp = dx + (size_t)p * hw;
        const float *dyp = dy + (size_t)p * ohw;
        const int32_t *ap = argmax + (size_t)p * ohw;
        for (size_t o = 0; o < ohw; o++) dxp[ap[o]] += dyp[o];
    }
}
