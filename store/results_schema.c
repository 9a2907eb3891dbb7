/* The /tasks table of a results file (store/results_schema.h). */
#include "store/results_schema.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"
#include "store/hdf5_util.h"

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

_Static_assert(sizeof(qb_task_row) == 560,
               "qb_task_row layout changed: update QB_RESULTS_ROW_SIZE, docs");

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

int qb_task_status_finished(int32_t status)
{
    return status == QB_STATUS_OK || status == QB_STATUS_INVALID || status == QB_STATUS_FAILED;
}

/* ---- types -------------------------------------------------------------- */

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

/* Packed rows (pack_rows below); see store/results_schema.h. */
hid_t qb_results_row_type(int in_file, const char *path, qb_error *err)
{
    hid_t t = H5Tcreate(H5T_COMPOUND, QB_RESULTS_ROW_SIZE);
    if (t < 0) return QB_H5_FAIL(err, path, "H5Tcreate", "the /tasks row type"), H5I_INVALID_HID;
    size_t off = 0;
    for (size_t i = 0; i < NCOLS; i++) {
        hid_t m = column_type(&COLS[i], in_file);
        if (m < 0 || H5Tinsert(t, COLS[i].name, off, m) < 0) {
            QB_H5_FAIL(err, path, "H5Tinsert", "column %s of the /tasks row type", COLS[i].name);
            if (m >= 0) H5Tclose(m);
            H5Tclose(t);
            return H5I_INVALID_HID;
        }
        H5Tclose(m);
        off += COLS[i].size;
    }
    QB_ASSERT(off == QB_RESULTS_ROW_SIZE);
    return t;
}

hid_t qb_results_tasks_create(hid_t file, const char *name, uint64_t n, const char *path,
                              qb_error *err)
{
    hsize_t dims = n, maxdims = H5S_UNLIMITED, chunk = QB_RESULTS_TASKS_CHUNK;
    hid_t ft = qb_results_row_type(1, path, err);
    if (ft < 0) return H5I_INVALID_HID;
    hid_t space = H5Screate_simple(1, &dims, &maxdims);
    hid_t dcpl = H5Pcreate(H5P_DATASET_CREATE);
    hid_t d = H5I_INVALID_HID;
    if (space < 0 || dcpl < 0 || H5Pset_chunk(dcpl, 1, &chunk) < 0)
        QB_H5_FAIL(err, path, "H5Pset_chunk", "/%s", name);
    else if ((d = H5Dcreate2(file, name, ft, space, H5P_DEFAULT, dcpl, H5P_DEFAULT)) < 0)
        QB_H5_FAIL(err, path, "H5Dcreate2", "/%s", name);
    else if (qb_h5_attr_put_str(d, "description", TASKS_DESCRIPTION, path, err) < 0)
        qb_h5_close(&d);
    if (space >= 0) H5Sclose(space);
    if (dcpl >= 0) H5Pclose(dcpl);
    H5Tclose(ft);
    return d;
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
    if (mt < 0) return QB_H5_FAIL(err, path, "H5Tget_member_type", "column %s of /tasks", c->name);
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

int qb_results_tasks_check(hid_t dset, const char *path, uint64_t *n_rows, qb_error *err)
{
    hid_t ft = H5Dget_type(dset), space = H5Dget_space(dset);
    int rc = -1;
    if (ft < 0 || space < 0) {
        QB_H5_FAIL(err, path, "H5Dget_type", "/tasks");
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
    if (H5Sget_simple_extent_ndims(space) != 1 ||
        H5Sget_simple_extent_dims(space, dims, NULL) < 0) {
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

int qb_results_tasks_open(hid_t file, const char *path, hid_t *tasks, uint64_t *n_rows,
                          uint64_t *spec_hash, qb_error *err)
{
    *tasks = H5I_INVALID_HID;
    int64_t version = 0;
    int e = qb_h5_attr_get_int(file, "format_version", 0, &version, path, err);
    if (e < 0) return -1;
    if (e == 0)
        return QB_FAIL(err, "results file %s is not a qblind results file (no format_version "
                       "attribute)", path);
    if (version != QB_RESULTS_FORMAT_VERSION)
        return QB_FAIL(err, "results file %s has format_version %" PRId64 "; this qblind reads "
                       "format %d", path, version, QB_RESULTS_FORMAT_VERSION);
    uint64_t hash = 0;
    e = qb_h5_attr_get_int(file, "spec_hash_u64", 1, &hash, path, err);
    if (e < 0) return -1;
    if (e == 0)
        return QB_FAIL(err, "results file %s has no spec_hash_u64 attribute; not a qblind "
                       "results file", path);
    int has = qb_h5_link_exists(file, "tasks", path, err);
    if (has < 0) return -1;
    const char *name = "tasks";
    if (!has) {
        int has_new = qb_h5_link_exists(file, QB_RESULTS_TASKS_NEW, path, err);
        if (has_new < 0) return -1;
        if (!has_new)
            return QB_FAIL(err, "results file %s has no /tasks table; not a qblind results file",
                           path);
        name = QB_RESULTS_TASKS_NEW;
    }
    hid_t d = H5Dopen2(file, name, H5P_DEFAULT);
    if (d < 0) return QB_H5_FAIL(err, path, "H5Dopen2", "/%s (is it a dataset?)", name);
    if (qb_results_tasks_check(d, path, n_rows, err) < 0) {
        H5Dclose(d);
        return -1;
    }
    *tasks = d;
    if (spec_hash) *spec_hash = hash;
    return 0;
}

/* ---- row I/O ------------------------------------------------------------ */

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
    if (fs < 0)
        return QB_H5_FAIL(err, path, "H5Sselect_hyperslab", "rows %llu..%llu of /tasks",
                          (unsigned long long)start, (unsigned long long)(start + count - 1));
    hid_t ms = H5Screate_simple(1, &count, NULL);
    if (ms < 0) {
        H5Sclose(fs);
        return QB_H5_FAIL(err, path, "H5Screate_simple", "memory space of %llu rows",
                          (unsigned long long)count);
    }
    herr_t st = write ? H5Dwrite(dset, mem_type, ms, fs, dxpl, buf)
                      : H5Dread(dset, mem_type, ms, fs, dxpl, buf);
    int rc = 0;
    if (st < 0)
        rc = QB_H5_FAIL(err, path, write ? "H5Dwrite" : "H5Dread", "rows %llu..%llu of /tasks",
                        (unsigned long long)start, (unsigned long long)(start + count - 1));
    H5Sclose(ms);
    H5Sclose(fs);
    return rc;
}

void qb_results_row_tidy(qb_task_row *row)
{
    for (size_t i = 0; i < NCOLS; i++) {
        if (COLS[i].kind != COL_STR) continue;
        char *s = (char *)row + COLS[i].offset;
        size_t len = strnlen(s, COLS[i].size - 1);
        memset(s + len, 0, COLS[i].size - len);
    }
}

/* qb_task_row <-> packed rows of QB_RESULTS_ROW_SIZE bytes (native byte order). */
static void pack_rows(const qb_task_row *rows, size_t k, uint8_t *buf)
{
    for (size_t r = 0; r < k; r++) {
        qb_task_row row = rows[r];
        qb_results_row_tidy(&row);
        uint8_t *p = buf + r * QB_RESULTS_ROW_SIZE;
        for (size_t i = 0; i < NCOLS; i++) {
            memcpy(p, (const char *)&row + COLS[i].offset, COLS[i].size);
            p += COLS[i].size;
        }
    }
}

/* Valid UTF-8 without control characters (tab and newline allowed where
 * `text` is set) in s[0..len). */
static int string_ok(const char *s, size_t len, int text)
{
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    while (i < len) {
        unsigned c = u[i];
        size_t extra;
        if (c < 0x80) {
            if ((c < 0x20 && !(text && (c == '\t' || c == '\n'))) || c == 0x7f) return 0;
            i++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf)
            extra = 1;
        else if (c >= 0xe0 && c <= 0xef)
            extra = 2;
        else if (c >= 0xf0 && c <= 0xf4)
            extra = 3;
        else
            return 0;
        if (len - i <= extra) return 0;
        for (size_t j = 1; j <= extra; j++)
            if ((u[i + j] & 0xc0) != 0x80) return 0;
        i += extra + 1;
    }
    return 1;
}

int qb_task_row_validate(const qb_task_row *row, char *why, size_t n)
{
    if (row->status < 0 || row->status >= QB_STATUS_COUNT) {
        snprintf(why, n, "status %" PRId32 " is not a task status", row->status);
        return -1;
    }
    if (row->detected < QB_DETECTED_NA || row->detected > QB_DETECTED_ERROR) {
        snprintf(why, n, "detected %" PRId32 " is not a verdict", row->detected);
        return -1;
    }
    for (size_t c = 0; c < NCOLS; c++) {
        if (COLS[c].kind != COL_STR) continue;
        const char *s = (const char *)row + COLS[c].offset;
        size_t len = strnlen(s, COLS[c].size);
        int padded = len < COLS[c].size;
        for (size_t i = len; padded && i < COLS[c].size; i++) padded = s[i] == 0;
        if (!padded || !string_ok(s, len, strcmp(COLS[c].name, "message") == 0)) {
            snprintf(why, n, "%s is not a NUL-padded UTF-8 string", COLS[c].name);
            return -1;
        }
    }
    const double unit[] = {row->ca_quant, row->asr_quant, row->ca_mitig, row->asr_mitig};
    const char *const unit_names[] = {"ca_quant", "asr_quant", "ca_mitig", "asr_mitig"};
    for (size_t i = 0; i < 4; i++)
        if (!isnan(unit[i]) && !(unit[i] >= 0.0 && unit[i] <= 1.0)) {
            snprintf(why, n, "%s %g is outside [0, 1]", unit_names[i], unit[i]);
            return -1;
        }
    const double times[] = {row->t_model, row->t_quant, row->t_mitig, row->t_defense,
                            row->t_total};
    for (size_t i = 0; i < 5; i++)
        if (!isnan(times[i]) && !(isfinite(times[i]) && times[i] >= 0.0)) {
            snprintf(why, n, "a time of %g s", times[i]);
            return -1;
        }
    if (isinf(row->finished_at) || row->seed < 0 || row->rank < -1 || row->attempts < 0) {
        snprintf(why, n, "finished_at, seed, rank or attempts out of range");
        return -1;
    }
    return 0;
}

/* Packed rows -> qb_task_row, each checked (damaged/why may be NULL) before
 * its strings are tidied. */
static void unpack_rows(const uint8_t *buf, size_t k, qb_task_row *rows, uint8_t *damaged,
                        char (*why)[96])
{
    for (size_t r = 0; r < k; r++) {
        qb_task_row *row = &rows[r];
        memset(row, 0, sizeof *row);
        const uint8_t *p = buf + r * QB_RESULTS_ROW_SIZE;
        for (size_t i = 0; i < NCOLS; i++) {
            memcpy((char *)row + COLS[i].offset, p, COLS[i].size);
            p += COLS[i].size;
        }
        char w[96];
        int bad = qb_task_row_validate(row, w, sizeof w) != 0;
        if (damaged) damaged[r] = (uint8_t)bad;
        if (why) snprintf(why[r], sizeof why[r], "%s", bad ? w : "");
        qb_results_row_tidy(row);
    }
}

int qb_results_rows_xfer(int write, hid_t dset, hid_t row_type, hid_t dxpl, hsize_t start,
                         size_t k, qb_task_row *rows, const char *path, qb_error *err)
{
    uint8_t one[QB_RESULTS_ROW_SIZE];
    uint8_t *buf = k <= 1 ? one : xmalloc(k, QB_RESULTS_ROW_SIZE);
    if (write) pack_rows(rows, k, buf);
    int rc = rows_io(write, dset, row_type, dxpl, start, k, buf, path, err);
    if (rc == 0 && !write) unpack_rows(buf, k, rows, NULL, NULL);
    if (buf != one) free(buf);
    return rc;
}

int qb_results_rows_write_at(hid_t dset, hid_t row_type, const uint64_t *pos, qb_task_row *rows,
                             size_t k, const char *path, qb_error *err)
{
    size_t i = 0;
    while (i < k) {
        size_t j = i + 1;
        while (j < k && pos[j] == pos[j - 1] + 1) j++;
        if (qb_results_rows_xfer(1, dset, row_type, H5P_DEFAULT, pos[i], j - i, rows + i, path,
                                 err) < 0)
            return -1;
        i = j;
    }
    return 0;
}

int qb_results_rows_read_at(hid_t dset, hid_t row_type, const uint64_t *pos, qb_task_row *rows,
                            size_t k, const char *path, qb_error *err)
{
    if (k == 0) return 0;
    hsize_t *coords = xmalloc(k, sizeof *coords);
    for (size_t i = 0; i < k; i++) coords[i] = pos[i];
    hsize_t count = k;
    hid_t fs = H5Dget_space(dset), ms = H5Screate_simple(1, &count, NULL);
    uint8_t *buf = xmalloc(k, QB_RESULTS_ROW_SIZE);
    int rc = -1;
    if (fs < 0 || ms < 0 || H5Sselect_elements(fs, H5S_SELECT_SET, k, coords) < 0)
        QB_H5_FAIL(err, path, "H5Sselect_elements", "%zu rows of /tasks", k);
    else if (H5Dread(dset, row_type, ms, fs, H5P_DEFAULT, buf) < 0)
        QB_H5_FAIL(err, path, "H5Dread", "%zu rows of /tasks", k);
    else
        rc = 0;
    if (rc == 0) unpack_rows(buf, k, rows, NULL, NULL);
    free(buf);
    if (fs >= 0) H5Sclose(fs);
    if (ms >= 0) H5Sclose(ms);
    free(coords);
    return rc;
}

int qb_results_rows_read_checked(hid_t dset, hid_t row_type, hsize_t start, size_t k,
                                 qb_task_row *rows, uint8_t *damaged, char (*why)[96],
                                 const char *path, qb_error *err)
{
    uint8_t *buf = xmalloc(k ? k : 1, QB_RESULTS_ROW_SIZE);
    int rc = rows_io(0, dset, row_type, H5P_DEFAULT, start, k, buf, path, err);
    if (rc == 0) unpack_rows(buf, k, rows, damaged, why);
    free(buf);
    return rc;
}

int qb_results_rows_scan(hid_t dset, uint64_t n, int want_why, qb_results_batch_fn fn, void *ctx,
                         const char *path, qb_error *err)
{
    hid_t rt = qb_results_row_type(0, path, err);
    if (rt < 0) return -1;
    qb_task_row *rows = xmalloc(QB_RESULTS_BATCH, sizeof *rows);
    uint8_t damaged[QB_RESULTS_BATCH];
    char(*why)[96] = want_why ? xmalloc(QB_RESULTS_BATCH, sizeof *why) : NULL;
    int rc = 0;
    for (uint64_t start = 0; start < n && rc == 0; start += QB_RESULTS_BATCH) {
        size_t count = (size_t)(n - start < QB_RESULTS_BATCH ? n - start : QB_RESULTS_BATCH);
        rc = qb_results_rows_read_checked(dset, rt, start, count, rows, damaged, why, path, err);
        if (rc == 0) rc = fn(ctx, start, count, rows, damaged, why, err);
    }
    free(why);
    free(rows);
    H5Tclose(rt);
    return rc;
}

static int keys_batch(void *ctx, uint64_t start, size_t count, const qb_task_row *rows,
                      const uint8_t *damaged, char (*why)[96], qb_error *err)
{
    (void)why;
    (void)err;
    qb_results_key *k = (qb_results_key *)ctx + start;
    for (size_t i = 0; i < count; i++)
        k[i] = (qb_results_key){rows[i].task_id, damaged[i] ? QB_STATUS_PENDING : rows[i].status,
                                damaged[i]};
    return 0;
}

int qb_results_keys_read(hid_t dset, uint64_t n, qb_results_key **keys, const char *path,
                         qb_error *err)
{
    *keys = NULL;
    qb_results_key *k = xmalloc(n ? n : 1, sizeof *k);
    if (qb_results_rows_scan(dset, n, 0, keys_batch, k, path, err)) {
        free(k);
        return -1;
    }
    *keys = k;
    return 0;
}

int qb_results_row_check_axes(const qb_task_row *row, size_t index, const char *path,
                              qb_error *err)
{
    for (size_t c = 0; c < NCOLS; c++) {
        if (COLS[c].kind != COL_STR || strcmp(COLS[c].name, "message") == 0 ||
            strcmp(COLS[c].name, "host") == 0)
            continue;
        const char *s = (const char *)row + COLS[c].offset;
        if (strnlen(s, COLS[c].size) == COLS[c].size)
            return QB_FAIL(err, "results file %s: task %zu (id %016" PRIx64 "): %s value "
                           "\"%.*s...\" is longer than its column (%zu bytes with the NUL)", path,
                           index, row->task_id, COLS[c].name, (int)COLS[c].size, s, COLS[c].size);
    }
    return 0;
}

/* ---- /details ------------------------------------------------------------ */

int qb_results_detail_name_ok(const char *name)
{
    size_t len = name ? strlen(name) : 0;
    return len > 0 && len <= QB_RESULTS_DETAIL_NAME_MAX && strcmp(name, ".") != 0 &&
           strcmp(name, "..") != 0 &&
           strspn(name, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_.-") == len;
}
