/* The writer of the results file (store/results.h): create or open it on
 * rank 0 with the MPI-IO driver, match the caller's tasks with its rows,
 * record rows and /details arrays, flush, close. The /tasks format is
 * store/results_schema.c's, the HDF5 helpers store/hdf5_util.c's.
 *
 * Every HDF5 call is checked; HDF5's own error printing is switched off
 * for the duration of each public function (and restored after), and a
 * failure becomes a qb_error naming the results file, the HDF5 call, what
 * it was doing and the innermost message of HDF5's error stack. */
#include "store/results.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#include <hdf5.h>
#include <mpi.h>

#include "core/file.h"
#include "core/sort.h"
#include "core/xalloc.h"
#include "store/hdf5_util.h"
#include "store/results_schema.h"

struct qb_results {
    char *path;
    hid_t file;      /* RDWR, MPI-IO on MPI_COMM_SELF */
    hid_t tasks;     /* /tasks */
    hid_t details;   /* /details */
    hid_t row_type;  /* packed row type in memory (qb_results_row_type) */
    hid_t dxpl_row;  /* transfers of one row (see qb_results_create_or_open_fn) */
    size_t n_tasks;
    uint64_t *ids;    /* (n_tasks) the caller's task ids */
    uint64_t *rowpos; /* (n_tasks) file row of each task */
    uint8_t *status;  /* (n_tasks) qb_task_status */
};

/* Root attributes written here; provenance keys may not use these names. */
static const char *const RESERVED_ATTRS[] = {"format_version", "spec_text", "spec_hash",
                                             "spec_hash_u64", "n_ranks", "started_at",
                                             "updated_at"};

static void iso_now(char out[32])
{
    time_t now = time(NULL);
    struct tm tm;
    if (gmtime_r(&now, &tm) == NULL || strftime(out, 32, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
        snprintf(out, 32, "unknown");
}

/* Refuse before HDF5 sees a full disk: an HDF5 1.10 file whose metadata
 * cannot be written can neither be flushed nor closed (and the library
 * crashes in MPI_Finalize trying again). `bytes` is what the operation
 * will add; 1 MiB more is kept free for metadata. Other processes filling
 * the disk meanwhile can still beat this check: qb_results_write_detail
 * also undoes its changes when a write fails. */
#define SPACE_RESERVE (1u << 20)

static int check_space(const char *path, uint64_t bytes, qb_error *err)
{
    char *dir = qb_file_dirname(path);
    struct statvfs sv;
    int rc = 0;
    if (statvfs(dir, &sv) == 0) {
        uint64_t avail = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
        if (avail < bytes + SPACE_RESERVE)
            rc = QB_FAIL(err, "results file %s: its file system has %" PRIu64 " bytes free, "
                         "%" PRIu64 " are needed (disk full?)", path, avail, bytes + SPACE_RESERVE);
    }
    free(dir);
    return rc;
}

/* ---- opening ------------------------------------------------------------------ */

static hid_t mpio_fapl(const char *path, qb_error *err)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return QB_H5_FAIL(err, path, "H5Pcreate", "file access list"), H5I_INVALID_HID;
    /* Superblock and object header versions of HDF5 1.8: no file-consistency
     * flags, so a file whose writer was killed opens again (and old h5py
     * reads it). */
    if (H5Pset_fapl_mpio(fapl, MPI_COMM_SELF, MPI_INFO_NULL) < 0 ||
        H5Pset_libver_bounds(fapl, H5F_LIBVER_EARLIEST, H5F_LIBVER_V18) < 0) {
        QB_H5_FAIL(err, path, "H5Pset_fapl_mpio", "MPI-IO on MPI_COMM_SELF");
        H5Pclose(fapl);
        return H5I_INVALID_HID;
    }
    return fapl;
}

static int check_config(const qb_results_config *cfg, qb_error *err)
{
    if (!cfg || !cfg->path || !cfg->path[0]) return QB_FAIL(err, "results: no file name given");
    if (!cfg->spec_text) return QB_FAIL(err, "results file %s: no spec text given", cfg->path);
    for (size_t i = 0; i < cfg->n_provenance; i++) {
        const char *k = cfg->provenance[i].key, *v = cfg->provenance[i].value;
        if (!k || !k[0] || strspn(k, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                      "0123456789_.-") != strlen(k))
            return QB_FAIL(err, "results file %s: provenance key \"%s\" is not [A-Za-z0-9_.-]+",
                           cfg->path, k ? k : "(null)");
        if (!v) return QB_FAIL(err, "results file %s: provenance %s has no value", cfg->path, k);
        for (size_t j = 0; j < sizeof RESERVED_ATTRS / sizeof RESERVED_ATTRS[0]; j++)
            if (strcmp(k, RESERVED_ATTRS[j]) == 0)
                return QB_FAIL(err, "results file %s: provenance key %s is reserved", cfg->path, k);
    }
    return 0;
}

/* Root attributes written on every open; started_at only when absent. */
static int write_root_attrs(hid_t file, const qb_results_config *cfg, qb_error *err)
{
    const char *path = cfg->path;
    char hex[17], now[32];
    snprintf(hex, sizeof hex, "%016" PRIx64, cfg->spec_hash);
    iso_now(now);
    if (qb_h5_attr_put_i32(file, "format_version", QB_RESULTS_FORMAT_VERSION, path, err) < 0 ||
        qb_h5_attr_put_str(file, "spec_text", cfg->spec_text, path, err) < 0 ||
        qb_h5_attr_put_str(file, "spec_hash", hex, path, err) < 0 ||
        qb_h5_attr_put(file, "spec_hash_u64", H5T_STD_U64LE, H5T_NATIVE_UINT64, &cfg->spec_hash,
                       path, err) < 0 ||
        qb_h5_attr_put_i32(file, "n_ranks", cfg->n_ranks, path, err) < 0 ||
        qb_h5_attr_put_str(file, "updated_at", now, path, err) < 0)
        return -1;
    int e = qb_h5_attr_exists(file, "started_at", path, err);
    if (e < 0 || (!e && qb_h5_attr_put_str(file, "started_at", now, path, err) < 0)) return -1;
    for (size_t i = 0; i < cfg->n_provenance; i++)
        if (qb_h5_attr_put_str(file, cfg->provenance[i].key, cfg->provenance[i].value, path,
                               err) < 0)
            return -1;
    return 0;
}

/* The caller's rows, produced on demand. */
typedef struct row_source {
    qb_results_row_fn fill;
    void *ctx;
} row_source;

/* Pending rows for tasks idx[0..k) into rows[0..k). */
static int fill_pending(const row_source *src, const size_t *idx, size_t k, qb_task_row *rows,
                        const uint64_t *ids, const char *path, qb_error *err)
{
    for (size_t i = 0; i < k; i++) {
        qb_task_row_init(&rows[i]);
        if (src->fill(src->ctx, idx[i], &rows[i], err) < 0) return -1;
        if (rows[i].task_id != ids[idx[i]])
            return QB_FAIL(err, "results file %s: task %zu changed its id while the file was being "
                           "written", path, idx[i]);
        rows[i].status = QB_STATUS_PENDING;
        qb_results_row_tidy(&rows[i]);
    }
    return 0;
}

/* Build a new file at `path` with every row pending, in the caller's order:
 * first as path.tmp.<pid>, then linked into place. */
static int create_file(qb_results *r, const qb_results_config *cfg, const row_source *src,
                       qb_error *err)
{
    const char *path = r->path;
    size_t tlen = strlen(path) + 32;
    char *tmp = xmalloc(tlen, 1);
    snprintf(tmp, tlen, "%s.tmp.%ld", path, (long)getpid());
    unlink(tmp); /* a leftover of an earlier process with our pid */
    hid_t fapl = mpio_fapl(path, err), file = H5I_INVALID_HID, d = H5I_INVALID_HID,
          g = H5I_INVALID_HID;
    qb_task_row *rows = xmalloc(QB_RESULTS_BATCH, sizeof *rows);
    size_t *idx = xmalloc(QB_RESULTS_BATCH, sizeof *idx);
    int rc = -1;
    if (fapl < 0) goto out;
    file = H5Fcreate(tmp, H5F_ACC_EXCL, H5P_DEFAULT, fapl);
    if (file < 0) {
        QB_H5_FAIL(err, path, "H5Fcreate", "creating %s", tmp);
        goto out;
    }
    if (write_root_attrs(file, cfg, err) < 0) goto out;
    if ((d = qb_results_tasks_create(file, "tasks", r->n_tasks, path, err)) < 0) goto out;
    if ((g = H5Gcreate2(file, "details", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0) {
        QB_H5_FAIL(err, path, "H5Gcreate2", "/details");
        goto out;
    }
    for (size_t start = 0; start < r->n_tasks; start += QB_RESULTS_BATCH) {
        size_t k = r->n_tasks - start < QB_RESULTS_BATCH ? r->n_tasks - start : QB_RESULTS_BATCH;
        for (size_t i = 0; i < k; i++) idx[i] = start + i;
        if (fill_pending(src, idx, k, rows, r->ids, path, err) < 0 ||
            qb_results_rows_xfer(1, d, r->row_type, H5P_DEFAULT, start, k, rows, path, err) < 0)
            goto out;
    }
    if (H5Fflush(file, H5F_SCOPE_GLOBAL) < 0) {
        QB_H5_FAIL(err, path, "H5Fflush", "the new file %s", tmp);
        goto out;
    }
    qb_h5_close(&g);
    qb_h5_close(&d);
    if (H5Fclose(file) < 0) {
        file = H5I_INVALID_HID;
        QB_H5_FAIL(err, path, "H5Fclose", "the new file %s", tmp);
        goto out;
    }
    file = H5I_INVALID_HID;
    /* link(2) fails if `path` appeared meanwhile (another run): never
     * replace a file. Without hard links, fall back to rename(2). */
    if (link(tmp, path) == 0) {
        unlink(tmp);
    } else if (errno == EEXIST) {
        QB_FAIL(err, "results file %s appeared while this run was creating it (another qblind "
                "run writing the same file?)", path);
        goto out;
    } else if (rename(tmp, path) != 0) {
        QB_FAIL(err, "results file %s: cannot rename %s to it: %s", path, tmp, strerror(errno));
        goto out;
    }
    qb_file_sync_dir(path); /* the directory entry too */
    rc = 0;
out:
    qb_h5_close(&g);
    qb_h5_close(&d);
    qb_h5_close(&file);
    qb_h5_close(&fapl);
    if (rc < 0) unlink(tmp);
    free(tmp);
    free(rows);
    free(idx);
    return rc;
}

/* File rows sorted by id, the finished one first among rows of one id. */
typedef struct file_key {
    uint64_t id, pos;
    int32_t status;
    int32_t claimed;
} file_key;

static int cmp_file_key(const void *a, const void *b)
{
    const file_key *x = a, *y = b;
    if (x->id != y->id) return x->id < y->id ? -1 : 1;
    int fx = qb_task_status_finished(x->status), fy = qb_task_status_finished(y->status);
    if (fx != fy) return fy - fx;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

/* First entry with this id, or NULL. */
static file_key *find_key(file_key *keys, size_t n, uint64_t id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (keys[mid].id < id) lo = mid + 1;
        else hi = mid;
    }
    return lo < n && keys[lo].id == id ? &keys[lo] : NULL;
}

/* Rebuild the task table in the caller's order as /tasks.new (kept
 * finished rows copied from the old table, the rest pending), then swap it
 * in. The old table stays complete until the new one is written and
 * flushed. */
static int rebuild_tasks(qb_results *r, const row_source *src, file_key **match, qb_error *err)
{
    const char *path = r->path;
    hid_t d = qb_results_tasks_create(r->file, QB_RESULTS_TASKS_NEW, r->n_tasks, path, err);
    if (d < 0) return -1;
    qb_task_row *rows = xmalloc(QB_RESULTS_BATCH, sizeof *rows),
                *kept = xmalloc(QB_RESULTS_BATCH, sizeof *kept);
    size_t *idx = xmalloc(QB_RESULTS_BATCH, sizeof *idx),
           *kept_at = xmalloc(QB_RESULTS_BATCH, sizeof *kept_at);
    uint64_t *kept_pos = xmalloc(QB_RESULTS_BATCH, sizeof *kept_pos);
    int rc = -1;
    for (size_t start = 0; start < r->n_tasks; start += QB_RESULTS_BATCH) {
        size_t k = r->n_tasks - start < QB_RESULTS_BATCH ? r->n_tasks - start : QB_RESULTS_BATCH,
               nk = 0;
        for (size_t i = 0; i < k; i++) idx[i] = start + i;
        if (fill_pending(src, idx, k, rows, r->ids, path, err) < 0) goto out;
        for (size_t i = 0; i < k; i++) {
            const file_key *m = match[start + i];
            if (m && qb_task_status_finished(m->status)) {
                kept_at[nk] = i;
                kept_pos[nk++] = m->pos;
            }
        }
        if (qb_results_rows_read_at(r->tasks, r->row_type, kept_pos, kept, nk, path, err) < 0)
            goto out;
        for (size_t j = 0; j < nk; j++) {
            if (kept[j].task_id != rows[kept_at[j]].task_id) {
                QB_FAIL(err, "results file %s: row %" PRIu64 " changed while it was being read",
                        path, kept_pos[j]);
                goto out;
            }
            rows[kept_at[j]] = kept[j];
        }
        if (qb_results_rows_xfer(1, d, r->row_type, H5P_DEFAULT, start, k, rows, path, err) < 0)
            goto out;
    }
    if (H5Fflush(r->file, H5F_SCOPE_GLOBAL) < 0) {
        QB_H5_FAIL(err, path, "H5Fflush", "the rebuilt /" QB_RESULTS_TASKS_NEW);
        goto out;
    }
    qb_h5_close(&r->tasks);
    if (H5Ldelete(r->file, "tasks", H5P_DEFAULT) < 0) {
        QB_H5_FAIL(err, path, "H5Ldelete", "the old /tasks");
        goto out;
    }
    qb_h5_close(&d);
    if (H5Lmove(r->file, QB_RESULTS_TASKS_NEW, r->file, "tasks", H5P_DEFAULT, H5P_DEFAULT) < 0) {
        QB_H5_FAIL(err, path, "H5Lmove", "/" QB_RESULTS_TASKS_NEW " to /tasks");
        goto out;
    }
    if ((r->tasks = H5Dopen2(r->file, "tasks", H5P_DEFAULT)) < 0) {
        QB_H5_FAIL(err, path, "H5Dopen2", "the rebuilt /tasks");
        goto out;
    }
    for (size_t i = 0; i < r->n_tasks; i++) r->rowpos[i] = i;
    rc = 0;
out:
    qb_h5_close(&d);
    free(rows);
    free(kept);
    free(idx);
    free(kept_at);
    free(kept_pos);
    return rc;
}

/* Give every task without a row in the file one: pending rows no task
 * claims first, then new rows at the end. */
static int add_missing(qb_results *r, const row_source *src, const file_key *keys, uint64_t n_file,
                       file_key **match, qb_error *err)
{
    const char *path = r->path;
    size_t n_missing = 0;
    for (size_t i = 0; i < r->n_tasks; i++) n_missing += match[i] == NULL;
    if (n_missing == 0) return 0;
    /* Free rows: not finished and not claimed (a row never written after an
     * interrupted extension reads as id 0, pending). */
    uint64_t *slots = xmalloc(n_missing, sizeof *slots);
    size_t n_slots = 0;
    for (uint64_t j = 0; j < n_file && n_slots < n_missing; j++)
        if (!keys[j].claimed && !qb_task_status_finished(keys[j].status))
            slots[n_slots++] = keys[j].pos;
    qsort(slots, n_slots, sizeof *slots, qb_cmp_u64);
    uint64_t n_new = n_file + (n_missing - n_slots);
    if (n_new > n_file) {
        hsize_t dims = n_new;
        if (H5Dset_extent(r->tasks, &dims) < 0) {
            free(slots);
            return QB_H5_FAIL(err, path, "H5Dset_extent", "/tasks to %" PRIu64 " rows", n_new);
        }
    }
    qb_task_row *rows = xmalloc(QB_RESULTS_BATCH, sizeof *rows);
    size_t *idx = xmalloc(QB_RESULTS_BATCH, sizeof *idx);
    uint64_t *pos = xmalloc(QB_RESULTS_BATCH, sizeof *pos);
    size_t next_slot = 0;
    uint64_t next_end = n_file;
    int rc = 0;
    size_t k = 0;
    for (size_t i = 0; i <= r->n_tasks && rc == 0; i++) {
        if (i < r->n_tasks && match[i] == NULL) {
            idx[k] = i;
            pos[k] = next_slot < n_slots ? slots[next_slot++] : next_end++;
            r->rowpos[i] = pos[k];
            k++;
        }
        if (k == QB_RESULTS_BATCH || (i == r->n_tasks && k > 0)) {
            if (fill_pending(src, idx, k, rows, r->ids, path, err) < 0 ||
                qb_results_rows_write_at(r->tasks, r->row_type, pos, rows, k, path, err) < 0)
                rc = -1;
            k = 0;
        }
    }
    free(slots);
    free(rows);
    free(idx);
    free(pos);
    return rc;
}

static int open_file(qb_results *r, const qb_results_config *cfg, const row_source *src,
                     qb_error *err)
{
    const char *path = r->path;
    hid_t fapl = mpio_fapl(path, err), d = H5I_INVALID_HID;
    qb_results_key *rk = NULL;
    file_key *keys = NULL;
    file_key **match = NULL;
    uint64_t n_file = 0, stored_hash = 0;
    int rc = -1;
    if (fapl < 0) return -1;

    /* Check read-only first: a file that is not ours is never opened for
     * writing; a FIFO or a device (which would block open(2)) not at all. */
    if (qb_file_check_regular(path, "results file", err)) goto out;
    hid_t ro = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (ro < 0) {
        QB_H5_FAIL(err, path, "H5Fopen", "opening it; is it an HDF5 file? A truncated or damaged "
                   "results file cannot be resumed: move it away to start afresh");
        goto out;
    }
    if (qb_results_tasks_open(ro, path, &d, &n_file, &stored_hash, err) < 0) {
        H5Fclose(ro);
        goto out;
    }
    qb_h5_close(&d);
    if (H5Fclose(ro) < 0) {
        QB_H5_FAIL(err, path, "H5Fclose", "after checking");
        goto out;
    }
    int rebuild = stored_hash != cfg->spec_hash;
    if (rebuild && !cfg->force) {
        QB_FAIL(err, "results file %s was written from a different spec (hash %016" PRIx64
                ", this spec %016" PRIx64 "); use --force to reuse it (finished rows of tasks "
                "this spec still has are kept, the others dropped) or write to another file",
                path, stored_hash, cfg->spec_hash);
        goto out;
    }
    /* A rebuild writes a whole new table; a resume may append rows. */
    uint64_t grow = r->n_tasks > n_file ? r->n_tasks - n_file : 0;
    if (check_space(path,
                    ((rebuild ? r->n_tasks : grow) + QB_RESULTS_TASKS_CHUNK) * QB_RESULTS_ROW_SIZE,
                    err) < 0)
        goto out;

    r->file = H5Fopen(path, H5F_ACC_RDWR, fapl);
    if (r->file < 0) {
        QB_H5_FAIL(err, path, "H5Fopen", "opening for writing");
        goto out;
    }
    /* Finish or undo an interrupted --force rebuild. */
    int has_tasks = qb_h5_link_exists(r->file, "tasks", path, err);
    int has_new = has_tasks < 0 ? -1 : qb_h5_link_exists(r->file, QB_RESULTS_TASKS_NEW, path, err);
    if (has_new < 0) goto out;
    if (has_new && has_tasks && H5Ldelete(r->file, QB_RESULTS_TASKS_NEW, H5P_DEFAULT) < 0) {
        QB_H5_FAIL(err, path, "H5Ldelete", "an unfinished /" QB_RESULTS_TASKS_NEW);
        goto out;
    }
    if (has_new && !has_tasks &&
        H5Lmove(r->file, QB_RESULTS_TASKS_NEW, r->file, "tasks", H5P_DEFAULT, H5P_DEFAULT) < 0) {
        QB_H5_FAIL(err, path, "H5Lmove", "/" QB_RESULTS_TASKS_NEW " to /tasks");
        goto out;
    }
    if ((r->tasks = H5Dopen2(r->file, "tasks", H5P_DEFAULT)) < 0) {
        QB_H5_FAIL(err, path, "H5Dopen2", "/tasks");
        goto out;
    }
    if (qb_results_tasks_check(r->tasks, path, &n_file, err) < 0) goto out;
    int has_details = qb_h5_link_exists(r->file, "details", path, err);
    if (has_details < 0) goto out;
    r->details = has_details
                     ? H5Gopen2(r->file, "details", H5P_DEFAULT)
                     : H5Gcreate2(r->file, "details", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (r->details < 0) {
        QB_H5_FAIL(err, path, has_details ? "H5Gopen2" : "H5Gcreate2", "/details");
        goto out;
    }

    /* Match the caller's tasks with the file's rows by id. */
    if (qb_results_keys_read(r->tasks, n_file, &rk, path, err) < 0) goto out;
    keys = xmalloc(n_file ? n_file : 1, sizeof *keys);
    for (uint64_t j = 0; j < n_file; j++)
        keys[j] = (file_key){rk[j].task_id, j, rk[j].status, 0};
    free(rk);
    rk = NULL;
    qsort(keys, n_file, sizeof *keys, cmp_file_key);
    match = xcalloc(r->n_tasks ? r->n_tasks : 1, sizeof *match);
    for (size_t i = 0; i < r->n_tasks; i++) {
        file_key *m = find_key(keys, n_file, r->ids[i]);
        if (!m) continue;
        m->claimed = 1; /* the other rows of this id (duplicates) stay free */
        match[i] = m;
        r->rowpos[i] = m->pos;
        int again = cfg->retry_failed && m->status == QB_STATUS_FAILED;
        r->status[i] = qb_task_status_finished(m->status) && !again ? (uint8_t)m->status
                                                                     : QB_STATUS_PENDING;
    }
    if (rebuild) {
        if (rebuild_tasks(r, src, match, err) < 0) goto out;
    } else {
        if (add_missing(r, src, keys, n_file, match, err) < 0) goto out;
    }
    if (write_root_attrs(r->file, cfg, err) < 0) goto out;
    if (H5Fflush(r->file, H5F_SCOPE_GLOBAL) < 0) {
        QB_H5_FAIL(err, path, "H5Fflush", "after opening");
        goto out;
    }
    rc = 0;
out:
    qb_h5_close(&fapl);
    free(rk);
    free(keys);
    free(match);
    return rc;
}

static int copy_row_fn(void *ctx, size_t index, qb_task_row *row, qb_error *err)
{
    (void)err;
    *row = ((const qb_task_row *)ctx)[index];
    return 0;
}

static void results_free(qb_results *r)
{
    if (!r) return;
    qb_h5_close(&r->details);
    qb_h5_close(&r->tasks);
    qb_h5_close(&r->row_type);
    qb_h5_close(&r->dxpl_row);
    qb_h5_close(&r->file);
    free(r->path);
    free(r->ids);
    free(r->rowpos);
    free(r->status);
    free(r);
}

int qb_results_create_or_open_fn(qb_results **out, const qb_results_config *cfg, size_t n_rows,
                                 qb_results_row_fn fill, void *ctx, uint8_t *status,
                                 qb_error *err)
{
    *out = NULL;
    if (check_config(cfg, err) < 0) return -1;
    const char *path = cfg->path;
    int inited = 0, finalized = 0;
    MPI_Initialized(&inited);
    MPI_Finalized(&finalized);
    if (!inited || finalized)
        return QB_FAIL(err, "results file %s: MPI must be initialised to write results", path);

    qb_h5_quiet q;
    qb_h5_quiet_begin(&q);
    qb_results *r = xcalloc(1, sizeof *r);
    r->file = r->tasks = r->details = r->row_type = r->dxpl_row = H5I_INVALID_HID;
    r->path = xstrdup(path);
    r->n_tasks = n_rows;
    r->ids = xmalloc(n_rows ? n_rows : 1, sizeof *r->ids);
    r->rowpos = xmalloc(n_rows ? n_rows : 1, sizeof *r->rowpos);
    r->status = xcalloc(n_rows ? n_rows : 1, 1);
    row_source src = {fill, ctx};
    int rc = -1;

    /* The caller's ids, and the axis strings every row must carry whole. */
    for (size_t i = 0; i < n_rows; i++) {
        qb_task_row row;
        qb_task_row_init(&row);
        if (fill(ctx, i, &row, err) < 0) goto out;
        r->ids[i] = row.task_id;
        if (qb_results_row_check_axes(&row, i, path, err) < 0) goto out;
    }
    uint64_t *sorted = xmalloc(n_rows ? n_rows : 1, sizeof *sorted);
    memcpy(sorted, r->ids, n_rows * sizeof *sorted);
    qsort(sorted, n_rows, sizeof *sorted, qb_cmp_u64);
    for (size_t i = 1; i < n_rows; i++) {
        if (sorted[i] == sorted[i - 1]) {
            QB_FAIL(err, "results file %s: task id %016" PRIx64 " appears twice in the task list",
                    path, sorted[i]);
            free(sorted);
            goto out;
        }
    }
    free(sorted);
    if ((r->row_type = qb_results_row_type(0, path, err)) < 0) goto out;
    /* Where HDF5 does convert rows (big-endian hosts), it calloc's its
     * conversion and background buffers at full size (1 MB each by
     * default) on every H5Dwrite: one row's worth is all a record needs. */
    r->dxpl_row = H5Pcreate(H5P_DATASET_XFER);
    if (r->dxpl_row < 0 || H5Pset_buffer(r->dxpl_row, sizeof(qb_task_row), NULL, NULL) < 0) {
        QB_H5_FAIL(err, path, "H5Pset_buffer", "transfer list for one row");
        goto out;
    }

    struct stat st;
    if (stat(path, &st) == 0) {
        if (!S_ISREG(st.st_mode)) {
            QB_FAIL(err, "results file %s exists and is not a regular file", path);
            goto out;
        }
    } else if (errno != ENOENT) {
        QB_FAIL(err, "results file %s: %s", path, strerror(errno));
        goto out;
    } else if (check_space(path,
                           (uint64_t)n_rows * QB_RESULTS_ROW_SIZE +
                               QB_RESULTS_TASKS_CHUNK * QB_RESULTS_ROW_SIZE,
                           err) < 0 ||
               create_file(r, cfg, &src, err) < 0) {
        goto out;
    }
    if (open_file(r, cfg, &src, err) < 0) goto out;
    if (status) memcpy(status, r->status, n_rows);
    *out = r;
    r = NULL;
    rc = 0;
out:
    results_free(r);
    qb_h5_quiet_end(&q);
    return rc;
}

int qb_results_create_or_open(qb_results **out, const qb_results_config *cfg,
                              const qb_task_row *rows, size_t n_rows, uint8_t *status,
                              qb_error *err)
{
    return qb_results_create_or_open_fn(out, cfg, n_rows, copy_row_fn, (void *)rows, status, err);
}

size_t qb_results_n_tasks(const qb_results *r)
{
    return r->n_tasks;
}

qb_task_status qb_results_status(const qb_results *r, size_t index)
{
    QB_ASSERT(index < r->n_tasks);
    return (qb_task_status)r->status[index];
}

/* ---- writing ------------------------------------------------------------------ */

int qb_results_record(qb_results *r, size_t index, const qb_task_row *row, qb_error *err)
{
    if (index >= r->n_tasks)
        return QB_FAIL(err, "results file %s: task index %zu out of range (%zu tasks)", r->path,
                       index, r->n_tasks);
    if (row->task_id != r->ids[index])
        return QB_FAIL(err, "results file %s: row for task %zu has id %016" PRIx64 ", expected "
                       "%016" PRIx64, r->path, index, row->task_id, r->ids[index]);
    if (!qb_task_status_finished(row->status))
        return QB_FAIL(err, "results file %s: task %zu: status %d is not ok, invalid or failed",
                       r->path, index, (int)row->status);
    if (row->detected < QB_DETECTED_NA || row->detected > QB_DETECTED_ERROR)
        return QB_FAIL(err, "results file %s: task %zu: detected %d is not -1..2", r->path, index,
                       (int)row->detected);
    qb_task_row copy = *row;
    qb_h5_quiet q;
    qb_h5_quiet_begin(&q);
    int rc = qb_results_rows_xfer(1, r->tasks, r->row_type, r->dxpl_row, r->rowpos[index], 1, &copy,
                                  r->path, err);
    qb_h5_quiet_end(&q);
    if (rc == 0) r->status[index] = (uint8_t)row->status;
    return rc;
}

int qb_results_get_row(qb_results *r, size_t index, qb_task_row *row, qb_error *err)
{
    if (index >= r->n_tasks)
        return QB_FAIL(err, "results file %s: task index %zu out of range (%zu tasks)", r->path,
                       index, r->n_tasks);
    qb_h5_quiet q;
    qb_h5_quiet_begin(&q);
    int rc = qb_results_rows_xfer(0, r->tasks, r->row_type, r->dxpl_row, r->rowpos[index], 1, row,
                                  r->path, err);
    qb_h5_quiet_end(&q);
    return rc;
}


int qb_results_write_detail(qb_results *r, size_t index, const char *name, const double *values,
                            size_t n, qb_error *err)
{
    if (index >= r->n_tasks)
        return QB_FAIL(err, "results file %s: task index %zu out of range (%zu tasks)", r->path,
                       index, r->n_tasks);
    if (!qb_results_detail_name_ok(name))
        return QB_FAIL(err, "results file %s: detail name \"%s\" is not [A-Za-z0-9_.-]{1,%d}",
                       r->path, name ? name : "(null)", QB_RESULTS_DETAIL_NAME_MAX);
    if (n > 0 && !values)
        return QB_FAIL(err, "results file %s: detail %s: no values", r->path, name);
    if (n > (SIZE_MAX - 65536) / sizeof(double))
        return QB_FAIL(err, "results file %s: detail %s: %zu values is too many", r->path, name, n);
    /* Object headers and group entries: a few KB per array. */
    if (check_space(r->path, (uint64_t)n * sizeof(double) + 65536, err) < 0) return -1;
    char dname[17];
    snprintf(dname, sizeof dname, "%016" PRIx64, r->ids[index]);
    qb_h5_quiet q;
    qb_h5_quiet_begin(&q);
    hid_t g = H5I_INVALID_HID, space = H5I_INVALID_HID, d = H5I_INVALID_HID;
    int rc = -1, made_group = 0, made_dset = 0;
    int e = qb_h5_link_exists(r->details, name, r->path, err);
    if (e < 0) goto out;
    made_group = !e;
    g = e ? H5Gopen2(r->details, name, H5P_DEFAULT)
          : H5Gcreate2(r->details, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) {
        made_group = 0;
        QB_H5_FAIL(err, r->path, e ? "H5Gopen2" : "H5Gcreate2", "/details/%s", name);
        goto out;
    }
    e = qb_h5_link_exists(g, dname, r->path, err);
    if (e < 0) goto out;
    if (e && H5Ldelete(g, dname, H5P_DEFAULT) < 0) {
        QB_H5_FAIL(err, r->path, "H5Ldelete", "the old /details/%s/%s", name, dname);
        goto out;
    }
    hsize_t dims = n;
    if ((space = H5Screate_simple(1, &dims, NULL)) < 0) {
        QB_H5_FAIL(err, r->path, "H5Screate_simple", "/details/%s/%s", name, dname);
        goto out;
    }
    d = H5Dcreate2(g, dname, H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (d < 0) {
        QB_H5_FAIL(err, r->path, "H5Dcreate2", "/details/%s/%s", name, dname);
        goto out;
    }
    made_dset = 1;
    if (n > 0 && H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) < 0) {
        QB_H5_FAIL(err, r->path, "H5Dwrite", "/details/%s/%s (%zu values)", name, dname, n);
        goto out;
    }
    if (H5Dclose(d) < 0) {
        d = H5I_INVALID_HID;
        QB_H5_FAIL(err, r->path, "H5Dclose", "/details/%s/%s", name, dname);
        goto out;
    }
    d = H5I_INVALID_HID;
    rc = 0;
out:
    qb_h5_close(&d);
    qb_h5_close(&space);
    if (rc < 0) {
        /* Undo what this call added (a full disk: the space goes back to
         * HDF5, whose metadata stays writable, so the file can still be
         * flushed and closed and rows recorded). The error already set
         * stays the one reported. */
        if (made_dset) H5Ldelete(g, dname, H5P_DEFAULT);
        qb_h5_close(&g);
        if (made_group) H5Ldelete(r->details, name, H5P_DEFAULT);
    }
    qb_h5_close(&g);
    qb_h5_quiet_end(&q);
    return rc;
}

int qb_results_flush(qb_results *r, qb_error *err)
{
    qb_h5_quiet q;
    qb_h5_quiet_begin(&q);
    int rc = 0;
    if (H5Fflush(r->file, H5F_SCOPE_GLOBAL) < 0) rc = QB_H5_FAIL(err, r->path, "H5Fflush", "flush");
    qb_h5_quiet_end(&q);
    return rc;
}

int qb_results_close(qb_results *r, qb_error *err)
{
    if (!r) return 0;
    qb_h5_quiet q;
    qb_h5_quiet_begin(&q);
    int rc = 0;
    char now[32];
    iso_now(now);
    if (qb_h5_attr_put_str(r->file, "updated_at", now, r->path, err) < 0) rc = -1;
    if (rc == 0 && H5Fflush(r->file, H5F_SCOPE_GLOBAL) < 0)
        rc = QB_H5_FAIL(err, r->path, "H5Fflush", "closing");
    qb_h5_close(&r->details);
    qb_h5_close(&r->tasks);
    qb_h5_close(&r->row_type);
    qb_h5_close(&r->dxpl_row);
    hid_t f = r->file;
    r->file = H5I_INVALID_HID;
    if (H5Fclose(f) < 0 && rc == 0) rc = QB_H5_FAIL(err, r->path, "H5Fclose", "closing");
    /* H5Fclose writes the last metadata without MPI_File_sync: sync it. */
    int fd = open(r->path, O_RDONLY);
    if (fd >= 0) {
        if (fsync(fd) != 0 && rc == 0)
            rc = QB_FAIL(err, "results file %s: fsync: %s", r->path, strerror(errno));
        close(fd);
    }
    qb_h5_quiet_end(&q);
    results_free(r);
    return rc;
}
