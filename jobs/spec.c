/* Sweep spec parsing and validation (format: jobs/spec.h).
 *
 * libyaml's document API gives a node tree with the position of every node;
 * the spec is checked node by node against the tables below, and the first
 * problem becomes the error. Order: the keys of the top-level mapping
 * (unknown or duplicate), then `extends` (the preset is applied first), then
 * every value in document order, then the expansion (jobs/task.c). */
#include "jobs/spec.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

#include "core/sgd.h"
#include "attacks/trigger.h"
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
};
#define N_PRESETS (sizeof presets / sizeof presets[0])

const char *qb_spec_preset_name(size_t i) { return i < N_PRESETS ? presets[i].name : NULL; }
const char *qb_spec_preset_text(size_t i) { return i < N_PRESETS ? presets[i].text : NULL; }

static const char *const top_keys[] = {"name",    "extends",    "dataset",  "seed",
                                       "trigger", "precision",  "mitigation", "defense",
                                       "exclude", "include",    "train",    "attack",
                                       "data_dir", "defenses",  "mitigations", NULL};
static const char *const preset_keys[] = {"train", "attack", "defenses", "mitigations", NULL};

/* ---- settings fields -------------------------------------------------------
 * Ranges are those of qb_train_config_validate, qb_trigger_validate,
 * qb_poison_apply and qb_qa_attack (the CLI's where those only ask for a
 * positive value). */
typedef enum { F_INT, F_FLOAT, F_DOUBLE, F_ARCH, F_SCHEDULE, F_QA_TARGETS } ftype;

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
    {"epochs", F_INT, 0, 100000, 0, 0, "an integer in [0, 100000]", OFF(train.epochs)},
    {"batch", F_INT, 1, 65536, 0, 0, "an integer in [1, 65536]", OFF(train.batch)},
    {"lr", F_FLOAT, 0, INFINITY, 1, 1, "a finite number > 0", OFF(train.lr)},
    {"momentum", F_FLOAT, 0, 1, 0, 1, "a number in [0, 1)", OFF(train.momentum)},
    {"weight_decay", F_FLOAT, 0, INFINITY, 0, 1, "a finite number >= 0", OFF(train.weight_decay)},
    {"schedule", F_SCHEDULE, 0, 0, 0, 0, NULL, OFF(train.schedule)},
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

static void settings_default(qb_spec_settings *set)
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

/* ---- parse context and node helpers ---------------------------------------- */

typedef struct vlist {
    uint32_t n, cap;
    char (*names)[QB_AXIS_VALUE_MAX]; /* non-seed axes */
    qb_seed_span *spans;              /* seed axis */
    qb_spec_mark *marks;
} vlist;

typedef struct pctx {
    qb_spec *s;
    yaml_document_t *doc;
    const char *file;
    qb_error *err;
    vlist top[QB_AXIS_COUNT]; /* axis values as written at the top level */
    int given[QB_AXIS_COUNT];
    size_t visits;            /* values read: aliases can make a small file name
                                 the same long list many times */
} pctx;

#define AT "%s:%d:%d"
#define MARK(m) (m).file, (m).line, (m).col
#define MAX_SCALAR 4096
/* No legitimate spec has more keys in one mapping or reads more values
 * (at most one per byte of a QB_SPEC_MAX_BYTES file without aliases); the
 * limits keep duplicate checks and alias-multiplied lists bounded. */
#define MAX_KEYS 4096
#define MAX_VISITS ((size_t)QB_SPEC_MAX_BYTES)

static qb_spec_mark mark_of(const pctx *c, const yaml_node_t *n)
{
    qb_spec_mark m = {c->file, (int)n->start_mark.line + 1, (int)n->start_mark.column + 1};
    return m;
}

static yaml_node_t *node_at(const pctx *c, int idx) { return yaml_document_get_node(c->doc, idx); }

static const char *sval(const yaml_node_t *n) { return (const char *)n->data.scalar.value; }

static const char *kind_name(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SCALAR_NODE: return "a value";
    case YAML_SEQUENCE_NODE: return "a list";
    case YAML_MAPPING_NODE: return "a mapping";
    default: return "nothing";
    }
}

static int is_empty_scalar(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE && n->data.scalar.length == 0;
}

/* "wrong type for FIELD[WHERE] at POS: expected E, got a list", or for an
 * empty value "missing value for FIELD[WHERE] at POS; expected E". */
static int wrong_type(const pctx *c, const yaml_node_t *n, const char *field, const char *where,
                      const char *expected)
{
    qb_spec_mark m = mark_of(c, n);
    if (is_empty_scalar(n))
        return QB_FAIL(c->err, "missing value for %s%s at " AT "; expected %s", field, where,
                       MARK(m), expected);
    return QB_FAIL(c->err, "wrong type for %s%s at " AT ": expected %s, got %s", field, where,
                   MARK(m), expected, kind_name(n));
}

/* A non-empty scalar without NUL bytes and at most MAX_SCALAR long. */
static int get_scalar(const pctx *c, const yaml_node_t *n, const char *field, const char *where,
                      const char *expected, const char **out)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.length == 0)
        return wrong_type(c, n, field, where, expected);
    qb_spec_mark m = mark_of(c, n);
    if (strlen(sval(n)) != n->data.scalar.length)
        return QB_FAIL(c->err, "invalid %s%s at " AT ": the value holds a NUL character", field,
                       where, MARK(m));
    if (n->data.scalar.length > MAX_SCALAR)
        return QB_FAIL(c->err, "invalid %s%s at " AT ": the value is longer than %d bytes", field,
                       where, MARK(m), MAX_SCALAR);
    *out = sval(n);
    return 0;
}

static void join(const char *const *list, char *buf, size_t n)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; list[i] && len < n; i++) {
        int w = snprintf(buf + len, n - len, "%s%s", i ? ", " : "", list[i]);
        if (w < 0) break;
        len += (size_t)w;
    }
}

/* Every key of `map` a scalar, in `known` (NULL: any), and given once.
 * field NULL: the top level. noun: "key" or "axis". */
static int check_keys(const pctx *c, const yaml_node_t *map, const char *field,
                      const char *const *known, const char *noun)
{
    char in[160] = "";
    if (field) snprintf(in, sizeof in, " in %s", field);
    long n_keys = map->data.mapping.pairs.top - map->data.mapping.pairs.start;
    if (n_keys > MAX_KEYS) {
        qb_spec_mark m = mark_of(c, map);
        return QB_FAIL(c->err, "too many keys%s at " AT ": %ld; at most %d", in, MARK(m), n_keys,
                       MAX_KEYS);
    }
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node_at(c, p->key);
        const char *name;
        if (get_scalar(c, k, "a key", in, "a name", &name)) return -1;
        qb_spec_mark m = mark_of(c, k);
        if (known) {
            int ok = 0;
            for (int i = 0; known[i]; i++) ok |= !strcmp(name, known[i]);
            if (!ok) {
                char list[512];
                join(known, list, sizeof list);
                return QB_FAIL(c->err, "unknown %s \"%.64s\"%s at " AT "; expected one of: %s", noun,
                               name, in, MARK(m), list);
            }
        }
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
            yaml_node_t *k2 = node_at(c, q->key);
            if (!strcmp(sval(k2), name)) {
                qb_spec_mark m2 = mark_of(c, k2);
                return QB_FAIL(c->err, "duplicate %s \"%.64s\"%s at " AT " (first at " AT ")", noun,
                               name, in, MARK(m), MARK(m2));
            }
        }
    }
    return 0;
}

/* ---- value lists ----------------------------------------------------------- */

static void vl_free(vlist *v)
{
    free(v->names);
    free(v->spans);
    free(v->marks);
    memset(v, 0, sizeof *v);
}

static void vl_push(vlist *v, qb_axis axis, const char *name, qb_seed_span sp, qb_spec_mark m)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 8;
        if (axis == QB_AXIS_SEED)
            v->spans = xrealloc(v->spans, v->cap, sizeof *v->spans);
        else
            v->names = xrealloc(v->names, v->cap, sizeof *v->names);
        v->marks = xrealloc(v->marks, v->cap, sizeof *v->marks);
    }
    if (axis == QB_AXIS_SEED)
        v->spans[v->n] = sp;
    else
        memcpy(v->names[v->n], name, QB_AXIS_VALUE_MAX);
    v->marks[v->n++] = m;
}

static const char *axis_type_expected(qb_axis axis)
{
    return axis == QB_AXIS_SEED ? "an integer, a list of integers or {range: [start, stop]}"
                                : "a value or a list of values";
}

/* One value of an axis, canonicalised, appended to v. */
static int parse_value(pctx *c, qb_axis axis, const yaml_node_t *n, const char *where, vlist *v)
{
    char exp[256];
    qb_axis_expected(axis, exp, sizeof exp);
    const char *name = qb_axis_name(axis), *raw = NULL;
    if (get_scalar(c, n, name, where, axis == QB_AXIS_SEED ? "an integer" : "a value", &raw))
        return -1;
    qb_spec_mark m = mark_of(c, n);
    if (++c->visits > MAX_VISITS)
        return QB_FAIL(c->err, "too many values at " AT ": the spec names more than %zu values "
                               "(through aliases?)",
                       MARK(m), MAX_VISITS);
    char canon[QB_AXIS_VALUE_MAX];
    if (qb_axis_canonical(axis, raw, canon, sizeof canon))
        return QB_FAIL(c->err, "%s %s \"%.64s\"%s at " AT "; %s",
                       axis == QB_AXIS_SEED ? "invalid" : "unknown", name, raw, where, MARK(m), exp);
    qb_seed_span sp = {0, 0};
    if (axis == QB_AXIS_SEED) {
        sp.lo = strtoull(canon, NULL, 10);
        sp.hi = sp.lo + 1;
    }
    vl_push(v, axis, canon, sp, m);
    return 0;
}

/* Parse a decimal integer in [lo, hi] (no sign for lo >= 0). */
static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    if (!*s) return -1;
    uint64_t x = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        unsigned d = (unsigned)(*p - '0');
        if (x > (UINT64_MAX - d) / 10) return -1;
        x = x * 10 + d;
    }
    if (x < lo || x > hi) return -1;
    *out = x;
    return 0;
}

/* {range: [start, stop]} */
static int parse_range(pctx *c, const yaml_node_t *map, const char *where, vlist *v)
{
    static const char *const range_keys[] = {"range", NULL};
    char field[160];
    snprintf(field, sizeof field, "seed%s", where);
    if (check_keys(c, map, field, range_keys, "key")) return -1;
    qb_spec_mark m = mark_of(c, map);
    if (map->data.mapping.pairs.top == map->data.mapping.pairs.start)
        return QB_FAIL(c->err, "invalid seed%s at " AT "; expected {range: [start, stop]}", where,
                       MARK(m));
    yaml_node_t *seq = node_at(c, map->data.mapping.pairs.start->value);
    if (seq->type != YAML_SEQUENCE_NODE)
        return wrong_type(c, seq, "seed.range", where, "[start, stop]");
    qb_spec_mark ms = mark_of(c, seq);
    long count = seq->data.sequence.items.top - seq->data.sequence.items.start;
    if (count != 2)
        return QB_FAIL(c->err, "invalid seed.range%s at " AT "; expected [start, stop], got %ld value%s",
                       where, MARK(ms), count, count == 1 ? "" : "s");
    yaml_node_t *a = node_at(c, seq->data.sequence.items.start[0]);
    yaml_node_t *b = node_at(c, seq->data.sequence.items.start[1]);
    const char *sa, *sb;
    uint64_t lo, hi;
    if (get_scalar(c, a, "seed.range start", where, "an integer", &sa)) return -1;
    if (parse_u64(sa, 0, (uint64_t)QB_SEED_MAX, &lo)) {
        qb_spec_mark ma = mark_of(c, a);
        return QB_FAIL(c->err, "invalid seed.range start \"%.64s\" at " AT
                               "; expected an integer in [0, %lld]",
                       sa, MARK(ma), (long long)QB_SEED_MAX);
    }
    if (get_scalar(c, b, "seed.range stop", where, "an integer", &sb)) return -1;
    if (parse_u64(sb, 1, (uint64_t)QB_SEED_MAX + 1, &hi)) {
        qb_spec_mark mb = mark_of(c, b);
        return QB_FAIL(c->err, "invalid seed.range stop \"%.64s\" at " AT
                               "; expected an integer in [1, %llu]",
                       sb, MARK(mb), (unsigned long long)QB_SEED_MAX + 1);
    }
    if (hi <= lo)
        return QB_FAIL(c->err, "invalid seed.range [%s, %s] at " AT
                               "; stop must be greater than start (stop is exclusive)",
                       sa, sb, MARK(ms));
    if (hi - lo > QB_SPEC_MAX_RANGE)
        return QB_FAIL(c->err, "seed.range [%s, %s] at " AT " holds %llu seeds; at most %u are allowed",
                       sa, sb, MARK(ms), (unsigned long long)(hi - lo), QB_SPEC_MAX_RANGE);
    qb_seed_span sp = {lo, hi};
    vl_push(v, QB_AXIS_SEED, NULL, sp, mark_of(c, map));
    return 0;
}

typedef struct seed_ref {
    uint64_t v;
    uint32_t i;
} seed_ref;

static int cmp_seed_ref(const void *a, const void *b)
{
    const seed_ref *x = a, *y = b;
    if (x->v != y->v) return x->v < y->v ? -1 : 1;
    return (x->i > y->i) - (x->i < y->i);
}

/* The first value (in document order) that repeats an earlier one. */
static int check_duplicates(pctx *c, qb_axis axis, const vlist *v, const yaml_node_t **nodes,
                            const char *where)
{
    long dup = -1, first = -1;
    if (axis == QB_AXIS_SEED) {
        if (v->n < 2) return 0;
        seed_ref *r = xmalloc(v->n, sizeof *r);
        for (uint32_t i = 0; i < v->n; i++) r[i] = (seed_ref){v->spans[i].lo, i};
        qsort(r, v->n, sizeof *r, cmp_seed_ref);
        for (uint32_t i = 1; i < v->n; i++) {
            if (r[i].v != r[i - 1].v) continue;
            uint32_t g = i - 1; /* r[g] is the group's first occurrence */
            while (g > 0 && r[g - 1].v == r[i].v) g--;
            if (dup < 0 || r[i].i < (uint32_t)dup) {
                dup = r[i].i;
                first = r[g].i;
            }
        }
        free(r);
    } else {
        for (uint32_t i = 1; i < v->n && dup < 0; i++)
            for (uint32_t j = 0; j < i; j++)
                if (!strcmp(v->names[i], v->names[j])) {
                    dup = i;
                    first = j;
                    break;
                }
    }
    if (dup < 0) return 0;
    const char *raw = sval(nodes[dup]), *raw0 = sval(nodes[first]);
    char canon[QB_AXIS_VALUE_MAX];
    if (axis == QB_AXIS_SEED)
        snprintf(canon, sizeof canon, "%llu", (unsigned long long)v->spans[dup].lo);
    else
        memcpy(canon, v->names[dup], sizeof canon);
    qb_spec_mark m = v->marks[dup], m0 = v->marks[first];
    if (strcmp(raw, canon) || strcmp(raw0, canon))
        return QB_FAIL(c->err, "duplicate %s \"%.64s\"%s at " AT " (%s, first at " AT ")",
                       qb_axis_name(axis), raw, where, MARK(m), canon, MARK(m0));
    return QB_FAIL(c->err, "duplicate %s \"%.64s\"%s at " AT " (first at " AT ")",
                   qb_axis_name(axis), raw, where, MARK(m), MARK(m0));
}

/* The values of one axis: a scalar, a list of scalars, or (seed) a range.
 * where: "" at the top level, " in exclude entry 2" in entries. On failure
 * v is freed. */
static int parse_values(pctx *c, qb_axis axis, const yaml_node_t *n, const char *where, vlist *v)
{
    memset(v, 0, sizeof *v);
    const char *name = qb_axis_name(axis);
    int rc = 0;
    if (n->type == YAML_MAPPING_NODE && axis == QB_AXIS_SEED) {
        rc = parse_range(c, n, where, v);
    } else if (n->type == YAML_SCALAR_NODE && n->data.scalar.length > 0) {
        rc = parse_value(c, axis, n, where, v);
    } else if (n->type == YAML_SEQUENCE_NODE) {
        long count = n->data.sequence.items.top - n->data.sequence.items.start;
        if (count == 0) {
            qb_spec_mark m = mark_of(c, n);
            if (*where)
                return QB_FAIL(c->err, "empty list for %s%s at " AT "; give at least one value",
                               name, where, MARK(m));
            return QB_FAIL(c->err, "empty list for %s at " AT
                                   "; give at least one value, or leave %s out for the default (%s)",
                           name, MARK(m), name, qb_axis_default(axis));
        }
        const yaml_node_t **nodes = xmalloc((size_t)count, sizeof *nodes);
        for (long i = 0; i < count && rc == 0; i++) {
            nodes[i] = node_at(c, n->data.sequence.items.start[i]);
            rc = parse_value(c, axis, nodes[i], where, v);
        }
        if (rc == 0) rc = check_duplicates(c, axis, v, nodes, where);
        free(nodes);
    } else {
        rc = wrong_type(c, n, name, where, axis_type_expected(axis));
    }
    if (rc) vl_free(v);
    return rc;
}

/* ---- settings ------------------------------------------------------------- */

static int cmp_name(const void *a, const void *b) { return strcmp(a, b); }

static int parse_qa_targets(pctx *c, const yaml_node_t *n, qb_spec_settings *set)
{
    vlist v;
    if (n->type == YAML_MAPPING_NODE)
        return wrong_type(c, n, "attack.qa_target", "", "a precision or a list of precisions");
    /* the precision axis rules (canonical names, no duplicates), then ours */
    if (parse_values(c, QB_AXIS_PRECISION, n, " in attack.qa_target", &v)) {
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
    vl_free(&v);
    return rc;
}

static int parse_field(pctx *c, const setting *f, const char *group, const yaml_node_t *n,
                       qb_spec_settings *set)
{
    char fname[64];
    snprintf(fname, sizeof fname, "%s.%s", group, f->key);
    char *dst = (char *)set + f->off;
    const char *v;
    if (f->type == F_QA_TARGETS) return parse_qa_targets(c, n, set);
    if (f->type == F_ARCH || f->type == F_SCHEDULE) {
        char list[256];
        if (f->type == F_ARCH) {
            snprintf(list, sizeof list, "auto");
            for (int i = 0; qb_arch_names[i]; i++)
                snprintf(list + strlen(list), sizeof list - strlen(list), ", %s", qb_arch_names[i]);
        } else {
            list[0] = '\0';
            for (int i = QB_LR_CONSTANT; i <= QB_LR_STEP; i++)
                snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                         qb_lr_schedule_name((qb_lr_schedule)i));
        }
        char exp[300];
        snprintf(exp, sizeof exp, "one of: %s", list);
        if (get_scalar(c, n, fname, "", exp, &v)) return -1;
        qb_spec_mark m = mark_of(c, n);
        if (f->type == F_ARCH) {
            int ok = !strcmp(v, "auto");
            for (int i = 0; qb_arch_names[i]; i++) ok |= !strcmp(v, qb_arch_names[i]);
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
    if (get_scalar(c, n, fname, "", f->expected, &v)) return -1;
    qb_spec_mark m = mark_of(c, n);
    double x;
    char *end;
    errno = 0;
    if (f->type == F_INT) {
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
    if (n->type != YAML_MAPPING_NODE) return wrong_type(c, n, group, "", exp);
    const char *known[16];
    int k = 0;
    for (const setting *f = fields; f->key; f++) known[k++] = f->key;
    known[k] = NULL;
    if (check_keys(c, n, group, known, "key")) return -1;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        const char *key = sval(node_at(c, p->key));
        for (const setting *f = fields; f->key; f++)
            if (!strcmp(f->key, key) && parse_field(c, f, group, node_at(c, p->value), &c->s->set))
                return -1;
    }
    return 0;
}

/* ---- defenses: / mitigations: ----------------------------------------------- */

static qb_spec_stage *stage_get(qb_spec *s, qb_axis axis, const char *value, qb_spec_mark m)
{
    for (size_t i = 0; i < s->n_stages; i++)
        if (s->stages[i].axis == axis && !strcmp(s->stages[i].value, value)) return &s->stages[i];
    s->stages = xrealloc(s->stages, s->n_stages + 1, sizeof *s->stages);
    qb_spec_stage *st = &s->stages[s->n_stages++];
    memset(st, 0, sizeof *st);
    st->axis = axis;
    snprintf(st->value, sizeof st->value, "%s", value);
    st->mark = m;
    return st;
}

static void stage_set(qb_spec_stage *st, const char *key, const char *value, qb_spec_mark m)
{
    for (size_t i = 0; i < st->n; i++)
        if (!strcmp(st->params[i].key, key)) {
            free(st->params[i].value);
            st->params[i].value = xstrdup(value);
            st->params[i].mark = m;
            return;
        }
    st->params = xrealloc(st->params, st->n + 1, sizeof *st->params);
    st->params[st->n].key = xstrdup(key);
    st->params[st->n].value = xstrdup(value);
    st->params[st->n].mark = m;
    st->n++;
}

static int parse_stages(pctx *c, qb_axis axis, const char *group, const yaml_node_t *n)
{
    const char *axis_name = qb_axis_name(axis);
    char exp[96];
    snprintf(exp, sizeof exp, "a mapping of %s names to parameter mappings", axis_name);
    if (n->type != YAML_MAPPING_NODE) return wrong_type(c, n, group, "", exp);
    if (check_keys(c, n, group, NULL, "key")) return -1;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = node_at(c, p->key), *v = node_at(c, p->value);
        qb_spec_mark km = mark_of(c, k);
        char canon[QB_AXIS_VALUE_MAX], allowed[256];
        if (qb_axis_canonical(axis, sval(k), canon, sizeof canon))
            return QB_FAIL(c->err, "unknown %s \"%.64s\" at " AT "; %s", axis_name, sval(k),
                           MARK(km), qb_axis_expected(axis, allowed, sizeof allowed));
        for (yaml_node_pair_t *q = n->data.mapping.pairs.start; q < p; q++) {
            char c2[QB_AXIS_VALUE_MAX];
            yaml_node_t *k2 = node_at(c, q->key);
            if (!qb_axis_canonical(axis, sval(k2), c2, sizeof c2) && !strcmp(c2, canon)) {
                qb_spec_mark m2 = mark_of(c, k2);
                return QB_FAIL(c->err, "duplicate %s \"%.64s\" in %s at " AT " (%s, first at " AT ")",
                               axis_name, sval(k), group, MARK(km), canon, MARK(m2));
            }
        }
        char field[160];
        snprintf(field, sizeof field, "%s.%s", group, canon);
        if (v->type != YAML_MAPPING_NODE)
            return wrong_type(c, v, field, "", "a mapping of parameters (use {} for none)");
        if (check_keys(c, v, field, NULL, "parameter")) return -1;
        const qb_axis_value *entry = qb_axis_lookup(axis, canon);
        qb_spec_stage *st = stage_get(c->s, axis, canon, km);
        for (yaml_node_pair_t *q = v->data.mapping.pairs.start; q < v->data.mapping.pairs.top; q++) {
            yaml_node_t *pk = node_at(c, q->key), *pv = node_at(c, q->value);
            const char *key = sval(pk), *val;
            qb_spec_mark pm = mark_of(c, pk);
            if (entry && entry->params && !qb_axis_value_accepts(entry, key)) {
                char list[256] = "";
                for (const qb_param_def *d = entry->params; d->key; d++)
                    snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
                             d == entry->params ? "" : ", ", d->key);
                if (!list[0])
                    return QB_FAIL(c->err, "unknown parameter \"%.64s\" for %s %s at " AT
                                           "; %s takes no parameters",
                                   key, axis_name, canon, MARK(pm), canon);
                return QB_FAIL(c->err, "unknown parameter \"%.64s\" for %s %s at " AT
                                       "; expected one of: %s",
                               key, axis_name, canon, MARK(pm), list);
            }
            char pfield[240];
            snprintf(pfield, sizeof pfield, "%s.%s", field, key);
            if (get_scalar(c, pv, pfield, "", "a value", &val)) return -1;
            qb_spec_mark vm = mark_of(c, pv);
            if (entry && entry->params) {
                qb_error e2 = {0};
                if (qb_params_check(entry->params, key, val, &e2))
                    return QB_FAIL(c->err, "invalid %s \"%.64s\" at " AT ": %s", pfield, val,
                                   MARK(vm), e2.msg);
            }
            stage_set(st, key, val, vm);
        }
    }
    return 0;
}

/* ---- exclude: / include: ---------------------------------------------------- */

static void filter_free(qb_spec_filter *f)
{
    for (int a = 0; a < QB_AXIS_COUNT; a++) free(f->names[a]);
    free(f->spans);
    memset(f, 0, sizeof *f);
}

static int parse_filters(pctx *c, int include, const yaml_node_t *n)
{
    const char *field = include ? "include" : "exclude";
    if (n->type != YAML_SEQUENCE_NODE)
        return wrong_type(c, n, field, "",
                          include ? "a list of tuples (mappings of all six axes)"
                                  : "a list of partial tuples (mappings of axis values)");
    const char *axis_names[QB_AXIS_COUNT + 1];
    for (int a = 0; a < QB_AXIS_COUNT; a++) axis_names[a] = qb_axis_name((qb_axis)a);
    axis_names[QB_AXIS_COUNT] = NULL;
    qb_spec *s = c->s;
    int entry_no = 0;
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
        yaml_node_t *e = node_at(c, *it);
        char name[48], where[64];
        snprintf(name, sizeof name, "%s entry %d", field, ++entry_no);
        snprintf(where, sizeof where, " in %s", name);
        if (e->type != YAML_MAPPING_NODE)
            return wrong_type(c, e, name, "", "a mapping of axis values");
        if (check_keys(c, e, name, axis_names, "axis")) return -1;
        qb_spec_mark em = mark_of(c, e);
        if (e->data.mapping.pairs.top == e->data.mapping.pairs.start)
            return QB_FAIL(c->err, "empty %s at " AT "; name at least one axis", name, MARK(em));
        size_t *count = include ? &s->n_include : &s->n_exclude;
        qb_spec_filter **arr = include ? &s->include : &s->exclude;
        *arr = xrealloc(*arr, *count + 1, sizeof **arr);
        qb_spec_filter *f = &(*arr)[(*count)++];
        memset(f, 0, sizeof *f);
        f->mark = em;
        for (yaml_node_pair_t *p = e->data.mapping.pairs.start; p < e->data.mapping.pairs.top; p++) {
            qb_axis axis;
            qb_axis_from_name(sval(node_at(c, p->key)), &axis);
            vlist v;
            if (parse_values(c, axis, node_at(c, p->value), where, &v)) return -1;
            f->n[axis] = v.n;
            if (axis == QB_AXIS_SEED) {
                f->spans = v.spans;
                v.spans = NULL;
            } else {
                f->names[axis] = v.names;
                v.names = NULL;
            }
            vl_free(&v);
        }
        if (include) {
            char missing[128] = "";
            for (int a = 0; a < QB_AXIS_COUNT; a++)
                if (f->n[a] == 0)
                    snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "%s%s",
                             *missing ? ", " : "", qb_axis_name((qb_axis)a));
            if (*missing) {
                char all[128];
                join(axis_names, all, sizeof all);
                return QB_FAIL(c->err, "%s at " AT " lacks %s; include entries name all six axes (%s)",
                               name, MARK(em), missing, all);
            }
        }
    }
    return 0;
}

/* ---- the document ------------------------------------------------------------ */

static int yaml_fail(const yaml_parser_t *p, const char *file, const char *text, size_t len,
                     qb_error *err)
{
    switch (p->error) {
    case YAML_MEMORY_ERROR: qb_die_at(__FILE__, __LINE__, "out of memory parsing %s", file);
    case YAML_READER_ERROR: {
        int line = 1, col = 1;
        for (size_t i = 0; i < p->problem_offset && i < len; i++) {
            if (text[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        if (p->problem_value != -1)
            return QB_FAIL(err, "invalid text at %s:%d:%d: %s (byte 0x%02X); a spec is UTF-8", file,
                           line, col, p->problem, (unsigned)p->problem_value & 0xffu);
        return QB_FAIL(err, "invalid text at %s:%d:%d: %s; a spec is UTF-8", file, line, col,
                       p->problem);
    }
    default: break;
    }
    const char *problem = p->problem ? p->problem : "unknown problem";
    if (p->context)
        return QB_FAIL(err, "YAML syntax error at %s:%d:%d: %s (%s at %s:%d:%d)", file,
                       (int)p->problem_mark.line + 1, (int)p->problem_mark.column + 1, problem,
                       p->context, file, (int)p->context_mark.line + 1,
                       (int)p->context_mark.column + 1);
    return QB_FAIL(err, "YAML syntax error at %s:%d:%d: %s", file, (int)p->problem_mark.line + 1,
                   (int)p->problem_mark.column + 1, problem);
}

/* Load the single document of text. Returns 0 with *doc to delete, or -1. */
static int load_document(const char *text, size_t len, const char *file, yaml_document_t *doc,
                         qb_error *err)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) qb_die_at(__FILE__, __LINE__, "out of memory");
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, doc)) {
        int rc = yaml_fail(&parser, file, text, len, err);
        yaml_parser_delete(&parser);
        return rc;
    }
    yaml_node_t *root = yaml_document_get_root_node(doc);
    if (!root) {
        yaml_document_delete(doc);
        yaml_parser_delete(&parser);
        return QB_FAIL(err, "empty spec at %s:1:1; expected a mapping of axes and settings", file);
    }
    yaml_document_t extra;
    if (!yaml_parser_load(&parser, &extra)) {
        int rc = yaml_fail(&parser, file, text, len, err);
        yaml_document_delete(doc);
        yaml_parser_delete(&parser);
        return rc;
    }
    yaml_node_t *root2 = yaml_document_get_root_node(&extra);
    int rc = 0;
    if (root2)
        rc = QB_FAIL(err, "a second YAML document at %s:%d:%d; a spec is one document", file,
                     (int)root2->start_mark.line + 1, (int)root2->start_mark.column + 1);
    yaml_document_delete(&extra);
    yaml_parser_delete(&parser);
    if (rc) yaml_document_delete(doc);
    return rc;
}

static int apply_setting(pctx *c, const char *key, const yaml_node_t *v)
{
    if (!strcmp(key, "train")) return parse_group(c, "train", train_fields, v);
    if (!strcmp(key, "attack")) return parse_group(c, "attack", attack_fields, v);
    if (!strcmp(key, "defenses")) return parse_stages(c, QB_AXIS_DEFENSE, "defenses", v);
    if (!strcmp(key, "mitigations")) return parse_stages(c, QB_AXIS_MITIGATION, "mitigations", v);
    return 1; /* not a setting */
}

static int apply_preset(pctx *c, const yaml_node_t *v)
{
    const char *name;
    char list[128] = "";
    for (size_t i = 0; i < N_PRESETS; i++)
        snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s", i ? ", " : "",
                 presets[i].name);
    char exp[160];
    snprintf(exp, sizeof exp, "a preset name (one of: %s)", list);
    if (get_scalar(c, v, "extends", "", exp, &name)) return -1;
    size_t i = 0;
    while (i < N_PRESETS && strcmp(name, presets[i].name)) i++;
    if (i == N_PRESETS) {
        qb_spec_mark m = mark_of(c, v);
        return QB_FAIL(c->err, "unknown preset \"%.64s\" at " AT "; expected one of: %s", name,
                       MARK(m), list);
    }
    c->s->extends = xstrdup(name);
    yaml_document_t doc;
    if (load_document(presets[i].text, strlen(presets[i].text), presets[i].label, &doc, c->err))
        return -1;
    pctx pc = *c;
    pc.doc = &doc;
    pc.file = presets[i].label;
    yaml_node_t *root = yaml_document_get_root_node(&doc);
    int rc = 0;
    if (root->type != YAML_MAPPING_NODE)
        rc = wrong_type(&pc, root, "the preset", "", "a mapping of settings");
    if (rc == 0) rc = check_keys(&pc, root, NULL, preset_keys, "key");
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start;
         rc == 0 && p < root->data.mapping.pairs.top; p++)
        rc = apply_setting(&pc, sval(node_at(&pc, p->key)), node_at(&pc, p->value));
    yaml_document_delete(&doc);
    return rc;
}

static int parse_string(pctx *c, const char *key, const yaml_node_t *v, const char *exp, char **out)
{
    const char *str;
    if (get_scalar(c, v, key, "", exp, &str)) return -1;
    free(*out);
    *out = xstrdup(str);
    return 0;
}

static int cmp_param(const void *a, const void *b)
{
    return strcmp(((const qb_spec_param *)a)->key, ((const qb_spec_param *)b)->key);
}

static int cmp_stage(const void *a, const void *b)
{
    const qb_spec_stage *x = a, *y = b;
    if (x->axis != y->axis) return x->axis < y->axis ? -1 : 1;
    return strcmp(x->value, y->value);
}

/* The value tables from what the axes named (or their defaults). */
static void build_axes(pctx *c)
{
    qb_spec *s = c->s;
    for (int a = 0; a < QB_AXIS_COUNT; a++) {
        qb_spec_axis *ax = &s->axes[a];
        vlist *v = &c->top[a];
        if (!c->given[a]) {
            qb_spec_mark none = {NULL, 0, 0};
            char canon[QB_AXIS_VALUE_MAX];
            qb_axis_canonical((qb_axis)a, qb_axis_default((qb_axis)a), canon, sizeof canon);
            qb_seed_span sp = {0, 1};
            vl_push(v, (qb_axis)a, canon, sp, none);
        }
        if (a == QB_AXIS_SEED) {
            uint64_t total = 0;
            for (uint32_t i = 0; i < v->n; i++) total += v->spans[i].hi - v->spans[i].lo;
            QB_ASSERT(total <= UINT32_MAX);
            ax->seeds = xmalloc((size_t)total, sizeof *ax->seeds);
            size_t k = 0;
            for (uint32_t i = 0; i < v->n; i++)
                for (uint64_t x = v->spans[i].lo; x < v->spans[i].hi; x++) ax->seeds[k++] = x;
            ax->n = ax->n_listed = (uint32_t)total;
        } else {
            ax->names = v->names;
            v->names = NULL;
            ax->n = ax->n_listed = v->n;
        }
    }
}

static int parse_root(pctx *c)
{
    qb_spec *s = c->s;
    yaml_node_t *root = yaml_document_get_root_node(c->doc);
    if (root->type != YAML_MAPPING_NODE)
        return wrong_type(c, root, "the spec", "", "a mapping of axes and settings");
    if (check_keys(c, root, NULL, top_keys, "key")) return -1;
    yaml_node_pair_t *p0 = root->data.mapping.pairs.start, *p1 = root->data.mapping.pairs.top;
    for (yaml_node_pair_t *p = p0; p < p1; p++)
        if (!strcmp(sval(node_at(c, p->key)), "extends") && apply_preset(c, node_at(c, p->value)))
            return -1;
    for (yaml_node_pair_t *p = p0; p < p1; p++) {
        yaml_node_t *k = node_at(c, p->key), *v = node_at(c, p->value);
        const char *key = sval(k);
        qb_axis axis;
        int rc = 0;
        if (!qb_axis_from_name(key, &axis)) {
            rc = parse_values(c, axis, v, "", &c->top[axis]);
            c->given[axis] = 1;
            s->axes[axis].mark = mark_of(c, v);
        } else if (!strcmp(key, "exclude") || !strcmp(key, "include")) {
            rc = parse_filters(c, !strcmp(key, "include"), v);
        } else if (!strcmp(key, "name")) {
            rc = parse_string(c, key, v, "a name", &s->name);
        } else if (!strcmp(key, "data_dir")) {
            rc = parse_string(c, key, v, "a directory", &s->data_dir);
        } else if (!strcmp(key, "extends")) {
            rc = 0;
        } else {
            rc = apply_setting(c, key, v);
        }
        if (rc) return -1;
    }
    build_axes(c);
    for (size_t i = 0; i < s->n_stages; i++)
        if (s->stages[i].n) qsort(s->stages[i].params, s->stages[i].n, sizeof(qb_spec_param), cmp_param);
    if (s->n_stages) qsort(s->stages, s->n_stages, sizeof *s->stages, cmp_stage);
    /* backstop: the field table must keep the library's own checks */
    qb_error e2;
    QB_ASSERT(qb_train_config_validate(&s->set.train, &e2) == 0);
    return 0;
}

int qb_spec_parse(qb_spec *s, const char *text, size_t len, const char *name, qb_error *err)
{
    memset(s, 0, sizeof *s);
    s->path = xstrdup(name);
    if (len > QB_SPEC_MAX_BYTES) {
        QB_FAIL(err, "spec %s is %zu bytes; at most %u are read", name, len, QB_SPEC_MAX_BYTES);
        qb_spec_free(s);
        return -1;
    }
    s->text = xmalloc(len + 1, 1);
    memcpy(s->text, text, len);
    s->text[len] = '\0';
    s->text_len = len;
    settings_default(&s->set);

    pctx c;
    memset(&c, 0, sizeof c);
    c.s = s;
    c.file = s->path;
    c.err = err;
    yaml_document_t doc;
    int rc = load_document(s->text, len, s->path, &doc, err);
    if (rc == 0) {
        c.doc = &doc;
        rc = parse_root(&c);
        yaml_document_delete(&doc);
    }
    for (int a = 0; a < QB_AXIS_COUNT; a++) vl_free(&c.top[a]);
    if (rc == 0) rc = qb_spec_expand(s, err);
    if (rc) {
        qb_spec_free(s);
        return -1;
    }
    return 0;
}

int qb_spec_load(qb_spec *s, const char *path, qb_error *err)
{
    memset(s, 0, sizeof *s);
    FILE *f = fopen(path, "rb");
    if (!f) return QB_FAIL(err, "cannot open spec %s: %s", path, strerror(errno));
    size_t cap = 1 << 16, len = 0;
    char *buf = xmalloc(cap, 1);
    for (;;) {
        if (len == cap) {
            if (cap > QB_SPEC_MAX_BYTES) break;
            cap *= 2;
            buf = xrealloc(buf, cap, 1);
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad) {
        free(buf);
        return QB_FAIL(err, "cannot read spec %s", path);
    }
    int rc = qb_spec_parse(s, buf, len, path, err);
    free(buf);
    return rc;
}

void qb_spec_free(qb_spec *s)
{
    if (!s) return;
    free(s->path);
    free(s->text);
    free(s->name);
    free(s->extends);
    free(s->data_dir);
    for (int a = 0; a < QB_AXIS_COUNT; a++) {
        free(s->axes[a].names);
        free(s->axes[a].seeds);
    }
    for (size_t i = 0; i < s->n_stages; i++) {
        for (size_t j = 0; j < s->stages[i].n; j++) {
            free(s->stages[i].params[j].key);
            free(s->stages[i].params[j].value);
        }
        free(s->stages[i].params);
    }
    free(s->stages);
    for (size_t i = 0; i < s->n_exclude; i++) filter_free(&s->exclude[i]);
    for (size_t i = 0; i < s->n_include; i++) filter_free(&s->include[i]);
    free(s->exclude);
    free(s->include);
    free(s->tasks);
    free(s->models);
    free(s->sorted_ids);
    free(s->sorted_pos);
    memset(s, 0, sizeof *s);
}

const char *qb_spec_value(const qb_spec *s, qb_axis axis, uint32_t idx, char *buf, size_t n)
{
    QB_ASSERT((unsigned)axis < QB_AXIS_COUNT && idx < s->axes[axis].n);
    if (axis == QB_AXIS_SEED)
        snprintf(buf, n, "%llu", (unsigned long long)s->axes[axis].seeds[idx]);
    else
        snprintf(buf, n, "%s", s->axes[axis].names[idx]);
    return buf;
}

const qb_spec_stage *qb_spec_stage_params(const qb_spec *s, qb_axis axis, const char *value)
{
    for (size_t i = 0; i < s->n_stages; i++)
        if (s->stages[i].axis == axis && !strcmp(s->stages[i].value, value)) return &s->stages[i];
    return NULL;
}

const char *qb_spec_param_value(const qb_spec *s, qb_axis axis, const char *value, const char *key)
{
    const qb_spec_stage *st = qb_spec_stage_params(s, axis, value);
    if (!st) return NULL;
    for (size_t i = 0; i < st->n; i++)
        if (!strcmp(st->params[i].key, key)) return st->params[i].value;
    return NULL;
}
