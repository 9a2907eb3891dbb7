/* Threads within one process (one MPI rank): a fixed pool that runs one
 * function on every thread and waits for all of them.
 *
 * The pool only splits work whose every output is computed by exactly one
 * thread in the same order whatever the thread count (qb_gemm_f32 gives
 * each thread whole output tiles), so results do not depend on it. The
 * count is a process-wide setting, 1 by default (ranks are the main
 * parallelism: `qblind run --threads`). Workers never call MPI. */
#ifndef QB_THREADS_H
#define QB_THREADS_H

#include "core/error.h"

#define QB_THREADS_MAX 256

/* Use n threads (the caller's plus n - 1 workers). 1 <= n <= QB_THREADS_MAX.
 * Must not be called while qb_threads_run is running. Returns 0, or -1 with
 * err set (bad n, or the system refused a thread: then the count is 1). */
int qb_threads_set(int n, qb_error *err);

/* The current thread count (1 until qb_threads_set). */
int qb_threads_count(void);

/* Runs fn(ctx, t, nt) for t = 0 .. nt-1 with nt = qb_threads_count(), t = 0
 * on the calling thread, and returns when every call has returned. Not
 * reentrant: fn must not call qb_threads_run. */
void qb_threads_run(void (*fn)(void *ctx, int t, int nt), void *ctx);

/* Stops the workers (the count goes back to 1). Safe to call twice. */
void qb_threads_free(void);

#endif
