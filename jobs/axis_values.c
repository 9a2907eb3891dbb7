#include "jobs/axis_values.h"

#include <stdio.h>
#include <string.h>

#include "core/dataset.h"
#include "defenses/defense.h"
#include "mitigations/mitigation.h"
#include "quant/precision.h"

/* ---- the registry ----------------------------------------------------------
 * One line per value of an enumerated axis. A stage that adds a mitigation
 * or a defense registers it here with its parameter table:
 * Order is the order of "expected one of: ..." in messages. Triggers must be
 * names qb_trigger_parse or qb_qa_mode_from_name know (tests/test_spec.c
 * builds a model job for each). */
static const qb_axis_value registry[] = {
    /* axis               name       alias_of  params */
    {QB_AXIS_TRIGGER, "clean", NULL, NULL},
    {QB_AXIS_TRIGGER, "square", NULL, NULL},
    {QB_AXIS_TRIGGER, "badnet", "square", NULL},
    {QB_AXIS_TRIGGER, "checker", NULL, NULL},
    {QB_AXIS_TRIGGER, "noise", NULL, NULL},
    {QB_AXIS_TRIGGER, "blend", NULL, NULL},
    {QB_AXIS_TRIGGER, "qa-pgd", NULL, NULL},
    {QB_AXIS_TRIGGER, "qa-loss", NULL, NULL},
    {QB_AXIS_MITIGATION, "none", NULL, NULL},
    {QB_AXIS_MITIGATION, "finetune", NULL, qb_finetune_params},
    {QB_AXIS_MITIGATION, "requant-pc", NULL, qb_no_params},
    {QB_AXIS_MITIGATION, "requant-round", NULL, qb_no_params},
    {QB_AXIS_MITIGATION, "requant-bits", NULL, qb_requant_bits_params},
    {QB_AXIS_MITIGATION, "requant-noise", NULL, qb_requant_noise_params},
    {QB_AXIS_MITIGATION, "fineprune", NULL, qb_fp_params},
    {QB_AXIS_DEFENSE, "none", NULL, NULL},
    {QB_AXIS_DEFENSE, "nc", NULL, qb_nc_params},
    {QB_AXIS_DEFENSE, "ac", NULL, qb_ac_params},
    {QB_AXIS_DEFENSE, "ss", NULL, qb_ss_params},
    {QB_AXIS_DEFENSE, "strip", NULL, qb_strip_params},
    {QB_AXIS_DEFENSE, "fp", NULL, qb_fp_params},
    {QB_AXIS_DEFENSE, "forensics", NULL, qb_forensics_params},
};
#define N_REGISTRY (sizeof registry / sizeof registry[0])

/* `train.arch: auto` by dataset name (the image shape is known only after
 * loading; the name decides it beforehand, so the task identity can name
 * the real architecture). Every qb_dataset_names entry needs a line. */
static const struct {
    const char *dataset, *arch;
} default_arch[] = {
    {"fashion-mnist", "lenet"}, {"mnist", "lenet"},   {"cifar10", "cnn-small"},
    {"gtsrb", "cnn-small"},     {"synthetic", "cnn-small"},
};

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

const qb_axis_value *qb_axis_registry_entry(size_t i)
{
    return i < N_REGISTRY ? &registry[i] : NULL;
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

/* One spelling per quantizer configuration, so that w8a8 and int8 (the same
 * precision) are one task, and suffix order does not matter. */
static int canon_precision(const char *v, char *out, size_t n)
{
    qb_precision p;
    if (qb_precision_parse(v, &p, NULL)) return -1;
    char buf[QB_AXIS_VALUE_MAX];
    if (p.w_bits == 32)
        snprintf(buf, sizeof buf, "fp32");
    else if (p.linear_only)
        snprintf(buf, sizeof buf, "int8-linear");
    else if (p.w_bits == 8 && p.a_bits == 8)
        snprintf(buf, sizeof buf, "int8");
    else if (p.w_bits == 4 && p.a_bits == 32)
        snprintf(buf, sizeof buf, "int4");
    else
        snprintf(buf, sizeof buf, "w%da%d", p.w_bits, p.a_bits);
    if (p.gran == QB_GRAN_CHANNEL) strncat(buf, "-pc", sizeof buf - strlen(buf) - 1);
    if (p.round == QB_ROUND_HALF_AWAY) strncat(buf, "-away", sizeof buf - strlen(buf) - 1);
    return copy_out(buf, out, n);
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
    case QB_AXIS_DEFENSE:
        for (size_t i = 0; i < N_REGISTRY; i++)
            if (registry[i].axis == axis && !strcmp(value, registry[i].name))
                return copy_out(registry[i].alias_of ? registry[i].alias_of : value, out, n);
        return -1;
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
        APPEND("expected one of: fp32, int8, int8-linear, int4, wNaM (N in 2..8, M in 2..8 or "
               "32), optionally with -pc and/or -away");
        break;
    default: {
        APPEND("expected one of: ");
        int k = 0;
        for (size_t i = 0; i < N_REGISTRY; i++)
            if (registry[i].axis == axis) APPEND("%s%s", k++ ? ", " : "", registry[i].name);
        break;
    }
    }
#undef APPEND
    return buf;
}

const qb_axis_value *qb_axis_lookup(qb_axis axis, const char *canonical)
{
    for (size_t i = 0; i < N_REGISTRY; i++)
        if (registry[i].axis == axis && !registry[i].alias_of &&
            !strcmp(canonical, registry[i].name))
            return &registry[i];
    return NULL;
}

int qb_axis_has_params(qb_axis axis)
{
    return axis == QB_AXIS_MITIGATION || axis == QB_AXIS_DEFENSE;
}

int qb_axis_value_accepts(const qb_axis_value *entry, const char *key)
{
    return entry && entry->params && qb_param_find(entry->params, key) != NULL;
}

const char *qb_axis_default_arch(const char *dataset)
{
    for (size_t i = 0; i < sizeof default_arch / sizeof default_arch[0]; i++)
        if (!strcmp(dataset, default_arch[i].dataset)) return default_arch[i].arch;
    return NULL;
}
