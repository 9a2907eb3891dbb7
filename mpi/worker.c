/* A worker rank: ask for a task, run it, send the result, repeat. */
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <mpi.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "mpi/protocol.h"
#include "mpi/runner.h"

void qb_runner_empty_outcome(qb_task_outcome *out)
{
    memset(out, 0, sizeof *out);
    out->status = QB_STATUS_OK;
    out->ca_quant = out->asr_quant = out->ca_mitig = out->asr_mitig = NAN;
    out->detected = -1;
}

void qb_worker_loop(const qb_spec *s, const qb_model_store *store, int empty_tasks)
{
    qb_worker w;
    qb_worker_init(&w, store);
    qb_result_msg msg;
    memset(&msg, 0, sizeof msg);
    gethostname(msg.host, sizeof msg.host - 1);
    int32_t hello = 0;
    MPI_Send(&hello, 1, MPI_INT32_T, 0, QB_TAG_REQUEST, MPI_COMM_WORLD);
    for (;;) {
        int64_t task;
        MPI_Status st;
        /* SIGTERM only sets the drain flag here: the worker finishes its
         * task and the coordinator, draining too, answers with STOP. */
        MPI_Recv(&task, 1, MPI_INT64_T, 0, MPI_ANY_TAG, MPI_COMM_WORLD, &st);
        if (st.MPI_TAG == QB_TAG_STOP) break;
        qb_task_params p;
        qb_error err;
        msg.task = task;
        if (empty_tasks) {
            qb_runner_empty_outcome(&msg.out);
        } else if (qb_runner_task_params(s, (size_t)task, &p, &err)) {
            qb_runner_empty_outcome(&msg.out);
            msg.out.status = QB_STATUS_FAILED;
            snprintf(msg.out.message, sizeof msg.out.message, "task: %.240s", err.msg);
        } else {
            qb_pipeline_run(&w, &p, &msg.out);
        }
        size_t len = 0;
        uint8_t *packed = NULL;
        if (msg.out.details.n) packed = qb_details_pack(&msg.out.details, &len);
        msg.out.details_len = len;
        if (len > INT_MAX) { /* cannot happen with the defenses' sizes: drop them, say so */
            msg.out.details_len = 0;
            msg.out.status = QB_STATUS_FAILED;
            snprintf(msg.out.message, sizeof msg.out.message, "details of %zu bytes exceed one MPI message", len);
        }
        MPI_Send(&msg, (int)sizeof msg, MPI_BYTE, 0, QB_TAG_RESULT, MPI_COMM_WORLD);
        if (msg.out.details_len)
            MPI_Send(packed, (int)len, MPI_BYTE, 0, QB_TAG_DETAILS, MPI_COMM_WORLD);
        free(packed);
        qb_task_outcome_free(&msg.out);
    }
    qb_worker_free(&w);
}
