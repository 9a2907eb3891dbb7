/* Fully connected layer, PyTorch layout: weight (OUT, IN), bias (OUT). */
#ifndef QB_LINEAR_H
#define QB_LINEAR_H

/* y (b, OUT) = x (b, IN) * w^T + bias. */
void qb_linear_forward(int b, int in, int out, const float *x, const float *w, const float *bias,
                       float *y);
/* dw (OUT, IN) += dy^T x; db (OUT) += column sums of dy; dx (b, IN) = dy w
 * (overwritten). Each of dw, db, dx may be NULL: not computed. */
void qb_linear_backward(int b, int in, int out, const float *x, const float *w, const float *dy,
                        float *dw, float *db, float *dx);

#endif
