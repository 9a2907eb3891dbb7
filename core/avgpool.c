#include "core/avgpool.h"

#include <stddef.h>

void qb_avgpool_forward(int b, int C, int HW, const float *x, float *y)
{
    for (size_t i = 0; i < (size_t)b * C; i++) {
        const float *xp = x + i * HW;
        double s = 0.0;
        for (int p = 0; p < HW; p++) s += xp[p];
        y[i] = (float)(s / HW);
    }
}

void qb_avgpool_backward(int b, int C, int HW, const float *dy, float *dx)
{
    for (size_t i = 0; i < (size_t)b * C; i++) {
        const float g = dy[i] / (float)HW;
        float *dp = dx + i * HW;
        for (int p = 0; p < HW; p++) dp[p] = g;
    }
}
