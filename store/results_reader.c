/* The serial readers of the results file (store/results.h): HDF5's
 * default POSIX driver, no MPI. They check the file as the writer does
 * (store/results_schema.c). */
#include "store/results.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <hdf5.h>

#include "core/file.h"
#include "core/xalloc.h"
#include "store/hdf5_util.h"
#include "store/results_schema.h"

/* A results file open for reading: HDF5's error printing off, the file
 * (read-only, default POSIX driver) and its checked task table. */
typedef struct reader {
    qb_h5_quiet quiet;
    hid_t file, tasks;
    uint64_t n_rows;
} reader;

/* Open and check the layout. reader_close in every case afterwards. */
static int reader_open(reader *rd, const char *path, uint64_t *spec_hash, qb_error *err)
{
    qb_h5_quiet_begin(&rd->quiet);
    rd->file = rd->tasks = H5I_INVALID_HID;
    rd->n_rows = 0;
    /* a FIFO or a device would block HDF5's open(2): refused first */
    if (qb_file_check_regular(path, "results file", err)) return -1;
    rd->file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (rd->file < 0)
        return QB_H5_FAIL(err, path, "H5Fopen", "is it an HDF5 file? truncated or damaged files "
                          "cannot be read");
    return qb_results_tasks_open(rd->file, path, &rd->tasks, &rd->n_rows, spec_hash, err);
}

static void reader_close(reader *rd)
{
    qb_h5_close(&rd->tasks);
    qb_h5_close(&rd->file);
    qb_h5_quiet_end(&rd->quiet);
}

/* Where a scan puts the rows it reads (read_all). */
typedef struct read_sink {
    qb_task_row *rows;
    uint8_t *damaged; /* NULL: not kept */
} read_sink;

static int read_batch(void *ctx, uint64_t start, size_t count, const qb_task_row *rows,
                      const uint8_t *damaged, char (*why)[96], qb_error *err)
{
    (void)why;
    (void)err;
    read_sink *k = ctx;
    memcpy(k->rows + start, rows, count * sizeof *rows);
    if (k->damaged) memcpy(k->damaged + start, damaged, count);
    return 0;
}

/* qb_results_read, with the damaged flags if damaged is not NULL. */
static int read_all(const char *path, qb_task_row **rows, uint8_t **damaged, size_t *n_rows,
                    uint64_t *spec_hash, qb_error *err)
{
    *rows = NULL;
    if (damaged) *damaged = NULL;
    *n_rows = 0;
    reader rd;
    int rc = -1;
    if (reader_open(&rd, path, spec_hash, err) == 0) {
        uint64_t n = rd.n_rows;
        read_sink k = {xcalloc(n ? n : 1, sizeof *k.rows), damaged ? xcalloc(n ? n : 1, 1) : NULL};
        if (qb_results_rows_scan(rd.tasks, n, 0, read_batch, &k, path, err) == 0) {
            *rows = k.rows;
            if (damaged) *damaged = k.damaged;
            *n_rows = n;
            rc = 0;
        } else {
            free(k.rows);
            free(k.damaged);
        }
    }
    reader_close(&rd);
    return rc;
}

int qb_results_read(const char *path, qb_task_row **rows, size_t *n_rows, uint64_t *spec_hash,
                    qb_error *err)
{
    return read_all(path, rows, NULL, n_rows, spec_hash, err);
}

int qb_results_read_marked(const char *path, qb_task_row **rows, uint8_t **damaged,
                           size_t *n_rows, qb_error *err)
{
    return read_all(path, rows, damaged, n_rows, NULL, err);
}

int qb_results_count(const char *path, size_t counts[QB_STATUS_COUNT], uint64_t *spec_hash,
                     qb_error *err)
{
    for (int s = 0; s < QB_STATUS_COUNT; s++) counts[s] = 0;
    reader rd;
    qb_results_key *keys = NULL;
    int rc = -1;
    if (reader_open(&rd, path, spec_hash, err) == 0 &&
        qb_results_keys_read(rd.tasks, rd.n_rows, &keys, path, err) == 0) {
        for (uint64_t i = 0; i < rd.n_rows; i++)
            counts[qb_task_status_finished(keys[i].status) ? keys[i].status : QB_STATUS_PENDING]++;
        rc = 0;
    }
    free(keys);
    reader_close(&rd);
    return rc;
}

/* The damaged rows found so far (qb_results_list_damaged). */
typedef struct damage_list {
    qb_results_damage *list;
    size_t n, cap;
} damage_list;

static int damage_batch(void *ctx, uint64_t start, size_t count, const qb_task_row *rows,
                        const uint8_t *damaged, char (*why)[96], qb_error *err)
{
    (void)err;
    damage_list *l = ctx;
    for (size_t i = 0; i < count; i++) {
        if (!damaged[i]) continue;
        if (l->n == l->cap) {
            l->cap = l->cap ? 2 * l->cap : 16;
            l->list = xrealloc(l->list, l->cap, sizeof *l->list);
        }
        qb_results_damage *d = &l->list[l->n++];
        d->row = start + i;
        d->task_id = rows[i].task_id;
        snprintf(d->why, sizeof d->why, "%s", why[i]);
    }
    return 0;
}

int qb_results_list_damaged(const char *path, qb_results_damage **list, size_t *n,
                            qb_error *err)
{
    *list = NULL;
    *n = 0;
    reader rd;
    damage_list l = {NULL, 0, 0};
    int rc = -1;
    if (reader_open(&rd, path, NULL, err) == 0 &&
        qb_results_rows_scan(rd.tasks, rd.n_rows, 1, damage_batch, &l, path, err) == 0) {
        *list = l.list;
        *n = l.n;
        l.list = NULL;
        rc = 0;
    }
    free(l.list);
    reader_close(&rd);
    return rc;
}

/* 1 if /details/<name>/<hex> exists in rd, 0 if not, -1 on error.
 * H5Lexists needs every intermediate link to exist. */
static int detail_exists(const reader *rd, const char *name, const char *dpath, const char *path,
                         qb_error *err)
{
    int e = qb_h5_link_exists(rd->file, "details", path, err);
    if (e > 0) {
        char gpath[16 + QB_RESULTS_DETAIL_NAME_MAX];
        snprintf(gpath, sizeof gpath, "details/%s", name);
        e = qb_h5_link_exists(rd->file, gpath, path, err);
    }
    if (e > 0) e = qb_h5_link_exists(rd->file, dpath, path, err);
    return e;
}

int qb_results_read_detail(const char *path, uint64_t task_id, const char *name, double **values,
                           size_t *n, qb_error *err)
{
    *values = NULL;
    *n = 0;
    if (!qb_results_detail_name_ok(name))
        return QB_FAIL(err, "results file %s: detail name \"%s\" is not [A-Za-z0-9_.-]{1,%d}",
                       path, name ? name : "(null)", QB_RESULTS_DETAIL_NAME_MAX);
    char dpath[16 + QB_RESULTS_DETAIL_NAME_MAX + 32];
    snprintf(dpath, sizeof dpath, "details/%s/%016" PRIx64, name, task_id);
    reader rd;
    hid_t d = H5I_INVALID_HID, s = H5I_INVALID_HID;
    int rc = -1;
    if (reader_open(&rd, path, NULL, err) < 0) goto out;
    int e = detail_exists(&rd, name, dpath, path, err);
    if (e < 0) goto out;
    if (e == 0) {
        QB_FAIL(err, "results file %s has no /%s", path, dpath);
        goto out;
    }
    if ((d = H5Dopen2(rd.file, dpath, H5P_DEFAULT)) < 0 || (s = H5Dget_space(d)) < 0) {
        QB_H5_FAIL(err, path, "H5Dopen2", "/%s", dpath);
        goto out;
    }
    hssize_t np = H5Sget_simple_extent_npoints(s);
    if (np < 0 || H5Sget_simple_extent_ndims(s) != 1) {
        QB_FAIL(err, "results file %s: /%s is not a 1-D array", path, dpath);
        goto out;
    }
    double *v = np > 0 ? xmalloc((size_t)np, sizeof *v) : NULL;
    if (np > 0 && H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0) {
        QB_H5_FAIL(err, path, "H5Dread", "/%s", dpath);
        free(v);
        goto out;
    }
    *values = v;
    *n = (size_t)np;
    rc = 0;
out:
    qb_h5_close(&s);
    qb_h5_close(&d);
    reader_close(&rd);
    return rc;
}
