/* The axis values resolved once, at expansion (qb_spec_resolve, jobs/spec.h):
 * every value of the value tables to what its stage runs, so that building
 * a task's parameters (mpi/task_rows.c) only copies and points. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"
#include "jobs/identity.h"
#include "jobs/spec.h"

/* The `defenses:` / `mitigations:` block of a value as key/value pairs
 * pointing into the spec's strings (defs are the stage's business). */
static qb_params stage_block(const qb_spec *s, qb_axis axis, const char *value)
{
    qb_params out = {NULL, 0, NULL};
    const qb_spec_stage *st = qb_spec_stage_params(s, axis, value);
    if (!st || st->n == 0) return out;
    qb_param_kv *kv = xmalloc(st->n, sizeof *kv);
    for (size_t k = 0; k < st->n; k++) {
        kv[k].key = st->params[k].key;
        kv[k].value = st->params[k].value;
    }
    out.n = st->n;
    out.kv = kv;
    return out;
}

/* train.normalize for a dataset: off, its defaults, or the list (one
 * value broadcast to every channel). A list of 3 for a 1-channel dataset
 * is an error at the list. Mean 0 and std 1 on every channel is off:
 * the same arithmetic, so the same model. */
static int model_norm(const qb_spec *s, const char *dataset, qb_norm *out, qb_error *err)
{
    const qb_spec_settings *set = &s->set;
    memset(out, 0, sizeof *out);
    const int c = qb_dataset_channels(dataset);
    if (set->normalize == QB_SPEC_NORM_DATASET) {
        qb_dataset_norm_default(dataset, out);
    } else if (set->normalize == QB_SPEC_NORM_LIST) {
        if (set->n_norm != 1 && set->n_norm != c)
            return QB_FAIL(err, "train.normalize at %s:%d:%d gives %d values per list; dataset %s "
                                "has %d channel%s (give 1 value%s)",
                           set->norm_mark.file ? set->norm_mark.file : s->path, set->norm_mark.line,
                           set->norm_mark.col, set->n_norm, dataset, c, c == 1 ? "" : "s",
                           c == 1 ? "" : ", or one per channel");
        out->on = 1;
        for (int ch = 0; ch < QB_NORM_MAX_C; ch++) {
            int k = set->n_norm == 1 ? 0 : ch;
            out->mean[ch] = ch < c ? set->norm_mean[k] : 0.0f;
            out->std[ch] = ch < c ? set->norm_std[k] : 1.0f;
        }
    }
    if (out->on) {
        int identity = 1;
        for (int ch = 0; ch < c; ch++) identity &= out->mean[ch] == 0.0f && out->std[ch] == 1.0f;
        if (identity) memset(out, 0, sizeof *out);
    }
    if (out->on) /* channels past the dataset's: unused, held at identity for the identity text */
        for (int ch = c; ch < QB_NORM_MAX_C; ch++) out->mean[ch] = 0.0f, out->std[ch] = 1.0f;
    return 0;
}

/* train.augment for a dataset. */
static void model_augment(qb_spec_augment a, const char *dataset, qb_augment *out)
{
    out->pad = a == QB_SPEC_AUG_CROP || a == QB_SPEC_AUG_CROP_FLIP || a == QB_SPEC_AUG_DATASET
                   ? QB_SPEC_AUG_PAD
                   : 0;
    out->flip = a == QB_SPEC_AUG_FLIP || a == QB_SPEC_AUG_CROP_FLIP ||
                (a == QB_SPEC_AUG_DATASET && qb_dataset_flip_ok(dataset));
}

/* The model job of (dataset d, trigger t) with seed 0: arch, train
 * settings, the trigger with the attack settings, poison rate (0 for
 * clean), the qa configuration (targets in canonical order). */
static int model_job(const qb_spec *s, uint32_t d, uint32_t t, qb_model_job *job, qb_error *err)
{
    const qb_spec_settings *set = &s->set;
    const qb_trigger_entry *te = s->res.triggers[t];
    qb_model_job_default(job);
    snprintf(job->arch, sizeof job->arch, "%s", qb_spec_arch(s, s->axes[QB_AXIS_DATASET].names[d]));
    const char *dataset = s->axes[QB_AXIS_DATASET].names[d];
    job->train = set->train;
    job->train.seed = 0;
    job->train.progress = 0;
    if (set->epochs_dataset) job->train.epochs = qb_train_backdoorbench_epochs(dataset);
    if (model_norm(s, dataset, &job->norm, err)) return -1;
    model_augment(set->augment, dataset, &job->train.augment);
    qb_trigger_default(&job->trigger, te->kind); /* the qa-* attacks plant the square */
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
    qb_qa_config_default(&job->qa, te->qa);
    if (te->qa != QB_QA_NONE) {
        job->qa.n_targets = set->n_qa_targets;
        for (int i = 0; i < set->n_qa_targets; i++)
            if (qb_precision_parse(set->qa_targets[i], &job->qa.targets[i], err)) return -1;
        if (set->qa_epochs >= 0) job->qa.epochs = set->qa_epochs;
        job->qa.lr = set->qa_lr;
        job->qa.eps = set->qa_eps;
        job->qa.lambda = set->qa_lambda;
    }
    job->seed = 0;
    return 0;
}

/* The registry entry of value v of an enumerated axis. */
static int entry_of(const qb_spec *s, qb_axis axis, uint32_t v, const void **entry, qb_error *err)
{
    qb_axis_value av;
    if (qb_axis_lookup(axis, s->axes[axis].names[v], &av))
        return QB_FAIL(err, "%s: %s \"%s\" has no registry entry", s->path, qb_axis_name(axis),
                       s->axes[axis].names[v]);
    *entry = av.entry;
    return 0;
}

int qb_spec_resolve(qb_spec *s, qb_error *err)
{
    qb_spec_resolved *r = &s->res;
    const qb_spec_axis *ax = s->axes;
    uint32_t nd = ax[QB_AXIS_DATASET].n, nt = ax[QB_AXIS_TRIGGER].n;
    uint32_t np = ax[QB_AXIS_PRECISION].n, nm = ax[QB_AXIS_MITIGATION].n,
             ndef = ax[QB_AXIS_DEFENSE].n;
    r->triggers = xcalloc(nt, sizeof *r->triggers);
    r->precisions = xcalloc(np, sizeof *r->precisions);
    r->mitigations = xcalloc(nm, sizeof *r->mitigations);
    r->mitigation_params = xcalloc(nm, sizeof *r->mitigation_params);
    r->defenses = xcalloc(ndef, sizeof *r->defenses);
    r->defense_params = xcalloc(ndef, sizeof *r->defense_params);
    r->jobs = xcalloc((size_t)nd * nt, sizeof *r->jobs);
    const void *e = NULL;
    for (uint32_t v = 0; v < nt; v++) {
        if (entry_of(s, QB_AXIS_TRIGGER, v, &e, err)) return -1;
        r->triggers[v] = e;
    }
    for (uint32_t v = 0; v < np; v++)
        if (qb_precision_parse(ax[QB_AXIS_PRECISION].names[v], &r->precisions[v], err)) return -1;
    for (uint32_t v = 0; v < nm; v++) {
        if (entry_of(s, QB_AXIS_MITIGATION, v, &e, err)) return -1;
        r->mitigations[v] = e;
        r->mitigation_params[v] = stage_block(s, QB_AXIS_MITIGATION, ax[QB_AXIS_MITIGATION].names[v]);
    }
    for (uint32_t v = 0; v < ndef; v++) {
        if (entry_of(s, QB_AXIS_DEFENSE, v, &e, err)) return -1;
        r->defenses[v] = e;
        r->defense_params[v] = stage_block(s, QB_AXIS_DEFENSE, ax[QB_AXIS_DEFENSE].names[v]);
    }
    for (uint32_t d = 0; d < nd; d++)
        for (uint32_t t = 0; t < nt; t++)
            if (model_job(s, d, t, &r->jobs[(size_t)d * nt + t], err)) return -1;
    return 0;
}

/* n parameter blocks of stage_block and their array. */
static void blocks_free(qb_params *b, uint32_t n)
{
    for (uint32_t v = 0; b && v < n; v++) free((void *)b[v].kv);
    free(b);
}

void qb_spec_resolved_free(qb_spec_resolved *r, const qb_spec *s)
{
    blocks_free(r->mitigation_params, s->axes[QB_AXIS_MITIGATION].n);
    blocks_free(r->defense_params, s->axes[QB_AXIS_DEFENSE].n);
    free(r->triggers);
    free(r->precisions);
    free(r->mitigations);
    free(r->defenses);
    free(r->jobs);
    memset(r, 0, sizeof *r);
}
