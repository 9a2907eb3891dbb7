/* Sweep specs: reading the YAML document and positions (jobs/spec_parse.h):
 * node helpers, key checks, and libyaml's errors as positioned messages. */
#include "jobs/spec_parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

qb_spec_mark spec_mark_of(const pctx *c, const yaml_node_t *n)
{
    qb_spec_mark m = {c->file, (int)n->start_mark.line + 1, (int)n->start_mark.column + 1};
    return m;
}

static const char *kind_name(const yaml_node_t *n)
{
    switch (n->type) {
    case YAML_SCALAR_NODE: return "a value";
    case YAML_SEQUENCE_NODE: return "a list";
    case YAML_MAPPING_NODE: return "a mapping";
    default: return "nothing";
    }
}

static int is_empty_scalar(const yaml_node_t *n)
{
    return n->type == YAML_SCALAR_NODE && n->data.scalar.length == 0;
}

/* "wrong type for FIELD[WHERE] at POS: expected E, got a list", or for an
 * empty value "missing value for FIELD[WHERE] at POS; expected E". */
int spec_wrong_type(const pctx *c, const yaml_node_t *n, const char *field, const char *where,
                      const char *expected)
{
    qb_spec_mark m = spec_mark_of(c, n);
    if (is_empty_scalar(n))
        return QB_FAIL(c->err, "missing value for %s%s at " AT "; expected %s", field, where,
                       MARK(m), expected);
    return QB_FAIL(c->err, "wrong type for %s%s at " AT ": expected %s, got %s", field, where,
                   MARK(m), expected, kind_name(n));
}

/* A non-empty scalar without NUL bytes and at most MAX_SCALAR long. */
int spec_get_scalar(const pctx *c, const yaml_node_t *n, const char *field, const char *where,
                      const char *expected, const char **out)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.length == 0)
        return spec_wrong_type(c, n, field, where, expected);
    qb_spec_mark m = spec_mark_of(c, n);
    if (strlen(spec_sval(n)) != n->data.scalar.length)
        return QB_FAIL(c->err, "invalid %s%s at " AT ": the value holds a NUL character", field,
                       where, MARK(m));
    if (n->data.scalar.length > MAX_SCALAR)
        return QB_FAIL(c->err, "invalid %s%s at " AT ": the value is longer than %d bytes", field,
                       where, MARK(m), MAX_SCALAR);
    *out = spec_sval(n);
    return 0;
}

void spec_join(const char *const *list, char *buf, size_t n)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; list[i] && len < n; i++) {
        int w = snprintf(buf + len, n - len, "%s%s", i ? ", " : "", list[i]);
        if (w < 0) break;
        len += (size_t)w;
    }
}

/* Every key of `map` a scalar, in `known` (NULL: any), and given once.
 * field NULL: the top level. noun: "key" or "axis". */
int spec_check_keys(const pctx *c, const yaml_node_t *map, const char *field,
                      const char *const *known, const char *noun)
{
    char in[160] = "";
    if (field) snprintf(in, sizeof in, " in %s", field);
    long n_keys = map->data.mapping.pairs.top - map->data.mapping.pairs.start;
    if (n_keys > MAX_KEYS) {
        qb_spec_mark m = spec_mark_of(c, map);
        return QB_FAIL(c->err, "too many keys%s at " AT ": %ld; at most %d", in, MARK(m), n_keys,
                       MAX_KEYS);
    }
    for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
        yaml_node_t *k = spec_node(c, p->key);
        const char *name;
        if (spec_get_scalar(c, k, "a key", in, "a name", &name)) return -1;
        qb_spec_mark m = spec_mark_of(c, k);
        if (known) {
            int ok = 0;
            for (int i = 0; known[i]; i++) ok |= !strcmp(name, known[i]);
            if (!ok) {
                char list[512];
                spec_join(known, list, sizeof list);
                return QB_FAIL(c->err, "unknown %s \"%.64s\"%s at " AT "; expected one of: %s", noun,
                               name, in, MARK(m), list);
            }
        }
        for (yaml_node_pair_t *q = map->data.mapping.pairs.start; q < p; q++) {
            yaml_node_t *k2 = spec_node(c, q->key);
            if (!strcmp(spec_sval(k2), name)) {
                qb_spec_mark m2 = spec_mark_of(c, k2);
                return QB_FAIL(c->err, "duplicate %s \"%.64s\"%s at " AT " (first at " AT ")", noun,
                               name, in, MARK(m), MARK(m2));
            }
        }
    }
    return 0;
}

/* ---- the document ------------------------------------------------------------ */

static int yaml_fail(const yaml_parser_t *p, const char *file, const char *text, size_t len,
                     qb_error *err)
{
    switch (p->error) {
    case YAML_MEMORY_ERROR: qb_die_at(__FILE__, __LINE__, "out of memory parsing %s", file);
    case YAML_READER_ERROR: {
        int line = 1, col = 1;
        for (size_t i = 0; i < p->problem_offset && i < len; i++) {
            if (text[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        if (p->problem_value != -1)
            return QB_FAIL(err, "invalid text at %s:%d:%d: %s (byte 0x%02X); a spec is UTF-8", file,
                           line, col, p->problem, (unsigned)p->problem_value & 0xffu);
        return QB_FAIL(err, "invalid text at %s:%d:%d: %s; a spec is UTF-8", file, line, col,
                       p->problem);
    }
    default: break;
    }
    const char *problem = p->problem ? p->problem : "unknown problem";
    if (p->context)
        return QB_FAIL(err, "YAML syntax error at %s:%d:%d: %s (%s at %s:%d:%d)", file,
                       (int)p->problem_mark.line + 1, (int)p->problem_mark.column + 1, problem,
                       p->context, file, (int)p->context_mark.line + 1,
                       (int)p->context_mark.column + 1);
    return QB_FAIL(err, "YAML syntax error at %s:%d:%d: %s", file, (int)p->problem_mark.line + 1,
                   (int)p->problem_mark.column + 1, problem);
}

/* Before the document is built: one pass over libyaml's events that stops
 * at the first collection nested deeper than MAX_DEPTH, or after MAX_EVENTS
 * events, so a few hundred KB of "[[[[" fail at once instead of building a
 * node tree libyaml takes minutes over. Syntax errors are left to the load,
 * which reports them the same way. Returns 0, or -1 with the budget in err. */
static int check_nesting(const char *text, size_t len, const char *file, qb_error *err)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) qb_die_at(__FILE__, __LINE__, "out of memory");
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    int depth = 0, rc = 0;
    size_t events = 0;
    for (;;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&parser, &ev)) break; /* the load reports it */
        yaml_event_type_t type = ev.type;
        if (type == YAML_SEQUENCE_START_EVENT || type == YAML_MAPPING_START_EVENT) {
            if (++depth > MAX_DEPTH)
                rc = QB_FAIL(err, "too deep at %s:%d:%d: a %s nested %d levels deep; at most %d "
                                  "levels are allowed",
                             file, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1,
                             type == YAML_SEQUENCE_START_EVENT ? "list" : "mapping", depth,
                             MAX_DEPTH);
        } else if (type == YAML_SEQUENCE_END_EVENT || type == YAML_MAPPING_END_EVENT) {
            depth--;
        }
        if (rc == 0 && ++events > MAX_EVENTS)
            rc = QB_FAIL(err, "too many YAML nodes at %s:%d:%d: more than %d; at most %d are "
                              "allowed",
                         file, (int)ev.start_mark.line + 1, (int)ev.start_mark.column + 1,
                         MAX_EVENTS, MAX_EVENTS);
        yaml_event_delete(&ev);
        if (rc || type == YAML_STREAM_END_EVENT) break;
    }
    yaml_parser_delete(&parser);
    return rc;
}

/* Load the single document of text. Returns 0 with *doc to delete, or -1. */
int spec_load_document(const char *text, size_t len, const char *file, yaml_document_t *doc,
                         qb_error *err)
{
    if (check_nesting(text, len, file, err)) return -1;
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) qb_die_at(__FILE__, __LINE__, "out of memory");
    yaml_parser_set_input_string(&parser, (const unsigned char *)text, len);
    if (!yaml_parser_load(&parser, doc)) {
        int rc = yaml_fail(&parser, file, text, len, err);
        yaml_parser_delete(&parser);
        return rc;
    }
    yaml_node_t *root = yaml_document_get_root_node(doc);
    if (!root) {
        yaml_document_delete(doc);
        yaml_parser_delete(&parser);
        return QB_FAIL(err, "empty spec at %s:1:1; expected a mapping of axes and settings", file);
    }
    yaml_document_t extra;
    if (!yaml_parser_load(&parser, &extra)) {
        int rc = yaml_fail(&parser, file, text, len, err);
        yaml_document_delete(doc);
        yaml_parser_delete(&parser);
        return rc;
    }
    yaml_node_t *root2 = yaml_document_get_root_node(&extra);
    int rc = 0;
    if (root2)
        rc = QB_FAIL(err, "a second YAML document at %s:%d:%d; a spec is one document", file,
                     (int)root2->start_mark.line + 1, (int)root2->start_mark.column + 1);
    yaml_document_delete(&extra);
    yaml_parser_delete(&parser);
    if (rc) yaml_document_delete(doc);
    return rc;
}
