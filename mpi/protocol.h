/* Messages between the coordinator (rank 0) and the workers.
 *
 * Every rank parses the same spec text (rank 0 broadcasts it), so a task
 * travels as its index. All ranks run the same build on one kind of
 * machine, so results travel as raw bytes (MPI_BYTE).
 *
 *   worker -> 0   QB_TAG_REQUEST  (int32 0)           first request for work
 *   worker -> 0   QB_TAG_RESULT   qb_result_msg       a finished task; also asks for more
 *   worker -> 0   QB_TAG_DETAILS  packed details      right after a RESULT whose
 *                                                    out.details_len > 0 (core/details.h)
 *   0 -> worker   QB_TAG_TASK     int64 task index    run it
 *   0 -> worker   QB_TAG_STOP     int64 -1            no more work: exit the loop
 *
 * A worker that asks while no task is eligible (its model's siblings wait
 * for a model another rank is training) gets no reply until one is. */
#ifndef QB_PROTOCOL_H
#define QB_PROTOCOL_H

#include <stdint.h>

#include "pipeline/pipeline.h"

enum { QB_TAG_REQUEST = 1, QB_TAG_RESULT = 2, QB_TAG_TASK = 3, QB_TAG_STOP = 4, QB_TAG_DETAILS = 5 };

typedef struct qb_result_msg {
    int64_t task;
    qb_task_outcome out;
    char host[64];
} qb_result_msg;

#endif
