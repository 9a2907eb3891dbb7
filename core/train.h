/* Mini-batch SGD training of a qb_model on a qb_dataset.
 *
 * Bit-reproducible on every CPU: the batch order and the augmentation
 * draws come from cfg->seed only, and every reduction runs in a fixed
 * order (the GEMMs' is core/gemm_f32.h's, whatever the thread count of
 * core/threads.h).
 *
 * A sample's path to the model: its uint8 pixels (a trigger, if any,
 * already stamped by poisoning), augmented (cfg->augment, core/augment.h),
 * converted to [0, 1] and normalised by the dataset's norm
 * (core/dataset.h). */
#ifndef QB_TRAIN_H
#define QB_TRAIN_H

#include <stdint.h>

#include "core/augment.h"
#include "core/dataset.h"
#include "core/error.h"
#include "core/model.h"
#include "core/sgd.h"

typedef struct qb_train_config {
    int epochs;             /* default 5 */
    int batch;              /* default 64; the last partial batch is used */
    float lr;               /* default 0.05 */
    float momentum;         /* default 0.9 */
    float weight_decay;     /* default 5e-4 */
    qb_lr_schedule schedule; /* default cosine */
    qb_augment augment;     /* default off (pad 0, no flip) */
    uint64_t seed;          /* batch order, augmentation */
    int progress;           /* 1: one line per epoch on stderr */
} qb_train_config;

typedef struct qb_train_stats {
    double seconds;
    double final_loss;  /* mean loss over the last epoch */
    long steps;
} qb_train_stats;

void qb_train_config_default(qb_train_config *cfg);

/* BackdoorBench's training recipe (config/attack/prototype/cifar10.yaml
 * and gtsrb.yaml of SCLBD/BackdoorBench): SGD lr 0.01, momentum 0.9,
 * weight decay 5e-4, batch 128, cosine schedule, 100 epochs (50 for
 * gtsrb), random crop with padding 4 and, where qb_dataset_flip_ok(name),
 * horizontal flips. Its normalisation is the dataset's, not part of the
 * train config: qb_dataset_norm_default(name). `dataset` may be NULL
 * (100 epochs, crop, flip). */
void qb_train_config_backdoorbench(qb_train_config *cfg, const char *dataset);
/* BackdoorBench's epochs for a dataset: 50 for gtsrb, else 100. */
int qb_train_backdoorbench_epochs(const char *dataset);
int qb_train_config_validate(const qb_train_config *cfg, qb_error *err);

/* Train m's current parameters (initialise first with qb_model_init_params,
 * or pass a trained model to fine-tune). The dataset's image shape and
 * classes must match the model. Fails if the configuration is invalid, or
 * if the loss or any parameter becomes NaN/inf (the message names the epoch
 * and step); m's parameters are then restored to their values before
 * training and stats->final_loss is NaN. stats may be NULL. */
int qb_train(qb_model *m, const qb_dataset *train, const qb_train_config *cfg,
             qb_train_stats *stats, qb_error *err);

/* Wall-clock seconds (monotonic). */
double qb_now(void);

#endif
