/* Spec expansion and task identity (jobs/task.h).
 *
 * The ids hash texts, but the texts are never built for the whole task
 * list: FNV-1a is a stream, so the hash state after a shared prefix (a
 * model's settings, a task's model line) is computed once and each task
 * feeds only its own short lines. The text functions (qb_spec_*_identity)
 * run the same emitters into a buffer, so a text and its id cannot differ
 * (tests/test_spec.c checks id == qb_hash64(text)). */
#include "jobs/task.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/sgd.h"
#include "attacks/trigger.h"
#include "core/xalloc.h"
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

/* ---- hashing -------------------------------------------------------------- */

uint64_t qb_hash_bytes(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull; /* the FNV-1a 64 prime */
    }
    return h;
}

uint64_t qb_hash_finish(uint64_t h)
{
    /* splitmix64's finaliser: FNV alone mixes its last bytes poorly into
     * the high bits, and ids are also used as hash-table keys */
    h ^= h >> 30;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 27;
    h *= 0x94d049bb133111ebull;
    h ^= h >> 31;
    return h;
}

uint64_t qb_hash64(const void *data, size_t n)
{
    return qb_hash_finish(qb_hash_bytes(QB_HASH_INIT, data, n));
}

/* ---- emitters: text and hash at once ----------------------------------------- */

typedef struct emitter {
    uint64_t h;
    char *buf; /* NULL: hash only */
    size_t cap, len;
} emitter;

static void em_init(emitter *e, uint64_t h, char *buf, size_t cap)
{
    e->h = h;
    e->buf = buf;
    e->cap = buf ? cap : 0;
    e->len = 0;
    if (e->cap) buf[0] = '\0';
}

static void em_put(emitter *e, const char *p, size_t n)
{
    e->h = qb_hash_bytes(e->h, p, n);
    if (e->cap && e->len < e->cap - 1) {
        size_t k = e->cap - 1 - e->len;
        if (k > n) k = n;
        memcpy(e->buf + e->len, p, k);
        e->buf[e->len + k] = '\0';
    }
    e->len += n;
}

static void em_str(emitter *e, const char *s) { em_put(e, s, strlen(s)); }

__attribute__((format(printf, 2, 3))) static void em_fmt(emitter *e, const char *fmt, ...)
{
    char b[256];
    va_list ap;
    va_start(ap, fmt);
    int w = vsnprintf(b, sizeof b, fmt, ap);
    va_end(ap);
    QB_ASSERT(w >= 0 && (size_t)w < sizeof b);
    em_put(e, b, (size_t)w);
}

/* Shortest text that reads back to the same value: 0.05, not 0.0500000007. */
static void em_float(emitter *e, const char *key, float v)
{
    char b[32];
    for (int p = 1; p <= 9; p++) {
        snprintf(b, sizeof b, "%.*g", p, (double)v);
        if (strtof(b, NULL) == v) break;
    }
    em_fmt(e, "%s=%s\n", key, b);
}

static void em_double(emitter *e, const char *key, double v)
{
    char b[40];
    for (int p = 1; p <= 17; p++) {
        snprintf(b, sizeof b, "%.*g", p, v);
        if (strtod(b, NULL) == v) break;
    }
    em_fmt(e, "%s=%s\n", key, b);
}

static void em_quoted(emitter *e, const char *v)
{
    em_put(e, "\"", 1);
    for (const char *p = v; *p; p++) {
        if (*p == '"' || *p == '\\') {
            char b[2] = {'\\', *p};
            em_put(e, b, 2);
        } else if ((unsigned char)*p < 0x20 || *p == 0x7f) {
            em_fmt(e, "\\x%02x", (unsigned)(unsigned char)*p);
        } else {
            em_put(e, p, 1);
        }
    }
    em_put(e, "\"", 1);
}

/* value{key="v";key2="w"}, or just value without parameters */
static void em_stage(emitter *e, const qb_spec *s, qb_axis axis, const char *value)
{
    em_str(e, value);
    const qb_spec_stage *st = qb_spec_stage_params(s, axis, value);
    if (!st || st->n == 0) return;
    em_put(e, "{", 1);
    for (size_t i = 0; i < st->n; i++) {
        if (i) em_put(e, ";", 1);
        em_str(e, st->params[i].key);
        em_put(e, "=", 1);
        em_quoted(e, st->params[i].value);
    }
    em_put(e, "}", 1);
}

static void em_train(emitter *e, const qb_spec_settings *set, const char *arch)
{
    em_fmt(e, "arch=%s\n", arch);
    em_fmt(e, "train.epochs=%d\n", set->train.epochs);
    em_fmt(e, "train.batch=%d\n", set->train.batch);
    em_float(e, "train.lr", set->train.lr);
    em_float(e, "train.momentum", set->train.momentum);
    em_float(e, "train.weight_decay", set->train.weight_decay);
    em_fmt(e, "train.schedule=%s\n", qb_lr_schedule_name(set->train.schedule));
}

static void em_attack(emitter *e, const qb_spec_settings *set)
{
    em_double(e, "attack.rate", set->rate);
    em_fmt(e, "attack.target=%d\n", set->target);
    em_fmt(e, "attack.size=%d\n", set->size);
    em_fmt(e, "attack.x=%d\n", set->x);
    em_fmt(e, "attack.y=%d\n", set->y);
    em_float(e, "attack.alpha", set->alpha);
}

/* qa_mode NONE: as written (qa_epochs "default" when unset). */
static void em_qa(emitter *e, const qb_spec_settings *set, qb_qa_mode mode)
{
    em_str(e, "attack.qa_target=");
    for (int i = 0; i < set->n_qa_targets; i++) {
        if (i) em_put(e, ",", 1);
        em_str(e, set->qa_targets[i]);
    }
    em_put(e, "\n", 1);
    if (set->qa_epochs >= 0) {
        em_fmt(e, "attack.qa_epochs=%d\n", set->qa_epochs);
    } else if (mode == QB_QA_NONE) {
        em_str(e, "attack.qa_epochs=default\n");
    } else {
        qb_qa_config d;
        qb_qa_config_default(&d, mode);
        em_fmt(e, "attack.qa_epochs=%d\n", d.epochs);
    }
    em_float(e, "attack.qa_lr", set->qa_lr);
    em_float(e, "attack.qa_eps", set->qa_eps);
    em_float(e, "attack.qa_lambda", set->qa_lambda);
}

static const char *resolved_arch(const qb_spec *s, const char *dataset)
{
    if (strcmp(s->set.arch, "auto")) return s->set.arch;
    const char *a = qb_axis_default_arch(dataset);
    QB_ASSERT(a != NULL); /* every dataset has a line in axis_values.c */
    return a;
}

/* Everything of a model's identity but its seed. */
static void em_model_prefix(emitter *e, const qb_spec *s, uint32_t d, uint32_t t)
{
    const char *dataset = s->axes[QB_AXIS_DATASET].names[d];
    const char *trigger = s->axes[QB_AXIS_TRIGGER].names[t];
    em_str(e, "qblind-model-v1\n");
    em_fmt(e, "dataset=%s\n", dataset);
    em_fmt(e, "trigger=%s\n", trigger);
    em_train(e, &s->set, resolved_arch(s, dataset));
    if (strcmp(trigger, "clean")) em_attack(e, &s->set); /* a clean model uses no attack setting */
    qb_qa_mode qa = qb_qa_mode_from_name(trigger);
    if (qa != QB_QA_NONE) em_qa(e, &s->set, qa);
}

static void em_model_seed(emitter *e, uint64_t seed) { em_fmt(e, "seed=%llu\n", (unsigned long long)seed); }

static void em_task_prefix(emitter *e, uint64_t model_id)
{
    em_str(e, "qblind-task-v1\n");
    em_fmt(e, "model=%016llx\n", (unsigned long long)model_id);
}

static void em_task_line(emitter *e, const qb_spec *s, qb_axis axis, uint32_t idx)
{
    em_str(e, qb_axis_name(axis));
    em_put(e, "=", 1);
    if (axis == QB_AXIS_PRECISION)
        em_str(e, s->axes[axis].names[idx]);
    else
        em_stage(e, s, axis, s->axes[axis].names[idx]);
    em_put(e, "\n", 1);
}

/* A task line as a string, for the per-task fast path. */
static char *task_line(const qb_spec *s, qb_axis axis, uint32_t idx, size_t *len)
{
    emitter e;
    em_init(&e, QB_HASH_INIT, NULL, 0);
    em_task_line(&e, s, axis, idx);
    char *buf = xmalloc(e.len + 1, 1);
    em_init(&e, QB_HASH_INIT, buf, e.len + 1);
    em_task_line(&e, s, axis, idx);
    *len = e.len;
    return buf;
}

/* ---- texts ----------------------------------------------------------------- */

static size_t em_done(emitter *e) { return e->len; }

size_t qb_spec_model_identity(const qb_spec *s, size_t model, char *buf, size_t n)
{
    QB_ASSERT(model < s->n_models);
    const qb_spec_model *m = &s->models[model];
    emitter e;
    em_init(&e, QB_HASH_INIT, buf, n);
    em_model_prefix(&e, s, m->dataset, m->trigger);
    em_model_seed(&e, s->axes[QB_AXIS_SEED].seeds[m->seed]);
    return em_done(&e);
}

size_t qb_spec_task_identity(const qb_spec *s, size_t task, char *buf, size_t n)
{
    QB_ASSERT(task < s->n_tasks);
    const qb_task *t = &s->tasks[task];
    emitter e;
    em_init(&e, QB_HASH_INIT, buf, n);
    em_task_prefix(&e, s->models[t->model].id);
    em_task_line(&e, s, QB_AXIS_PRECISION, t->precision);
    em_task_line(&e, s, QB_AXIS_MITIGATION, t->mitigation);
    em_task_line(&e, s, QB_AXIS_DEFENSE, t->defense);
    return em_done(&e);
}

size_t qb_spec_task_tuple(const qb_spec *s, size_t task, char *buf, size_t n)
{
    QB_ASSERT(task < s->n_tasks);
    const qb_task *t = &s->tasks[task];
    emitter e;
    em_init(&e, QB_HASH_INIT, buf, n);
    for (int a = 0; a < QB_AXIS_COUNT; a++) {
        char v[QB_AXIS_VALUE_MAX];
        em_fmt(&e, "%s%s=%s", a ? " " : "", qb_axis_name((qb_axis)a),
               qb_spec_value(s, (qb_axis)a, qb_task_index(t, a), v, sizeof v));
    }
    return em_done(&e);
}

static void em_settings(emitter *e, const qb_spec *s)
{
    em_train(e, &s->set, s->set.arch);
    em_attack(e, &s->set);
    em_qa(e, &s->set, QB_QA_NONE);
    for (size_t i = 0; i < s->n_stages; i++) {
        if (s->stages[i].n == 0) continue; /* an empty block is no block */
        em_fmt(e, "%ss.", qb_axis_name(s->stages[i].axis));
        em_stage(e, s, s->stages[i].axis, s->stages[i].value);
        em_put(e, "\n", 1);
    }
}

size_t qb_spec_settings_text(const qb_spec *s, char *buf, size_t n)
{
    emitter e;
    em_init(&e, QB_HASH_INIT, buf, n);
    em_settings(&e, s);
    return em_done(&e);
}

/* ---- expansion ---------------------------------------------------------------- */

/* Open addressing over uint32 indices; the caller compares keys. */
typedef struct idxtab {
    uint32_t *slot; /* UINT32_MAX: empty */
    size_t mask;
} idxtab;

static void idxtab_init(idxtab *t, size_t expected)
{
    size_t cap = 16;
    while (cap < 2 * expected) cap *= 2;
    t->slot = xmalloc(cap, sizeof *t->slot);
    memset(t->slot, 0xff, cap * sizeof *t->slot);
    t->mask = cap - 1;
}

static uint64_t mix3(uint64_t a, uint64_t b, uint64_t c)
{
    return qb_hash_finish(a * 0x9e3779b97f4a7c15ull ^ qb_hash_finish(b ^ (c << 32)));
}

typedef struct inc_tuples {
    uint32_t n[QB_AXIS_COUNT];
    uint32_t *idx[QB_AXIS_COUNT];
} inc_tuples;

static int cmp_span(const void *a, const void *b)
{
    const qb_seed_span *x = a, *y = b;
    return (x->lo > y->lo) - (x->lo < y->lo);
}

static uint32_t find_name(const qb_spec_axis *ax, const char *name)
{
    for (uint32_t i = 0; i < ax->n; i++)
        if (!strcmp(ax->names[i], name)) return i;
    return UINT32_MAX;
}

/* seed -> table index, for include seeds */
static uint32_t seed_find(const qb_spec_axis *ax, const idxtab *t, uint64_t v, size_t *slot)
{
    size_t i = (size_t)qb_hash_finish(v) & t->mask;
    while (t->slot[i] != UINT32_MAX && ax->seeds[t->slot[i]] != v) i = (i + 1) & t->mask;
    *slot = i;
    return t->slot[i];
}

static int excluded(uint8_t *const *mask, size_t nf, const uint32_t *i)
{
    for (size_t f = 0; f < nf; f++) {
        uint8_t *const *m = mask + f * QB_AXIS_COUNT;
        int all = 1;
        for (int a = 0; a < QB_AXIS_COUNT && all; a++)
            if (m[a] && !m[a][i[a]]) all = 0;
        if (all) return 1;
    }
    return 0;
}

static void set_tuple(qb_task *t, const uint32_t *i)
{
    memset(t, 0, sizeof *t);
    t->dataset = (uint16_t)i[QB_AXIS_DATASET];
    t->seed = i[QB_AXIS_SEED];
    t->trigger = (uint16_t)i[QB_AXIS_TRIGGER];
    t->precision = (uint16_t)i[QB_AXIS_PRECISION];
    t->mitigation = (uint16_t)i[QB_AXIS_MITIGATION];
    t->defense = (uint16_t)i[QB_AXIS_DEFENSE];
}

static int same_tuple(const qb_task *t, const uint32_t *i)
{
    for (int a = 0; a < QB_AXIS_COUNT; a++)
        if (qb_task_index(t, a) != i[a]) return 0;
    return 1;
}

typedef struct id_pos {
    uint64_t id;
    uint32_t pos;
} id_pos;

static int cmp_id_pos(const void *a, const void *b)
{
    const id_pos *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

/* Where the product's size comes from, for messages: the largest given axis. */
static qb_spec_mark largest_axis(const qb_spec *s, int *axis)
{
    int best = QB_AXIS_DATASET;
    for (int a = 0; a < QB_AXIS_COUNT; a++)
        if (s->axes[a].n_listed > s->axes[best].n_listed) best = a;
    *axis = best;
    qb_spec_mark m = s->axes[best].mark;
    if (!m.file) {
        m.file = s->path;
        m.line = m.col = 1;
    }
    return m;
}

int qb_spec_expand(qb_spec *s, qb_error *err)
{
    int rc = -1;
    const size_t ni = s->n_include, nx = s->n_exclude;
    inc_tuples *inc = xcalloc(ni ? ni : 1, sizeof *inc);
    uint8_t **xmask = xcalloc(nx ? nx * QB_AXIS_COUNT : 1, sizeof *xmask);
    idxtab seedtab = {NULL, 0}, inctab = {NULL, 0}, modtab = {NULL, 0};
    uint64_t *mstate = NULL, *pstate = NULL;
    char **tline[QB_AXIS_COUNT] = {NULL};
    size_t *tlen[QB_AXIS_COUNT] = {NULL};
    id_pos *ids = NULL;
    qb_spec_axis *sx = &s->axes[QB_AXIS_SEED];
    uint64_t n_product = 1, n_inc_total = 0, n_inc_seeds = 0;

    /* 1. include sizes first (so a huge entry is refused before anything
     *    is expanded), then its values into the tables */
    for (size_t e = 0; e < ni; e++) {
        const qb_spec_filter *f = &s->include[e];
        uint64_t count = 1;
        for (int a = 0; a < QB_AXIS_COUNT; a++) {
            uint64_t k = f->n[a];
            if (a == QB_AXIS_SEED) {
                k = 0;
                for (uint32_t j = 0; j < f->n[a]; j++) k += f->spans[j].hi - f->spans[j].lo;
                n_inc_seeds += k;
            }
            count = k && count > QB_SPEC_MAX_TASKS / k ? (uint64_t)QB_SPEC_MAX_TASKS + 1 : count * k;
        }
        n_inc_total += count;
        if (count > QB_SPEC_MAX_TASKS || n_inc_total > QB_SPEC_MAX_TASKS) {
            QB_FAIL(err, "include entry %zu at %s:%d:%d brings the include entries to more than %u "
                         "tasks; at most %u are allowed",
                    e + 1, f->mark.file, f->mark.line, f->mark.col, QB_SPEC_MAX_TASKS,
                    QB_SPEC_MAX_TASKS);
            goto out;
        }
    }
    if (ni) {
        /* room for every include seed: the table never moves below */
        sx->seeds = xrealloc(sx->seeds, (size_t)sx->n + (size_t)n_inc_seeds, sizeof *sx->seeds);
        idxtab_init(&seedtab, (size_t)sx->n + (size_t)n_inc_seeds);
        for (uint32_t i = 0; i < sx->n; i++) {
            size_t slot;
            if (seed_find(sx, &seedtab, sx->seeds[i], &slot) == UINT32_MAX) seedtab.slot[slot] = i;
        }
    }
    for (size_t e = 0; e < ni; e++) {
        const qb_spec_filter *f = &s->include[e];
        for (int a = 0; a < QB_AXIS_COUNT; a++) {
            qb_spec_axis *ax = &s->axes[a];
            if (a == QB_AXIS_SEED) {
                uint64_t k = 0;
                for (uint32_t j = 0; j < f->n[a]; j++) k += f->spans[j].hi - f->spans[j].lo;
                inc[e].idx[a] = xmalloc((size_t)k, sizeof(uint32_t));
                for (uint32_t j = 0; j < f->n[a]; j++)
                    for (uint64_t v = f->spans[j].lo; v < f->spans[j].hi; v++) {
                        size_t slot;
                        uint32_t idx = seed_find(ax, &seedtab, v, &slot);
                        if (idx == UINT32_MAX) {
                            ax->seeds[ax->n] = v;
                            idx = seedtab.slot[slot] = ax->n++;
                        }
                        inc[e].idx[a][inc[e].n[a]++] = idx;
                    }
            } else {
                inc[e].idx[a] = xmalloc(f->n[a], sizeof(uint32_t));
                for (uint32_t j = 0; j < f->n[a]; j++) {
                    uint32_t idx = find_name(ax, f->names[a][j]);
                    if (idx == UINT32_MAX) {
                        if (ax->n >= UINT16_MAX) {
                            QB_FAIL(err, "include entry %zu at %s:%d:%d: more than %u %s values",
                                    e + 1, f->mark.file, f->mark.line, f->mark.col, UINT16_MAX,
                                    qb_axis_name((qb_axis)a));
                            goto out;
                        }
                        ax->names = xrealloc(ax->names, (size_t)ax->n + 1, sizeof *ax->names);
                        memcpy(ax->names[ax->n], f->names[a][j], QB_AXIS_VALUE_MAX);
                        idx = ax->n++;
                    }
                    inc[e].idx[a][inc[e].n[a]++] = idx;
                }
            }
        }
    }

    /* 2. the product's size */
    for (int a = 0; a < QB_AXIS_COUNT; a++) {
        uint64_t k = s->axes[a].n_listed;
        if (a != QB_AXIS_SEED && k > UINT16_MAX) {
            QB_FAIL(err, "%s at %s:%d:%d has %llu values; at most %u are allowed",
                    qb_axis_name((qb_axis)a), s->axes[a].mark.file, s->axes[a].mark.line,
                    s->axes[a].mark.col, (unsigned long long)k, UINT16_MAX);
            goto out;
        }
        n_product = n_product > UINT64_MAX / 2 / k ? UINT64_MAX / 2 : n_product * k; /* saturates */
    }
    if (n_product + n_inc_total > QB_SPEC_MAX_TASKS) {
        int big;
        qb_spec_mark m = largest_axis(s, &big);
        char total[48];
        if (n_product == UINT64_MAX / 2)
            snprintf(total, sizeof total, "more than %llu", (unsigned long long)(UINT64_MAX / 2));
        else
            snprintf(total, sizeof total, "%llu", (unsigned long long)(n_product + n_inc_total));
        QB_FAIL(err, "the spec expands to %s tasks; at most %u are allowed (the largest axis is %s "
                     "at %s:%d:%d with %u values)",
                total, QB_SPEC_MAX_TASKS, qb_axis_name((qb_axis)big), m.file, m.line, m.col,
                s->axes[big].n_listed);
        goto out;
    }

    /* 3. exclude masks over the value tables (NULL: any value) */
    for (size_t e = 0; e < nx; e++) {
        const qb_spec_filter *f = &s->exclude[e];
        for (int a = 0; a < QB_AXIS_COUNT; a++) {
            if (f->n[a] == 0) continue;
            const qb_spec_axis *ax = &s->axes[a];
            uint8_t *m = xcalloc(ax->n ? ax->n : 1, 1);
            xmask[e * QB_AXIS_COUNT + (size_t)a] = m;
            if (a != QB_AXIS_SEED) {
                for (uint32_t j = 0; j < f->n[a]; j++) {
                    uint32_t idx = find_name(ax, f->names[a][j]);
                    if (idx != UINT32_MAX) m[idx] = 1;
                }
                continue;
            }
            /* merged, sorted intervals; one binary search per table seed */
            qb_seed_span *sp = xmalloc(f->n[a], sizeof *sp);
            memcpy(sp, f->spans, f->n[a] * sizeof *sp);
            qsort(sp, f->n[a], sizeof *sp, cmp_span);
            uint32_t k = 0;
            for (uint32_t j = 0; j < f->n[a]; j++) {
                if (k && sp[j].lo <= sp[k - 1].hi) {
                    if (sp[j].hi > sp[k - 1].hi) sp[k - 1].hi = sp[j].hi;
                } else {
                    sp[k++] = sp[j];
                }
            }
            for (uint32_t i = 0; i < ax->n; i++) {
                uint64_t v = ax->seeds[i];
                uint32_t lo = 0, hi = k;
                while (lo < hi) {
                    uint32_t mid = lo + (hi - lo) / 2;
                    if (sp[mid].hi <= v)
                        lo = mid + 1;
                    else
                        hi = mid;
                }
                m[i] = lo < k && sp[lo].lo <= v;
            }
            free(sp);
        }
    }

    /* 4. the product minus exclude, dataset outermost: a model's tasks
     *    (same dataset, seed, trigger) are neighbours */
    size_t cap = (size_t)(n_product + n_inc_total), n = 0;
    s->tasks = xmalloc(cap ? cap : 1, sizeof *s->tasks);
    uint32_t nl[QB_AXIS_COUNT], i[QB_AXIS_COUNT];
    for (int a = 0; a < QB_AXIS_COUNT; a++) nl[a] = s->axes[a].n_listed;
    for (i[0] = 0; i[0] < nl[0]; i[0]++)
        for (i[1] = 0; i[1] < nl[1]; i[1]++)
            for (i[2] = 0; i[2] < nl[2]; i[2]++)
                for (i[3] = 0; i[3] < nl[3]; i[3]++)
                    for (i[4] = 0; i[4] < nl[4]; i[4]++)
                        for (i[5] = 0; i[5] < nl[5]; i[5]++) {
                            if (nx && excluded(xmask, nx, i)) continue;
                            set_tuple(&s->tasks[n++], i);
                        }

    /* 5. include: tuples not already tasks */
    if (ni) idxtab_init(&inctab, (size_t)n_inc_total);
    for (size_t e = 0; e < ni; e++) {
        uint32_t k[QB_AXIS_COUNT] = {0};
        for (;;) {
            int listed = 1;
            for (int a = 0; a < QB_AXIS_COUNT; a++) {
                i[a] = inc[e].idx[a][k[a]];
                listed &= i[a] < nl[a];
            }
            if (!(listed && !(nx && excluded(xmask, nx, i)))) {
                uint64_t h = mix3((uint64_t)i[0] << 32 | i[2], (uint64_t)i[3] << 32 | i[4],
                                  (uint64_t)i[5] << 32 | i[1]);
                size_t sl = (size_t)h & inctab.mask;
                while (inctab.slot[sl] != UINT32_MAX && !same_tuple(&s->tasks[inctab.slot[sl]], i))
                    sl = (sl + 1) & inctab.mask;
                if (inctab.slot[sl] == UINT32_MAX) {
                    inctab.slot[sl] = (uint32_t)n;
                    set_tuple(&s->tasks[n++], i);
                }
            }
            int a = QB_AXIS_COUNT - 1;
            while (a >= 0 && ++k[a] == inc[e].n[a]) k[a--] = 0;
            if (a < 0) break;
        }
    }
    s->n_tasks = n;
    if (n == 0) {
        QB_ASSERT(nx > 0); /* every axis has a value: only exclude empties the product */
        const qb_spec_mark m = s->exclude[0].mark;
        QB_FAIL(err, "the spec has no tasks: the exclude entries (the first at %s:%d:%d) remove "
                     "every task of the product (%llu)",
                m.file, m.line, m.col, (unsigned long long)n_product);
        goto out;
    }
    s->tasks = xrealloc(s->tasks, n, sizeof *s->tasks);

    /* 6. models: distinct (dataset, seed, trigger), in order of first use */
    {
        uint64_t bound = (uint64_t)s->axes[QB_AXIS_DATASET].n * sx->n * s->axes[QB_AXIS_TRIGGER].n;
        idxtab_init(&modtab, bound < n ? (size_t)bound : n);
        size_t mcap = 1024;
        s->models = xmalloc(mcap, sizeof *s->models);
        uint32_t last = UINT32_MAX;
        for (size_t t = 0; t < n; t++) {
            qb_task *tk = &s->tasks[t];
            const qb_spec_model *lm = last != UINT32_MAX ? &s->models[last] : NULL;
            if (!lm || lm->dataset != tk->dataset || lm->seed != tk->seed || lm->trigger != tk->trigger) {
                uint64_t h = mix3(tk->dataset, tk->seed, tk->trigger);
                size_t sl = (size_t)h & modtab.mask;
                for (;;) {
                    uint32_t mi = modtab.slot[sl];
                    if (mi == UINT32_MAX) break;
                    const qb_spec_model *mm = &s->models[mi];
                    if (mm->dataset == tk->dataset && mm->seed == tk->seed && mm->trigger == tk->trigger)
                        break;
                    sl = (sl + 1) & modtab.mask;
                }
                if (modtab.slot[sl] == UINT32_MAX) {
                    if (s->n_models == mcap) {
                        mcap *= 2;
                        s->models = xrealloc(s->models, mcap, sizeof *s->models);
                    }
                    qb_spec_model *nm = &s->models[s->n_models];
                    memset(nm, 0, sizeof *nm);
                    nm->dataset = tk->dataset;
                    nm->seed = tk->seed;
                    nm->trigger = tk->trigger;
                    nm->first_task = (uint32_t)t;
                    modtab.slot[sl] = (uint32_t)s->n_models++;
                }
                last = modtab.slot[sl];
            }
            tk->model = last;
            s->models[last].n_tasks++;
        }
        s->models = xrealloc(s->models, s->n_models, sizeof *s->models);
    }

    /* 7. model ids: the hash state after each (dataset, trigger) prefix,
     *    then the seed line per model */
    {
        size_t nd = s->axes[QB_AXIS_DATASET].n, nt = s->axes[QB_AXIS_TRIGGER].n;
        pstate = xmalloc(nd * nt, sizeof *pstate);
        uint8_t *have = xcalloc(nd * nt, 1);
        for (size_t m = 0; m < s->n_models; m++) {
            qb_spec_model *mm = &s->models[m];
            size_t k = (size_t)mm->dataset * nt + mm->trigger;
            if (!have[k]) {
                emitter e;
                em_init(&e, QB_HASH_INIT, NULL, 0);
                em_model_prefix(&e, s, mm->dataset, mm->trigger);
                pstate[k] = e.h;
                have[k] = 1;
            }
            emitter e;
            em_init(&e, pstate[k], NULL, 0);
            em_model_seed(&e, sx->seeds[mm->seed]);
            mm->id = qb_hash_finish(e.h);
        }
        free(have);
    }

    /* 8. task ids: state after the model line, then three short lines */
    mstate = xmalloc(s->n_models, sizeof *mstate);
    for (size_t m = 0; m < s->n_models; m++) {
        emitter e;
        em_init(&e, QB_HASH_INIT, NULL, 0);
        em_task_prefix(&e, s->models[m].id);
        mstate[m] = e.h;
    }
    static const qb_axis line_axes[3] = {QB_AXIS_PRECISION, QB_AXIS_MITIGATION, QB_AXIS_DEFENSE};
    for (int j = 0; j < 3; j++) {
        qb_axis a = line_axes[j];
        tline[a] = xcalloc(s->axes[a].n, sizeof(char *));
        tlen[a] = xcalloc(s->axes[a].n, sizeof(size_t));
        for (uint32_t v = 0; v < s->axes[a].n; v++) tline[a][v] = task_line(s, a, v, &tlen[a][v]);
    }
    ids = xmalloc(n, sizeof *ids);
    for (size_t t = 0; t < n; t++) {
        qb_task *tk = &s->tasks[t];
        uint64_t h = mstate[tk->model];
        h = qb_hash_bytes(h, tline[QB_AXIS_PRECISION][tk->precision], tlen[QB_AXIS_PRECISION][tk->precision]);
        h = qb_hash_bytes(h, tline[QB_AXIS_MITIGATION][tk->mitigation], tlen[QB_AXIS_MITIGATION][tk->mitigation]);
        h = qb_hash_bytes(h, tline[QB_AXIS_DEFENSE][tk->defense], tlen[QB_AXIS_DEFENSE][tk->defense]);
        tk->id = qb_hash_finish(h);
        ids[t].id = tk->id;
        ids[t].pos = (uint32_t)t;
    }

    /* 9. the sorted-id index; equal ids of distinct tuples would break resume */
    qsort(ids, n, sizeof *ids, cmp_id_pos);
    for (size_t t = 1; t < n; t++)
        if (ids[t].id == ids[t - 1].id) {
            char a[256], b[256];
            qb_spec_task_tuple(s, ids[t - 1].pos, a, sizeof a);
            qb_spec_task_tuple(s, ids[t].pos, b, sizeof b);
            QB_FAIL(err, "%s: tasks (%s) and (%s) have the same id %016llx; please report this", s->path,
                    a, b, (unsigned long long)ids[t].id);
            goto out;
        }
    s->sorted_ids = xmalloc(n, sizeof *s->sorted_ids);
    s->sorted_pos = xmalloc(n, sizeof *s->sorted_pos);
    for (size_t t = 0; t < n; t++) {
        s->sorted_ids[t] = ids[t].id;
        s->sorted_pos[t] = ids[t].pos;
    }

    /* 10. the spec hash */
    {
        emitter e;
        em_init(&e, QB_HASH_INIT, NULL, 0);
        em_str(&e, "qblind-spec-v1\n");
        em_settings(&e, s);
        em_fmt(&e, "tasks=%zu\n", n);
        uint64_t h = e.h;
        for (size_t t = 0; t < n; t++) {
            unsigned char le[8];
            for (int b = 0; b < 8; b++) le[b] = (unsigned char)(s->sorted_ids[t] >> (8 * b));
            h = qb_hash_bytes(h, le, 8);
        }
        s->hash = qb_hash_finish(h);
    }
    rc = 0;

out:
    for (size_t e = 0; e < ni; e++)
        for (int a = 0; a < QB_AXIS_COUNT; a++) free(inc[e].idx[a]);
    free(inc);
    for (size_t k = 0; k < nx * QB_AXIS_COUNT; k++) free(xmask[k]);
    free(xmask);
    free(seedtab.slot);
    free(inctab.slot);
    free(modtab.slot);
    free(mstate);
    free(pstate);
    for (int a = 0; a < QB_AXIS_COUNT; a++) {
        if (tline[a])
            for (uint32_t v = 0; v < s->axes[a].n; v++) free(tline[a][v]);
        free(tline[a]);
        free(tlen[a]);
    }
    free(ids);
    return rc;
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
    QB_ASSERT(model < s->n_models);
    const qb_spec_model *m = &s->models[model];
    const char *dataset = s->axes[QB_AXIS_DATASET].names[m->dataset];
    const char *trigger = s->axes[QB_AXIS_TRIGGER].names[m->trigger];
    const qb_spec_settings *set = &s->set;
    qb_model_job_default(job);
    snprintf(job->arch, sizeof job->arch, "%s", resolved_arch(s, dataset));
    job->train = set->train;
    job->train.seed = 0;
    job->train.progress = 0;
    qb_qa_mode qa = qb_qa_mode_from_name(trigger);
    /* the quantization-activated attacks plant the square trigger */
    if (qb_trigger_parse(qa != QB_QA_NONE ? "square" : trigger, &job->trigger, err))
        return qb_error_prefix(err, "model %zu: ", model);
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
    qb_qa_config_default(&job->qa, qa);
    if (qa != QB_QA_NONE) {
        job->qa.n_targets = set->n_qa_targets;
        for (int i = 0; i < set->n_qa_targets; i++)
            if (qb_precision_parse(set->qa_targets[i], &job->qa.targets[i], err)) return -1;
        if (set->qa_epochs >= 0) job->qa.epochs = set->qa_epochs;
        job->qa.lr = set->qa_lr;
        job->qa.eps = set->qa_eps;
        job->qa.lambda = set->qa_lambda;
    }
    job->seed = s->axes[QB_AXIS_SEED].seeds[m->seed];
    return 0;
}

int qb_spec_task_precision(const qb_spec *s, size_t task, qb_precision *p, qb_error *err)
{
    QB_ASSERT(task < s->n_tasks);
    return qb_precision_parse(s->axes[QB_AXIS_PRECISION].names[s->tasks[task].precision], p, err);
}

size_t qb_spec_memory(const qb_spec *s)
{
    size_t b = s->n_tasks * (sizeof(qb_task) + sizeof(uint64_t) + sizeof(uint32_t)) +
               s->n_models * sizeof(qb_spec_model);
    for (int a = 0; a < QB_AXIS_COUNT; a++)
        b += (size_t)s->axes[a].n * (a == QB_AXIS_SEED ? sizeof(uint64_t) : QB_AXIS_VALUE_MAX);
    return b;
}
