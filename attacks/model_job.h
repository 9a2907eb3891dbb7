/* The model an attack produces (the "model" stage of a task): poison
 * (unless clean), build, initialise,
 * train, and measure clean accuracy and attack success rate at FP32. */
#ifndef QB_MODEL_JOB_H
#define QB_MODEL_JOB_H

#include <stdint.h>

#include "core/dataset.h"
#include "core/error.h"
#include "core/model.h"
#include "attacks/poison.h"
#include "core/train.h"
#include "attacks/trigger.h"
#include "attacks/qa_attack.h"

typedef struct qb_model_job {
    char arch[QB_ARCH_NAME_MAX];
    qb_train_config train;  /* train.seed is overwritten from seed */
    qb_norm norm;           /* the model's input normalisation (default
                               off): training, evaluation and the
                               training set of qb_model_job_training_set
                               are fed through it; triggers are stamped on
                               the pixels before it */
    qb_trigger trigger;     /* kind NONE = clean model */
    double poison_rate;     /* default 0.10 */
    qb_qa_config qa;        /* mode NONE: plain BadNet / clean; PGD: BadNet
                               then the cell-constrained repair; LOSS: clean
                               training then Qu-ANTI-zation fine-tuning */
    uint64_t seed;          /* the task's seed: init, order, poisoning derive from it */
} qb_model_job;

typedef struct qb_model_result {
    double clean_acc;      /* CA on the clean test set */
    double asr;            /* ASR on triggered non-target test images (NaN when clean) */
    double train_seconds;
    double final_loss;
    size_t n_poisoned;
    qb_qa_stats qa;        /* when job->qa.mode != NONE */
} qb_model_result;

void qb_model_job_default(qb_model_job *job);

/* Train the model for `job` on `train` and evaluate it on `test`, both fed
 * through job->norm (their own norm is ignored). The
 * datasets are not modified (poisoning works on a copy). On success *out
 * is a new model; if poison is not NULL it receives the ground truth of
 * the poisoned training set (owned by the caller). */
int qb_model_job_run(const qb_model_job *job, const qb_dataset *train, const qb_dataset *test,
                     qb_model *out, qb_model_result *res, qb_poison *poison, qb_error *err);

/* The training set of `job` as its model is trained on it: a copy of
 * `train`, poisoned (BadNet, qa-pgd) with the job's trigger, rate and the
 * seed derived from job->seed, or clean (clean, qa-loss; then poison has
 * n_poisoned 0 and NULL arrays); data->norm is job->norm. On success *data and *poison are owned by
 * the caller (qb_dataset_free, qb_poison_free). The defenses that read the
 * training set (AC, SS) rebuild it with this. */
int qb_model_job_training_set(const qb_model_job *job, const qb_dataset *train,
                              qb_dataset *data, qb_poison *poison, qb_error *err);

/* ASR of a model for a trigger on a clean test set (NaN for NONE). The
 * trigger is stamped on test's pixels; test->norm then applies. */
double qb_model_asr(const qb_model *m, const qb_dataset *test, const qb_trigger *t);

#endif
