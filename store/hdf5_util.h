/* HDF5 helpers of the results file (store/results.h), internal to store/:
 * checked calls with messages that name the file, closing any id, and
 * reading and writing scalar attributes. Used by the writer
 * (store/results_writer.c), the readers (store/results_reader.c), the
 * /tasks schema (store/results_schema.c), store/results_attrs.c and
 * store/shard.c.
 *
 * Every function that takes `path` and `err` names the results file in its
 * message and returns -1 (or an invalid id) on failure; HDF5's own error
 * printing should be off around them (qb_h5_quiet_begin). */
#ifndef QB_HDF5_UTIL_H
#define QB_HDF5_UTIL_H

#include <stdint.h>

#include <hdf5.h>

#include "core/error.h"

/* HDF5 prints its error stack unless told not to; each public function of
 * store/ silences it and restores the caller's handler on the way out. */
typedef struct qb_h5_quiet {
    H5E_auto2_t fn;
    void *data;
} qb_h5_quiet;

void qb_h5_quiet_begin(qb_h5_quiet *q);
void qb_h5_quiet_end(const qb_h5_quiet *q);

/* Sets err to "results file PATH: CALL failed (WHAT): INNER", INNER being
 * the innermost entry of HDF5's error stack ("file signature not found"),
 * and returns -1. Call right after the failing HDF5 call, before any other
 * HDF5 call clears the stack. */
int qb_h5_fail_at(qb_error *err, const char *src, int line, const char *path, const char *call,
                  const char *fmt, ...) __attribute__((format(printf, 6, 7)));
#define QB_H5_FAIL(err, path, call, ...)                                                          \
    qb_h5_fail_at((err), __FILE__, __LINE__, (path), (call), __VA_ARGS__)

/* Close an id of any kind (file, group, type, space, dataset, attribute,
 * property list) and set it to H5I_INVALID_HID; nothing if it is < 0. */
void qb_h5_close(hid_t *id);

/* 1 if the link `name` exists under loc, 0 if not, -1 on error. */
int qb_h5_link_exists(hid_t loc, const char *name, const char *path, qb_error *err);

/* ---- attributes --------------------------------------------------------- */

/* 1 if the attribute exists, 0 if not, -1 on error. */
int qb_h5_attr_exists(hid_t obj, const char *name, const char *path, qb_error *err);

/* Create or replace the scalar attribute `name` of type `type` (in the
 * file) from *value (of mem_type). An attribute of the same type and
 * shape is overwritten in place (no new object header space). */
int qb_h5_attr_put(hid_t obj, const char *name, hid_t type, hid_t mem_type, const void *value,
                   const char *path, qb_error *err);

/* A variable-length UTF-8 string attribute. An unchanged value is not
 * rewritten: each write of a variable-length string takes new space in
 * the file (a 300 KB spec_text would grow the file on every resume). */
int qb_h5_attr_put_str(hid_t obj, const char *name, const char *value, const char *path,
                       qb_error *err);

/* A 32-bit little-endian integer attribute. */
int qb_h5_attr_put_i32(hid_t obj, const char *name, int32_t v, const char *path, qb_error *err);

/* An attribute as stored, read by qb_h5_attr_read. Its value is read only
 * when it has one element (n_points 1) and its class is H5T_INTEGER (into
 * both i and u: what HDF5 converts it to as int64 and as uint64),
 * H5T_FLOAT (f) or H5T_STRING (s, fixed or variable length, malloc'd). */
typedef struct qb_h5_attr {
    hid_t type;        /* the stored type */
    H5T_class_t cls;   /* its class */
    int64_t n_points;  /* elements */
    int64_t i;
    uint64_t u;
    double f;
    char *s;
} qb_h5_attr;

/* The one attribute reader of store/: 1 when the attribute exists (*v
 * filled; free it with qb_h5_attr_free), 0 when it does not, -1 on an
 * HDF5 error (*v holds nothing to free in both of these cases). */
int qb_h5_attr_read(hid_t obj, const char *name, qb_h5_attr *v, const char *path, qb_error *err);
void qb_h5_attr_free(qb_h5_attr *v);

/* A single integer attribute into *out (int64_t, or uint64_t when
 * is_unsigned). 1 if present, 0 if absent, -1 on error or when it is not
 * a single integer. */
int qb_h5_attr_get_int(hid_t obj, const char *name, int is_unsigned, void *out, const char *path,
                       qb_error *err);

#endif
