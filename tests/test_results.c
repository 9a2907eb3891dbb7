/* The results file (store/results.h): create, record, flush, reopen and
 * resume by task id, a different spec refused, --force, broken and foreign
 * files refused with the file named, h5py readability, and rows surviving
 * a SIGKILL of the writer after a flush.
 *
 * Runs as a plain process: MPI_Init makes it a singleton. The crash and
 * full-disk cases re-execute this binary (/proc/self/exe) as a child with
 * --crash-child / --fsize-child, so the child is a fresh MPI singleton of
 * its own rather than a fork of an MPI process. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <hdf5.h>
#include <mpi.h>

#include "store/results.h"
#include "tests/testutil.h"
#include "tests/testutil_results.h"

#define HASH_A 0x0123456789abcdefull
#define HASH_B 0xfedcba9876543210ull

/* ---- helpers ------------------------------------------------------------ */

/* Task k of a made-up sweep: its id depends on k only, never on a position. */
static uint64_t task_id_of(size_t k)
{
    uint64_t z = (uint64_t)k * 0x9e3779b97f4a7c15ull + 0x632be59bd9b4e019ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    return z ^ (z >> 31);
}

static void pending_row(qb_task_row *row, size_t k)
{
    static const char *const prec[] = {"fp32", "int8", "int4", "int8-pc-away"};
    qb_task_row_init(row);
    row->task_id = task_id_of(k);
    row->model_id = task_id_of(k / 3 + 1000000);
    snprintf(row->dataset, sizeof row->dataset, "%s", k % 5 ? "fashion-mnist" : "synthetic");
    row->seed = (int64_t)(k / 3);
    snprintf(row->trigger, sizeof row->trigger, "%s", k % 2 ? "square" : "clean");
    snprintf(row->precision, sizeof row->precision, "%s", prec[k % 4]);
    snprintf(row->mitigation, sizeof row->mitigation, "none");
    snprintf(row->defense, sizeof row->defense, "none");
}

/* The status finished_row gives task k. */
static uint8_t finished_status(size_t k)
{
    return k % 7 == 3 ? QB_STATUS_FAILED : k % 7 == 5 ? QB_STATUS_INVALID : QB_STATUS_OK;
}

/* The finished row of task k (status by k). */
static void finished_row(qb_task_row *row, size_t k)
{
    pending_row(row, k);
    row->status = finished_status(k);
    if (row->status == QB_STATUS_FAILED)
        snprintf(row->message, sizeof row->message, "task %zu: training diverged (loss NaN)", k);
    row->ca_quant = 0.5 + (double)k / 8192.0;
    row->asr_quant = 1.0 - (double)k / 16384.0;
    row->ca_mitig = k % 2 ? 0.25 : NAN;
    row->detected = (int32_t)(k % 4) - 1;
    row->t_model = 1.5;
    row->t_quant = 0.25;
    row->t_total = 2.0 + (double)k;
    row->rank = (int32_t)(k % 3);
    snprintf(row->host, sizeof row->host, "node-%zu.cluster.example", k % 2);
    row->finished_at = 1.7e9 + (double)k;
    row->attempts = 1;
}

static int same_double(double a, double b)
{
    return (isnan(a) && isnan(b)) || a == b;
}

static void assert_row_finished_as(const qb_task_row *got, size_t k)
{
    qb_task_row want;
    finished_row(&want, k);
    qb_test_rows_assert_same(got, &want);
    assert_true(same_double(got->t_model, want.t_model));
    assert_true(same_double(got->t_total, want.t_total));
    assert_true(same_double(got->t_mitig, want.t_mitig));
    assert_int_equal(got->rank, want.rank);
    assert_string_equal(got->host, want.host);
    assert_true(same_double(got->finished_at, want.finished_at));
    assert_int_equal(got->attempts, want.attempts);
}

static void assert_row_pending_as(const qb_task_row *got, size_t k)
{
    qb_task_row want;
    pending_row(&want, k);
    assert_true(got->task_id == want.task_id);
    assert_string_equal(got->precision, want.precision);
    assert_int_equal(got->status, QB_STATUS_PENDING);
    assert_true(isnan(got->ca_quant));
    assert_int_equal(got->detected, QB_DETECTED_NA);
}

/* A caller's task list: tasks[i] is the sweep task k of the caller's row i. */
typedef struct task_list {
    const size_t *tasks;
    size_t n;
} task_list;

static int fill_fn(void *ctx, size_t index, qb_task_row *row, qb_error *err)
{
    (void)err;
    const task_list *l = ctx;
    pending_row(row, l->tasks[index]);
    return 0;
}

static const qb_kv PROVENANCE[] = {
    {"qblind_version", "0.1.0-test"},
    {"hdf5_version", "1.10.8"},
    {"mpi_version", "Open MPI v4.1.4"},
};

static qb_results_config config(const char *path, uint64_t hash, int force)
{
    return (qb_results_config){
        .path = path,
        .spec_text = "dataset: fashion-mnist\nseed: {range: [0, 3]}\n",
        .spec_hash = hash,
        .force = force,
        .n_ranks = 1,
        .provenance = PROVENANCE,
        .n_provenance = sizeof PROVENANCE / sizeof PROVENANCE[0],
    };
}

/* Open for the tasks list[0..n); status (n bytes) out. */
static int open_list(qb_results **r, const char *path, uint64_t hash, int force, const size_t *list,
                     size_t n, uint8_t *status, qb_error *err)
{
    task_list l = {list, n};
    qb_results_config cfg = config(path, hash, force);
    return qb_results_create_or_open_fn(r, &cfg, n, fill_fn, &l, status, err);
}

static size_t *iota(size_t first, size_t n)
{
    size_t *a = malloc(n * sizeof *a);
    assert_non_null(a);
    for (size_t i = 0; i < n; i++) a[i] = first + i;
    return a;
}

static void shuffle(size_t *a, size_t n, uint64_t seed)
{
    for (size_t i = n; i > 1; i--) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        size_t j = (size_t)((seed >> 33) % i);
        size_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

static uint8_t *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    long n = ftell(f);
    assert_true(n >= 0);
    rewind(f);
    uint8_t *buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    *len = (size_t)n;
    return buf;
}

/* Row of `rows` with this task id, or NULL. */
static const qb_task_row *find_row(const qb_task_row *rows, size_t n, uint64_t id)
{
    for (size_t i = 0; i < n; i++)
        if (rows[i].task_id == id) return &rows[i];
    return NULL;
}

/* Record task list[i] finished for each i in idx. */
static void record_tasks(qb_results *r, const size_t *list, const size_t *idx, size_t n)
{
    qb_error err;
    for (size_t j = 0; j < n; j++) {
        qb_task_row row;
        finished_row(&row, list[idx[j]]);
        if (qb_results_record(r, idx[j], &row, &err) != 0) fail_msg("%s", err.msg);
    }
}

/* ---- create, record, reopen -------------------------------------------- */

/* 2500 tasks: more than one write batch and many chunks. */
#define N_BIG 2500

static void test_create_record_reopen(void **state)
{
    const qb_test_results_fx *fx = *state;
    const char *path = fx->path;
    size_t *list = iota(0, N_BIG);
    uint8_t *status = malloc(N_BIG);
    qb_results *r;
    qb_error err;

    if (open_list(&r, path, HASH_A, 0, list, N_BIG, status, &err) != 0) fail_msg("%s", err.msg);
    assert_int_equal(qb_results_n_tasks(r), N_BIG);
    for (size_t i = 0; i < N_BIG; i++) assert_int_equal(status[i], QB_STATUS_PENDING);
    /* Every 3rd task finished. */
    size_t n_done = 0, *done = iota(0, N_BIG);
    for (size_t i = 0; i < N_BIG; i += 3) done[n_done++] = i;
    record_tasks(r, list, done, n_done);
    assert_int_equal(qb_results_status(r, 3), QB_STATUS_FAILED);
    assert_int_equal(qb_results_status(r, 4), QB_STATUS_PENDING);
    assert_int_equal(qb_results_flush(r, &err), 0);
    /* `qblind status` while the run has the file open: the serial reader
     * (POSIX driver) sees every flushed row. */
    size_t live[QB_STATUS_COUNT];
    if (qb_results_count(path, live, NULL, &err) != 0) fail_msg("%s", err.msg);
    assert_int_equal(live[QB_STATUS_PENDING], N_BIG - n_done);
    assert_int_equal(live[QB_STATUS_OK] + live[QB_STATUS_FAILED] + live[QB_STATUS_INVALID], n_done);
    qb_task_row row;
    assert_int_equal(qb_results_get_row(r, 3, &row, &err), 0);
    assert_row_finished_as(&row, 3);
    assert_int_equal(qb_results_get_row(r, 4, &row, &err), 0);
    assert_row_pending_as(&row, 4);
    /* Wrong id, unfinished status, index out of range: refused, nothing written. */
    finished_row(&row, 5);
    assert_int_equal(qb_results_record(r, 4, &row, &err), -1);
    assert_non_null(strstr(err.msg, "expected"));
    finished_row(&row, 4);
    row.status = QB_STATUS_PENDING;
    assert_int_equal(qb_results_record(r, 4, &row, &err), -1);
    assert_non_null(strstr(err.msg, "status"));
    row.status = QB_STATUS_OK;
    row.detected = 7;
    assert_int_equal(qb_results_record(r, 4, &row, &err), -1);
    assert_int_equal(qb_results_record(r, N_BIG, &row, &err), -1);
    assert_int_equal(qb_results_close(r, &err), 0);

    /* The serial reader sees what was recorded, in file order. */
    qb_task_row *rows;
    size_t n;
    uint64_t hash;
    if (qb_results_read(path, &rows, &n, &hash, &err) != 0) fail_msg("%s", err.msg);
    assert_int_equal(n, N_BIG);
    assert_true(hash == HASH_A);
    for (size_t i = 0; i < N_BIG; i++) {
        if (i % 3 == 0) assert_row_finished_as(&rows[i], i);
        else assert_row_pending_as(&rows[i], i);
    }
    free(rows);
    size_t counts[QB_STATUS_COUNT];
    assert_int_equal(qb_results_count(path, counts, &hash, &err), 0);
    size_t want[QB_STATUS_COUNT] = {0};
    for (size_t i = 0; i < N_BIG; i++) {
        qb_task_row fr;
        finished_row(&fr, i);
        want[i % 3 == 0 ? fr.status : QB_STATUS_PENDING]++;
    }
    for (int s = 0; s < QB_STATUS_COUNT; s++) assert_int_equal(counts[s], want[s]);

    /* Resume with the caller's list shuffled: matched by id, not position. */
    shuffle(list, N_BIG, 42);
    if (open_list(&r, path, HASH_A, 0, list, N_BIG, status, &err) != 0) fail_msg("%s", err.msg);
    size_t n_pending = 0;
    for (size_t i = 0; i < N_BIG; i++) {
        qb_task_row fr;
        finished_row(&fr, list[i]);
        assert_int_equal(status[i], list[i] % 3 == 0 ? fr.status : QB_STATUS_PENDING);
        if (status[i] == QB_STATUS_PENDING) done[n_pending++] = i;
    }
    assert_int_equal(n_pending, N_BIG - n_done);
    assert_int_equal(qb_results_get_row(r, 0, &row, &err), 0);
    assert_true(row.task_id == task_id_of(list[0]));
    record_tasks(r, list, done, n_pending); /* the reissued ones */
    assert_int_equal(qb_results_close(r, &err), 0);

    if (qb_results_read(path, &rows, &n, &hash, &err) != 0) fail_msg("%s", err.msg);
    assert_int_equal(n, N_BIG); /* no row added: every task had one */
    for (size_t i = 0; i < N_BIG; i++) assert_row_finished_as(&rows[i], i);
    free(rows);

    free(done);
    free(status);
    free(list);
}

/* The plain-array entry point, details, and a task list that grew under
 * the same hash (new tasks get rows; none is lost). */
static void test_rows_api_details_and_new_tasks(void **state)
{
    const qb_test_results_fx *fx = *state;
    const char *path = fx->path;
    qb_task_row rows[8];
    for (size_t i = 0; i < 8; i++) pending_row(&rows[i], i);
    qb_results_config cfg = config(path, HASH_A, 0);
    qb_results *r;
    qb_error err;
    uint8_t status[8];
    if (qb_results_create_or_open(&r, &cfg, rows, 5, status, &err) != 0) fail_msg("%s", err.msg);
    size_t list[8] = {0, 1, 2, 3, 4, 5, 6, 7}, idx[] = {1, 4};
    record_tasks(r, list, idx, 2);
    double scores[5] = {0.5, -1.25, 3.0, NAN, 1e300};
    assert_int_equal(qb_results_write_detail(r, 1, "nc", scores, 5, &err), 0);
    assert_int_equal(qb_results_write_detail(r, 4, "nc", NULL, 0, &err), 0);
    /* A rerun replaces the array. */
    assert_int_equal(qb_results_write_detail(r, 1, "nc", scores, 3, &err), 0);
    assert_int_equal(qb_results_write_detail(r, 1, "../x", scores, 3, &err), -1);
    assert_non_null(strstr(err.msg, "detail name"));
    assert_int_equal(qb_results_close(r, &err), 0);

    /* Same hash, three more tasks: appended as pending. */
    if (qb_results_create_or_open(&r, &cfg, rows, 8, status, &err) != 0) fail_msg("%s", err.msg);
    uint8_t want[8] = {0, QB_STATUS_OK, 0, 0, QB_STATUS_OK, 0, 0, 0};
    assert_memory_equal(status, want, 8);
    size_t idx2[] = {6};
    record_tasks(r, list, idx2, 1);
    assert_int_equal(qb_results_close(r, &err), 0);

    qb_task_row *got;
    size_t n;
    assert_int_equal(qb_results_read(path, &got, &n, NULL, &err), 0);
    assert_int_equal(n, 8);
    assert_row_finished_as(find_row(got, n, task_id_of(6)), 6);
    assert_row_finished_as(find_row(got, n, task_id_of(4)), 4);
    assert_row_pending_as(find_row(got, n, task_id_of(7)), 7);
    free(got);

    double *v;
    assert_int_equal(qb_results_read_detail(path, task_id_of(1), "nc", &v, &n, &err), 0);
    assert_int_equal(n, 3);
    assert_true(v[0] == 0.5 && v[1] == -1.25 && v[2] == 3.0);
    free(v);
    assert_int_equal(qb_results_read_detail(path, task_id_of(4), "nc", &v, &n, &err), 0);
    assert_int_equal(n, 0);
    assert_null(v);
    assert_int_equal(qb_results_read_detail(path, task_id_of(2), "nc", &v, &n, &err), -1);
    assert_non_null(strstr(err.msg, path));
    assert_int_equal(qb_results_read_detail(path, task_id_of(2), "ac", &v, &n, &err), -1);

    /* Rows the caller got wrong. */
    pending_row(&rows[7], 6); /* a duplicate id */
    assert_int_equal(qb_results_create_or_open(&r, &cfg, rows, 8, status, &err), -1);
    assert_non_null(strstr(err.msg, "appears twice"));
    assert_null(r);
    pending_row(&rows[7], 7);
    memset(rows[7].defense, 'x', sizeof rows[7].defense); /* no NUL */
    assert_int_equal(qb_results_create_or_open(&r, &cfg, rows, 8, status, &err), -1);
    assert_non_null(strstr(err.msg, "defense"));
    qb_kv bad = {"spec_hash", "x"};
    cfg.provenance = &bad;
    cfg.n_provenance = 1;
    pending_row(&rows[7], 7);
    assert_int_equal(qb_results_create_or_open(&r, &cfg, rows, 8, status, &err), -1);
    assert_non_null(strstr(err.msg, "reserved"));

}

/* ---- another spec -------------------------------------------------------- */

static void test_different_spec_refused(void **state)
{
    const qb_test_results_fx *fx = *state;
    const char *path = fx->path;
    size_t *list = iota(0, 10);
    qb_results *r;
    qb_error err;
    if (open_list(&r, path, HASH_A, 0, list, 10, NULL, &err) != 0) fail_msg("%s", err.msg);
    assert_int_equal(qb_results_close(r, &err), 0);
    size_t len0, len1;
    uint8_t *before = slurp(path, &len0);

    assert_int_equal(open_list(&r, path, HASH_B, 0, list, 10, NULL, &err), -1);
    assert_null(r);
    char want[512];
    snprintf(want, sizeof want, "results file %s was written from a different spec "
             "(hash 0123456789abcdef, this spec fedcba9876543210); use --force", path);
    if (!strstr(err.msg, want)) fail_msg("message: %s", err.msg);
    uint8_t *after = slurp(path, &len1);
    assert_int_equal(len0, len1); /* untouched */
    assert_memory_equal(before, after, len0);
    free(before);
    free(after);
    free(list);
}

static void test_force_keeps_finished_of_existing_tasks(void **state)
{
    const qb_test_results_fx *fx = *state;
    const char *path = fx->path;
    size_t *old = iota(0, 1500);
    qb_results *r;
    qb_error err;
    if (open_list(&r, path, HASH_A, 0, old, 1500, NULL, &err) != 0) fail_msg("%s", err.msg);
    size_t *done = iota(0, 1500);
    record_tasks(r, old, done, 1200); /* tasks 0..1199 finished */
    double s[2] = {1, 2};
    assert_int_equal(qb_results_write_detail(r, 1100, "ss", s, 2, &err), 0);
    assert_int_equal(qb_results_close(r, &err), 0);

    /* The new spec keeps tasks 1000..1499 and adds 1500..2199, shuffled. */
    size_t *list = iota(1000, 1200);
    shuffle(list, 1200, 7);
    uint8_t *status = malloc(1200);
    if (open_list(&r, path, HASH_B, 1, list, 1200, status, &err) != 0) fail_msg("%s", err.msg);
    size_t n_pending = 0;
    for (size_t i = 0; i < 1200; i++) {
        if (list[i] < 1200) {
            qb_task_row fr;
            finished_row(&fr, list[i]);
            assert_int_equal(status[i], fr.status);
        } else {
            assert_int_equal(status[i], QB_STATUS_PENDING);
            done[n_pending++] = i;
        }
    }
    assert_int_equal(n_pending, 1000);
    record_tasks(r, list, done, 10);
    assert_int_equal(qb_results_close(r, &err), 0);

    qb_task_row *rows;
    size_t n;
    uint64_t hash;
    if (qb_results_read(path, &rows, &n, &hash, &err) != 0) fail_msg("%s", err.msg);
    assert_true(hash == HASH_B);
    assert_int_equal(n, 1200); /* tasks 0..999 dropped */
    uint8_t *recorded = calloc(1200, 1);
    for (size_t j = 0; j < 10; j++) recorded[done[j]] = 1;
    for (size_t i = 0; i < n; i++) {
        assert_true(rows[i].task_id == task_id_of(list[i])); /* the caller's order */
        if (list[i] < 1200 || recorded[i]) assert_row_finished_as(&rows[i], list[i]);
        else assert_row_pending_as(&rows[i], list[i]);
    }
    free(recorded);
    free(rows);
    double *v;
    assert_int_equal(qb_results_read_detail(path, task_id_of(1100), "ss", &v, &n, &err), 0);
    assert_int_equal(n, 2);
    free(v);

    /* The file now belongs to the new spec: a plain resume works, the old
     * spec is refused. */
    if (open_list(&r, path, HASH_B, 0, list, 1200, status, &err) != 0) fail_msg("%s", err.msg);
    assert_int_equal(qb_results_close(r, &err), 0);
    assert_int_equal(open_list(&r, path, HASH_A, 0, old, 1500, status, &err), -1);
    assert_non_null(strstr(err.msg, "different spec"));

    free(status);
    free(list);
    free(done);
    free(old);
}

/* ---- interrupted operations ----------------------------------------------- */

/* What a crash leaves at three points, made by hand with HDF5: a --force
 * rebuild stopped before the swap (/tasks and a partial /tasks.new) or in
 * the middle of it (only /tasks.new), and an extension of /tasks whose new
 * rows were never written (zero rows: id 0, pending). */
static void test_interrupted_operations_recovered(void **state)
{
    const qb_test_results_fx *fx = *state;
    const char *path = fx->path;
    size_t *list = iota(0, 7);
    qb_results *r;
    qb_error err;
    uint8_t status[7];
    if (open_list(&r, path, HASH_A, 0, list, 5, NULL, &err) != 0) fail_msg("%s", err.msg);
    size_t idx[] = {0, 2};
    record_tasks(r, list, idx, 2);
    assert_int_equal(qb_results_close(r, &err), 0);

    /* Swap interrupted after removing /tasks: /tasks.new is complete. */
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    assert_true(H5Lmove(f, "tasks", f, "tasks.new", H5P_DEFAULT, H5P_DEFAULT) >= 0);
    assert_true(H5Fclose(f) >= 0);
    qb_task_row *rows;
    size_t n;
    if (qb_results_read(path, &rows, &n, NULL, &err) != 0) fail_msg("%s", err.msg);
    assert_int_equal(n, 5);
    free(rows);
    if (open_list(&r, path, HASH_A, 0, list, 5, status, &err) != 0) fail_msg("%s", err.msg);
    assert_int_equal(status[2], QB_STATUS_OK);
    assert_int_equal(qb_results_close(r, &err), 0);

    /* Rebuild interrupted before the swap: a stray /tasks.new is dropped. */
    f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    assert_true(H5Lexists(f, "tasks", H5P_DEFAULT) > 0);
    assert_true(H5Ocopy(f, "tasks", f, "tasks.new", H5P_DEFAULT, H5P_DEFAULT) >= 0);
    /* ... and /tasks extended by two rows that were never written. */
    hid_t d = H5Dopen2(f, "tasks", H5P_DEFAULT);
    hsize_t dims = 7;
    assert_true(H5Dset_extent(d, &dims) >= 0);
    H5Dclose(d);
    assert_true(H5Fclose(f) >= 0);

    /* Two more tasks: they take the zero rows instead of growing the table. */
    if (open_list(&r, path, HASH_A, 0, list, 7, status, &err) != 0) fail_msg("%s", err.msg);
    uint8_t want[7] = {QB_STATUS_OK, 0, QB_STATUS_OK, 0, 0, 0, 0};
    assert_memory_equal(status, want, 7);
    size_t idx2[] = {5, 6};
    record_tasks(r, list, idx2, 2);
    assert_int_equal(qb_results_close(r, &err), 0);
    if (qb_results_read(path, &rows, &n, NULL, &err) != 0) fail_msg("%s", err.msg);
    assert_int_equal(n, 7);
    for (size_t k = 0; k < 7; k++) {
        const qb_task_row *row = find_row(rows, n, task_id_of(k));
        assert_non_null(row);
        if (k == 0 || k == 2 || k >= 5) assert_row_finished_as(row, k);
        else assert_row_pending_as(row, k);
    }
    free(rows);
    f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    assert_int_equal(H5Lexists(f, "tasks.new", H5P_DEFAULT), 0);
    assert_true(H5Fclose(f) >= 0);

    free(list);
}

/* ---- broken and foreign files -------------------------------------------- */

/* Both the writer and the reader refuse `path`, naming it; the file is
 * not modified. */
static void assert_refused(const char *path, const char *needle)
{
    size_t len0, len1;
    uint8_t *before = slurp(path, &len0);
    size_t list[3] = {0, 1, 2};
    qb_results *r = NULL;
    qb_error err;
    assert_int_equal(open_list(&r, path, HASH_A, 1, list, 3, NULL, &err), -1);
    assert_null(r);
    if (!strstr(err.msg, path) || (needle && !strstr(err.msg, needle)))
        fail_msg("open %s: message \"%s\" lacks the path or \"%s\"", path, err.msg, needle);
    qb_task_row *rows;
    size_t n;
    assert_int_equal(qb_results_read(path, &rows, &n, NULL, &err), -1);
    if (!strstr(err.msg, path) || (needle && !strstr(err.msg, needle)))
        fail_msg("read %s: message \"%s\" lacks the path or \"%s\"", path, err.msg, needle);
    size_t counts[QB_STATUS_COUNT];
    assert_int_equal(qb_results_count(path, counts, NULL, &err), -1);
    uint8_t *after = slurp(path, &len1);
    assert_int_equal(len0, len1);
    assert_memory_equal(before, after, len0);
    free(before);
    free(after);
}

/* An HDF5 file made without qblind: root attributes as given (version < 0:
 * none), and /tasks with `ncols` columns named like qblind's, all float64
 * (ncols 0: an int dataset). */
static void make_foreign(const char *path, int version, int ncols)
{
    static const char *const names[] = {
        "task_id", "model_id", "dataset", "seed", "trigger", "precision", "mitigation",
        "defense", "status", "message", "ca_quant", "asr_quant", "ca_mitig", "asr_mitig",
        "detected", "t_model", "t_quant", "t_mitig", "t_defense", "t_total", "rank", "host",
        "finished_at", "attempts"};
    hid_t f = H5Fcreate(path, H5F_ACC_TRUNC, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t scalar = H5Screate(H5S_SCALAR);
    if (version >= 0) {
        hid_t a = H5Acreate2(f, "format_version", H5T_STD_I32LE, scalar, H5P_DEFAULT, H5P_DEFAULT);
        int32_t v = version;
        assert_true(H5Awrite(a, H5T_NATIVE_INT32, &v) >= 0);
        H5Aclose(a);
        uint64_t h = HASH_A;
        a = H5Acreate2(f, "spec_hash_u64", H5T_STD_U64LE, scalar, H5P_DEFAULT, H5P_DEFAULT);
        assert_true(H5Awrite(a, H5T_NATIVE_UINT64, &h) >= 0);
        H5Aclose(a);
    }
    hsize_t dims = 4;
    hid_t space = H5Screate_simple(1, &dims, NULL);
    hid_t t;
    if (ncols == 0) {
        t = H5Tcopy(H5T_STD_I32LE);
    } else {
        t = H5Tcreate(H5T_COMPOUND, (size_t)ncols * 8);
        for (int i = 0; i < ncols; i++) H5Tinsert(t, names[i], (size_t)i * 8, H5T_IEEE_F64LE);
    }
    hid_t d = H5Dcreate2(f, "tasks", t, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    assert_true(d >= 0);
    H5Dclose(d);
    H5Tclose(t);
    H5Sclose(space);
    H5Sclose(scalar);
    assert_true(H5Fclose(f) >= 0);
}

static void test_broken_and_foreign_files_refused(void **state)
{
    const qb_test_results_fx *fx = *state;
    const char *dir = fx->dir;
    qb_error err;

    /* A good file to break. */
    char *good = qb_test_path_join(dir, "good.h5");
    size_t *list = iota(0, 300);
    qb_results *r;
    if (open_list(&r, good, HASH_A, 0, list, 300, NULL, &err) != 0) fail_msg("%s", err.msg);
    record_tasks(r, list, list, 100);
    assert_int_equal(qb_results_close(r, &err), 0);
    size_t len;
    uint8_t *bytes = slurp(good, &len);

    char *p = qb_test_path_join(dir, "truncated.h5");
    qb_test_write_file(p, bytes, len / 2);
    assert_refused(p, "H5Fopen");
    free(p);

    p = qb_test_path_join(dir, "truncated-tail.h5"); /* loses only the last bytes */
    qb_test_write_file(p, bytes, len - 100);
    assert_refused(p, NULL);
    free(p);

    p = qb_test_path_join(dir, "garbage.h5");
    uint64_t x = 88172645463325252ull;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        bytes[i] = (uint8_t)x;
    }
    qb_test_write_file(p, bytes, len);
    assert_refused(p, "H5Fopen");
    free(p);

    p = qb_test_path_join(dir, "empty.h5");
    qb_test_write_file(p, "", 0);
    assert_refused(p, NULL);
    free(p);

    p = qb_test_path_join(dir, "foreign-noattr.h5");
    make_foreign(p, -1, 24);
    assert_refused(p, "not a qblind results file (no format_version");
    free(p);

    p = qb_test_path_join(dir, "foreign-version.h5");
    make_foreign(p, 2, 24);
    assert_refused(p, "format_version 2");
    free(p);

    p = qb_test_path_join(dir, "foreign-2cols.h5");
    make_foreign(p, 1, 2);
    assert_refused(p, "/tasks has 2 columns, expected 24");
    free(p);

    p = qb_test_path_join(dir, "foreign-types.h5");
    make_foreign(p, 1, 24);
    assert_refused(p, "column 'task_id' of /tasks has a different type (float of 8 bytes, "
                      "expected integer of 8)");
    free(p);

    p = qb_test_path_join(dir, "foreign-ints.h5");
    make_foreign(p, 1, 0);
    assert_refused(p, "/tasks is not a table");
    free(p);

    /* A directory that does not exist: creation fails, naming the file. */
    p = qb_test_path_join(dir, "no/such/dir/res.h5");
    assert_int_equal(open_list(&r, p, HASH_A, 0, list, 3, NULL, &err), -1);
    assert_non_null(strstr(err.msg, p));
    free(p);

    free(bytes);
    free(list);
    free(good);
}

/* ---- h5py and h5dump --------------------------------------------------------- */

static void test_readable_by_h5py_and_h5dump(void **state)
{
    if (system("/usr/bin/python3 -c 'import h5py, numpy' >/dev/null 2>&1") != 0) {
        print_message("skipped: /usr/bin/python3 has no h5py (apt-get install python3-h5py)\n");
        skip();
    }
    const qb_test_results_fx *fx = *state;
    const char *dir = fx->dir, *path = fx->path;
    size_t *list = iota(0, 6);
    qb_results *r;
    qb_error err;
    if (open_list(&r, path, HASH_A, 0, list, 6, NULL, &err) != 0) fail_msg("%s", err.msg);
    size_t idx[] = {1, 3};
    record_tasks(r, list, idx, 2);
    double s[3] = {0.25, 0.5, 0.75};
    assert_int_equal(qb_results_write_detail(r, 1, "strip", s, 3, &err), 0);
    assert_int_equal(qb_results_close(r, &err), 0);

    qb_task_row want1, want3;
    finished_row(&want1, 1);
    finished_row(&want3, 3);
    /* The snippet of store/results.h, minus pandas (not a dependency). */
    char script[4096];
    snprintf(script, sizeof script,
             "import h5py, numpy as np, math, sys\n"
             "with h5py.File(sys.argv[1], 'r') as f:\n"
             "    t = f['/tasks'][:]\n"
             "    a = dict(f.attrs)\n"
             "    d = f['/details/strip/%016" PRIx64 "'][:]\n"
             "cols = {n: (np.char.decode(t[n], 'utf-8') if t[n].dtype.kind == 'S' else t[n]) "
             "for n in t.dtype.names}\n"
             "assert len(t) == 6, len(t)\n"
             "assert t.dtype.itemsize == 544, t.dtype.itemsize\n"
             "assert cols['dataset'][0] == 'synthetic' and cols['dataset'][1] == 'fashion-mnist'\n"
             "assert t['dataset'][1] == b'fashion-mnist'\n"
             "assert cols['precision'][3] == 'int8-pc-away', cols['precision'][3]\n"
             "assert list(t['status']) == [0, 1, 0, 3, 0, 0], list(t['status'])\n"
             "assert cols['message'][3] == %s\n"
             "assert t['ca_quant'][1] == %.17g and math.isnan(t['ca_quant'][0])\n"
             "assert t['detected'][1] == %d and t['detected'][0] == -1\n"
             "assert '{:016x}'.format(t['task_id'][1]) == '%016" PRIx64 "'\n"
             "assert cols['host'][1] == 'node-1.cluster.example'\n"
             "assert a['spec_hash'] == '0123456789abcdef', a['spec_hash']\n"
             "assert a['spec_hash_u64'] == 0x0123456789abcdef\n"
             "assert a['format_version'] == 1 and a['n_ranks'] == 1\n"
             "assert a['qblind_version'] == '0.1.0-test'\n"
             "assert a['spec_text'].startswith('dataset: fashion-mnist')\n"
             "assert a['started_at'].endswith('Z') and 'updated_at' in a\n"
             "assert list(d) == [0.25, 0.5, 0.75]\n",
             task_id_of(1), "'task 3: training diverged (loss NaN)'", want1.ca_quant,
             want1.detected, task_id_of(1));
    char *spath = qb_test_path_join(dir, "check.py");
    qb_test_write_file(spath, script, strlen(script));
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 %s %s", spath, path);
    assert_int_equal(system(cmd), 0);
    (void)want3;

    if (system("h5dump --version >/dev/null 2>&1") == 0) {
        snprintf(cmd, sizeof cmd, "h5dump -d /tasks -s 3 -c 1 %s | grep -q 'task 3: training diverged'",
                 path);
        assert_int_equal(system(cmd), 0);
        snprintf(cmd, sizeof cmd, "h5dump -H %s | grep -q 'H5T_ENUM'", path);
        assert_int_equal(system(cmd), 0);
    }
    free(spath);
    free(list);
}

/* ---- a crash after flush --------------------------------------------------- */

#define CRASH_TASKS 40
#define CRASH_FLUSHED 25 /* tasks 0..24 recorded and flushed, 25..29 not flushed */
#define CRASH_RECORDED 30

/* Child: open (create), record, flush, record more, SIGKILL itself. */
static int crash_child(const char *path)
{
    size_t list[CRASH_TASKS];
    for (size_t i = 0; i < CRASH_TASKS; i++) list[i] = i;
    qb_results *r;
    qb_error err;
    if (open_list(&r, path, HASH_A, 0, list, CRASH_TASKS, NULL, &err) != 0) {
        qb_error_print(&err);
        return 2;
    }
    for (size_t i = 0; i < CRASH_RECORDED; i++) {
        qb_task_row row;
        finished_row(&row, i);
        double s[2] = {(double)i, -(double)i};
        if ((i == 3 && qb_results_write_detail(r, i, "nc", s, 2, &err) != 0) ||
            qb_results_record(r, i, &row, &err) != 0) {
            qb_error_print(&err);
            return 3;
        }
        if (i + 1 == CRASH_FLUSHED && qb_results_flush(r, &err) != 0) {
            qb_error_print(&err);
            return 4;
        }
    }
    fflush(NULL);
    raise(SIGKILL); /* no close, no atexit: HDF5 never finishes the file */
    return 5;
}

/* Run this binary with `mode path`; returns the wait status. */
static int run_child(const char *mode, const char *path)
{
    return qb_test_run_self(mode, path, NULL);
}

static void test_flushed_rows_survive_sigkill(void **state)
{
    const qb_test_results_fx *fx = *state;
    const char *path = fx->path;
    int ws = run_child("--crash-child", path);
    if (!WIFSIGNALED(ws) || WTERMSIG(ws) != SIGKILL)
        fail_msg("crash child did not die of SIGKILL (status 0x%x)", ws);

    qb_task_row *rows;
    size_t n;
    qb_error err;
    if (qb_results_read(path, &rows, &n, NULL, &err) != 0) fail_msg("%s", err.msg);
    assert_int_equal(n, CRASH_TASKS);
    size_t unflushed_seen = 0;
    for (size_t i = 0; i < CRASH_TASKS; i++) {
        if (i < CRASH_FLUSHED) assert_row_finished_as(&rows[i], i);
        else if (rows[i].status != QB_STATUS_PENDING) {
            assert_true(i < CRASH_RECORDED);
            assert_row_finished_as(&rows[i], i); /* a row is whole or absent */
            unflushed_seen++;
        }
    }
    print_message("after SIGKILL: %d flushed rows present, %zu of %d unflushed rows present\n",
                  CRASH_FLUSHED, unflushed_seen, CRASH_RECORDED - CRASH_FLUSHED);
    free(rows);
    double *v;
    assert_int_equal(qb_results_read_detail(path, task_id_of(3), "nc", &v, &n, &err), 0);
    assert_int_equal(n, 2);
    assert_true(v[0] == 3.0 && v[1] == -3.0);
    free(v);

    /* Resume: the flushed tasks are finished, the rest reissued. */
    size_t list[CRASH_TASKS];
    for (size_t i = 0; i < CRASH_TASKS; i++) list[i] = CRASH_TASKS - 1 - i;
    uint8_t status[CRASH_TASKS];
    qb_results *r;
    if (open_list(&r, path, HASH_A, 0, list, CRASH_TASKS, status, &err) != 0)
        fail_msg("%s", err.msg);
    size_t idx[CRASH_TASKS], k = 0;
    for (size_t i = 0; i < CRASH_TASKS; i++) {
        if (list[i] < CRASH_FLUSHED) assert_int_not_equal(status[i], QB_STATUS_PENDING);
        if (status[i] == QB_STATUS_PENDING) idx[k++] = i;
    }
    record_tasks(r, list, idx, k);
    assert_int_equal(qb_results_close(r, &err), 0);
    if (qb_results_read(path, &rows, &n, NULL, &err) != 0) fail_msg("%s", err.msg);
    assert_int_equal(n, CRASH_TASKS);
    for (size_t i = 0; i < CRASH_TASKS; i++) assert_row_finished_as(&rows[i], i);
    free(rows);
}

/* ---- a full disk ---------------------------------------------------------------- */

/* Child: with a file-size limit at the file's current size (the kernel
 * then refuses to grow it, as a full disk would), a detail array fails
 * with an error naming the file and is undone; rows (written in place)
 * still record, and the file flushes and closes. Exit 0 when all behaved. */
static int fsize_child(const char *path)
{
    size_t list[20];
    for (size_t i = 0; i < 20; i++) list[i] = i;
    qb_results *r;
    qb_error err;
    if (open_list(&r, path, HASH_A, 0, list, 20, NULL, &err) != 0) {
        qb_error_print(&err);
        return 2;
    }
    size_t idx[] = {0, 1, 2};
    record_tasks(r, list, idx, 3);
    if (qb_results_flush(r, &err) != 0) return 3;
    struct stat st;
    if (stat(path, &st) != 0) return 4;
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = {(rlim_t)st.st_size, RLIM_INFINITY};
    if (setrlimit(RLIMIT_FSIZE, &lim) != 0) return 5;
    size_t n = 1 << 20;
    double *big = calloc(n, sizeof *big);
    int rc = qb_results_write_detail(r, 5, "nc", big, n, &err);
    free(big);
    if (rc == 0) {
        fprintf(stderr, "write_detail succeeded beyond the size limit\n");
        return 6;
    }
    if (!strstr(err.msg, path)) return 7;
    printf("full disk: %s\n", err.msg);
    qb_task_row row;
    finished_row(&row, 7);
    if (qb_results_record(r, 7, &row, &err) != 0) {
        printf("record after full disk: %s\n", err.msg);
        return 8;
    }
    if (qb_results_flush(r, &err) != 0) {
        printf("flush after full disk: %s\n", err.msg);
        return 9;
    }
    if (qb_results_close(r, &err) != 0) {
        printf("close after full disk: %s\n", err.msg);
        return 10;
    }
    MPI_Finalize(); /* HDF5 1.10 would crash here on a file it failed to close */
    return 0;
}

static void test_full_disk_reported_rows_kept(void **state)
{
    const qb_test_results_fx *fx = *state;
    const char *path = fx->path;
    int ws = run_child("--fsize-child", path);
    if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) fail_msg("fsize child failed (status 0x%x)", ws);
    qb_task_row *rows;
    size_t n;
    qb_error err;
    if (qb_results_read(path, &rows, &n, NULL, &err) != 0) fail_msg("after a full disk: %s", err.msg);
    assert_int_equal(n, 20);
    for (size_t i = 0; i < 3; i++) assert_row_finished_as(&rows[i], i);
    assert_row_finished_as(&rows[7], 7);
    free(rows);
    double *v;
    assert_int_equal(qb_results_read_detail(path, task_id_of(5), "nc", &v, &n, &err), -1);
    /* Writable again once there is room. */
    size_t list[20];
    for (size_t i = 0; i < 20; i++) list[i] = i;
    qb_results *r;
    uint8_t status[20];
    if (open_list(&r, path, HASH_A, 0, list, 20, status, &err) != 0) fail_msg("%s", err.msg);
    assert_int_equal(status[7], QB_STATUS_OK);
    double s[2] = {1, 2};
    assert_int_equal(qb_results_write_detail(r, 5, "nc", s, 2, &err), 0);
    assert_int_equal(qb_results_close(r, &err), 0);
}

/* ---- damaged rows ---------------------------------------------------------- */

/* Overwrite file row `row` of /tasks with raw bytes (the file's own row
 * type, so HDF5 converts nothing): `fill` >= 0 sets every byte to it,
 * fill -1 writes bytes from a fixed LCG, fill -2 only sets the status
 * field (offset 128 in the packed row) to 77. */
static void damage_row(const char *path, hsize_t row, int fill)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDWR, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t d = H5Dopen2(f, "/tasks", H5P_DEFAULT);
    assert_true(d >= 0);
    hid_t t = H5Dget_type(d), fs = H5Dget_space(d);
    assert_int_equal(H5Tget_size(t), 544);
    hsize_t one = 1;
    hid_t ms = H5Screate_simple(1, &one, NULL);
    assert_true(H5Sselect_hyperslab(fs, H5S_SELECT_SET, &row, NULL, &one, NULL) >= 0);
    uint8_t buf[544];
    if (fill == -2) {
        assert_true(H5Dread(d, t, ms, fs, H5P_DEFAULT, buf) >= 0);
        int32_t bad = 77;
        memcpy(buf + 128, &bad, sizeof bad);
    } else {
        uint64_t x = 12345;
        for (size_t i = 0; i < sizeof buf; i++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            buf[i] = fill >= 0 ? (uint8_t)fill : (uint8_t)(x >> 56);
        }
    }
    assert_true(H5Dwrite(d, t, ms, fs, H5P_DEFAULT, buf) >= 0);
    H5Sclose(ms);
    H5Sclose(fs);
    H5Tclose(t);
    H5Dclose(d);
    assert_true(H5Fclose(f) >= 0);
}

/* Rows overwritten with 0xFF, random bytes or a bad status are reported
 * as damaged (named by row and task), count as pending, and a resume runs
 * their tasks again and rewrites the rows. */
static void test_damaged_rows_reported_and_rerun(void **state)
{
    const qb_test_results_fx *fx = *state;
    const char *path = fx->path;
    size_t *list = iota(0, 8), *all = iota(0, 8);
    qb_results *r = NULL;
    qb_error err;
    uint8_t status[8];
    if (open_list(&r, path, HASH_A, 0, list, 8, status, &err) != 0) fail_msg("%s", err.msg);
    record_tasks(r, list, all, 8);
    assert_int_equal(qb_results_close(r, &err), 0);

    size_t n_bad = 9;
    qb_results_damage *bad = NULL;
    assert_int_equal(qb_results_list_damaged(path, &bad, &n_bad, &err), 0);
    assert_int_equal(n_bad, 0);

    damage_row(path, 1, 0xff);
    damage_row(path, 4, -1);
    damage_row(path, 6, -2);
    assert_int_equal(qb_results_list_damaged(path, &bad, &n_bad, &err), 0);
    assert_int_equal(n_bad, 3);
    assert_int_equal(bad[0].row, 1);
    assert_int_equal(bad[1].row, 4);
    assert_int_equal(bad[2].row, 6);
    assert_true(bad[0].task_id == UINT64_MAX);
    assert_true(bad[2].task_id == task_id_of(6)); /* only its status was hit */
    assert_non_null(strstr(bad[2].why, "status 77"));
    for (size_t i = 0; i < 3; i++) assert_true(bad[i].why[0] != '\0');
    free(bad);

    size_t counts[QB_STATUS_COUNT];
    assert_int_equal(qb_results_count(path, counts, NULL, &err), 0);
    assert_int_equal(counts[QB_STATUS_PENDING], 3);
    assert_int_equal(counts[QB_STATUS_OK] + counts[QB_STATUS_INVALID] + counts[QB_STATUS_FAILED], 5);

    /* resume: the three tasks are pending again, the rest finished */
    if (open_list(&r, path, HASH_A, 0, list, 8, status, &err) != 0) fail_msg("%s", err.msg);
    for (size_t i = 0; i < 8; i++)
        assert_int_equal(status[i] == QB_STATUS_PENDING, i == 1 || i == 4 || i == 6);
    const size_t rerun[] = {1, 4, 6};
    record_tasks(r, list, rerun, 3);
    assert_int_equal(qb_results_close(r, &err), 0);
    assert_int_equal(qb_results_list_damaged(path, &bad, &n_bad, &err), 0);
    assert_int_equal(n_bad, 0);
    qb_task_row *rows = NULL;
    size_t n_rows = 0;
    assert_int_equal(qb_results_read(path, &rows, &n_rows, NULL, &err), 0);
    assert_int_equal(n_rows, 8); /* the damaged rows were reused, none appended */
    for (size_t k = 0; k < 8; k++) {
        const qb_task_row *got = find_row(rows, n_rows, task_id_of(k));
        assert_non_null(got);
        assert_row_finished_as(got, k);
    }
    free(rows);
    free(all);
    free(list);
}

/* --retry-failed: failed tasks are pending again on open; their old rows
 * stay as they were until the new rows replace them. */
static void test_retry_failed(void **state)
{
    const qb_test_results_fx *fx = *state;
    const char *path = fx->path;
    size_t *list = iota(0, 12), *all = iota(0, 12);
    qb_results *r = NULL;
    qb_error err;
    uint8_t status[12];
    if (open_list(&r, path, HASH_A, 0, list, 12, status, &err) != 0) fail_msg("%s", err.msg);
    record_tasks(r, list, all, 12);
    assert_int_equal(qb_results_close(r, &err), 0);
    /* without the option: every task finished, failed ones included */
    if (open_list(&r, path, HASH_A, 0, list, 12, status, &err) != 0) fail_msg("%s", err.msg);
    for (size_t k = 0; k < 12; k++) assert_int_not_equal(status[k], QB_STATUS_PENDING);
    assert_int_equal(qb_results_close(r, &err), 0);

    task_list l = {list, 12};
    qb_results_config cfg = config(path, HASH_A, 0);
    cfg.retry_failed = 1;
    if (qb_results_create_or_open_fn(&r, &cfg, 12, fill_fn, &l, status, &err) != 0)
        fail_msg("%s", err.msg);
    size_t n_failed = 0;
    for (size_t k = 0; k < 12; k++) {
        int failed = k % 7 == 3; /* finished_row's failed tasks: 3 and 10 */
        n_failed += (size_t)failed;
        assert_int_equal(status[k], failed ? QB_STATUS_PENDING : finished_status(k));
    }
    assert_int_equal(n_failed, 2);
    qb_task_row row;
    assert_int_equal(qb_results_get_row(r, 3, &row, &err), 0);
    assert_int_equal(row.status, QB_STATUS_FAILED); /* kept until replaced */
    finished_row(&row, 3);
    row.status = QB_STATUS_OK;
    row.message[0] = '\0';
    assert_int_equal(qb_results_record(r, 3, &row, &err), 0);
    assert_int_equal(qb_results_close(r, &err), 0);
    size_t counts[QB_STATUS_COUNT];
    assert_int_equal(qb_results_count(path, counts, NULL, &err), 0);
    assert_int_equal(counts[QB_STATUS_FAILED], 1); /* task 10, not rerun here */
    assert_int_equal(counts[QB_STATUS_PENDING], 0);
    free(all);
    free(list);
}

int main(int argc, char **argv)
{
    MPI_Init(NULL, NULL);
    if (argc == 3 && strcmp(argv[1], "--crash-child") == 0) return crash_child(argv[2]);
    if (argc == 3 && strcmp(argv[1], "--fsize-child") == 0) return fsize_child(argv[2]);
    return qb_test_run_group_mpi(QB_TEST_RESULTS(test_create_record_reopen),
                                 QB_TEST_RESULTS(test_rows_api_details_and_new_tasks),
                                 QB_TEST_RESULTS(test_different_spec_refused),
                                 QB_TEST_RESULTS(test_force_keeps_finished_of_existing_tasks),
                                 QB_TEST_RESULTS(test_interrupted_operations_recovered),
                                 QB_TEST_RESULTS(test_broken_and_foreign_files_refused),
                                 QB_TEST_RESULTS(test_readable_by_h5py_and_h5dump),
                                 QB_TEST_RESULTS(test_flushed_rows_survive_sigkill),
                                 QB_TEST_RESULTS(test_full_disk_reported_rows_kept),
                                 QB_TEST_RESULTS(test_damaged_rows_reported_and_rerun),
                                 QB_TEST_RESULTS(test_retry_failed));
}
