/* The allowed values of the six task axes: the one registry.
 *
 *   dataset     the names of core/dataset.h (qb_dataset_names)
 *   seed        integers in [0, 2^63 - 1]
 *   trigger     clean, square, badnet (= square), checker, noise, blend,
 *               qa-pgd, qa-loss
 *   precision   whatever qb_precision_parse accepts (quant/precision.h),
 *               spelled canonically (w8a8 -> int8, int8-away-pc -> int8-pc-away)
 *   mitigation  none, finetune, requant-pc, requant-round, requant-bits,
 *               requant-noise, fineprune
 *   defense     none, nc, ac, ss, strip, fp, forensics
 *
 * Enumerated values (trigger, mitigation, defense) live in one table in
 * axis_values.c: a later stage adds its value there with one line, naming
 * its parameter table (core/params.h: keys, ranges, defaults), which
 * the spec parser checks every `defenses:` / `mitigations:` value against. The spec parser,
 * the error messages ("expected one of: ...") and the task identity all read
 * that table; nothing else lists axis values. */
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

/* One registered value of an enumerated axis. */
typedef struct qb_axis_value {
    qb_axis axis;
    const char *name;
    const char *alias_of;   /* NULL, or the canonical value this name spells */
    const qb_param_def *params; /* the parameters its block in `defenses:` /
                               `mitigations:` accepts, with their ranges
                               (core/params.h); NULL: any key, any value */
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

/* The registry entry of a canonical enumerated value, or NULL (dataset,
 * seed and precision values have no entry). */
const qb_axis_value *qb_axis_lookup(qb_axis axis, const char *canonical);
/* 1 if the axis takes per-value parameter blocks (mitigation, defense). */
int qb_axis_has_params(qb_axis axis);
/* 1 if `key` is one of entry->params. */
int qb_axis_value_accepts(const qb_axis_value *entry, const char *key);

/* The architecture `train.arch: auto` means for a dataset: lenet for the
 * 28x28 ones (fashion-mnist, mnist), cnn-small for the 32x32 ones
 * (cifar10, gtsrb, synthetic). NULL for a name without an entry. */
const char *qb_axis_default_arch(const char *dataset);

/* Registry access for tests and `--help`: the i-th entry, NULL past the end. */
const qb_axis_value *qb_axis_registry_entry(size_t i);

#endif
