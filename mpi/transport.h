/* What the coordinator (mpi/coordinator.c) talks through, so its
 * decisions can be tested without mpirun (tests/test_coordinator.c):
 *
 *   qb_transport  the messages of mpi/protocol.h between rank 0 and the
 *                 workers, the clock and the idle pause;
 *   qb_run_sink   where results go: details and rows, then a flush that
 *                 makes them durable (store/results.h).
 *
 * The real ones: qb_transport_mpi (MPI_COMM_WORLD, qb_now, nanosleep) and
 * qb_run_sink_results (a qb_results file), mpi/transport_mpi.c. */
#ifndef QB_TRANSPORT_H
#define QB_TRANSPORT_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "mpi/protocol.h"
#include "store/results.h"

typedef struct qb_transport {
    void *ctx;
    /* A message waits (from any worker rank): 1 with its rank and tag
     * (QB_TAG_REQUEST or QB_TAG_RESULT), else 0. Does not block. */
    int (*probe)(void *ctx, int *rank, int *tag);
    /* Receive the waiting REQUEST of `rank`. */
    void (*recv_request)(void *ctx, int rank);
    /* Receive the waiting RESULT of `rank` into msg, and its packed details
     * if msg->out.details_len > 0 (unpacked into msg->out.details, owned by
     * the caller). Returns 0, or -1 if the details were malformed (then
     * msg->out.details is empty). */
    int (*recv_result)(void *ctx, int rank, qb_result_msg *msg);
    /* Tell `rank` to run task `task`; tell `rank` to stop. */
    void (*send_task)(void *ctx, int rank, int64_t task);
    void (*send_stop)(void *ctx, int rank);
    /* Seconds on a monotonic clock (flush interval, idle spinning). */
    double (*now)(void *ctx);
    /* Nothing arrived for a while: pause briefly before probing again. */
    void (*idle)(void *ctx);
} qb_transport;

typedef struct qb_run_sink {
    void *ctx;
    /* A detail array of task `task` (store/results.h qb_results_write_detail). */
    int (*write_detail)(void *ctx, size_t task, const char *name, const double *v, size_t n,
                        qb_error *err);
    /* The finished row of task `task` (qb_results_record). */
    int (*record)(void *ctx, size_t task, const qb_task_row *row, qb_error *err);
    /* Make every row recorded so far durable (qb_results_flush). */
    int (*flush)(void *ctx, qb_error *err);
} qb_run_sink;

/* MPI_COMM_WORLD with the tags of mpi/protocol.h; ctx unused. */
qb_transport qb_transport_mpi(void);
/* The results file `res` (opened by the caller, store/results.h). */
qb_run_sink qb_run_sink_results(qb_results *res);

#endif
