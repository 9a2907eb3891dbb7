/* Reading a results file in a bounded child process first
 * (store/results_probe.h): the spawn-and-wait mechanics on real programs
 * (exit status, a signal, a process killed at the wall-clock bound, no
 * descriptor leaked into it), and the probe itself, with this binary as
 * the checking process (main hands it QB_RESULTS_PROBE_COMMAND, as
 * cli/main.c does in qblind): a good file passes, a file the readers
 * refuse gives the readers' own error, and the files of fuzz/known/ that
 * crash libhdf5 give an error naming the file while this process goes on. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "store/results.h"
#include "store/results_probe.h"

static double mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* fuzz/known/results/<name> or fuzz/corpus/results/<name> of the source tree. */
static void fuzz_file(const char *dir, const char *name, char *out, size_t n)
{
    const char *fx = getenv("QBLIND_FIXTURES");
    snprintf(out, n, "%s/../../fuzz/%s/results/%s", fx ? fx : "tests/fixtures", dir, name);
}

/* ---- spawning --------------------------------------------------------------- */

static void spawn_reports_exit_and_output(void **state)
{
    (void)state;
    char *argv[] = {"/bin/sh", "-c", "echo out; echo err >&2; exit 3", NULL};
    qb_results_probe_outcome o;
    qb_error err;
    assert_int_equal(qb_results_probe_spawn(argv, 10.0, &o, &err), 0);
    assert_int_equal(o.exited, 1);
    assert_int_equal(o.exit_code, 3);
    assert_int_equal(o.timed_out, 0);
    assert_string_equal(o.out, "out\n"); /* standard error is not captured */
}

static void spawn_reports_a_signal(void **state)
{
    (void)state;
    char *argv[] = {"/bin/sh", "-c", "kill -SEGV $$", NULL};
    qb_results_probe_outcome o;
    qb_error err;
    assert_int_equal(qb_results_probe_spawn(argv, 10.0, &o, &err), 0);
    assert_int_equal(o.exited, 0);
    assert_int_equal(o.sig, SIGSEGV);
    assert_int_equal(o.timed_out, 0);
}

static void spawn_kills_at_the_wall_clock_bound(void **state)
{
    (void)state;
    char *argv[] = {"/bin/sleep", "30", NULL};
    qb_results_probe_outcome o;
    qb_error err;
    double t0 = mono();
    assert_int_equal(qb_results_probe_spawn(argv, 0.3, &o, &err), 0);
    double dt = mono() - t0;
    assert_int_equal(o.timed_out, 1);
    assert_int_equal(o.exited, 0);
    assert_int_equal(o.sig, SIGKILL);
    assert_true(dt >= 0.3 && dt < 5.0);
}

static void spawn_passes_no_descriptor(void **state)
{
    (void)state;
    int fd = open("/dev/null", O_RDONLY); /* no O_CLOEXEC: would be inherited */
    assert_true(fd > 2);
    char script[128];
    snprintf(script, sizeof script, "[ -e /proc/self/fd/%d ] && echo leaked || echo closed", fd);
    char *argv[] = {"/bin/sh", "-c", script, NULL};
    qb_results_probe_outcome o;
    qb_error err;
    assert_int_equal(qb_results_probe_spawn(argv, 10.0, &o, &err), 0);
    close(fd);
    assert_string_equal(o.out, "closed\n");
}

/* With SIGCHLD ignored the kernel reaps the child itself: its output is
 * still collected, and the loss of its status is said. */
static void spawn_with_sigchld_ignored(void **state)
{
    (void)state;
    char *argv[] = {"/bin/sh", "-c", "echo out", NULL};
    qb_results_probe_outcome o;
    qb_error err;
    void (*old)(int) = signal(SIGCHLD, SIG_IGN);
    int rc = qb_results_probe_spawn(argv, 10.0, &o, &err);
    signal(SIGCHLD, old);
    assert_int_equal(rc, 0);
    assert_int_equal(o.reaped_elsewhere, 1);
    assert_int_equal(o.timed_out, 0);
    assert_string_equal(o.out, "out\n");
}

static void spawn_of_a_missing_program_fails(void **state)
{
    (void)state;
    char *argv[] = {"/nonexistent/qblind-probe", NULL};
    qb_results_probe_outcome o;
    qb_error err;
    assert_int_equal(qb_results_probe_spawn(argv, 10.0, &o, &err), -1);
    assert_non_null(strstr(err.msg, "/nonexistent/qblind-probe"));
}

static void timeout_grows_with_the_file(void **state)
{
    (void)state;
    assert_true(qb_results_probe_timeout(0) == 60.0);
    assert_true(qb_results_probe_timeout(200000000) == 160.0);
}

/* ---- the probe ------------------------------------------------------------------ */

static const unsigned ALL = QB_RESULTS_PROBE_ROWS | QB_RESULTS_PROBE_ATTRS |
                            QB_RESULTS_PROBE_DETAILS;

static void a_good_file_passes(void **state)
{
    (void)state;
    char path[1024];
    fuzz_file("corpus", "tiny", path, sizeof path); /* written by qblind run; has /details */
    qb_error err;
    for (unsigned parts = 1; parts <= ALL; parts++)
        if (qb_results_probe(path, parts, &err)) fail_msg("parts %u: %s", parts, err.msg);
}

static void what_is_not_a_regular_file_is_left_to_the_caller(void **state)
{
    (void)state;
    qb_error err;
    char dir[] = "/tmp/qblind-probe-XXXXXX";
    assert_non_null(mkdtemp(dir));
    assert_int_equal(qb_results_probe("/nonexistent/r.h5", ALL, &err), 0);
    assert_int_equal(qb_results_probe(dir, ALL, &err), 0);
    rmdir(dir);
}

static void a_refused_file_gives_the_readers_own_error(void **state)
{
    (void)state;
    char path[] = "/tmp/qblind-probe-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "not an HDF5 file\n", 17), 17);
    close(fd);
    qb_error here, probed;
    qb_task_row *rows = NULL;
    size_t n = 0;
    assert_int_equal(qb_results_read(path, &rows, &n, NULL, &here), -1);
    assert_int_equal(qb_results_probe(path, ALL, &probed), -1);
    assert_string_equal(probed.msg, here.msg);
    assert_string_equal(probed.src_file, here.src_file);
    assert_int_equal(probed.src_line, here.src_line);
    unlink(path);
}

/* Every input of fuzz/known/results/ crashed libhdf5 or over-read inside
 * it when read in process (fuzz/known/README.md). Checked in the child,
 * each gives an error naming the file and this process goes on. In a
 * release build, hdf5_attr_decode_overflow over-reads without faulting
 * and reads as a file (nothing can see that without instrumentation);
 * under ASan the child sees that one too. */
static void the_known_crashers_give_an_error_naming_the_file(void **state)
{
    (void)state;
    static const struct {
        const char *name;
        int release_fails;
    } known[] = {
        {"hdf5_dtype_decode_overflow", 1}, {"hdf5_dtype_calloc_2gib", 1},
        {"hdf5_attr_decode_segv", 1},      {"hdf5_conv_struct_segv", 1},
        {"hdf5_attr_decode_overflow", 0},
    };
    int asan = 0;
#if defined(__SANITIZE_ADDRESS__)
    asan = 1;
#endif
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        char path[1024];
        fuzz_file("known", known[i].name, path, sizeof path);
        assert_int_equal(access(path, R_OK), 0);
        qb_error err;
        int rc = qb_results_probe(path, ALL, &err);
        if (known[i].release_fails || asan) {
            if (rc != -1) fail_msg("%s: the probe passed", known[i].name);
            if (!strstr(err.msg, path)) fail_msg("%s: %s", known[i].name, err.msg);
        }
        print_message("%s: %s\n", known[i].name, rc ? err.msg : "read without a fault");
    }
}

int main(int argc, char **argv)
{
    if (argc > 1 && !strcmp(argv[1], QB_RESULTS_PROBE_COMMAND))
        return qb_results_probe_main(argc - 1, argv + 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(spawn_reports_exit_and_output),
        cmocka_unit_test(spawn_reports_a_signal),
        cmocka_unit_test(spawn_kills_at_the_wall_clock_bound),
        cmocka_unit_test(spawn_passes_no_descriptor),
        cmocka_unit_test(spawn_with_sigchld_ignored),
        cmocka_unit_test(spawn_of_a_missing_program_fails),
        cmocka_unit_test(timeout_grows_with_the_file),
        cmocka_unit_test(a_good_file_passes),
        cmocka_unit_test(what_is_not_a_regular_file_is_left_to_the_caller),
        cmocka_unit_test(a_refused_file_gives_the_readers_own_error),
        cmocka_unit_test(the_known_crashers_give_an_error_naming_the_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
