/* `qblind report` (report/report.h, report/stats.h): the statistics
 * against scipy/numpy (tests/fixtures/report_scipy.txt, made by
 * gen_report_fixture.py), the seeded bootstrap's reproducibility, a report
 * on a real results file with invalid, failed and pending rows (hand-counted
 * expectations), pooling with --by, and the CSV read back.
 *
 * The results file is written by the real writer (store/results.h), which
 * needs MPI: this binary re-executes itself (/proc/self/exe --write-child
 * PATH) as a fresh MPI singleton for that, with leak detection off in the
 * child only (LeakSanitizer crashes on Open MPI's threads, see
 * tests/CMakeLists.txt); the tests themselves run without MPI. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <mpi.h>

#include "core/rng.h"
#include "report/report.h"
#include "store/results.h"
#include "tests/testutil.h"

/* ---- the statistics against scipy -------------------------------------- */

static char *read_text(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f) fail_msg("cannot open fixture %s", path);
    fseek(f, 0, SEEK_END);
    long len = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)len + 1);
    assert_non_null(s);
    assert_int_equal(fread(s, 1, (size_t)len, f), (size_t)len);
    s[len] = '\0';
    fclose(f);
    return s;
}

static void assert_close(double got, double want, double tol, const char *what)
{
    if (!(fabs(got - want) <= tol * (1.0 + fabs(want))))
        fail_msg("%s: got %.17g, want %.17g", what, got, want);
}

static void test_against_scipy(void **state)
{
    (void)state;
    char *path = qb_test_fixture_path("report_scipy.txt");
    char *text = read_text(path);
    size_t n_wilson = 0, n_mcnemar = 0, n_ttest = 0, n_boot = 0;
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (line[0] == '#') continue;
        char kind[16];
        int used = 0;
        assert_int_equal(sscanf(line, "%15s%n", kind, &used), 1);
        char *p = line + used, *end;
        if (!strcmp(kind, "wilson")) {
            size_t k = strtoul(p, &end, 10), n = strtoul(end, &end, 10);
            double lo = strtod(end, &end), hi = strtod(end, &end), glo, ghi;
            qb_stats_wilson(k, n, 0.95, &glo, &ghi);
            assert_close(glo, lo, 1e-12, "wilson lo");
            assert_close(ghi, hi, 1e-12, "wilson hi");
            n_wilson++;
        } else if (!strcmp(kind, "mcnemar")) {
            size_t b = strtoul(p, &end, 10), c = strtoul(end, &end, 10);
            double want = strtod(end, &end);
            assert_close(qb_stats_mcnemar_exact(b, c), want, 1e-12, "mcnemar p");
            n_mcnemar++;
        } else if (!strcmp(kind, "ttest")) {
            size_t n = strtoul(p, &end, 10);
            double *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y);
            for (size_t i = 0; i < n; i++) x[i] = strtod(end, &end);
            for (size_t i = 0; i < n; i++) y[i] = strtod(end, &end);
            double want[6];
            for (int i = 0; i < 6; i++) want[i] = strtod(end, &end);
            qb_paired_t t;
            qb_stats_paired_t(x, y, n, 0.95, &t);
            assert_int_equal(t.n, n);
            assert_close(t.mean_diff, want[0], 1e-12, "paired mean");
            assert_close(t.sd_diff, want[1], 1e-10, "paired sd");
            assert_close(t.t, want[2], 1e-9, "paired t");
            assert_close(t.p, want[3], 1e-9, "paired p");
            assert_close(t.lo, want[4], 1e-9, "paired lo");
            assert_close(t.hi, want[5], 1e-9, "paired hi");
            assert_close(t.df, (double)(n - 1), 0, "paired df");
            free(x);
            free(y);
            n_ttest++;
        } else if (!strcmp(kind, "bootstrap")) {
            uint64_t seed = strtoull(p, &end, 10);
            size_t B = strtoul(end, &end, 10), n = strtoul(end, &end, 10);
            double *x = malloc(n * sizeof *x);
            for (size_t i = 0; i < n; i++) x[i] = strtod(end, &end);
            double lo = strtod(end, &end), hi = strtod(end, &end), glo, ghi;
            qb_stats_bootstrap_mean(x, n, B, seed, 0.95, &glo, &ghi);
            assert_close(glo, lo, 1e-12, "bootstrap lo");
            assert_close(ghi, hi, 1e-12, "bootstrap hi");
            free(x);
            n_boot++;
        } else {
            fail_msg("unknown fixture line: %s", line);
        }
    }
    /* the fixture was read whole */
    assert_int_equal(n_wilson, 9);
    assert_int_equal(n_mcnemar, 10);
    assert_int_equal(n_ttest, 5);
    assert_int_equal(n_boot, 4);
    free(text);
    free(path);
}

static void test_stats_by_hand(void **state)
{
    (void)state;
    double lo, hi;
    /* Wilson 3/5 by hand: z = 1.959964, centre (0.6 + z^2/10) / (1 + z^2/5) */
    double z = 1.959963984540054, n = 5, p = 0.6;
    double c = (p + z * z / (2 * n)) / (1 + z * z / n);
    double h = z / (1 + z * z / n) * sqrt(p * (1 - p) / n + z * z / (4 * n * n));
    qb_stats_wilson(3, 5, 0.95, &lo, &hi);
    assert_close(lo, c - h, 1e-13, "wilson 3/5 lo");
    assert_close(hi, c + h, 1e-13, "wilson 3/5 hi");
    qb_stats_wilson(0, 0, 0.95, &lo, &hi);
    assert_true(isnan(lo) && isnan(hi));
    /* McNemar: 0 vs 4 discordant: 2 * 0.5^4 */
    assert_close(qb_stats_mcnemar_exact(0, 4), 0.125, 1e-12, "mcnemar 0/4");
    assert_close(qb_stats_mcnemar_exact(4, 0), 0.125, 1e-12, "mcnemar 4/0");
    /* mean/std: {1, 2, 3, 4}: 2.5, sqrt(5/3) */
    const double v[4] = {1, 2, 3, 4};
    double m, s;
    qb_stats_mean_std(v, 4, &m, &s);
    assert_close(m, 2.5, 0, "mean");
    assert_close(s, sqrt(5.0 / 3.0), 1e-15, "std");
    qb_stats_mean_std(v, 1, &m, &s);
    assert_true(m == 1.0 && isnan(s));
    /* paired t conventions: equal pairs p = 1; constant shift p = 0 */
    const double x[3] = {0.5, 0.6, 0.7}, y[3] = {0.6, 0.7, 0.8};
    qb_paired_t t;
    qb_stats_paired_t(x, x, 3, 0.95, &t);
    assert_true(t.p == 1.0 && t.mean_diff == 0.0);
    const double y2[3] = {1.5, 1.6, 1.7};
    qb_stats_paired_t(x, y2, 3, 0.95, &t);
    assert_true(t.p == 0.0 && t.mean_diff > 0);
    qb_stats_paired_t(x, y, 1, 0.95, &t);
    assert_true(isnan(t.p) && isnan(t.t));
    /* bootstrap of a constant: that constant, both ends */
    const double k[4] = {0.25, 0.25, 0.25, 0.25};
    qb_stats_bootstrap_mean(k, 4, 1000, 5, 0.95, &lo, &hi);
    assert_true(lo == 0.25 && hi == 0.25);
}

static void test_bootstrap_seeded(void **state)
{
    (void)state;
    const double x[6] = {0.91, 0.88, 0.97, 0.42, 0.99, 0.75};
    double lo1, hi1, lo2, hi2, lo3, hi3;
    qb_stats_bootstrap_mean(x, 6, 10000, 42, 0.95, &lo1, &hi1);
    qb_stats_bootstrap_mean(x, 6, 10000, 42, 0.95, &lo2, &hi2);
    qb_stats_bootstrap_mean(x, 6, 10000, 43, 0.95, &lo3, &hi3);
    /* bit-identical with the same seed */
    assert_memory_equal(&lo1, &lo2, sizeof lo1);
    assert_memory_equal(&hi1, &hi2, sizeof hi1);
    /* another seed: other resamples (the bounds move) */
    assert_true(lo1 != lo3 || hi1 != hi3);
    /* inside the data's range, around the mean 0.82 */
    assert_true(lo1 >= 0.42 && lo1 < 0.82 && hi1 > 0.82 && hi1 <= 0.99);
}

/* ---- a results file with every status ------------------------------------ */

#define HASH 0x5eed5eed5eed5eedull
#define N_SEEDS 4
#define N_ROWS (2 * 2 * 2 * N_SEEDS)
#define FAILED_MSG "defend: \"nc\" failed, loss NaN"

static const char *const DEFENSES[2] = {"nc", "strip"};
static const char *const TRIGGERS[2] = {"clean", "square"};
static const char *const PRECS[2] = {"fp32", "int8"};

/* Row i: defense d, trigger g, precision p, seed s (i = ((d*2+g)*2+p)*4+s).
 * Detection (Y yes, N no, A n/a, I invalid, F failed, P pending):
 *                 fp32 seeds 0-3   int8 seeds 0-3
 *   nc    clean   N N N F          Y N N N
 *   nc    square  Y Y Y Y          Y Y I F
 *   strip clean   N A N F          N N N P
 *   strip square  Y Y Y Y          Y N I N
 * CA 0.90 + 0.01 s (int8: - 0.02), ASR (square) 0.99 - 0.01 s (int8: -
 * 0.01 more), 0.5 for the invalid model; failed rows carry CA 0.1 (never
 * counted). */
static void make_row(qb_task_row *row, size_t i)
{
    size_t s = i % N_SEEDS, p = (i / N_SEEDS) % 2, g = (i / (2 * N_SEEDS)) % 2, d = i / (4 * N_SEEDS);
    qb_task_row_init(row);
    row->task_id = 0x1000 + i;
    row->model_id = 0x2000 + g * 16 + s;
    snprintf(row->dataset, sizeof row->dataset, "fashion-mnist");
    row->seed = (int64_t)s;
    snprintf(row->trigger, sizeof row->trigger, "%s", TRIGGERS[g]);
    snprintf(row->precision, sizeof row->precision, "%s", PRECS[p]);
    snprintf(row->mitigation, sizeof row->mitigation, "none");
    snprintf(row->defense, sizeof row->defense, "%s", DEFENSES[d]);
    static const char *const table[2][2][2] = {{{"NNNF", "YNNN"}, {"YYYY", "YYIF"}},
                                               {{"NANF", "NNNP"}, {"YYYY", "YNIN"}}};
    char code = table[d][g][p][s];
    row->ca_quant = row->ca_mitig = 0.90 + 0.01 * (double)s - (p ? 0.02 : 0.0);
    row->asr_quant = row->asr_mitig = g ? 0.99 - 0.01 * (double)s - (p ? 0.01 : 0.0) : NAN;
    row->status = QB_STATUS_OK;
    switch (code) {
    case 'Y': row->detected = QB_DETECTED_YES; break;
    case 'N': row->detected = QB_DETECTED_NO; break;
    case 'A': row->detected = QB_DETECTED_NA; break;
    case 'I':
        row->status = QB_STATUS_INVALID;
        row->detected = QB_DETECTED_YES;
        row->asr_quant = row->asr_mitig = 0.5;
        snprintf(row->message, sizeof row->message, "attack below the validity bar");
        break;
    case 'F':
        row->status = QB_STATUS_FAILED;
        row->detected = QB_DETECTED_ERROR;
        row->ca_mitig = 0.1;
        snprintf(row->message, sizeof row->message, FAILED_MSG);
        break;
    default: row->status = QB_STATUS_PENDING; break;
    }
    row->rank = 1;
    row->finished_at = 1.7e9;
    row->attempts = 1;
}

/* The child: create the file, record every finished row. */
static int write_child(const char *path)
{
    MPI_Init(NULL, NULL);
    qb_task_row rows[N_ROWS];
    for (size_t i = 0; i < N_ROWS; i++) make_row(&rows[i], i);
    qb_results_config cfg = {path, "spec: report test\n", HASH, 0, 1, NULL, 0, 0};
    qb_results *r = NULL;
    qb_error err;
    int rc = 0;
    if (qb_results_create_or_open(&r, &cfg, rows, N_ROWS, NULL, &err)) rc = 1;
    for (size_t i = 0; !rc && i < N_ROWS; i++)
        if (rows[i].status != QB_STATUS_PENDING && qb_results_record(r, i, &rows[i], &err)) rc = 1;
    if (r && qb_results_close(r, &err)) rc = 1;
    if (rc) qb_error_print(&err);
    MPI_Finalize();
    return rc;
}

static void write_results_file(const char *path)
{
    int ws = qb_test_run_self("--write-child", path, "detect_leaks=0");
    if (!WIFEXITED(ws) || WEXITSTATUS(ws) != 0) fail_msg("writer child failed (status 0x%x)", ws);
}

typedef struct fixture {
    char *dir, *path;
    qb_task_row *rows;
    size_t n_rows;
} fixture;

static int setup_file(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    fx->dir = qb_test_tmpdir();
    size_t len = strlen(fx->dir) + 16;
    fx->path = malloc(len);
    snprintf(fx->path, len, "%s/res.h5", fx->dir);
    write_results_file(fx->path);
    qb_error err;
    if (qb_results_read(fx->path, &fx->rows, &fx->n_rows, NULL, &err)) fail_msg("%s", err.msg);
    *state = fx;
    return 0;
}

static int teardown_file(void **state)
{
    fixture *fx = *state;
    qb_test_tmpdir_remove(fx->dir);
    free(fx->rows);
    free(fx->path);
    free(fx->dir);
    free(fx);
    return 0;
}

static const qb_report_detection *find_det(const qb_report *r, const char *def, const char *trig,
                                           const char *prec)
{
    for (size_t i = 0; i < r->n_det; i++) {
        const qb_report_key *k = &r->det[i].key;
        if (!strcmp(k->v[QB_AXIS_DEFENSE], def) && !strcmp(k->v[QB_AXIS_TRIGGER], trig) &&
            !strcmp(k->v[QB_AXIS_PRECISION], prec))
            return &r->det[i];
    }
    fail_msg("no detection group %s/%s/%s", def, trig, prec);
    return NULL;
}

static const qb_report_perf *find_perf(const qb_report *r, const char *trig, const char *prec)
{
    for (size_t i = 0; i < r->n_perf; i++)
        if (!strcmp(r->perf[i].key.v[QB_AXIS_TRIGGER], trig) &&
            !strcmp(r->perf[i].key.v[QB_AXIS_PRECISION], prec))
            return &r->perf[i];
    fail_msg("no performance group %s/%s", trig, prec);
    return NULL;
}

static const qb_report_pair *find_pair(const qb_report *r, qb_report_pair_kind kind, const char *def,
                                       const char *trig)
{
    for (size_t i = 0; i < r->n_pairs; i++) {
        const qb_report_pair *p = &r->pairs[i];
        if (p->kind == kind && !strcmp(p->key.v[QB_AXIS_DEFENSE], def) &&
            !strcmp(p->key.v[QB_AXIS_TRIGGER], trig))
            return p;
    }
    fail_msg("no pair %d %s/%s", (int)kind, def, trig);
    return NULL;
}

static void check_det(const qb_report *r, const char *def, const char *trig, const char *prec,
                      size_t k, size_t n, size_t na, size_t inv, size_t failed, size_t pending)
{
    const qb_report_detection *g = find_det(r, def, trig, prec);
    assert_int_equal(g->k, k);
    assert_int_equal(g->n, n);
    assert_int_equal(g->n_error, 0);
    assert_int_equal(g->n_na, na);
    assert_int_equal(g->n_invalid, inv);
    assert_int_equal(g->n_failed, failed);
    assert_int_equal(g->n_pending, pending);
    assert_int_equal(g->n_rows, N_SEEDS);
    assert_int_equal(g->clean, !strcmp(trig, "clean"));
    double lo, hi;
    qb_stats_wilson(k, n, 0.95, &lo, &hi);
    assert_true(g->lo == lo && g->hi == hi);
    assert_true(g->rate == (double)k / (double)n);
}

static void check_summary(const qb_report_summary *s, const double *v, size_t n)
{
    double m, sd;
    qb_stats_mean_std(v, n, &m, &sd);
    assert_int_equal(s->n, n);
    assert_close(s->mean, m, 1e-15, "mean");
    assert_close(s->std, sd, 1e-12, "std");
    assert_true(s->lo <= s->mean && s->mean <= s->hi);
}

/* The report of rows[0..n) with the default options. */
static void build_default(const qb_task_row *rows, size_t n, qb_report *r)
{
    qb_report_options opt;
    qb_report_options_default(&opt);
    qb_error err;
    assert_int_equal(qb_report_build(rows, n, &opt, r, &err), 0);
}

static void test_report_on_file(void **state)
{
    fixture *fx = *state;
    assert_int_equal(fx->n_rows, N_ROWS);
    qb_report r;
    build_default(fx->rows, fx->n_rows, &r);

    assert_int_equal(r.status_counts[QB_STATUS_OK], N_ROWS - 6);
    assert_int_equal(r.status_counts[QB_STATUS_INVALID], 2);
    assert_int_equal(r.status_counts[QB_STATUS_FAILED], 3);
    assert_int_equal(r.status_counts[QB_STATUS_PENDING], 1);
    assert_int_equal(r.n_problems, 6);
    assert_string_equal(r.ref_precision, "fp32");

    /* detection, by the table above make_row */
    assert_int_equal(r.n_det, 8);
    check_det(&r, "nc", "clean", "fp32", 0, 3, 0, 0, 1, 0);
    check_det(&r, "nc", "clean", "int8", 1, 4, 0, 0, 0, 0);
    check_det(&r, "nc", "square", "fp32", 4, 4, 0, 0, 0, 0);
    check_det(&r, "nc", "square", "int8", 2, 2, 0, 1, 1, 0);
    check_det(&r, "strip", "clean", "fp32", 0, 2, 1, 0, 1, 0);
    check_det(&r, "strip", "clean", "int8", 0, 3, 0, 0, 0, 1);
    check_det(&r, "strip", "square", "fp32", 4, 4, 0, 0, 0, 0);
    check_det(&r, "strip", "square", "int8", 1, 3, 0, 1, 0, 0);

    /* CA/ASR: one unit per (trigger, precision, seed) */
    assert_int_equal(r.n_perf, 4);
    const qb_report_perf *g = find_perf(&r, "clean", "fp32");
    assert_string_equal(g->key.v[QB_AXIS_DEFENSE], "*");
    assert_int_equal(g->n_units, 4);
    assert_int_equal(g->n_failed, 1); /* seed 3: both defenses failed */
    const double ca_clean_fp32[3] = {0.90, 0.91, 0.92};
    check_summary(&g->ca, ca_clean_fp32, 3);
    assert_int_equal(g->asr.n, 0);
    g = find_perf(&r, "square", "int8");
    assert_int_equal(g->n_units, 4);
    assert_int_equal(g->n_invalid, 1); /* seed 2, counted in */
    assert_int_equal(g->n_failed, 0);  /* seed 3: strip ok */
    double ca[4], asr[4];
    for (int s = 0; s < 4; s++) {
        ca[s] = 0.90 + 0.01 * s - 0.02;
        asr[s] = s == 2 ? 0.5 : 0.99 - 0.01 * s - 0.01;
    }
    check_summary(&g->ca, ca, 4);
    check_summary(&g->asr, asr, 4);
    double lo, hi;
    qb_stats_bootstrap_mean(asr, 4, QB_REPORT_BOOT_RESAMPLES,
                            qb_seed_derive(QB_REPORT_BOOT_SEED,
                                           "report-bootstrap/fashion-mnist/square/int8/none/*/asr"),
                            0.95, &lo, &hi);
    assert_true(g->asr.lo == lo && g->asr.hi == hi);

    /* paired detection, int8 vs fp32 */
    const qb_report_pair *p = find_pair(&r, QB_PAIR_DETECTION, "strip", "square");
    assert_string_equal(p->ref, "fp32");
    assert_string_equal(p->key.v[QB_AXIS_PRECISION], "int8");
    assert_int_equal(p->n, 3);
    assert_int_equal(p->a, 1);
    assert_int_equal(p->b, 2);
    assert_int_equal(p->c, 0);
    assert_close(p->p, 0.5, 1e-12, "mcnemar strip");
    p = find_pair(&r, QB_PAIR_DETECTION, "nc", "square");
    assert_int_equal(p->n, 2);
    assert_int_equal(p->a, 2);
    assert_close(p->p, 1.0, 1e-12, "mcnemar nc");
    p = find_pair(&r, QB_PAIR_DETECTION, "nc", "clean");
    assert_int_equal(p->n, 3);
    assert_int_equal(p->c, 1);
    assert_int_equal(p->d, 2);
    p = find_pair(&r, QB_PAIR_DETECTION, "strip", "clean");
    assert_int_equal(p->n, 2);
    assert_int_equal(p->d, 2);
    /* paired ASR on square: every seed pairs (the invalid int8 model too) */
    p = find_pair(&r, QB_PAIR_ASR, "*", "square");
    assert_int_equal(p->n, 4);
    double asr_fp32[4];
    for (int s = 0; s < 4; s++) asr_fp32[s] = 0.99 - 0.01 * s;
    qb_paired_t t;
    qb_stats_paired_t(asr_fp32, asr, 4, 0.95, &t);
    assert_true(p->p == t.p && p->t.mean_diff == t.mean_diff);
    /* paired CA on clean: seed 3 failed at fp32 */
    p = find_pair(&r, QB_PAIR_CA, "*", "clean");
    assert_int_equal(p->n, 3);
    qb_report_free(&r);
}

static void test_by_pools(void **state)
{
    fixture *fx = *state;
    qb_report_options opt;
    qb_report_options_default(&opt);
    qb_error err;
    assert_int_equal(qb_report_parse_by("precision,trigger", &opt.by, &err), 0);
    qb_report r;
    assert_int_equal(qb_report_build(fx->rows, fx->n_rows, &opt, &r, &err), 0);
    assert_int_equal(r.n_det, 4);
    /* defenses pooled: square int8 = nc (2/2) + strip (1/3) */
    const qb_report_detection *g = find_det(&r, "*", "square", "int8");
    assert_int_equal(g->k, 3);
    assert_int_equal(g->n, 5);
    assert_int_equal(g->n_invalid, 2);
    assert_int_equal(g->n_failed, 1);
    qb_report_free(&r);

    /* trigger pooled: the non-clean triggers become "backdoored", clean stays apart */
    assert_int_equal(qb_report_parse_by("defense,precision", &opt.by, &err), 0);
    assert_int_equal(qb_report_build(fx->rows, fx->n_rows, &opt, &r, &err), 0);
    assert_int_equal(r.n_det, 8);
    g = find_det(&r, "strip", "backdoored", "int8");
    assert_int_equal(g->k, 1);
    assert_int_equal(g->n, 3);
    assert_false(g->clean);
    assert_true(find_det(&r, "strip", "clean", "int8")->clean);
    qb_report_free(&r);

    /* bad lists */
    assert_int_equal(qb_report_parse_by("seed", &opt.by, &err), -1);
    assert_non_null(strstr(err.msg, "seed"));
    assert_int_equal(qb_report_parse_by("precision,bogus", &opt.by, &err), -1);
    assert_non_null(strstr(err.msg, "bogus"));
    assert_int_equal(qb_report_parse_by("defense,defense", &opt.by, &err), -1);
    assert_int_equal(qb_report_parse_by("", &opt.by, &err), -1);
    qb_report_format fmt;
    assert_int_equal(qb_report_parse_format("md", &fmt, &err), 0);
    assert_int_equal(fmt, QB_REPORT_MARKDOWN);
    assert_int_equal(qb_report_parse_format("html", &fmt, &err), -1);
}

static char *render(const qb_report *r, qb_report_format fmt)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    qb_error err;
    assert_int_equal(qb_report_write(r, fmt, "res.h5", f, &err), 0);
    fclose(f);
    return buf;
}

static void test_text_lists_problems(void **state)
{
    fixture *fx = *state;
    qb_report r;
    build_default(fx->rows, fx->n_rows, &r);
    for (int md = 0; md < 2; md++) {
        char *s = render(&r, md ? QB_REPORT_MARKDOWN : QB_REPORT_TEXT);
        assert_non_null(strstr(s, "ok 26, invalid 2, failed 3, pending 1"));
        assert_non_null(strstr(s, FAILED_MSG));
        assert_non_null(strstr(s, "attack below the validity bar"));
        /* every invalid and failed task by id */
        for (size_t i = 0; i < N_ROWS; i++) {
            qb_task_row row;
            make_row(&row, i);
            if (row.status != QB_STATUS_INVALID && row.status != QB_STATUS_FAILED) continue;
            char id[17];
            snprintf(id, sizeof id, "%016" PRIx64, row.task_id);
            assert_non_null(strstr(s, id));
        }
        assert_non_null(strstr(s, "2/2")); /* nc square int8 */
        assert_non_null(strstr(s, "1/3")); /* strip square int8 */
        assert_non_null(strstr(s, "McNemar"));
        if (md) assert_non_null(strstr(s, "|---|"));
        free(s);
    }
    qb_report_free(&r);
}

/* ---- CSV round trip ------------------------------------------------------ */

#define NCOL 19

typedef struct csv_rec {
    char *f[NCOL];
} csv_rec;

/* RFC 4180 parser: fields may be quoted, "" inside quotes is a quote. */
static size_t parse_csv(char *s, csv_rec **out)
{
    size_t n = 0, cap = 0;
    csv_rec *recs = NULL;
    while (*s) {
        if (n == cap) {
            cap = cap ? 2 * cap : 64;
            recs = realloc(recs, cap * sizeof *recs);
        }
        csv_rec *r = &recs[n++];
        for (int c = 0; c < NCOL; c++) {
            char *w = s;
            r->f[c] = s;
            if (*s == '"') {
                s++;
                for (;;) {
                    if (*s == '"' && s[1] == '"') { *w++ = '"'; s += 2; }
                    else if (*s == '"') { s++; break; }
                    else if (!*s) fail_msg("unterminated quote");
                    else *w++ = *s++;
                }
            } else {
                while (*s && *s != ',' && *s != '\n') *w++ = *s++;
            }
            char sep = *s;
            *w = '\0';
            if (c + 1 < NCOL && sep != ',') fail_msg("row %zu: %d fields, want %d", n, c + 1, NCOL);
            if (c + 1 == NCOL && sep != '\n') fail_msg("row %zu: more than %d fields", n, NCOL);
            s++;
        }
    }
    *out = recs;
    return n;
}

enum { C_SECTION, C_AX0, C_REF = C_AX0 + QB_AXIS_COUNT, C_METRIC, C_EST, C_LO, C_HI, C_STD, C_K,
       C_N, C_P, C_METHOD, C_TASK, C_SEED, C_MSG };

static const csv_rec *find_rec(const csv_rec *recs, size_t n, const char *section,
                               const qb_report_key *key, const char *metric)
{
    const csv_rec *hit = NULL;
    for (size_t i = 0; i < n; i++) {
        if (strcmp(recs[i].f[C_SECTION], section) || strcmp(recs[i].f[C_METRIC], metric)) continue;
        int same = 1;
        for (int a = 0; a < QB_AXIS_COUNT; a++)
            if (strcmp(recs[i].f[C_AX0 + a], key->v[a])) same = 0;
        if (!same) continue;
        if (hit) fail_msg("two CSV rows for %s/%s", section, metric);
        hit = &recs[i];
    }
    if (!hit) fail_msg("no CSV row %s/%s", section, metric);
    return hit;
}

/* A number cell equals x exactly (empty for NaN). */
static void assert_num(const char *cell, double x, const char *what)
{
    if (isnan(x)) {
        if (*cell) fail_msg("%s: want empty, got \"%s\"", what, cell);
        return;
    }
    char *end;
    double v = strtod(cell, &end);
    if (*end || end == cell || v != x) fail_msg("%s: \"%s\" != %.17g", what, cell, x);
}

static void assert_count(const char *cell, size_t x, const char *what)
{
    char buf[32];
    snprintf(buf, sizeof buf, "%zu", x);
    if (strcmp(cell, buf)) fail_msg("%s: \"%s\" != %zu", what, cell, x);
}

static void test_csv_round_trip(void **state)
{
    fixture *fx = *state;
    qb_report r;
    build_default(fx->rows, fx->n_rows, &r);
    char *s = render(&r, QB_REPORT_CSV);
    csv_rec *recs;
    size_t n = parse_csv(s, &recs);
    assert_true(n > 1);
    static const char *const header[NCOL] = {
        "section", "dataset", "trigger", "precision", "mitigation", "defense", "reference",
        "metric", "estimate", "ci_low", "ci_high", "std", "k", "n", "p_value", "method",
        "task_id", "seed", "message"};
    for (int c = 0; c < NCOL; c++) assert_string_equal(recs[0].f[c], header[c]);

    size_t n_task = 0, n_failed_msg = 0;
    for (size_t i = 1; i < n; i++)
        if (!strcmp(recs[i].f[C_SECTION], "task")) {
            n_task++;
            n_failed_msg += !strcmp(recs[i].f[C_MSG], FAILED_MSG); /* quotes and comma survive */
        }
    assert_int_equal(n_task, 5);
    assert_int_equal(n_failed_msg, 3);

    for (size_t i = 0; i < r.n_det; i++) {
        const qb_report_detection *g = &r.det[i];
        const csv_rec *c = find_rec(recs, n, "detection", &g->key,
                                    g->clean ? "false_positive_rate" : "detection_rate");
        assert_num(c->f[C_EST], g->rate, "rate");
        assert_num(c->f[C_LO], g->lo, "lo");
        assert_num(c->f[C_HI], g->hi, "hi");
        assert_count(c->f[C_K], g->k, "k");
        assert_count(c->f[C_N], g->n, "n");
        assert_string_equal(c->f[C_METHOD], "wilson");
        assert_count(find_rec(recs, n, "detection", &g->key, "n_failed")->f[C_K], g->n_failed, "failed");
        assert_count(find_rec(recs, n, "detection", &g->key, "n_invalid")->f[C_K], g->n_invalid, "invalid");
        assert_count(find_rec(recs, n, "detection", &g->key, "n_na")->f[C_K], g->n_na, "na");
        assert_count(find_rec(recs, n, "detection", &g->key, "n_pending")->f[C_K], g->n_pending, "pending");
    }
    for (size_t i = 0; i < r.n_perf; i++) {
        const qb_report_perf *g = &r.perf[i];
        const qb_report_summary *sm[2] = {&g->ca, &g->asr};
        for (int m = 0; m < 2; m++) {
            const csv_rec *c = find_rec(recs, n, "performance", &g->key, m ? "asr" : "ca");
            assert_num(c->f[C_EST], sm[m]->mean, "mean");
            assert_num(c->f[C_LO], sm[m]->lo, "boot lo");
            assert_num(c->f[C_HI], sm[m]->hi, "boot hi");
            assert_num(c->f[C_STD], sm[m]->std, "std");
            assert_count(c->f[C_N], sm[m]->n, "n");
        }
    }
    for (size_t i = 0; i < r.n_pairs; i++) {
        const qb_report_pair *p = &r.pairs[i];
        const char *metric = p->kind == QB_PAIR_DETECTION ? "detection_rate_diff"
                             : p->kind == QB_PAIR_CA      ? "ca_diff"
                                                          : "asr_diff";
        const csv_rec *c = find_rec(recs, n, "paired", &p->key, metric);
        assert_string_equal(c->f[C_REF], "fp32");
        assert_num(c->f[C_P], p->p, "p");
        assert_count(c->f[C_N], p->n, "pairs");
        if (p->kind == QB_PAIR_DETECTION) {
            assert_num(c->f[C_EST], p->other_rate - p->ref_rate, "diff");
            assert_count(find_rec(recs, n, "paired", &p->key, "pairs_reference_only")->f[C_K], p->b, "b");
            assert_count(find_rec(recs, n, "paired", &p->key, "pairs_other_only")->f[C_K], p->c, "c");
        } else {
            assert_num(c->f[C_EST], p->t.mean_diff, "mean diff");
            assert_num(c->f[C_LO], p->t.lo, "t lo");
            assert_num(c->f[C_HI], p->t.hi, "t hi");
        }
    }
    free(recs);
    free(s);
    qb_report_free(&r);
}

static void test_empty_rows(void **state)
{
    (void)state;
    qb_report r;
    build_default(NULL, 0, &r);
    assert_int_equal(r.n_det + r.n_perf + r.n_pairs, 0);
    char *s = render(&r, QB_REPORT_TEXT);
    assert_non_null(strstr(s, "0 tasks"));
    free(s);
    qb_report_free(&r);
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "--write-child")) return write_child(argv[2]);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_scipy),
        cmocka_unit_test(test_stats_by_hand),
        cmocka_unit_test(test_bootstrap_seeded),
        cmocka_unit_test(test_empty_rows),
        cmocka_unit_test_setup_teardown(test_report_on_file, setup_file, teardown_file),
        cmocka_unit_test_setup_teardown(test_by_pools, setup_file, teardown_file),
        cmocka_unit_test_setup_teardown(test_text_lists_problems, setup_file, teardown_file),
        cmocka_unit_test_setup_teardown(test_csv_round_trip, setup_file, teardown_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
