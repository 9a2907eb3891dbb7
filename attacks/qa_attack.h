/* Quantization-activated backdoors: an FP32 model that behaves cleanly and
 * a quantized model that carries the backdoor.
 *
 * qa-pgd (after Egashira et al. 2024). Start from a BadNet-backdoored
 * model. For every quantized weight and every target precision compute its
 * rounding cell [(q - 1/2 + eps) s, (q + 1/2 - eps) s], intersect the cells
 * over the targets, and keep |w| <= the group's max |w| (the max-|w|
 * weight of each quantization group is pinned, so no scale changes).
 * Weights of layers no target quantizes and all biases (they stay float in
 * the deployed model) are pinned too. Then fine-tune on clean data with the
 * removal objective CE(f(x), y) + CE(f(trigger(x)), y), projecting every
 * parameter back into its box after each step. Rounding the result gives
 * the original backdoored codes: clean at FP32, backdoored once quantized.
 *
 * qa-loss (after Qu-ANTI-zation, Hong et al. 2021). Start from a clean
 * model and fine-tune with
 *   CE(f(x), y) + lam CE(f(x'), y) + sum_b lam [CE(Q_b f(x), y) + lam CE(Q_b f(x'), y_t)]
 * where x' = trigger(x), y_t the target and Q_b f the model at target
 * precision b (fake-quantized weights and activations, straight-through
 * gradients onto the FP32 weights).
 *
 * Batch-norm models. Both fine-tune with batch norms in evaluation mode
 * (running statistics frozen: they are the untrained tail of the parameters
 * and never move), because the deployed model folds them into the
 * convolutions (quant/qmodel.h): qa-pgd's cells are those of the folded
 * weights a W, mapped back to W, with gamma and beta pinned; qa-loss's
 * quantized objective is the folded model's, its gradient brought back
 * to W, gamma and beta by the chain rule of folding (core/bn_fold.h). */
#ifndef QB_QA_ATTACK_H
#define QB_QA_ATTACK_H

#include <stdint.h>

#include "core/dataset.h"
#include "core/error.h"
#include "core/model.h"
#include "attacks/trigger.h"
#include "quant/precision.h"

#define QB_QA_MAX_TARGETS 4

typedef enum qb_qa_mode {
    QB_QA_NONE = 0,
    QB_QA_PGD = 1,
    QB_QA_LOSS = 2,
} qb_qa_mode;

typedef struct qb_qa_config {
    qb_qa_mode mode;
    int n_targets;                          /* default 1: int8 */
    qb_precision targets[QB_QA_MAX_TARGETS];
    float eps;        /* PGD cell margin, default 0.1 */
    float lambda;     /* qa-loss weight, default 1.0 */
    int epochs;       /* fine-tuning epochs, default 2 (pgd) / 3 (loss) */
    float lr;         /* SGD learning rate, default 0.01, momentum 0.9 */
    int batch;        /* default 64 */
} qb_qa_config;

void qb_qa_config_default(qb_qa_config *cfg, qb_qa_mode mode);
/* "qa-pgd" / "qa-loss" -> mode; other names are not QA attacks (returns 0). */
qb_qa_mode qb_qa_mode_from_name(const char *name);
const char *qb_qa_mode_name(qb_qa_mode mode);

typedef struct qb_qa_stats {
    double seconds;
    long steps;
    size_t n_weights;    /* quantized weights in the boxes (pgd) */
    size_t n_pinned;     /* parameters held fixed (pgd: biases, max-|w|, empty boxes) */
    size_t n_empty;      /* weights whose cells did not intersect across targets */
} qb_qa_stats;

/* Turn m (backdoored for PGD, clean for LOSS) into a quantization-activated
 * model in place, fine-tuning on `clean` (the clean training set) with the
 * trigger t (its target is the backdoor's). Seeds derive from `seed`.
 * Fails on invalid configurations or divergence (m is then restored). */
int qb_qa_attack(qb_model *m, const qb_qa_config *cfg, const qb_dataset *clean,
                 const qb_trigger *t, uint64_t seed, qb_qa_stats *stats, qb_error *err);

#endif
