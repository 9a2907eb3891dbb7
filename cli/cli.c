#include "cli/cli.h"

#include <getopt.h>
#include <stdio.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/threads.h"

int qb_cli_int(const char *opt, const char *s, long lo, long hi, int *out, qb_error *err)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end != '\0' || v < lo || v > hi)
        return QB_FAIL(err, "%s: expected an integer in [%ld, %ld], got \"%s\"", opt, lo, hi, s);
    *out = (int)v;
    return 0;
}

int qb_cli_u64(const char *opt, const char *s, uint64_t *out, qb_error *err)
{
    char *end;
    errno = 0;
    if (*s == '-') return QB_FAIL(err, "%s: expected a non-negative integer, got \"%s\"", opt, s);
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end != '\0')
        return QB_FAIL(err, "%s: expected a non-negative integer, got \"%s\"", opt, s);
    *out = (uint64_t)v;
    return 0;
}

int qb_cli_double(const char *opt, const char *s, double lo, double hi, double *out,
                  qb_error *err)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end != '\0' || !isfinite(v) || v < lo || v > hi)
        return QB_FAIL(err, "%s: expected a number in [%g, %g], got \"%s\"", opt, lo, hi, s);
    *out = v;
    return 0;
}

int qb_cli_float(const char *opt, const char *s, double lo, double hi, float *out, qb_error *err)
{
    double v = 0.0;
    if (qb_cli_double(opt, s, lo, hi, &v, err)) return -1;
    *out = (float)v;
    return 0;
}

int qb_cli_list_each(const char *opt, const char *list, int (*fn)(const char *name, void *ctx),
                     void *ctx, qb_error *err)
{
    char buf[256];
    if (strlen(list) >= sizeof buf) return QB_FAIL(err, "%s: list too long", opt);
    snprintf(buf, sizeof buf, "%s", list);
    char *save = NULL;
    int n = 0;
    for (char *name = strtok_r(buf, ",", &save); name; name = strtok_r(NULL, ",", &save), n++)
        if (fn(name, ctx)) return -1;
    if (n == 0) return QB_FAIL(err, "%s: empty list", opt);
    return 0;
}

int qb_cli_option_error(int c, char **argv, qb_error *err)
{
    if (c == ':') return QB_FAIL(err, "option %s needs a value (see --help)", argv[optind - 1]);
    return QB_FAIL(err, "unknown option %s (see --help)", argv[optind - 1]);
}

int qb_cli_parse_threads(const char *arg, int *n, qb_error *err)
{
    char *end;
    errno = 0;
    long v = strtol(arg, &end, 10);
    if (errno || end == arg || *end || v < 1 || v > QB_THREADS_MAX)
        return QB_FAIL(err, "--threads must be an integer in [1, %d], got \"%s\"", QB_THREADS_MAX,
                       arg);
    *n = (int)v;
    return 0;
}

int qb_cli_usage_error(const char *cmd, const qb_error *err)
{
    fprintf(stderr, "qblind %s: %s\n", cmd, err->msg);
    return 2;
}
