/* From a spec's task to the pipeline's parameters and a results row. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/pending_row.h"
#include "mpi/runner.h"

static size_t model_key(const void *spec, size_t model, char *buf, size_t n)
{
    return qb_spec_model_identity(spec, model, buf, n);
}

/* The spec's block of a mitigation or defense value, within the limit of
 * parameters a task takes. */
static int stage_block(const qb_spec *s, qb_axis axis, uint32_t v, const qb_params *block,
                       qb_params *out, qb_error *err)
{
    if (block->n > QB_STAGE_PARAMS_MAX)
        return QB_FAIL(err, "%ss.%s has %zu parameters (at most %d)", qb_axis_name(axis),
                       s->axes[axis].names[v], block->n, QB_STAGE_PARAMS_MAX);
    *out = *block;
    return 0;
}

int qb_runner_task_params(const qb_spec *s, size_t i, qb_task_params *p, qb_error *err)
{
    const qb_task *t = &s->tasks[i];
    const qb_spec_resolved *r = &s->res;
    memset(p, 0, sizeof *p);
    p->dataset = s->axes[QB_AXIS_DATASET].names[t->dataset];
    p->data_dir = s->data_dir;
    qb_spec_model_job(s, t->model, &p->job, err);
    p->model_id = s->models[t->model].id;
    p->model_key = model_key;
    p->model_key_ctx = s;
    p->model = t->model;
    qb_spec_task_precision(s, i, &p->precision, err);
    p->mitigation = r->mitigations[t->mitigation];
    p->defense = r->defenses[t->defense];
    if (stage_block(s, QB_AXIS_DEFENSE, t->defense, &r->defense_params[t->defense],
                    &p->defense_params, err) ||
        stage_block(s, QB_AXIS_MITIGATION, t->mitigation, &r->mitigation_params[t->mitigation],
                    &p->mitigation_params, err))
        return -1;
    return 0;
}

void qb_runner_fill_row(const qb_spec *s, size_t i, const qb_task_outcome *out, int rank,
                        const char *host, qb_task_row *row)
{
    qb_spec_pending_row(s, i, row); /* store/merge.h: merge builds the same rows */
    if (!out) return;
    row->status = out->status;
    snprintf(row->message, sizeof row->message, "%s", out->message);
    row->ca_quant = out->ca_quant;
    row->asr_quant = out->asr_quant;
    row->ca_mitig = out->ca_mitig;
    row->asr_mitig = out->asr_mitig;
    row->detected = out->detected;
    row->t_model = out->t_model;
    row->t_quant = out->t_quant;
    row->t_mitig = out->t_mitig;
    row->t_defense = out->t_defense;
    row->t_total = out->t_total;
    row->rank = rank;
    snprintf(row->host, sizeof row->host, "%s", host);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    row->finished_at = (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
    row->attempts = 1;
}
