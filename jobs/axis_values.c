/* The axes' values, read from the stages' registries (jobs/axis_values.h). */
#include "jobs/axis_values.h"

#include <stdio.h>
#include <string.h>

#include "attacks/registry.h"
#include "core/dataset.h"
#include "defenses/defense.h"
#include "mitigations/mitigation.h"
#include "quant/precision.h"

/* ---- the registries ---------------------------------------------------------
 * Each enumerated axis reads its stage's registry; mitigation and defense
 * put their own `none` (nothing runs) first. */

int qb_axis_value_at(qb_axis axis, size_t i, qb_axis_value *out)
{
    memset(out, 0, sizeof *out);
    out->axis = axis;
    switch (axis) {
    case QB_AXIS_TRIGGER: {
        const qb_trigger_entry *e = qb_registry_at(qb_triggers, sizeof *qb_triggers, i);
        if (!e) return -1;
        *out = (qb_axis_value){axis, e->key.name, e->key.alias_of, NULL, e};
        return 0;
    }
    case QB_AXIS_MITIGATION:
    case QB_AXIS_DEFENSE:
        if (i == 0) {
            out->name = "none";
            return 0;
        }
        if (axis == QB_AXIS_MITIGATION) {
            const qb_mitigation_entry *e =
                qb_registry_at(qb_mitigations, sizeof *qb_mitigations, i - 1);
            if (!e) return -1;
            *out = (qb_axis_value){axis, e->key.name, e->key.alias_of, e->params, e};
        } else {
            const qb_defense_entry *e = qb_registry_at(qb_defenses, sizeof *qb_defenses, i - 1);
            if (!e) return -1;
            *out = (qb_axis_value){axis, e->key.name, e->key.alias_of, e->params, e};
        }
        return 0;
    default: return -1;
    }
}

static const char *const axis_names[QB_AXIS_COUNT] = {"dataset",   "seed",       "trigger",
                                                      "precision", "mitigation", "defense"};
static const char *const axis_defaults[QB_AXIS_COUNT] = {"fashion-mnist", "0",    "clean",
                                                         "fp32",          "none", "none"};

const char *qb_axis_name(qb_axis axis)
{
    return (unsigned)axis < QB_AXIS_COUNT ? axis_names[axis] : "?";
}

int qb_axis_from_name(const char *name, qb_axis *out)
{
    for (int a = 0; a < QB_AXIS_COUNT; a++)
        if (!strcmp(name, axis_names[a])) {
            *out = (qb_axis)a;
            return 0;
        }
    return -1;
}

const char *qb_axis_default(qb_axis axis)
{
    return (unsigned)axis < QB_AXIS_COUNT ? axis_defaults[axis] : NULL;
}

static int copy_out(const char *s, char *out, size_t n)
{
    if (strlen(s) >= n) return -1;
    memcpy(out, s, strlen(s) + 1);
    return 0;
}

/* Decimal digits only (no sign, no 0x, no exponent), value <= QB_SEED_MAX. */
static int canon_seed(const char *v, char *out, size_t n)
{
    if (!*v) return -1;
    uint64_t x = 0;
    for (const char *p = v; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        unsigned d = (unsigned)(*p - '0');
        if (x > ((uint64_t)QB_SEED_MAX - d) / 10) return -1;
        x = x * 10 + d;
    }
    char buf[24];
    snprintf(buf, sizeof buf, "%llu", (unsigned long long)x);
    return copy_out(buf, out, n);
}

/* One spelling per quantizer configuration (quant/precision.h). */
static int canon_precision(const char *v, char *out, size_t n)
{
    qb_precision p;
    if (qb_precision_parse(v, &p, NULL)) return -1;
    return qb_precision_canonical(&p, out, n);
}

int qb_axis_canonical(qb_axis axis, const char *value, char *out, size_t n)
{
    switch (axis) {
    case QB_AXIS_DATASET:
        for (int i = 0; qb_dataset_names[i]; i++)
            if (!strcmp(value, qb_dataset_names[i])) return copy_out(value, out, n);
        return -1;
    case QB_AXIS_SEED: return canon_seed(value, out, n);
    case QB_AXIS_PRECISION: return canon_precision(value, out, n);
    case QB_AXIS_TRIGGER:
    case QB_AXIS_MITIGATION:
    case QB_AXIS_DEFENSE: {
        qb_axis_value v;
        for (size_t i = 0; !qb_axis_value_at(axis, i, &v); i++)
            if (!strcmp(value, v.name)) return copy_out(v.alias_of ? v.alias_of : value, out, n);
        return -1;
    }
    case QB_AXIS_COUNT: break;
    }
    return -1;
}

const char *qb_axis_expected(qb_axis axis, char *buf, size_t n)
{
    if (n == 0) return buf;
    buf[0] = '\0';
    size_t len = 0;
#define APPEND(...)                                                      \
    do {                                                                 \
        if (len < n) {                                                   \
            int w_ = snprintf(buf + len, n - len, __VA_ARGS__);          \
            len += w_ > 0 ? (size_t)w_ : 0;                              \
        }                                                                \
    } while (0)
    switch (axis) {
    case QB_AXIS_DATASET:
        APPEND("expected one of: ");
        for (int i = 0; qb_dataset_names[i]; i++) APPEND("%s%s", i ? ", " : "", qb_dataset_names[i]);
        break;
    case QB_AXIS_SEED: APPEND("expected an integer in [0, %lld]", (long long)QB_SEED_MAX); break;
    case QB_AXIS_PRECISION:
        APPEND("expected one of: " QB_PRECISION_NAMED ", " QB_PRECISION_GENERAL);
        break;
    default: {
        APPEND("expected one of: ");
        qb_axis_value v;
        for (size_t i = 0; !qb_axis_value_at(axis, i, &v); i++) APPEND("%s%s", i ? ", " : "", v.name);
        break;
    }
    }
#undef APPEND
    return buf;
}

int qb_axis_lookup(qb_axis axis, const char *canonical, qb_axis_value *out)
{
    for (size_t i = 0; !qb_axis_value_at(axis, i, out); i++)
        if (!out->alias_of && !strcmp(canonical, out->name)) return 0;
    return -1;
}

int qb_axis_has_params(qb_axis axis)
{
    return axis == QB_AXIS_MITIGATION || axis == QB_AXIS_DEFENSE;
}

int qb_axis_value_accepts(const qb_axis_value *v, const char *key)
{
    return v && v->params && qb_param_find(v->params, key) != NULL;
}
