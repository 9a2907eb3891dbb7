/* SGD with momentum and weight decay (PyTorch's torch.optim.SGD semantics:
 * g = grad + wd * p; v = mu * v + g; p -= lr * v), and the learning-rate
 * schedules. The velocity has the parameter buffer's layout: one flat loop. */
#ifndef QB_SGD_H
#define QB_SGD_H

#include <stddef.h>

#include "core/error.h"

typedef enum qb_lr_schedule {
    QB_LR_CONSTANT = 0,
    QB_LR_COSINE,   /* lr * (1 + cos(pi * t / T)) / 2, per step */
    QB_LR_STEP,     /* lr * 0.1 at 50% and again at 75% of the steps */
} qb_lr_schedule;

typedef struct qb_sgd {
    size_t n;
    float momentum, weight_decay;
    float *velocity; /* (n), owned */
} qb_sgd;

void qb_sgd_init(qb_sgd *s, size_t n, float momentum, float weight_decay);
void qb_sgd_free(qb_sgd *s);
void qb_sgd_step(qb_sgd *s, float *params, const float *grads, float lr);

/* Learning rate at step t of total steps. */
float qb_lr_at(qb_lr_schedule sched, float base, long t, long total);
int qb_lr_schedule_parse(const char *name, qb_lr_schedule *out, qb_error *err);
const char *qb_lr_schedule_name(qb_lr_schedule s);

#endif
