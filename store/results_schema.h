/* The /tasks table of a results file (store/results.h), internal to
 * store/: its columns and compound types, the checks that a file's table
 * is qblind's, the /details names, and rows moved between qb_task_row and
 * the file. The writer (store/results_writer.c) and the serial readers
 * (store/results_reader.c) share it, so both see one format.
 *
 * Rows are packed (QB_RESULTS_ROW_SIZE bytes, columns back to back, in the
 * order of qb_task_row) and little-endian in the file. */
#ifndef QB_RESULTS_SCHEMA_H
#define QB_RESULTS_SCHEMA_H

#include <stddef.h>
#include <stdint.h>

#include <hdf5.h>

#include "core/error.h"
#include "store/results.h"

/* Packed row: the sum of the column sizes (qb_task_row is 560 bytes). */
#define QB_RESULTS_ROW_SIZE 544
/* Rows per chunk of /tasks: 256 x 544 bytes = 139 KB, big enough for fast
 * scans, small enough that a one-row write touches little. */
#define QB_RESULTS_TASKS_CHUNK 256
/* Rows per batch when writing pending rows or scanning keys. */
#define QB_RESULTS_BATCH 1024
/* A /tasks being rebuilt by --force; renamed to /tasks when complete. */
#define QB_RESULTS_TASKS_NEW "tasks.new"
/* Longest /details/<name>. */
#define QB_RESULTS_DETAIL_NAME_MAX 64

/* The row type, packed: in the file (in_file 1) little-endian, in memory
 * native. Rows are packed in memory before they are written, so that on
 * little-endian hosts the two types are equal and HDF5 converts nothing:
 * with a conversion, every H5Dwrite looked up a compound conversion path
 * (member names compared with strcmp) and calloc'd two 1 MB buffers,
 * 80 us for one row. A new type (the caller closes it), or an invalid id
 * with err set. */
hid_t qb_results_row_type(int in_file, const char *path, qb_error *err);

/* Create the 1-D extendible, chunked table `name` of n pending-to-be rows
 * under `file`, with its `description` attribute. A new dataset id, or an
 * invalid id with err set. */
hid_t qb_results_tasks_create(hid_t file, const char *name, uint64_t n, const char *path,
                              qb_error *err);

/* Check that `dset` is a 1-D table with exactly qblind's columns (names,
 * classes, sizes, enum values); *n_rows is its length. */
int qb_results_tasks_check(hid_t dset, const char *path, uint64_t *n_rows, qb_error *err);

/* Check the root attributes of `file` (format_version, spec_hash_u64) and
 * open its task table: /tasks, or a completed /tasks.new left by a
 * --force rebuild interrupted between removing the old table and renaming
 * the new one. *tasks is the checked table (the caller closes it),
 * *n_rows its length, *spec_hash (if not NULL) the file's. */
int qb_results_tasks_open(hid_t file, const char *path, hid_t *tasks, uint64_t *n_rows,
                          uint64_t *spec_hash, qb_error *err);

/* Strings as C strings, NUL-padded: the last byte is NUL and so is every
 * byte after the first NUL (h5py would show bytes after an inner NUL). */
void qb_results_row_tidy(qb_task_row *row);

/* -1 with a message naming task `index` when one of row's axis strings
 * (every string column but message and host) fills its field: those must
 * be stored whole. */
int qb_results_row_check_axes(const qb_task_row *row, size_t index, const char *path,
                              qb_error *err);

/* Rows [start, start + k) of dset <-> rows[0..k) (write 1: to the file),
 * through packed rows of row_type (qb_results_row_type(0, ...)). */
int qb_results_rows_xfer(int write, hid_t dset, hid_t row_type, hid_t dxpl, hsize_t start,
                         size_t k, qb_task_row *rows, const char *path, qb_error *err);

/* Write rows[0..k) to file rows pos[0..k), one H5Dwrite per run of
 * consecutive positions. */
int qb_results_rows_write_at(hid_t dset, hid_t row_type, const uint64_t *pos, qb_task_row *rows,
                             size_t k, const char *path, qb_error *err);

/* Rows [start, start + k) of dset into rows[0..k), each checked before
 * its strings are tidied: damaged[i] (if not NULL) is 1 when row i fails
 * qb_task_row_validate, and why[i] (if not NULL, 96 bytes each) says why. */
int qb_results_rows_read_checked(hid_t dset, hid_t row_type, hsize_t start, size_t k,
                                 qb_task_row *rows, uint8_t *damaged, char (*why)[96],
                                 const char *path, qb_error *err);
/* Read the file rows pos[0..k) (any order) into rows[0..k). */
int qb_results_rows_read_at(hid_t dset, hid_t row_type, const uint64_t *pos, qb_task_row *rows,
                            size_t k, const char *path, qb_error *err);

/* One batch of a scan (qb_results_rows_scan): file rows [start, start +
 * count) as rows[0..count), damaged[i] 1 when row i fails
 * qb_task_row_validate, why[i] (NULL unless asked for) what is wrong.
 * Return 0 to go on, -1 (with err set) to stop. */
typedef int (*qb_results_batch_fn)(void *ctx, uint64_t start, size_t count,
                                   const qb_task_row *rows, const uint8_t *damaged,
                                   char (*why)[96], qb_error *err);

/* Read the n rows of dset in batches of QB_RESULTS_BATCH, each checked
 * before its strings are tidied (qb_results_rows_read_checked), and hand
 * each batch to fn; why (96 bytes per row) is filled only if want_why.
 * Every reader that scans all rows goes through here. */
int qb_results_rows_scan(hid_t dset, uint64_t n, int want_why, qb_results_batch_fn fn, void *ctx,
                         const char *path, qb_error *err);

/* task_id and status only: scanning a file for what is finished. */
typedef struct qb_results_key {
    uint64_t task_id;
    int32_t status;  /* QB_STATUS_PENDING for a damaged row: not finished */
    int32_t damaged; /* 1: the row fails qb_task_row_validate */
} qb_results_key;

/* Keys of the n rows of dset: (*keys)[i] = (task_id, status, damaged) of
 * file row i (malloc'd, free()). Whole rows are read in batches and
 * checked (qb_task_row_validate), so a damaged row is never taken for a
 * finished one. */
int qb_results_keys_read(hid_t dset, uint64_t n, qb_results_key **keys, const char *path,
                         qb_error *err);

/* 1 if name is a valid /details/<name>: [A-Za-z0-9_.-]+, at most
 * QB_RESULTS_DETAIL_NAME_MAX bytes, not "." or "..". */
int qb_results_detail_name_ok(const char *name);

#endif
