/* The results file (store/results.h): /tasks, /details, root attributes.
 *
 * Every HDF5 call is checked; HDF5's own error printing is switched off
 * for the duration of each public function (and restored after), and a
 * failure becomes a qb_error naming the results file, the HDF5 call, what
 * it was doing and the innermost message of HDF5's error stack. */
#include "store/results.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
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
#include "core/xalloc.h"

/* Rows per chunk of /tasks: 256 x 544 bytes = 139 KB, big enough for fast
 * scans, small enough that a one-row write touches little. */
#define TASKS_CHUNK 256
/* Rows per batch when writing pending rows or scanning keys. */
#define BATCH 1024
/* A /tasks being rebuilt by --force; renamed to /tasks when complete. */
#define TASKS_NEW "tasks.new"
#define DETAIL_NAME_MAX 64

struct qb_results {
    char *path;
    hid_t file;      /* RDWR, MPI-IO on MPI_COMM_SELF */
    hid_t tasks;     /* /tasks */
    hid_t details;   /* /details */
    hid_t row_type;  /* packed row type in memory (make_row_type) */
    hid_t dxpl_row;  /* transfers of one row (see qb_results_create_or_open_fn) */
    size_t n_tasks;
    uint64_t *ids;    /* (n_tasks) the caller's task ids */
    uint64_t *rowpos; /* (n_tasks) file row of each task */
    uint8_t *status;  /* (n_tasks) qb_task_status */
};

/* ---- the columns of /tasks ------------------------------------------------ */

enum col_kind { COL_U64, COL_I64, COL_I32, COL_F64, COL_STR, COL_STATUS, COL_DETECTED };

typedef struct col {
    const char *name;
    size_t offset, size; /* in qb_task_row */
    enum col_kind kind;
} col;

#define COL(f, k) {#f, offsetof(qb_task_row, f), sizeof(((qb_task_row *)0)->f), k}
static const col COLS[] = {
    COL(task_id, COL_U64),     COL(model_id, COL_U64),   COL(dataset, COL_STR),
    COL(seed, COL_I64),        COL(trigger, COL_STR),    COL(precision, COL_STR),
    COL(mitigation, COL_STR),  COL(defense, COL_STR),    COL(status, COL_STATUS),
    COL(message, COL_STR),     COL(ca_quant, COL_F64),   COL(asr_quant, COL_F64),
    COL(ca_mitig, COL_F64),    COL(asr_mitig, COL_F64),  COL(detected, COL_DETECTED),
    COL(t_model, COL_F64),     COL(t_quant, COL_F64),    COL(t_mitig, COL_F64),
    COL(t_defense, COL_F64),   COL(t_total, COL_F64),    COL(rank, COL_I32),
    COL(host, COL_STR),        COL(finished_at, COL_F64), COL(attempts, COL_I32),
};
#undef COL
#define NCOLS (sizeof COLS / sizeof COLS[0])
#define FILE_ROW_SIZE 544 /* packed: the sum of the column sizes */

_Static_assert(sizeof(qb_task_row) == 560, "qb_task_row layout changed: update FILE_ROW_SIZE, docs");

static const char *const STATUS_NAMES[QB_STATUS_COUNT] = {"pending", "ok", "invalid", "failed"};
static const struct { const char *name; int32_t value; } DETECTED_NAMES[] = {
    {"na", QB_DETECTED_NA}, {"no", QB_DETECTED_NO}, {"yes", QB_DETECTED_YES},
    {"error", QB_DETECTED_ERROR},
};

static const char TASKS_DESCRIPTION[] =
    "One row per task of the sweep. status: pending 0, ok 1, invalid 2 (the attack did not "
    "reach the validity bar), failed 3 (message says why). ca_* / asr_*: clean accuracy and "
    "attack success rate in [0, 1] after quantization (quant) and after mitigation and "
    "requantization (mitig); NaN when not applicable. detected: na -1 (no defense), no 0, "
    "yes 1, error 2 (the defense could not run). t_*: seconds per stage; finished_at: Unix "
    "time; rank/host: the worker; attempts: times the task was started. Strings are "
    "NUL-padded. Detail arrays: /details/<name>/<task_id as 16 hex digits>.";

/* Root attributes written here; provenance keys may not use these names. */
static const char *const RESERVED_ATTRS[] = {"format_version", "spec_text", "spec_hash",
                                             "spec_hash_u64", "n_ranks", "started_at",
                                             "updated_at"};

void qb_task_row_init(qb_task_row *row)
{
    memset(row, 0, sizeof *row);
    row->status = QB_STATUS_PENDING;
    row->ca_quant = row->asr_quant = row->ca_mitig = row->asr_mitig = NAN;
    row->detected = QB_DETECTED_NA;
    row->t_model = row->t_quant = row->t_mitig = row->t_defense = row->t_total = NAN;
    row->rank = -1;
    row->finished_at = NAN;
    row->attempts = 0;
}

const char *qb_task_status_name(int32_t status)
{
    return status >= 0 && status < QB_STATUS_COUNT ? STATUS_NAMES[status] : "?";
}

static int is_finished(int32_t status)
{
    return status == QB_STATUS_OK || status == QB_STATUS_INVALID || status == QB_STATUS_FAILED;
}

/* ---- errors --------------------------------------------------------------- */

/* HDF5 prints its error stack unless told not to; each public function
 * silences it and restores the caller's handler on the way out. */
typedef struct h5_quiet {
    H5E_auto2_t fn;
    void *data;
} h5_quiet;

static void quiet_begin(h5_quiet *q)
{
    if (H5Eget_auto2(H5E_DEFAULT, &q->fn, &q->data) < 0) {
        q->fn = NULL;
        q->data = NULL;
    }
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

static void quiet_end(const h5_quiet *q)
{
    H5Eset_auto2(H5E_DEFAULT, q->fn, q->data);
}

/* The innermost entry of the error stack: where HDF5 first saw the problem
 * ("truncated file: eof = 96, ...", "file signature not found"). */
static herr_t innermost_cb(unsigned n, const H5E_error2_t *e, void *data)
{
    if (n != 0) return 0;
    char minor[160] = "";
    H5E_type_t type;
    if (H5Eget_msg(e->min_num, &type, minor, sizeof minor) < 0) minor[0] = '\0';
    if (minor[0])
        snprintf((char *)data, 400, "%s (%s)", e->desc ? e->desc : "", minor);
    else
        snprintf((char *)data, 400, "%s", e->desc ? e->desc : "");
    return 0;
}

/* Call right after the failing HDF5 call (before any other HDF5 call
 * clears the stack). Returns -1. */
static int h5_fail_at(qb_error *err, const char *src, int line, const char *path,
                      const char *call, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static int h5_fail_at(qb_error *err, const char *src, int line, const char *path,
                      const char *call, const char *fmt, ...)
{
    char what[256], inner[400] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost_cb, inner);
    if (inner[0])
        return qb_error_set(err, src, line, "results file %s: %s failed (%s): %s", path, call,
                            what, inner);
    return qb_error_set(err, src, line, "results file %s: %s failed (%s)", path, call, what);
}
#define H5FAIL(err, path, call, ...) h5_fail_at((err), __FILE__, __LINE__, (path), (call), __VA_ARGS__)

static void close_id(hid_t *id)
{
    if (*id < 0) return;
    switch (H5Iget_type(*id)) {
    case H5I_FILE: H5Fclose(*id); break;
    case H5I_GROUP: H5Gclose(*id); break;
    case H5I_DATATYPE: H5Tclose(*id); break;
    case H5I_DATASPACE: H5Sclose(*id); break;
    case H5I_DATASET: H5Dclose(*id); break;
    case H5I_ATTR: H5Aclose(*id); break;
    case H5I_GENPROP_LST: H5Pclose(*id); break;
    default: break;
    }
    *id = H5I_INVALID_HID;
}

/* ---- types ---------------------------------------------------------------- */

static hid_t make_enum(enum col_kind kind, int in_file)
{
    hid_t t = H5Tenum_create(in_file ? H5T_STD_I32LE : H5T_NATIVE_INT32);
    if (t < 0) return t;
    if (kind == COL_STATUS) {
        for (int32_t v = 0; v < QB_STATUS_COUNT; v++)
            if (H5Tenum_insert(t, STATUS_NAMES[v], &v) < 0) goto fail;
    } else {
        for (size_t i = 0; i < sizeof DETECTED_NAMES / sizeof DETECTED_NAMES[0]; i++) {
            int32_t v = DETECTED_NAMES[i].value;
            if (H5Tenum_insert(t, DETECTED_NAMES[i].name, &v) < 0) goto fail;
        }
    }
    return t;
fail:
    H5Tclose(t);
    return H5I_INVALID_HID;
}

/* A new type for one column (the caller closes it). */
static hid_t column_type(const col *c, int in_file)
{
    hid_t t = H5I_INVALID_HID;
    switch (c->kind) {
    case COL_U64: return H5Tcopy(in_file ? H5T_STD_U64LE : H5T_NATIVE_UINT64);
    case COL_I64: return H5Tcopy(in_file ? H5T_STD_I64LE : H5T_NATIVE_INT64);
    case COL_I32: return H5Tcopy(in_file ? H5T_STD_I32LE : H5T_NATIVE_INT32);
    case COL_F64: return H5Tcopy(in_file ? H5T_IEEE_F64LE : H5T_NATIVE_DOUBLE);
    case COL_STATUS:
    case COL_DETECTED: return make_enum(c->kind, in_file);
    case COL_STR:
        t = H5Tcopy(H5T_C_S1);
        if (t < 0) return t;
        if (H5Tset_size(t, c->size) < 0 || H5Tset_strpad(t, H5T_STR_NULLPAD) < 0) {
            H5Tclose(t);
            return H5I_INVALID_HID;
        }
        return t;
    }
    return H5I_INVALID_HID;
}

/* The row type, packed (FILE_ROW_SIZE bytes, columns back to back): in
 * the file little-endian, in memory native. Rows are packed in memory
 * (pack_rows) before they are written, so that on little-endian hosts the
 * two types are equal and HDF5 converts nothing: with a conversion, every
 * H5Dwrite looked up a compound conversion path (member names compared
 * with strcmp) and calloc'd two 1 MB buffers, 80 us for one row. */
static hid_t make_row_type(int in_file, const char *path, qb_error *err)
{
    hid_t t = H5Tcreate(H5T_COMPOUND, FILE_ROW_SIZE);
    if (t < 0) return H5FAIL(err, path, "H5Tcreate", "the /tasks row type"), H5I_INVALID_HID;
    size_t off = 0;
    for (size_t i = 0; i < NCOLS; i++) {
        hid_t m = column_type(&COLS[i], in_file);
        if (m < 0 || H5Tinsert(t, COLS[i].name, off, m) < 0) {
            H5FAIL(err, path, "H5Tinsert", "column %s of the /tasks row type", COLS[i].name);
            if (m >= 0) H5Tclose(m);
            H5Tclose(t);
            return H5I_INVALID_HID;
        }
        H5Tclose(m);
        off += COLS[i].size;
    }
    QB_ASSERT(off == FILE_ROW_SIZE);
    return t;
}

/* task_id and status only: scanning a file for what is finished. */
typedef struct row_key {
    uint64_t task_id;
    int32_t status;
} row_key;

static hid_t make_key_type(const char *path, qb_error *err)
{
    hid_t t = H5Tcreate(H5T_COMPOUND, sizeof(row_key));
    hid_t st = make_enum(COL_STATUS, 0);
    if (t < 0 || st < 0 || H5Tinsert(t, "task_id", offsetof(row_key, task_id), H5T_NATIVE_UINT64) < 0 ||
        H5Tinsert(t, "status", offsetof(row_key, status), st) < 0) {
        H5FAIL(err, path, "H5Tinsert", "the /tasks key type");
        if (st >= 0) H5Tclose(st);
        if (t >= 0) H5Tclose(t);
        return H5I_INVALID_HID;
    }
    H5Tclose(st);
    return t;
}

/* ---- attributes ------------------------------------------------------------ */

static int attr_exists(hid_t obj, const char *name, const char *path, qb_error *err)
{
    htri_t e = H5Aexists(obj, name);
    if (e < 0) return H5FAIL(err, path, "H5Aexists", "attribute %s", name);
    return e > 0;
}

/* Create or replace a scalar attribute. */
static int put_attr(hid_t obj, const char *name, hid_t type, hid_t mem_type, const void *value,
                    const char *path, qb_error *err)
{
    int e = attr_exists(obj, name, path, err);
    if (e < 0) return -1;
    if (e) {
        /* Same type and shape: overwrite in place (no new object header
         * space). Otherwise replace the attribute. */
        hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
        if (a < 0) return H5FAIL(err, path, "H5Aopen", "attribute %s", name);
        hid_t t = H5Aget_type(a), s = H5Aget_space(a);
        int same = t >= 0 && s >= 0 && H5Tequal(t, type) > 0 &&
                   H5Sget_simple_extent_type(s) == H5S_SCALAR;
        if (t >= 0) H5Tclose(t);
        if (s >= 0) H5Sclose(s);
        if (same) {
            int rc = 0;
            if (H5Awrite(a, mem_type, value) < 0)
                rc = H5FAIL(err, path, "H5Awrite", "attribute %s", name);
            if (H5Aclose(a) < 0 && rc == 0) rc = H5FAIL(err, path, "H5Aclose", "attribute %s", name);
            return rc;
        }
        H5Aclose(a);
        if (H5Adelete(obj, name) < 0) return H5FAIL(err, path, "H5Adelete", "attribute %s", name);
    }
    hid_t space = H5Screate(H5S_SCALAR);
    if (space < 0) return H5FAIL(err, path, "H5Screate", "attribute %s", name);
    hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    H5Sclose(space);
    if (a < 0) return H5FAIL(err, path, "H5Acreate2", "attribute %s", name);
    if (H5Awrite(a, mem_type, value) < 0) {
        H5FAIL(err, path, "H5Awrite", "attribute %s", name);
        H5Aclose(a);
        return -1;
    }
    if (H5Aclose(a) < 0) return H5FAIL(err, path, "H5Aclose", "attribute %s", name);
    return 0;
}

static hid_t vlen_string_type(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return t;
    if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

/* 1 if the attribute exists as a string equal to value, else 0. */
static int attr_str_equals(hid_t obj, const char *name, hid_t vl_type, const char *value)
{
    if (H5Aexists(obj, name) <= 0) return 0;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return 0;
    hid_t t = H5Aget_type(a);
    int same = 0;
    if (t >= 0 && H5Tequal(t, vl_type) > 0) {
        char *stored = NULL;
        if (H5Aread(a, vl_type, &stored) >= 0 && stored) {
            same = strcmp(stored, value) == 0;
            H5free_memory(stored);
        }
    }
    if (t >= 0) H5Tclose(t);
    H5Aclose(a);
    return same;
}

/* Variable-length UTF-8 string attribute. An unchanged value is not
 * rewritten: each write of a variable-length string takes new space in
 * the file (a 300 KB spec_text would grow the file on every resume). */
static int put_attr_str(hid_t obj, const char *name, const char *value, const char *path,
                        qb_error *err)
{
    hid_t t = vlen_string_type();
    if (t < 0) return H5FAIL(err, path, "H5Tcopy", "string type for attribute %s", name);
    int rc = attr_str_equals(obj, name, t, value) ? 0 : put_attr(obj, name, t, t, &value, path, err);
    H5Tclose(t);
    return rc;
}

static int put_attr_i32(hid_t obj, const char *name, int32_t v, const char *path, qb_error *err)
{
    return put_attr(obj, name, H5T_STD_I32LE, H5T_NATIVE_INT32, &v, path, err);
}

/* Read an integer attribute (any integer type HDF5 converts to int64 /
 * uint64). Returns 1 if present, 0 if absent, -1 on error. */
static int get_attr_int(hid_t obj, const char *name, int is_unsigned, void *out, const char *path,
                        qb_error *err)
{
    int e = attr_exists(obj, name, path, err);
    if (e <= 0) return e;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return H5FAIL(err, path, "H5Aopen", "attribute %s", name);
    hid_t t = H5Aget_type(a), s = H5Aget_space(a);
    int rc = -1;
    if (t < 0 || s < 0) {
        H5FAIL(err, path, "H5Aget_type", "attribute %s", name);
    } else if (H5Tget_class(t) != H5T_INTEGER || H5Sget_simple_extent_npoints(s) != 1) {
        QB_FAIL(err, "results file %s: attribute %s is not a single integer", path, name);
    } else if (H5Aread(a, is_unsigned ? H5T_NATIVE_UINT64 : H5T_NATIVE_INT64, out) < 0) {
        H5FAIL(err, path, "H5Aread", "attribute %s", name);
    } else {
        rc = 1;
    }
    if (t >= 0) H5Tclose(t);
    if (s >= 0) H5Sclose(s);
    H5Aclose(a);
    return rc;
}

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
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (slash == dir) slash[1] = '\0';
    else if (slash) *slash = '\0';
    struct statvfs sv;
    int rc = 0;
    if (statvfs(slash ? dir : ".", &sv) == 0) {
        uint64_t avail = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
        if (avail < bytes + SPACE_RESERVE)
            rc = QB_FAIL(err, "results file %s: its file system has %" PRIu64 " bytes free, "
                         "%" PRIu64 " are needed (disk full?)", path, avail, bytes + SPACE_RESERVE);
    }
    free(dir);
    return rc;
}

/* ---- checking an existing file -------------------------------------------- */

static const char *class_name(H5T_class_t c)
{
    switch (c) {
    case H5T_INTEGER: return "integer";
    case H5T_FLOAT: return "float";
    case H5T_STRING: return "string";
    case H5T_ENUM: return "enum";
    case H5T_COMPOUND: return "compound";
    default: return "other type";
    }
}

static int check_column(hid_t ft, const col *c, const char *path, qb_error *err)
{
    int idx = H5Tget_member_index(ft, c->name);
    if (idx < 0)
        return QB_FAIL(err, "results file %s: /tasks has no column '%s'; not a qblind results "
                       "file of format %d", path, c->name, QB_RESULTS_FORMAT_VERSION);
    hid_t mt = H5Tget_member_type(ft, (unsigned)idx);
    if (mt < 0) return H5FAIL(err, path, "H5Tget_member_type", "column %s of /tasks", c->name);
    H5T_class_t cls = H5Tget_class(mt);
    size_t size = H5Tget_size(mt);
    H5T_class_t want = c->kind == COL_STR ? H5T_STRING
                     : c->kind == COL_F64 ? H5T_FLOAT
                     : (c->kind == COL_STATUS || c->kind == COL_DETECTED) ? H5T_ENUM
                                                                          : H5T_INTEGER;
    int rc = 0;
    if (cls != want || size != c->size || (cls == H5T_STRING && H5Tis_variable_str(mt) > 0)) {
        rc = QB_FAIL(err, "results file %s: column '%s' of /tasks has a different type (%s of "
                     "%zu bytes, expected %s of %zu); not a qblind results file of format %d",
                     path, c->name, class_name(cls), size, class_name(want), c->size,
                     QB_RESULTS_FORMAT_VERSION);
    } else if (cls == H5T_ENUM) {
        /* Same names with the same values: HDF5 converts enums by name. */
        hid_t want_t = make_enum(c->kind, 0);
        int n = H5Tget_nmembers(mt), n_want = H5Tget_nmembers(want_t);
        int same = want_t >= 0 && n == n_want;
        for (int i = 0; same && i < n_want; i++) {
            char *name = H5Tget_member_name(want_t, (unsigned)i);
            int32_t v_want = 0, v = 0;
            same = name && H5Tget_member_value(want_t, (unsigned)i, &v_want) >= 0 &&
                   H5Tenum_valueof(mt, name, &v) >= 0 && v == v_want;
            if (name) H5free_memory(name);
        }
        if (want_t >= 0) H5Tclose(want_t);
        if (!same)
            rc = QB_FAIL(err, "results file %s: column '%s' of /tasks has other enum values "
                         "than qblind's; not a qblind results file of format %d",
                         path, c->name, QB_RESULTS_FORMAT_VERSION);
    }
    H5Tclose(mt);
    return rc;
}

/* Check that `dset` is a 1-D table with exactly qblind's columns; *n_rows
 * is its length. */
static int check_tasks(hid_t dset, const char *path, uint64_t *n_rows, qb_error *err)
{
    hid_t ft = H5Dget_type(dset), space = H5Dget_space(dset);
    int rc = -1;
    if (ft < 0 || space < 0) {
        H5FAIL(err, path, "H5Dget_type", "/tasks");
        goto out;
    }
    if (H5Tget_class(ft) != H5T_COMPOUND) {
        QB_FAIL(err, "results file %s: /tasks is not a table (compound dataset); not a qblind "
                "results file", path);
        goto out;
    }
    int nmemb = H5Tget_nmembers(ft);
    if (nmemb != (int)NCOLS) {
        QB_FAIL(err, "results file %s: /tasks has %d columns, expected %zu; not a qblind results "
                "file of format %d", path, nmemb, NCOLS, QB_RESULTS_FORMAT_VERSION);
        goto out;
    }
    for (size_t i = 0; i < NCOLS; i++)
        if (check_column(ft, &COLS[i], path, err) < 0) goto out;
    hsize_t dims[1];
    if (H5Sget_simple_extent_ndims(space) != 1 || H5Sget_simple_extent_dims(space, dims, NULL) < 0) {
        QB_FAIL(err, "results file %s: /tasks is not one-dimensional", path);
        goto out;
    }
    *n_rows = dims[0];
    rc = 0;
out:
    if (ft >= 0) H5Tclose(ft);
    if (space >= 0) H5Sclose(space);
    return rc;
}

static int link_exists(hid_t loc, const char *name, const char *path, qb_error *err)
{
    htri_t e = H5Lexists(loc, name, H5P_DEFAULT);
    if (e < 0) return H5FAIL(err, path, "H5Lexists", "%s", name);
    return e > 0;
}

/* Check the root attributes and open the task table: /tasks, or a
 * completed /tasks.new left by a --force rebuild interrupted between
 * removing the old table and renaming the new one. */
static int open_checked(hid_t file, const char *path, hid_t *tasks, uint64_t *n_rows,
                        uint64_t *spec_hash, qb_error *err)
{
    *tasks = H5I_INVALID_HID;
    int64_t version = 0;
    int e = get_attr_int(file, "format_version", 0, &version, path, err);
    if (e < 0) return -1;
    if (e == 0)
        return QB_FAIL(err, "results file %s is not a qblind results file (no format_version "
                       "attribute)", path);
    if (version != QB_RESULTS_FORMAT_VERSION)
        return QB_FAIL(err, "results file %s has format_version %" PRId64 "; this qblind reads "
                       "format %d", path, version, QB_RESULTS_FORMAT_VERSION);
    uint64_t hash = 0;
    e = get_attr_int(file, "spec_hash_u64", 1, &hash, path, err);
    if (e < 0) return -1;
    if (e == 0)
        return QB_FAIL(err, "results file %s has no spec_hash_u64 attribute; not a qblind "
                       "results file", path);
    int has = link_exists(file, "tasks", path, err);
    if (has < 0) return -1;
    const char *name = "tasks";
    if (!has) {
        int has_new = link_exists(file, TASKS_NEW, path, err);
        if (has_new < 0) return -1;
        if (!has_new)
            return QB_FAIL(err, "results file %s has no /tasks table; not a qblind results file",
                           path);
        name = TASKS_NEW;
    }
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    if (d < 0) return H5FAIL(err, path, "H5Dopen2", "/%s (is it a dataset?)", name);
    if (check_tasks(d, path, n_rows, err) < 0) {
        H5Dclose(d);
        return -1;
    }
    *tasks = d;
    if (spec_hash) *spec_hash = hash;
    return 0;
}

/* ---- row I/O ---------------------------------------------------------------- */

static hid_t slab_space(hid_t dset, hsize_t start, hsize_t count)
{
    hid_t s = H5Dget_space(dset);
    if (s < 0) return s;
    if (H5Sselect_hyperslab(s, H5S_SELECT_SET, &start, NULL, &count, NULL) < 0) {
        H5Sclose(s);
        return H5I_INVALID_HID;
    }
    return s;
}

/* Rows [start, start + count) of dset <-> buf (elements of mem_type). */
static int rows_io(int write, hid_t dset, hid_t mem_type, hid_t dxpl, hsize_t start, hsize_t count,
                   void *buf, const char *path, qb_error *err)
{
    if (count == 0) return 0;
    hid_t fs = slab_space(dset, start, count);
    if (fs < 0) return H5FAIL(err, path, "H5Sselect_hyperslab", "rows %llu..%llu of /tasks",
                              (unsigned long long)start, (unsigned long long)(start + count - 1));
    hid_t ms = H5Screate_simple(1, &count, NULL);
    if (ms < 0) {
        H5Sclose(fs);
        return H5FAIL(err, path, "H5Screate_simple", "memory space of %llu rows",
                      (unsigned long long)count);
    }
    herr_t st = write ? H5Dwrite(dset, mem_type, ms, fs, dxpl, buf)
                      : H5Dread(dset, mem_type, ms, fs, dxpl, buf);
    int rc = 0;
    if (st < 0)
        rc = H5FAIL(err, path, write ? "H5Dwrite" : "H5Dread", "rows %llu..%llu of /tasks",
                    (unsigned long long)start, (unsigned long long)(start + count - 1));
    H5Sclose(ms);
    H5Sclose(fs);
    return rc;
}

/* Strings as C strings, NUL-padded: the last byte is NUL and so is every
 * byte after the first NUL (h5py would show bytes after an inner NUL). */
static void tidy_strings(qb_task_row *row)
{
    for (size_t i = 0; i < NCOLS; i++) {
        if (COLS[i].kind != COL_STR) continue;
        char *s = (char *)row + COLS[i].offset;
        size_t len = strnlen(s, COLS[i].size - 1);
        memset(s + len, 0, COLS[i].size - len);
    }
}

/* qb_task_row <-> packed rows of FILE_ROW_SIZE bytes (native byte order). */
static void pack_rows(const qb_task_row *rows, size_t k, uint8_t *buf)
{
    for (size_t r = 0; r < k; r++) {
        qb_task_row row = rows[r];
        tidy_strings(&row);
        uint8_t *p = buf + r * FILE_ROW_SIZE;
        for (size_t i = 0; i < NCOLS; i++) {
            memcpy(p, (const char *)&row + COLS[i].offset, COLS[i].size);
            p += COLS[i].size;
        }
    }
}

static void unpack_rows(const uint8_t *buf, size_t k, qb_task_row *rows)
{
    for (size_t r = 0; r < k; r++) {
        qb_task_row *row = &rows[r];
        memset(row, 0, sizeof *row);
        const uint8_t *p = buf + r * FILE_ROW_SIZE;
        for (size_t i = 0; i < NCOLS; i++) {
            memcpy((char *)row + COLS[i].offset, p, COLS[i].size);
            p += COLS[i].size;
        }
        tidy_strings(row);
    }
}

/* Rows [start, start + k) of dset <-> rows[0..k), through packed rows. */
static int rows_xfer(int write, hid_t dset, hid_t row_type, hid_t dxpl, hsize_t start, size_t k,
                     qb_task_row *rows, const char *path, qb_error *err)
{
    uint8_t one[FILE_ROW_SIZE];
    uint8_t *buf = k <= 1 ? one : xmalloc(k, FILE_ROW_SIZE);
    if (write) pack_rows(rows, k, buf);
    int rc = rows_io(write, dset, row_type, dxpl, start, k, buf, path, err);
    if (rc == 0 && !write) unpack_rows(buf, k, rows);
    if (buf != one) free(buf);
    return rc;
}

/* Write rows[0..k) to file rows pos[0..k), one H5Dwrite per run of
 * consecutive positions. */
static int write_rows_at(hid_t dset, hid_t row_type, const uint64_t *pos, qb_task_row *rows,
                         size_t k, const char *path, qb_error *err)
{
    size_t i = 0;
    while (i < k) {
        size_t j = i + 1;
        while (j < k && pos[j] == pos[j - 1] + 1) j++;
        if (rows_xfer(1, dset, row_type, H5P_DEFAULT, pos[i], j - i, rows + i, path, err) < 0)
            return -1;
        i = j;
    }
    return 0;
}

/* Read the file rows pos[0..k) (any order) into rows[0..k). */
static int read_rows_at(hid_t dset, hid_t row_type, const uint64_t *pos, qb_task_row *rows, size_t k,
                        const char *path, qb_error *err)
{
    if (k == 0) return 0;
    hsize_t *coords = xmalloc(k, sizeof *coords);
    for (size_t i = 0; i < k; i++) coords[i] = pos[i];
    hsize_t count = k;
    hid_t fs = H5Dget_space(dset), ms = H5Screate_simple(1, &count, NULL);
    uint8_t *buf = xmalloc(k, FILE_ROW_SIZE);
    int rc = -1;
    if (fs < 0 || ms < 0 || H5Sselect_elements(fs, H5S_SELECT_SET, k, coords) < 0)
        H5FAIL(err, path, "H5Sselect_elements", "%zu rows of /tasks", k);
    else if (H5Dread(dset, row_type, ms, fs, H5P_DEFAULT, buf) < 0)
        H5FAIL(err, path, "H5Dread", "%zu rows of /tasks", k);
    else
        rc = 0;
    if (rc == 0) unpack_rows(buf, k, rows);
    free(buf);
    if (fs >= 0) H5Sclose(fs);
    if (ms >= 0) H5Sclose(ms);
    free(coords);
    return rc;
}

/* Keys of every row: keys[i] = (task_id, status) of file row i. */
static int read_keys(hid_t dset, uint64_t n, row_key **keys, const char *path, qb_error *err)
{
    *keys = NULL;
    hid_t kt = make_key_type(path, err);
    if (kt < 0) return -1;
    row_key *k = xmalloc(n ? n : 1, sizeof *k);
    for (uint64_t start = 0; start < n; start += BATCH) {
        uint64_t count = n - start < BATCH ? n - start : BATCH;
        if (rows_io(0, dset, kt, H5P_DEFAULT, start, count, k + start, path, err) < 0) {
            free(k);
            H5Tclose(kt);
            return -1;
        }
    }
    H5Tclose(kt);
    *keys = k;
    return 0;
}

/* ---- opening ------------------------------------------------------------------ */

static hid_t mpio_fapl(const char *path, qb_error *err)
{
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0) return H5FAIL(err, path, "H5Pcreate", "file access list"), H5I_INVALID_HID;
    /* Superblock and object header versions of HDF5 1.8: no file-consistency
     * flags, so a file whose writer was killed opens again (and old h5py
     * reads it). */
    if (H5Pset_fapl_mpio(fapl, MPI_COMM_SELF, MPI_INFO_NULL) < 0 ||
        H5Pset_libver_bounds(fapl, H5F_LIBVER_EARLIEST, H5F_LIBVER_V18) < 0) {
        H5FAIL(err, path, "H5Pset_fapl_mpio", "MPI-IO on MPI_COMM_SELF");
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
    if (put_attr_i32(file, "format_version", QB_RESULTS_FORMAT_VERSION, path, err) < 0 ||
        put_attr_str(file, "spec_text", cfg->spec_text, path, err) < 0 ||
        put_attr_str(file, "spec_hash", hex, path, err) < 0 ||
        put_attr(file, "spec_hash_u64", H5T_STD_U64LE, H5T_NATIVE_UINT64, &cfg->spec_hash, path,
                 err) < 0 ||
        put_attr_i32(file, "n_ranks", cfg->n_ranks, path, err) < 0 ||
        put_attr_str(file, "updated_at", now, path, err) < 0)
        return -1;
    int e = attr_exists(file, "started_at", path, err);
    if (e < 0 || (!e && put_attr_str(file, "started_at", now, path, err) < 0)) return -1;
    for (size_t i = 0; i < cfg->n_provenance; i++)
        if (put_attr_str(file, cfg->provenance[i].key, cfg->provenance[i].value, path, err) < 0)
            return -1;
    return 0;
}

static hid_t create_tasks_dataset(hid_t file, const char *name, uint64_t n, const char *path,
                                  qb_error *err)
{
    hsize_t dims = n, maxdims = H5S_UNLIMITED, chunk = TASKS_CHUNK;
    hid_t ft = make_row_type(1, path, err);
    if (ft < 0) return H5I_INVALID_HID;
    hid_t space = H5Screate_simple(1, &dims, &maxdims);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t d = H5I_INVALID_HID;
    if (space < 0 || dcpl < 0 || H5Pset_chunk(dcpl, 1, &chunk) < 0)
        H5FAIL(err, path, "H5Pset_chunk", "/%s", name);
    else if ((d = H5Dcreate2(file, name, ft, space, H5P_DEFAULT, dcpl, H5P_DEFAULT)) < 0)
        H5FAIL(err, path, "H5Dcreate2", "/%s", name);
    else if (put_attr_str(d, "description", TASKS_DESCRIPTION, path, err) < 0)
        close_id(&d);
    if (space >= 0) H5Sclose(space);
    if (dcpl >= 0) H5Pclose(dcpl);
    H5Tclose(ft);
    return d;
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
        tidy_strings(&rows[i]);
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
    qb_task_row *rows = xmalloc(BATCH, sizeof *rows);
    size_t *idx = xmalloc(BATCH, sizeof *idx);
    int rc = -1;
    if (fapl < 0) goto out;
    file = H5Fcreate(tmp, H5F_ACC_EXCL, H5P_DEFAULT, fapl);
    if (file < 0) {
        H5FAIL(err, path, "H5Fcreate", "creating %s", tmp);
        goto out;
    }
    if (write_root_attrs(file, cfg, err) < 0) goto out;
    if ((d = create_tasks_dataset(file, "tasks", r->n_tasks, path, err)) < 0) goto out;
    if ((g = H5Gcreate2(file, "details", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT)) < 0) {
        H5FAIL(err, path, "H5Gcreate2", "/details");
        goto out;
    }
    for (size_t start = 0; start < r->n_tasks; start += BATCH) {
        size_t k = r->n_tasks - start < BATCH ? r->n_tasks - start : BATCH;
        for (size_t i = 0; i < k; i++) idx[i] = start + i;
        if (fill_pending(src, idx, k, rows, r->ids, path, err) < 0 ||
            rows_xfer(1, d, r->row_type, H5P_DEFAULT, start, k, rows, path, err) < 0)
            goto out;
    }
    if (H5Fflush(file, H5F_SCOPE_GLOBAL) < 0) {
        H5FAIL(err, path, "H5Fflush", "the new file %s", tmp);
        goto out;
    }
    close_id(&g);
    close_id(&d);
    if (H5Fclose(file) < 0) {
        file = H5I_INVALID_HID;
        H5FAIL(err, path, "H5Fclose", "the new file %s", tmp);
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
    close_id(&g);
    close_id(&d);
    close_id(&file);
    close_id(&fapl);
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
    int fx = is_finished(x->status), fy = is_finished(y->status);
    if (fx != fy) return fy - fx;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
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
    hid_t d = create_tasks_dataset(r->file, TASKS_NEW, r->n_tasks, path, err);
    if (d < 0) return -1;
    qb_task_row *rows = xmalloc(BATCH, sizeof *rows), *kept = xmalloc(BATCH, sizeof *kept);
    size_t *idx = xmalloc(BATCH, sizeof *idx), *kept_at = xmalloc(BATCH, sizeof *kept_at);
    uint64_t *kept_pos = xmalloc(BATCH, sizeof *kept_pos);
    int rc = -1;
    for (size_t start = 0; start < r->n_tasks; start += BATCH) {
        size_t k = r->n_tasks - start < BATCH ? r->n_tasks - start : BATCH, nk = 0;
        for (size_t i = 0; i < k; i++) idx[i] = start + i;
        if (fill_pending(src, idx, k, rows, r->ids, path, err) < 0) goto out;
        for (size_t i = 0; i < k; i++) {
            const file_key *m = match[start + i];
            if (m && is_finished(m->status)) {
                kept_at[nk] = i;
                kept_pos[nk++] = m->pos;
            }
        }
        if (read_rows_at(r->tasks, r->row_type, kept_pos, kept, nk, path, err) < 0) goto out;
        for (size_t j = 0; j < nk; j++) {
            if (kept[j].task_id != rows[kept_at[j]].task_id) {
                QB_FAIL(err, "results file %s: row %" PRIu64 " changed while it was being read",
                        path, kept_pos[j]);
                goto out;
            }
            rows[kept_at[j]] = kept[j];
        }
        if (rows_xfer(1, d, r->row_type, H5P_DEFAULT, start, k, rows, path, err) < 0) goto out;
    }
    if (H5Fflush(r->file, H5F_SCOPE_GLOBAL) < 0) {
        H5FAIL(err, path, "H5Fflush", "the rebuilt /" TASKS_NEW);
        goto out;
    }
    close_id(&r->tasks);
    if (H5Ldelete(r->file, "tasks", H5P_DEFAULT) < 0) {
        H5FAIL(err, path, "H5Ldelete", "the old /tasks");
        goto out;
    }
    close_id(&d);
    if (H5Lmove(r->file, TASKS_NEW, r->file, "tasks", H5P_DEFAULT, H5P_DEFAULT) < 0) {
        H5FAIL(err, path, "H5Lmove", "/" TASKS_NEW " to /tasks");
        goto out;
    }
    if ((r->tasks = H5Dopen2(r->file, "tasks", H5P_DEFAULT)) < 0) {
        H5FAIL(err, path, "H5Dopen2", "the rebuilt /tasks");
        goto out;
    }
    for (size_t i = 0; i < r->n_tasks; i++) r->rowpos[i] = i;
    rc = 0;
out:
    close_id(&d);
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
        if (!keys[j].claimed && !is_finished(keys[j].status)) slots[n_slots++] = keys[j].pos;
    qsort(slots, n_slots, sizeof *slots, cmp_u64);
    uint64_t n_new = n_file + (n_missing - n_slots);
    if (n_new > n_file) {
        hsize_t dims = n_new;
        if (H5Dset_extent(r->tasks, &dims) < 0) {
            free(slots);
            return H5FAIL(err, path, "H5Dset_extent", "/tasks to %" PRIu64 " rows", n_new);
        }
    }
    qb_task_row *rows = xmalloc(BATCH, sizeof *rows);
    size_t *idx = xmalloc(BATCH, sizeof *idx);
    uint64_t *pos = xmalloc(BATCH, sizeof *pos);
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
        if (k == BATCH || (i == r->n_tasks && k > 0)) {
            rc = fill_pending(src, idx, k, rows, r->ids, path, err) < 0 ||
                 write_rows_at(r->tasks, r->row_type, pos, rows, k, path, err) < 0 ? -1 : 0;
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
    row_key *rk = NULL;
    file_key *keys = NULL;
    file_key **match = NULL;
    uint64_t n_file = 0, stored_hash = 0;
    int rc = -1;
    if (fapl < 0) return -1;

    /* Check read-only first: a file that is not ours is never opened for
     * writing. */
    hid_t ro = H5Fopen(path, H5F_ACC_RDONLY, fapl);
    if (ro < 0) {
        H5FAIL(err, path, "H5Fopen", "opening it; is it an HDF5 file? A truncated or damaged "
               "results file cannot be resumed: move it away to start afresh");
        goto out;
    }
    if (open_checked(ro, path, &d, &n_file, &stored_hash, err) < 0) {
        H5Fclose(ro);
        goto out;
    }
    close_id(&d);
    if (H5Fclose(ro) < 0) {
        H5FAIL(err, path, "H5Fclose", "after checking");
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
    if (check_space(path, ((rebuild ? r->n_tasks : grow) + TASKS_CHUNK) * FILE_ROW_SIZE, err) < 0)
        goto out;

    r->file = H5Fopen(path, H5F_ACC_RDWR, fapl);
    if (r->file < 0) {
        H5FAIL(err, path, "H5Fopen", "opening for writing");
        goto out;
    }
    /* Finish or undo an interrupted --force rebuild. */
    int has_tasks = link_exists(r->file, "tasks", path, err);
    int has_new = has_tasks < 0 ? -1 : link_exists(r->file, TASKS_NEW, path, err);
    if (has_new < 0) goto out;
    if (has_new && has_tasks && H5Ldelete(r->file, TASKS_NEW, H5P_DEFAULT) < 0) {
        H5FAIL(err, path, "H5Ldelete", "an unfinished /" TASKS_NEW);
        goto out;
    }
    if (has_new && !has_tasks &&
        H5Lmove(r->file, TASKS_NEW, r->file, "tasks", H5P_DEFAULT, H5P_DEFAULT) < 0) {
        H5FAIL(err, path, "H5Lmove", "/" TASKS_NEW " to /tasks");
        goto out;
    }
    if ((r->tasks = H5Dopen2(r->file, "tasks", H5P_DEFAULT)) < 0) {
        H5FAIL(err, path, "H5Dopen2", "/tasks");
        goto out;
    }
    if (check_tasks(r->tasks, path, &n_file, err) < 0) goto out;
    int has_details = link_exists(r->file, "details", path, err);
    if (has_details < 0) goto out;
    r->details = has_details ? H5Gopen2(r->file, "details", H5P_DEFAULT)
                             : H5Gcreate2(r->file, "details", H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (r->details < 0) {
        H5FAIL(err, path, has_details ? "H5Gopen2" : "H5Gcreate2", "/details");
        goto out;
    }

    /* Match the caller's tasks with the file's rows by id. */
    if (read_keys(r->tasks, n_file, &rk, path, err) < 0) goto out;
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
        r->status[i] = is_finished(m->status) ? (uint8_t)m->status : QB_STATUS_PENDING;
    }
    if (rebuild) {
        if (rebuild_tasks(r, src, match, err) < 0) goto out;
    } else {
        if (add_missing(r, src, keys, n_file, match, err) < 0) goto out;
    }
    if (write_root_attrs(r->file, cfg, err) < 0) goto out;
    if (H5Fflush(r->file, H5F_SCOPE_GLOBAL) < 0) {
        H5FAIL(err, path, "H5Fflush", "after opening");
        goto out;
    }
    rc = 0;
out:
    close_id(&fapl);
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
    close_id(&r->details);
    close_id(&r->tasks);
    close_id(&r->row_type);
    close_id(&r->dxpl_row);
    close_id(&r->file);
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

    h5_quiet q;
    quiet_begin(&q);
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
        for (size_t c = 0; c < NCOLS; c++) {
            if (COLS[c].kind != COL_STR || strcmp(COLS[c].name, "message") == 0 ||
                strcmp(COLS[c].name, "host") == 0)
                continue;
            const char *s = (const char *)&row + COLS[c].offset;
            if (strnlen(s, COLS[c].size) == COLS[c].size) {
                QB_FAIL(err, "results file %s: task %zu (id %016" PRIx64 "): %s value \"%.*s...\" "
                        "is longer than its column (%zu bytes with the NUL)", path, i, row.task_id,
                        COLS[c].name, (int)COLS[c].size, s, COLS[c].size);
                goto out;
            }
        }
    }
    uint64_t *sorted = xmalloc(n_rows ? n_rows : 1, sizeof *sorted);
    memcpy(sorted, r->ids, n_rows * sizeof *sorted);
    qsort(sorted, n_rows, sizeof *sorted, cmp_u64);
    for (size_t i = 1; i < n_rows; i++) {
        if (sorted[i] == sorted[i - 1]) {
            QB_FAIL(err, "results file %s: task id %016" PRIx64 " appears twice in the task list",
                    path, sorted[i]);
            free(sorted);
            goto out;
        }
    }
    free(sorted);
    if ((r->row_type = make_row_type(0, path, err)) < 0) goto out;
    /* Where HDF5 does convert rows (big-endian hosts), it calloc's its
     * conversion and background buffers at full size (1 MB each by
     * default) on every H5Dwrite: one row's worth is all a record needs. */
    r->dxpl_row = H5Pcreate(H5P_DATASET_XFER);
    if (r->dxpl_row < 0 || H5Pset_buffer(r->dxpl_row, sizeof(qb_task_row), NULL, NULL) < 0) {
        H5FAIL(err, path, "H5Pset_buffer", "transfer list for one row");
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
    } else if (check_space(path, (uint64_t)n_rows * FILE_ROW_SIZE + TASKS_CHUNK * FILE_ROW_SIZE,
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
    quiet_end(&q);
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
    if (!is_finished(row->status))
        return QB_FAIL(err, "results file %s: task %zu: status %d is not ok, invalid or failed",
                       r->path, index, (int)row->status);
    if (row->detected < QB_DETECTED_NA || row->detected > QB_DETECTED_ERROR)
        return QB_FAIL(err, "results file %s: task %zu: detected %d is not -1..2", r->path, index,
                       (int)row->detected);
    qb_task_row copy = *row;
    h5_quiet q;
    quiet_begin(&q);
    int rc = rows_xfer(1, r->tasks, r->row_type, r->dxpl_row, r->rowpos[index], 1, &copy, r->path,
                       err);
    quiet_end(&q);
    if (rc == 0) r->status[index] = (uint8_t)row->status;
    return rc;
}

int qb_results_get_row(qb_results *r, size_t index, qb_task_row *row, qb_error *err)
{
    if (index >= r->n_tasks)
        return QB_FAIL(err, "results file %s: task index %zu out of range (%zu tasks)", r->path,
                       index, r->n_tasks);
    h5_quiet q;
    quiet_begin(&q);
    int rc = rows_xfer(0, r->tasks, r->row_type, r->dxpl_row, r->rowpos[index], 1, row, r->path,
                       err);
    quiet_end(&q);
    return rc;
}

static int detail_name_ok(const char *name)
{
    size_t len = name ? strlen(name) : 0;
    return len > 0 && len <= DETAIL_NAME_MAX && strcmp(name, ".") != 0 && strcmp(name, "..") != 0 &&
           strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == len;
}

int qb_results_write_detail(qb_results *r, size_t index, const char *name, const double *values,
                            size_t n, qb_error *err)
{
    if (index >= r->n_tasks)
        return QB_FAIL(err, "results file %s: task index %zu out of range (%zu tasks)", r->path,
                       index, r->n_tasks);
    if (!detail_name_ok(name))
        return QB_FAIL(err, "results file %s: detail name \"%s\" is not [A-Za-z0-9_.-]{1,%d}",
                       r->path, name ? name : "(null)", DETAIL_NAME_MAX);
    if (n > 0 && !values)
        return QB_FAIL(err, "results file %s: detail %s: no values", r->path, name);
    if (n > (SIZE_MAX - 65536) / sizeof(double))
        return QB_FAIL(err, "results file %s: detail %s: %zu values is too many", r->path, name, n);
    /* Object headers and group entries: a few KB per array. */
    if (check_space(r->path, (uint64_t)n * sizeof(double) + 65536, err) < 0) return -1;
    char dname[17];
    snprintf(dname, sizeof dname, "%016" PRIx64, r->ids[index]);
    h5_quiet q;
    quiet_begin(&q);
    hid_t g = H5I_INVALID_HID, space = H5I_INVALID_HID, d = H5I_INVALID_HID;
    int rc = -1, made_group = 0, made_dset = 0;
    int e = link_exists(r->details, name, r->path, err);
    if (e < 0) goto out;
    made_group = !e;
    g = e ? H5Gopen2(r->details, name, H5P_DEFAULT)
          : H5Gcreate2(r->details, name, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (g < 0) {
        made_group = 0;
        H5FAIL(err, r->path, e ? "H5Gopen2" : "H5Gcreate2", "/details/%s", name);
        goto out;
    }
    e = link_exists(g, dname, r->path, err);
    if (e < 0) goto out;
    if (e && H5Ldelete(g, dname, H5P_DEFAULT) < 0) {
        H5FAIL(err, r->path, "H5Ldelete", "the old /details/%s/%s", name, dname);
        goto out;
    }
    hsize_t dims = n;
    if ((space = H5Screate_simple(1, &dims, NULL)) < 0) {
        H5FAIL(err, r->path, "H5Screate_simple", "/details/%s/%s", name, dname);
        goto out;
    }
    d = H5Dcreate2(g, dname, H5T_IEEE_F64LE, space, H5P_DEFAULT, H5P_DEFAULT, H5P_DEFAULT);
    if (d < 0) {
        H5FAIL(err, r->path, "H5Dcreate2", "/details/%s/%s", name, dname);
        goto out;
    }
    made_dset = 1;
    if (n > 0 && H5Dwrite(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, values) < 0) {
        H5FAIL(err, r->path, "H5Dwrite", "/details/%s/%s (%zu values)", name, dname, n);
        goto out;
    }
    if (H5Dclose(d) < 0) {
        d = H5I_INVALID_HID;
        H5FAIL(err, r->path, "H5Dclose", "/details/%s/%s", name, dname);
        goto out;
    }
    d = H5I_INVALID_HID;
    rc = 0;
out:
    close_id(&d);
    close_id(&space);
    if (rc < 0) {
        /* Undo what this call added (a full disk: the space goes back to
         * HDF5, whose metadata stays writable, so the file can still be
         * flushed and closed and rows recorded). The error already set
         * stays the one reported. */
        if (made_dset) H5Ldelete(g, dname, H5P_DEFAULT);
        close_id(&g);
        if (made_group) H5Ldelete(r->details, name, H5P_DEFAULT);
    }
    close_id(&g);
    quiet_end(&q);
    return rc;
}

int qb_results_flush(qb_results *r, qb_error *err)
{
    h5_quiet q;
    quiet_begin(&q);
    int rc = 0;
    if (H5Fflush(r->file, H5F_SCOPE_GLOBAL) < 0) rc = H5FAIL(err, r->path, "H5Fflush", "flush");
    quiet_end(&q);
    return rc;
}

int qb_results_close(qb_results *r, qb_error *err)
{
    if (!r) return 0;
    h5_quiet q;
    quiet_begin(&q);
    int rc = 0;
    char now[32];
    iso_now(now);
    if (put_attr_str(r->file, "updated_at", now, r->path, err) < 0) rc = -1;
    if (rc == 0 && H5Fflush(r->file, H5F_SCOPE_GLOBAL) < 0)
        rc = H5FAIL(err, r->path, "H5Fflush", "closing");
    close_id(&r->details);
    close_id(&r->tasks);
    close_id(&r->row_type);
    close_id(&r->dxpl_row);
    hid_t f = r->file;
    r->file = H5I_INVALID_HID;
    if (H5Fclose(f) < 0 && rc == 0) rc = H5FAIL(err, r->path, "H5Fclose", "closing");
    /* H5Fclose writes the last metadata without MPI_File_sync: sync it. */
    int fd = open(r->path, O_RDONLY);
    if (fd >= 0) {
        if (fsync(fd) != 0 && rc == 0)
            rc = QB_FAIL(err, "results file %s: fsync: %s", r->path, strerror(errno));
        close(fd);
    }
    quiet_end(&q);
    results_free(r);
    return rc;
}

/* ---- serial readers --------------------------------------------------------------- */

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
        return H5FAIL(err, path, "H5Fopen", "is it an HDF5 file? truncated or damaged files "
                      "cannot be read");
    if (open_checked(f, path, tasks, n, spec_hash, err) < 0) {
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
    h5_quiet q;
    quiet_begin(&q);
    hid_t f, d, rt = H5I_INVALID_HID;
    uint64_t n = 0;
    int rc = -1;
    if (open_reader(path, &f, &d, &n, spec_hash, err) < 0) goto out;
    if ((rt = make_row_type(0, path, err)) < 0) goto out;
    qb_task_row *buf = xcalloc(n ? n : 1, sizeof *buf);
    for (uint64_t start = 0; start < n; start += BATCH) {
        uint64_t count = n - start < BATCH ? n - start : BATCH;
        if (rows_xfer(0, d, rt, H5P_DEFAULT, start, count, buf + start, path, err) < 0) {
            free(buf);
            goto out;
        }
    }
    *rows = buf;
    *n_rows = n;
    rc = 0;
out:
    close_id(&rt);
    close_id(&d);
    close_id(&f);
    quiet_end(&q);
    return rc;
}

int qb_results_count(const char *path, size_t counts[QB_STATUS_COUNT], uint64_t *spec_hash,
                     qb_error *err)
{
    for (int s = 0; s < QB_STATUS_COUNT; s++) counts[s] = 0;
    h5_quiet q;
    quiet_begin(&q);
    hid_t f, d;
    uint64_t n = 0;
    row_key *keys = NULL;
    int rc = -1;
    if (open_reader(path, &f, &d, &n, spec_hash, err) < 0) goto out;
    if (read_keys(d, n, &keys, path, err) < 0) goto out;
    for (uint64_t i = 0; i < n; i++)
        counts[is_finished(keys[i].status) ? keys[i].status : QB_STATUS_PENDING]++;
    rc = 0;
out:
    free(keys);
    close_id(&d);
    close_id(&f);
    quiet_end(&q);
    return rc;
}

int qb_results_read_detail(const char *path, uint64_t task_id, const char *name, double **values,
                           size_t *n, qb_error *err)
{
    *values = NULL;
    *n = 0;
    if (!detail_name_ok(name))
        return QB_FAIL(err, "results file %s: detail name \"%s\" is not [A-Za-z0-9_.-]{1,%d}",
                       path, name ? name : "(null)", DETAIL_NAME_MAX);
    char dpath[16 + DETAIL_NAME_MAX + 32];
    snprintf(dpath, sizeof dpath, "details/%s/%016" PRIx64, name, task_id);
    h5_quiet q;
    quiet_begin(&q);
    hid_t f, tasks, d = H5I_INVALID_HID, s = H5I_INVALID_HID;
    uint64_t n_rows;
    int rc = -1;
    if (open_reader(path, &f, &tasks, &n_rows, NULL, err) < 0) goto out;
    /* H5Lexists needs every intermediate link to exist. */
    int e = link_exists(f, "details", path, err);
    if (e > 0) {
        char gpath[16 + DETAIL_NAME_MAX];
        snprintf(gpath, sizeof gpath, "details/%s", name);
        e = link_exists(f, gpath, path, err);
    }
    if (e > 0) e = link_exists(f, dpath, path, err);
    if (e < 0) goto out;
    if (e == 0) {
        QB_FAIL(err, "results file %s has no /%s", path, dpath);
        goto out;
    }
    if ((d = H5Dopen2(f, dpath, H5P_DEFAULT)) < 0 || (s = H5Dget_space(d)) < 0) {
        H5FAIL(err, path, "H5Dopen2", "/%s", dpath);
        goto out;
    }
    hssize_t np = H5Sget_simple_extent_npoints(s);
    if (np < 0 || H5Sget_simple_extent_ndims(s) != 1) {
        QB_FAIL(err, "results file %s: /%s is not a 1-D array", path, dpath);
        goto out;
    }
    double *v = np > 0 ? xmalloc((size_t)np, sizeof *v) : NULL;
    if (np > 0 && H5Dread(d, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0) {
        H5FAIL(err, path, "H5Dread", "/%s", dpath);
        free(v);
        goto out;
    }
    *values = v;
    *n = (size_t)np;
    rc = 0;
out:
    close_id(&s);
    close_id(&d);
    close_id(&tasks);
    close_id(&f);
    quiet_end(&q);
    return rc;
}
