#include "mpi/scheduler.h"

#include <stdlib.h>
#include <string.h>

#include "core/error.h"
#include "core/xalloc.h"

enum { MODEL_FREE = 0, MODEL_HELD = 1, MODEL_STORED = 2 };

typedef struct sched_model {
    uint64_t id;
    size_t first, count; /* its pending tasks: queue[first .. first + count) */
    size_t next;         /* next position in its queue */
    int state;
    int holder;          /* worker that holds it (HELD) */
} sched_model;

struct qb_sched {
    size_t n_models;
    sched_model *models;   /* in order of first appearance */
    uint32_t *queue;       /* pending task indices grouped by model */
    uint32_t *task_model;  /* (n) model index of every task */
    int n_workers;
    int *holding;          /* (n_workers) model index held, -1 none */
    size_t pending, in_flight;
    size_t scan;           /* first model that may still have pending tasks */
    int draining;
};

/* Open-addressing map model id -> model index, only while building. */
static size_t find_slot(const uint64_t *keys, const uint8_t *used, size_t cap, uint64_t id)
{
    size_t h = (size_t)((id * 0x9E3779B97F4A7C15ull) >> 17) & (cap - 1);
    while (used[h] && keys[h] != id) h = (h + 1) & (cap - 1);
    return h;
}

qb_sched *qb_sched_new(size_t n, const uint64_t *model_ids, const uint8_t *pending,
                       const uint8_t *stored, int n_workers)
{
    QB_ASSERT(n <= UINT32_MAX && n_workers >= 1);
    qb_sched *s = xcalloc(1, sizeof *s);
    s->n_workers = n_workers;
    s->holding = xmalloc((size_t)n_workers, sizeof(int));
    for (int w = 0; w < n_workers; w++) s->holding[w] = -1;
    s->task_model = xmalloc(n ? n : 1, sizeof(uint32_t));

    size_t cap = 16;
    while (cap < 2 * n) cap *= 2;
    uint64_t *keys = xmalloc(cap, sizeof(uint64_t));
    uint32_t *vals = xmalloc(cap, sizeof(uint32_t));
    uint8_t *used = xcalloc(cap, 1);
    s->models = xmalloc(n ? n : 1, sizeof(sched_model));
    for (size_t i = 0; i < n; i++) {
        size_t h = find_slot(keys, used, cap, model_ids[i]);
        if (!used[h]) {
            used[h] = 1;
            keys[h] = model_ids[i];
            vals[h] = (uint32_t)s->n_models;
            sched_model *m = &s->models[s->n_models++];
            memset(m, 0, sizeof *m);
            m->id = model_ids[i];
            m->holder = -1;
            m->state = stored && stored[i] ? MODEL_STORED : MODEL_FREE;
        }
        s->task_model[i] = vals[h];
        if (pending[i]) s->models[vals[h]].count++;
    }
    free(keys);
    free(vals);
    free(used);
    /* queue: pending tasks grouped by model, in task order within a model */
    size_t pos = 0;
    for (size_t m = 0; m < s->n_models; m++) {
        s->models[m].first = s->models[m].next = pos;
        pos += s->models[m].count;
        s->models[m].count = 0;
    }
    s->queue = xmalloc(pos ? pos : 1, sizeof(uint32_t));
    for (size_t i = 0; i < n; i++)
        if (pending[i]) {
            sched_model *m = &s->models[s->task_model[i]];
            s->queue[m->first + m->count++] = (uint32_t)i;
        }
    s->pending = pos;
    return s;
}

void qb_sched_free(qb_sched *s)
{
    if (!s) return;
    free(s->models);
    free(s->queue);
    free(s->task_model);
    free(s->holding);
    free(s);
}

static int has_work(const sched_model *m) { return m->next < m->first + m->count; }

static long take(qb_sched *s, size_t mi)
{
    sched_model *m = &s->models[mi];
    s->pending--;
    s->in_flight++;
    return (long)s->queue[m->next++];
}

long qb_sched_next(qb_sched *s, int worker)
{
    QB_ASSERT(worker >= 0 && worker < s->n_workers);
    /* this worker is done once nothing is left to hand out (in-flight
     * tasks belong to other workers) or the run is draining */
    if (s->draining || s->pending == 0) return QB_SCHED_DONE;
    /* 1. the model this worker holds */
    int h = s->holding[worker];
    if (h >= 0 && has_work(&s->models[h])) return take(s, (size_t)h);
    /* 2. a model nobody holds (stored ones count: loading beats waiting) */
    while (s->scan < s->n_models && !has_work(&s->models[s->scan])) s->scan++;
    long best_shared = -1;
    size_t best_left = 0;
    for (size_t mi = s->scan; mi < s->n_models; mi++) {
        sched_model *m = &s->models[mi];
        if (!has_work(m)) continue;
        if (m->holder < 0) {
            m->holder = worker;
            if (m->state == MODEL_FREE) m->state = MODEL_HELD;
            s->holding[worker] = (int)mi;
            return take(s, mi);
        }
        /* 3. otherwise help with the stored model that has most left */
        size_t left = m->first + m->count - m->next;
        if (m->state == MODEL_STORED && left > best_left) {
            best_left = left;
            best_shared = (long)mi;
        }
    }
    if (best_shared >= 0) {
        s->holding[worker] = (int)best_shared;
        return take(s, (size_t)best_shared);
    }
    return QB_SCHED_WAIT;
}

void qb_sched_finished(qb_sched *s, int worker, long task, int model_stored)
{
    QB_ASSERT(task >= 0 && s->in_flight > 0);
    (void)worker;
    s->in_flight--;
    sched_model *m = &s->models[s->task_model[task]];
    if (model_stored) m->state = MODEL_STORED;
}

void qb_sched_drain(qb_sched *s) { s->draining = 1; }

size_t qb_sched_pending(const qb_sched *s) { return s->pending; }
size_t qb_sched_in_flight(const qb_sched *s) { return s->in_flight; }
size_t qb_sched_models(const qb_sched *s)
{
    size_t k = 0;
    for (size_t m = 0; m < s->n_models; m++) k += s->models[m].count > 0;
    return k;
}
