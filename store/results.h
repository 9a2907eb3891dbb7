/* The results file: one HDF5 file per sweep, one row per task.
 *
 * Who opens it. Only rank 0 (the coordinator) opens the file, through the
 * parallel HDF5 library with the MPI-IO driver on MPI_COMM_SELF. Every
 * collective HDF5 call (create, open, close, flush, dataset creation,
 * set_extent) therefore involves rank 0 alone, and the coordinator may make
 * them whenever it likes. Workers send their rows to rank 0 by MPI. The
 * writer functions need MPI initialised (a singleton run is fine); the
 * readers (qb_results_read*) use HDF5's default POSIX driver and need no MPI.
 *
 * Layout (format_version 1)
 * -------------------------
 *   /tasks          1-D chunked, extendible compound dataset, one row per
 *                   task (qb_task_row below, packed, little-endian). Fixed
 *                   strings are NUL-padded (h5py reads them as bytes).
 *                   `status` and `detected` are HDF5 enums:
 *                     status    pending 0, ok 1, invalid 2, failed 3
 *                     detected  na -1 (no defense / not applicable), no 0,
 *                               yes 1, error 2 (the defense could not run)
 *                   Metrics are NaN when not applicable or not measured;
 *                   times are seconds (finished_at: Unix time). An attribute
 *                   `description` on /tasks repeats this.
 *   /details/<name>/<task id, 16 hex digits>
 *                   1-D float64 arrays of per-task stage outputs (a
 *                   defense's raw scores), qb_results_write_detail.
 *   root attributes format_version (int32, 1), spec_text (string), spec_hash
 *                   (16 hex digits), spec_hash_u64 (uint64), n_ranks (int32),
 *                   started_at, updated_at (ISO 8601 UTC strings), and the
 *                   caller's provenance key/value strings (qblind_version,
 *                   hdf5_version, gemm_f32_path, ...).
 *                   Strings are variable-length UTF-8 (h5py returns str).
 *
 * Loading /tasks with h5py (Debian python3-h5py) into pandas:
 *
 *   import h5py, numpy as np, pandas as pd
 *   with h5py.File("results.h5", "r") as f:
 *       t = f["/tasks"][:]                    # numpy structured array
 *       spec_hash = f.attrs["spec_hash"]      # '3f0c...' (str)
 *   cols = {}
 *   for name in t.dtype.names:
 *       col = t[name]
 *       if col.dtype.kind == "S":             # fixed strings come back as bytes
 *           col = np.char.decode(col, "utf-8")
 *       cols[name] = col
 *   df = pd.DataFrame(cols)
 *   df["status"] = df["status"].map({0: "pending", 1: "ok", 2: "invalid", 3: "failed"})
 *   df["task_id"] = df["task_id"].map("{:016x}".format)   # ids as in qblind's messages
 *
 * and a detail array: f["/details/nc/" + format(task_id, "016x")][:].
 *
 * Resume. Tasks are matched by task_id, never by position: reordering the
 * spec's lists finds the finished rows again. A task is finished when its
 * row's status is ok, invalid or failed; anything else (pending, a row
 * never written) is reissued.
 *
 * Durability (checked with strace and a SIGKILL test, Open MPI 4.1 OMPIO
 * on ext4). qb_results_record is one pwrite(2) of the packed row into
 * space allocated when the row was created: it changes no HDF5 metadata
 * and is visible to other processes at once. qb_results_flush calls
 * H5Fflush(H5F_SCOPE_GLOBAL): HDF5 writes its dirty metadata, then the
 * MPI-IO driver calls MPI_File_sync, which is fsync(2). So once record +
 * flush return 0 the row is on stable storage. A kill -9 of the job loses
 * no recorded row (the kernel has it; the test finds rows recorded after
 * the last flush too); a node crash or power loss loses at most the rows
 * recorded after the last flush. Not covered: HDF5 1.10
 * has no journal, so a crash or power loss *during* a flush that carries
 * metadata changes (a new detail array, the first open, --force) can leave
 * the file unreadable. Order for the coordinator: details, row, flush,
 * then count the task as done (one flush may cover a batch of rows; each
 * costs an fsync, about 3 ms here).
 *
 * Full disk. Recording never needs new space (on file systems that
 * overwrite in place; copy-on-write ones may). Operations that do (create,
 * resume appending rows, --force, a detail array) first check the free
 * space (statvfs) and refuse with "disk full?"; if a detail write fails
 * anyway, it is undone, so the file stays flushable and closeable and
 * recording goes on. This matters: HDF5 1.10.8 cannot close a file whose
 * metadata it failed to write, and then crashes inside MPI_Finalize
 * (H5F__close_cb) trying again. If qb_results_flush or qb_results_close
 * ever fails, end the process without MPI_Finalize (MPI_Abort or _exit):
 * the file keeps everything up to the last successful flush.
 *
 * Concurrency. Nothing stops two runs writing one file (the MPI-IO driver
 * takes no lock): that is the job script's business. Readers (qblind
 * status, h5py) may open the file while a run writes it; they see the rows
 * recorded so far.
 *
 * Code: the writer is store/results_writer.c, the serial readers
 * store/results_reader.c; both use the /tasks table of
 * store/results_schema.c and the HDF5 helpers of store/hdf5_util.c. */
#ifndef QB_RESULTS_H
#define QB_RESULTS_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "defenses/verdict.h"

#define QB_RESULTS_FORMAT_VERSION 1

typedef enum qb_task_status {
    QB_STATUS_PENDING = 0,
    QB_STATUS_OK = 1,      /* every stage ran; metrics recorded */
    QB_STATUS_INVALID = 2, /* the attack did not reach the validity bar */
    QB_STATUS_FAILED = 3,  /* a stage failed; `message` says why */
    QB_STATUS_COUNT
} qb_task_status;


/* String field sizes, NUL included. Every string is a C string: writing
 * stores at most size - 1 bytes and the rest as NULs; longer content is
 * cut (messages, host names), except that the axis strings of the initial
 * rows must fit (creation refuses them otherwise). */
#define QB_ROW_DATASET_LEN 16
#define QB_ROW_TRIGGER_LEN 16
#define QB_ROW_PRECISION_LEN 32
#define QB_ROW_MITIGATION_LEN 24
#define QB_ROW_DEFENSE_LEN 16
#define QB_ROW_MESSAGE_LEN 256
#define QB_ROW_HOST_LEN 64

/* One row of /tasks, as it is in memory (560 bytes; 544 packed in the
 * file). Plain bytes: an MPI message between ranks of one build may carry
 * it as MPI_BYTE. Start from qb_task_row_init so padding and "not
 * measured" fields have defined values. */
typedef struct qb_task_row {
    uint64_t task_id;                       /* jobs/task.h identity */
    uint64_t model_id;
    char dataset[QB_ROW_DATASET_LEN];
    int64_t seed;
    char trigger[QB_ROW_TRIGGER_LEN];
    char precision[QB_ROW_PRECISION_LEN];
    char mitigation[QB_ROW_MITIGATION_LEN];
    char defense[QB_ROW_DEFENSE_LEN];
    int32_t status;                         /* qb_task_status */
    char message[QB_ROW_MESSAGE_LEN];       /* why failed/invalid; "" when ok */
    double ca_quant, asr_quant;             /* after quantization, in [0, 1] */
    double ca_mitig, asr_mitig;             /* after mitigation + requantization */
    int32_t detected;                       /* qb_detected */
    double t_model, t_quant, t_mitig, t_defense, t_total; /* seconds */
    int32_t rank;                           /* the worker that ran it */
    char host[QB_ROW_HOST_LEN];
    double finished_at;                     /* Unix time */
    int32_t attempts;                       /* times it was started */
} qb_task_row;

/* A pending row: all bytes zero (padding included), strings empty, status
 * pending, metrics, times and finished_at NaN, detected na, rank -1,
 * attempts 0. The caller then sets ids and axis strings. */
void qb_task_row_init(qb_task_row *row);

/* "pending", "ok", "invalid", "failed"; "?" for other values. */
const char *qb_task_status_name(int32_t status);

/* 1 if status is ok, invalid or failed: a finished task, never reissued
 * (see Resume above); 0 for pending and unknown values. */
int qb_task_status_finished(int32_t status);

/* Whether a row read from a file is as qblind writes rows: status and
 * detected within their enums; every string column NUL-terminated inside
 * its field, NUL-padded after it, valid UTF-8 without control characters
 * (the message may hold tabs and newlines); CA/ASR NaN or in [0, 1]; times
 * NaN or finite and >= 0; finished_at NaN or finite; seed >= 0, rank >= -1,
 * attempts >= 0. Returns 0, or -1 with the first problem in why (n bytes,
 * e.g. "status 255 is not a task status"). A row overwritten with 0xFF or
 * random bytes fails. Used on rows as read, before their strings are
 * tidied (store/results_schema.c), and by anything that reads rows. */
int qb_task_row_validate(const qb_task_row *row, char *why, size_t n);

/* A provenance entry, written as a string attribute of the root group.
 * Keys are [A-Za-z0-9_.-]+ and may not be one of the names this module
 * writes itself (format_version, spec_text, spec_hash, spec_hash_u64,
 * n_ranks, started_at, updated_at). */
typedef struct qb_kv {
    const char *key;
    const char *value;
} qb_kv;

typedef struct qb_results_config {
    const char *path;
    const char *spec_text;      /* stored as the spec_text attribute */
    uint64_t spec_hash;         /* jobs/task.h: identifies the task list */
    int force;                  /* accept a file from another spec (see below) */
    int n_ranks;                /* MPI ranks of this run, stored as n_ranks */
    const qb_kv *provenance;    /* n_provenance entries; may be NULL if 0 */
    size_t n_provenance;
    int retry_failed;           /* failed rows count as not finished: their tasks
                                   run again; each old row stays until its task's
                                   new row replaces it */
} qb_results_config;

typedef struct qb_results qb_results;

/* Fills the pending row of the caller's task `index` (qb_task_row_init,
 * then ids and axis strings). Returns 0, or -1 with err set to abort. */
typedef int (*qb_results_row_fn)(void *ctx, size_t index, qb_task_row *row, qb_error *err);

/* Open the results file for the caller's task list, creating it if needed.
 * MPI must be initialised; call on rank 0 only.
 *
 * rows: the n_rows tasks of this run, in the caller's order (the order of
 * `index` below); their status and metric fields are ignored (pending rows
 * are written as given but with status pending). Task ids must be unique
 * and the axis strings must fit their fields, else -1.
 *
 * - `path` does not exist: the file is built beside it (path.tmp.<pid>),
 *   with every row pending in the caller's order, then renamed to `path`,
 *   so a crash during creation never leaves a half-made file at `path`.
 * - `path` exists: it must be a qblind results file (format_version 1 and a
 *   /tasks table with the expected columns and sizes), else -1 with a
 *   message naming the file and what is wrong (never overwritten). Then:
 *   - same spec_hash: rows are matched by task_id; a task not in the file
 *     gets a row (in a pending row no task of the list claims, else
 *     appended). File rows of tasks not in the list (none, for one spec)
 *     are left as they are.
 *   - other spec_hash and !force: -1, "results file X was written from a
 *     different spec (hash A, this spec B); ...".
 *   - other spec_hash and force: /tasks is rebuilt in the caller's order:
 *     finished rows of tasks still in the list are kept, every other task
 *     is pending, and rows of tasks no longer in the list are dropped
 *     (their /details arrays stay, named by task id). spec_text and
 *     spec_hash become this spec's.
 *   spec_text, n_ranks, updated_at and the provenance attributes are
 *   rewritten on every open; started_at is kept from creation.
 *
 * On success *out is a new handle (qb_results_close frees it) and, if
 * status is not NULL, status[i] (n_rows bytes) is the qb_task_status of
 * the caller's task i: ok/invalid/failed for finished rows found in the
 * file (failed ones pending with retry_failed), pending otherwise. On failure nothing stays open or allocated. */
int qb_results_create_or_open(qb_results **out, const qb_results_config *cfg,
                              const qb_task_row *rows, size_t n_rows, uint8_t *status,
                              qb_error *err);

/* The same, with the pending rows produced on demand by `fill` (called a
 * few times per index, in batches): a 1,000,000-task sweep then never
 * holds its 560 MB of rows in memory. The handle itself keeps 17 bytes per
 * task. */
int qb_results_create_or_open_fn(qb_results **out, const qb_results_config *cfg,
                                 size_t n_rows, qb_results_row_fn fill, void *ctx,
                                 uint8_t *status, qb_error *err);

/* Number of tasks of the handle (n_rows) and the status of task `index`
 * as the handle knows it (opened or recorded since). */
size_t qb_results_n_tasks(const qb_results *r);
qb_task_status qb_results_status(const qb_results *r, size_t index);

/* Write the finished row of the caller's task `index` (its file row, one
 * H5Dwrite). row->task_id must be that task's id and row->status ok,
 * invalid or failed, else -1 without writing. Strings are cut to their
 * fields. An I/O error (full disk) is returned, with the file named; rows
 * written before stay as they were. The row is durable after the next
 * successful qb_results_flush. */
int qb_results_record(qb_results *r, size_t index, const qb_task_row *row, qb_error *err);

/* Read back the current row of task `index` from the file. */
int qb_results_get_row(qb_results *r, size_t index, qb_task_row *row, qb_error *err);

/* Store values[0..n) as /details/<name>/<task id hex> (float64), replacing
 * an earlier array of that task. name: [A-Za-z0-9_.-]+, at most 64 bytes,
 * not "." or "..". Creates HDF5 metadata (see Durability above). */
int qb_results_write_detail(qb_results *r, size_t index, const char *name,
                            const double *values, size_t n, qb_error *err);

/* Make everything recorded so far durable: H5Fflush (global scope), which
 * on the MPI-IO driver ends in MPI_File_sync. -1 on an I/O error. */
int qb_results_flush(qb_results *r, qb_error *err);

/* Write updated_at, flush, close and free. Returns -1 if the final flush
 * or close failed (the handle is freed anyway). r may be NULL. */
int qb_results_close(qb_results *r, qb_error *err);

/* Serial readers (no MPI needed; HDF5's default POSIX driver). They check
 * the file as qb_results_create_or_open does. */

/* All rows of /tasks in file order: *rows (malloc'd, free()), *n_rows;
 * spec_hash may be NULL. */
int qb_results_read(const char *path, qb_task_row **rows, size_t *n_rows, uint64_t *spec_hash,
                    qb_error *err);

/* A damaged row of /tasks: its position in the file, the task id it
 * holds (itself possibly damaged) and what is wrong. */
typedef struct qb_results_damage {
    uint64_t row;
    uint64_t task_id;
    char why[96];
} qb_results_damage;

/* The damaged rows of a file, in file order: *list (malloc'd, free();
 * NULL when *n is 0). A resume treats them as free rows: their tasks run
 * again and the rows are rewritten. */
int qb_results_list_damaged(const char *path, qb_results_damage **list, size_t *n,
                            qb_error *err);

/* Rows per status (counts[QB_STATUS_COUNT]; damaged rows (see
 * qb_task_row_validate) count as pending: a resume reruns their tasks),
 * reading the rows in batches: for `qblind status` on large files. */
int qb_results_count(const char *path, size_t counts[QB_STATUS_COUNT], uint64_t *spec_hash,
                     qb_error *err);

/* The detail array `name` of a task: *values (malloc'd, free(); NULL when
 * n is 0), *n. -1 if there is none. */
int qb_results_read_detail(const char *path, uint64_t task_id, const char *name,
                           double **values, size_t *n, qb_error *err);

#endif
