#include "core/xalloc.h"
#include "core/error.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

static size_t checked_bytes(size_t n, size_t size, const char *file, int line)
{
    if (size != 0 && n > SIZE_MAX / size)
        qb_die_at(file, line, "allocation size overflow: %zu x %zu bytes", n, size);
    size_t bytes = n * size;
    return bytes ? bytes : 1;
}

void *qb_xmalloc_at(size_t n, size_t size, const char *file, int line)
{
    size_t bytes = checked_bytes(n, size, file, line);
    void *p = malloc(bytes);
    if (!p) qb_die_at(file, line, "out of memory allocating %zu bytes", bytes);
    return p;
}

void *qb_xcalloc_at(size_t n, size_t size, const char *file, int line)
{
    checked_bytes(n, size, file, line);
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) qb_die_at(file, line, "out of memory allocating %zu x %zu bytes", n, size);
    return p;
}

void *qb_xrealloc_at(void *old, size_t n, size_t size, const char *file, int line)
{
    size_t bytes = checked_bytes(n, size, file, line);
    void *p = realloc(old, bytes);
    if (!p) qb_die_at(file, line, "out of memory reallocating %zu bytes", bytes);
    return p;
}

void *qb_xaligned_at(size_t n, size_t size, const char *file, int line)
{
    size_t bytes = checked_bytes(n, size, file, line);
    bytes = (bytes + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, bytes);
    if (!p) qb_die_at(file, line, "out of memory allocating %zu aligned bytes", bytes);
    return p;
}

char *qb_xstrdup_at(const char *s, const char *file, int line)
{
    size_t len = strlen(s) + 1;
    char *p = qb_xmalloc_at(len, 1, file, line);
    memcpy(p, s, len);
    return p;
}
