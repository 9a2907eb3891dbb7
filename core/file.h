/* General file helpers: open an input without blocking on special files,
 * read a whole file, write one atomically (also as a stream), refuse an
 * output that is one of the inputs, make a rename durable. Every loader of
 * a file that may come from a stranger opens it through
 * qb_file_open_regular or checks it with qb_file_check_regular first. */
#ifndef QB_FILE_H
#define QB_FILE_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/error.h"

/* Open `path` for reading, refusing anything but a regular file without
 * blocking on it: open(2) with O_NONBLOCK (a FIFO with no writer or a
 * device never hangs the caller), fstat, then O_NONBLOCK cleared. `what`
 * names the file's role in messages ("spec", "model file"; NULL or "":
 * the path alone). Returns the descriptor, or -1 with err: "cannot open
 * <what> <path>: <reason>" ("<path>: cannot open: <reason>" without
 * `what`) or "<what> <path> is a directory (a FIFO, ...), not a regular
 * file". */
int qb_file_open_regular(const char *path, const char *what, qb_error *err);
/* The same as a stdio stream ("rb"), or NULL with err. */
FILE *qb_file_fopen_regular(const char *path, const char *what, qb_error *err);
/* The same check, the descriptor closed again: for libraries that open
 * files by name (HDF5, zlib). 0 or -1 with err. */
int qb_file_check_regular(const char *path, const char *what, qb_error *err);
/* `path` is an existing directory (stat(2), which never blocks): 0, or -1
 * with err naming what it is instead, or why it cannot be looked at. */
int qb_file_check_dir(const char *path, const char *what, qb_error *err);

/* Refuse an output that is one of the inputs: -1 with err when `out`
 * exists and is the same file (device and inode) as inputs[i], whatever
 * the spelling of the paths. Missing outputs or inputs never match. */
int qb_file_check_not_input(const char *out, const char *const *inputs, size_t n_inputs,
                            qb_error *err);

/* An output file written through a temporary beside it and renamed into
 * place by qb_file_out_commit: an interrupted write never leaves a half
 * file where a good one was. */
typedef struct qb_file_out {
    char *path;  /* the destination */
    char *tmp;   /* path.tmp.<pid> */
    FILE *f;     /* write here */
} qb_file_out;
/* Create the temporary. -1 with err (nothing left behind) on failure. */
int qb_file_out_open(qb_file_out *o, const char *path, qb_error *err);
/* Flush, fsync, close and rename onto the destination; frees o. On any
 * failure the temporary is removed, the destination is untouched and -1
 * is returned with err. */
int qb_file_out_commit(qb_file_out *o, qb_error *err);
/* Drop the temporary (after an error while writing); frees o. */
void qb_file_out_abort(qb_file_out *o);

/* Read a whole regular file (at most max bytes) into a malloc'd buffer. */
int qb_file_read_all(const char *path, size_t max, uint8_t **buf, size_t *len, qb_error *err);

/* Write a buffer atomically: a temporary file beside `path`, fsync,
 * rename. On failure the temporary is removed and an existing file at
 * `path` is untouched. */
int qb_file_write_atomic(const char *path, const void *buf, size_t len, qb_error *err);
/* The directory holding `path`, malloc'd: "." for a bare file name, "/"
 * for a file in the root. */
char *qb_file_dirname(const char *path);

/* fsync the directory holding `path`, so a rename into it is durable
 * (best effort: errors are ignored). */
void qb_file_sync_dir(const char *path);

#endif
