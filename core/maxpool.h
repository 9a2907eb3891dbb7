/* Max pooling, NCHW, square window, no padding, floor output size
 * (PyTorch's default). The forward pass records the argmax of every
 * window (index within its H*W plane; first maximum on ties, as PyTorch)
 * so the backward pass is a scatter. */
#ifndef QB_MAXPOOL_H
#define QB_MAXPOOL_H

#include <stdint.h>

#include "core/layer.h"

/* y (b, C, OH, OW); argmax (b, C, OH, OW), may be NULL for inference. */
void qb_maxpool_forward(const qb_layer *l, int b, const float *x, float *y, int32_t *argmax);
/* dx (b, C, H, W) overwritten from dy (b, C, OH, OW) and the forward argmax. */
void qb_maxpool_backward(const qb_layer *l, int b, const float *dy, const int32_t *argmax,
                         float *dx);

#endif
