/* Global average pooling, NCHW: (C, H, W) -> (C, 1, 1), as PyTorch's
 * AdaptiveAvgPool2d((1, 1)). Each mean is a double sum in pixel order. */
#ifndef QB_AVGPOOL_H
#define QB_AVGPOOL_H

/* y (b, C) = mean of x (b, C, HW) over HW. */
void qb_avgpool_forward(int b, int C, int HW, const float *x, float *y);
/* dx (b, C, HW) = dy (b, C) / HW, overwritten. */
void qb_avgpool_backward(int b, int C, int HW, const float *dy, float *dx);

#endif
