/* Quantized model files (.qbq), version 1. Little-endian.
 *
 *   0    8    magic "QBLQUANT"
 *   8    4    u32 format version (1)
 *   12   4    u32 P: precision name length (1..31)
 *   16   P    precision name (e.g. "int4-pc")
 *   ..   8    u64 L: length of the float part
 *   ..   L    the float part, a complete .qbm model (core/model_io.h) with
 *             the quantized layers' weights zeroed: biases and layers the
 *             precision keeps in float
 *   ..   4    u32 Q: number of quantized layers
 *   per quantized layer, in layer order:
 *        4    u32 layer index
 *        4x3  u32 rows, cols, number of scales (1 per tensor, rows per channel)
 *        4*S  float32 scales
 *        C    codes packed by qb_quant_pack: two per byte for <= 4 bits
 *   end-4 4   u32 CRC-32 of every byte before it
 *
 * The loader checks every length against the file, decodes the float part
 * with all of the .qbm checks, requires exactly the layers the precision
 * quantizes with their shapes, finite non-negative scales, and codes within
 * [-qmax, qmax]; then rebuilds the deployed model from the codes. */
#ifndef QB_QMODEL_IO_H
#define QB_QMODEL_IO_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "quant/qmodel.h"

#define QB_QMODEL_FORMAT_VERSION 1u

int qb_qmodel_encode(const qb_qmodel *qm, uint8_t **buf, size_t *len, qb_error *err);
/* On success *qm is initialised (qb_qmodel_free); on failure untouched
 * memory is freed and err names the origin `what` and the offset. */
int qb_qmodel_decode(const uint8_t *buf, size_t len, const char *what, qb_qmodel *qm,
                     qb_error *err);
/* Atomic write (tmp + fsync + rename), and read (files up to 1 GiB). */
int qb_qmodel_save(const qb_qmodel *qm, const char *path, qb_error *err);
int qb_qmodel_load(qb_qmodel *qm, const char *path, qb_error *err);

#endif
