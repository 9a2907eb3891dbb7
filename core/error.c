#include "core/error.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int qb_error_set(qb_error *err, const char *file, int line, const char *fmt, ...)
{
    if (!err) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof err->msg, fmt, ap);
    va_end(ap);
    err->src_file = file;
    err->src_line = line;
    return -1;
}

int qb_error_prefix(qb_error *err, const char *fmt, ...)
{
    if (!err) return -1;
    char prefix[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    size_t plen = strlen(prefix), mlen = strlen(err->msg);
    if (plen >= sizeof err->msg) plen = sizeof err->msg - 1;
    if (plen + mlen >= sizeof err->msg) mlen = sizeof err->msg - 1 - plen;
    memmove(err->msg + plen, err->msg, mlen);
    memcpy(err->msg, prefix, plen);
    err->msg[plen + mlen] = '\0';
    return -1;
}

void qb_error_print(const qb_error *err)
{
    if (err->src_file)
        fprintf(stderr, "qblind: error: %s [%s:%d]\n", err->msg, err->src_file, err->src_line);
    else
        fprintf(stderr, "qblind: error: %s\n", err->msg);
}

void qb_die_at(const char *file, int line, const char *fmt, ...)
{
    fprintf(stderr, "qblind: fatal: ");
    va_list ap;
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, " [%s:%d]\n", file, line);
    abort();
}
