/* The model file format (.qbm), versions 1 and 2. All integers
 * little-endian. Version 1 (lenet, cnn-small: chains of layers):
 *
 *   offset  size  field
 *   0       8     magic "QBLMODEL"
 *   8       4     u32 format version (1)
 *   12      4     u32 H: header bytes that follow
 *   16      H     header:
 *                   32   arch name, NUL-padded
 *                   4x5  u32 in_c, in_h, in_w, classes, n_layers
 *                   40 x n_layers: u32 kind, in_c, in_h, in_w, out_c,
 *                        out_h, out_w, k, stride, pad
 *                   8    u64 n_params
 *                   4    u32 M: metadata bytes, M <= 65536
 *                   M    metadata text (provenance: "key=value" lines)
 *   16+H    4*P   float32 parameters (P = n_params), the model's flat buffer
 *   end-4   4     u32 CRC-32 (zlib) of every byte before it
 *
 *
 * Version 2 (every other architecture: graphs with batch norm and
 * residual additions) differs in the header: each layer has 12 fields,
 * the 10 above then src and src2 + 1 (core/layer.h), and after the layer
 * table come u32 T and T bytes: the architecture's text (core/arch.h),
 * T <= QB_ARCH_TEXT_MAX. The parameters are n_params floats: the trained
 * ones, then the batch norms' running statistics.
 *
 * Loading checks every field: magic, version, header length, that the
 * layer table equals the one the named architecture builds for the stored
 * input shape (version 2: the one the file's text builds; a preset's name
 * must come with the preset's text, and a name declared in this run with
 * that declaration's; an undeclared one is declared), that the file has
 * exactly the announced size, and the CRC.
 * Files come from strangers (model stores on shared file systems). */
#ifndef QB_MODEL_IO_H
#define QB_MODEL_IO_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/model.h"

#define QB_MODEL_FORMAT_VERSION 2u
#define QB_MODEL_META_MAX 65536u

/* Serialise to a new buffer (*buf owned by the caller, free()). meta may
 * be NULL. Fails only if meta is longer than QB_MODEL_META_MAX. */
int qb_model_encode(const qb_model *m, const char *meta, uint8_t **buf, size_t *len,
                    qb_error *err);

/* Parse a buffer; `what` names its origin in messages (a path). On
 * success *m is a new model and *meta (if not NULL) a malloc'd string. On
 * failure nothing is allocated and err says what is wrong at which offset. */
int qb_model_decode(const uint8_t *buf, size_t len, const char *what, qb_model *m, char **meta,
                    qb_error *err);

/* Write atomically: a temporary file in the same directory, fsync, rename.
 * On failure (full disk, permissions) the temporary is removed and an
 * existing file at `path` is untouched. */
int qb_model_save(const qb_model *m, const char *path, const char *meta, qb_error *err);

/* Read and decode a file (refuses files over 1 GiB). */
int qb_model_load(qb_model *m, const char *path, char **meta, qb_error *err);

#endif
