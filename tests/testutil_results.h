/* Test helpers shared by the storage suites (test_results, test_merge,
 * test_model_store): a path in a directory, and cmocka fixtures that give
 * each test a fresh temporary directory (tests/testutil.h) and remove it
 * afterwards. Header-only (static inline): tests/CMakeLists.txt links only
 * tests/testutil.c into each suite. Include after <cmocka.h>. */
#ifndef QB_TESTUTIL_RESULTS_H
#define QB_TESTUTIL_RESULTS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <hdf5.h>

#include "tests/testutil.h"

/* "dir/name", malloc'd. */
static inline char *qb_test_join(const char *dir, const char *name)
{
    size_t len = strlen(dir) + strlen(name) + 2;
    char *p = malloc(len);
    assert_non_null(p);
    snprintf(p, len, "%s/%s", dir, name);
    return p;
}

/* cmocka setup/teardown: *state is a fresh temporary directory (char *). */
static inline int qb_test_dir_setup(void **state)
{
    *state = qb_test_tmpdir();
    return 0;
}

static inline int qb_test_dir_teardown(void **state)
{
    qb_test_tmpdir_remove(*state);
    free(*state);
    return 0;
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
    fx->path = qb_test_join(fx->dir, "res.h5");
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

/* cmocka_unit_test with one of the fixtures above. */
#define QB_TEST_IN_DIR(f)                                                                         \
    cmocka_unit_test_setup_teardown(f, qb_test_dir_setup, qb_test_dir_teardown)
#define QB_TEST_RESULTS(f)                                                                        \
    cmocka_unit_test_setup_teardown(f, qb_test_results_setup, qb_test_results_teardown)

#endif
