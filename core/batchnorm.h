/* 2-D batch normalisation (PyTorch's BatchNorm2d), NCHW, per channel:
 *   y = gamma * (x - mean) / sqrt(var + eps) + beta
 * computed as y = x * a + c with a = gamma / sqrt(var + eps) and
 * c = beta - mean * a. Training mode uses the batch's mean and biased
 * variance over (N, H, W); evaluation mode the running statistics. Every
 * reduction is a double-precision sum in a fixed order (n, then pixels). */
#ifndef QB_BATCHNORM_H
#define QB_BATCHNORM_H

#include <stddef.h>

/* Training mode. x, y (b, C, HW). stat (2C) receives the batch mean and
 * 1/sqrt(var + eps) (kept for the backward pass), uvar (C) the unbiased
 * variance (for the running statistics; var itself when b*HW == 1). */
void qb_bn_forward_train(int b, int C, int HW, const float *x, const float *gamma,
                         const float *beta, float *y, float *stat, float *uvar);

/* Evaluation mode: running (2C) = running mean then running variance. */
void qb_bn_forward_eval(int b, int C, int HW, const float *x, const float *gamma,
                        const float *beta, const float *running, float *y);

/* Backward of the training mode with the forward's stat: dx (b, C, HW)
 * overwritten (dx NULL: not computed); dgamma, dbeta (C) accumulated (NULL:
 * not computed). */
void qb_bn_backward_train(int b, int C, int HW, const float *x, const float *gamma,
                          const float *stat, const float *dy, float *dgamma, float *dbeta,
                          float *dx);

/* Backward of the evaluation mode (a per-channel affine map). */
void qb_bn_backward_eval(int b, int C, int HW, const float *x, const float *gamma,
                         const float *running, const float *dy, float *dgamma, float *dbeta,
                         float *dx);

/* running = (1 - momentum) * running + momentum * batch, for the mean and
 * the unbiased variance. */
void qb_bn_running_update(int C, const float *stat, const float *uvar, float momentum,
                          float *running);

/* The per-channel a and c of the evaluation mode (a folded convolution's
 * scale and shift). */
void qb_bn_eval_affine(int C, const float *gamma, const float *beta, const float *running,
                       float *a, float *c);

#endif
