/* ReLU, elementwise over n floats. */
#ifndef QB_RELU_H
#define QB_RELU_H

#include <stddef.h>

void qb_relu_forward(size_t n, const float *x, float *y);
/* dx = dy where the forward output y > 0, else 0 (dx may alias dy). */
void qb_relu_backward(size_t n, const float *y, const float *dy, float *dx);

#endif
