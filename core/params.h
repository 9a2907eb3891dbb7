/* Parameters of a defense or mitigation: one table per stage, the single
 * source of their names, defaults, ranges and documentation.
 *
 * A spec sets them under `defenses:` / `mitigations:` (string values); the
 * spec parser checks each value against the table (qb_params_check) so a
 * bad value is reported with its file position before anything runs, and
 * the stage reads the resolved value with qb_params_num / qb_params_str. */
#ifndef QB_PARAMS_H
#define QB_PARAMS_H

#include <stddef.h>

#include "core/error.h"

typedef enum qb_param_type {
    QB_PARAM_INT = 1,  /* integer in [min, max] */
    QB_PARAM_REAL = 2, /* finite real in [min, max] */
    QB_PARAM_STR = 3,  /* free string (e.g. a path); def_str is the default */
} qb_param_type;

/* One parameter. Tables end with an entry whose key is NULL. */
typedef struct qb_param_def {
    const char *key;
    qb_param_type type;
    double def, min, max;  /* INT / REAL */
    const char *def_str;   /* STR: default ("" for none) */
    const char *doc;       /* one line for the README / --help */
} qb_param_def;

/* The values a spec gives: key/value strings (not owned). */
typedef struct qb_param_kv {
    const char *key, *value;
} qb_param_kv;

typedef struct qb_params {
    const qb_param_def *defs;
    size_t n;
    const qb_param_kv *kv;
} qb_params;

/* An empty table: a stage that takes no parameters. */
extern const qb_param_def qb_no_params[];

/* The entry of `key`, or NULL. */
const qb_param_def *qb_param_find(const qb_param_def *defs, const char *key);
/* Check one value: -1 with a message ("expected an integer in [1, 100000]")
 * if the key is unknown or the value does not parse or is out of range. */
int qb_params_check(const qb_param_def *defs, const char *key, const char *value, qb_error *err);
/* Space-separated keys of a table into buf (for messages). Returns buf. */
const char *qb_params_keys(const qb_param_def *defs, char *buf, size_t n);

/* The value of a numeric parameter: the spec's if given (already checked),
 * else the default. Aborts if key is not in the table (a programming error). */
double qb_params_num(const qb_params *p, const char *key);
int qb_params_int(const qb_params *p, const char *key);
/* The value of a string parameter, or its default. */
const char *qb_params_str(const qb_params *p, const char *key);

#endif
