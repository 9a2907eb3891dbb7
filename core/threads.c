/* The pool of core/threads.h: workers wait on a condition variable for a
 * new generation of work, run it, and count themselves done. */
#include "core/threads.h"

#include <pthread.h>
#include <string.h>

typedef struct pool {
    pthread_mutex_t mu;
    pthread_cond_t go;   /* a new generation (or stop) */
    pthread_cond_t done; /* the last worker of a generation finished */
    unsigned long gen;
    unsigned long start_gen;
    int stop;
    int pending; /* workers still running the current generation */
    void (*fn)(void *, int, int);
    void *ctx;
    int nt;      /* threads, the caller's included */
    pthread_t tid[QB_THREADS_MAX];
    int id[QB_THREADS_MAX];
} pool;

static pool P = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, PTHREAD_COND_INITIALIZER,
                 0, 0, 0, 0, NULL, NULL, 1, {0}, {0}};

static void *worker(void *arg)
{
    const int t = *(const int *)arg;
    pthread_mutex_lock(&P.mu);
    /* The generation current when qb_threads_set started this worker (no
     * run can be in progress then): only later ones are its work. */
    unsigned long seen = P.start_gen;
    for (;;) {
        while (!P.stop && P.gen == seen) pthread_cond_wait(&P.go, &P.mu);
        if (P.stop) break;
        seen = P.gen;
        void (*fn)(void *, int, int) = P.fn;
        void *ctx = P.ctx;
        int nt = P.nt;
        pthread_mutex_unlock(&P.mu);
        fn(ctx, t, nt);
        pthread_mutex_lock(&P.mu);
        if (--P.pending == 0) pthread_cond_signal(&P.done);
    }
    pthread_mutex_unlock(&P.mu);
    return NULL;
}

void qb_threads_free(void)
{
    pthread_mutex_lock(&P.mu);
    P.stop = 1;
    pthread_cond_broadcast(&P.go);
    pthread_mutex_unlock(&P.mu);
    for (int t = 1; t < P.nt; t++) pthread_join(P.tid[t], NULL);
    pthread_mutex_lock(&P.mu);
    P.stop = 0;
    P.nt = 1;
    pthread_mutex_unlock(&P.mu);
}

int qb_threads_set(int n, qb_error *err)
{
    if (n < 1 || n > QB_THREADS_MAX)
        return QB_FAIL(err, "threads must be in [1, %d], got %d", QB_THREADS_MAX, n);
    if (n == P.nt) return 0;
    qb_threads_free();
    P.start_gen = P.gen;
    for (int t = 1; t < n; t++) {
        P.id[t] = t;
        int rc = pthread_create(&P.tid[t], NULL, worker, &P.id[t]);
        if (rc) {
            P.nt = t; /* the ones started so far, for qb_threads_free */
            qb_threads_free();
            return QB_FAIL(err, "cannot start thread %d of %d: %s", t + 1, n, strerror(rc));
        }
        P.nt = t + 1;
    }
    return 0;
}

int qb_threads_count(void) { return P.nt; }

void qb_threads_run(void (*fn)(void *ctx, int t, int nt), void *ctx)
{
    const int nt = P.nt;
    if (nt == 1) {
        fn(ctx, 0, 1);
        return;
    }
    pthread_mutex_lock(&P.mu);
    P.fn = fn;
    P.ctx = ctx;
    P.pending = nt - 1;
    P.gen++;
    pthread_cond_broadcast(&P.go);
    pthread_mutex_unlock(&P.mu);
    fn(ctx, 0, nt);
    pthread_mutex_lock(&P.mu);
    while (P.pending > 0) pthread_cond_wait(&P.done, &P.mu);
    pthread_mutex_unlock(&P.mu);
}
