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

#include "core/xalloc.h"
#include "store/hdf5_util.h"
#include "store/results_schema.h"

/* Open read-only with the default (POSIX) driver and check the layout. */
static int open_reader(const char *path, hid_t *file, hid_t *tasks, uint64_t *n, uint64_t *spec_hash,
                       qb_error *err)
{
    *file = *tasks = H5I_INVALID_HID;
    struct stat st;
    if (stat(path, &st) != 0)
        return QB_FAIL(err, "results file %s: %s", path, strerror(errno));
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (f < 0)
        return QB_H5_FAIL(err, path, "H5Fopen", "is it an HDF5 file? truncated or damaged files "
                      "cannot be read");
    if (qb_results_tasks_open(f, path, tasks, n, spec_hash, err) < 0) {
        H5Fclose(f);
        return -1;
    }
    *file = f;
    return 0;
}

int qb_results_read(const char *path, qb_task_row **rows, size_t *n_rows, uint64_t *spec_hash,
                    qb_error *err)
{
    *rows = NULL;
    *n_rows = 0;
    qb_h5_quiet q;
    qb_h5_quiet_begin(&q);
    hid_t f, d, rt = H5I_INVALID_HID;
    uint64_t n = 0;
    int rc = -1;
    if (open_reader(path, &f, &d, &n, spec_hash, err) < 0) goto out;
    if ((rt = qb_results_row_type(0, path, err)) < 0) goto out;
    qb_task_row *buf = xcalloc(n ? n : 1, sizeof *buf);
    for (uint64_t start = 0; start < n; start += QB_RESULTS_BATCH) {
        uint64_t count = n - start < QB_RESULTS_BATCH ? n - start : QB_RESULTS_BATCH;
        if (qb_results_rows_xfer(0, d, rt, H5P_DEFAULT, start, count, buf + start, path, err) < 0) {
            free(buf);
            goto out;
        }
    }
    *rows = buf;
    *n_rows = n;
    rc = 0;
out:
    qb_h5_close(&rt);
    qb_h5_close(&d);
    qb_h5_close(&f);
    qb_h5_quiet_end(&q);
    return rc;
}

int qb_results_count(const char *path, size_t counts[QB_STATUS_COUNT], uint64_t *spec_hash,
                     qb_error *err)
{
    for (int s = 0; s < QB_STATUS_COUNT; s++) counts[s] = 0;
    qb_h5_quiet q;
    qb_h5_quiet_begin(&q);
    hid_t f, d;
    uint64_t n = 0;
    qb_results_key *keys = NULL;
    int rc = -1;
    if (open_reader(path, &f, &d, &n, spec_hash, err) < 0) goto out;
    if (qb_results_keys_read(d, n, &keys, path, err) < 0) goto out;
    for (uint64_t i = 0; i < n; i++)
        counts[qb_task_status_finished(keys[i].status) ? keys[i].status : QB_STATUS_PENDING]++;
    rc = 0;
out:
    free(keys);
    qb_h5_close(&d);
    qb_h5_close(&f);
    qb_h5_quiet_end(&q);
    return rc;
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
    qb_h5_quiet q;
    qb_h5_quiet_begin(&q);
    hid_t f, tasks, d = H5I_INVALID_HID, s = H5I_INVALID_HID;
    uint64_t n_rows;
    int rc = -1;
    if (open_reader(path, &f, &tasks, &n_rows, NULL, err) < 0) goto out;
    /* H5Lexists needs every intermediate link to exist. */
    int e = qb_h5_link_exists(f, "details", path, err);
    if (e > 0) {
        char gpath[16 + QB_RESULTS_DETAIL_NAME_MAX];
        snprintf(gpath, sizeof gpath, "details/%s", name);
        e = qb_h5_link_exists(f, gpath, path, err);
    }
    if (e > 0) e = qb_h5_link_exists(f, dpath, path, err);
    if (e < 0) goto out;
    if (e == 0) {
        QB_FAIL(err, "results file %s has no /%s", path, dpath);
        goto out;
    }
    if ((d = H5Dopen2(f, dpath, H5P_DEFAULT)) < 0 || (s = H5Dget_space(d)) < 0) {
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
    qb_h5_close(&tasks);
    qb_h5_close(&f);
    qb_h5_quiet_end(&q);
    return rc;
}
