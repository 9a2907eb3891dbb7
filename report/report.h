/* `qblind report`: the tables of a results file (store/results.h), with
 * their uncertainty.
 *
 * Three tables, each grouped by the --by axes (a subset of dataset,
 * trigger, precision, mitigation, defense; default all five; seeds are the
 * replicates and never an axis; an axis left out is pooled, shown as "*"):
 *
 * 1. Detection: rows with a defense (defense != "none"), per group the
 *    share of `detected = yes` as k/n with a Wilson 95% interval. n counts
 *    only rows with status ok and detected yes/no; every other row of the
 *    group is counted in one of n_error (ok, detected error), n_na (ok,
 *    detected n/a: FP on clean models and where the backdoor is not
 *    active), n_invalid, n_failed, n_pending, and shown. Rows of the clean
 *    trigger measure false positives: their groups are kept apart
 *    (trigger "clean"; with trigger not in --by the other triggers pool as
 *    "backdoored") and the tables print each backdoored group's
 *    false-positive rate beside it (the clean group with the same other
 *    axes).
 * 2. CA and ASR (ca_mitig, asr_mitig: the deployed model's) per group with
 *    the defense axis always pooled: the unit is one deployed model (dataset,
 *    seed, trigger, precision, mitigation), counted once however many
 *    defenses ran on it. Units with an ok row, or else an invalid one,
 *    count: an invalid task is a real measurement whose ASR fell below the
 *    validity bar, and leaving it out would bias ASR upwards (n_invalid
 *    says how many are in). Units whose rows all failed or are pending are
 *    counted apart. NaN values (ASR of a clean model) are skipped. Mean,
 *    sample std and a percentile bootstrap 95% interval of the mean
 *    (QB_REPORT_BOOT_RESAMPLES resamples, seed qb_seed_derive(opt seed,
 *    "report-bootstrap/<group>/<metric>"), so a group's interval does not
 *    depend on the other groups).
 * 3. Paired comparisons of each precision with the reference precision
 *    (fp32 when present, else the first precision in the file) on the same
 *    units: detection pairs are rows equal in dataset, seed, trigger,
 *    mitigation and defense, both ok with detected yes/no: McNemar's exact
 *    test; CA and ASR pairs are deployed-model units equal in dataset,
 *    seed, trigger and mitigation, both with a value: paired t-test (other
 *    minus reference). Grouped like tables 1 and 2 minus the precision.
 *
 * Plus the status counts and every invalid, failed and pending row. */
#ifndef QB_REPORT_H
#define QB_REPORT_H

#include <stdint.h>
#include <stdio.h>

#include "core/error.h"
#include "report/stats.h"
#include "store/results.h"

typedef enum qb_report_axis {
    QB_AXIS_DATASET,
    QB_AXIS_TRIGGER,
    QB_AXIS_PRECISION,
    QB_AXIS_MITIGATION,
    QB_AXIS_DEFENSE,
    QB_AXIS_COUNT
} qb_report_axis;

#define QB_REPORT_BY_ALL ((1u << QB_AXIS_COUNT) - 1u)
/* The bootstrap's default base seed. */
#define QB_REPORT_BOOT_SEED 20240601u

typedef enum qb_report_format {
    QB_REPORT_TEXT,
    QB_REPORT_MARKDOWN,
    QB_REPORT_CSV
} qb_report_format;

typedef struct qb_report_options {
    unsigned by;            /* bit (1 << qb_report_axis) per grouping axis */
    uint64_t boot_seed;     /* QB_REPORT_BOOT_SEED */
    size_t boot_resamples;  /* QB_REPORT_BOOT_RESAMPLES */
} qb_report_options;

/* A group: one value per axis; "*" where the axis is pooled, "backdoored"
 * for the pooled non-clean triggers of the detection table. Strings point
 * into the rows given to qb_report_build or are static. */
typedef struct qb_report_key {
    const char *v[QB_AXIS_COUNT];
} qb_report_key;

typedef struct qb_report_detection {
    qb_report_key key;
    int clean;                     /* trigger "clean": a false-positive group */
    size_t k, n;                   /* yes, yes + no (ok rows) */
    double rate, lo, hi;           /* k/n and its Wilson interval; NaN if n = 0 */
    size_t n_error, n_na, n_invalid, n_failed, n_pending;
    size_t n_rows;                 /* every row of the group */
} qb_report_detection;

typedef struct qb_report_summary {
    size_t n;                      /* values (units with a non-NaN value) */
    double mean, std, lo, hi;      /* lo/hi: bootstrap interval of the mean */
} qb_report_summary;

typedef struct qb_report_perf {
    qb_report_key key;             /* defense always "*" */
    size_t n_units;                /* every deployed model of the group */
    size_t n_invalid;              /* units counted from an invalid row */
    size_t n_failed, n_pending;    /* units left out */
    qb_report_summary ca, asr;
} qb_report_perf;

typedef enum qb_report_pair_kind { QB_PAIR_DETECTION, QB_PAIR_CA, QB_PAIR_ASR } qb_report_pair_kind;

typedef struct qb_report_pair {
    qb_report_key key;             /* precision: the other precision */
    const char *ref;               /* the reference precision */
    qb_report_pair_kind kind;
    size_t n;                      /* pairs */
    /* detection: both yes a, ref only b, other only c, neither d */
    size_t a, b, c, d;
    double ref_rate, other_rate;   /* detection shares over the pairs */
    qb_paired_t t;                 /* CA/ASR: other - ref */
    double p;                      /* McNemar exact or paired t */
} qb_report_pair;

typedef struct qb_report {
    const qb_task_row *rows;       /* borrowed: must outlive the report */
    size_t n_rows;
    unsigned by;
    size_t status_counts[QB_STATUS_COUNT];
    size_t *problems;              /* row indices: invalid, failed, pending (file order) */
    size_t n_problems;
    qb_report_detection *det;      /* n_det */
    size_t n_det;
    qb_report_perf *perf;          /* n_perf */
    size_t n_perf;
    qb_report_pair *pairs;         /* n_pairs */
    size_t n_pairs;
    const char *ref_precision;     /* NULL when the file has no precision */
    /* per axis: its distinct values in file order */
    const char **values[QB_AXIS_COUNT];
    size_t n_values[QB_AXIS_COUNT];
    size_t boot_resamples;
} qb_report;

const char *qb_report_axis_name(qb_report_axis a);

/* "dataset,precision,defense" -> mask. "all" = every axis. -1 (naming
 * the word) on an unknown or repeated axis, "seed" or an empty list. */
int qb_report_parse_by(const char *s, unsigned *mask, qb_error *err);
/* "text", "markdown" (or "md"), "csv"; -1 otherwise. */
int qb_report_parse_format(const char *s, qb_report_format *fmt, qb_error *err);

void qb_report_options_default(qb_report_options *opt);

/* Compute every table of rows[0..n_rows) (as qb_results_read returns
 * them). The report borrows rows; free with qb_report_free. Returns 0
 * (no rows is a report too), -1 on bad options. */
int qb_report_build(const qb_task_row *rows, size_t n_rows, const qb_report_options *opt,
                    qb_report *out, qb_error *err);
void qb_report_free(qb_report *r);

/* Write the report to f. `title` (the file name) heads text/markdown.
 * CSV: one tidy table, header
 *   section,dataset,trigger,precision,mitigation,defense,reference,metric,
 *   estimate,ci_low,ci_high,std,k,n,p_value,method,task_id,seed,message
 * one row per group and metric (sections status, task, detection,
 * performance, paired); numbers with 17 significant digits (exact round
 * trip), empty where not applicable; RFC 4180 quoting. -1 on a write
 * error. */
int qb_report_write(const qb_report *r, qb_report_format fmt, const char *title, FILE *f,
                    qb_error *err);

/* The text report's sections (summary list, headings, paragraphs and
 * tables) as an HTML fragment, escaped, for the page of --html
 * (report/html.h). -1 on a write error. */
int qb_report_write_html_tables(const qb_report *r, FILE *f, qb_error *err);

#endif
