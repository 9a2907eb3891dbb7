/* The coordinator (rank 0): hands out tasks as workers ask, records every
 * result in the results file and flushes before the task counts as done.
 * With one rank it runs the tasks itself. Messages, clock and results go
 * through mpi/transport.h, so tests/test_coordinator.c drives it without
 * MPI. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/sort.h"
#include "core/xalloc.h"
#include "mpi/scheduler.h"
#include "mpi/runner.h"
#include "mpi/transport.h"

static int record(qb_run_ctx *c, size_t task, const qb_task_outcome *out, int rank,
                  const char *host, qb_error *err)
{
    const qb_run_sink *sink = c->sink;
    qb_task_row row;
    qb_runner_fill_row(c->spec, task, out, rank, host, &row);
    c->trainings += out->trained;
    /* details first, then the row: a row on disk has its details */
    for (size_t k = 0; k < out->details.n; k++) {
        const qb_detail *d = &out->details.items[k];
        if (sink->write_detail(sink->ctx, task, d->name, d->v, d->n, err)) return -1;
    }
    return sink->record(sink->ctx, task, &row, err);
}

/* Group commit: rows are written as results arrive; the file is flushed
 * (fsync) at most every QB_FLUSH_INTERVAL seconds, and a task counts as
 * done (progress, summary) only after the flush that made its row durable. */
#define QB_FLUSH_INTERVAL 0.02

typedef struct commit_buf {
    int8_t *status; /* statuses of rows written but not yet flushed */
    size_t n, cap;
    double last_flush;
} commit_buf;

static double now(const qb_run_ctx *c)
{
    return c->transport->now(c->transport->ctx);
}

static void commit_init(const qb_run_ctx *c, commit_buf *cb)
{
    cb->cap = 1024;
    cb->n = 0;
    cb->status = xmalloc(cb->cap, 1);
    cb->last_flush = now(c);
}

static void commit_add(commit_buf *cb, int status)
{
    if (cb->n == cb->cap) cb->status = xrealloc(cb->status, cb->cap *= 2, 1);
    cb->status[cb->n++] = (int8_t)status;
}

/* Flush if rows wait and the interval has passed (or `now_anyway`). */
static int commit_maybe_flush(qb_run_ctx *c, commit_buf *cb, int now_anyway, qb_error *err)
{
    double t = now(c);
    if (!cb->n || (!now_anyway && t - cb->last_flush < QB_FLUSH_INTERVAL)) return 0;
    if (c->sink->flush(c->sink->ctx, err)) return -1;
    for (size_t k = 0; k < cb->n; k++) qb_progress_task(c->progress, cb->status[k]);
    cb->n = 0;
    cb->last_flush = t;
    return 0;
}

static qb_sched *make_sched(qb_run_ctx *c, int n_workers)
{
    const qb_spec *s = c->spec;
    size_t n = s->n_tasks;
    uint64_t *ids = xmalloc(n ? n : 1, sizeof(uint64_t));
    uint8_t *pending = xmalloc(n ? n : 1, 1);
    uint8_t *stored = xcalloc(n ? n : 1, 1);
    /* models already in the store (a resumed run) may be shared at once:
     * one directory listing, then a binary search per model */
    uint8_t *model_stored = xcalloc(s->n_models ? s->n_models : 1, 1);
    uint64_t *have = NULL;
    size_t n_have = 0;
    qb_error lerr;
    if (c->store && qb_model_store_list(c->store, &have, &n_have, &lerr) == 0) {
        for (size_t m = 0; m < s->n_models; m++)
            model_stored[m] =
                bsearch(&s->models[m].id, have, n_have, sizeof *have, qb_cmp_u64) != NULL;
        free(have);
    }
    for (size_t i = 0; i < n; i++) {
        ids[i] = s->models[s->tasks[i].model].id;
        pending[i] = c->status[i] == QB_STATUS_PENDING;
        stored[i] = model_stored[s->tasks[i].model];
    }
    qb_sched *sc = qb_sched_new(n, ids, pending, stored, n_workers);
    free(ids);
    free(pending);
    free(stored);
    free(model_stored);
    return sc;
}

/* One rank: run every pending task here. */
static int run_alone(qb_run_ctx *c, qb_sched *sc, qb_error *err)
{
    qb_worker w;
    qb_worker_init(&w, c->store);
    char host[64] = "";
    gethostname(host, sizeof host - 1);
    int rc = 0;
    commit_buf cb;
    commit_init(c, &cb);
    for (;;) {
        if (qb_drain_requested) qb_sched_drain(sc);
        long t = qb_sched_next(sc, 0);
        if (t < 0) break; /* alone, WAIT cannot happen: DONE */
        qb_task_outcome out;
        qb_runner_task_execute(&w, c->spec, (size_t)t, c->empty_tasks, &out);
        rc = record(c, (size_t)t, &out, 0, host, err);
        qb_task_outcome_free(&out);
        if (rc) break;
        commit_add(&cb, out.status);
        qb_sched_finished(sc, 0, t, out.status != QB_STATUS_FAILED || out.trained);
        if ((rc = commit_maybe_flush(c, &cb, 0, err))) break;
    }
    if (rc == 0) rc = commit_maybe_flush(c, &cb, 1, err);
    free(cb.status);
    qb_worker_free(&w);
    return rc;
}

/* The coordinator's state with worker ranks 1..n_workers (worker w is
 * rank w + 1). */
typedef struct coord {
    qb_run_ctx *c;
    qb_sched *sc;
    int n_workers;
    int *waiting; /* (n_workers) asked, no reply yet */
    int *stopped; /* (n_workers) told to stop (or given up) */
    int n_stopped, draining;
    commit_buf cb;
    int rc;       /* the first I/O error: record nothing more */
    double *heard; /* (n_workers) when its last message came, or its task went */
    int *busy;     /* (n_workers) owes a message: its first request, or a result */
    int lost;
} coord;

/* A RESULT from `rank`: record it (unless an I/O error came before). */
static void take_result(coord *k, int rank, qb_error *err)
{
    const qb_transport *t = k->c->transport;
    qb_result_msg msg;
    if (t->recv_result(t->ctx, rank, &msg) && k->rc == 0) {
        msg.out.status = QB_STATUS_FAILED;
        msg.out.detected = QB_DETECTED_ERROR;
        snprintf(msg.out.message, sizeof msg.out.message, "details from rank %d were malformed",
                 rank);
    }
    if (k->rc == 0) k->rc = record(k->c, (size_t)msg.task, &msg.out, rank, msg.host, err);
    qb_task_outcome_free(&msg.out);
    qb_sched_finished(k->sc, rank - 1, (long)msg.task,
                      msg.out.status != QB_STATUS_FAILED || msg.out.trained);
    commit_add(&k->cb, msg.out.status);
}

/* Take up to 256 waiting messages; each one's sender now waits for a
 * reply. Returns how many. */
static int take_messages(coord *k, qb_error *err)
{
    const qb_transport *t = k->c->transport;
    int got = 0, rank, tag;
    while (got < 256 && t->probe(t->ctx, &rank, &tag)) {
        if (tag == QB_TAG_RESULT)
            take_result(k, rank, err);
        else
            t->recv_request(t->ctx, rank);
        k->waiting[rank - 1] = 1;
        k->busy[rank - 1] = 0;
        if (k->c->worker_timeout > 0) k->heard[rank - 1] = now(k->c);
        got++;
    }
    return got;
}

/* Reply to worker w: a task, STOP, or nothing yet (WAIT, returns 0). */
static int reply(coord *k, int w)
{
    const qb_transport *t = k->c->transport;
    long task = qb_sched_next(k->sc, w);
    if (task == QB_SCHED_WAIT) return 0;
    if (task == QB_SCHED_DONE) {
        k->stopped[w] = 1;
        t->send_stop(t->ctx, w + 1);
    } else {
        t->send_task(t->ctx, w + 1, task);
        k->busy[w] = 1;
        if (k->c->worker_timeout > 0) k->heard[w] = now(k->c);
    }
    return 1;
}

static void start_draining(coord *k, int announce)
{
    k->draining = 1;
    qb_sched_drain(k->sc);
    if (announce && !k->c->progress->quiet)
        fprintf(stderr, "\nqblind: signal received: finishing the %zu running tasks, handing out no more\n",
                qb_sched_in_flight(k->sc));
}

/* Give up the workers that owe a message (their first request, or the
 * result of their task) and have been silent longer than the timeout:
 * their tasks stay pending, the run drains. */
static void give_up_silent(coord *k)
{
    double limit = k->c->worker_timeout, t = now(k->c);
    for (int w = 0; w < k->n_workers; w++) {
        if (!k->busy[w] || k->stopped[w] || t - k->heard[w] <= limit) continue;
        fprintf(stderr, "\nqblind: rank %d has sent nothing for %.0f s (starting or running a task): "
                        "given up (its task stays pending); finishing the others\n",
                w + 1, t - k->heard[w]);
        k->stopped[w] = 1;
        k->n_stopped++;
        k->lost++;
        if (!k->draining) start_draining(k, 0);
    }
}

static int run_workers(qb_run_ctx *c, qb_sched *sc, int n_workers, qb_error *err)
{
    coord k = {c, sc, n_workers, NULL, NULL, 0, 0, {NULL, 0, 0, 0.0}, 0, NULL, NULL, 0};
    k.waiting = xcalloc((size_t)n_workers, sizeof(int));
    k.stopped = xcalloc((size_t)n_workers, sizeof(int));
    k.heard = xcalloc((size_t)n_workers, sizeof(double));
    k.busy = xcalloc((size_t)n_workers, sizeof(int));
    /* every worker owes its first request */
    for (int w = 0; w < n_workers; w++) {
        k.busy[w] = 1;
        if (c->worker_timeout > 0) k.heard[w] = now(c);
    }
    /* workers get their next task at once; rows are group-committed */
    commit_init(c, &k.cb);
    double idle_since = -1.0;
    while (k.n_stopped < n_workers) {
        if (qb_drain_requested && !k.draining) start_draining(&k, 1);
        int got = take_messages(&k, err);
        /* an I/O error: record nothing more, let the workers finish */
        if (k.rc && !k.draining) start_draining(&k, 0);
        for (int w = 0; w < n_workers; w++)
            if (k.waiting[w] && !k.stopped[w] && reply(&k, w)) {
                k.waiting[w] = 0;
                k.n_stopped += k.stopped[w];
            }
        if (c->worker_timeout > 0) give_up_silent(&k);
        if (k.rc == 0) k.rc = commit_maybe_flush(c, &k.cb, k.n_stopped == n_workers, err);
        double t = now(c);
        if (got) {
            idle_since = -1.0;
        } else {
            /* spin for 50 us after the last message (a reply is usually
             * that close), then sleep in short steps */
            if (idle_since < 0) idle_since = t;
            if (t - idle_since > 50e-6) {
                qb_progress_print(c->progress, 0);
                c->transport->idle(c->transport->ctx);
            }
        }
    }
    int rc = k.rc;
    if (rc == 0) rc = commit_maybe_flush(c, &k.cb, 1, err);
    free(k.cb.status);
    free(k.waiting);
    free(k.stopped);
    free(k.heard);
    free(k.busy);
    c->lost = k.lost;
    return rc;
}

int qb_coordinator_run(qb_run_ctx *c, qb_error *err)
{
    int n_workers = c->n_ranks > 1 ? c->n_ranks - 1 : 1;
    qb_sched *sc = make_sched(c, n_workers);
    int rc = c->n_ranks == 1 ? run_alone(c, sc, err) : run_workers(c, sc, n_workers, err);
    /* a lost worker's task was handed out, never finished */
    c->drained = qb_sched_pending(sc) > 0 || c->lost > 0;
    qb_sched_free(sc);
    return rc;
}
