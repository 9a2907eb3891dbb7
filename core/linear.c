#include "core/linear.h"

#include "core/gemm_f32.h"

void qb_linear_forward(int b, int in, int out, const float *x, const float *w, const float *bias,
                       float *y)
{
    for (int i = 0; i < b; i++)
        for (int o = 0; o < out; o++) y[(size_t)i * out + o] = bias[o];
    /* y (b, out) += x (b, in) * w (out, in)^T */
    qb_gemm_f32(QB_GEMM_N, QB_GEMM_T, b, out, in, x, (size_t)in, w, (size_t)in, 1, y, (size_t)out);
}

void qb_linear_backward(int b, int in, int out, const float *x, const float *w, const float *dy,
                        float *dw, float *db, float *dx)
{
    if (dw)
        /* dw (out, in) += dy (b, out)^T * x (b, in) */
        qb_gemm_f32(QB_GEMM_T, QB_GEMM_N, out, in, b, dy, (size_t)out, x, (size_t)in, 1, dw,
                    (size_t)in);
    if (db)
        for (int i = 0; i < b; i++)
            for (int o = 0; o < out; o++) db[o] += dy[(size_t)i * out + o];
    if (dx)
        /* dx (b, in) = dy (b, out) * w (out, in) */
        qb_gemm_f32(QB_GEMM_N, QB_GEMM_N, b, in, out, dy, (size_t)out, w, (size_t)in, 0, dx,
                    (size_t)in);
}
