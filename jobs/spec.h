/* Sweep specs: one YAML file names the tasks of a study and their settings.
 *
 * Format
 * ------
 *   name: paper-int8             # optional label (does not affect results)
 *   extends: fast                # optional built-in preset: default | fast |
 *                                # backdoorbench
 *
 *   # Axes: the tasks are the cartesian product of these lists.
 *   dataset: [fashion-mnist]     # fashion-mnist | mnist | cifar10 | gtsrb | synthetic
 *   seed: {range: [0, 30]}       # an integer, a list of integers, or
 *                                # {range: [start, stop]} (stop exclusive);
 *                                # seeds are in [0, 2^63 - 1]
 *   trigger: [clean, square]     # clean | square | badnet (= square) | checker |
 *                                # noise | blend | qa-pgd | qa-loss
 *   precision: [fp32, int8, int4]  # fp32 | int8 | int8-linear | int4 | wNaM,
 *                                # optional -pc / -away suffixes (quant/precision.h)
 *   mitigation: none             # none
 *   defense: none                # none
 *
 *   exclude:                     # partial tuples removed from the product; a list
 *     - {trigger: clean, precision: [int4, w4a8]}   # value means "any of"
 *   include:                     # tuples added after exclude; every entry names
 *     - {dataset: mnist, seed: 0, trigger: square,  # all six axes (a list
 *        precision: int8, mitigation: none, defense: none}  # adds each)
 *
 *   # Settings shared by every task (defaults in brackets):
 *   train:
 *     arch: auto                 # [auto] lenet | cnn-small | resnet20 |
 *                                # preact-resnet18 | vgg11-bn | a name declared
 *                                # under architectures:; auto = lenet for
 *                                # fashion-mnist/mnist, cnn-small otherwise
 *     epochs: 5                  # [5] 0..100000, or dataset (BackdoorBench's:
 *                                # 50 for gtsrb, 100 otherwise)
 *     batch: 64                  # [64] 1..65536
 *     lr: 0.05                   # [0.05] > 0
 *     momentum: 0.9              # [0.9] [0, 1)
 *     weight_decay: 5e-4         # [5e-4] >= 0
 *     schedule: cosine           # [cosine] constant | cosine | step
 *     normalize: none            # [none] none | dataset | {mean: [m..], std: [s..]}
 *                                # (1 value for every channel, or 3); applied to
 *                                # the model's input, after trigger and augment
 *     augment: none              # [none] none | crop | flip | crop-flip | dataset:
 *                                # random crop with zero padding 4, horizontal
 *                                # flip; dataset = crop, flip where the class
 *                                # survives it (not mnist, gtsrb)
 *   attack:
 *     rate: 0.1                  # [0.1] poisoned fraction of the training set, [0, 1)
 *     target: 0                  # [0] target class, 0..255
 *     size: 3                    # [3] patch side in pixels, 1..4096
 *     x: -1                      # [-1] patch corner, -4096..4096; negative
 *     y: -1                      # [-1]   counts from the right/bottom edge
 *     alpha: 0.15                # [0.15] blend weight, (0, 1]
 *     qa_target: [int8]          # [int8] qa-pgd/qa-loss: up to 4 quantized precisions
 *     qa_epochs: 2               # [2 for qa-pgd, 3 for qa-loss] 0..10000
 *     qa_lr: 0.01                # [0.01] > 0
 *     qa_eps: 0.1                # [0.1] qa-pgd cell margin, [0, 0.5)
 *     qa_lambda: 1.0             # [1.0] qa-loss weight, >= 0
 *   data_dir: /data              # where the datasets are (see core/dataset.h)
 *   defenses:                    # per-defense parameters (README "Defenses",
 *     nc: {max_epochs: 80}       #   `qblind defend --help`), checked when the spec is read
 *   mitigations:                 # per-mitigation parameters (README "Mitigations")
 *     finetune: {epochs: 5}
 *   architectures:               # layer graphs by name (README "Architectures
 *     my-net:                    #   in the spec", jobs/spec_arch.c); train.arch
 *       - conv 8 k=3             #   may name them; one core/arch.h layer line
 *       - relu                   #   per item
 *       - flatten
 *       - linear classes
 *
 * Every axis may be a list or a single value; an absent axis takes its
 * default: dataset fashion-mnist, seed 0, trigger clean, precision fp32,
 * mitigation none, defense none. Values are spelled canonically before
 * anything else (badnet -> square, w8a8 -> int8), so two spellings of one
 * value are a duplicate. `exclude` entries name any subset of the axes
 * (each a value or a list of values, seeds also a range) and remove every
 * tuple of the product that matches all of them; `include` entries name all
 * six axes and add their tuples (the product of their lists) unless a task
 * already is one of them. Values only `include` names may lie outside the
 * axis lists. `extends` applies a preset's settings first; the spec's own
 * settings then override it key by key (a `train:` block that sets only
 * epochs keeps the preset's lr). Presets hold settings only, never axes:
 *   default   all defaults, written out
 *   fast      train.epochs 1 and attack.qa_epochs 1 (tests, demos)
 *   backdoorbench  BackdoorBench's recipe: batch 128, lr 0.01, momentum
 *             0.9, weight decay 5e-4, cosine, epochs dataset, normalize
 *             dataset, augment dataset
 *
 * Validation: the whole spec is checked, and expanded, before anything
 * runs; the first error stops and says where (file:line:column, 1-based),
 * which field, and what is accepted, e.g.
 *   unknown defense "nc2" at spec.yaml:12:5; expected one of: none
 * Unknown keys, duplicate keys, wrong YAML types, empty lists, duplicate
 * values, out-of-range numbers and seed ranges, and specs that expand to
 * no task or to more than QB_SPEC_MAX_TASKS tasks are errors.
 *
 * Task identity (jobs/task.h): every task and every model has a stable
 * 64-bit id computed from the canonical text of its tuple and of the
 * settings that affect it, never from its position: reordering lists or
 * keys, reformatting, comments, `name` and `data_dir` change no id. */
#ifndef QB_SPEC_H
#define QB_SPEC_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/model.h"
#include "core/params.h"
#include "core/train.h"
#include "jobs/axis_values.h"
#include "jobs/task.h"
#include "attacks/model_job.h"
#include "attacks/registry.h"
#include "attacks/qa_attack.h"
#include "defenses/defense.h"
#include "mitigations/mitigation.h"
#include "quant/precision.h"

/* At most this many tasks (32 bytes each: 320 MB of task table). */
#define QB_SPEC_MAX_TASKS 10000000u
/* At most this many seeds in one {range: [start, stop]}. */
#define QB_SPEC_MAX_RANGE 1000000u
/* Spec files larger than this are refused. */
#define QB_SPEC_MAX_BYTES (16u << 20)
/* Exclude matching (jobs/spec_expand.c): at most this many 64-bit words of
 * rows (value classes x entries / 64, 256 MiB), and of work (tasks x
 * entries / 64, a few seconds at most). */
#define QB_SPEC_MAX_XWORDS (32ull << 20)
#define QB_SPEC_MAX_XWORK (4ull << 30)

/* A place in a spec (or in a preset: file "<preset fast>"). */
typedef struct qb_spec_mark {
    const char *file; /* the spec's name (owned by the spec) or a static
                         preset label; NULL for values nobody wrote */
    int line, col;    /* 1-based */
} qb_spec_mark;

/* One parameter of a mitigation or defense: `patience: 5`. */
typedef struct qb_spec_param {
    char *key, *value;
    qb_spec_mark mark; /* of the value, for the stage's own messages */
} qb_spec_param;

/* The parameter block of one axis value under `defenses:` or `mitigations:`. */
typedef struct qb_spec_stage {
    qb_axis axis;                  /* QB_AXIS_MITIGATION or QB_AXIS_DEFENSE */
    char value[QB_AXIS_VALUE_MAX]; /* canonical */
    qb_spec_mark mark;
    size_t n;
    qb_spec_param *params;         /* sorted by key (strcmp) */
} qb_spec_stage;

/* The value table of one axis. The first n_listed values are the axis's
 * own (those of the cartesian product, in the order written); the rest
 * appear only in `include` entries. Tasks index into this table. */
typedef struct qb_spec_axis {
    uint32_t n, n_listed;
    char (*names)[QB_AXIS_VALUE_MAX]; /* canonical names (every axis but seed) */
    uint64_t *seeds;                  /* seed axis only */
    qb_spec_mark mark;                /* where the axis was given */
} qb_spec_axis;

/* A seed interval [lo, hi). */
typedef struct qb_seed_span {
    uint64_t lo, hi;
} qb_seed_span;

/* An exclude or include entry: per axis, the values it names (n = 0: any
 * value; include entries name every axis). Seeds are intervals. */
typedef struct qb_spec_filter {
    qb_spec_mark mark;
    uint32_t n[QB_AXIS_COUNT];
    char (*names[QB_AXIS_COUNT])[QB_AXIS_VALUE_MAX]; /* NULL for the seed axis */
    qb_seed_span *spans;                             /* n[QB_AXIS_SEED] intervals */
} qb_spec_filter;

/* train.normalize and train.augment as written. */
typedef enum qb_spec_norm {
    QB_SPEC_NORM_NONE = 0, /* pixels / 255 */
    QB_SPEC_NORM_DATASET,  /* qb_dataset_norm_default of each dataset */
    QB_SPEC_NORM_LIST,     /* {mean: [...], std: [...]}: 1 value (every channel) or 3 */
} qb_spec_norm;
typedef enum qb_spec_augment {
    QB_SPEC_AUG_NONE = 0,
    QB_SPEC_AUG_CROP,      /* random crop, zero padding 4 */
    QB_SPEC_AUG_FLIP,      /* horizontal flip, p = 1/2 */
    QB_SPEC_AUG_CROP_FLIP,
    QB_SPEC_AUG_DATASET,   /* crop, and flip where qb_dataset_flip_ok */
} qb_spec_augment;
/* The padding of the crop that train.augment names. */
#define QB_SPEC_AUG_PAD 4
/* "none", "crop", "flip", "crop-flip", "dataset". */
const char *qb_spec_augment_name(qb_spec_augment a);

/* Settings shared by every task. */
typedef struct qb_spec_settings {
    char arch[QB_ARCH_NAME_MAX]; /* auto | lenet | cnn-small */
    qb_train_config train;       /* seed, progress and augment unused (augment below) */
    int epochs_dataset;          /* 1: `epochs: dataset` (qb_train_backdoorbench_epochs);
                                    train.epochs then keeps its default */
    qb_spec_norm normalize;
    int n_norm;                  /* LIST: 1 or 3 */
    float norm_mean[QB_NORM_MAX_C], norm_std[QB_NORM_MAX_C];
    qb_spec_mark norm_mark;      /* where the LIST was written */
    qb_spec_augment augment;
    double rate;
    int target, size, x, y;
    float alpha;
    int n_qa_targets;
    char qa_targets[QB_QA_MAX_TARGETS][QB_AXIS_VALUE_MAX]; /* canonical, sorted */
    int qa_epochs; /* -1: the attack's default (2 for qa-pgd, 3 for qa-loss) */
    float qa_lr, qa_eps, qa_lambda;
} qb_spec_settings;

/* The axis values resolved once, at expansion (jobs/spec_resolve.c), into
 * what the stages run: registry entries, parsed precisions, parameter
 * blocks, model jobs. Indexed like the value tables (qb_spec_axis), so a
 * task's indices select its entries directly; nothing is looked up by
 * name per task. */
typedef struct qb_spec_resolved {
    const qb_trigger_entry **triggers;       /* (axes[TRIGGER].n) attacks/registry.h */
    qb_precision *precisions;                /* (axes[PRECISION].n) parsed, canonical names */
    const qb_mitigation_entry **mitigations; /* (axes[MITIGATION].n) NULL: none */
    qb_params *mitigation_params;            /* (axes[MITIGATION].n) the value's
                                                `mitigations:` block (kv, n;
                                                defs NULL: the stage's own) */
    const qb_defense_entry **defenses;       /* (axes[DEFENSE].n) NULL: none */
    qb_params *defense_params;               /* (axes[DEFENSE].n) its `defenses:` block */
    qb_model_job *jobs;                      /* (axes[DATASET].n, axes[TRIGGER].n) the
                                                model job of (dataset, trigger) with
                                                seed 0: a model's job is its
                                                (dataset, trigger) job with its seed */
} qb_spec_resolved;

/* One architecture declared under `architectures:` (README
 * "Architectures"): a name and its layer lines in core/arch.h's grammar. */
typedef struct qb_spec_declared_arch {
    char name[QB_ARCH_NAME_MAX];
    char *text;               /* canonical: the lines without comments, runs of
                                 blanks as one space, empty lines dropped, joined
                                 by '\n'; what is declared (qb_arch_declare),
                                 hashed and stored in model files */
    qb_spec_mark mark;        /* of the name */
    qb_spec_mark list_mark;   /* of its list */
    int n_lines;
    char **lines;             /* (n_lines) as written */
    qb_spec_mark *line_marks; /* (n_lines) where each line's text starts */
    unsigned char *exact;     /* (n_lines) 1: the text is the source byte for
                                 byte, so a byte offset in the line is a column
                                 offset from line_marks (0: escapes or folding;
                                 errors point at the line's start) */
} qb_spec_declared_arch;

/* The image shape, classes and training-set size of a named dataset, known
 * by name before its files are read (core/dataset.h's readers produce
 * these; tests/test_spec.c compares). -1 for a name it does not know. */
typedef struct qb_spec_dataset_info {
    int c, h, w, classes;
    size_t n_train, n_test;
} qb_spec_dataset_info;
int qb_spec_dataset_info_of(const char *name, qb_spec_dataset_info *out);

typedef struct qb_spec {
    char *path;      /* the name messages use (the file path as given) */
    char *text;      /* the spec's source text (NUL-terminated), for the results file */
    size_t text_len;
    char *name;      /* `name:` or NULL */
    char *extends;   /* preset name or NULL */
    char *data_dir;  /* `data_dir:` or NULL */
    qb_spec_settings set;
    qb_spec_axis axes[QB_AXIS_COUNT];
    size_t n_stages;
    qb_spec_stage *stages; /* sorted by (axis, value) */
    size_t n_exclude, n_include;
    qb_spec_filter *exclude, *include;
    size_t n_archs;
    qb_spec_declared_arch *archs; /* `architectures:`, sorted by name (set.arch
                                     may name one, besides auto and the presets) */

    /* The expansion (jobs/spec_expand.c; ids: jobs/task.h). */
    size_t n_tasks;
    qb_task *tasks;          /* product order (dataset outermost, defense
                                innermost) minus exclude, then include order */
    size_t n_models;
    qb_spec_model *models;   /* in order of their first task */
    uint64_t *sorted_ids;    /* (n_tasks) task ids, ascending */
    uint32_t *sorted_pos;    /* (n_tasks) task index of sorted_ids[i] */
    uint64_t hash;           /* the spec hash (qb_spec_hash_text) */

    qb_spec_resolved res;    /* the values as the stages run them */
} qb_spec;

/* Read, validate and expand the spec at `path`. On success *s owns
 * everything (qb_spec_free). On failure returns -1 with the first error in
 * err, and *s holds nothing (qb_spec_free on it is harmless). */
int qb_spec_load(qb_spec *s, const char *path, qb_error *err);

/* The same for text held in memory; `name` is the file name messages use. */
int qb_spec_parse(qb_spec *s, const char *text, size_t len, const char *name, qb_error *err);

void qb_spec_free(qb_spec *s);

/* The value `idx` of an axis as text: its canonical name, or the seed in
 * decimal. Returns buf. */
const char *qb_spec_value(const qb_spec *s, qb_axis axis, uint32_t idx, char *buf, size_t n);

/* The parameter block of a mitigation or defense value, or NULL if the spec
 * gives none (the stage's defaults apply). */
const qb_spec_stage *qb_spec_stage_params(const qb_spec *s, qb_axis axis, const char *value);
/* One parameter's value, or NULL. */
const char *qb_spec_param_value(const qb_spec *s, qb_axis axis, const char *value, const char *key);

/* ---- the expansion (jobs/spec_expand.c, spec_resolve.c, identity.c, task.c) ---- */

/* Expand a parsed spec: value tables completed from `include`, the task
 * list (product minus exclude, plus include), models, ids, the sorted-id
 * index and the spec hash. Called by qb_spec_parse; -1 with a positioned
 * message if the spec expands to no task or to too many. */
int qb_spec_expand(qb_spec *s, qb_error *err);

/* Texts. Each writes at most n bytes (NUL-terminated when n > 0) and
 * returns the full length, as snprintf does. */
/* "dataset=fashion-mnist seed=0 trigger=square precision=int8 mitigation=none defense=none" */
size_t qb_spec_task_tuple(const qb_spec *s, size_t task, char *buf, size_t n);
/* The texts the ids are hashes of (their form: jobs/task.h). */
size_t qb_spec_task_identity(const qb_spec *s, size_t task, char *buf, size_t n);
size_t qb_spec_model_identity(const qb_spec *s, size_t model, char *buf, size_t n);
/* Every setting, including parameter blocks no task uses, arch unresolved,
 * qa_epochs as written ("default" when unset): part of the spec hash. */
size_t qb_spec_settings_text(const qb_spec *s, char *buf, size_t n);

/* Index of the task with this id, or SIZE_MAX (binary search). */
size_t qb_spec_find_task(const qb_spec *s, uint64_t id);

/* Resolve the value tables into s->res (called by qb_spec_expand once the
 * tables are complete): registry entries, parsed precisions, parameter
 * blocks, the model job of every (dataset, trigger). -1 with a message
 * only if a value has no registry entry (the parser admits none such). */
int qb_spec_resolve(qb_spec *s, qb_error *err);
void qb_spec_resolved_free(qb_spec_resolved *r, const qb_spec *s);

/* The model stage job of a model: arch (auto resolved from the dataset
 * name), train settings, trigger with the attack settings, poison rate (0
 * for clean), qa config (targets in canonical order), seed = the model's
 * seed. A copy of the resolved job; returns 0 (err is never set). */
int qb_spec_model_job(const qb_spec *s, size_t model, qb_model_job *job, qb_error *err);

/* The precision of a task, parsed (a copy of the resolved one; returns 0). */
int qb_spec_task_precision(const qb_spec *s, size_t task, qb_precision *p, qb_error *err);

/* Bytes held by the expansion (tasks, models, sorted-id index, value
 * tables; the resolved tables, a few entries per axis value, are not
 * counted). */
size_t qb_spec_memory(const qb_spec *s);

/* The architecture `name` as the spec declares it, or NULL (a preset, or
 * unknown). */
const qb_spec_declared_arch *qb_spec_declared(const qb_spec *s, const char *name);

/* Built-in presets, for `plan` and tests: the i-th name / YAML text, NULL past the end. */
const char *qb_spec_preset_name(size_t i);
const char *qb_spec_preset_text(size_t i);

#endif
