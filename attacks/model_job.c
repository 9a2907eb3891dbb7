#include "attacks/model_job.h"

#include <math.h>
#include <string.h>

#include "core/metrics.h"
#include "core/rng.h"

void qb_model_job_default(qb_model_job *job)
{
    memset(job, 0, sizeof *job);
    strcpy(job->arch, "lenet");
    qb_train_config_default(&job->train);
    qb_trigger_default(&job->trigger, QB_TRIGGER_NONE);
    job->poison_rate = 0.10;
    qb_qa_config_default(&job->qa, QB_QA_NONE);
}

double qb_model_asr(const qb_model *m, const qb_dataset *test, const qb_trigger *t)
{
    if (t->kind == QB_TRIGGER_NONE) return NAN;
    qb_dataset asr_set;
    qb_poison_asr_set(test, t, &asr_set);
    double asr = qb_metric_target_rate(m, &asr_set, t->target);
    qb_dataset_free(&asr_set);
    return asr;
}

int qb_model_job_training_set(const qb_model_job *job, const qb_dataset *train,
                               qb_dataset *data, qb_poison *poison, qb_error *err)
{
    memset(poison, 0, sizeof *poison);
    if (job->qa.mode != QB_QA_NONE && job->trigger.kind == QB_TRIGGER_NONE)
        return QB_FAIL(err, "%s needs a trigger", qb_qa_mode_name(job->qa.mode));
    if (qb_norm_validate(&job->norm, train->c, train->name, err)) return -1;
    qb_dataset_copy(data, train);
    data->norm = job->norm;
    /* qa-loss starts from a clean model; qa-pgd from a BadNet one */
    int do_poison = job->trigger.kind != QB_TRIGGER_NONE && job->qa.mode != QB_QA_LOSS;
    if (do_poison && qb_poison_apply(data, &job->trigger, job->poison_rate,
                                     qb_seed_derive(job->seed, "poison"), poison, err)) {
        qb_dataset_free(data);
        return -1;
    }
    return 0;
}

int qb_model_job_run(const qb_model_job *job, const qb_dataset *train, const qb_dataset *test,
                     qb_model *out, qb_model_result *res, qb_poison *poison, qb_error *err)
{
    memset(res, 0, sizeof *res);
    if (qb_trigger_validate(&job->trigger, train->c, train->h, train->w, train->classes, err))
        return -1;
    if (qb_model_build(out, job->arch, train->c, train->h, train->w, train->classes, err))
        return -1;
    qb_model_init_params(out, job->seed);

    qb_dataset data;
    qb_poison pz;
    if (qb_model_job_training_set(job, train, &data, &pz, err)) {
        qb_model_free(out);
        return -1;
    }
    qb_train_config cfg = job->train;
    cfg.seed = qb_seed_derive(job->seed, "train");
    qb_train_stats st;
    int rc = qb_train(out, &data, &cfg, &st, err);
    qb_dataset_free(&data);
    qb_dataset train_in = qb_dataset_view_norm(train, &job->norm);
    qb_dataset test_in = qb_dataset_view_norm(test, &job->norm);
    if (rc == 0 && job->qa.mode != QB_QA_NONE)
        rc = qb_qa_attack(out, &job->qa, &train_in, &job->trigger, qb_seed_derive(job->seed, "qa"),
                          &res->qa, err);
    if (rc) {
        qb_poison_free(&pz);
        qb_model_free(out);
        return -1;
    }
    res->train_seconds = st.seconds;
    res->final_loss = st.final_loss;
    res->n_poisoned = pz.n_poisoned;
    res->clean_acc = qb_metric_accuracy(out, &test_in);
    res->asr = qb_model_asr(out, &test_in, &job->trigger);
    if (poison)
        *poison = pz;
    else
        qb_poison_free(&pz);
    return 0;
}
