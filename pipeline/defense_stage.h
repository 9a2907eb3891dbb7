/* The "defend" stage of a task: the data a defense gets (defenses/defense.h),
 * built from the task's model job, datasets and seed.
 *
 *   - the training set as the model was trained on it (poisoned copy and
 *     its ground truth), rebuilt by qb_model_job_training_set: AC and SS;
 *   - the defender's pool: every test-set index in an order drawn from the
 *     model seed (so every precision and mitigation of one model sees the
 *     same clean images: comparisons across precisions are paired); the
 *     first half is the defenses' clean data, the second half
 *     (eval_from = n_test / 2) evaluation only;
 *   - the trigger to measure: the attack's, or for clean models the probe
 *     trigger (default BadNet square, target 0). */
#ifndef QB_DEFENSE_STAGE_H
#define QB_DEFENSE_STAGE_H

#include "attacks/poison.h"
#include "defenses/defense.h"
#include "attacks/model_job.h"

typedef struct qb_defense_env {
    qb_dataset train;       /* as trained on, owned */
    qb_poison poison;       /* its ground truth, owned */
    uint32_t *pool;         /* (n_pool) owned */
    size_t n_pool, eval_from;
    qb_trigger trigger;     /* the attack's, or the probe for clean models */
    int attacked;
    uint64_t seed;          /* the defense stage's seed */
    const qb_dataset *test; /* not owned */
} qb_defense_env;

/* Build the environment of a model job. `train`/`test` are the clean
 * dataset splits (not modified; test must outlive env). */
int qb_defense_env_init(qb_defense_env *env, const qb_model_job *job, const qb_dataset *train,
                        const qb_dataset *test, qb_error *err);
void qb_defense_env_free(qb_defense_env *env);

/* Fill a defense input for the deployed model qm (its fp32 source `fp32`),
 * with the spec's parameters `params` for the defense. Points into env,
 * qm and fp32, which must outlive `in`. */
void qb_defense_env_input(const qb_defense_env *env, const struct qb_qmodel *qm,
                          const qb_model *fp32, const qb_params *params, qb_defense_input *in);

#endif
