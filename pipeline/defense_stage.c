#include "pipeline/defense_stage.h"

#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/xalloc.h"
#include "quant/qmodel.h"

int qb_defense_env_init(qb_defense_env *env, const qb_model_job *job, const qb_dataset *train,
                        const qb_dataset *test, qb_error *err)
{
    memset(env, 0, sizeof *env);
    if (qb_model_job_training_set(job, train, &env->train, &env->poison, err)) return -1;
    env->test = test;
    env->n_pool = test->n;
    env->eval_from = test->n / 2;
    env->pool = xmalloc(test->n ? test->n : 1, sizeof(uint32_t));
    for (size_t i = 0; i < test->n; i++) env->pool[i] = (uint32_t)i;
    qb_rng rng;
    qb_rng_seed(&rng, qb_seed_derive(job->seed, "defender-pool"));
    qb_rng_shuffle_u32(&rng, env->pool, test->n);
    env->attacked = job->trigger.kind != QB_TRIGGER_NONE;
    if (env->attacked)
        env->trigger = job->trigger;
    else
        qb_trigger_default(&env->trigger, QB_TRIGGER_SQUARE);
    env->seed = qb_seed_derive(job->seed, "defense");
    return 0;
}

void qb_defense_env_free(qb_defense_env *env)
{
    qb_dataset_free(&env->train);
    qb_poison_free(&env->poison);
    free(env->pool);
    memset(env, 0, sizeof *env);
}

void qb_defense_env_input(const qb_defense_env *env, const qb_qmodel *qm, const qb_model *fp32,
                          const qb_params *params, qb_defense_input *in)
{
    memset(in, 0, sizeof *in);
    in->model = &qm->model;
    in->qmodel = qm;
    in->fp32 = fp32;
    in->precision = &qm->prec;
    in->train = &env->train;
    in->is_poisoned = env->poison.n_poisoned ? env->poison.is_poisoned : NULL;
    in->n_poisoned = env->poison.n_poisoned;
    in->test = env->test;
    in->pool = env->pool;
    in->n_pool = env->n_pool;
    in->eval_from = env->eval_from;
    in->trigger = &env->trigger;
    in->attacked = env->attacked;
    in->seed = env->seed;
    in->params = *params;
}
