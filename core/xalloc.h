/* Checked allocation. Running out of memory is not recoverable for a
 * worker rank: these print the request size, the caller's file and line,
 * and abort. Sizes are overflow-checked (n * size). Memory from these is
 * released with plain free(). */
#ifndef QB_XALLOC_H
#define QB_XALLOC_H

#include <stddef.h>

void *qb_xmalloc_at(size_t n, size_t size, const char *file, int line);
void *qb_xcalloc_at(size_t n, size_t size, const char *file, int line);
void *qb_xrealloc_at(void *p, size_t n, size_t size, const char *file, int line);
/* 64-byte aligned (SIMD kernels, GEMM operands); free with free(). */
void *qb_xaligned_at(size_t n, size_t size, const char *file, int line);
char *qb_xstrdup_at(const char *s, const char *file, int line);

#define xmalloc(n, size) qb_xmalloc_at((n), (size), __FILE__, __LINE__)
#define xcalloc(n, size) qb_xcalloc_at((n), (size), __FILE__, __LINE__)
#define xrealloc(p, n, size) qb_xrealloc_at((p), (n), (size), __FILE__, __LINE__)
#define xaligned(n, size) qb_xaligned_at((n), (size), __FILE__, __LINE__)
#define xstrdup(s) qb_xstrdup_at((s), __FILE__, __LINE__)

#endif
