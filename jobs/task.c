/* Tasks and models of an expanded spec: lookups and model jobs (jobs/task.h,
 * jobs/spec.h). */
#include "jobs/task.h"

#include <stdio.h>
#include <string.h>

#include "attacks/trigger.h"
#include "jobs/identity.h"
#include "jobs/spec.h"

uint32_t qb_task_index(const qb_task *t, int axis)
{
    switch (axis) {
    case QB_AXIS_DATASET: return t->dataset;
    case QB_AXIS_SEED: return t->seed;
    case QB_AXIS_TRIGGER: return t->trigger;
    case QB_AXIS_PRECISION: return t->precision;
    case QB_AXIS_MITIGATION: return t->mitigation;
    case QB_AXIS_DEFENSE: return t->defense;
    default: break;
    }
    QB_ASSERT(!"axis out of range");
    return 0;
}

/* ---- lookups and jobs ------------------------------------------------------------ */

size_t qb_spec_find_task(const qb_spec *s, uint64_t id)
{
    size_t lo = 0, hi = s->n_tasks;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (s->sorted_ids[mid] < id)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < s->n_tasks && s->sorted_ids[lo] == id ? s->sorted_pos[lo] : SIZE_MAX;
}

int qb_spec_model_job(const qb_spec *s, size_t model, qb_model_job *job, qb_error *err)
{
    QB_ASSERT(model < s->n_models);
    const qb_spec_model *m = &s->models[model];
    const char *dataset = s->axes[QB_AXIS_DATASET].names[m->dataset];
    const char *trigger = s->axes[QB_AXIS_TRIGGER].names[m->trigger];
    const qb_spec_settings *set = &s->set;
    qb_model_job_default(job);
    snprintf(job->arch, sizeof job->arch, "%s", qb_spec_arch(s, dataset));
    job->train = set->train;
    job->train.seed = 0;
    job->train.progress = 0;
    qb_qa_mode qa = qb_qa_mode_from_name(trigger);
    /* the quantization-activated attacks plant the square trigger */
    if (qb_trigger_parse(qa != QB_QA_NONE ? "square" : trigger, &job->trigger, err))
        return qb_error_prefix(err, "model %zu: ", model);
    if (job->trigger.kind != QB_TRIGGER_NONE) {
        job->trigger.size = set->size;
        job->trigger.x = set->x;
        job->trigger.y = set->y;
        job->trigger.alpha = set->alpha;
        job->trigger.target = set->target;
        job->poison_rate = set->rate;
    } else {
        job->poison_rate = 0.0;
    }
    qb_qa_config_default(&job->qa, qa);
    if (qa != QB_QA_NONE) {
        job->qa.n_targets = set->n_qa_targets;
        for (int i = 0; i < set->n_qa_targets; i++)
            if (qb_precision_parse(set->qa_targets[i], &job->qa.targets[i], err)) return -1;
        if (set->qa_epochs >= 0) job->qa.epochs = set->qa_epochs;
        job->qa.lr = set->qa_lr;
        job->qa.eps = set->qa_eps;
        job->qa.lambda = set->qa_lambda;
    }
    job->seed = s->axes[QB_AXIS_SEED].seeds[m->seed];
    return 0;
}

int qb_spec_task_precision(const qb_spec *s, size_t task, qb_precision *p, qb_error *err)
{
    QB_ASSERT(task < s->n_tasks);
    return qb_precision_parse(s->axes[QB_AXIS_PRECISION].names[s->tasks[task].precision], p, err);
}

size_t qb_spec_memory(const qb_spec *s)
{
    size_t b = s->n_tasks * (sizeof(qb_task) + sizeof(uint64_t) + sizeof(uint32_t)) +
               s->n_models * sizeof(qb_spec_model);
    for (int a = 0; a < QB_AXIS_COUNT; a++)
        b += (size_t)s->axes[a].n * (a == QB_AXIS_SEED ? sizeof(uint64_t) : QB_AXIS_VALUE_MAX);
    return b;
}
