/* The coordinator's real transport (MPI, mpi/protocol.h) and sink (the
 * results file, store/results.h); the interface is mpi/transport.h. */
#include <mpi.h>
#include <stdlib.h>
#include <time.h>

#include "core/train.h"
#include "core/xalloc.h"
#include "mpi/transport.h"

static int mpi_probe(void *ctx, int *rank, int *tag)
{
    (void)ctx;
    int flag;
    MPI_Status st;
    MPI_Iprobe(MPI_ANY_SOURCE, MPI_ANY_TAG, MPI_COMM_WORLD, &flag, &st);
    if (!flag) return 0;
    *rank = st.MPI_SOURCE;
    *tag = st.MPI_TAG;
    return 1;
}

static void mpi_recv_request(void *ctx, int rank)
{
    (void)ctx;
    int32_t hello;
    MPI_Recv(&hello, 1, MPI_INT32_T, rank, QB_TAG_REQUEST, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
}

/* The packed details that follow a RESULT from `rank`. -1 if malformed. */
static int recv_details(int rank, qb_task_outcome *out)
{
    uint8_t *buf = xmalloc((size_t)out->details_len, 1);
    MPI_Recv(buf, (int)out->details_len, MPI_BYTE, rank, QB_TAG_DETAILS, MPI_COMM_WORLD,
             MPI_STATUS_IGNORE);
    qb_error e;
    int rc = qb_details_unpack(&out->details, buf, (size_t)out->details_len, &e);
    free(buf);
    return rc;
}

static int mpi_recv_result(void *ctx, int rank, qb_result_msg *msg)
{
    (void)ctx;
    MPI_Recv(msg, (int)sizeof *msg, MPI_BYTE, rank, QB_TAG_RESULT, MPI_COMM_WORLD,
             MPI_STATUS_IGNORE);
    /* the details' pointers are the worker's: they follow packed */
    qb_details_init(&msg->out.details);
    return msg->out.details_len ? recv_details(rank, &msg->out) : 0;
}

static void mpi_send(int rank, int tag, int64_t v)
{
    MPI_Send(&v, 1, MPI_INT64_T, rank, tag, MPI_COMM_WORLD);
}

static void mpi_send_task(void *ctx, int rank, int64_t task)
{
    (void)ctx;
    mpi_send(rank, QB_TAG_TASK, task);
}

static void mpi_send_stop(void *ctx, int rank)
{
    (void)ctx;
    mpi_send(rank, QB_TAG_STOP, -1);
}

static double mpi_now(void *ctx)
{
    (void)ctx;
    return qb_now();
}

static void mpi_idle(void *ctx)
{
    (void)ctx;
    struct timespec ts = {0, 50000};
    nanosleep(&ts, NULL);
}

qb_transport qb_transport_mpi(void)
{
    qb_transport t = {NULL,          mpi_probe,     mpi_recv_request, mpi_recv_result,
                      mpi_send_task, mpi_send_stop, mpi_now,          mpi_idle};
    return t;
}

static int sink_write_detail(void *ctx, size_t task, const char *name, const double *v, size_t n,
                             qb_error *err)
{
    return qb_results_write_detail(ctx, task, name, v, n, err);
}

static int sink_record(void *ctx, size_t task, const qb_task_row *row, qb_error *err)
{
    return qb_results_record(ctx, task, row, err);
}

static int sink_flush(void *ctx, qb_error *err)
{
    return qb_results_flush(ctx, err);
}

qb_run_sink qb_run_sink_results(qb_results *res)
{
    qb_run_sink s = {res, sink_write_detail, sink_record, sink_flush};
    return s;
}
