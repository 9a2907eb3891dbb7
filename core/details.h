/* Named float64 arrays: the raw results of a stage (a defense's scores,
 * a pruning curve), kept beside a task's row as /details/<name>/<task id>.
 *
 * Names are [A-Za-z0-9_.-]+, at most QB_DETAIL_NAME_MAX - 1 bytes, and by
 * convention "<stage>.<field>" ("nc.mask_l1", "strip.tpr"). A details list
 * travels between ranks packed into one byte buffer (qb_details_pack). */
#ifndef QB_DETAILS_H
#define QB_DETAILS_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

#define QB_DETAIL_NAME_MAX 64

typedef struct qb_detail {
    char name[QB_DETAIL_NAME_MAX];
    size_t n;
    double *v; /* (n), owned; NULL when n is 0 */
} qb_detail;

typedef struct qb_details {
    size_t n, cap;
    qb_detail *items; /* owned */
} qb_details;

void qb_details_init(qb_details *d);
void qb_details_free(qb_details *d);

/* Append a copy of v[0..n) under `name` (an existing entry of that name is
 * replaced). Aborts on an invalid name: names are chosen by the code. */
void qb_details_add(qb_details *d, const char *name, const double *v, size_t n);
/* One value. */
void qb_details_add1(qb_details *d, const char *name, double v);
/* Integer-valued arrays, stored as float64. */
void qb_details_add_int(qb_details *d, const char *name, const int *v, size_t n);
/* The entry `name`, or NULL. */
const qb_detail *qb_details_find(const qb_details *d, const char *name);

/* 1 if name is a valid detail name. */
int qb_detail_name_ok(const char *name);

/* Serialise into one malloc'd buffer (*len bytes; little-endian layout:
 * u32 count, then per entry u16 name length, name bytes, u64 n, n float64). */
uint8_t *qb_details_pack(const qb_details *d, size_t *len);
/* Parse a packed buffer into d (initialised, empty). Checks every length
 * against the buffer; -1 with err on a malformed buffer (d left empty). */
int qb_details_unpack(qb_details *d, const uint8_t *buf, size_t len, qb_error *err);

#endif
