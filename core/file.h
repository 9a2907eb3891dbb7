/* General file helpers: read a whole file, write one atomically, make a
 * rename durable. Used by the model formats (core/model_io.c,
 * quant/qmodel_io.c) and the results files (store/). */
#ifndef QB_FILE_H
#define QB_FILE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/* Read a whole file (at most max bytes) into a malloc'd buffer. */
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
