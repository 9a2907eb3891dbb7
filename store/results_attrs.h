/* The root attributes of a results file (store/results.h) as strings, for
 * the provenance section of `qblind report --html`. Serial (HDF5's
 * default POSIX driver, no MPI). */
#ifndef QB_RESULTS_ATTRS_H
#define QB_RESULTS_ATTRS_H

#include <stddef.h>

#include "core/error.h"
#include "store/results.h"

/* Every root attribute of `path`, in name order: strings as stored,
 * integers and floats in decimal, anything else as "(unsupported type)".
 * *attrs (n entries, keys and values owned) is freed with
 * qb_results_attrs_free. -1 when the file cannot be opened or read. */
int qb_results_read_attrs(const char *path, qb_kv **attrs, size_t *n, qb_error *err);
void qb_results_attrs_free(qb_kv *attrs, size_t n);

#endif
