#include "pipeline/pipeline.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/metrics.h"
#include "core/train.h"
#include "attacks/poison.h"
#include "quant/qmodel.h"

void qb_worker_init(qb_worker *w, const qb_model_store *store)
{
    memset(w, 0, sizeof *w);
    w->store = store;
}

void qb_task_outcome_free(qb_task_outcome *out) { qb_details_free(&out->details); }

static void drop_env(qb_worker *w)
{
    if (w->have_env) qb_defense_env_free(&w->env);
    w->have_env = 0;
}

void qb_worker_free(qb_worker *w)
{
    drop_env(w);
    if (w->have_data) {
        qb_dataset_free(&w->train);
        qb_dataset_free(&w->test);
    }
    if (w->have_model) qb_model_free(&w->model);
    memset(w, 0, sizeof *w);
}

static int fail(qb_task_outcome *out, const char *stage, const qb_error *err)
{
    out->status = QB_STATUS_FAILED;
    /* the message column holds 256 bytes: longer reasons are cut */
    snprintf(out->message, sizeof out->message, "%s: %.240s", stage, err->msg);
    return -1;
}

/* The data fed to the task's model: its pixels, through the model's
 * normalisation (set for every task: models of one dataset may differ). */
static void feed_norm(qb_worker *w, const qb_task_params *p)
{
    w->train.norm = p->job.norm;
    w->test.norm = p->job.norm;
}

static int ensure_data(qb_worker *w, const qb_task_params *p, qb_error *err)
{
    if (w->have_data && !strcmp(w->dataset, p->dataset)) {
        feed_norm(w, p);
        return 0;
    }
    drop_env(w);
    if (w->have_data) {
        qb_dataset_free(&w->train);
        qb_dataset_free(&w->test);
        w->have_data = 0;
    }
    /* The data are fixed across a sweep (the model seed varies models, not
     * data): `synthetic` is generated from QB_SYNTHETIC_SEED everywhere, so
     * results never depend on which rank loaded the data first. */
    if (qb_dataset_load(p->dataset, p->data_dir, QB_SYNTHETIC_SEED, &w->train, &w->test, err))
        return -1;
    snprintf(w->dataset, sizeof w->dataset, "%s", p->dataset);
    w->have_data = 1;
    feed_norm(w, p);
    return 0;
}

/* Stage 1: the model, from cache, store, or training. */
static int ensure_model(qb_worker *w, const qb_task_params *p, qb_task_outcome *out,
                        qb_error *err)
{
    if (w->have_model && w->model_id == p->model_id) return 0;
    if (w->have_model) {
        qb_model_free(&w->model);
        w->have_model = 0;
    }
    char key[QB_MODEL_KEY_MAX] = "";
    if (w->store) {
        p->model_key(p->model_key_ctx, p->model, key, sizeof key);
        char note[512];
        int r = qb_model_store_get(w->store, p->model_id, key, &w->model, note, sizeof note, err);
        if (r < 0) return -1;
        if (note[0]) fprintf(stderr, "qblind: model store: %s\n", note);
        if (r == QB_STORE_FOUND) {
            w->have_model = 1;
            w->model_id = p->model_id;
            return 0;
        }
    }
    qb_model_result res;
    if (qb_model_job_run(&p->job, &w->train, &w->test, &w->model, &res, NULL, err)) return -1;
    w->have_model = 1;
    w->model_id = p->model_id;
    w->trainings++;
    out->trained = 1;
    /* A store that cannot take the model (disk full, permissions) is the
     * environment's failure, not the task's: the model is in memory and
     * its tasks are measured with it; where it is needed again it is
     * trained again (same seed, same bits). Never a failed row for it. */
    qb_error serr;
    if (w->store && qb_model_store_put(w->store, p->model_id, key, &w->model, &serr))
        fprintf(stderr, "qblind: warning: %s; the model is used from memory and "
                "trained again where another task needs it\n", serr.msg);
    return 0;
}

/* The defense stage's data for the current model (built once per model). */
static int ensure_env(qb_worker *w, const qb_task_params *p, qb_error *err)
{
    if (w->have_env && w->env_model_id == p->model_id) return 0;
    drop_env(w);
    if (qb_defense_env_init(&w->env, &p->job, &w->train, &w->test, err)) return -1;
    w->have_env = 1;
    w->env_model_id = p->model_id;
    return 0;
}

/* The input of a defense or mitigation on the deployed model qm: the
 * model's defense data and the spec's parameter block for the stage,
 * read against the stage's table `defs`. */
static int stage_input(qb_worker *w, const qb_task_params *p, const qb_qmodel *qm,
                       const qb_params *block, const qb_param_def *defs, qb_defense_input *in,
                       qb_error *err)
{
    if (ensure_env(w, p, err)) return -1;
    qb_params prm = *block;
    prm.defs = defs;
    qb_defense_env_input(&w->env, qm, &w->model, &prm, in); /* copies prm */
    return 0;
}

/* Stage 4: run the task's defense on the deployed model qm. */
static int defend(qb_worker *w, const qb_task_params *p, const qb_qmodel *qm,
                  qb_task_outcome *out, qb_error *err)
{
    const qb_defense_entry *e = p->defense;
    if (!e) return 0; /* none */
    if (!e->run) return QB_FAIL(err, "unknown defense \"%s\"", e->key.name); /* not a registered one */
    qb_defense_input in;
    if (stage_input(w, p, qm, &p->defense_params, e->params, &in, err)) return -1;
    qb_defense_result r;
    memset(&r, 0, sizeof r);
    r.detected = QB_DETECTED_NA;
    r.details = &out->details;
    if (e->run(&in, &r, err)) return qb_error_prefix(err, "%s: ", e->key.name);
    out->detected = r.detected;
    return 0;
}

/* Stage 3: run the task's mitigation on qm (the model deployed without
 * one) into *mq. Records CA/ASR before and after on the evaluation half of
 * the defender's pool (never used by a mitigation) and the share of
 * weights it changed. */
static int mitigate(qb_worker *w, const qb_task_params *p, const qb_qmodel *qm, qb_qmodel *mq,
                    qb_task_outcome *out, qb_error *err)
{
    const qb_mitigation_entry *e = p->mitigation;
    if (!e->run) return QB_FAIL(err, "unknown mitigation \"%s\"", e->key.name); /* not a registered one */
    qb_defense_input in;
    if (stage_input(w, p, qm, &p->mitigation_params, e->params, &in, err)) return -1;
    if (e->run(&in, mq, &out->details, err)) return qb_error_prefix(err, "%s: ", e->key.name);
    const qb_defense_env *env = &w->env;
    qb_dataset ev, ev_trig;
    qb_dataset_subset(&ev, env->test, env->pool + env->eval_from, env->n_pool - env->eval_from);
    qb_poison_asr_set(&ev, &env->trigger, &ev_trig);
    double ca[2] = {qb_metric_accuracy(&qm->model, &ev), qb_metric_accuracy(&mq->model, &ev)};
    double asr[2] = {qb_metric_target_rate(&qm->model, &ev_trig, env->trigger.target),
                     qb_metric_target_rate(&mq->model, &ev_trig, env->trigger.target)};
    qb_dataset_free(&ev);
    qb_dataset_free(&ev_trig);
    qb_details_add(&out->details, "mitigation.ca_eval", ca, 2);
    qb_details_add(&out->details, "mitigation.asr_eval", asr, 2);
    qb_details_add1(&out->details, "mitigation.weights_changed",
                    qb_mitigation_weights_changed(&qm->model, &mq->model));
    qb_details_add1(&out->details, "mitigation.codes_changed", qb_mitigation_codes_changed(qm, mq));
    return 0;
}

/* Is the attack active at this precision by design? BadNet-style triggers
 * everywhere; quantization-activated ones at their target precisions. */
static int attack_meant_active(const qb_model_job *job, const qb_precision *prec)
{
    if (job->trigger.kind == QB_TRIGGER_NONE) return 0;
    if (job->qa.mode == QB_QA_NONE) return 1;
    for (int i = 0; i < job->qa.n_targets; i++)
        if (!strcmp(job->qa.targets[i].name, prec->name)) return 1;
    return 0;
}

void qb_pipeline_run(qb_worker *w, const qb_task_params *p, qb_task_outcome *out)
{
    memset(out, 0, sizeof *out);
    qb_details_init(&out->details);
    out->ca_quant = out->asr_quant = out->ca_mitig = out->asr_mitig = NAN;
    out->detected = QB_DETECTED_NA;
    qb_error err;
    double t0 = qb_now(), t;

    if (ensure_data(w, p, &err)) {
        fail(out, "data", &err);
        goto done;
    }
    t = qb_now();
    if (ensure_model(w, p, out, &err)) {
        fail(out, "model", &err);
        goto done;
    }
    out->t_model = qb_now() - t;

    /* 2. quantize and measure */
    t = qb_now();
    qb_qmodel qm;
    if (qb_qmodel_init(&qm, &w->model, &p->precision, 0.0f, 0, &err)) {
        fail(out, "quantize", &err);
        goto done;
    }
    out->ca_quant = qb_metric_accuracy(&qm.model, &w->test);
    out->asr_quant = qb_model_asr(&qm.model, &w->test, &p->job.trigger);
    out->t_quant = qb_now() - t;
    if (!isfinite(out->ca_quant)) {
        qb_qmodel_free(&qm);
        out->status = QB_STATUS_FAILED;
        snprintf(out->message, sizeof out->message, "quantize: clean accuracy is not finite");
        goto done;
    }

    /* 3. mitigate: the deployed model is the mitigation's (or qm) */
    t = qb_now();
    qb_qmodel mq;
    const qb_qmodel *dep = &qm;
    if (p->mitigation) {
        if (mitigate(w, p, &qm, &mq, out, &err)) {
            qb_qmodel_free(&qm);
            fail(out, "mitigate", &err);
            goto done;
        }
        dep = &mq;
        out->ca_mitig = qb_metric_accuracy(&mq.model, &w->test);
        out->asr_mitig = qb_model_asr(&mq.model, &w->test, &p->job.trigger);
    } else {
        out->ca_mitig = out->ca_quant;
        out->asr_mitig = out->asr_quant;
    }
    out->t_mitig = qb_now() - t;

    /* 4. defend: a defense that cannot run is an error, never "not detected" */
    t = qb_now();
    int drc = defend(w, p, dep, out, &err);
    out->t_defense = qb_now() - t;
    if (dep != &qm) qb_qmodel_free(&mq);
    qb_qmodel_free(&qm);
    if (drc) {
        fail(out, "defend", &err);
        out->detected = QB_DETECTED_ERROR;
        goto done;
    }

    /* 5. validity */
    out->status = QB_STATUS_OK;
    if (attack_meant_active(&p->job, &p->precision) && !(out->asr_quant >= QB_VALID_MIN_ASR)) {
        out->status = QB_STATUS_INVALID;
        snprintf(out->message, sizeof out->message,
                 "attack below the validity bar: ASR %.2f%% < %.0f%% at %s", 100.0 * out->asr_quant,
                 100.0 * QB_VALID_MIN_ASR, p->precision.name);
    }
done:
    out->t_total = qb_now() - t0;
}
