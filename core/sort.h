/* qsort comparators of plain numbers, and the (value, position) pair that
 * sorts values while remembering where each came from. */
#ifndef QB_SORT_H
#define QB_SORT_H

#include <stdint.h>

/* Ascending order of double / uint32_t / uint64_t elements. qb_cmp_double
 * treats a NaN as equal to everything (callers sort finite values). */
int qb_cmp_double(const void *a, const void *b);
int qb_cmp_u32(const void *a, const void *b);
int qb_cmp_u64(const void *a, const void *b);

/* A value and its position in the array it was taken from. */
typedef struct qb_u64_pos {
    uint64_t v;
    uint32_t pos;
} qb_u64_pos;

/* Ascending by v, equal values by position: sorting with it groups equal
 * values with their first occurrence first, whatever qsort's stability. */
int qb_cmp_u64_pos(const void *a, const void *b);

#endif
