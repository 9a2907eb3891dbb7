/* The spec parser's internals, shared by its parts (not for use outside
 * jobs/spec*.c):
 *
 *   jobs/spec.c           the document's top level, the value tables, load/free
 *   jobs/spec_yaml.c      libyaml documents, positions, node and key checks
 *   jobs/spec_values.c    axis values (scalars, lists, seed ranges), exclude/include
 *   jobs/spec_settings.c  `train:` and `attack:` blocks, presets
 *   jobs/spec_stages.c    `defenses:` and `mitigations:` parameter blocks
 *   jobs/spec_arch.c      `architectures:`, the layer graphs a spec declares
 *
 * Every function returns 0, or -1 with the first error (positioned,
 * "... at file:line:col ...") in c->err. */
#ifndef QB_SPEC_PARSE_H
#define QB_SPEC_PARSE_H

#include <stddef.h>
#include <stdint.h>
#include <yaml.h>

#include "jobs/spec.h"

/* The values of one axis as read: canonical names, or seed intervals. */
typedef struct vlist {
    uint32_t n, cap;
    char (*names)[QB_AXIS_VALUE_MAX]; /* non-seed axes */
    qb_seed_span *spans;              /* seed axis */
    qb_spec_mark *marks;
} vlist;

/* One parse: the spec being filled, the document being read. */
typedef struct pctx {
    qb_spec *s;
    yaml_document_t *doc;
    const char *file;
    qb_error *err;
    vlist top[QB_AXIS_COUNT]; /* axis values as written at the top level */
    int given[QB_AXIS_COUNT];
    size_t visits;            /* values read: aliases can make a small file name
                                 the same long list many times */
    const char *entry_name;   /* the exclude/include entry being read, or NULL */
    qb_spec_mark entry_mark;
} pctx;

#define AT "%s:%d:%d"
#define MARK(m) (m).file, (m).line, (m).col
#define MAX_SCALAR 4096
/* No legitimate spec has more keys in one mapping or reads more values
 * (at most one per byte of a QB_SPEC_MAX_BYTES file without aliases); the
 * limits keep duplicate checks and alias-multiplied lists bounded. */
#define MAX_KEYS 4096
#define MAX_VISITS ((size_t)QB_SPEC_MAX_BYTES)
/* Budgets checked while libyaml parses, before the document is built
 * (jobs/spec_yaml.c): collections nested deeper (real specs nest 4-5 deep),
 * and YAML events (at most a few per byte of a QB_SPEC_MAX_BYTES file). */
#define MAX_DEPTH 32
#define MAX_EVENTS (4 * (int)QB_SPEC_MAX_BYTES)

static inline yaml_node_t *spec_node(const pctx *c, int idx)
{
    return yaml_document_get_node(c->doc, idx);
}

static inline const char *spec_sval(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

/* ---- jobs/spec_yaml.c ---- */
qb_spec_mark spec_mark_of(const pctx *c, const yaml_node_t *n);
/* "wrong type for FIELD[WHERE] at POS: expected E, got a list", or for an
 * empty value "missing value for FIELD[WHERE] at POS; expected E". */
int spec_wrong_type(const pctx *c, const yaml_node_t *n, const char *field, const char *where,
                    const char *expected);
/* A non-empty scalar without NUL bytes and at most MAX_SCALAR long. */
int spec_get_scalar(const pctx *c, const yaml_node_t *n, const char *field, const char *where,
                    const char *expected, const char **out);
/* "a, b, c" from a NULL-terminated list, into buf (n bytes). */
void spec_join(const char *const *list, char *buf, size_t n);
/* Every key of `map` a scalar, in `known` (NULL: any), and given once.
 * field NULL: the top level. noun: "key" or "axis". */
int spec_check_keys(const pctx *c, const yaml_node_t *map, const char *field,
                    const char *const *known, const char *noun);
/* Load the single document of text. Returns 0 with *doc to delete, or -1. */
int spec_load_document(const char *text, size_t len, const char *file, yaml_document_t *doc,
                       qb_error *err);

/* ---- jobs/spec_values.c ---- */
void spec_vl_free(vlist *v);
void spec_vl_push(vlist *v, qb_axis axis, const char *name, qb_seed_span sp, qb_spec_mark m);
/* The values of one axis: a scalar, a list of scalars, or (seed) a range.
 * where: "" at the top level, " in exclude entry 2" in entries. On failure
 * v is freed. */
int spec_parse_values(pctx *c, qb_axis axis, const yaml_node_t *n, const char *where, vlist *v);
/* `exclude:` (include 0) or `include:` (include 1) into s->exclude/include. */
int spec_parse_filters(pctx *c, int include, const yaml_node_t *n);
void spec_filter_free(qb_spec_filter *f);

/* ---- jobs/spec_settings.c ---- */
/* The built-in defaults of every setting. */
void spec_settings_default(qb_spec_settings *set);
/* A settings key of the top level or a preset (train, attack, defenses,
 * mitigations); 1 if `key` is not one. */
int spec_apply_setting(pctx *c, const char *key, const yaml_node_t *v);
/* `extends: NAME`: the preset's settings, applied first. */
int spec_apply_preset(pctx *c, const yaml_node_t *v);

/* ---- jobs/spec_stages.c ---- */
/* `defenses:` / `mitigations:`: each value's block, checked against its
 * parameter table. */
int spec_parse_stages(pctx *c, qb_axis axis, const char *group, const yaml_node_t *n);
/* Blocks sorted by (axis, value), each block's parameters by key. */
void spec_sort_stages(qb_spec *s);

/* ---- jobs/spec_arch.c ---- */
/* `architectures:` into s->archs (sorted by name): names, layer lines and
 * their positions; checked against the grammar only by spec_check_archs. */
int spec_parse_archs(pctx *c, const yaml_node_t *n);
/* After the expansion: plan every declared architecture for every dataset
 * of the spec (errors at the layer's file:line:col), then declare them for
 * this process (qb_arch_declare). Returns 0, or -1 with the error in err. */
int spec_check_archs(qb_spec *s, qb_error *err);
void spec_archs_free(qb_spec *s);

#endif
