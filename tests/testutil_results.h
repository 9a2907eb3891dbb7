/* Test helpers shared by the suites of the results file (test_results,
 * test_merge): the comparison of two task rows, a cmocka fixture that
 * gives each test a fresh temporary directory (tests/testutil.h) and a
 * results-file path in it, and the end of a main that initialised MPI.
 * Header-only (static inline): tests/CMakeLists.txt links only
 * tests/testutil.c into each suite. Include after <cmocka.h>. */
#ifndef QB_TESTUTIL_RESULTS_H
#define QB_TESTUTIL_RESULTS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <hdf5.h>
#include <mpi.h>

#include "store/results.h"
#include "tests/testutil.h"

/* x and y have the same bits (NaN equals the same NaN). */
static inline int qb_test_same_bits(double x, double y)
{
    return memcmp(&x, &y, sizeof x) == 0;
}

/* a and b agree on every deterministic column (all but attempts, the
 * t_* timings, rank, host and finished_at): ids, axis values, status,
 * message, the four metrics bit for bit, the verdict. */
static inline void qb_test_rows_assert_same(const qb_task_row *a, const qb_task_row *b)
{
    assert_true(a->task_id == b->task_id);
    assert_true(a->model_id == b->model_id);
    assert_string_equal(a->dataset, b->dataset);
    assert_int_equal(a->seed, b->seed);
    assert_string_equal(a->trigger, b->trigger);
    assert_string_equal(a->precision, b->precision);
    assert_string_equal(a->mitigation, b->mitigation);
    assert_string_equal(a->defense, b->defense);
    assert_int_equal(a->status, b->status);
    assert_string_equal(a->message, b->message);
    assert_true(qb_test_same_bits(a->ca_quant, b->ca_quant));
    assert_true(qb_test_same_bits(a->asr_quant, b->asr_quant));
    assert_true(qb_test_same_bits(a->ca_mitig, b->ca_mitig));
    assert_true(qb_test_same_bits(a->asr_mitig, b->asr_mitig));
    assert_int_equal(a->detected, b->detected);
}

/* A results-file test: its directory and "res.h5" in it. */
typedef struct qb_test_results_fx {
    char *dir;
    char *path;
} qb_test_results_fx;

/* cmocka setup/teardown: *state is a qb_test_results_fx. The teardown
 * first asserts that the test left no HDF5 object open, then removes the
 * directory. */
static inline int qb_test_results_setup(void **state)
{
    qb_test_results_fx *fx = malloc(sizeof *fx);
    assert_non_null(fx);
    fx->dir = qb_test_tmpdir();
    fx->path = qb_test_path_join(fx->dir, "res.h5");
    *state = fx;
    return 0;
}

static inline int qb_test_results_teardown(void **state)
{
    qb_test_results_fx *fx = *state;
    ssize_t n = H5Fget_obj_count(H5F_OBJ_ALL, H5F_OBJ_ALL);
    if (n != 0) fail_msg("%zd HDF5 objects left open", n);
    qb_test_tmpdir_remove(fx->dir);
    free(fx->path);
    free(fx->dir);
    free(fx);
    return 0;
}

/* cmocka_unit_test with the fixture above. */
#define QB_TEST_RESULTS(f)                                                                        \
    cmocka_unit_test_setup_teardown(f, qb_test_results_setup, qb_test_results_teardown)

/* The end of the main of a suite that called MPI_Init (the results writer
 * needs MPI; a plain process is a singleton): qb_test_run_group
 * (tests/testutil.h), then MPI_Finalize. Evaluates to the number of tests
 * that failed. */
static inline int qb_test_mpi_finalize(int failed)
{
    MPI_Finalize();
    return failed;
}
#define qb_test_run_group_mpi(...) qb_test_mpi_finalize(qb_test_run_group(__VA_ARGS__))

#endif
