#include "core/batchnorm.h"

#include <math.h>
#include <stdlib.h>

#include "core/layer.h"
#include "core/simd.h"
#include "core/xalloc.h"

/* y[n, c, :] = x * a[c] + s[c]. */
QB_CLONES static void affine(int b, int C, int HW, const float *x, const float *a,
                             const float *s, float *y)
{
    for (int n = 0; n < b; n++)
        for (int c = 0; c < C; c++) {
            const float *xp = x + ((size_t)n * C + c) * HW;
            float *yp = y + ((size_t)n * C + c) * HW;
            const float ac = a[c], sc = s[c];
            for (int p = 0; p < HW; p++) yp[p] = xp[p] * ac + sc;
        }
}

/* Sums in a fixed order that vectorises: pixel p of every plane goes to
 * lane p % QB_BN_LANES, the lanes are added up in lane order at the end.
 * Every CPU and every clone computes the same bits (no FMA contraction). */
#define QB_BN_LANES 32

static double lanes_total(const double *l)
{
    double s = 0.0;
    for (int k = 0; k < QB_BN_LANES; k++) s += l[k];
    return s;
}

QB_CLONES static double channel_sum(int b, int C, int HW, const float *x, int c)
{
    double l[QB_BN_LANES] = {0};
    for (int n = 0; n < b; n++) {
        const float *xp = x + ((size_t)n * C + c) * HW;
        int p = 0;
        for (; p + QB_BN_LANES <= HW; p += QB_BN_LANES)
            for (int k = 0; k < QB_BN_LANES; k++) l[k] += xp[p + k];
        for (int k = 0; p < HW; p++, k++) l[k] += xp[p];
    }
    return lanes_total(l);
}

/* sum over the channel of (x - mean)^2 */
QB_CLONES static double channel_ss(int b, int C, int HW, const float *x, int c, double mean)
{
    double l[QB_BN_LANES] = {0};
    for (int n = 0; n < b; n++) {
        const float *xp = x + ((size_t)n * C + c) * HW;
        int p = 0;
        for (; p + QB_BN_LANES <= HW; p += QB_BN_LANES)
            for (int k = 0; k < QB_BN_LANES; k++) {
                double d = xp[p + k] - mean;
                l[k] += d * d;
            }
        for (int k = 0; p < HW; p++, k++) {
            double d = xp[p] - mean;
            l[k] += d * d;
        }
    }
    return lanes_total(l);
}

void qb_bn_forward_train(int b, int C, int HW, const float *x, const float *gamma,
                         const float *beta, float *y, float *stat, float *uvar)
{
    const double N = (double)b * HW;
    float *a = xmalloc((size_t)C, 2 * sizeof(float)), *s = a + C;
    for (int c = 0; c < C; c++) {
        double mean = channel_sum(b, C, HW, x, c) / N;
        double ss = channel_ss(b, C, HW, x, c, mean);
        double var = ss / N;
        double invstd = 1.0 / sqrt(var + (double)QB_BN_EPS);
        stat[c] = (float)mean;
        stat[C + c] = (float)invstd;
        uvar[c] = (float)(N > 1 ? ss / (N - 1) : var);
        a[c] = (float)(gamma[c] * invstd);
        s[c] = (float)(beta[c] - mean * gamma[c] * invstd);
    }
    affine(b, C, HW, x, a, s, y);
    free(a);
}

void qb_bn_eval_affine(int C, const float *gamma, const float *beta, const float *running,
                       float *a, float *c)
{
    for (int k = 0; k < C; k++) {
        double invstd = 1.0 / sqrt((double)running[C + k] + (double)QB_BN_EPS);
        a[k] = (float)(gamma[k] * invstd);
        c[k] = (float)(beta[k] - running[k] * gamma[k] * invstd);
    }
}

void qb_bn_forward_eval(int b, int C, int HW, const float *x, const float *gamma,
                        const float *beta, const float *running, float *y)
{
    float *a = xmalloc((size_t)C, 2 * sizeof(float)), *s = a + C;
    qb_bn_eval_affine(C, gamma, beta, running, a, s);
    affine(b, C, HW, x, a, s, y);
    free(a);
}

/* sum(dy) and sum(dy * (x - mean)) of channel c, in lanes as channel_sum. */
QB_CLONES static void dy_sums(int b, int C, int HW, const float *x, const float *dy, int c,
                              double mean, double *sdy, double *sdyx)
{
    double l1[QB_BN_LANES] = {0}, l2[QB_BN_LANES] = {0};
    for (int n = 0; n < b; n++) {
        const float *xp = x + ((size_t)n * C + c) * HW;
        const float *gp = dy + ((size_t)n * C + c) * HW;
        int p = 0;
        for (; p + QB_BN_LANES <= HW; p += QB_BN_LANES)
            for (int k = 0; k < QB_BN_LANES; k++) {
                l1[k] += gp[p + k];
                l2[k] += gp[p + k] * (xp[p + k] - mean);
            }
        for (int k = 0; p < HW; p++, k++) {
            l1[k] += gp[p];
            l2[k] += gp[p] * (xp[p] - mean);
        }
    }
    *sdy = lanes_total(l1);
    *sdyx = lanes_total(l2);
}

/* dx of channel c (may alias dy exactly: each element is read first). */
QB_CLONES static void dx_train(int b, int C, int HW, int c, const float *x, const float *dy,
                               float k, float m0, float kx, float mf, float *dx)
{
    for (int n = 0; n < b; n++) {
        const float *xp = x + ((size_t)n * C + c) * HW;
        const float *gp = dy + ((size_t)n * C + c) * HW;
        float *dp = dx + ((size_t)n * C + c) * HW;
        for (int p = 0; p < HW; p++) dp[p] = k * (gp[p] - m0 - (xp[p] - mf) * kx);
    }
}

void qb_bn_backward_train(int b, int C, int HW, const float *x, const float *gamma,
                          const float *stat, const float *dy, float *dgamma, float *dbeta,
                          float *dx)
{
    const double N = (double)b * HW;
    for (int c = 0; c < C; c++) {
        double mean = stat[c], invstd = stat[C + c], sdy, sdyx;
        dy_sums(b, C, HW, x, dy, c, mean, &sdy, &sdyx);
        if (dgamma) dgamma[c] += (float)(sdyx * invstd);
        if (dbeta) dbeta[c] += (float)sdy;
        if (!dx) continue;
        /* dx = gamma*invstd * (dy - sdy/N - (x - mean) * invstd^2 * sdyx/N) */
        const float k = (float)(gamma[c] * invstd);
        const float m0 = (float)(sdy / N);
        const float kx = (float)(invstd * invstd * sdyx / N);
        const float mf = (float)mean;
        dx_train(b, C, HW, c, x, dy, k, m0, kx, mf, dx);
    }
}

void qb_bn_backward_eval(int b, int C, int HW, const float *x, const float *gamma,
                         const float *running, const float *dy, float *dgamma, float *dbeta,
                         float *dx)
{
    for (int c = 0; c < C; c++) {
        double invstd = 1.0 / sqrt((double)running[C + c] + (double)QB_BN_EPS);
        if (dgamma || dbeta) {
            double sdy, sdyx;
            dy_sums(b, C, HW, x, dy, c, running[c], &sdy, &sdyx);
            if (dgamma) dgamma[c] += (float)(sdyx * invstd);
            if (dbeta) dbeta[c] += (float)sdy;
        }
        if (!dx) continue;
        const float k = (float)(gamma[c] * invstd);
        for (int n = 0; n < b; n++) {
            const float *gp = dy + ((size_t)n * C + c) * HW;
            float *dp = dx + ((size_t)n * C + c) * HW;
            for (int p = 0; p < HW; p++) dp[p] = gp[p] * k;
        }
    }
}

void qb_bn_running_update(int C, const float *stat, const float *uvar, float momentum,
                          float *running)
{
    for (int c = 0; c < C; c++) {
        running[c] = (1.0f - momentum) * running[c] + momentum * stat[c];
        running[C + c] = (1.0f - momentum) * running[C + c] + momentum * uvar[c];
    }
}
