#include "core/relu.h"

#include "core/simd.h"

QB_CLONES void qb_relu_forward(size_t n, const float *x, float *y)
{
#pragma GCC ivdep
    for (size_t i = 0; i < n; i++) y[i] = x[i] > 0.0f ? x[i] : 0.0f;
}

/* dx may alias dy exactly (element i is read before it is written), so the
 * loop carries no dependence and vectorises. */
QB_CLONES void qb_relu_backward(size_t n, const float *y, const float *dy, float *dx)
{
#pragma GCC ivdep
    for (size_t i = 0; i < n; i++) dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
}
