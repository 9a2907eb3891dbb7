/* Softmax cross-entropy over logits (b, classes), mean over the batch. */
#ifndef QB_SOFTMAX_XENT_H
#define QB_SOFTMAX_XENT_H

#include <stdint.h>

/* Returns the mean loss. If dlogits is not NULL it receives
 * (softmax - onehot(label)) / b, the gradient of the mean loss. */
float qb_softmax_xent(int b, int classes, const float *logits, const uint8_t *labels,
                      float *dlogits);

/* probs (b, classes) = softmax(logits), numerically stable. */
void qb_softmax(int b, int classes, const float *logits, float *probs);

#endif
