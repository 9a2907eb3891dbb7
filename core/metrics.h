/* Clean accuracy (CA) and attack success rate (ASR). */
#ifndef QB_METRICS_H
#define QB_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "core/dataset.h"
#include "core/model.h"

/* pred (d->n) = argmax of the model's logits for every sample (first
 * maximum on ties). Evaluates in batches of 256. */
void qb_model_predict(const qb_model *m, const qb_dataset *d, uint8_t *pred);

/* Fraction of d's samples classified as their label. */
double qb_metric_accuracy(const qb_model *m, const qb_dataset *d);

/* Fraction of d's samples classified as `target`. With d = the ASR set
 * (qb_poison_asr_set: triggered test images whose true label is not the
 * target) this is the attack success rate. */
double qb_metric_target_rate(const qb_model *m, const qb_dataset *d, int target);

#endif
