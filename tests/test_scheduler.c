/* The coordinator's scheduling logic (mpi/scheduler.c), without MPI. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "mpi/scheduler.h"

static void test_affinity_and_waiting(void **state)
{
    (void)state;
    /* models A A B B C, two workers, nothing stored yet */
    const uint64_t ids[] = {10, 10, 20, 20, 30};
    const uint8_t pending[] = {1, 1, 1, 1, 1};
    qb_sched *s = qb_sched_new(5, ids, pending, NULL, 2);
    assert_int_equal(qb_sched_models(s), 3);
    assert_int_equal(qb_sched_next(s, 0), 0); /* w0 takes A */
    assert_int_equal(qb_sched_next(s, 1), 2); /* w1: A is held, takes B */
    assert_int_equal(qb_sched_next(s, 0), 1); /* w0 stays on A */
    assert_int_equal(qb_sched_next(s, 0), 4); /* A exhausted: C is free */
    /* B is held by w1 and not yet stored: w0 waits rather than train it too */
    assert_int_equal(qb_sched_next(s, 0), QB_SCHED_WAIT);
    qb_sched_finished(s, 1, 2, 1);
    assert_int_equal(qb_sched_next(s, 0), 3);
    assert_int_equal(qb_sched_next(s, 1), QB_SCHED_DONE);
    qb_sched_free(s);
}

/* A held, unstored model is not shared: the second worker waits until the
 * first task of that model has finished (the model is in the store). */
static void test_no_second_training(void **state)
{
    (void)state;
    const uint64_t ids[] = {7, 7, 7, 7};
    const uint8_t pending[] = {1, 1, 1, 1};
    qb_sched *s = qb_sched_new(4, ids, pending, NULL, 2);
    assert_int_equal(qb_sched_next(s, 0), 0);
    assert_int_equal(qb_sched_next(s, 1), QB_SCHED_WAIT);
    qb_sched_finished(s, 0, 0, 1);
    assert_int_equal(qb_sched_next(s, 1), 1); /* stored now: shared */
    assert_int_equal(qb_sched_next(s, 0), 2);
    assert_int_equal(qb_sched_next(s, 0), 3);
    assert_int_equal(qb_sched_next(s, 1), QB_SCHED_DONE);
    assert_int_equal(qb_sched_in_flight(s), 3);
    qb_sched_free(s);
    /* a model stage that failed does not count as stored */
    s = qb_sched_new(4, ids, pending, NULL, 2);
    assert_int_equal(qb_sched_next(s, 0), 0);
    qb_sched_finished(s, 0, 0, 0);
    assert_int_equal(qb_sched_next(s, 1), QB_SCHED_WAIT);
    assert_int_equal(qb_sched_next(s, 0), 1);
    qb_sched_free(s);
}

/* Resume: finished tasks are skipped; models found in the store are shared
 * at once. Drain: nothing more is handed out. */
static void test_resume_and_drain(void **state)
{
    (void)state;
    const uint64_t ids[] = {1, 1, 1, 2, 2};
    const uint8_t pending[] = {0, 1, 1, 0, 1};
    const uint8_t stored[] = {1, 1, 1, 0, 0};
    qb_sched *s = qb_sched_new(5, ids, pending, stored, 3);
    assert_int_equal(qb_sched_pending(s), 3);
    assert_int_equal(qb_sched_next(s, 0), 1);
    assert_int_equal(qb_sched_next(s, 1), 4); /* model 2 free */
    assert_int_equal(qb_sched_next(s, 2), 2); /* model 1 held by w0 but stored */
    assert_int_equal(qb_sched_next(s, 2), QB_SCHED_DONE);
    qb_sched_free(s);
    const uint8_t all[] = {1, 1, 1, 1, 1};
    s = qb_sched_new(5, ids, all, NULL, 2);
    assert_int_equal(qb_sched_next(s, 0), 0);
    qb_sched_drain(s);
    assert_int_equal(qb_sched_next(s, 0), QB_SCHED_DONE);
    assert_int_equal(qb_sched_next(s, 1), QB_SCHED_DONE);
    assert_int_equal(qb_sched_pending(s), 4);
    qb_sched_free(s);
}

/* Random interleavings of requests and results over many models and
 * workers: every task is handed out exactly once, and for every model only
 * one worker ever receives one of its tasks before the model is stored
 * (it is trained exactly once). */
static void test_random_schedules(void **state)
{
    (void)state;
    enum { N = 3000, W = 7 };
    qb_rng rng;
    qb_rng_seed(&rng, 99);
    for (int round = 0; round < 20; round++) {
        uint64_t *ids = malloc(N * sizeof *ids);
        uint8_t *pending = malloc(N), *given = calloc(N, 1);
        for (int i = 0; i < N; i++) {
            ids[i] = qb_rng_below(&rng, 1 + round * 10);
            pending[i] = qb_rng_below(&rng, 10) != 0;
        }
        qb_sched *s = qb_sched_new(N, ids, pending, NULL, W);
        /* per model: stored yet? trained by how many workers? */
        uint8_t stored[300] = {0};
        int trainer[300];
        for (int m = 0; m < 300; m++) trainer[m] = -1;
        long inflight[W];
        for (int w = 0; w < W; w++) inflight[w] = -1;
        int done_workers = 0, done[W] = {0};
        while (done_workers < W) {
            int w = (int)qb_rng_below(&rng, W);
            if (done[w]) continue;
            if (inflight[w] >= 0) { /* finish it */
                qb_sched_finished(s, w, inflight[w], 1);
                stored[ids[inflight[w]]] = 1;
                inflight[w] = -1;
                continue;
            }
            long t = qb_sched_next(s, w);
            if (t == QB_SCHED_DONE) {
                done[w] = 1;
                done_workers++;
            } else if (t >= 0) {
                assert_true(pending[t] && !given[t]);
                given[t] = 1;
                uint64_t m = ids[t];
                if (!stored[m]) {
                    if (trainer[m] >= 0) assert_int_equal(trainer[m], w); /* never twice */
                    trainer[m] = w;
                }
                inflight[w] = t;
            }
        }
        for (int i = 0; i < N; i++) assert_int_equal(given[i], pending[i]);
        assert_int_equal(qb_sched_pending(s), 0);
        qb_sched_free(s);
        free(ids);
        free(pending);
        free(given);
    }
}

/* A million tasks: built quickly and compactly (about 20 bytes a task). */
static void test_million(void **state)
{
    (void)state;
    size_t n = 1000000;
    uint64_t *ids = malloc(n * sizeof *ids);
    uint8_t *pending = malloc(n);
    for (size_t i = 0; i < n; i++) {
        ids[i] = i / 50;
        pending[i] = 1;
    }
    qb_sched *s = qb_sched_new(n, ids, pending, NULL, 64);
    assert_int_equal(qb_sched_models(s), n / 50);
    long got = 0;
    for (int w = 0; w < 64; w++) got += qb_sched_next(s, w) >= 0;
    assert_int_equal(got, 64);
    qb_sched_free(s);
    free(ids);
    free(pending);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_affinity_and_waiting),
        cmocka_unit_test(test_no_second_training),
        cmocka_unit_test(test_resume_and_drain),
        cmocka_unit_test(test_random_schedules),
        cmocka_unit_test(test_million),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
