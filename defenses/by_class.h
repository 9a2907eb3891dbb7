/* Training samples grouped by their (training) label: the per-class view
 * that Activation Clustering and Spectral Signatures analyse. */
#ifndef QB_BY_CLASS_H
#define QB_BY_CLASS_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

typedef struct qb_by_class {
    int classes;
    size_t n;
    uint32_t *order; /* (n) sample indices, by label, ascending within a label; owned */
    size_t *start;   /* (classes + 1) class c is order[start[c] .. start[c+1]); owned */
} qb_by_class;

/* Group samples 0..n-1 by labels (n), each in [0, classes) (asserted).
 * Free with qb_by_class_free. */
void qb_by_class_init(qb_by_class *g, const uint8_t *labels, size_t n, int classes);
void qb_by_class_free(qb_by_class *g);

static inline size_t qb_by_class_size(const qb_by_class *g, int c)
{
    return g->start[c + 1] - g->start[c];
}

/* -1 with a message naming `who`, the first class with fewer than min_n
 * samples and its count; 0 when every class has at least min_n. */
int qb_by_class_check(const qb_by_class *g, size_t min_n, const char *who, qb_error *err);

/* Copy the rows of class c from act (n, dim) into out (size of c, dim). */
void qb_by_class_gather(const qb_by_class *g, int c, const float *act, size_t dim, float *out);

#endif
