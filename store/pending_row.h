/* The pending results row of a spec task: the one place that turns a
 * task of an expanded spec (jobs/spec.h) into its row of /tasks
 * (store/results.h). `qblind run` (mpi/task_rows.c) and merge
 * (store/merge.c) both use it, so a merged file's pending rows are the
 * ones a single job writes. */
#ifndef QB_PENDING_ROW_H
#define QB_PENDING_ROW_H

#include <stddef.h>

#include "jobs/spec.h"
#include "store/results.h"

/* The pending row of task i of a spec: task and model ids, the axis
 * strings and the seed (qb_task_row_init for the rest). */
void qb_spec_pending_row(const qb_spec *s, size_t i, qb_task_row *row);

#endif
