#include "core/params.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const qb_param_def qb_no_params[] = {{NULL, 0, 0, 0, 0, NULL, NULL}};

const qb_param_def *qb_param_find(const qb_param_def *defs, const char *key)
{
    for (const qb_param_def *d = defs; d && d->key; d++)
        if (!strcmp(d->key, key)) return d;
    return NULL;
}

const char *qb_params_keys(const qb_param_def *defs, char *buf, size_t n)
{
    size_t len = 0;
    if (n) buf[0] = '\0';
    for (const qb_param_def *d = defs; d && d->key && len < n; d++) {
        int w = snprintf(buf + len, n - len, "%s%s", len ? " " : "", d->key);
        len += w > 0 ? (size_t)w : 0;
    }
    return buf;
}

static int parse_num(const qb_param_def *d, const char *value, double *out)
{
    char *end;
    errno = 0;
    if (d->type == QB_PARAM_INT) {
        long long v = strtoll(value, &end, 10);
        if (errno || end == value || *end) return -1;
        *out = (double)v;
    } else {
        double v = strtod(value, &end);
        if (errno || end == value || *end || !isfinite(v)) return -1;
        *out = v;
    }
    return 0;
}

int qb_params_check(const qb_param_def *defs, const char *key, const char *value, qb_error *err)
{
    const qb_param_def *d = qb_param_find(defs, key);
    if (!d) {
        char keys[256];
        return QB_FAIL(err, "unknown parameter \"%.64s\"; expected one of: %s", key,
                       qb_params_keys(defs, keys, sizeof keys));
    }
    if (d->type == QB_PARAM_STR) return 0;
    double v;
    if (parse_num(d, value, &v) || v < d->min || v > d->max) {
        if (d->type == QB_PARAM_INT)
            return QB_FAIL(err, "%s: expected an integer in [%.0f, %.0f]", key, d->min, d->max);
        return QB_FAIL(err, "%s: expected a number in [%g, %g]", key, d->min, d->max);
    }
    return 0;
}

static const char *lookup(const qb_params *p, const char *key, const qb_param_def **def)
{
    *def = qb_param_find(p->defs, key);
    if (!*def) qb_die_at(__FILE__, __LINE__, "parameter \"%s\" is not in the stage's table", key);
    for (size_t i = 0; i < p->n; i++)
        if (!strcmp(p->kv[i].key, key)) return p->kv[i].value;
    return NULL;
}

double qb_params_num(const qb_params *p, const char *key)
{
    const qb_param_def *d;
    const char *v = lookup(p, key, &d);
    double x;
    if (v && parse_num(d, v, &x) == 0 && x >= d->min && x <= d->max) return x;
    return d->def;
}

int qb_params_int(const qb_params *p, const char *key) { return (int)qb_params_num(p, key); }

const char *qb_params_str(const qb_params *p, const char *key)
{
    const qb_param_def *d;
    const char *v = lookup(p, key, &d);
    return v ? v : (d->def_str ? d->def_str : "");
}
