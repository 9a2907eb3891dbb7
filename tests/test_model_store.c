/* The model store (store/model_store.c). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/model_store.h"
#include "tests/testutil.h"

static void small_model(qb_model *m, uint64_t seed)
{
    qb_error err;
    assert_int_equal(qb_model_build(m, "lenet", 1, 28, 28, 10, &err), 0);
    qb_model_init_params(m, seed);
}

static void test_put_get(void **state)
{
    const char *dir = *state;
    char sdir[512];
    snprintf(sdir, sizeof sdir, "%s/r.h5.models", dir);
    qb_model_store s;
    qb_error err;
    assert_int_equal(qb_model_store_open(&s, sdir, &err), 0);
    assert_int_equal(qb_model_store_open(&s, sdir, &err), 0); /* exists: fine */
    qb_model m, back;
    small_model(&m, 1);
    char note[512];
    assert_int_equal(qb_model_store_get(&s, 0xabcdef, "key-1", &back, note, sizeof note, &err),
                     QB_STORE_MISSING);
    assert_string_equal(note, "");
    assert_int_equal(qb_model_store_put(&s, 0xabcdef, "key-1", &m, &err), 0);
    assert_int_equal(qb_model_store_get(&s, 0xabcdef, "key-1", &back, note, sizeof note, &err),
                     QB_STORE_FOUND);
    assert_memory_equal(m.params, back.params, m.n_params * sizeof(float));
    qb_model_free(&back);

    /* another description under the same id: moved aside, retrain */
    assert_int_equal(qb_model_store_get(&s, 0xabcdef, "key-2", &back, note, sizeof note, &err),
                     QB_STORE_MISSING);
    assert_non_null(strstr(note, "describes another model"));
    char path[4200], aside[4300];
    qb_model_store_path(&s, 0xabcdef, path, sizeof path);
    snprintf(aside, sizeof aside, "%s.corrupt", path);
    struct stat st;
    assert_int_equal(stat(aside, &st), 0);
    assert_int_not_equal(stat(path, &st), 0);

    /* a truncated file: moved aside with the loader's reason */
    assert_int_equal(qb_model_store_put(&s, 7, "key-7", &m, &err), 0);
    qb_model_store_path(&s, 7, path, sizeof path);
    assert_int_equal(truncate(path, 1000), 0);
    assert_int_equal(qb_model_store_get(&s, 7, "key-7", &back, note, sizeof note, &err),
                     QB_STORE_MISSING);
    assert_non_null(strstr(note, "truncated"));
    assert_non_null(strstr(note, "retraining"));
    qb_model_free(&m);
}

/* The listing: every "<16 hex>.qbm", ascending; other names ignored. */
static void test_list(void **state)
{
    const char *dir = *state;
    qb_model_store s;
    qb_error err;
    assert_int_equal(qb_model_store_open(&s, dir, &err), 0);
    qb_model m;
    small_model(&m, 2);
    assert_int_equal(qb_model_store_put(&s, 0xfedcba9876543210ull, "k", &m, &err), 0);
    assert_int_equal(qb_model_store_put(&s, 7, "k", &m, &err), 0);
    char path[600];
    snprintf(path, sizeof path, "%s/notes.txt", dir);
    qb_test_write_file(path, "x", 1);
    snprintf(path, sizeof path, "%s/0123.qbm", dir);
    qb_test_write_file(path, "x", 1);
    snprintf(path, sizeof path, "%s/000000000000000g.qbm", dir);
    qb_test_write_file(path, "x", 1);
    uint64_t *ids;
    size_t n;
    assert_int_equal(qb_model_store_list(&s, &ids, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_true(ids[0] == 7 && ids[1] == 0xfedcba9876543210ull);
    free(ids);
    qb_model_free(&m);
}

static void test_open_errors(void **state)
{
    const char *dir = *state;
    char file[512], sub[600];
    snprintf(file, sizeof file, "%s/plainfile", dir);
    qb_test_write_file(file, "x", 1);
    qb_model_store s;
    qb_error err;
    assert_int_equal(qb_model_store_open(&s, file, &err), -1);
    assert_non_null(strstr(err.msg, "not a directory"));
    snprintf(sub, sizeof sub, "%s/inside", file);
    assert_int_equal(qb_model_store_open(&s, sub, &err), -1);
    assert_non_null(strstr(err.msg, "cannot create model store"));
}

int main(void)
{
    return qb_test_run_group(qb_test_with_tmpdir(test_put_get), qb_test_with_tmpdir(test_list),
                             qb_test_with_tmpdir(test_open_errors));
}
