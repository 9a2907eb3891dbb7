/* qb_report_write: the report as text, markdown or one tidy CSV table. */
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"
#include "report/escape.h"
#include "report/report.h"

/* Rows of invalid/failed tasks listed in text and markdown (CSV: all). */
#define LIST_MAX 200

/* ---- a table of strings ------------------------------------------------- */

typedef struct table {
    size_t ncol, nrow, cap;   /* cells: (nrow, ncol), row 0 the header */
    char **cells;
    size_t cur;               /* cells filled in the current row */
} table;

static void table_init(table *t, size_t ncol)
{
    memset(t, 0, sizeof *t);
    t->ncol = ncol;
}

static void table_cell(table *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void table_cell(table *t, const char *fmt, ...)
{
    if (t->cur == 0) {
        if (t->nrow == t->cap) {
            t->cap = t->cap ? 2 * t->cap : 16;
            t->cells = xrealloc(t->cells, t->cap * t->ncol, sizeof *t->cells);
        }
        t->nrow++;
    }
    char buf[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    t->cells[(t->nrow - 1) * t->ncol + t->cur] = xstrdup(buf);
    if (++t->cur == t->ncol) t->cur = 0;
}

/* Display width: UTF-8 continuation bytes take no column. */
static size_t width(const char *s)
{
    size_t w = 0;
    for (; *s; s++) w += ((unsigned char)*s & 0xC0) != 0x80;
    return w;
}

/* Output modes of the human-readable report. */
enum { MODE_TEXT, MODE_MARKDOWN, MODE_HTML };

static void table_print(const table *t, FILE *f, int mode)
{
    int markdown = mode == MODE_MARKDOWN;
    if (mode == MODE_HTML) {
        fputs("<table>\n", f);
        for (size_t r = 0; r < t->nrow; r++) {
            fputs("<tr>", f);
            for (size_t c = 0; c < t->ncol; c++) {
                fputs(r ? "<td>" : "<th>", f);
                qb_html_escape(f, t->cells[r * t->ncol + c]);
                fputs(r ? "</td>" : "</th>", f);
            }
            fputs("</tr>\n", f);
        }
        fputs("</table>\n", f);
        return;
    }
    size_t *w = xcalloc(t->ncol, sizeof *w); /* (ncol) */
    for (size_t r = 0; r < t->nrow; r++)
        for (size_t c = 0; c < t->ncol; c++) {
            size_t x = width(t->cells[r * t->ncol + c]);
            if (x > w[c]) w[c] = x;
        }
    for (size_t r = 0; r < t->nrow; r++) {
        for (size_t c = 0; c < t->ncol; c++) {
            const char *s = t->cells[r * t->ncol + c];
            if (markdown) {
                fputs("| ", f);
                for (const char *p = s; *p; p++) {
                    if (*p == '|') fputc('\\', f);
                    fputc(*p, f);
                }
                fprintf(f, " %s", c + 1 == t->ncol ? "|" : "");
            } else {
                int last = c + 1 == t->ncol;
                fprintf(f, "%s%*s", s, last ? 0 : (int)(w[c] - width(s) + 2), "");
            }
        }
        fputc('\n', f);
        if (r == 0) {
            for (size_t c = 0; c < t->ncol; c++) {
                if (markdown) fputs("|---", f);
                else {
                    for (size_t k = 0; k < w[c]; k++) fputc('-', f);
                    if (c + 1 < t->ncol) fputs("  ", f);
                }
            }
            fputs(markdown ? "|\n" : "\n", f);
        }
    }
    free(w);
}

static void table_free(table *t)
{
    for (size_t i = 0; i < t->nrow * t->ncol; i++) free(t->cells[i]);
    free(t->cells);
}

/* ---- formatting helpers ------------------------------------------------- */

static void pct(char *buf, size_t n, double x)
{
    if (isnan(x)) snprintf(buf, n, "—");
    else snprintf(buf, n, "%.1f%%", 100.0 * x);
}

static void ci(char *buf, size_t n, double lo, double hi)
{
    if (isnan(lo) || isnan(hi)) snprintf(buf, n, "—");
    else snprintf(buf, n, "[%.1f, %.1f]", 100.0 * lo, 100.0 * hi);
}

static void pval(char *buf, size_t n, double p)
{
    if (isnan(p)) snprintf(buf, n, "—");
    else if (p < 1e-4) snprintf(buf, n, "%.1e", p);
    else snprintf(buf, n, "%.4f", p);
}

/* Columns of a table: axes in --by whose value varies over the n groups
 * whose keys are `stride` bytes apart from `keys` on. */
static void shown_axes(const qb_report *r, const qb_report_key *keys, size_t stride, size_t n,
                       int skip_axis, int shown[QB_AXIS_COUNT])
{
    for (int a = 0; a < QB_AXIS_COUNT; a++) {
        shown[a] = 0;
        if (a == skip_axis || !((r->by >> a) & 1u)) continue;
        const qb_report_key *k0 = (const qb_report_key *)(const void *)keys;
        for (size_t i = 1; i < n && !shown[a]; i++) {
            const qb_report_key *ki =
                (const qb_report_key *)(const void *)((const char *)keys + i * stride);
            if (strcmp(k0->v[a], ki->v[a])) shown[a] = 1;
        }
    }
}

static size_t n_shown(const int shown[QB_AXIS_COUNT])
{
    size_t n = 0;
    for (int a = 0; a < QB_AXIS_COUNT; a++) n += (size_t)shown[a];
    return n;
}

/* Axis columns in reading order. */
static const int col_order[QB_AXIS_COUNT] = {QB_AXIS_DATASET, QB_AXIS_TRIGGER, QB_AXIS_MITIGATION,
                                             QB_AXIS_DEFENSE, QB_AXIS_PRECISION};

static void key_header(table *t, const int shown[QB_AXIS_COUNT])
{
    for (int i = 0; i < QB_AXIS_COUNT; i++)
        if (shown[col_order[i]])
            table_cell(t, "%s", qb_report_axis_name((qb_report_axis)col_order[i]));
}

static void key_cells(table *t, const int shown[QB_AXIS_COUNT], const qb_report_key *k)
{
    for (int i = 0; i < QB_AXIS_COUNT; i++)
        if (shown[col_order[i]]) table_cell(t, "%s", k->v[col_order[i]]);
}

/* t with the header: the shown axes' names, then cols[0..n). */
static void table_init_header(table *t, const int shown[QB_AXIS_COUNT], const char *const *cols,
                              size_t n)
{
    table_init(t, n_shown(shown) + n);
    key_header(t, shown);
    for (size_t i = 0; i < n; i++) table_cell(t, "%s", cols[i]);
}

static int same_key_but(const qb_report_key *x, const qb_report_key *y, int axis)
{
    for (int a = 0; a < QB_AXIS_COUNT; a++)
        if (a != axis && strcmp(x->v[a], y->v[a])) return 0;
    return 1;
}

/* ---- text and markdown -------------------------------------------------- */

/* n, "mean ± std" and the interval of one CA or ASR summary (points). */
static void summary_cells(table *t, const qb_report_summary *s)
{
    char b[64];
    table_cell(t, "%zu", s->n);
    if (s->n) table_cell(t, "%.2f ± %.2f", 100.0 * s->mean, isnan(s->std) ? 0.0 : 100.0 * s->std);
    else table_cell(t, "—");
    ci(b, sizeof b, s->lo, s->hi);
    table_cell(t, "%s", b);
}

static void heading(FILE *f, int mode, const char *s)
{
    if (mode == MODE_HTML) {
        fputs("<h2>", f);
        qb_html_escape(f, s);
        fputs("</h2>\n", f);
    } else if (mode == MODE_MARKDOWN) fprintf(f, "\n## %s\n\n", s);
    else {
        fprintf(f, "\n%s\n", s);
        for (size_t i = width(s); i > 0; i--) fputc('=', f);
        fputs("\n\n", f);
    }
}

/* A paragraph: as is in text and markdown, escaped in <p> in HTML. */
static void prose(FILE *f, int mode, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void prose(FILE *f, int mode, const char *fmt, ...)
{
    char buf[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (mode != MODE_HTML) {
        fputs(buf, f);
        return;
    }
    size_t len = strlen(buf);
    while (len && buf[len - 1] == '\n') buf[--len] = '\0';
    fputs("<p>", f);
    qb_html_escape(f, buf);
    fputs("</p>\n", f);
}

/* One line of the summary list: "- " in markdown, <li> in HTML. */
static void bullet(FILE *f, int mode, const char *s)
{
    if (mode == MODE_HTML) {
        fputs("<li>", f);
        qb_html_escape(f, s);
        fputs("</li>\n", f);
    } else {
        fprintf(f, "%s%s\n", mode == MODE_MARKDOWN ? "- " : "", s);
    }
}

/* "name count" for each nonzero count, joined by ", " (a name's suffix
 * after the count), into buf; "—" when every count is 0. */
static void count_list(char *buf, size_t n, const size_t *v, const char *const *name,
                       const char *const *suffix, int k)
{
    buf[0] = '\0';
    size_t len = 0;
    for (int i = 0; i < k; i++)
        if (v[i] && len < n)
            len += (size_t)snprintf(buf + len, n - len, "%s%s %zu%s", len ? ", " : "", name[i], v[i],
                                    suffix ? suffix[i] : "");
    if (!len) snprintf(buf, n, "—");
}

/* "n/a 5, error 1" or "—": the rows of a detection group not in n. */
static void excluded(char *buf, size_t n, const qb_report_detection *g)
{
    const size_t v[5] = {g->n_error, g->n_na, g->n_invalid, g->n_failed, g->n_pending};
    static const char *const name[5] = {"error", "n/a", "invalid", "failed", "pending"};
    count_list(buf, n, v, name, NULL, 5);
}

/* Text/markdown title and the summary list: status counts, the axes with
 * one value, the pooled axes, the intervals used. */
static void write_summary(const qb_report *r, int mode, const char *title, FILE *f)
{
    int md = mode == MODE_MARKDOWN;
    const size_t *sc = r->status_counts;
    char line[1024];
    size_t ll;
    if (mode != MODE_HTML) fprintf(f, "%sqblind report: %s\n\n", md ? "# " : "", title ? title : "(rows)");
    else fputs("<ul>\n", f);
    snprintf(line, sizeof line, "%zu tasks: ok %zu, invalid %zu, failed %zu, pending %zu.",
             r->n_rows, sc[QB_STATUS_OK], sc[QB_STATUS_INVALID], sc[QB_STATUS_FAILED],
             sc[QB_STATUS_PENDING]);
    bullet(f, mode, line);
    ll = (size_t)snprintf(line, sizeof line, "Same in every row:");
    int any = 0;
    for (int a = 0; a < QB_AXIS_COUNT; a++)
        if (r->n_values[a] == 1 && ll < sizeof line) {
            ll += (size_t)snprintf(line + ll, sizeof line - ll, "%s %s = %s", any ? "," : "",
                                    qb_report_axis_name((qb_report_axis)a), r->values[a][0]);
            any = 1;
        }
    if (ll < sizeof line) snprintf(line + ll, sizeof line - ll, "%s.", any ? "" : " nothing");
    bullet(f, mode, line);
    ll = (size_t)snprintf(line, sizeof line, "Pooled (not in --by):");
    any = 0;
    for (int a = 0; a < QB_AXIS_COUNT; a++)
        if (!((r->by >> a) & 1u) && r->n_values[a] > 1 && ll < sizeof line) {
            ll += (size_t)snprintf(line + ll, sizeof line - ll, "%s %s", any ? "," : "",
                                    qb_report_axis_name((qb_report_axis)a));
            any = 1;
        }
    if (ll < sizeof line) snprintf(line + ll, sizeof line - ll, "%s.", any ? "" : " nothing");
    bullet(f, mode, line);
    snprintf(line, sizeof line, "Intervals are 95%%: Wilson for rates; percentile bootstrap of the "
             "mean over seeds (%zu resamples, seeded) for CA/ASR; t for paired differences. "
             "Percentages in points.", r->boot_resamples);
    bullet(f, mode, line);
    if (mode == MODE_HTML) fputs("</ul>\n", f);
}

/* "k/n" and "rate [95% CI]" of a detection group; "—" twice without one. */
static void rate_cells(table *t, const qb_report_detection *g)
{
    char rate[64], interval[64];
    if (!g) {
        table_cell(t, "—");
        table_cell(t, "—");
        return;
    }
    pct(rate, sizeof rate, g->rate);
    ci(interval, sizeof interval, g->lo, g->hi);
    table_cell(t, "%zu/%zu", g->k, g->n);
    if (g->n) table_cell(t, "%s %s", rate, interval);
    else table_cell(t, "—");
}

/* The rows not counted in a detection group, "—" without one. */
static void excluded_cell(table *t, const qb_report_detection *g)
{
    char b[128];
    if (g) excluded(b, sizeof b, g);
    table_cell(t, "%s", g ? b : "—");
}

/* Table 1's row of det[i]: a backdoored group with its clean partner (the
 * same key but the trigger) beside it, or a clean group that has no
 * backdoored partner. 0 when det[i] is a clean group shown beside its
 * partner (no row of its own). */
static int detection_row(const qb_report *r, size_t i, const int shown[QB_AXIS_COUNT], table *t)
{
    const qb_report_detection *g = &r->det[i], *c = NULL;
    for (size_t j = 0; j < r->n_det; j++)
        if (r->det[j].clean != g->clean && same_key_but(&r->det[j].key, &g->key, QB_AXIS_TRIGGER)) {
            if (g->clean) return 0;
            c = &r->det[j];
        }
    if (g->clean) {
        c = g;
        g = NULL;
    }
    key_cells(t, shown, g ? &g->key : &c->key);
    rate_cells(t, g);
    rate_cells(t, c);
    excluded_cell(t, g);
    excluded_cell(t, c);
    return 1;
}

/* Section 1: detection rate and false-positive rate per group. */
static void write_detection(const qb_report *r, int mode, FILE *f)
{
    heading(f, mode, "Detection");
    prose(f, mode, "Rate of detected = yes among ok rows with a yes/no decision (k/n); the "
          "false-positive rate is the same defense on clean models. Rows not in n are counted "
          "under \"not counted\".\n\n");
    size_t nb = 0;
    for (size_t i = 0; i < r->n_det; i++) nb += !r->det[i].clean;
    if (!r->n_det) {
        prose(f, mode, "No rows with a defense.\n");
        return;
    }
    int shown[QB_AXIS_COUNT];
    /* the shown axes over the backdoored groups (all groups when none) */
    qb_report_key *keys = xmalloc(r->n_det, sizeof *keys);
    size_t nk = 0;
    for (size_t i = 0; i < r->n_det; i++)
        if (!r->det[i].clean || !nb) keys[nk++] = r->det[i].key;
    shown_axes(r, keys, sizeof *keys, nk, nb ? -1 : QB_AXIS_TRIGGER, shown);
    free(keys);
    static const char *const cols[6] = {"detected",    "rate [95% CI]", "FP (clean)",
                                        "FPR [95% CI]", "not counted",   "not counted (clean)"};
    table t;
    table_init_header(&t, shown, cols, 6);
    for (size_t i = 0; i < r->n_det; i++) detection_row(r, i, shown, &t);
    table_print(&t, f, mode);
    table_free(&t);
}

/* Section 2: CA and ASR of the deployed model per group. */
static void write_perf(const qb_report *r, int mode, FILE *f)
{
    heading(f, mode, "CA and ASR of the deployed model");
    prose(f, mode, "After quantization and mitigation (ca_mitig, asr_mitig), one value per "
          "deployed model (defenses pooled): mean ± std over seeds and a bootstrap interval of the "
          "mean. Invalid tasks (ASR below the validity bar) are real measurements and are "
          "included; failed and pending ones are not.\n\n");
    if (!r->n_perf) {
        prose(f, mode, "No rows.\n");
        return;
    }
    int shown[QB_AXIS_COUNT];
    shown_axes(r, &r->perf[0].key, sizeof r->perf[0], r->n_perf, QB_AXIS_DEFENSE, shown);
    static const char *const cols[7] = {"n",       "CA mean ± std",  "CA 95% CI", "n (ASR)",
                                        "ASR mean ± std", "ASR 95% CI", "notes"};
    table t;
    table_init_header(&t, shown, cols, 7);
    static const char *const name[3] = {"invalid", "failed", "pending"};
    static const char *const suffix[3] = {" (in)", "", ""};
    for (size_t i = 0; i < r->n_perf; i++) {
        const qb_report_perf *g = &r->perf[i];
        key_cells(&t, shown, &g->key);
        summary_cells(&t, &g->ca);
        summary_cells(&t, &g->asr);
        const size_t v[3] = {g->n_invalid, g->n_failed, g->n_pending};
        char notes[128];
        count_list(notes, sizeof notes, v, name, suffix, 3);
        table_cell(&t, "%s", notes);
    }
    table_print(&t, f, mode);
    table_free(&t);
}

/* One table of section 3: the detection pairs (kind 0) or the CA/ASR
 * pairs (kind 1); nothing when there are none. */
static void write_pairs_table(const qb_report *r, int mode, int kind, FILE *f)
{
    size_t m = 0;
    for (size_t i = 0; i < r->n_pairs; i++) m += (r->pairs[i].kind == QB_PAIR_DETECTION) == (kind == 0);
    if (!m) return;
    qb_report_key *keys = xmalloc(m, sizeof *keys);
    m = 0;
    for (size_t i = 0; i < r->n_pairs; i++)
        if ((r->pairs[i].kind == QB_PAIR_DETECTION) == (kind == 0)) keys[m++] = r->pairs[i].key;
    int shown[QB_AXIS_COUNT];
    shown_axes(r, keys, sizeof *keys, m, kind ? QB_AXIS_DEFENSE : -1, shown);
    shown[QB_AXIS_PRECISION] = 1;
    free(keys);
    char ref_col[512], ref_only_col[512]; /* table_cell's limit */
    snprintf(ref_col, sizeof ref_col, "%s rate", r->ref_precision);
    snprintf(ref_only_col, sizeof ref_only_col, "%s only / other only", r->ref_precision);
    const char *const cols[2][5] = {{"pairs", ref_col, "rate", ref_only_col, "McNemar p"},
                                    {"metric", "pairs", "diff [95% CI]", "t", "paired t p"}};
    table t;
    table_init_header(&t, shown, cols[kind], 5);
    for (size_t i = 0; i < r->n_pairs; i++) {
        const qb_report_pair *p = &r->pairs[i];
        if ((p->kind == QB_PAIR_DETECTION) != (kind == 0)) continue;
        key_cells(&t, shown, &p->key);
        char ref_rate[64], rate[64], pv[64];
        pval(pv, sizeof pv, p->p);
        if (kind == 0) {
            pct(ref_rate, sizeof ref_rate, p->ref_rate);
            pct(rate, sizeof rate, p->other_rate);
            table_cell(&t, "%zu", p->n);
            table_cell(&t, "%s", ref_rate);
            table_cell(&t, "%s", rate);
            table_cell(&t, "%zu / %zu", p->b, p->c);
        } else {
            table_cell(&t, "%s", p->kind == QB_PAIR_CA ? "CA" : "ASR");
            table_cell(&t, "%zu", p->n);
            if (isnan(p->t.mean_diff)) table_cell(&t, "—");
            else if (isnan(p->t.lo)) table_cell(&t, "%+.2f", 100.0 * p->t.mean_diff);
            else table_cell(&t, "%+.2f [%+.2f, %+.2f]", 100.0 * p->t.mean_diff, 100.0 * p->t.lo,
                            100.0 * p->t.hi);
            if (isnan(p->t.t)) table_cell(&t, "—");
            else table_cell(&t, "%.2f", p->t.t);
        }
        table_cell(&t, "%s", pv);
    }
    table_print(&t, f, mode);
    table_free(&t);
    if (mode != MODE_HTML) fputc('\n', f);
}

/* Section 3: every precision against the reference on the same units. */
static void write_paired(const qb_report *r, int mode, FILE *f)
{
    heading(f, mode, "Paired comparisons across precisions");
    if (!r->ref_precision || r->n_values[QB_AXIS_PRECISION] < 2) {
        prose(f, mode, "Only one precision: nothing to compare.\n");
        return;
    }
    prose(f, mode, "Each precision against %s on the same seeds. Detection: McNemar's exact test "
          "on the discordant pairs (%s only / other only). CA and ASR: paired t-test of "
          "the difference (other − %s, points) with its t interval.\n\n",
          r->ref_precision, r->ref_precision, r->ref_precision);
    for (int kind = 0; kind < 2; kind++) write_pairs_table(r, mode, kind, f);
}

/* Section 4: the invalid and failed rows (at most LIST_MAX), pending ones
 * counted. */
static void write_problems(const qb_report *r, int mode, FILE *f)
{
    const size_t *sc = r->status_counts;
    heading(f, mode, "Invalid, failed and pending tasks");
    size_t listed = 0, n_list = sc[QB_STATUS_INVALID] + sc[QB_STATUS_FAILED];
    if (!r->n_problems) {
        prose(f, mode, "None: every task is ok.\n");
        return;
    }
    prose(f, mode, "invalid %zu, failed %zu, pending %zu%s.\n\n", sc[QB_STATUS_INVALID],
          sc[QB_STATUS_FAILED], sc[QB_STATUS_PENDING],
          sc[QB_STATUS_PENDING] ? " (pending tasks are not listed: resume the run)" : "");
    if (!n_list) return;
    static const int no_axis[QB_AXIS_COUNT] = {0};
    static const char *const cols[9] = {"task id", "status", "dataset", "seed", "trigger",
                                        "precision", "mitigation", "defense", "message"};
    table t;
    table_init_header(&t, no_axis, cols, 9);
    for (size_t i = 0; i < r->n_problems && listed < LIST_MAX; i++) {
        const qb_task_row *row = &r->rows[r->problems[i]];
        if (row->status != QB_STATUS_INVALID && row->status != QB_STATUS_FAILED) continue;
        table_cell(&t, "%016" PRIx64, row->task_id);
        table_cell(&t, "%s", qb_task_status_name(row->status));
        table_cell(&t, "%s", row->dataset);
        table_cell(&t, "%" PRId64, row->seed);
        table_cell(&t, "%s", row->trigger);
        table_cell(&t, "%s", row->precision);
        table_cell(&t, "%s", row->mitigation);
        table_cell(&t, "%s", row->defense);
        table_cell(&t, "%s", row->message);
        listed++;
    }
    table_print(&t, f, mode);
    table_free(&t);
    if (listed < n_list)
        prose(f, mode, "\n... and %zu more invalid or failed tasks: --format csv lists all.\n",
              n_list - listed);
}

/* The text, markdown or HTML-fragment report: summary, then sections 1-4. */
static void write_human(const qb_report *r, int mode, const char *title, FILE *f)
{
    write_summary(r, mode, title, f);
    write_detection(r, mode, f);
    write_perf(r, mode, f);
    write_paired(r, mode, f);
    write_problems(r, mode, f);
}

/* ---- CSV ---------------------------------------------------------------- */

static void csv_str(FILE *f, const char *s)
{
    if (!s) return;
    if (strpbrk(s, ",\"\r\n") || (s[0] == ' ')) {
        fputc('"', f);
        for (; *s; s++) {
            if (*s == '"') fputc('"', f);
            fputc(*s, f);
        }
        fputc('"', f);
    } else {
        fputs(s, f);
    }
}

static void csv_num(FILE *f, double x)
{
    if (!isnan(x)) fprintf(f, "%.17g", x);
}

/* One tidy row. NULL strings and NaN numbers are empty; k/n/seed < 0 empty. */
typedef struct csv_row {
    const char *section;
    const char *v[QB_AXIS_COUNT];
    const char *reference, *metric;
    double estimate, lo, hi, std;
    long long k, n;
    double p;
    const char *method;
    const char *task_id;
    int has_seed;
    int64_t seed;
    const char *message;
} csv_row;

static void csv_row_init(csv_row *c, const char *section, const qb_report_key *key,
                         const char *metric)
{
    memset(c, 0, sizeof *c);
    c->section = section;
    if (key)
        for (int a = 0; a < QB_AXIS_COUNT; a++) c->v[a] = key->v[a];
    c->metric = metric;
    c->estimate = c->lo = c->hi = c->std = c->p = NAN;
    c->k = c->n = -1;
}

static void csv_emit(FILE *f, const csv_row *c)
{
    csv_str(f, c->section);
    for (int a = 0; a < QB_AXIS_COUNT; a++) {
        fputc(',', f);
        csv_str(f, c->v[a]);
    }
    fputc(',', f);
    csv_str(f, c->reference);
    fputc(',', f);
    csv_str(f, c->metric);
    const double num[4] = {c->estimate, c->lo, c->hi, c->std};
    for (int i = 0; i < 4; i++) {
        fputc(',', f);
        csv_num(f, num[i]);
    }
    fputc(',', f);
    if (c->k >= 0) fprintf(f, "%lld", c->k);
    fputc(',', f);
    if (c->n >= 0) fprintf(f, "%lld", c->n);
    fputc(',', f);
    csv_num(f, c->p);
    fputc(',', f);
    csv_str(f, c->method);
    fputc(',', f);
    csv_str(f, c->task_id);
    fputc(',', f);
    if (c->has_seed) fprintf(f, "%" PRId64, c->seed);
    fputc(',', f);
    csv_str(f, c->message);
    fputc('\n', f);
}

static void csv_count(FILE *f, const char *section, const qb_report_key *key, const char *metric,
                      size_t k, size_t n)
{
    csv_row c;
    csv_row_init(&c, section, key, metric);
    c.estimate = (double)k;
    c.k = (long long)k;
    c.n = (long long)n;
    c.method = "count";
    csv_emit(f, &c);
}

static void write_csv(const qb_report *r, FILE *f)
{
    fputs("section,dataset,trigger,precision,mitigation,defense,reference,metric,estimate,ci_low,"
          "ci_high,std,k,n,p_value,method,task_id,seed,message\n", f);
    static const char *const st[QB_STATUS_COUNT] = {"pending", "ok", "invalid", "failed"};
    for (int s = 0; s < QB_STATUS_COUNT; s++)
        csv_count(f, "status", NULL, st[s], r->status_counts[s], r->n_rows);
    for (size_t i = 0; i < r->n_problems; i++) {
        const qb_task_row *row = &r->rows[r->problems[i]];
        if (row->status != QB_STATUS_INVALID && row->status != QB_STATUS_FAILED) continue;
        char id[17];
        snprintf(id, sizeof id, "%016" PRIx64, row->task_id);
        qb_report_key k = {
            {row->dataset, row->trigger, row->precision, row->mitigation, row->defense}};
        csv_row c;
        csv_row_init(&c, "task", &k, qb_task_status_name(row->status));
        c.task_id = id;
        c.has_seed = 1;
        c.seed = row->seed;
        c.message = row->message;
        csv_emit(f, &c);
    }
    for (size_t i = 0; i < r->n_det; i++) {
        const qb_report_detection *g = &r->det[i];
        csv_row c;
        csv_row_init(&c, "detection", &g->key, g->clean ? "false_positive_rate" : "detection_rate");
        c.estimate = g->rate;
        c.lo = g->lo;
        c.hi = g->hi;
        c.k = (long long)g->k;
        c.n = (long long)g->n;
        c.method = "wilson";
        csv_emit(f, &c);
        csv_count(f, "detection", &g->key, "n_error", g->n_error, g->n_rows);
        csv_count(f, "detection", &g->key, "n_na", g->n_na, g->n_rows);
        csv_count(f, "detection", &g->key, "n_invalid", g->n_invalid, g->n_rows);
        csv_count(f, "detection", &g->key, "n_failed", g->n_failed, g->n_rows);
        csv_count(f, "detection", &g->key, "n_pending", g->n_pending, g->n_rows);
    }
    char method[64];
    snprintf(method, sizeof method, "bootstrap-percentile-%zu", r->boot_resamples);
    for (size_t i = 0; i < r->n_perf; i++) {
        const qb_report_perf *g = &r->perf[i];
        const qb_report_summary *s[2] = {&g->ca, &g->asr};
        for (int m = 0; m < 2; m++) {
            csv_row c;
            csv_row_init(&c, "performance", &g->key, m ? "asr" : "ca");
            c.estimate = s[m]->mean;
            c.lo = s[m]->lo;
            c.hi = s[m]->hi;
            c.std = s[m]->std;
            c.n = (long long)s[m]->n;
            c.method = method;
            csv_emit(f, &c);
        }
        csv_count(f, "performance", &g->key, "units_invalid_included", g->n_invalid, g->n_units);
        csv_count(f, "performance", &g->key, "units_failed", g->n_failed, g->n_units);
        csv_count(f, "performance", &g->key, "units_pending", g->n_pending, g->n_units);
    }
    for (size_t i = 0; i < r->n_pairs; i++) {
        const qb_report_pair *p = &r->pairs[i];
        csv_row c;
        if (p->kind == QB_PAIR_DETECTION) {
            csv_row_init(&c, "paired", &p->key, "detection_rate_diff");
            c.reference = p->ref;
            c.estimate = p->other_rate - p->ref_rate;
            c.n = (long long)p->n;
            c.p = p->p;
            c.method = "mcnemar-exact";
            csv_emit(f, &c);
            const char *names[4] = {"pairs_both_yes", "pairs_reference_only", "pairs_other_only",
                                    "pairs_neither"};
            const size_t v[4] = {p->a, p->b, p->c, p->d};
            for (int j = 0; j < 4; j++) {
                csv_row_init(&c, "paired", &p->key, names[j]);
                c.reference = p->ref;
                c.estimate = (double)v[j];
                c.k = (long long)v[j];
                c.n = (long long)p->n;
                c.method = "count";
                csv_emit(f, &c);
            }
        } else {
            csv_row_init(&c, "paired", &p->key, p->kind == QB_PAIR_CA ? "ca_diff" : "asr_diff");
            c.reference = p->ref;
            c.estimate = p->t.mean_diff;
            c.lo = p->t.lo;
            c.hi = p->t.hi;
            c.std = p->t.sd_diff;
            c.n = (long long)p->n;
            c.p = p->p;
            c.method = "paired-t";
            csv_emit(f, &c);
        }
    }
}

int qb_report_write(const qb_report *r, qb_report_format fmt, const char *title, FILE *f,
                    qb_error *err)
{
    if (fmt == QB_REPORT_CSV) write_csv(r, f);
    else write_human(r, fmt == QB_REPORT_MARKDOWN ? MODE_MARKDOWN : MODE_TEXT, title, f);
    if (fflush(f) || ferror(f)) return QB_FAIL(err, "report: write error (disk full?)");
    return 0;
}

int qb_report_write_html_tables(const qb_report *r, FILE *f, qb_error *err)
{
    write_human(r, MODE_HTML, NULL, f);
    if (fflush(f) || ferror(f)) return QB_FAIL(err, "report: write error (disk full?)");
    return 0;
}
