/* Sweep spec parsing and validation (format: jobs/spec.h).
 *
 * libyaml's document API gives a node tree with the position of every node;
 * the spec is checked node by node against the tables below, and the first
 * problem becomes the error. Order: the keys of the top-level mapping
 * (unknown or duplicate), then `extends` (the preset is applied first), then
 * every value in document order, then the expansion (jobs/spec_expand.c).
 *
 * The parts: jobs/spec_yaml.c (the document, positions), jobs/spec_values.c
 * (axis values, exclude/include), jobs/spec_settings.c (train/attack blocks,
 * presets), jobs/spec_stages.c (defenses:/mitigations: blocks). */
#include "jobs/spec.h"
#include "jobs/spec_parse.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/file.h"
#include "core/xalloc.h"

static const char *const top_keys[] = {"name",    "extends",    "dataset",  "seed",
                                       "trigger", "precision",  "mitigation", "defense",
                                       "exclude", "include",    "train",    "attack",
                                       "data_dir", "defenses",  "mitigations", "architectures",
                                       NULL};

static int parse_string(pctx *c, const char *key, const yaml_node_t *v, const char *exp, char **out)
{
    const char *str;
    if (spec_get_scalar(c, v, key, "", exp, &str)) return -1;
    free(*out);
    *out = xstrdup(str);
    return 0;
}

static void build_axes(pctx *c)
{
    qb_spec *s = c->s;
    for (int a = 0; a < QB_AXIS_COUNT; a++) {
        qb_spec_axis *ax = &s->axes[a];
        vlist *v = &c->top[a];
        if (!c->given[a]) {
            qb_spec_mark none = {NULL, 0, 0};
            char canon[QB_AXIS_VALUE_MAX];
            qb_axis_canonical((qb_axis)a, qb_axis_default((qb_axis)a), canon, sizeof canon);
            qb_seed_span sp = {0, 1};
            spec_vl_push(v, (qb_axis)a, canon, sp, none);
        }
        if (a == QB_AXIS_SEED) {
            uint64_t total = 0;
            for (uint32_t i = 0; i < v->n; i++) total += v->spans[i].hi - v->spans[i].lo;
            QB_ASSERT(total <= UINT32_MAX);
            ax->seeds = xmalloc((size_t)total, sizeof *ax->seeds);
            size_t k = 0;
            for (uint32_t i = 0; i < v->n; i++)
                for (uint64_t x = v->spans[i].lo; x < v->spans[i].hi; x++) ax->seeds[k++] = x;
            ax->n = ax->n_listed = (uint32_t)total;
        } else {
            ax->names = v->names;
            v->names = NULL;
            ax->n = ax->n_listed = v->n;
        }
    }
}

static int parse_root(pctx *c)
{
    qb_spec *s = c->s;
    yaml_node_t *root = yaml_document_get_root_node(c->doc);
    if (root->type != YAML_MAPPING_NODE)
        return spec_wrong_type(c, root, "the spec", "", "a mapping of axes and settings");
    if (spec_check_keys(c, root, NULL, top_keys, "key")) return -1;
    yaml_node_pair_t *p0 = root->data.mapping.pairs.start, *p1 = root->data.mapping.pairs.top;
    for (yaml_node_pair_t *p = p0; p < p1; p++)
        if (!strcmp(spec_sval(spec_node(c, p->key)), "extends") && spec_apply_preset(c, spec_node(c, p->value)))
            return -1;
    /* before the settings: train.arch may name them */
    for (yaml_node_pair_t *p = p0; p < p1; p++)
        if (!strcmp(spec_sval(spec_node(c, p->key)), "architectures") &&
            spec_parse_archs(c, spec_node(c, p->value)))
            return -1;
    for (yaml_node_pair_t *p = p0; p < p1; p++) {
        yaml_node_t *k = spec_node(c, p->key), *v = spec_node(c, p->value);
        const char *key = spec_sval(k);
        qb_axis axis;
        int rc = 0;
        if (!qb_axis_from_name(key, &axis)) {
            rc = spec_parse_values(c, axis, v, "", &c->top[axis]);
            c->given[axis] = 1;
            s->axes[axis].mark = spec_mark_of(c, v);
        } else if (!strcmp(key, "exclude") || !strcmp(key, "include")) {
            rc = spec_parse_filters(c, !strcmp(key, "include"), v);
        } else if (!strcmp(key, "name")) {
            rc = parse_string(c, key, v, "a name", &s->name);
        } else if (!strcmp(key, "data_dir")) {
            rc = parse_string(c, key, v, "a directory", &s->data_dir);
        } else if (!strcmp(key, "extends") || !strcmp(key, "architectures")) {
            rc = 0;
        } else {
            rc = spec_apply_setting(c, key, v);
        }
        if (rc) return -1;
    }
    build_axes(c);
    spec_sort_stages(s);
    /* backstop: the field table must keep the library's own checks */
    qb_error e2;
    QB_ASSERT(qb_train_config_validate(&s->set.train, &e2) == 0);
    return 0;
}

int qb_spec_parse(qb_spec *s, const char *text, size_t len, const char *name, qb_error *err)
{
    memset(s, 0, sizeof *s);
    s->path = xstrdup(name);
    if (len > QB_SPEC_MAX_BYTES) {
        QB_FAIL(err, "spec %s is %zu bytes; at most %u are read", name, len, QB_SPEC_MAX_BYTES);
        qb_spec_free(s);
        return -1;
    }
    s->text = xmalloc(len + 1, 1);
    memcpy(s->text, text, len);
    s->text[len] = '\0';
    s->text_len = len;
    spec_settings_default(&s->set);

    pctx c;
    memset(&c, 0, sizeof c);
    c.s = s;
    c.file = s->path;
    c.err = err;
    yaml_document_t doc;
    int rc = spec_load_document(s->text, len, s->path, &doc, err);
    if (rc == 0) {
        c.doc = &doc;
        rc = parse_root(&c);
        yaml_document_delete(&doc);
    }
    for (int a = 0; a < QB_AXIS_COUNT; a++) spec_vl_free(&c.top[a]);
    if (rc == 0) rc = qb_spec_expand(s, err);
    if (rc == 0) rc = spec_check_archs(s, err);
    if (rc) {
        qb_spec_free(s);
        return -1;
    }
    return 0;
}

int qb_spec_load(qb_spec *s, const char *path, qb_error *err)
{
    memset(s, 0, sizeof *s);
    /* a FIFO or a device would block fopen: refused, saying what it is */
    FILE *f = qb_file_fopen_regular(path, "spec", err);
    if (!f) return -1;
    size_t cap = 1 << 16, len = 0;
    char *buf = xmalloc(cap, 1);
    for (;;) {
        if (len == cap) {
            if (cap > QB_SPEC_MAX_BYTES) break;
            cap *= 2;
            buf = xrealloc(buf, cap, 1);
        }
        size_t got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0) break;
    }
    int bad = ferror(f) ? errno : 0;
    fclose(f);
    if (bad) {
        free(buf);
        return QB_FAIL(err, "cannot read spec %s: %s", path, strerror(bad));
    }
    int rc = qb_spec_parse(s, buf, len, path, err);
    free(buf);
    return rc;
}

void qb_spec_free(qb_spec *s)
{
    if (!s) return;
    qb_spec_resolved_free(&s->res, s);
    free(s->path);
    free(s->text);
    free(s->name);
    free(s->extends);
    free(s->data_dir);
    for (int a = 0; a < QB_AXIS_COUNT; a++) {
        free(s->axes[a].names);
        free(s->axes[a].seeds);
    }
    for (size_t i = 0; i < s->n_stages; i++) {
        for (size_t j = 0; j < s->stages[i].n; j++) {
            free(s->stages[i].params[j].key);
            free(s->stages[i].params[j].value);
        }
        free(s->stages[i].params);
    }
    free(s->stages);
    for (size_t i = 0; i < s->n_exclude; i++) spec_filter_free(&s->exclude[i]);
    for (size_t i = 0; i < s->n_include; i++) spec_filter_free(&s->include[i]);
    free(s->exclude);
    free(s->include);
    spec_archs_free(s);
    free(s->tasks);
    free(s->models);
    free(s->sorted_ids);
    free(s->sorted_pos);
    memset(s, 0, sizeof *s);
}

const char *qb_spec_value(const qb_spec *s, qb_axis axis, uint32_t idx, char *buf, size_t n)
{
    QB_ASSERT((unsigned)axis < QB_AXIS_COUNT && idx < s->axes[axis].n);
    if (axis == QB_AXIS_SEED)
        snprintf(buf, n, "%llu", (unsigned long long)s->axes[axis].seeds[idx]);
    else
        snprintf(buf, n, "%s", s->axes[axis].names[idx]);
    return buf;
}
