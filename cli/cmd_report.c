/* qblind report: the tables of a results file (report/report.h). */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/file.h"
#include "report/report.h"
#include "report/html.h"
#include "report/svg.h"
#include "store/results.h"
#include "store/results_probe.h"
#include "cli/cli.h"

static const char report_usage[] =
    "usage: qblind report RESULTS.h5 [--by AXES] [--format text|markdown|csv] [-o FILE]\n"
    "                            [--plots DIR] [--html FILE]\n"
    "Tables of a results file, with 95% intervals:\n"
    "  detection rate (k/n, Wilson) per group, with the false-positive rate on clean\n"
    "  models beside it; rows with detected error or n/a, invalid, failed and pending\n"
    "  rows are counted apart, never in n;\n"
    "  CA and ASR of the deployed model: mean ± std over seeds and a percentile\n"
    "  bootstrap interval of the mean (seeded: the same file gives the same numbers);\n"
    "  paired comparisons of every precision with fp32 (or the file's first\n"
    "  precision) on the same seeds: McNemar's exact test for detection, the paired\n"
    "  t-test for CA and ASR;\n"
    "  every invalid and failed task with its message.\n"
    "  --by AXES        grouping axes, comma-separated, from dataset, trigger, precision,\n"
    "                   mitigation, defense (default: all); the others are pooled\n"
    "  --format F       text (default), markdown, or csv (one tidy table: one row per\n"
    "                   group and metric, for pandas/R)\n"
    "  -o, --output F   write to F instead of standard output\n"
    "  --plots DIR      also write the figures as SVG into DIR (created if missing):\n"
    "                   detection_heatmap.svg (detection rate and clean-model FPR per\n"
    "                   defense x precision), bitwidth.svg (CA and ASR versus bit width,\n"
    "                   one line per trigger), mitigation.svg (ASR per mitigation and\n"
    "                   trigger; only with several mitigations)\n"
    "  --html FILE      also write one self-contained HTML page: the tables, the figures\n"
    "                   inline, the spec and the provenance of the results file\n"
    "  --resamples N    bootstrap resamples [10000]\n"
    "  --seed S         bootstrap seed [20240601]\n"
    "  -h, --help\n"
    "Exit status: 0 written, 1 error, 2 usage.\n";

/* --html: the page, with the file's root attributes (spec, provenance),
 * written through a temporary file. */
static int report_html(const qb_report *rep, const char *path, const char *html_path,
                       qb_error *err)
{
    qb_kv *attrs = NULL;
    size_t n_attrs = 0;
    if (qb_results_read_attrs(path, &attrs, &n_attrs, err)) return -1;
    qb_file_out out;
    int rc = qb_file_out_open(&out, html_path, err);
    if (rc == 0) {
        rc = qb_report_write_html(rep, path, attrs, n_attrs, out.f, err);
        if (rc == 0)
            rc = qb_file_out_commit(&out, err);
        else
            qb_file_out_abort(&out);
    }
    qb_results_attrs_free(attrs, n_attrs);
    return rc;
}

/* The tables to -o FILE (through a temporary file) or standard output. */
static int report_tables(const qb_report *rep, qb_report_format fmt, const char *path,
                         const char *out_path, qb_error *err)
{
    if (!out_path) return qb_report_write(rep, fmt, path, stdout, err);
    qb_file_out out;
    if (qb_file_out_open(&out, out_path, err)) return -1;
    if (qb_report_write(rep, fmt, path, out.f, err)) {
        qb_file_out_abort(&out);
        return -1;
    }
    return qb_file_out_commit(&out, err);
}

/* Leave damaged rows (store/results.h qb_task_row_validate) out of the
 * report, each named on stderr: their bytes are not a measurement. rows
 * are in file order, as qb_results_list_damaged numbers them. */
static int drop_damaged(const char *path, qb_task_row *rows, size_t *n_rows, qb_error *err)
{
    qb_results_damage *bad = NULL;
    size_t n_bad = 0, kept = 0, b = 0;
    if (qb_results_list_damaged(path, &bad, &n_bad, err)) return -1;
    for (size_t i = 0; i < *n_rows; i++) {
        if (b < n_bad && bad[b].row == i) {
            fprintf(stderr, "qblind: warning: results file %s: row %zu (task %016llx) is "
                    "damaged (%s): left out of the report; a resume reruns its task\n", path, i,
                    (unsigned long long)bad[b].task_id, bad[b].why);
            b++;
            continue;
        }
        rows[kept++] = rows[i];
    }
    *n_rows = kept;
    free(bad);
    return 0;
}

int qb_cmd_report(int argc, char **argv)
{
    enum { OPT_BY = 256, OPT_FORMAT, OPT_RESAMPLES, OPT_SEED, OPT_PLOTS, OPT_HTML };
    static const struct option opts[] = {{"by", required_argument, NULL, OPT_BY},
                                         {"format", required_argument, NULL, OPT_FORMAT},
                                         {"output", required_argument, NULL, 'o'},
                                         {"resamples", required_argument, NULL, OPT_RESAMPLES},
                                         {"seed", required_argument, NULL, OPT_SEED},
                                         {"plots", required_argument, NULL, OPT_PLOTS},
                                         {"html", required_argument, NULL, OPT_HTML},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    qb_report_options opt;
    qb_report_options_default(&opt);
    qb_report_format fmt = QB_REPORT_TEXT;
    const char *out_path = NULL, *plots_dir = NULL, *html_path = NULL;
    qb_error err;
    int c, usage_rc = -1;
    optind = 1;
    opterr = 0;
    while (usage_rc < 0 && (c = getopt_long(argc, argv, ":o:h", opts, NULL)) != -1) {
        int rc = 0, n = 0;
        switch (c) {
        case OPT_BY: rc = qb_report_parse_by(optarg, &opt.by, &err); break;
        case OPT_FORMAT: rc = qb_report_parse_format(optarg, &fmt, &err); break;
        case 'o': out_path = optarg; break;
        case OPT_PLOTS: plots_dir = optarg; break;
        case OPT_HTML: html_path = optarg; break;
        case OPT_RESAMPLES:
            rc = qb_cli_int("--resamples", optarg, 1, 10000000, &n, &err);
            opt.boot_resamples = (size_t)n;
            break;
        case OPT_SEED: rc = qb_cli_u64("--seed", optarg, &opt.boot_seed, &err); break;
        case 'h': usage_rc = 0; break;
        default: qb_cli_option_error(c, argv, &err); return qb_cli_usage_error("report", &err);
        }
        if (rc) {
            qb_error_print(&err);
            return 2;
        }
    }
    if (usage_rc < 0 && argc - optind != 1) {
        if (argc - optind == 0)
            QB_FAIL(&err, "no results file given (see --help)");
        else
            QB_FAIL(&err, "unexpected argument \"%s\" after %s (see --help)", argv[optind + 1],
                    argv[optind]);
        return qb_cli_usage_error("report", &err);
    }
    if (usage_rc >= 0) {
        fputs(report_usage, usage_rc ? stderr : stdout);
        return usage_rc;
    }
    const char *path = argv[optind];
    /* No output may be the results file itself (checked before any work). */
    if ((out_path && qb_file_check_not_input(out_path, &path, 1, &err)) ||
        (html_path && qb_file_check_not_input(html_path, &path, 1, &err))) {
        qb_error_print(&err);
        return 1;
    }
    qb_task_row *rows = NULL;
    size_t n_rows = 0;
    /* read first in a separate process: libhdf5 may crash on a damaged file */
    unsigned parts = QB_RESULTS_PROBE_ROWS | (html_path ? QB_RESULTS_PROBE_ATTRS : 0);
    if (qb_results_probe(path, parts, &err) || qb_results_read(path, &rows, &n_rows, NULL, &err)) {
        qb_error_print(&err);
        return 1;
    }
    if (drop_damaged(path, rows, &n_rows, &err)) {
        qb_error_print(&err);
        free(rows);
        return 1;
    }
    qb_report rep;
    if (qb_report_build(rows, n_rows, &opt, &rep, &err)) {
        qb_error_print(&err);
        free(rows);
        return 1;
    }
    int rc = report_tables(&rep, fmt, path, out_path, &err);
    if (!rc && plots_dir && qb_report_write_plots(&rep, plots_dir, path, &err) < 0) rc = -1;
    if (!rc && html_path) rc = report_html(&rep, path, html_path, &err);
    if (rc) qb_error_print(&err);
    qb_report_free(&rep);
    free(rows);
    return rc ? 1 : 0;
}
