/* One task on this rank: its parameters, the pipeline, a failure as an
 * outcome. The coordinator alone (mpi/coordinator.c) and the workers
 * (mpi/worker.c) both run tasks through qb_runner_task_execute. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "mpi/runner.h"

void qb_runner_empty_outcome(qb_task_outcome *out)
{
    memset(out, 0, sizeof *out);
    out->status = QB_STATUS_OK;
    out->ca_quant = out->asr_quant = out->ca_mitig = out->asr_mitig = NAN;
    out->detected = -1;
}

void qb_runner_task_execute(qb_worker *w, const qb_spec *s, size_t task, int empty_tasks,
                            qb_task_outcome *out)
{
    qb_task_params p;
    qb_error err;
    if (empty_tasks) {
        qb_runner_empty_outcome(out);
    } else if (qb_runner_task_params(s, task, &p, &err)) {
        qb_runner_empty_outcome(out);
        out->status = QB_STATUS_FAILED;
        snprintf(out->message, sizeof out->message, "task: %.240s", err.msg);
    } else {
        qb_pipeline_run(w, &p, out);
    }
}
