/* qblind run: the coordinator and worker loops and what they share. */
#ifndef QB_RUNNER_H
#define QB_RUNNER_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>

#include "store/model_store.h"
#include "pipeline/pipeline.h"
#include "store/results.h"
#include "jobs/spec.h"
#include "jobs/task.h"
#include "mpi/transport.h"

/* Exit status of a run that stopped early (SIGTERM/SIGUSR1 drain) with
 * tasks left: running the same command again resumes (EX_TEMPFAIL). */
#define QB_EXIT_RESUME 75

/* Rank 0 loads and validates the spec at path, every rank gets its text
 * and parses it into s (collective on MPI_COMM_WORLD). Returns 0, or -1
 * with err (on the other ranks: "rank 0 could not load the spec"). */
int qb_runner_share_spec(const char *path, qb_spec *s, int rank, qb_error *err);

/* Set by SIGTERM, SIGUSR1 (Slurm's pre-timeout signal) and SIGINT. */
extern volatile sig_atomic_t qb_drain_requested;
void qb_runner_install_signals(void);

/* The parameters of task i of the spec: copies of and pointers into the
 * spec's resolved values (jobs/spec.h), valid while the spec lives. Fails
 * only for a parameter block larger than QB_STAGE_PARAMS_MAX. */
#define QB_STAGE_PARAMS_MAX 32
int qb_runner_task_params(const qb_spec *s, size_t i, qb_task_params *p, qb_error *err);

/* A results row for task i: pending (out == NULL) or finished. */
void qb_runner_fill_row(const qb_spec *s, size_t i, const qb_task_outcome *out, int rank,
                        const char *host, qb_task_row *row);

/* Progress on stderr: done/total, failed, tasks/s, ETA. One updating line
 * on a terminal, a plain line every 10 s otherwise. */
typedef struct qb_progress {
    size_t total, done, failed, invalid, done_at_start;
    double t0, last_print;
    int tty;
    int quiet;
} qb_progress;
void qb_progress_init(qb_progress *p, size_t total, size_t already_done, int quiet);
void qb_progress_task(qb_progress *p, int status);
void qb_progress_print(qb_progress *p, int force);

/* Rank 0 with workers 1..n_ranks-1 (n_ranks >= 2), or alone (n_ranks 1:
 * rank 0 runs the tasks itself). Records each result and flushes before it
 * counts as done. Returns 0, or -1 with err on an I/O error (of the sink).
 * With ctx->lost > 0 the lost ranks never got STOP: the caller must not
 * wait for them (MPI_Finalize would). */
typedef struct qb_run_ctx {
    const qb_spec *spec;
    const qb_transport *transport; /* messages (with workers) and clock */
    const qb_run_sink *sink;       /* where rows go: the results file */
    const qb_model_store *store;   /* NULL: no model store (tests) */
    const uint8_t *status;   /* (n_tasks) from the results file */
    int n_ranks;
    qb_progress *progress;
    long trainings;          /* models trained in this run (all ranks) */
    int drained;             /* stopped early with work left */
    int empty_tasks;         /* benchmark: skip the pipeline, every task ok at once */
    /* > 0: a worker that holds a task (or has not asked for its first) and
     * has sent nothing for this many seconds is given up (a rank or node gone silently, which Open MPI
     * does not report): its task stays pending, no more tasks are handed
     * out, the others finish theirs; 0: wait for ever (docs/CLUSTER.md) */
    double worker_timeout;
    int lost;                /* workers given up (then drained is set) */
} qb_run_ctx;
int qb_coordinator_run(qb_run_ctx *ctx, qb_error *err);
/* Ranks >= 1: pull tasks until told to stop. empty_tasks (benchmark):
 * skip the pipeline and answer each task ok with no metrics. */
void qb_worker_loop(const qb_spec *s, const qb_model_store *store, int empty_tasks);
/* The outcome of an empty task (--empty-tasks): ok, metrics NaN. */
void qb_runner_empty_outcome(qb_task_outcome *out);
/* Run task `task` of s on worker w into out (mpi/task_exec.c): its
 * parameters (qb_runner_task_params), then the pipeline. Never fails as a
 * call: parameters that cannot be built make a failed outcome with the
 * message "task: <why>". empty_tasks: no pipeline, the empty outcome.
 * The caller frees out (qb_task_outcome_free). */
void qb_runner_task_execute(qb_worker *w, const qb_spec *s, size_t task, int empty_tasks,
                            qb_task_outcome *out);

#endif
