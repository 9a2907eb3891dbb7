/* Tasks and models of an expanded spec: lookups and model jobs (jobs/task.h,
 * jobs/spec.h). */
#include "jobs/task.h"

#include <stdio.h>
#include <string.h>

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
    (void)err;
    QB_ASSERT(model < s->n_models);
    const qb_spec_model *m = &s->models[model];
    *job = s->res.jobs[(size_t)m->dataset * s->axes[QB_AXIS_TRIGGER].n + m->trigger];
    job->seed = s->axes[QB_AXIS_SEED].seeds[m->seed];
    return 0;
}

int qb_spec_task_precision(const qb_spec *s, size_t task, qb_precision *p, qb_error *err)
{
    (void)err;
    QB_ASSERT(task < s->n_tasks);
    *p = s->res.precisions[s->tasks[task].precision];
    return 0;
}

size_t qb_spec_memory(const qb_spec *s)
{
    size_t b = s->n_tasks * (sizeof(qb_task) + sizeof(uint64_t) + sizeof(uint32_t)) +
               s->n_models * sizeof(qb_spec_model);
    for (int a = 0; a < QB_AXIS_COUNT; a++)
        b += (size_t)s->axes[a].n * (a == QB_AXIS_SEED ? sizeof(uint64_t) : QB_AXIS_VALUE_MAX);
    return b;
}
