/* Task identity: the hash and the canonical texts (jobs/task.h, jobs/identity.h).
 *
 * The ids hash texts, but the texts are never built for the whole task
 * list: FNV-1a is a stream, so the hash state after a shared prefix (a
 * model's settings, a task's model line) is computed once and each task
 * feeds only its own short lines (jobs/spec_expand.c). The text functions
 * (qb_spec_*_identity) run the same emitters into a buffer, so a text and
 * its id cannot differ (tests/test_spec.c checks id == qb_hash64(text)). */
#include "jobs/identity.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dataset.h"
#include "core/sgd.h"
#include "core/xalloc.h"

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

/* An emitter continuing hash state h and writing text into buf (cap
 * bytes, kept NUL-terminated; buf NULL: hash only). */
static emitter em_start(uint64_t h, char *buf, size_t cap)
{
    emitter e = {h, buf, buf ? cap : 0, 0};
    if (e.cap) buf[0] = '\0';
    return e;
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

/* The optimizer's lines of a train block, the same in the spec hash and
 * in a model's identity. */
static void em_optimizer(emitter *e, const qb_spec_settings *set)
{
    em_fmt(e, "train.batch=%d\n", set->train.batch);
    em_float(e, "train.lr", set->train.lr);
    em_float(e, "train.momentum", set->train.momentum);
    em_float(e, "train.weight_decay", set->train.weight_decay);
    em_fmt(e, "train.schedule=%s\n", qb_lr_schedule_name(set->train.schedule));
}

/* The settings' train block as written (the spec hash). Lines of settings
 * at their defaults (normalize, augment: none) are left out, so that specs
 * written before those settings keep their hashes. */
static void em_train(emitter *e, const qb_spec_settings *set, const char *arch)
{
    em_fmt(e, "arch=%s\n", arch);
    if (set->epochs_dataset)
        em_str(e, "train.epochs=dataset\n");
    else
        em_fmt(e, "train.epochs=%d\n", set->train.epochs);
    em_optimizer(e, set);
    if (set->normalize == QB_SPEC_NORM_DATASET) em_str(e, "train.normalize=dataset\n");
    if (set->normalize == QB_SPEC_NORM_LIST)
        for (int i = 0; i < set->n_norm; i++) {
            char k[48];
            snprintf(k, sizeof k, "train.normalize.mean[%d]", i);
            em_float(e, k, set->norm_mean[i]);
            snprintf(k, sizeof k, "train.normalize.std[%d]", i);
            em_float(e, k, set->norm_std[i]);
        }
    if (set->augment != QB_SPEC_AUG_NONE)
        em_fmt(e, "train.augment=%s\n", qb_spec_augment_name(set->augment));
}

/* A model's train block: its job's resolved values (epochs, the
 * normalisation and augmentation of its dataset), so one model written two
 * ways (epochs 100 or dataset on cifar10) has one id. Normalisation and
 * augmentation lines only when on (ids of earlier specs are unchanged). */
static void em_model_train(emitter *e, const qb_spec_settings *set, const qb_model_job *job)
{
    em_fmt(e, "arch=%s\n", job->arch);
    em_fmt(e, "train.epochs=%d\n", job->train.epochs);
    em_optimizer(e, set);
    if (job->norm.on)
        for (int i = 0; i < QB_NORM_MAX_C; i++) {
            char k[48];
            snprintf(k, sizeof k, "train.normalize.mean[%d]", i);
            em_float(e, k, job->norm.mean[i]);
            snprintf(k, sizeof k, "train.normalize.std[%d]", i);
            em_float(e, k, job->norm.std[i]);
        }
    if (qb_augment_on(&job->train.augment))
        em_fmt(e, "train.augment=pad:%d,flip:%d\n", job->train.augment.pad,
               job->train.augment.flip);
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

const char *qb_spec_arch(const qb_spec *s, const char *dataset)
{
    if (strcmp(s->set.arch, "auto")) return s->set.arch;
    const char *a = qb_dataset_default_arch(dataset);
    QB_ASSERT(a != NULL); /* the dataset axis holds qb_dataset_names only */
    return a;
}

/* A declared architecture's layers (its canonical text), so that a model
 * changes identity when they change; nothing for a preset, whose name says
 * it (ids of specs without `architectures:` are unchanged). */
static void em_arch_layers(emitter *e, const qb_spec *s, const char *arch)
{
    const qb_spec_declared_arch *a = qb_spec_declared(s, arch);
    if (!a) return;
    em_str(e, "arch.layers=");
    em_quoted(e, a->text);
    em_put(e, "\n", 1);
}

/* Everything of a model's identity but its seed. */
static void em_model_prefix(emitter *e, const qb_spec *s, uint32_t d, uint32_t t)
{
    const char *dataset = s->axes[QB_AXIS_DATASET].names[d];
    const char *trigger = s->axes[QB_AXIS_TRIGGER].names[t];
    em_str(e, "qblind-model-v1\n");
    em_fmt(e, "dataset=%s\n", dataset);
    em_fmt(e, "trigger=%s\n", trigger);
    em_model_train(e, &s->set, &s->res.jobs[(size_t)d * s->axes[QB_AXIS_TRIGGER].n + t]);
    const qb_trigger_entry *te = s->res.triggers[t];
    /* a clean model uses no attack setting */
    if (te->kind != QB_TRIGGER_NONE || te->qa != QB_QA_NONE) em_attack(e, &s->set);
    if (te->qa != QB_QA_NONE) em_qa(e, &s->set, te->qa);
    em_arch_layers(e, s, qb_spec_arch(s, dataset));
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
    emitter e = em_start(QB_HASH_INIT, NULL, 0);
    em_task_line(&e, s, axis, idx);
    char *buf = xmalloc(e.len + 1, 1);
    e = em_start(QB_HASH_INIT, buf, e.len + 1);
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
    emitter e = em_start(QB_HASH_INIT, buf, n);
    em_model_prefix(&e, s, m->dataset, m->trigger);
    em_model_seed(&e, s->axes[QB_AXIS_SEED].seeds[m->seed]);
    return em_done(&e);
}

size_t qb_spec_task_identity(const qb_spec *s, size_t task, char *buf, size_t n)
{
    QB_ASSERT(task < s->n_tasks);
    const qb_task *t = &s->tasks[task];
    emitter e = em_start(QB_HASH_INIT, buf, n);
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
    emitter e = em_start(QB_HASH_INIT, buf, n);
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
    for (size_t i = 0; i < s->n_archs; i++) { /* sorted by name; none: no line */
        em_fmt(e, "architectures.%s=", s->archs[i].name);
        em_quoted(e, s->archs[i].text);
        em_put(e, "\n", 1);
    }
    for (size_t i = 0; i < s->n_stages; i++) {
        if (s->stages[i].n == 0) continue; /* an empty block is no block */
        em_fmt(e, "%ss.", qb_axis_name(s->stages[i].axis));
        em_stage(e, s, s->stages[i].axis, s->stages[i].value);
        em_put(e, "\n", 1);
    }
}

size_t qb_spec_settings_text(const qb_spec *s, char *buf, size_t n)
{
    emitter e = em_start(QB_HASH_INIT, buf, n);
    em_settings(&e, s);
    return em_done(&e);
}


/* ---- hash states for the expansion ------------------------------------------- */

uint64_t qb_id_model_prefix(const qb_spec *s, uint32_t dataset, uint32_t trigger)
{
    emitter e = em_start(QB_HASH_INIT, NULL, 0);
    em_model_prefix(&e, s, dataset, trigger);
    return e.h;
}

uint64_t qb_id_model(uint64_t prefix, uint64_t seed)
{
    emitter e = em_start(prefix, NULL, 0);
    em_model_seed(&e, seed);
    return qb_hash_finish(e.h);
}

uint64_t qb_id_task_prefix(uint64_t model_id)
{
    emitter e = em_start(QB_HASH_INIT, NULL, 0);
    em_task_prefix(&e, model_id);
    return e.h;
}

char *qb_id_task_line(const qb_spec *s, qb_axis axis, uint32_t idx, size_t *len)
{
    return task_line(s, axis, idx, len);
}

uint64_t qb_id_spec_prefix(const qb_spec *s, size_t n_tasks)
{
    emitter e = em_start(QB_HASH_INIT, NULL, 0);
    em_str(&e, "qblind-spec-v1\n");
    em_settings(&e, s);
    em_fmt(&e, "tasks=%zu\n", n_tasks);
    return e.h;
}
