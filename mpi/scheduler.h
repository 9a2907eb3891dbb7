/* The coordinator's scheduling decisions, without any transport: which
 * task a worker that asks for work gets next.
 *
 * Rules:
 *   - workers pull: a task is handed out only when a worker asks;
 *   - a worker that holds a model (it trained or loaded it) gets that
 *     model's remaining tasks first;
 *   - otherwise it takes a model nobody holds yet, and holds it;
 *   - a model that another worker holds is shared only once it is in the
 *     model store (its first task finished, or it was found there at
 *     start), so no model is ever trained twice; until then the asking
 *     worker is told to wait;
 *   - after qb_sched_drain nothing more is handed out.
 * Every decision depends only on the sequence of requests and results,
 * never on time, so the tests replay schedules exactly. */
#ifndef QB_SCHEDULER_H
#define QB_SCHEDULER_H

#include <stddef.h>
#include <stdint.h>

#define QB_SCHED_WAIT (-1L) /* nothing for this worker yet: ask again later */
#define QB_SCHED_DONE (-2L) /* nothing will come: stop */

typedef struct qb_sched qb_sched;

/* n tasks with their model ids; pending[i] = 1 for tasks still to run
 * (finished ones on resume are 0); workers numbered 0..n_workers-1.
 * stored[i] (may be NULL): task i's model is already in the store. */
qb_sched *qb_sched_new(size_t n, const uint64_t *model_ids, const uint8_t *pending,
                       const uint8_t *stored, int n_workers);
void qb_sched_free(qb_sched *s);

/* The next task index for `worker`, or QB_SCHED_WAIT / QB_SCHED_DONE. */
long qb_sched_next(qb_sched *s, int worker);
/* Task `task` handed to `worker` has finished (ok, invalid or failed). Its
 * model is now in the store (the pipeline stores before it evaluates) —
 * unless `model_stored` is 0 (the model stage itself failed). A model the
 * store could not take (full disk) is reported stored too: the worker
 * holds it, and another worker that needs it trains it again. */
void qb_sched_finished(qb_sched *s, int worker, long task, int model_stored);
/* Stop handing out work (SIGTERM/SIGUSR1). */
void qb_sched_drain(qb_sched *s);

size_t qb_sched_pending(const qb_sched *s);  /* not yet handed out */
size_t qb_sched_in_flight(const qb_sched *s);
size_t qb_sched_models(const qb_sched *s);   /* distinct models with pending tasks at start */

#endif
