#include "report/report.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/xalloc.h"

#define POOLED UINT32_MAX
#define BACKDOORED (UINT32_MAX - 1u)

static const char *const axis_names[QB_AXIS_COUNT] = {"dataset", "trigger", "precision",
                                                      "mitigation", "defense"};

const char *qb_report_axis_name(qb_report_axis a)
{
    return (unsigned)a < QB_AXIS_COUNT ? axis_names[a] : "?";
}

void qb_report_options_default(qb_report_options *opt)
{
    opt->by = QB_REPORT_BY_ALL;
    opt->boot_seed = QB_REPORT_BOOT_SEED;
    opt->boot_resamples = QB_REPORT_BOOT_RESAMPLES;
}

int qb_report_parse_by(const char *s, unsigned *mask, qb_error *err)
{
    unsigned m = 0;
    const char *p = s;
    if (!strcmp(s, "all")) {
        *mask = QB_REPORT_BY_ALL;
        return 0;
    }
    while (*p) {
        size_t len = strcspn(p, ",");
        int found = -1;
        for (int a = 0; a < QB_AXIS_COUNT; a++)
            if (strlen(axis_names[a]) == len && !strncmp(p, axis_names[a], len)) found = a;
        if (found < 0) {
            if (len == 4 && !strncmp(p, "seed", 4))
                return QB_FAIL(err, "--by: seeds are the replicates of every group and cannot "
                               "be a grouping axis");
            return QB_FAIL(err, "--by: unknown axis \"%.*s\" (axes: dataset, trigger, precision, "
                           "mitigation, defense, or all)", (int)len, p);
        }
        if (m & (1u << found))
            return QB_FAIL(err, "--by: axis \"%s\" given twice", axis_names[found]);
        m |= 1u << found;
        p += len;
        if (*p == ',') p++;
    }
    if (!m) return QB_FAIL(err, "--by: empty axis list");
    *mask = m;
    return 0;
}

int qb_report_parse_format(const char *s, qb_report_format *fmt, qb_error *err)
{
    if (!strcmp(s, "text")) *fmt = QB_REPORT_TEXT;
    else if (!strcmp(s, "markdown") || !strcmp(s, "md")) *fmt = QB_REPORT_MARKDOWN;
    else if (!strcmp(s, "csv")) *fmt = QB_REPORT_CSV;
    else return QB_FAIL(err, "--format: expected text, markdown or csv, got \"%s\"", s);
    return 0;
}

/* ---- rows as value indices ---------------------------------------------- */

/* One row (or one deployed-model unit) with its axis values as indices
 * into qb_report.values, and the group key being formed. */
typedef struct item {
    uint32_t ax[QB_AXIS_COUNT];
    uint32_t gk[QB_AXIS_COUNT];
    int64_t seed;
    size_t row;
    int32_t status;
} item;

static const char *row_axis(const qb_task_row *row, int a)
{
    switch (a) {
    case QB_AXIS_DATASET: return row->dataset;
    case QB_AXIS_TRIGGER: return row->trigger;
    case QB_AXIS_PRECISION: return row->precision;
    case QB_AXIS_MITIGATION: return row->mitigation;
    default: return row->defense;
    }
}

static uint32_t value_index(qb_report *r, int a, const char *s, size_t *cap)
{
    for (size_t i = 0; i < r->n_values[a]; i++)
        if (!strcmp(r->values[a][i], s)) return (uint32_t)i;
    if (r->n_values[a] == cap[a]) {
        cap[a] = cap[a] ? 2 * cap[a] : 8;
        r->values[a] = xrealloc(r->values[a], cap[a], sizeof *r->values[a]);
    }
    r->values[a][r->n_values[a]] = s;
    return (uint32_t)r->n_values[a]++;
}

static const char *key_str(const qb_report *r, int a, uint32_t v)
{
    if (v == POOLED) return "*";
    if (v == BACKDOORED) return "backdoored";
    return r->values[a][v];
}

static qb_report_key make_key(const qb_report *r, const uint32_t *gk)
{
    qb_report_key k;
    for (int a = 0; a < QB_AXIS_COUNT; a++) k.v[a] = key_str(r, a, gk[a]);
    return k;
}

/* Sorting: group key in the order below, then the exact axes, the seed
 * and the row (a total order: the result never depends on qsort). */
static const int sort_order[QB_AXIS_COUNT] = {QB_AXIS_DATASET, QB_AXIS_MITIGATION, QB_AXIS_TRIGGER,
                                              QB_AXIS_DEFENSE, QB_AXIS_PRECISION};
/* The pairing sort (cmp_item_pairing) puts the precision last, after the
 * seed, so the precisions of one unit are neighbours. */

static int cmp_u32(uint32_t x, uint32_t y) { return (x > y) - (x < y); }

static int cmp_item_impl(const item *x, const item *y, int pairing)
{
    int c;
    for (int i = 0; i < QB_AXIS_COUNT; i++)
        if ((c = cmp_u32(x->gk[sort_order[i]], y->gk[sort_order[i]]))) return c;
    for (int i = 0; i < QB_AXIS_COUNT; i++) {
        int a = sort_order[i];
        if (pairing && a == QB_AXIS_PRECISION) continue;
        if ((c = cmp_u32(x->ax[a], y->ax[a]))) return c;
    }
    if (x->seed != y->seed) return x->seed < y->seed ? -1 : 1;
    if (pairing && (c = cmp_u32(x->ax[QB_AXIS_PRECISION], y->ax[QB_AXIS_PRECISION]))) return c;
    return (x->row > y->row) - (x->row < y->row);
}

static int cmp_item(const void *a, const void *b) { return cmp_item_impl(a, b, 0); }
static int cmp_item_pairing(const void *a, const void *b) { return cmp_item_impl(a, b, 1); }

static int same_gk(const item *x, const item *y)
{
    return !memcmp(x->gk, y->gk, sizeof x->gk);
}

/* it[0..n) sorted with the groups together: the end of the group that
 * starts at it[s]. */
static size_t group_end(const item *it, size_t s, size_t n)
{
    size_t e = s + 1;
    while (e < n && same_gk(&it[s], &it[e])) e++;
    return e;
}

/* Same unit for pairing: every exact axis but the precision, and the seed. */
static int same_unit(const item *x, const item *y)
{
    for (int a = 0; a < QB_AXIS_COUNT; a++)
        if (a != QB_AXIS_PRECISION && x->ax[a] != y->ax[a]) return 0;
    return x->seed == y->seed;
}

static void push(void **arr, size_t *n, size_t *cap, size_t size, const void *elem)
{
    if (*n == *cap) {
        *cap = *cap ? 2 * *cap : 16;
        *arr = xrealloc(*arr, *cap, size);
    }
    memcpy((char *)*arr + *n * size, elem, size);
    (*n)++;
}

/* ---- detection ---------------------------------------------------------- */

static int is_yes_no(int32_t d) { return d == QB_DETECTED_YES || d == QB_DETECTED_NO; }

static void detection_groups(qb_report *r, item *it, size_t n, uint32_t clean_idx)
{
    size_t cap = 0;
    qsort(it, n, sizeof *it, cmp_item);
    for (size_t s = 0, e; s < n; s = e) {
        e = group_end(it, s, n);
        qb_report_detection g = {.key = make_key(r, it[s].gk),
                                 .clean = it[s].gk[QB_AXIS_TRIGGER] == clean_idx,
                                 .n_rows = e - s};
        for (size_t i = s; i < e; i++) {
            const qb_task_row *row = &r->rows[it[i].row];
            switch (row->status) {
            case QB_STATUS_OK:
                if (is_yes_no(row->detected)) {
                    g.n++;
                    g.k += row->detected == QB_DETECTED_YES;
                } else if (row->detected == QB_DETECTED_ERROR) {
                    g.n_error++;
                } else {
                    g.n_na++;
                }
                break;
            case QB_STATUS_INVALID: g.n_invalid++; break;
            case QB_STATUS_FAILED: g.n_failed++; break;
            default: g.n_pending++; break;
            }
        }
        g.rate = g.n ? (double)g.k / (double)g.n : NAN;
        qb_stats_wilson(g.k, g.n, QB_REPORT_LEVEL, &g.lo, &g.hi);
        push((void **)&r->det, &r->n_det, &cap, sizeof g, &g);
    }
}

/* Best first: ok, invalid, failed, pending (and unknown values). */
static int status_rank(int32_t s)
{
    return s == QB_STATUS_OK ? 0 : s == QB_STATUS_INVALID ? 1 : s == QB_STATUS_FAILED ? 2 : 3;
}

/* ---- pairs -------------------------------------------------------------- */

/* it[0..n) sorted by cmp_item_pairing with the precision pooled in gk.
 * For every group and every precision other than ref: the pairs. */
static void pair_groups(qb_report *r, item *it, size_t n, uint32_t ref, int detection,
                        size_t *cap)
{
    double *x = xmalloc(n ? n : 1, sizeof *x), *y = xmalloc(n ? n : 1, sizeof *y); /* (n) */
    double *x2 = xmalloc(n ? n : 1, sizeof *x2), *y2 = xmalloc(n ? n : 1, sizeof *y2);
    for (size_t s = 0, e; s < n; s = e) {
        e = group_end(it, s, n);
        for (uint32_t p = 0; p < r->n_values[QB_AXIS_PRECISION]; p++) {
            if (p == ref) continue;
            qb_report_pair pd, pc, pa;
            memset(&pd, 0, sizeof pd);
            size_t nca = 0, nasr = 0, seen = 0;
            /* units: runs of same_unit inside the group */
            for (size_t u = s, v; u < e; u = v) {
                for (v = u + 1; v < e && same_unit(&it[u], &it[v]); v++) {}
                const item *ri = NULL, *oi = NULL;
                for (size_t i = u; i < v; i++) {
                    if (it[i].ax[QB_AXIS_PRECISION] == ref && !ri) ri = &it[i];
                    if (it[i].ax[QB_AXIS_PRECISION] == p && !oi) oi = &it[i];
                }
                if (!oi) continue;
                seen = 1;
                if (!ri) continue;
                const qb_task_row *rr = &r->rows[ri->row], *orow = &r->rows[oi->row];
                if (detection) {
                    if (ri->status != QB_STATUS_OK || oi->status != QB_STATUS_OK ||
                        !is_yes_no(rr->detected) || !is_yes_no(orow->detected))
                        continue;
                    int ry = rr->detected == QB_DETECTED_YES;
                    int oy = orow->detected == QB_DETECTED_YES;
                    pd.n++;
                    if (ry && oy) pd.a++;
                    else if (ry) pd.b++;
                    else if (oy) pd.c++;
                    else pd.d++;
                } else {
                    /* a unit counts from its ok or invalid row (make_units) */
                    if (status_rank(ri->status) > 1 || status_rank(oi->status) > 1) continue;
                    if (!isnan(rr->ca_mitig) && !isnan(orow->ca_mitig)) {
                        x[nca] = rr->ca_mitig;
                        y[nca++] = orow->ca_mitig;
                    }
                    if (!isnan(rr->asr_mitig) && !isnan(orow->asr_mitig)) {
                        x2[nasr] = rr->asr_mitig;
                        y2[nasr++] = orow->asr_mitig;
                    }
                }
            }
            if (!seen) continue; /* precision p absent from this group */
            uint32_t gk[QB_AXIS_COUNT];
            memcpy(gk, it[s].gk, sizeof gk);
            gk[QB_AXIS_PRECISION] = p;
            qb_report_key key = make_key(r, gk);
            if (detection) {
                pd.key = key;
                pd.ref = r->values[QB_AXIS_PRECISION][ref];
                pd.kind = QB_PAIR_DETECTION;
                pd.ref_rate = pd.n ? (double)(pd.a + pd.b) / (double)pd.n : NAN;
                pd.other_rate = pd.n ? (double)(pd.a + pd.c) / (double)pd.n : NAN;
                pd.p = pd.n ? qb_stats_mcnemar_exact(pd.b, pd.c) : NAN;
                qb_stats_paired_t(NULL, NULL, 0, QB_REPORT_LEVEL, &pd.t);
                push((void **)&r->pairs, &r->n_pairs, cap, sizeof pd, &pd);
            } else {
                memset(&pc, 0, sizeof pc);
                pc.key = key;
                pc.ref = r->values[QB_AXIS_PRECISION][ref];
                pc.ref_rate = pc.other_rate = NAN;
                pa = pc;
                pc.kind = QB_PAIR_CA;
                pc.n = nca;
                qb_stats_paired_t(x, y, nca, QB_REPORT_LEVEL, &pc.t);
                pc.p = pc.t.p;
                pa.kind = QB_PAIR_ASR;
                pa.n = nasr;
                qb_stats_paired_t(x2, y2, nasr, QB_REPORT_LEVEL, &pa.t);
                pa.p = pa.t.p;
                push((void **)&r->pairs, &r->n_pairs, cap, sizeof pc, &pc);
                if (nasr) push((void **)&r->pairs, &r->n_pairs, cap, sizeof pa, &pa);
            }
        }
    }
    free(x);
    free(y);
    free(x2);
    free(y2);
}

/* ---- CA / ASR ----------------------------------------------------------- */

static void summarise(const qb_report *r, const char *metric, const qb_report_key *key,
                      const double *v, size_t n, uint64_t seed, qb_report_summary *out)
{
    char tag[256];
    snprintf(tag, sizeof tag, "report-bootstrap/%s/%s/%s/%s/%s/%s", key->v[0], key->v[1],
             key->v[2], key->v[3], key->v[4], metric);
    out->n = n;
    qb_stats_mean_std(v, n, &out->mean, &out->std);
    qb_stats_bootstrap_mean(v, n, r->boot_resamples, qb_seed_derive(seed, tag), QB_REPORT_LEVEL,
                            &out->lo, &out->hi);
}

/* units: one item per deployed model (defense pooled, gk set by `by`). */
static void perf_groups(qb_report *r, item *un, size_t n, uint64_t seed)
{
    size_t cap = 0;
    double *ca = xmalloc(n ? n : 1, sizeof *ca), *asr = xmalloc(n ? n : 1, sizeof *asr); /* (n) */
    qsort(un, n, sizeof *un, cmp_item);
    for (size_t s = 0, e; s < n; s = e) {
        e = group_end(un, s, n);
        qb_report_perf g = {.key = make_key(r, un[s].gk), .n_units = e - s};
        size_t nca = 0, nasr = 0;
        for (size_t i = s; i < e; i++) {
            const qb_task_row *row = &r->rows[un[i].row];
            if (un[i].status == QB_STATUS_FAILED) { g.n_failed++; continue; }
            if (un[i].status != QB_STATUS_OK && un[i].status != QB_STATUS_INVALID) {
                g.n_pending++;
                continue;
            }
            g.n_invalid += un[i].status == QB_STATUS_INVALID;
            if (!isnan(row->ca_mitig)) ca[nca++] = row->ca_mitig;
            if (!isnan(row->asr_mitig)) asr[nasr++] = row->asr_mitig;
        }
        summarise(r, "ca", &g.key, ca, nca, seed, &g.ca);
        summarise(r, "asr", &g.key, asr, nasr, seed, &g.asr);
        push((void **)&r->perf, &r->n_perf, &cap, sizeof g, &g);
    }
    free(ca);
    free(asr);
}

/* Deployed-model units from all rows: the best row (ok, else invalid,
 * else failed, else pending; then file order) of each (dataset, seed,
 * trigger, precision, mitigation). */
static size_t make_units(const item *all, size_t n, item *un)
{
    item *tmp = xmalloc(n ? n : 1, sizeof *tmp); /* (n) */
    memcpy(tmp, all, n * sizeof *tmp);
    for (size_t i = 0; i < n; i++) {
        for (int a = 0; a < QB_AXIS_COUNT; a++) tmp[i].gk[a] = 0;
        tmp[i].ax[QB_AXIS_DEFENSE] = 0;
    }
    qsort(tmp, n, sizeof *tmp, cmp_item);
    size_t m = 0;
    for (size_t s = 0, e; s < n; s = e) {
        size_t best = s;
        for (e = s + 1; e < n && same_unit(&tmp[s], &tmp[e]) &&
                        tmp[e].ax[QB_AXIS_PRECISION] == tmp[s].ax[QB_AXIS_PRECISION]; e++)
            if (status_rank(tmp[e].status) < status_rank(tmp[best].status)) best = e;
        un[m++] = tmp[best];
    }
    free(tmp);
    return m;
}

/* ---- build -------------------------------------------------------------- */

int qb_report_build(const qb_task_row *rows, size_t n_rows, const qb_report_options *opt,
                    qb_report *out, qb_error *err)
{
    memset(out, 0, sizeof *out);
    if (!opt->by || (opt->by & ~QB_REPORT_BY_ALL))
        return QB_FAIL(err, "report: invalid grouping axes (mask %#x)", opt->by);
    qb_report *r = out;
    r->rows = rows;
    r->n_rows = n_rows;
    r->by = opt->by;
    r->boot_resamples = opt->boot_resamples;
    size_t cap[QB_AXIS_COUNT] = {0};
    item *all = xmalloc(n_rows ? n_rows : 1, sizeof *all); /* (n_rows) */
    size_t pcap = 0;
    for (size_t i = 0; i < n_rows; i++) {
        item *t = &all[i];
        memset(t, 0, sizeof *t);
        for (int a = 0; a < QB_AXIS_COUNT; a++)
            t->ax[a] = value_index(r, a, row_axis(&rows[i], a), cap);
        t->seed = rows[i].seed;
        t->row = i;
        t->status = rows[i].status;
        int32_t st = rows[i].status;
        r->status_counts[st >= 0 && st < QB_STATUS_COUNT ? st : QB_STATUS_PENDING]++;
        if (st != QB_STATUS_OK) push((void **)&r->problems, &r->n_problems, &pcap, sizeof i, &i);
    }
    uint32_t clean_idx = POOLED, none_idx = POOLED, ref = POOLED;
    for (size_t v = 0; v < r->n_values[QB_AXIS_TRIGGER]; v++)
        if (!strcmp(r->values[QB_AXIS_TRIGGER][v], "clean")) clean_idx = (uint32_t)v;
    for (size_t v = 0; v < r->n_values[QB_AXIS_DEFENSE]; v++)
        if (!strcmp(r->values[QB_AXIS_DEFENSE][v], "none")) none_idx = (uint32_t)v;
    for (size_t v = 0; v < r->n_values[QB_AXIS_PRECISION]; v++)
        if (!strcmp(r->values[QB_AXIS_PRECISION][v], "fp32")) ref = (uint32_t)v;
    if (ref == POOLED && r->n_values[QB_AXIS_PRECISION]) ref = 0;
    r->ref_precision = ref == POOLED ? NULL : r->values[QB_AXIS_PRECISION][ref];

    /* 1. detection: rows with a defense */
    item *it = xmalloc(n_rows ? n_rows : 1, sizeof *it); /* (n_rows) */
    size_t nd = 0;
    for (size_t i = 0; i < n_rows; i++) {
        if (all[i].ax[QB_AXIS_DEFENSE] == none_idx) continue;
        it[nd] = all[i];
        for (int a = 0; a < QB_AXIS_COUNT; a++)
            it[nd].gk[a] = (opt->by >> a) & 1u ? it[nd].ax[a] : POOLED;
        if (!((opt->by >> QB_AXIS_TRIGGER) & 1u))
            it[nd].gk[QB_AXIS_TRIGGER] =
                it[nd].ax[QB_AXIS_TRIGGER] == clean_idx ? clean_idx : BACKDOORED;
        nd++;
    }
    detection_groups(r, it, nd, clean_idx);

    size_t paircap = 0;
    /* 3a. detection pairs: the same items, precision pooled */
    if (ref != POOLED) {
        for (size_t i = 0; i < nd; i++) it[i].gk[QB_AXIS_PRECISION] = POOLED;
        qsort(it, nd, sizeof *it, cmp_item_pairing);
        pair_groups(r, it, nd, ref, 1, &paircap);
    }

    /* 2. CA/ASR over deployed-model units */
    size_t nu = make_units(all, n_rows, it);
    for (size_t i = 0; i < nu; i++)
        for (int a = 0; a < QB_AXIS_COUNT; a++)
            it[i].gk[a] = a != QB_AXIS_DEFENSE && ((opt->by >> a) & 1u) ? it[i].ax[a] : POOLED;
    perf_groups(r, it, nu, opt->boot_seed);

    /* 3b. CA/ASR pairs */
    if (ref != POOLED) {
        for (size_t i = 0; i < nu; i++) it[i].gk[QB_AXIS_PRECISION] = POOLED;
        qsort(it, nu, sizeof *it, cmp_item_pairing);
        pair_groups(r, it, nu, ref, 0, &paircap);
    }
    free(it);
    free(all);
    return 0;
}

void qb_report_free(qb_report *r)
{
    if (!r) return;
    for (int a = 0; a < QB_AXIS_COUNT; a++) free(r->values[a]);
    free(r->problems);
    free(r->det);
    free(r->perf);
    free(r->pairs);
    memset(r, 0, sizeof *r);
}
