/* Sweep specs: the values of the axes (jobs/spec_parse.h): scalars, lists,
 * seed ranges, duplicates, and the exclude/include entries. */
#include "jobs/spec_parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/sort.h"
#include "core/xalloc.h"

/* ---- value lists ----------------------------------------------------------- */

void spec_vl_free(vlist *v)
{
    free(v->names);
    free(v->spans);
    free(v->marks);
    memset(v, 0, sizeof *v);
}

void spec_vl_push(vlist *v, qb_axis axis, const char *name, qb_seed_span sp, qb_spec_mark m)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 8;
        if (axis == QB_AXIS_SEED)
            v->spans = xrealloc(v->spans, v->cap, sizeof *v->spans);
        else
            v->names = xrealloc(v->names, v->cap, sizeof *v->names);
        v->marks = xrealloc(v->marks, v->cap, sizeof *v->marks);
    }
    if (axis == QB_AXIS_SEED)
        v->spans[v->n] = sp;
    else
        memcpy(v->names[v->n], name, QB_AXIS_VALUE_MAX);
    v->marks[v->n++] = m;
}

/* The values budget, counted as values are read, before anything is built
 * from them: a scalar counts 1, a seed range each of its seeds, and a value
 * reached through an alias or a merge each time it is reached. */
static int count_values(pctx *c, uint64_t k, qb_spec_mark m)
{
    if (k <= MAX_VISITS - c->visits) {
        c->visits += (size_t)k;
        return 0;
    }
    char at[400];
    if (c->entry_name) /* an alias's node is where its anchor is: name the entry too */
        snprintf(at, sizeof at, "in %s at " AT " (%llu at " AT ")", c->entry_name,
                 MARK(c->entry_mark), (unsigned long long)k, MARK(m));
    else
        snprintf(at, sizeof at, "at " AT " (%llu there)", MARK(m), (unsigned long long)k);
    return QB_FAIL(c->err, "too many values %s: the spec names more than %zu values (seed ranges "
                           "count each seed, aliases each use); at most %zu are allowed",
                   at, MAX_VISITS, MAX_VISITS);
}

static const char *axis_type_expected(qb_axis axis)
{
    return axis == QB_AXIS_SEED ? "an integer, a list of integers or {range: [start, stop]}"
                                : "a value or a list of values";
}

/* One value of an axis, canonicalised, appended to v. */
static int parse_value(pctx *c, qb_axis axis, const yaml_node_t *n, const char *where, vlist *v)
{
    char exp[256];
    qb_axis_expected(axis, exp, sizeof exp);
    const char *name = qb_axis_name(axis), *raw = NULL;
    if (spec_get_scalar(c, n, name, where, axis == QB_AXIS_SEED ? "an integer" : "a value", &raw))
        return -1;
    qb_spec_mark m = spec_mark_of(c, n);
    if (count_values(c, 1, m)) return -1;
    char canon[QB_AXIS_VALUE_MAX];
    if (qb_axis_canonical(axis, raw, canon, sizeof canon))
        return QB_FAIL(c->err, "%s %s \"%.64s\"%s at " AT "; %s",
                       axis == QB_AXIS_SEED ? "invalid" : "unknown", name, raw, where, MARK(m), exp);
    qb_seed_span sp = {0, 0};
    if (axis == QB_AXIS_SEED) {
        sp.lo = strtoull(canon, NULL, 10);
        sp.hi = sp.lo + 1;
    }
    spec_vl_push(v, axis, canon, sp, m);
    return 0;
}

/* Parse a decimal integer in [lo, hi] (no sign for lo >= 0). */
static int parse_u64(const char *s, uint64_t lo, uint64_t hi, uint64_t *out)
{
    if (!*s) return -1;
    uint64_t x = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        unsigned d = (unsigned)(*p - '0');
        if (x > (UINT64_MAX - d) / 10) return -1;
        x = x * 10 + d;
    }
    if (x < lo || x > hi) return -1;
    *out = x;
    return 0;
}

/* {range: [start, stop]} */
static int parse_range(pctx *c, const yaml_node_t *map, const char *where, vlist *v)
{
    static const char *const range_keys[] = {"range", NULL};
    char field[160];
    snprintf(field, sizeof field, "seed%s", where);
    if (spec_check_keys(c, map, field, range_keys, "key")) return -1;
    qb_spec_mark m = spec_mark_of(c, map);
    if (map->data.mapping.pairs.top == map->data.mapping.pairs.start)
        return QB_FAIL(c->err, "invalid seed%s at " AT "; expected {range: [start, stop]}", where,
                       MARK(m));
    yaml_node_t *seq = spec_node(c, map->data.mapping.pairs.start->value);
    if (seq->type != YAML_SEQUENCE_NODE)
        return spec_wrong_type(c, seq, "seed.range", where, "[start, stop]");
    qb_spec_mark ms = spec_mark_of(c, seq);
    long count = seq->data.sequence.items.top - seq->data.sequence.items.start;
    if (count != 2)
        return QB_FAIL(c->err, "invalid seed.range%s at " AT "; expected [start, stop], got %ld value%s",
                       where, MARK(ms), count, count == 1 ? "" : "s");
    yaml_node_t *a = spec_node(c, seq->data.sequence.items.start[0]);
    yaml_node_t *b = spec_node(c, seq->data.sequence.items.start[1]);
    const char *sa, *sb;
    uint64_t lo, hi;
    if (spec_get_scalar(c, a, "seed.range start", where, "an integer", &sa)) return -1;
    if (parse_u64(sa, 0, (uint64_t)QB_SEED_MAX, &lo)) {
        qb_spec_mark ma = spec_mark_of(c, a);
        return QB_FAIL(c->err, "invalid seed.range start \"%.64s\" at " AT
                               "; expected an integer in [0, %lld]",
                       sa, MARK(ma), (long long)QB_SEED_MAX);
    }
    if (spec_get_scalar(c, b, "seed.range stop", where, "an integer", &sb)) return -1;
    if (parse_u64(sb, 1, (uint64_t)QB_SEED_MAX + 1, &hi)) {
        qb_spec_mark mb = spec_mark_of(c, b);
        return QB_FAIL(c->err, "invalid seed.range stop \"%.64s\" at " AT
                               "; expected an integer in [1, %llu]",
                       sb, MARK(mb), (unsigned long long)QB_SEED_MAX + 1);
    }
    if (hi <= lo)
        return QB_FAIL(c->err, "invalid seed.range [%s, %s] at " AT
                               "; stop must be greater than start (stop is exclusive)",
                       sa, sb, MARK(ms));
    if (hi - lo > QB_SPEC_MAX_RANGE)
        return QB_FAIL(c->err, "seed.range [%s, %s] at " AT " holds %llu seeds; at most %u are allowed",
                       sa, sb, MARK(ms), (unsigned long long)(hi - lo), QB_SPEC_MAX_RANGE);
    if (count_values(c, hi - lo, ms)) return -1;
    qb_seed_span sp = {lo, hi};
    spec_vl_push(v, QB_AXIS_SEED, NULL, sp, spec_mark_of(c, map));
    return 0;
}

/* The first value (in document order) that repeats an earlier one. */
static int check_duplicates(pctx *c, qb_axis axis, const vlist *v, const yaml_node_t **nodes,
                            const char *where)
{
    long dup = -1, first = -1;
    if (axis == QB_AXIS_SEED) {
        if (v->n < 2) return 0;
        qb_u64_pos *r = xmalloc(v->n, sizeof *r);
        for (uint32_t i = 0; i < v->n; i++) r[i] = (qb_u64_pos){v->spans[i].lo, i};
        qsort(r, v->n, sizeof *r, qb_cmp_u64_pos);
        for (uint32_t i = 1; i < v->n; i++) {
            if (r[i].v != r[i - 1].v) continue;
            uint32_t g = i - 1; /* r[g] is the group's first occurrence */
            while (g > 0 && r[g - 1].v == r[i].v) g--;
            if (dup < 0 || r[i].pos < (uint32_t)dup) {
                dup = r[i].pos;
                first = r[g].pos;
            }
        }
        free(r);
    } else {
        for (uint32_t i = 1; i < v->n && dup < 0; i++)
            for (uint32_t j = 0; j < i; j++)
                if (!strcmp(v->names[i], v->names[j])) {
                    dup = i;
                    first = j;
                    break;
                }
    }
    if (dup < 0) return 0;
    const char *raw = spec_sval(nodes[dup]), *raw0 = spec_sval(nodes[first]);
    char canon[QB_AXIS_VALUE_MAX];
    if (axis == QB_AXIS_SEED)
        snprintf(canon, sizeof canon, "%llu", (unsigned long long)v->spans[dup].lo);
    else
        memcpy(canon, v->names[dup], sizeof canon);
    qb_spec_mark m = v->marks[dup], m0 = v->marks[first];
    if (strcmp(raw, canon) || strcmp(raw0, canon))
        return QB_FAIL(c->err, "duplicate %s \"%.64s\"%s at " AT " (%s, first at " AT ")",
                       qb_axis_name(axis), raw, where, MARK(m), canon, MARK(m0));
    return QB_FAIL(c->err, "duplicate %s \"%.64s\"%s at " AT " (first at " AT ")",
                   qb_axis_name(axis), raw, where, MARK(m), MARK(m0));
}

/* The values of one axis: a scalar, a list of scalars, or (seed) a range.
 * where: "" at the top level, " in exclude entry 2" in entries. On failure
 * v is freed. */
int spec_parse_values(pctx *c, qb_axis axis, const yaml_node_t *n, const char *where, vlist *v)
{
    memset(v, 0, sizeof *v);
    const char *name = qb_axis_name(axis);
    int rc = 0;
    if (n->type == YAML_MAPPING_NODE && axis == QB_AXIS_SEED) {
        rc = parse_range(c, n, where, v);
    } else if (n->type == YAML_SCALAR_NODE && n->data.scalar.length > 0) {
        rc = parse_value(c, axis, n, where, v);
    } else if (n->type == YAML_SEQUENCE_NODE) {
        long count = n->data.sequence.items.top - n->data.sequence.items.start;
        if (count == 0) {
            qb_spec_mark m = spec_mark_of(c, n);
            if (*where)
                return QB_FAIL(c->err, "empty list for %s%s at " AT "; give at least one value",
                               name, where, MARK(m));
            return QB_FAIL(c->err, "empty list for %s at " AT
                                   "; give at least one value, or leave %s out for the default (%s)",
                           name, MARK(m), name, qb_axis_default(axis));
        }
        const yaml_node_t **nodes = xmalloc((size_t)count, sizeof *nodes);
        for (long i = 0; i < count && rc == 0; i++) {
            nodes[i] = spec_node(c, n->data.sequence.items.start[i]);
            rc = parse_value(c, axis, nodes[i], where, v);
        }
        if (rc == 0) rc = check_duplicates(c, axis, v, nodes, where);
        free(nodes);
    } else {
        rc = spec_wrong_type(c, n, name, where, axis_type_expected(axis));
    }
    if (rc) spec_vl_free(v);
    return rc;
}

/* ---- exclude: / include: ---------------------------------------------------- */

void spec_filter_free(qb_spec_filter *f)
{
    for (int a = 0; a < QB_AXIS_COUNT; a++) free(f->names[a]);
    free(f->spans);
    memset(f, 0, sizeof *f);
}

int spec_parse_filters(pctx *c, int include, const yaml_node_t *n)
{
    const char *field = include ? "include" : "exclude";
    if (n->type != YAML_SEQUENCE_NODE)
        return spec_wrong_type(c, n, field, "",
                          include ? "a list of tuples (mappings of all six axes)"
                                  : "a list of partial tuples (mappings of axis values)");
    const char *axis_names[QB_AXIS_COUNT + 1];
    for (int a = 0; a < QB_AXIS_COUNT; a++) axis_names[a] = qb_axis_name((qb_axis)a);
    axis_names[QB_AXIS_COUNT] = NULL;
    qb_spec *s = c->s;
    int entry_no = 0;
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top; it++) {
        yaml_node_t *e = spec_node(c, *it);
        char name[48], where[64];
        snprintf(name, sizeof name, "%s entry %d", field, ++entry_no);
        snprintf(where, sizeof where, " in %s", name);
        if (e->type != YAML_MAPPING_NODE)
            return spec_wrong_type(c, e, name, "", "a mapping of axis values");
        if (spec_check_keys(c, e, name, axis_names, "axis")) return -1;
        qb_spec_mark em = spec_mark_of(c, e);
        if (e->data.mapping.pairs.top == e->data.mapping.pairs.start)
            return QB_FAIL(c->err, "empty %s at " AT "; name at least one axis", name, MARK(em));
        size_t *count = include ? &s->n_include : &s->n_exclude;
        qb_spec_filter **arr = include ? &s->include : &s->exclude;
        *arr = xrealloc(*arr, *count + 1, sizeof **arr);
        qb_spec_filter *f = &(*arr)[(*count)++];
        memset(f, 0, sizeof *f);
        f->mark = em;
        c->entry_name = name;
        c->entry_mark = em;
        for (yaml_node_pair_t *p = e->data.mapping.pairs.start; p < e->data.mapping.pairs.top; p++) {
            qb_axis axis;
            qb_axis_from_name(spec_sval(spec_node(c, p->key)), &axis);
            vlist v;
            int rc = spec_parse_values(c, axis, spec_node(c, p->value), where, &v);
            if (rc) {
                c->entry_name = NULL; /* it names a buffer of this loop */
                return -1;
            }
            f->n[axis] = v.n;
            if (axis == QB_AXIS_SEED) {
                f->spans = v.spans;
                v.spans = NULL;
            } else {
                f->names[axis] = v.names;
                v.names = NULL;
            }
            spec_vl_free(&v);
        }
        c->entry_name = NULL;
        if (include) {
            char missing[128] = "";
            for (int a = 0; a < QB_AXIS_COUNT; a++)
                if (f->n[a] == 0)
                    snprintf(missing + strlen(missing), sizeof missing - strlen(missing), "%s%s",
                             *missing ? ", " : "", qb_axis_name((qb_axis)a));
            if (*missing) {
                char all[128];
                spec_join(axis_names, all, sizeof all);
                return QB_FAIL(c->err, "%s at " AT " lacks %s; include entries name all six axes (%s)",
                               name, MARK(em), missing, all);
            }
        }
    }
    return 0;
}
