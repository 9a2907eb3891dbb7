/* Sweep specs: the settings blocks (`train:`, `attack:`) and the presets
 * (jobs/spec_parse.h). */
#include "jobs/spec_parse.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attacks/model_job.h"
#include "attacks/trigger.h"
#include "core/arch.h"
#include "core/sgd.h"
#include "core/xalloc.h"

/* ---- presets ---------------------------------------------------------------
 * Settings only. `default` writes every default out (tests/test_spec.c
 * checks it equals the built-in defaults, so the two cannot drift apart). */
static const struct {
    const char *name, *label, *text;
} presets[] = {
    {"default", "<preset default>",
     "train:\n"
     "  arch: auto\n"
     "  epochs: 5\n"
     "  batch: 64\n"
     "  lr: 0.05\n"
     "  momentum: 0.9\n"
     "  weight_decay: 5e-4\n"
     "  schedule: cosine\n"
     "  normalize: none\n"
     "  augment: none\n"
     "attack:\n"
     "  rate: 0.1\n"
     "  target: 0\n"
     "  size: 3\n"
     "  x: -1\n"
     "  y: -1\n"
     "  alpha: 0.15\n"
     "  qa_target: [int8]\n"
     "  qa_lr: 0.01\n"
     "  qa_eps: 0.1\n"
     "  qa_lambda: 1.0\n"},
    {"fast", "<preset fast>",
     "# one epoch everywhere: tests and demos\n"
     "train:\n"
     "  epochs: 1\n"
     "attack:\n"
     "  qa_epochs: 1\n"},
    {"backdoorbench", "<preset backdoorbench>",
     "# BackdoorBench's training recipe (SCLBD/BackdoorBench,\n"
     "# config/attack/prototype/{cifar10,gtsrb}.yaml and\n"
     "# utils/aggregate_block/dataset_and_transform_generate.py)\n"
     "train:\n"
     "  epochs: dataset\n"
     "  batch: 128\n"
     "  lr: 0.01\n"
     "  momentum: 0.9\n"
     "  weight_decay: 5e-4\n"
     "  schedule: cosine\n"
     "  normalize: dataset\n"
     "  augment: dataset\n"},
};
#define N_PRESETS (sizeof presets / sizeof presets[0])

const char *qb_spec_preset_name(size_t i) { return i < N_PRESETS ? presets[i].name : NULL; }
const char *qb_spec_preset_text(size_t i) { return i < N_PRESETS ? presets[i].text : NULL; }

static const char *const preset_keys[] = {"train", "attack", "defenses", "mitigations", NULL};

/* ---- settings fields -------------------------------------------------------
 * Ranges are those of qb_train_config_validate, qb_trigger_validate,
 * qb_poison_apply and qb_qa_attack (the CLI's where those only ask for a
 * positive value). */
typedef enum {
    F_INT,
    F_FLOAT,
    F_DOUBLE,
    F_ARCH,
    F_SCHEDULE,
    F_QA_TARGETS,
    F_EPOCHS,    /* F_INT, or `dataset` */
    F_NORMALIZE, /* none | dataset | {mean: [...], std: [...]} */
    F_AUGMENT,   /* none | crop | flip | crop-flip | dataset */
} ftype;

typedef struct setting {
    const char *key;
    ftype type;
    double lo, hi;
    int lo_open, hi_open;
    const char *expected;
    size_t off; /* into qb_spec_settings */
} setting;

#define OFF(m) offsetof(qb_spec_settings, m)
static const setting train_fields[] = {
    {"arch", F_ARCH, 0, 0, 0, 0, NULL, OFF(arch)},
    {"epochs", F_EPOCHS, 0, 100000, 0, 0, "an integer in [0, 100000] or dataset",
     OFF(train.epochs)},
    {"batch", F_INT, 1, 65536, 0, 0, "an integer in [1, 65536]", OFF(train.batch)},
    {"lr", F_FLOAT, 0, INFINITY, 1, 1, "a finite number > 0", OFF(train.lr)},
    {"momentum", F_FLOAT, 0, 1, 0, 1, "a number in [0, 1)", OFF(train.momentum)},
    {"weight_decay", F_FLOAT, 0, INFINITY, 0, 1, "a finite number >= 0", OFF(train.weight_decay)},
    {"schedule", F_SCHEDULE, 0, 0, 0, 0, NULL, OFF(train.schedule)},
    {"normalize", F_NORMALIZE, 0, 0, 0, 0, NULL, 0},
    {"augment", F_AUGMENT, 0, 0, 0, 0, NULL, 0},
    {NULL, F_INT, 0, 0, 0, 0, NULL, 0},
};
static const setting attack_fields[] = {
    {"rate", F_DOUBLE, 0, 1, 0, 1, "a number in [0, 1)", OFF(rate)},
    {"target", F_INT, 0, 255, 0, 0, "an integer in [0, 255]", OFF(target)},
    {"size", F_INT, 1, 4096, 0, 0, "an integer in [1, 4096]", OFF(size)},
    {"x", F_INT, -4096, 4096, 0, 0, "an integer in [-4096, 4096]", OFF(x)},
    {"y", F_INT, -4096, 4096, 0, 0, "an integer in [-4096, 4096]", OFF(y)},
    {"alpha", F_FLOAT, 0, 1, 1, 0, "a number in (0, 1]", OFF(alpha)},
    {"qa_target", F_QA_TARGETS, 0, 0, 0, 0, NULL, 0},
    {"qa_epochs", F_INT, 0, 10000, 0, 0, "an integer in [0, 10000]", OFF(qa_epochs)},
    {"qa_lr", F_FLOAT, 0, INFINITY, 1, 1, "a finite number > 0", OFF(qa_lr)},
    {"qa_eps", F_FLOAT, 0, 0.5, 0, 1, "a number in [0, 0.5)", OFF(qa_eps)},
    {"qa_lambda", F_FLOAT, 0, INFINITY, 0, 1, "a finite number >= 0", OFF(qa_lambda)},
    {NULL, F_INT, 0, 0, 0, 0, NULL, 0},
};

void spec_settings_default(qb_spec_settings *set)
{
    memset(set, 0, sizeof *set);
    snprintf(set->arch, sizeof set->arch, "auto");
    qb_train_config_default(&set->train);
    qb_trigger t;
    qb_trigger_default(&t, QB_TRIGGER_SQUARE);
    qb_model_job job;
    qb_model_job_default(&job);
    set->rate = job.poison_rate;
    set->target = t.target;
    set->size = t.size;
    set->x = t.x;
    set->y = t.y;
    set->alpha = t.alpha;
    qb_qa_config qa;
    qb_qa_config_default(&qa, QB_QA_PGD);
    set->n_qa_targets = qa.n_targets;
    for (int i = 0; i < qa.n_targets; i++)
        qb_axis_canonical(QB_AXIS_PRECISION, qa.targets[i].name, set->qa_targets[i],
                          sizeof set->qa_targets[i]);
    set->qa_epochs = -1;
    set->qa_lr = qa.lr;
    set->qa_eps = qa.eps;
    set->qa_lambda = qa.lambda;
}

/* ---- settings ------------------------------------------------------------- */

static int cmp_name(const void *a, const void *b) { return strcmp(a, b); }

static int parse_qa_targets(pctx *c, const yaml_node_t *n, qb_spec_settings *set)
{
    vlist v;
    if (n->type == YAML_MAPPING_NODE)
        return spec_wrong_type(c, n, "attack.qa_target", "", "a precision or a list of precisions");
    /* the precision axis rules (canonical names, no duplicates), then ours */
    if (spec_parse_values(c, QB_AXIS_PRECISION, n, " in attack.qa_target", &v)) {
        return -1;
    }
    int rc = 0;
    for (uint32_t i = 0; i < v.n && rc == 0; i++) {
        qb_precision p;
        qb_precision_parse(v.names[i], &p, NULL);
        if (qb_precision_is_float(&p))
            rc = QB_FAIL(c->err, "invalid attack.qa_target \"%s\" at " AT
                                 "; expected quantized precisions (not fp32)",
                         v.names[i], MARK(v.marks[i]));
    }
    if (rc == 0 && v.n > QB_QA_MAX_TARGETS)
        rc = QB_FAIL(c->err, "too many attack.qa_target values at " AT ": %u; at most %d",
                     MARK(v.marks[QB_QA_MAX_TARGETS]), v.n, QB_QA_MAX_TARGETS);
    if (rc == 0) {
        /* canonical order: the attack's result must not depend on how the list was written */
        qsort(v.names, v.n, sizeof v.names[0], cmp_name);
        set->n_qa_targets = (int)v.n;
        for (uint32_t i = 0; i < v.n; i++) memcpy(set->qa_targets[i], v.names[i], QB_AXIS_VALUE_MAX);
    }
    spec_vl_free(&v);
    return rc;
}

static const char *const augment_words[] = {"none", "crop", "flip", "crop-flip", "dataset", NULL};

const char *qb_spec_augment_name(qb_spec_augment a)
{
    return (int)a >= 0 && (int)a <= QB_SPEC_AUG_DATASET ? augment_words[a] : "?";
}

static int parse_augment(pctx *c, const yaml_node_t *n, qb_spec_settings *set)
{
    static const char exp[] = "one of: none, crop, flip, crop-flip, dataset";
    const char *v;
    if (spec_get_scalar(c, n, "train.augment", "", exp, &v)) return -1;
    for (int i = 0; augment_words[i]; i++)
        if (!strcmp(v, augment_words[i])) {
            set->augment = (qb_spec_augment)i;
            return 0;
        }
    qb_spec_mark m = spec_mark_of(c, n);
    return QB_FAIL(c->err, "unknown train.augment \"%.64s\" at " AT "; expected %s", v, MARK(m),
                   exp);
}

/* One list of normalize: 1 or QB_NORM_MAX_C numbers, each finite (std: > 0). */
static int parse_norm_list(pctx *c, const yaml_node_t *n, const char *field, int positive,
                           float *out, int *count)
{
    char exp[96];
    snprintf(exp, sizeof exp, "a list of 1 or %d %s", QB_NORM_MAX_C,
             positive ? "finite numbers > 0" : "finite numbers");
    if (n->type != YAML_SEQUENCE_NODE) return spec_wrong_type(c, n, field, "", exp);
    int k = (int)(n->data.sequence.items.top - n->data.sequence.items.start);
    if (k != 1 && k != QB_NORM_MAX_C) {
        qb_spec_mark m = spec_mark_of(c, n);
        return QB_FAIL(c->err, "invalid %s at " AT ": %d values; expected %s", field, MARK(m), k,
                       exp);
    }
    for (int i = 0; i < k; i++) {
        const yaml_node_t *e = spec_node(c, n->data.sequence.items.start[i]);
        const char *v;
        if (spec_get_scalar(c, e, field, "", exp, &v)) return -1;
        char *end;
        errno = 0;
        double x = strtod(v, &end);
        float f = (float)x;
        if (*v == ' ' || *end || errno || !isfinite(x) || !isfinite(f) ||
            (positive && !(f > 0.0f))) {
            qb_spec_mark m = spec_mark_of(c, e);
            return QB_FAIL(c->err, "invalid %s \"%.64s\" at " AT "; expected %s", field, v, MARK(m),
                           exp);
        }
        out[i] = f == 0.0f ? 0.0f : f; /* no -0 */
    }
    *count = k;
    return 0;
}

static int parse_normalize(pctx *c, const yaml_node_t *n, qb_spec_settings *set)
{
    static const char exp[] = "none, dataset, or a mapping {mean: [...], std: [...]}";
    if (n->type == YAML_MAPPING_NODE) {
        static const char *const keys[] = {"mean", "std", NULL};
        if (spec_check_keys(c, n, "train.normalize", keys, "key")) return -1;
        const yaml_node_t *mean = NULL, *std = NULL;
        for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
            const char *key = spec_sval(spec_node(c, p->key));
            if (!strcmp(key, "mean")) mean = spec_node(c, p->value);
            if (!strcmp(key, "std")) std = spec_node(c, p->value);
        }
        qb_spec_mark m = spec_mark_of(c, n);
        if (!mean || !std)
            return QB_FAIL(c->err, "train.normalize at " AT " needs both mean and std", MARK(m));
        int nm, ns;
        float mv[QB_NORM_MAX_C], sv[QB_NORM_MAX_C];
        if (parse_norm_list(c, mean, "train.normalize.mean", 0, mv, &nm) ||
            parse_norm_list(c, std, "train.normalize.std", 1, sv, &ns))
            return -1;
        if (nm != ns) {
            qb_spec_mark ms = spec_mark_of(c, std);
            return QB_FAIL(c->err, "train.normalize.std at " AT " has %d values but mean has %d; "
                                   "expected as many (1, or one per channel)",
                           MARK(ms), ns, nm);
        }
        set->normalize = QB_SPEC_NORM_LIST;
        set->n_norm = nm;
        memset(set->norm_mean, 0, sizeof set->norm_mean);
        memset(set->norm_std, 0, sizeof set->norm_std);
        memcpy(set->norm_mean, mv, (size_t)nm * sizeof(float));
        memcpy(set->norm_std, sv, (size_t)nm * sizeof(float));
        set->norm_mark = m;
        return 0;
    }
    const char *v;
    if (spec_get_scalar(c, n, "train.normalize", "", exp, &v)) return -1;
    if (!strcmp(v, "none") || !strcmp(v, "dataset")) {
        set->normalize = !strcmp(v, "none") ? QB_SPEC_NORM_NONE : QB_SPEC_NORM_DATASET;
        set->n_norm = 0;
        memset(set->norm_mean, 0, sizeof set->norm_mean);
        memset(set->norm_std, 0, sizeof set->norm_std);
        memset(&set->norm_mark, 0, sizeof set->norm_mark);
        return 0;
    }
    qb_spec_mark m = spec_mark_of(c, n);
    return QB_FAIL(c->err, "unknown train.normalize \"%.64s\" at " AT "; expected %s", v, MARK(m),
                   exp);
}

static int parse_field(pctx *c, const setting *f, const char *group, const yaml_node_t *n,
                       qb_spec_settings *set)
{
    char fname[64];
    snprintf(fname, sizeof fname, "%s.%s", group, f->key);
    char *dst = (char *)set + f->off;
    const char *v;
    if (f->type == F_QA_TARGETS) return parse_qa_targets(c, n, set);
    if (f->type == F_NORMALIZE) return parse_normalize(c, n, set);
    if (f->type == F_AUGMENT) return parse_augment(c, n, set);
    if (f->type == F_EPOCHS) {
        set->epochs_dataset = n->type == YAML_SCALAR_NODE && !strcmp(spec_sval(n), "dataset");
        if (set->epochs_dataset) return 0;
    }
    if (f->type == F_ARCH || f->type == F_SCHEDULE) {
        char list[512];
        if (f->type == F_ARCH) {
            snprintf(list, sizeof list, "auto");
            for (int i = 0; qb_arch_names[i]; i++)
                snprintf(list + strlen(list), sizeof list - strlen(list), ", %s", qb_arch_names[i]);
            for (size_t i = 0; i < c->s->n_archs; i++) /* the spec's `architectures:` */
                snprintf(list + strlen(list), sizeof list - strlen(list), ", %s",
                         c->s->archs[i].name);
        } else {
            list[0] = '\0';
            for (int i = QB_LR_CONSTANT; i <= QB_LR_STEP; i++)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                         qb_lr_schedule_name((qb_lr_schedule)i));
        }
        char exp[540];
        snprintf(exp, sizeof exp, "one of: %s", list);
        if (spec_get_scalar(c, n, fname, "", exp, &v)) return -1;
        qb_spec_mark m = spec_mark_of(c, n);
        if (f->type == F_ARCH) {
            int ok = !strcmp(v, "auto");
            for (int i = 0; qb_arch_names[i]; i++) ok |= !strcmp(v, qb_arch_names[i]);
            ok |= qb_spec_declared(c->s, v) != NULL;
            if (ok && strlen(v) < QB_ARCH_NAME_MAX) {
                snprintf(dst, QB_ARCH_NAME_MAX, "%s", v);
                return 0;
            }
        } else {
            qb_lr_schedule sched;
            if (qb_lr_schedule_parse(v, &sched, NULL) == 0) {
                memcpy(dst, &sched, sizeof sched);
                return 0;
            }
        }
        return QB_FAIL(c->err, "unknown %s \"%.64s\" at " AT "; expected %s", fname, v, MARK(m), exp);
    }
    if (spec_get_scalar(c, n, fname, "", f->expected, &v)) return -1;
    qb_spec_mark m = spec_mark_of(c, n);
    double x;
    char *end;
    errno = 0;
    if (f->type == F_INT || f->type == F_EPOCHS) {
        long l = strtol(v, &end, 10);
        x = (double)l;
        if (*v == ' ' || *end || errno) goto bad;
    } else {
        x = strtod(v, &end);
        if (*v == ' ' || *end || !isfinite(x)) goto bad;
        if (f->type == F_FLOAT) x = (double)(float)x; /* the range applies to what is stored */
        if (!isfinite(x)) goto bad;
    }
    if (f->lo_open ? !(x > f->lo) : !(x >= f->lo)) goto bad;
    if (f->hi_open ? !(x < f->hi) : !(x <= f->hi)) goto bad;
    if (x == 0) x = 0; /* no -0: it would print differently */
    switch (f->type) {
    case F_EPOCHS:
    case F_INT: {
        int i = (int)x;
        memcpy(dst, &i, sizeof i);
        break;
    }
    case F_FLOAT: {
        float fl = (float)x;
        memcpy(dst, &fl, sizeof fl);
        break;
    }
    default: memcpy(dst, &x, sizeof x); break;
    }
    return 0;
bad:
    return QB_FAIL(c->err, "invalid %s \"%.64s\" at " AT "; expected %s", fname, v, MARK(m),
                   f->expected);
}

static int parse_group(pctx *c, const char *group, const setting *fields, const yaml_node_t *n)
{
    char exp[64];
    snprintf(exp, sizeof exp, "a mapping of %s settings", group);
    if (n->type != YAML_MAPPING_NODE) return spec_wrong_type(c, n, group, "", exp);
    const char *known[16];
    int k = 0;
    for (const setting *f = fields; f->key; f++) known[k++] = f->key;
    known[k] = NULL;
    if (spec_check_keys(c, n, group, known, "key")) return -1;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        const char *key = spec_sval(spec_node(c, p->key));
        for (const setting *f = fields; f->key; f++)
            if (!strcmp(f->key, key) && parse_field(c, f, group, spec_node(c, p->value), &c->s->set))
                return -1;
    }
    return 0;
}

int spec_apply_setting(pctx *c, const char *key, const yaml_node_t *v)
{
    if (!strcmp(key, "train")) return parse_group(c, "train", train_fields, v);
    if (!strcmp(key, "attack")) return parse_group(c, "attack", attack_fields, v);
    if (!strcmp(key, "defenses")) return spec_parse_stages(c, QB_AXIS_DEFENSE, "defenses", v);
    if (!strcmp(key, "mitigations")) return spec_parse_stages(c, QB_AXIS_MITIGATION, "mitigations", v);
    return 1; /* not a setting */
}

int spec_apply_preset(pctx *c, const yaml_node_t *v)
{
    const char *name;
    char list[128] = "";
    for (size_t i = 0; i < N_PRESETS; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                 presets[i].name);
    char exp[160];
    snprintf(exp, sizeof exp, "a preset name (one of: %s)", list);
    if (spec_get_scalar(c, v, "extends", "", exp, &name)) return -1;
    size_t i = 0;
    while (i < N_PRESETS && strcmp(name, presets[i].name)) i++;
    if (i == N_PRESETS) {
        qb_spec_mark m = spec_mark_of(c, v);
        return QB_FAIL(c->err, "unknown preset \"%.64s\" at " AT "; expected one of: %s", name,
                       MARK(m), list);
    }
    c->s->extends = xstrdup(name);
    yaml_document_t doc;
    if (spec_load_document(presets[i].text, strlen(presets[i].text), presets[i].label, &doc, c->err))
        return -1;
    pctx pc = *c;
    pc.doc = &doc;
    pc.file = presets[i].label;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    int rc = 0;
    if (root->type != YAML_MAPPING_NODE)
        rc = spec_wrong_type(&pc, root, "the preset", "", "a mapping of settings");
    if (rc == 0) rc = spec_check_keys(&pc, root, NULL, preset_keys, "key");
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start;
         rc == 0 && p < root->data.mapping.pairs.top; p++)
        rc = spec_apply_setting(&pc, spec_sval(spec_node(&pc, p->key)), spec_node(&pc, p->value));
    yaml_document_delete(&doc);
    return rc;
}
