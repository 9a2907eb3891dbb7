/* The coordinator (rank 0): hands out tasks as workers ask, records every
 * result in the results file and flushes before the task counts as done.
 * With one rank it runs the tasks itself. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "core/train.h"
#include "core/xalloc.h"
#include "mpi/scheduler.h"
#include "mpi/protocol.h"
#include "mpi/runner.h"

static int record(qb_run_ctx *c, size_t task, const qb_task_outcome *out, int rank,
                  const char *host, qb_error *err)
{
    qb_task_row row;
    qb_runner_fill_row(c->spec, task, out, rank, host, &row);
    c->trainings += out->trained;
    /* details first, then the row: a row on disk has its details */
    for (size_t k = 0; k < out->details.n; k++) {
        const qb_detail *d = &out->details.items[k];
        if (qb_results_write_detail(c->results, task, d->name, d->v, d->n, err)) return -1;
    }
    return qb_results_record(c->results, task, &row, err);
}

/* The packed details that follow a RESULT from `source`. -1 if malformed. */
static int recv_details(int source, qb_task_outcome *out)
{
    uint8_t *buf = xmalloc((size_t)out->details_len, 1);
    MPI_Recv(buf, (int)out->details_len, MPI_BYTE, source, QB_TAG_DETAILS, MPI_COMM_WORLD,
             MPI_STATUS_IGNORE);
    qb_error e;
    int rc = qb_details_unpack(&out->details, buf, (size_t)out->details_len, &e);
    free(buf);
    return rc;
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

static void commit_init(commit_buf *cb)
{
    cb->cap = 1024;
    cb->n = 0;
    cb->status = xmalloc(cb->cap, 1);
    cb->last_flush = qb_now();
}

static void commit_add(commit_buf *cb, int status)
{
    if (cb->n == cb->cap) cb->status = xrealloc(cb->status, cb->cap *= 2, 1);
    cb->status[cb->n++] = (int8_t)status;
}

/* Flush if rows wait and the interval has passed (or `now_anyway`). */
static int commit_maybe_flush(qb_run_ctx *c, commit_buf *cb, int now_anyway, qb_error *err)
{
    double now = qb_now();
    if (!cb->n || (!now_anyway && now - cb->last_flush < QB_FLUSH_INTERVAL)) return 0;
    if (qb_results_flush(c->results, err)) return -1;
    for (size_t k = 0; k < cb->n; k++) qb_progress_task(c->progress, cb->status[k]);
    cb->n = 0;
    cb->last_flush = now;
    return 0;
}

static int cmp_id(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
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
            model_stored[m] = bsearch(&s->models[m].id, have, n_have, sizeof *have, cmp_id) != NULL;
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
    commit_init(&cb);
    for (;;) {
        if (qb_drain_requested) qb_sched_drain(sc);
        long t = qb_sched_next(sc, 0);
        if (t < 0) break; /* alone, WAIT cannot happen: DONE */
        qb_task_params p;
        qb_task_outcome out;
        if (c->empty_tasks) {
            qb_runner_empty_outcome(&out);
        } else if (qb_runner_task_params(c->spec, (size_t)t, &p, err)) {
            qb_runner_empty_outcome(&out);
            out.status = QB_STATUS_FAILED;
            snprintf(out.message, sizeof out.message, "task: %.240s", err->msg);
        } else {
            qb_pipeline_run(&w, &p, &out);
        }
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

/* Reply to worker w (rank w + 1): a task, STOP, or nothing yet (WAIT). */
static int reply(qb_sched *sc, int w, int *stopped)
{
    long t = qb_sched_next(sc, w);
    if (t == QB_SCHED_WAIT) return 0;
    int64_t v = t;
    if (t == QB_SCHED_DONE) {
        v = -1;
        stopped[w] = 1;
    }
    MPI_Send(&v, 1, MPI_INT64_T, w + 1, t == QB_SCHED_DONE ? QB_TAG_STOP : QB_TAG_TASK,
             MPI_COMM_WORLD);
    return 1;
}

int qb_coordinator_run(qb_run_ctx *c, qb_error *err)
{
    int n_workers = c->n_ranks > 1 ? c->n_ranks - 1 : 1;
    qb_sched *sc = make_sched(c, n_workers);
    int rc = 0;
    if (c->n_ranks == 1) {
        rc = run_alone(c, sc, err);
        c->drained = qb_sched_pending(sc) > 0;
        qb_sched_free(sc);
        return rc;
    }
    int *waiting = xcalloc((size_t)n_workers, sizeof(int)); /* asked, no reply yet */
    int *stopped = xcalloc((size_t)n_workers, sizeof(int));
    int n_stopped = 0, draining = 0;
    /* workers get their next task at once; rows are group-committed */
    commit_buf cb;
    commit_init(&cb);
    double idle_since = -1.0;
    qb_result_msg msg;
    while (n_stopped < n_workers) {
        if (qb_drain_requested && !draining) {
            draining = 1;
            qb_sched_drain(sc);
            if (!c->progress->quiet)
                fprintf(stderr, "\nqblind: signal received: finishing the %zu running tasks, handing out no more\n",
                        qb_sched_in_flight(sc));
        }
        int got = 0, flag;
        MPI_Status st;
        while (got < 256 && (MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st),
                             flag)) {
            int w = st.MPI_SOURCE - 1;
            if (st.MPI_TAG == QB_TAG_RESULT) {
                MPI_Recv(&msg, (int)sizeof msg, MPI_BYTE, st.MPI_SOURCE, QB_TAG_RESULT,
                         MPI_COMM_WORLD, MPI_STATUS_IGNORE);
                /* the details' pointers are the worker's: they follow packed */
                qb_details_init(&msg.out.details);
                if (msg.out.details_len && recv_details(st.MPI_SOURCE, &msg.out) && rc == 0) {
                    msg.out.status = QB_STATUS_FAILED;
                    msg.out.detected = QB_DETECTED_ERROR;
                    snprintf(msg.out.message, sizeof msg.out.message,
                             "details from rank %d were malformed", st.MPI_SOURCE);
                }
                if (rc == 0) rc = record(c, (size_t)msg.task, &msg.out, st.MPI_SOURCE, msg.host, err);
                qb_task_outcome_free(&msg.out);
                qb_sched_finished(sc, w, (long)msg.task,
                                  msg.out.status != QB_STATUS_FAILED || msg.out.trained);
                commit_add(&cb, msg.out.status);
            } else {
                int32_t hello;
                MPI_Recv(&hello, 1, MPI_INT32_T, st.MPI_SOURCE, QB_TAG_REQUEST, MPI_COMM_WORLD,
                         MPI_STATUS_IGNORE);
            }
            waiting[w] = 1;
            got++;
        }
        /* an I/O error: record nothing more, let the workers finish */
        if (rc && !draining) {
            draining = 1;
            qb_sched_drain(sc);
        }
        for (int w = 0; w < n_workers; w++)
            if (waiting[w] && !stopped[w] && reply(sc, w, stopped)) {
                waiting[w] = 0;
                n_stopped += stopped[w];
            }
        if (rc == 0) rc = commit_maybe_flush(c, &cb, n_stopped == n_workers, err);
        double now = qb_now();
        if (got) {
            idle_since = -1.0;
        } else {
            /* spin for 50 us after the last message (a reply is usually
             * that close), then sleep in short steps */
            if (idle_since < 0) idle_since = now;
            if (now - idle_since > 50e-6) {
                qb_progress_print(c->progress, 0);
                struct timespec ts = {0, 50000};
                nanosleep(&ts, NULL);
            }
        }
    }
    if (rc == 0) rc = commit_maybe_flush(c, &cb, 1, err);
    free(cb.status);
    c->drained = qb_sched_pending(sc) > 0;
    free(waiting);
    free(stopped);
    qb_sched_free(sc);
    return rc;
}
