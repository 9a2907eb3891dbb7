#include "core/linear.h"

#include <cblas.h>

void qb_linear_forward(int b, int in, int out, const float *x, const float *w, const float *bias,
                       float *y)
{
    for (int i = 0; i < b; i++)
        for (int o = 0; o < out; o++) y[(size_t)i * out + o] = bias[o];
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, b, out, in, 1.0f, x, in, w, in, 1.0f, y,
                out);
}

void qb_linear_backward(int b, int in, int out, const float *x, const float *w, const float *dy,
                        float *dw, float *db, float *dx)
{
    if (dw)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, out, in, b, 1.0f, dy, out, x, in,
                    1.0f, dw, in);
    if (db)
        for (int i = 0; i < b; i++)
            for (int o = 0; o < out; o++) db[o] += dy[(size_t)i * out + o];
    if (dx)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, b, in, out, 1.0f, dy, out, w, in,
                    0.0f, dx, in);
}
