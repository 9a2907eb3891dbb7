#include "core/relu.h"

#include "core/simd.h"

QB_CLONES static void relu_fwd(size_t n, const float *x, float *y)
{
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

/* dx may alias dy exactly (element i is read before it is written). */
QB_CLONES static void relu_bwd(size_t n, const float *y, const float *dy, float *dx)
{
    for (size_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}

void qb_relu_forward(size_t n, const float *x, float *y) { relu_fwd(n, x, y); }

void qb_relu_backward(size_t n, const float *y, const float *dy, float *dx)
{
    relu_bwd(n, y, dy, dx);
}
