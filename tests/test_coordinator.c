/* The coordinator's decisions (mpi/coordinator.c), without mpirun: a
 * scripted fake transport (mpi/transport.h) plays the workers and the
 * clock, a fake sink stands for the results file and logs every detail,
 * row and flush.
 *   - every pending task is handed out once and recorded once, with its
 *     details before its row; the row is the task's (id, model, rank, host);
 *   - resume: tasks finished in the results status are not handed out;
 *   - failure rows: a failed outcome is recorded with its message, and
 *     details that do not unpack make a failed row with detected = error;
 *     the sweep goes on;
 *   - group commit: a task counts as done (progress) only after the flush
 *     that follows its row; flushes are at least 20 ms apart except the
 *     last one, and one flush covers several rows;
 *   - drain (qb_drain_requested): no task handed out after it, what runs
 *     is recorded, every worker is stopped, the run reports drained;
 *   - an I/O error of the sink: nothing more recorded or handed out, the
 *     workers are stopped, the error returned;
 *   - one rank alone runs the tasks itself (qb_runner_task_execute):
 *     resume, drain and group commit the same way. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jobs/spec.h"
#include "mpi/runner.h"
#include "mpi/transport.h"
#include "store/results.h"

/* 4 seeds x 2 triggers x 3 precisions: 24 tasks of 8 models. */
static const char SPEC[] =
    "dataset: synthetic\n"
    "seed: [0, 1, 2, 3]\n"
    "trigger: [clean, square]\n"
    "precision: [fp32, int8, int4]\n"
    "train: {arch: lenet, epochs: 1}\n";
#define N_TASKS 24
#define MAX_RANKS 8
#define MAX_LOG 256

/* ---- the fake workers, clock and results file ---------------------------- */

typedef struct fake {
    const qb_spec *spec;
    qb_progress *progress;
    int n_ranks;
    /* workers, by rank (1..n_ranks-1) */
    int hello_due[MAX_RANKS];
    long running[MAX_RANKS];    /* task it runs, -1: none */
    double ready_at[MAX_RANKS]; /* when its message can be received */
    int stopped[MAX_RANKS];
    double latency;             /* seconds a task takes */
    /* the clock: now() returns it; it moves on by tick per message
     * received, idle_tick per empty probe and now_tick per reading */
    double clock, tick, idle_tick, now_tick;
    /* outcomes: failed tasks (message "boom <task>"), bad details */
    long fail_task, bad_details_task;
    /* scripted events */
    int drain_at_flush;         /* set qb_drain_requested in this flush (1-based) */
    int drain_at_record;        /* ... after this many rows (1-based) */
    int fail_flush;             /* this flush (1-based) fails */
    int mute_rank;              /* this rank's results never arrive (0: none) */
    int mute_hello_rank;        /* this rank's first request never arrives */
    double worker_timeout;      /* qb_run_ctx.worker_timeout */
    /* the log */
    int n_sent, sent_after_drain, n_stop;
    long sent[MAX_LOG];
    int sent_rank[MAX_LOG];
    int n_rec;
    qb_task_row rows[MAX_LOG];
    long rec_task[MAX_LOG];
    int details_of[N_TASKS];    /* detail arrays written per task */
    int recorded[N_TASKS];
    int n_flush, flushed_rows[MAX_LOG]; /* rows recorded at each flush */
    size_t done_before_flush[MAX_LOG];
    double flush_at[MAX_LOG];
    int rec_after_error;
    int failed;                 /* a flush failed */
    int n_idle;
} fake;

static int fake_probe(void *ctx, int *rank, int *tag)
{
    fake *f = ctx;
    int best = 0;
    for (int r = 1; r < f->n_ranks; r++) {
        int has = (f->hello_due[r] && r != f->mute_hello_rank) ||
                  (f->running[r] >= 0 && r != f->mute_rank);
        if (has && f->ready_at[r] <= f->clock && (!best || f->ready_at[r] < f->ready_at[best]))
            best = r;
    }
    if (!best) {
        f->clock += f->idle_tick;
        return 0;
    }
    f->clock += f->tick;
    *rank = best;
    *tag = f->hello_due[best] ? QB_TAG_REQUEST : QB_TAG_RESULT;
    return 1;
}

static void fake_recv_request(void *ctx, int rank)
{
    fake *f = ctx;
    assert_true(rank > 0 && rank < f->n_ranks);
    assert_true(f->hello_due[rank]);
    f->hello_due[rank] = 0;
}

static int fake_recv_result(void *ctx, int rank, qb_result_msg *msg)
{
    fake *f = ctx;
    assert_true(rank > 0 && rank < f->n_ranks);
    long t = f->running[rank];
    assert_true(t >= 0);
    f->running[rank] = -1;
    memset(msg, 0, sizeof *msg);
    msg->task = t;
    snprintf(msg->host, sizeof msg->host, "fake%d", rank);
    qb_runner_empty_outcome(&msg->out);
    msg->out.ca_quant = 0.5 + 0.01 * (double)t;
    msg->out.trained = 1;
    if (t == f->fail_task) {
        msg->out.status = QB_STATUS_FAILED;
        msg->out.trained = 0;
        snprintf(msg->out.message, sizeof msg->out.message, "boom %ld", t);
    }
    if (t == f->bad_details_task) {
        msg->out.details_len = 7; /* the coordinator gets nothing usable */
        return -1;
    }
    qb_details_add1(&msg->out.details, "fake.task", (double)t);
    qb_details_add1(&msg->out.details, "fake.twice", 2.0 * (double)t);
    msg->out.details_len = 1;
    return 0;
}

static void fake_send_task(void *ctx, int rank, int64_t task)
{
    fake *f = ctx;
    assert_true(rank > 0 && rank < f->n_ranks);
    assert_false(f->stopped[rank]);
    assert_false(f->hello_due[rank]);
    assert_int_equal(f->running[rank], -1); /* a worker runs one task at a time */
    assert_true(task >= 0 && task < N_TASKS);
    assert_true(f->n_sent < MAX_LOG);
    f->sent[f->n_sent] = (long)task;
    f->sent_rank[f->n_sent++] = rank;
    f->sent_after_drain += qb_drain_requested != 0;
    f->running[rank] = (long)task;
    f->ready_at[rank] = f->clock + f->latency;
}

static void fake_send_stop(void *ctx, int rank)
{
    fake *f = ctx;
    assert_true(rank > 0 && rank < f->n_ranks);
    assert_false(f->stopped[rank]);
    assert_int_equal(f->running[rank], -1);
    f->stopped[rank] = 1;
    f->n_stop++;
}

static double fake_now(void *ctx)
{
    fake *f = ctx;
    f->clock += f->now_tick;
    return f->clock;
}

static void fake_idle(void *ctx)
{
    fake *f = ctx;
    f->n_idle++;
}

static int sink_write_detail(void *ctx, size_t task, const char *name, const double *v, size_t n,
                             qb_error *err)
{
    (void)err;
    fake *f = ctx;
    assert_true(task < N_TASKS);
    assert_false(f->recorded[task]); /* details first, then the row */
    assert_int_equal(n, 1);
    assert_true(!strcmp(name, "fake.task") || !strcmp(name, "fake.twice"));
    assert_true(v[0] == (double)task * (strcmp(name, "fake.task") ? 2.0 : 1.0));
    f->details_of[task]++;
    return 0;
}

static int sink_record(void *ctx, size_t task, const qb_task_row *row, qb_error *err)
{
    (void)err;
    fake *f = ctx;
    if (f->failed) f->rec_after_error++;
    assert_true(task < N_TASKS);
    assert_false(f->recorded[task]); /* once */
    assert_true(f->n_rec < MAX_LOG);
    f->recorded[task] = 1;
    f->rec_task[f->n_rec] = (long)task;
    f->rows[f->n_rec++] = *row;
    if (f->n_rec == f->drain_at_record) qb_drain_requested = 1;
    return 0;
}

static int sink_flush(void *ctx, qb_error *err)
{
    fake *f = ctx;
    assert_true(f->n_flush < MAX_LOG);
    int k = f->n_flush++;
    f->flushed_rows[k] = f->n_rec;
    f->done_before_flush[k] = f->progress->done;
    f->flush_at[k] = f->clock;
    if (f->n_flush == f->drain_at_flush) qb_drain_requested = 1;
    if (f->n_flush == f->fail_flush) {
        f->failed = 1;
        return QB_FAIL(err, "fake flush: disk gone");
    }
    return 0;
}

/* ---- running the coordinator ------------------------------------------------ */

typedef struct run {
    qb_spec spec;
    uint8_t status[N_TASKS];
    qb_progress progress;
    fake f;
    qb_run_ctx ctx;
    qb_error err;
    int rc;
} run;

static void run_init(run *r, int n_ranks)
{
    memset(r, 0, sizeof *r);
    qb_error e = {0};
    if (qb_spec_parse(&r->spec, SPEC, strlen(SPEC), "spec.yaml", &e)) fail_msg("%s", e.msg);
    assert_int_equal(r->spec.n_tasks, N_TASKS);
    fake *f = &r->f;
    f->spec = &r->spec;
    f->n_ranks = n_ranks;
    for (int k = 1; k < n_ranks; k++) {
        f->hello_due[k] = 1;
        f->running[k] = -1;
    }
    f->clock = 100.0;
    f->latency = 0.004;
    f->tick = 0.0005;
    f->idle_tick = 0.00001;
    f->fail_task = f->bad_details_task = -1;
    qb_drain_requested = 0;
}

/* Run the coordinator on r's status (set by the caller; 0 = pending). */
static void run_go(run *r, int empty_tasks)
{
    size_t finished = 0;
    for (size_t i = 0; i < N_TASKS; i++) finished += r->status[i] != QB_STATUS_PENDING;
    qb_progress_init(&r->progress, N_TASKS, finished, 1);
    r->f.progress = &r->progress;
    static const qb_transport proto = {NULL, fake_probe, fake_recv_request, fake_recv_result,
                                       fake_send_task, fake_send_stop, fake_now, fake_idle};
    qb_transport t = proto;
    t.ctx = &r->f;
    qb_run_sink sink = {&r->f, sink_write_detail, sink_record, sink_flush};
    r->ctx = (qb_run_ctx){.spec = &r->spec, .transport = &t, .sink = &sink, .store = NULL,
                          .status = r->status, .n_ranks = r->f.n_ranks, .progress = &r->progress,
                          .empty_tasks = empty_tasks, .worker_timeout = r->f.worker_timeout};
    r->rc = qb_coordinator_run(&r->ctx, &r->err);
    r->ctx.transport = NULL;
    r->ctx.sink = NULL;
    qb_drain_requested = 0;
}

static void run_free(run *r)
{
    qb_spec_free(&r->spec);
}

static const qb_task_row *row_of(const run *r, long task)
{
    for (int k = 0; k < r->f.n_rec; k++)
        if (r->f.rec_task[k] == task) return &r->f.rows[k];
    fail_msg("task %ld has no row", task);
    return NULL;
}

/* The rank a task was sent to (-1: never sent; fails if sent twice). */
static int sent_to(const run *r, long task)
{
    int rank = -1;
    for (int k = 0; k < r->f.n_sent; k++)
        if (r->f.sent[k] == task) {
            assert_int_equal(rank, -1);
            rank = r->f.sent_rank[k];
        }
    return rank;
}

/* Every worker got STOP and holds nothing; every task sent was recorded,
 * with its row (id, model, rank, host) and its details. */
static void check_consistent(const run *r)
{
    const fake *f = &r->f;
    for (int k = 1; k < f->n_ranks; k++) {
        assert_true(f->stopped[k]);
        assert_int_equal(f->running[k], -1);
    }
    assert_int_equal(f->n_rec, f->n_sent);
    for (int k = 0; k < f->n_rec; k++) {
        long t = f->rec_task[k];
        const qb_task_row *row = &f->rows[k];
        char host[16];
        int rank = sent_to(r, t);
        assert_true(rank > 0);
        snprintf(host, sizeof host, "fake%d", rank);
        assert_true(row->task_id == r->spec.tasks[t].id);
        assert_true(row->model_id == r->spec.models[r->spec.tasks[t].model].id);
        assert_int_equal(row->rank, rank);
        assert_string_equal(row->host, host);
        assert_int_equal(row->attempts, 1);
        if (t != f->bad_details_task) {
            assert_int_equal(f->details_of[t], 2);
            assert_true(row->ca_quant == 0.5 + 0.01 * (double)t);
        } else {
            assert_int_equal(f->details_of[t], 0);
        }
    }
}

/* Group commit: at each flush, progress counts exactly the rows of the
 * flushes before it; a flush comes QB_FLUSH_INTERVAL (20 ms) after the
 * previous one, except the last; each flush carries new rows. */
static void check_group_commit(const run *r)
{
    const fake *f = &r->f;
    assert_true(f->n_flush >= 1);
    int prev_rows = 0;
    double prev_at = 100.0;
    for (int k = 0; k < f->n_flush; k++) {
        assert_int_equal(f->done_before_flush[k], r->progress.done_at_start + (size_t)prev_rows);
        assert_true(f->flushed_rows[k] > prev_rows);
        if (k < f->n_flush - 1) assert_true(f->flush_at[k] - prev_at >= 0.02 - 1e-12);
        prev_rows = f->flushed_rows[k];
        prev_at = f->flush_at[k];
    }
    assert_int_equal(prev_rows, f->n_rec);
    assert_int_equal(r->progress.done, r->progress.done_at_start + (size_t)f->n_rec);
}

/* A run with workers that must succeed, hand out and record consistently
 * and group-commit. */
static void run_checked(run *r)
{
    run_go(r, 0);
    assert_int_equal(r->rc, 0);
    check_consistent(r);
    check_group_commit(r);
}

/* ---- the tests ------------------------------------------------------------ */

/* Three workers, nothing finished: every task once, group-committed. */
static void test_full_sweep(void **state)
{
    (void)state;
    run r;
    run_init(&r, 4);
    run_checked(&r);
    assert_int_equal(r.f.n_sent, N_TASKS);
    for (long t = 0; t < N_TASKS; t++) assert_true(sent_to(&r, t) > 0);
    /* 24 results about 1.3 ms apart: batched, not one flush per row */
    assert_true(r.f.n_flush < N_TASKS / 3);
    assert_int_equal(r.progress.failed, 0);
    assert_int_equal(r.ctx.drained, 0);
    assert_int_equal(r.ctx.trainings, N_TASKS);
    assert_int_equal(r.f.n_stop, 3);
    run_free(&r);
}

/* Resume: tasks finished before (ok, invalid, failed) are not handed out. */
static void test_resume(void **state)
{
    (void)state;
    run r;
    run_init(&r, 3);
    static const uint8_t before[] = {QB_STATUS_OK, QB_STATUS_INVALID, QB_STATUS_FAILED};
    for (int t = 0; t < N_TASKS; t += 3) r.status[t] = before[(t / 3) % 3];
    run_checked(&r);
    assert_int_equal(r.progress.done_at_start, N_TASKS / 3);
    for (long t = 0; t < N_TASKS; t++) {
        assert_int_equal(sent_to(&r, t) > 0, t % 3 != 0);
        assert_int_equal(r.f.recorded[t], t % 3 != 0);
    }
    assert_int_equal(r.progress.done, N_TASKS);
    assert_int_equal(r.ctx.drained, 0);
    run_free(&r);

    /* everything finished: nothing sent, nothing flushed, all stopped */
    run_init(&r, 3);
    memset(r.status, QB_STATUS_OK, sizeof r.status);
    run_go(&r, 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.f.n_sent, 0);
    assert_int_equal(r.f.n_flush, 0);
    assert_int_equal(r.f.n_stop, 2);
    assert_int_equal(r.ctx.drained, 0);
    run_free(&r);
}

/* A failed outcome is a row with its message; malformed details are a
 * failed row with detected = error; the other tasks still run. */
static void test_failure_rows(void **state)
{
    (void)state;
    run r;
    run_init(&r, 3);
    r.f.fail_task = 5;
    r.f.bad_details_task = 9;
    run_checked(&r);
    assert_int_equal(r.f.n_rec, N_TASKS);
    const qb_task_row *row = row_of(&r, 5);
    assert_int_equal(row->status, QB_STATUS_FAILED);
    assert_string_equal(row->message, "boom 5");
    row = row_of(&r, 9);
    assert_int_equal(row->status, QB_STATUS_FAILED);
    assert_int_equal(row->detected, QB_DETECTED_ERROR);
    char want[64];
    snprintf(want, sizeof want, "details from rank %d were malformed", sent_to(&r, 9));
    assert_string_equal(row->message, want);
    for (long t = 0; t < N_TASKS; t++) {
        if (t == 5 || t == 9) continue;
        assert_int_equal(row_of(&r, t)->status, QB_STATUS_OK);
        assert_string_equal(row_of(&r, t)->message, "");
    }
    assert_int_equal(r.progress.failed, 2);
    assert_int_equal(r.progress.done, N_TASKS);
    assert_int_equal(r.ctx.drained, 0);
    run_free(&r);
}

/* Results arriving every 0.1 ms: a flush every 20 ms at most, each one
 * counting its rows done; with results far apart, one flush per row. */
static void test_group_commit(void **state)
{
    (void)state;
    run r;
    run_init(&r, 3);
    r.f.latency = 0.0002;
    r.f.tick = 0.0001;
    run_checked(&r);
    /* the sweep takes well under 20 ms of fake time: one flush at the end */
    assert_true(r.f.clock - 100.0 < 0.02);
    assert_int_equal(r.f.n_flush, 1);
    run_free(&r);

    run_init(&r, 2);
    r.f.latency = 0.05; /* 50 ms a task, one worker: each row flushed alone */
    run_checked(&r);
    assert_int_equal(r.f.n_flush, N_TASKS);
    assert_true(r.f.n_idle > 0); /* it slept while the worker ran */
    run_free(&r);
}

/* Drain: requested during the first flush; nothing is handed out after
 * it, the tasks running finish and are recorded, every worker stops. */
static void test_drain(void **state)
{
    (void)state;
    run r;
    run_init(&r, 4);
    r.f.drain_at_flush = 1;
    run_checked(&r); /* includes: what was running got recorded */
    assert_int_equal(r.f.sent_after_drain, 0);
    assert_true(r.f.n_sent > 3 && r.f.n_sent < N_TASKS);
    assert_int_equal(r.ctx.drained, 1);
    assert_int_equal(r.f.n_stop, 3);
    run_free(&r);
}

/* An I/O error of the sink: nothing recorded after it, no more tasks, the
 * workers finish and stop, the error comes back. */
static void test_sink_error(void **state)
{
    (void)state;
    run r;
    run_init(&r, 4);
    r.f.fail_flush = 2;
    r.f.latency = 0.01; /* the sweep outlasts two flushes */
    run_go(&r, 0);
    assert_int_equal(r.rc, -1);
    assert_non_null(strstr(r.err.msg, "disk gone"));
    assert_int_equal(r.f.n_flush, 2);
    assert_int_equal(r.f.rec_after_error, 0);
    assert_true(r.f.n_sent < N_TASKS);
    assert_int_equal(r.f.n_stop, 3);
    for (int k = 1; k < 4; k++) assert_int_equal(r.f.running[k], -1);
    /* only the first flush's rows count as done */
    assert_int_equal(r.progress.done, (size_t)r.f.flushed_rows[0]);
    run_free(&r);
}

/* A worker gone silent while it holds a task, or before its first request (its rank or node lost, which
 * Open MPI under srun does not report): given up after worker_timeout, its
 * task stays pending (no row), nothing more is handed out, the others
 * stop, and the run counts as drained. */
static void test_silent_worker(void **state)
{
    (void)state;
    run r;
    run_init(&r, 4);
    r.f.mute_rank = 2;
    r.f.worker_timeout = 0.5;
    run_go(&r, 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.ctx.lost, 1);
    assert_int_equal(r.ctx.drained, 1);
    long t = r.f.running[2];
    assert_true(t >= 0);
    assert_int_equal(r.f.recorded[t], 0);
    assert_false(r.f.stopped[2]);
    assert_true(r.f.stopped[1] && r.f.stopped[3]);
    assert_int_equal(r.f.n_stop, 2);
    assert_int_equal(r.f.n_rec, r.f.n_sent - 1);
    assert_true(r.f.n_rec < N_TASKS);
    for (int i = 0; i < N_TASKS; i++) assert_true(r.f.recorded[i] <= 1);
    assert_true(r.f.clock - 100.0 >= 0.5); /* it waited the timeout */
    check_group_commit(&r);
    run_free(&r);

    /* silent from the start (never asks): given up too, the others run
     * every task */
    run_init(&r, 4);
    r.f.mute_hello_rank = 3;
    r.f.worker_timeout = 0.5;
    run_go(&r, 0);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.ctx.lost, 1);
    assert_int_equal(r.ctx.drained, 1);
    assert_true(r.f.hello_due[3] && !r.f.stopped[3]);
    assert_int_equal(r.f.n_stop, 2);
    assert_int_equal(r.f.n_rec, N_TASKS);
    assert_true(r.f.clock - 100.0 >= 0.5);
    run_free(&r);
}

/* One rank: the coordinator runs the (empty) tasks itself, rank 0, with
 * resume, group commit and drain as with workers. */
static void test_alone(void **state)
{
    (void)state;
    run r;
    run_init(&r, 1);
    r.f.now_tick = 0.004; /* the clock moves 4 ms per reading */
    r.status[0] = r.status[7] = QB_STATUS_OK;
    run_go(&r, 1);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.f.n_sent, 0); /* no messages */
    assert_int_equal(r.f.n_rec, N_TASKS - 2);
    assert_false(r.f.recorded[0] || r.f.recorded[7]);
    check_group_commit(&r);
    assert_true(r.f.n_flush > 1 && r.f.n_flush < N_TASKS - 2);
    for (int k = 0; k < r.f.n_rec; k++) {
        const qb_task_row *row = &r.f.rows[k];
        assert_int_equal(row->status, QB_STATUS_OK);
        assert_int_equal(row->rank, 0);
        assert_true(isnan(row->ca_quant) && row->detected == -1); /* the empty outcome */
        assert_true(row->task_id == r.spec.tasks[r.f.rec_task[k]].id);
        if (k) assert_true(r.f.rec_task[k] > r.f.rec_task[k - 1]);
    }
    assert_int_equal(r.ctx.drained, 0);
    run_free(&r);

    run_init(&r, 1);
    r.f.drain_at_record = 5;
    run_go(&r, 1);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.f.n_rec, 5);
    check_group_commit(&r);
    assert_int_equal(r.ctx.drained, 1);
    run_free(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_full_sweep),  cmocka_unit_test(test_resume),
        cmocka_unit_test(test_failure_rows), cmocka_unit_test(test_group_commit),
        cmocka_unit_test(test_drain),       cmocka_unit_test(test_sink_error),
        cmocka_unit_test(test_alone),       cmocka_unit_test(test_silent_worker),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
