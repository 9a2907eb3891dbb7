/* The per-task pipeline, run by a worker rank:
 *
 *   1. model     the FP32 model of (dataset, seed, trigger, settings): from
 *                the worker's cache, else the model store, else trained
 *                (and stored) — each distinct model is trained once
 *   2. quantize  to the task's precision; CA and ASR
 *   3. mitigate  (mitigation axis, mitigations/mitigation.h): the model the
 *                mitigation deploys; CA, ASR
 *   4. defend    (defense axis) on the deployed, mitigated model: the
 *                defense's data (pipeline/defense_stage.h) are built once per
 *                model and kept with it; a defense that cannot run makes
 *                the task failed with detected = error
 *   5. status    ok, invalid (the attack missed the validity bar), failed
 *
 * The task arrives resolved (registry entries, parsed precision, model
 * job: qb_task_params). Everything a task draws at random comes from
 * seeds derived from the task's own parameters. */
#ifndef QB_PIPELINE_H
#define QB_PIPELINE_H

#include <stddef.h>
#include <stdint.h>

#include "core/dataset.h"
#include "core/details.h"
#include "core/error.h"
#include "core/model.h"
#include "core/params.h"
#include "mitigations/mitigation.h"
#include "pipeline/defense_stage.h"
#include "store/model_store.h"
#include "attacks/model_job.h"
#include "store/results.h"
#include "quant/precision.h"


/* Validity bar (README.md, task status): where the attack is meant to be active its ASR
 * must reach 95%. */
#define QB_VALID_MIN_ASR 0.95

/* Writes a model's canonical description (the model store's key,
 * store/model_store.h) into buf (n bytes, NUL-terminated) and returns its
 * full length, as snprintf does. The pipeline asks for it only when it
 * consults the store (once per model and worker, not per task). */
typedef size_t (*qb_model_key_fn)(const void *ctx, size_t model, char *buf, size_t n);
/* Keys longer than this are cut (the store compares what it is given). */
#define QB_MODEL_KEY_MAX 4096

/* One task, resolved: registry entries and parsed values (jobs/spec.h
 * resolves a spec's values once; mpi/task_rows.c points into them), so
 * the pipeline looks nothing up by name. */
typedef struct qb_task_params {
    const char *dataset;       /* a qb_dataset_names name (core/dataset.h) */
    const char *data_dir;      /* NULL: default search */
    qb_model_job job;          /* resolved model parameters (arch, trigger, train, qa, seed) */
    uint64_t model_id;
    qb_model_key_fn model_key; /* the model's canonical description: */
    const void *model_key_ctx; /*   model_key(model_key_ctx, model, ...) */
    size_t model;
    qb_precision precision;
    const qb_mitigation_entry *mitigation; /* NULL: none; else a registered
                                  mitigation (mitigations/registry.c) */
    qb_params mitigation_params; /* the spec's `mitigations:` block for it (kv,
                                  n; defs are filled in by the pipeline) */
    const qb_defense_entry *defense; /* NULL: none; else a registered defense
                                  (defenses/registry.c) */
    qb_params defense_params;  /* the spec's `defenses:` block for it */
} qb_task_params;

typedef struct qb_task_outcome {
    int status;                /* QB_STATUS_OK / INVALID / FAILED (store/results.h) */
    char message[256];         /* why, for invalid and failed */
    double ca_quant, asr_quant; /* after quantization (ASR NaN for clean models) */
    double ca_mitig, asr_mitig; /* after mitigation and re-quantization */
    int detected;              /* qb_detected: -1 none, 0 no, 1 yes, 2 defense error */
    double t_model, t_quant, t_mitig, t_defense, t_total;
    int trained;               /* this task trained its model */
    qb_details details;        /* raw results of the stages (owned; free with
                                  qb_task_outcome_free). Between ranks the
                                  struct travels as bytes and the details as a
                                  second, packed message: details_len bytes */
    uint64_t details_len;
} qb_task_outcome;

/* Free the outcome's details (the rest is plain data). */
void qb_task_outcome_free(qb_task_outcome *out);

/* Per-rank state kept between tasks: the loaded dataset and the last model,
 * so a rank that gets several tasks of one model loads and trains once. */
typedef struct qb_worker {
    const qb_model_store *store; /* NULL: nothing stored (tests) */
    char dataset[32];
    int have_data;
    qb_dataset train, test;
    int have_model;
    uint64_t model_id;
    qb_model model;
    int have_env;              /* the defense data of model env_model_id */
    uint64_t env_model_id;
    qb_defense_env env;
    long trainings;            /* models this worker trained */
} qb_worker;

void qb_worker_init(qb_worker *w, const qb_model_store *store);
void qb_worker_free(qb_worker *w);

/* Run one task. Never fails as a call: every problem becomes
 * out->status = QB_STATUS_FAILED with a message (a task that fails does not
 * stop the sweep). */
void qb_pipeline_run(qb_worker *w, const qb_task_params *p, qb_task_outcome *out);

#endif
