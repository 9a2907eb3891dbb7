/* Neural Cleanse internals (defenses/nc.c), exposed for the tests: the
 * Adam optimizer of the trigger and the NC objective with its gradient.
 * The defense itself is qb_defense_nc (defenses/defense.h). */
#ifndef QB_NC_H
#define QB_NC_H

#include <stddef.h>
#include <stdint.h>

#include "core/dataset.h"
#include "core/model.h"

/* Adam in the form of Kingma & Ba's Section 2 ("efficient version", the
 * form Keras' Adam and so the original NC code use):
 *   t += 1; m = b1 m + (1 - b1) g; v = b2 v + (1 - b2) g^2;
 *   lr_t = lr sqrt(1 - b2^t) / (1 - b1^t); theta -= lr_t m / (sqrt(v) + eps). */
typedef struct qb_nc_adam {
    size_t n;
    double lr, beta1, beta2, eps;
    long t;
    float *m, *v; /* (n) moments, owned */
} qb_nc_adam;

void qb_nc_adam_init(qb_nc_adam *o, size_t n, double lr, double beta1, double beta2, double eps);
/* Zero the moments and the step count (a new label's optimisation). */
void qb_nc_adam_reset(qb_nc_adam *o);
/* One update of theta (n) with gradient g (n). */
void qb_nc_adam_step(qb_nc_adam *o, float *theta, const float *g);
void qb_nc_adam_free(qb_nc_adam *o);

/* The epsilon of the tanh parameterisation (Keras' K.epsilon(), as in the
 * original): m = tanh(a) / (2 - eps) + 1/2 lies strictly inside (0, 1). */
#define QB_NC_TANH_EPS 1e-7

/* One trigger being reverse-engineered and the buffers of its steps, all
 * allocated once (no allocation per step).
 *
 * theta holds the free variables in one block, so Adam is one flat loop:
 * theta[0 .. hw) is the mask in tanh space (a), theta[hw .. hw + chw) the
 * pattern in tanh space (b). mask = tanh(a) / (2 - eps) + 1/2 (h, w),
 * shared by the channels; pattern = tanh(b) / (2 - eps) + 1/2 (c, h, w);
 * both in [0, 1], the pixel range of the model's inputs. */
typedef struct qb_nc_trigger {
    const qb_model *model;
    int c, h, w, classes, max_batch;
    size_t hw, chw, n_theta;
    float *theta;    /* (hw + chw) */
    float *grad;     /* (hw + chw) d loss / d theta of the last step */
    float *mask;     /* (h, w) from theta */
    float *pattern;  /* (c, h, w) from theta */
    float *xadv;     /* (max_batch, c, h, w) triggered inputs */
    float *dx;       /* (max_batch, c, h, w) d CE / d xadv */
    float *dlogits;  /* (max_batch, classes) */
    uint8_t *labels; /* (max_batch) */
    qb_norm norm;    /* the model's input normalisation (off after init):
                        the trigger lives in pixel space, [0, 1], and the
                        stamped image is normalised before the model */
    qb_model_ws ws;
} qb_nc_trigger;

void qb_nc_trigger_init(qb_nc_trigger *t, const qb_model *m, int max_batch);
void qb_nc_trigger_free(qb_nc_trigger *t);

/* mask and pattern from theta. */
void qb_nc_trigger_decode(qb_nc_trigger *t);

/* Stamp the current mask/pattern (decode first) onto b images x (b, c, h,
 * w) of pixels in [0, 1], rows given by idx (NULL: consecutive): xadv =
 * norm((1 - mask) x + mask pattern), the model's input. */
void qb_nc_trigger_apply(qb_nc_trigger *t, const float *x, const uint32_t *idx, int b);

/* The NC objective on b images x (rows idx of x, or consecutive if idx is
 * NULL) for target label y:
 *   loss = mean_i CE(f(xadv_i), y) + cost * |mask|_1
 * computed in training mode (straight-through gradients of a quantized
 * model). x are pixels in [0, 1]; the gradient is taken through the
 * normalisation. Decodes theta, writes d loss / d theta into t->grad, *hits =
 * number of xadv classified y (argmax, first maximum on ties), *l1 =
 * |mask|_1 at this theta. Returns the loss. */
double qb_nc_objective(qb_nc_trigger *t, const float *x, const uint32_t *idx, int b, int y,
                       double cost, int *hits, double *l1);

/* The cost schedule and early stop of the original code, one call per
 * epoch (see nc.c for the rule and where it comes from). */
typedef struct qb_nc_schedule {
    double init_cost, cost;
    int patience, es_patience;
    double reg_best;      /* smallest mean |m|_1 of a successful epoch (inf: none) */
    double es_reg_best;   /* reg_best as of the previous epoch's check */
    int set_counter, up_counter, down_counter, es_counter;
    int up_flag, down_flag;
} qb_nc_schedule;

/* Attack-success threshold of a reversed trigger (docs/DESIGN.md, fixed). */
#define QB_NC_SUCCESS 0.99
/* Early stop counts epochs whose reg_best is >= this times the previous
 * best, i.e. did not decrease (the original's GTSRB setting, 1.0). */
#define QB_NC_EARLY_STOP_THRESHOLD 1.0

enum { QB_NC_SAVE = 1, QB_NC_STOP = 2 };

/* Cost starts at 0 (the original resets it to zero, then sets init_cost
 * after `patience` successful epochs). */
void qb_nc_schedule_init(qb_nc_schedule *s, double init_cost, int patience, int es_patience);
/* End of an epoch with mean attack accuracy acc and mean |m|_1 reg.
 * Returns QB_NC_SAVE if the trigger as it is now becomes the best (acc >=
 * threshold and reg < reg_best), | QB_NC_STOP to stop early. Updates
 * s->cost for the next epoch (unless stopping). */
int qb_nc_schedule_epoch(qb_nc_schedule *s, double acc, double reg);

/* The flagging rule of docs/DESIGN.md on per-label norms l1 (n): index (n)
 * receives the MAD anomaly index; flagged[i] = 1 when l1[i] <= median and
 * index[i] > 2 (one-sided: only unusually small triggers). Returns the
 * number flagged. */
int qb_nc_flag(const double *l1, size_t n, double *index, uint8_t *flagged);
#define QB_NC_ANOMALY_THRESHOLD 2.0

#endif
