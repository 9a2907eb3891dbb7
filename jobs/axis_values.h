/* The allowed values of the six task axes, read from the registries of
 * the stages that implement them (nothing here lists values):
 *
 *   dataset     qb_dataset_names (core/dataset.h)
 *   seed        integers in [0, 2^63 - 1]
 *   trigger     qb_triggers (attacks/registry.h): clean, square, badnet
 *               (= square), checker, noise, blend, qa-pgd, qa-loss
 *   precision   whatever qb_precision_parse accepts, spelled by
 *               qb_precision_canonical (quant/precision.h: w8a8 -> int8,
 *               int8-away-pc -> int8-pc-away)
 *   mitigation  none, then qb_mitigations (mitigations/mitigation.h)
 *   defense     none, then qb_defenses (defenses/defense.h)
 *
 * `none` is the pipeline's own value of the mitigation and defense axes
 * (nothing runs). A stage adds a value with one line in its registry,
 * naming its parameter table (core/params.h: keys, ranges, defaults),
 * which the spec parser checks every `defenses:` / `mitigations:` block
 * against. The spec parser, its messages ("expected one of: ...") and the
 * expansion's resolved tables (jobs/spec.h) all read the registries. */
#ifndef QB_AXIS_VALUES_H
#define QB_AXIS_VALUES_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/params.h"

typedef enum qb_axis {
    QB_AXIS_DATASET = 0,
    QB_AXIS_SEED,
    QB_AXIS_TRIGGER,
    QB_AXIS_PRECISION,
    QB_AXIS_MITIGATION,
    QB_AXIS_DEFENSE,
    QB_AXIS_COUNT
} qb_axis;

/* Longest canonical axis value plus its NUL (precision names are the longest). */
#define QB_AXIS_VALUE_MAX 32
/* Seeds are in [0, QB_SEED_MAX]: they fit a signed 64-bit HDF5 column. */
#define QB_SEED_MAX INT64_MAX

/* One value of an enumerated axis (trigger, mitigation, defense), as its
 * stage's registry gives it. */
typedef struct qb_axis_value {
    qb_axis axis;
    const char *name;
    const char *alias_of;       /* NULL, or the canonical value this name spells */
    const qb_param_def *params; /* the parameters its block in `defenses:` /
                                   `mitigations:` accepts, with their ranges
                                   (core/params.h); NULL: any key, any value */
    const void *entry;          /* the registry entry that implements it: a
                                   qb_trigger_entry (attacks/registry.h),
                                   qb_mitigation_entry or qb_defense_entry;
                                   NULL for `none` */
} qb_axis_value;

/* "dataset", "seed", ... (the YAML keys). */
const char *qb_axis_name(qb_axis axis);
/* Axis for a YAML key; -1 if it names none. */
int qb_axis_from_name(const char *name, qb_axis *out);
/* The value an axis takes when a spec leaves it out. */
const char *qb_axis_default(qb_axis axis);

/* Canonical spelling of `value` on `axis` into out (size >= QB_AXIS_VALUE_MAX):
 * aliases resolved, precisions normalised, seeds as plain decimal. Returns
 * 0, or -1 when the axis does not accept the value (nothing is stored in
 * that case; qb_axis_expected says what would have been accepted). */
int qb_axis_canonical(qb_axis axis, const char *value, char *out, size_t n);

/* What the axis accepts, for messages, into buf: "expected one of: none"
 * or "expected an integer in [0, 9223372036854775807]". Returns buf. */
const char *qb_axis_expected(qb_axis axis, char *buf, size_t n);

/* The i-th value of an enumerated axis, in the order of "expected one of"
 * (none first, then the registry's order): 0, or -1 past the end and for
 * the dataset, seed and precision axes. */
int qb_axis_value_at(qb_axis axis, size_t i, qb_axis_value *out);
/* The value of a canonical name (not an alias) on an enumerated axis: 0,
 * or -1 if it has none. */
int qb_axis_lookup(qb_axis axis, const char *canonical, qb_axis_value *out);
/* 1 if the axis takes per-value parameter blocks (mitigation, defense). */
int qb_axis_has_params(qb_axis axis);
/* 1 if `key` is one of v->params. */
int qb_axis_value_accepts(const qb_axis_value *v, const char *key);

#endif
