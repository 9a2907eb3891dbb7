/* Sweep specs: the parameter blocks under `defenses:` and `mitigations:`
 * (jobs/spec_parse.h), checked against each value's parameter table. */
#include "jobs/spec_parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"

/* ---- defenses: / mitigations: ----------------------------------------------- */

static qb_spec_stage *stage_get(qb_spec *s, qb_axis axis, const char *value, qb_spec_mark m)
{
    for (size_t i = 0; i < s->n_stages; i++)
        if (s->stages[i].axis == axis && !strcmp(s->stages[i].value, value)) return &s->stages[i];
    s->stages = xrealloc(s->stages, s->n_stages + 1, sizeof *s->stages);
    qb_spec_stage *st = &s->stages[s->n_stages++];
    memset(st, 0, sizeof *st);
    st->axis = axis;
    snprintf(st->value, sizeof st->value, "%s", value);
    st->mark = m;
    return st;
}

static void stage_set(qb_spec_stage *st, const char *key, const char *value, qb_spec_mark m)
{
    for (size_t i = 0; i < st->n; i++)
        if (!strcmp(st->params[i].key, key)) {
            free(st->params[i].value);
            st->params[i].value = xstrdup(value);
            st->params[i].mark = m;
            return;
        }
    st->params = xrealloc(st->params, st->n + 1, sizeof *st->params);
    st->params[st->n].key = xstrdup(key);
    st->params[st->n].value = xstrdup(value);
    st->params[st->n].mark = m;
    st->n++;
}

int spec_parse_stages(pctx *c, qb_axis axis, const char *group, const yaml_node_t *n)
{
    const char *axis_name = qb_axis_name(axis);
    char exp[96];
    snprintf(exp, sizeof exp, "a mapping of %s names to parameter mappings", axis_name);
    if (n->type != YAML_MAPPING_NODE) return spec_wrong_type(c, n, group, "", exp);
    if (spec_check_keys(c, n, group, NULL, "key")) return -1;
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *k = spec_node(c, p->key), *v = spec_node(c, p->value);
        qb_spec_mark km = spec_mark_of(c, k);
        char canon[QB_AXIS_VALUE_MAX], allowed[256];
        if (qb_axis_canonical(axis, spec_sval(k), canon, sizeof canon))
            return QB_FAIL(c->err, "unknown %s \"%.64s\" at " AT "; %s", axis_name, spec_sval(k),
                           MARK(km), qb_axis_expected(axis, allowed, sizeof allowed));
        for (yaml_node_pair_t *q = n->data.mapping.pairs.start; q < p; q++) {
            char c2[QB_AXIS_VALUE_MAX];
            yaml_node_t *k2 = spec_node(c, q->key);
            if (!qb_axis_canonical(axis, spec_sval(k2), c2, sizeof c2) && !strcmp(c2, canon)) {
                qb_spec_mark m2 = spec_mark_of(c, k2);
                return QB_FAIL(c->err, "duplicate %s \"%.64s\" in %s at " AT " (%s, first at " AT ")",
                               axis_name, spec_sval(k), group, MARK(km), canon, MARK(m2));
            }
        }
        char field[160];
        snprintf(field, sizeof field, "%s.%s", group, canon);
        if (v->type != YAML_MAPPING_NODE)
            return spec_wrong_type(c, v, field, "", "a mapping of parameters (use {} for none)");
        if (spec_check_keys(c, v, field, NULL, "parameter")) return -1;
        qb_axis_value value;
        const qb_axis_value *entry = qb_axis_lookup(axis, canon, &value) ? NULL : &value;
        qb_spec_stage *st = stage_get(c->s, axis, canon, km);
        for (yaml_node_pair_t *q = v->data.mapping.pairs.start; q < v->data.mapping.pairs.top; q++) {
            yaml_node_t *pk = spec_node(c, q->key), *pv = spec_node(c, q->value);
            const char *key = spec_sval(pk), *val;
            qb_spec_mark pm = spec_mark_of(c, pk);
            if (entry && entry->params && !qb_axis_value_accepts(entry, key)) {
                char list[256] = "";
                for (const qb_param_def *d = entry->params; d->key; d++)
                    snprintf(list + strlen(list), sizeof list - strlen(list), "%s%s",
                             d == entry->params ? "" : ", ", d->key);
                if (!list[0])
                    return QB_FAIL(c->err, "unknown parameter \"%.64s\" for %s %s at " AT
                                           "; %s takes no parameters",
                                   key, axis_name, canon, MARK(pm), canon);
                return QB_FAIL(c->err, "unknown parameter \"%.64s\" for %s %s at " AT
                                       "; expected one of: %s",
                               key, axis_name, canon, MARK(pm), list);
            }
            char pfield[240];
            snprintf(pfield, sizeof pfield, "%s.%s", field, key);
            if (spec_get_scalar(c, pv, pfield, "", "a value", &val)) return -1;
            qb_spec_mark vm = spec_mark_of(c, pv);
            if (entry && entry->params) {
                qb_error e2 = {0};
                if (qb_params_check(entry->params, key, val, &e2))
                    return QB_FAIL(c->err, "invalid %s \"%.64s\" at " AT ": %s", pfield, val,
                                   MARK(vm), e2.msg);
            }
            stage_set(st, key, val, vm);
        }
    }
    return 0;
}

static int cmp_param(const void *a, const void *b)
{
    return strcmp(((const qb_spec_param *)a)->key, ((const qb_spec_param *)b)->key);
}

static int cmp_stage(const void *a, const void *b)
{
    const qb_spec_stage *x = a, *y = b;
    if (x->axis != y->axis) return x->axis < y->axis ? -1 : 1;
    return strcmp(x->value, y->value);
}

/* The value tables from what the axes named (or their defaults). */
void spec_sort_stages(qb_spec *s)
{
    for (size_t i = 0; i < s->n_stages; i++)
        if (s->stages[i].n) qsort(s->stages[i].params, s->stages[i].n, sizeof(qb_spec_param), cmp_param);
    if (s->n_stages) qsort(s->stages, s->n_stages, sizeof *s->stages, cmp_stage);
}

const qb_spec_stage *qb_spec_stage_params(const qb_spec *s, qb_axis axis, const char *value)
{
    for (size_t i = 0; i < s->n_stages; i++)
        if (s->stages[i].axis == axis && !strcmp(s->stages[i].value, value)) return &s->stages[i];
    return NULL;
}

const char *qb_spec_param_value(const qb_spec *s, qb_axis axis, const char *value, const char *key)
{
    const qb_spec_stage *st = qb_spec_stage_params(s, axis, value);
    if (!st) return NULL;
    for (size_t i = 0; i < st->n; i++)
        if (!strcmp(st->params[i].key, key)) return st->params[i].value;
    return NULL;
}
