/* From a spec's task to the pipeline's parameters and a results row. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "store/pending_row.h"
#include "mpi/runner.h"

/* The spec's parameter block of a mitigation or defense value as key/value
 * pairs in kv (QB_STAGE_PARAMS_MAX slots); defs are the stage's business. */
static int stage_params(const qb_spec *s, qb_axis axis, const char *value, qb_param_kv *kv,
                        qb_params *out, qb_error *err)
{
    memset(out, 0, sizeof *out);
    const qb_spec_stage *st = qb_spec_stage_params(s, axis, value);
    if (!st) return 0;
    if (st->n > QB_STAGE_PARAMS_MAX)
        return QB_FAIL(err, "%ss.%s has %zu parameters (at most %d)", qb_axis_name(axis), value,
                       st->n, QB_STAGE_PARAMS_MAX);
    for (size_t k = 0; k < st->n; k++) {
        kv[k].key = st->params[k].key;
        kv[k].value = st->params[k].value;
    }
    out->kv = kv;
    out->n = st->n;
    return 0;
}

int qb_runner_task_params(const qb_spec *s, size_t i, qb_task_params *p, qb_task_bufs *b,
                          qb_error *err)
{
    const qb_task *t = &s->tasks[i];
    memset(p, 0, sizeof *p);
    qb_spec_value(s, QB_AXIS_DATASET, t->dataset, b->dataset, sizeof b->dataset);
    qb_spec_value(s, QB_AXIS_MITIGATION, t->mitigation, b->mitigation, sizeof b->mitigation);
    qb_spec_value(s, QB_AXIS_DEFENSE, t->defense, b->defense, sizeof b->defense);
    qb_spec_model_identity(s, t->model, b->key, sizeof b->key);
    p->dataset = b->dataset;
    p->data_dir = s->data_dir;
    p->mitigation = b->mitigation;
    p->defense = b->defense;
    p->model_key = b->key;
    p->model_id = s->models[t->model].id;
    if (stage_params(s, QB_AXIS_DEFENSE, b->defense, b->defense_kv, &p->defense_params, err) ||
        stage_params(s, QB_AXIS_MITIGATION, b->mitigation, b->mitigation_kv,
                     &p->mitigation_params, err))
        return -1;
    if (qb_spec_model_job(s, t->model, &p->job, err)) return -1;
    return qb_spec_task_precision(s, i, &p->precision, err);
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
