/* Errors as values.
 *
 * Library functions that can fail on input (files, specs, user options)
 * return 0 on success and -1 on failure, and fill a caller-owned qb_error
 * with a message that says what and where (file, offset, field) and the
 * source location that detected it. Only the top level (main) prints and
 * exits. Broken invariants and out-of-memory are not errors of this kind:
 * they abort through xalloc.h / QB_ASSERT with file and line. */
#ifndef QB_ERROR_H
#define QB_ERROR_H

#include <stdarg.h>

typedef struct qb_error {
    char msg[1024];  /* human-readable: what went wrong, where, what to do */
    const char *src_file; /* source file that detected it */
    int src_line;
} qb_error;

/* Format msg into err (err may be NULL: then nothing is stored).
 * Always returns -1 so callers can `return QB_FAIL(err, ...)`. */
int qb_error_set(qb_error *err, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Prepend context ("loading model m.qbm: ") to an existing message. Returns -1. */
int qb_error_prefix(qb_error *err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define QB_FAIL(err, ...) qb_error_set((err), __FILE__, __LINE__, __VA_ARGS__)

/* Print "qblind: error: <msg> [src:line]" to stderr. */
void qb_error_print(const qb_error *err);

/* Abort with file and line when an internal invariant is broken. */
#define QB_ASSERT(cond)                                                      \
    do {                                                                     \
        if (!(cond)) qb_die_at(__FILE__, __LINE__, "internal invariant failed: %s", #cond); \
    } while (0)

_Noreturn void qb_die_at(const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
