/* core/file.h: inputs are opened without blocking on special files, an
 * output that is one of the inputs is refused, and outputs written through
 * a temporary file replace the destination only when complete. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/file.h"
#include "tests/testutil.h"

/* A FIFO with no writer: open(2) without O_NONBLOCK would wait forever. */
static void test_fifo_refused_without_blocking(void **state)
{
    const char *dir = *state;
    char *fifo = qb_test_path_join(dir, "pipe");
    assert_int_equal(mkfifo(fifo, 0600), 0);
    qb_error err;
    assert_int_equal(qb_file_open_regular(fifo, "spec", &err), -1);
    qb_test_assert_msg_has(&err, "is a FIFO (named pipe), not a regular file");
    qb_test_assert_msg_has(&err, "spec ");
    assert_int_equal(qb_file_check_regular(fifo, "model file", &err), -1);
    qb_test_assert_msg_has(&err, "model file");
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(qb_file_read_all(fifo, 1024, &buf, &len, &err), -1);
    qb_test_assert_msg_has(&err, "FIFO");
    assert_int_equal(qb_file_check_dir(fifo, "--models", &err), -1);
    qb_test_assert_msg_has(&err, "is a FIFO (named pipe), not a directory");
    free(fifo);
}

static void test_directory_and_missing(void **state)
{
    const char *dir = *state;
    qb_error err;
    assert_int_equal(qb_file_open_regular(dir, "spec", &err), -1);
    qb_test_assert_msg_has(&err, "is a directory, not a regular file");
    assert_int_equal(qb_file_check_dir(dir, "--models", &err), 0);
    char *missing = qb_test_path_join(dir, "missing.yaml");
    assert_int_equal(qb_file_open_regular(missing, "spec", &err), -1);
    qb_test_assert_msg_has(&err, "cannot open spec ");
    qb_test_assert_msg_has(&err, "missing.yaml: No such file or directory");
    assert_int_equal(qb_file_check_dir(missing, "data_dir", &err), -1);
    qb_test_assert_msg_has(&err, "No such file or directory");
    free(missing);
}

static void test_regular_file_opens_blocking(void **state)
{
    const char *dir = *state;
    char *path = qb_test_path_join(dir, "a.txt");
    qb_test_write_file(path, "hello", 5);
    qb_error err;
    int fd = qb_file_open_regular(path, "spec", &err);
    assert_true(fd >= 0);
    char b[8];
    assert_int_equal(read(fd, b, sizeof b), 5);
    close(fd);
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(qb_file_read_all(path, 1024, &buf, &len, &err), 0);
    assert_int_equal(len, 5);
    assert_memory_equal(buf, "hello", 5);
    free(buf);
    assert_int_equal(qb_file_read_all(path, 4, &buf, &len, &err), -1);
    qb_test_assert_msg_has(&err, "refusing files over 4 bytes");
    free(path);
}

/* The same file under another name (a hard link, a symbolic link, ./x) is
 * the input; a new file or another file is not. */
static void test_output_is_input(void **state)
{
    const char *dir = *state;
    char *in = qb_test_path_join(dir, "r.h5"), *hard = qb_test_path_join(dir, "hard.h5"),
         *sym = qb_test_path_join(dir, "sym.h5"), *other = qb_test_path_join(dir, "o.h5"),
         *fresh = qb_test_path_join(dir, "new.txt");
    qb_test_write_file(in, "x", 1);
    qb_test_write_file(other, "x", 1);
    assert_int_equal(link(in, hard), 0);
    assert_int_equal(symlink(in, sym), 0);
    const char *inputs[] = {other, in};
    qb_error err;
    assert_int_equal(qb_file_check_not_input(in, inputs, 2, &err), -1);
    qb_test_assert_msg_has(&err, "it is the input");
    assert_int_equal(qb_file_check_not_input(hard, inputs, 2, &err), -1);
    assert_int_equal(qb_file_check_not_input(sym, inputs, 2, &err), -1);
    assert_int_equal(qb_file_check_not_input(fresh, inputs, 2, &err), 0);
    assert_int_equal(qb_file_check_not_input(other, inputs + 1, 1, &err), 0);
    free(in);
    free(hard);
    free(sym);
    free(other);
    free(fresh);
}

/* Until commit the destination keeps its old content; abort leaves it as
 * it was and no temporary behind. */
static void test_out_commit_and_abort(void **state)
{
    const char *dir = *state;
    char *path = qb_test_path_join(dir, "report.txt");
    qb_test_write_file(path, "old", 3);
    qb_error err;
    qb_file_out o;
    assert_int_equal(qb_file_out_open(&o, path, &err), 0);
    fputs("half", o.f);
    fflush(o.f);
    uint8_t *buf = NULL;
    size_t len = 0;
    assert_int_equal(qb_file_read_all(path, 64, &buf, &len, &err), 0);
    assert_int_equal(len, 3); /* still the old file */
    free(buf);
    char *tmp = strdup(o.tmp);
    qb_file_out_abort(&o);
    struct stat st;
    assert_int_equal(stat(tmp, &st), -1);
    assert_int_equal(qb_file_read_all(path, 64, &buf, &len, &err), 0);
    assert_memory_equal(buf, "old", 3);
    free(buf);

    assert_int_equal(qb_file_out_open(&o, path, &err), 0);
    fputs("new content", o.f);
    assert_int_equal(qb_file_out_commit(&o, &err), 0);
    assert_int_equal(stat(tmp, &st), -1);
    assert_int_equal(qb_file_read_all(path, 64, &buf, &len, &err), 0);
    assert_int_equal(len, 11);
    assert_memory_equal(buf, "new content", 11);
    free(buf);
    free(tmp);

    /* a destination in a missing directory: a clear error, nothing left */
    char *bad = qb_test_path_join(dir, "no/such/dir.txt");
    assert_int_equal(qb_file_out_open(&o, bad, &err), -1);
    qb_test_assert_msg_has(&err, "cannot create");
    free(bad);
    free(path);
}

int main(void)
{
    return qb_test_run_group(qb_test_with_tmpdir(test_fifo_refused_without_blocking),
                             qb_test_with_tmpdir(test_directory_and_missing),
                             qb_test_with_tmpdir(test_regular_file_opens_blocking),
                             qb_test_with_tmpdir(test_output_is_input),
                             qb_test_with_tmpdir(test_out_commit_and_abort));
}
