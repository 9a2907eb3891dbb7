#include "core/sgd.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"

void qb_sgd_init(qb_sgd *s, size_t n, float momentum, float weight_decay)
{
    s->n = n;
    s->momentum = momentum;
    s->weight_decay = weight_decay;
    s->velocity = xcalloc(n, sizeof(float));
}

void qb_sgd_free(qb_sgd *s)
{
    free(s->velocity);
    memset(s, 0, sizeof *s);
}

void qb_sgd_step(qb_sgd *s, float *params, const float *grads, float lr)
{
    const float mu = s->momentum, wd = s->weight_decay;
    float *v = s->velocity;
    for (size_t i = 0; i < s->n; i++) {
        float g = grads[i] + wd * params[i];
        v[i] = mu * v[i] + g;
        params[i] -= lr * v[i];
    }
}

float qb_lr_at(qb_lr_schedule sched, float base, long t, long total)
{
    if (total <= 0) return base;
    switch (sched) {
    case QB_LR_CONSTANT: return base;
    case QB_LR_COSINE: return base * 0.5f * (1.0f + (float)cos(M_PI * (double)t / (double)total));
    case QB_LR_STEP:
        if (4 * t >= 3 * total) return base * 0.01f;
        if (2 * t >= total) return base * 0.1f;
        return base;
    }
    return base;
}

static const char *const sched_names[] = {"constant", "cosine", "step"};

int qb_lr_schedule_parse(const char *name, qb_lr_schedule *out, qb_error *err)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(name, sched_names[i]) == 0) {
            *out = (qb_lr_schedule)i;
            return 0;
        }
    return QB_FAIL(err, "unknown learning-rate schedule \"%s\"; expected one of: constant, cosine, step",
                   name);
}

const char *qb_lr_schedule_name(qb_lr_schedule s)
{
    return (unsigned)s < 3 ? sched_names[s] : "?";
}
