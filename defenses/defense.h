/* The defenses of the study, run on the deployed (quantized, mitigated)
 * model of a task.
 *
 * Every defense is one function with the same contract:
 *
 *   int qb_defense_<name>(const qb_defense_input *in, qb_defense_result *res,
 *                         qb_error *err);
 *
 * It reads the deployed model through in->model (a qb_model whose hooks run
 * the precision: integer inference where only outputs are needed, float on
 * the de-quantized weights with straight-through gradients in training
 * mode), never modifies it, and writes
 *   - res->detected: QB_DETECTED_YES / NO by the rule of docs/DESIGN.md, or
 *     QB_DETECTED_NA where the rule does not apply (stated per defense);
 *   - raw results into res->details, named "<defense>.<field>".
 * It returns -1 with err set when it cannot run (too little data, a
 * numerical failure): the pipeline records that as `error`, never as "not
 * detected". Thresholds are the fixed values of docs/DESIGN.md; every budget is a
 * parameter (core/params.h) with the default of its table.
 *
 * Data. The defender's clean data come from the test set: in->pool lists
 * test-set indices in a seeded order (from the task's seed); a defense takes
 * consecutive slices of it from the front for its clean set, calibration
 * and held-out splits (documented per defense), so its splits are disjoint
 * and reproducible. in->eval_from is where the pool's evaluation part starts:
 * pool[eval_from..n_pool) is never given to a defense as training or
 * calibration data, and defenses that report CA/ASR after a change (FP)
 * measure them there. AC and SS use in->train: the training set exactly as
 * the model was trained on it (poisoned copies and poisoned labels), with
 * the ground truth in->is_poisoned. */
#ifndef QB_DEFENSE_H
#define QB_DEFENSE_H

#include <stddef.h>
#include <stdint.h>

#include "core/dataset.h"
#include "core/details.h"
#include "core/error.h"
#include "core/model.h"
#include "attacks/trigger.h"
#include "core/params.h"
#include "core/registry.h"
#include "quant/precision.h"

struct qb_qmodel;

typedef struct qb_defense_input {
    const qb_model *model;          /* the deployed model (hooks = its precision) */
    const struct qb_qmodel *qmodel; /* the same model's codes and scales */
    const qb_model *fp32;           /* the FP32 model that was quantized (no hooks) */
    const qb_precision *precision;  /* the deployed precision */

    const qb_dataset *train;        /* training set as trained on (poisoned) */
    const uint8_t *is_poisoned;     /* (train->n) 1 = poisoned sample; NULL: none */
    size_t n_poisoned;

    const qb_dataset *test;         /* the clean test set */
    const uint32_t *pool;           /* (n_pool) test indices in a seeded order */
    size_t n_pool;
    size_t eval_from;               /* pool[eval_from..) is evaluation-only */

    /* The trigger whose effect a defense measures (ASR, STRIP's triggered
     * inputs). For a backdoored model (attacked = 1) the attack's own; for
     * a clean model the probe trigger (the default BadNet square, target 0)
     * so that false-positive rates are measured with the same procedure. */
    const qb_trigger *trigger;
    int attacked;

    uint64_t seed;                  /* derived from the task; derive sub-seeds by name */
    qb_params params;               /* the spec's parameters for this defense */
} qb_defense_input;

typedef struct qb_defense_result {
    int detected;          /* qb_detected (defenses/verdict.h): -1 na, 0 no, 1 yes */
    qb_details *details;   /* raw results, appended by the defense */
    char summary[160];     /* one line for logs: "flagged label 0 (index 3.2)" */
} qb_defense_result;

typedef int qb_defense_fn(const qb_defense_input *in, qb_defense_result *res, qb_error *err);

/* One registered defense (defenses/registry.c): name (the `defense` axis
 * value), its function, its parameter table (core/params.h: the keys its
 * `defenses:` block in a spec accepts, ranges, defaults). */
typedef struct qb_defense_entry {
    qb_registry_key key; /* name, alias_of (core/registry.h) */
    qb_defense_fn *run;
    const qb_param_def *params;
} qb_defense_entry;

/* The registered defenses, NULL-name terminated: nc, ac, ss, strip, fp,
 * forensics. The one list of the `defense` axis (with `none`, which runs
 * nothing): the spec parser and `qblind defend` read it. */
extern const qb_defense_entry qb_defenses[];
/* The canonical entry of a name (aliases resolved), or NULL. */
const qb_defense_entry *qb_defense_find(const char *name);

/* The defenses (one file each, each a qb_defense_fn) and their parameter
 * tables. */
qb_defense_fn qb_defense_nc, qb_defense_ac, qb_defense_ss, qb_defense_strip, qb_defense_fp,
    qb_defense_forensics;
extern const qb_param_def qb_nc_params[], qb_ac_params[], qb_ss_params[], qb_strip_params[],
    qb_fp_params[], qb_forensics_params[];

/* ---- helpers shared by the defenses ---------------------------------- */

/* Output of layer `layer` (index into m->layers; -1 = the logits) for
 * samples idx[0..n) of d (idx NULL: the first n), evaluated in inference
 * mode in batches: out (n, dim) with dim = that layer's per-sample output
 * size (*dim receives it). Uses an unfused workspace so every layer's
 * output exists. Returns the malloc'd (n, dim) array. */
float *qb_defense_activations(const qb_model *m, const qb_dataset *d, const uint32_t *idx,
                              size_t n, int layer, size_t *dim);

/* A copy of samples pool[from..from+n) of in->test: a clean split. Fails
 * (returns -1 with a message naming the defense and what it needed) when
 * the pool is too small. */
int qb_defense_clean_split(const qb_defense_input *in, const char *who, size_t from, size_t n,
                           qb_dataset *out, qb_error *err);

/* Index of the last conv layer (-1 if none). */
int qb_model_last_conv(const qb_model *m);

/* Median of v[0..n) (n >= 1; v is not modified). */
double qb_median(const double *v, size_t n);

/* order (n): the positions 0..n-1 of score (n) by ascending score
 * (descending when descending != 0), ties by ascending position: a total
 * order, so the ranking does not depend on qsort's algorithm. */
void qb_defense_rank(const double *score, size_t n, int descending, uint32_t *order);

/* MAD anomaly index of Neural Cleanse: idx[i] = |v[i] - median| / (1.4826 *
 * median(|v - median|)). A MAD of 0 gives +inf for values off the median,
 * 0 on it. */
void qb_mad_anomaly(const double *v, size_t n, double *idx);

#endif
