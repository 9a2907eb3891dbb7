/* Figures (SVG) of `qblind report` (report/svg.h). */
#include "report/svg.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/file.h"
#include "core/xalloc.h"
#include "report/escape.h"
#include "report/precision_order.h"

/* Estimated text width of n characters at font size px (sans-serif). */
#define TEXT_W(n, px) (0.6 * (double)(n) * (px))

/* Okabe-Ito, then a few more: series colors. */
static const char *const palette[] = {"#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00",
                                      "#56B4E9", "#000000", "#8C564B", "#7F7F7F", "#BCBD22"};
#define N_PALETTE (sizeof palette / sizeof palette[0])

/* ---- a growable string ------------------------------------------------- */

typedef struct sbuf {
    char *s;
    size_t len, cap;
} sbuf;

static void sb_printf(sbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_printf(sbuf *b, const char *fmt, ...)
{
    for (;;) {
        size_t room = b->cap - b->len;
        va_list ap;
        va_start(ap, fmt);
        int n = vsnprintf(b->s ? b->s + b->len : NULL, b->s ? room : 0, fmt, ap);
        va_end(ap);
        if (n < 0) return;
        if (b->s && (size_t)n < room) {
            b->len += (size_t)n;
            return;
        }
        size_t need = b->len + (size_t)n + 1;
        b->cap = b->cap ? b->cap : 4096;
        while (b->cap < need) b->cap *= 2;
        b->s = xrealloc(b->s, b->cap, 1);
    }
}

/* XML escaping of text and attribute values (report/escape.h). */
static void sb_esc(sbuf *b, const char *s)
{
    for (; *s; s++) {
        const char *e = qb_html_entity(*s);
        if (e) sb_printf(b, "%s", e);
        else sb_printf(b, "%c", *s);
    }
}

/* <text> at (x, y); anchor start/middle/end; extra attributes may be "". */
static void sb_text(sbuf *b, double x, double y, double px, const char *anchor, const char *extra,
                    const char *s)
{
    sb_printf(b, "<text x=\"%.1f\" y=\"%.1f\" font-size=\"%.0f\" text-anchor=\"%s\"%s%s>", x, y,
              px, anchor, extra[0] ? " " : "", extra);
    sb_esc(b, s);
    sb_printf(b, "</text>\n");
}

static void svg_open(sbuf *b, double w, double h, const char *title)
{
    sb_printf(b, "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %.0f %.0f\" "
              "width=\"%.0f\" height=\"%.0f\" font-family=\"%s\">\n", w, h, w, h, QB_REPORT_FONT);
    sb_printf(b, "<title>");
    sb_esc(b, title);
    sb_printf(b, "</title>\n<rect x=\"0\" y=\"0\" width=\"%.0f\" height=\"%.0f\" fill=\"#ffffff\"/>\n",
              w, h);
    sb_text(b, w / 2, 28, 18, "middle", "font-weight=\"bold\"", title);
}

static size_t utf8_len(const char *s)
{
    size_t w = 0;
    for (; *s; s++) w += ((unsigned char)*s & 0xC0) != 0x80;
    return w;
}

/* The width a figure needs for its title (bold 18 px) and subtitle (13 px). */
static double head_w(const char *title, const char *subtitle)
{
    double a = 1.1 * TEXT_W(utf8_len(title), 18), b = TEXT_W(utf8_len(subtitle), 13);
    return (a > b ? a : b) + 40;
}

/* ---- distinct strings, precisions in axis order ---------------------------- */

/* Distinct strings, first-seen order. */
typedef struct strset {
    const char **v;
    size_t n, cap;
} strset;

static size_t set_add(strset *s, const char *x)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->v[i], x)) return i;
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 8;
        s->v = xrealloc(s->v, s->cap, sizeof *s->v);
    }
    s->v[s->n] = x;
    return s->n++;
}

static long set_find(const strset *s, const char *x)
{
    for (size_t i = 0; i < s->n; i++)
        if (!strcmp(s->v[i], x)) return (long)i;
    return -1;
}

static void set_free(strset *s)
{
    free(s->v);
    memset(s, 0, sizeof *s);
}

/* Precisions in bit-width order; unplaceable ones go to *skipped when
 * skipped is not NULL (else kept at the end). */
static void prec_sort(strset *s, strset *skipped)
{
    size_t m = 0;
    for (size_t i = 0; i < s->n; i++) {
        if (skipped && strcmp(s->v[i], "*") && qb_report_precision_bits(s->v[i]) < 0) set_add(skipped, s->v[i]);
        else s->v[m++] = s->v[i];
    }
    s->n = m;
    for (size_t i = 1; i < s->n; i++) /* insertion sort: few values */
        for (size_t j = i; j > 0 && qb_report_precision_cmp(s->v[j - 1], s->v[j]) > 0; j--) {
            const char *t = s->v[j];
            s->v[j] = s->v[j - 1];
            s->v[j - 1] = t;
        }
}

/* A label from the axes in `mask` (bits of qb_report_axis) of key, in the
 * order defense, trigger, mitigation, dataset, precision; "*" where none. */
static const int label_order[QB_AXIS_COUNT] = {QB_AXIS_DEFENSE, QB_AXIS_TRIGGER,
                                               QB_AXIS_MITIGATION, QB_AXIS_DATASET,
                                               QB_AXIS_PRECISION};

static void key_label(char *buf, size_t n, const qb_report_key *k, unsigned mask)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < QB_AXIS_COUNT; i++) {
        int a = label_order[i];
        if (!((mask >> a) & 1u) || len >= n) continue;
        len += (size_t)snprintf(buf + len, n - len, "%s%s", len ? " · " : "", k->v[a]);
    }
    if (!len) snprintf(buf, n, "all");
}

/* The names of the axes in mask, in label order: "trigger · dataset". */
static void mask_title(char *buf, size_t n, unsigned mask)
{
    size_t len = 0;
    buf[0] = '\0';
    for (int i = 0; i < QB_AXIS_COUNT; i++) {
        int a = label_order[i];
        if (!((mask >> a) & 1u) || len >= n) continue;
        len += (size_t)snprintf(buf + len, n - len, "%s%s", len ? " · " : "",
                                qb_report_axis_name((qb_report_axis)a));
    }
}

/* Axes (mask) whose value differs among keys[0..n) (stride bytes apart). */
static unsigned varying(const qb_report_key *keys, size_t stride, size_t n)
{
    unsigned m = 0;
    const qb_report_key *k0 = keys;
    for (size_t i = 1; i < n; i++) {
        const qb_report_key *ki = (const qb_report_key *)(const void *)((const char *)keys + i * stride);
        for (int a = 0; a < QB_AXIS_COUNT; a++)
            if (strcmp(k0->v[a], ki->v[a])) m |= 1u << a;
    }
    return m;
}

/* ---- 1. detection heatmap ---------------------------------------------- */

/* Sequential blue scale, t in [0, 1]. */
static void heat_color(double t, char out[8], int *dark)
{
    static const double stops[5][3] = {
        {247, 251, 255}, {198, 219, 239}, {107, 174, 214}, {33, 113, 181}, {8, 48, 107}};
    if (t < 0) t = 0;
    if (t > 1) t = 1;
    double x = t * 4;
    int i = (int)x;
    if (i > 3) i = 3;
    double f = x - i;
    int c[3];
    for (int j = 0; j < 3; j++) c[j] = (int)lround(stops[i][j] + f * (stops[i + 1][j] - stops[i][j]));
    snprintf(out, 8, "#%02x%02x%02x", c[0] & 255, c[1] & 255, c[2] & 255);
    *dark = t > 0.5;
}

typedef struct heat {
    strset rows;              /* row labels (owned strings) */
    strset cols;              /* precisions */
    const qb_report_detection **cell; /* (rows, cols) */
    char title[128];          /* the axes of the row labels */
} heat;

static void heat_build(const qb_report *r, int clean, heat *h)
{
    memset(h, 0, sizeof *h);
    size_t m = 0;
    qb_report_key *keys = xmalloc(r->n_det ? r->n_det : 1, sizeof *keys);
    for (size_t i = 0; i < r->n_det; i++)
        if (r->det[i].clean == clean) keys[m++] = r->det[i].key;
    unsigned mask = varying(keys, sizeof *keys, m) | (1u << QB_AXIS_DEFENSE);
    mask &= ~(1u << QB_AXIS_PRECISION);
    if (clean) mask &= ~(1u << QB_AXIS_TRIGGER);
    free(keys);
    mask_title(h->title, sizeof h->title, mask);
    char lab[256];
    for (size_t i = 0; i < r->n_det; i++) {
        if (r->det[i].clean != clean) continue;
        key_label(lab, sizeof lab, &r->det[i].key, mask);
        if (set_find(&h->rows, lab) < 0) set_add(&h->rows, xstrdup(lab));
        set_add(&h->cols, r->det[i].key.v[QB_AXIS_PRECISION]);
    }
    prec_sort(&h->cols, NULL);
    h->cell = xcalloc(h->rows.n * h->cols.n + 1, sizeof *h->cell);
    for (size_t i = 0; i < r->n_det; i++) {
        if (r->det[i].clean != clean) continue;
        key_label(lab, sizeof lab, &r->det[i].key, mask);
        long ri = set_find(&h->rows, lab), ci = set_find(&h->cols, r->det[i].key.v[QB_AXIS_PRECISION]);
        h->cell[(size_t)ri * h->cols.n + (size_t)ci] = &r->det[i];
    }
}

static void heat_free(heat *h)
{
    for (size_t i = 0; i < h->rows.n; i++) free((char *)h->rows.v[i]);
    set_free(&h->rows);
    set_free(&h->cols);
    free(h->cell);
}

#define CELL_W 96.0
#define CELL_H 48.0

static double heat_label_w(const heat *h)
{
    double w = 0;
    for (size_t i = 0; i < h->rows.n; i++) {
        double x = TEXT_W(utf8_len(h->rows.v[i]), 13);
        if (x > w) w = x;
    }
    double t = 1.1 * TEXT_W(utf8_len(h->title), 13);
    return (t > w ? t : w) + 14;
}

/* One heatmap panel with its top-left corner (of the cells) at (x0, y0). */
static void heat_draw(sbuf *b, const heat *h, double x0, double y0, const char *subtitle,
                      const char *row_title)
{
    sb_text(b, x0 - 8, y0 - 10, 13, "end", "font-weight=\"bold\"", row_title);
    double wcells = CELL_W * (double)h->cols.n;
    sb_text(b, x0 + wcells / 2, y0 - 40, 15, "middle", "font-weight=\"bold\"", subtitle);
    for (size_t c = 0; c < h->cols.n; c++)
        sb_text(b, x0 + CELL_W * ((double)c + 0.5), y0 - 10, 13, "middle", "", h->cols.v[c]);
    for (size_t rr = 0; rr < h->rows.n; rr++) {
        double y = y0 + CELL_H * (double)rr;
        sb_text(b, x0 - 8, y + CELL_H / 2 + 4.5, 13, "end", "", h->rows.v[rr]);
        for (size_t c = 0; c < h->cols.n; c++) {
            double x = x0 + CELL_W * (double)c;
            const qb_report_detection *g = h->cell[rr * h->cols.n + c];
            char col[8] = "#eeeeee", lab[64], sub[64];
            int dark = 0;
            if (g && g->n) {
                heat_color(g->rate, col, &dark);
                snprintf(lab, sizeof lab, "%zu/%zu", g->k, g->n);
                snprintf(sub, sizeof sub, "%.0f%%", 100.0 * g->rate);
            } else {
                snprintf(lab, sizeof lab, "%s", g ? "0/0" : "—");
                snprintf(sub, sizeof sub, "%s", g ? "no decision" : "no rows");
            }
            sb_printf(b, "<rect class=\"cell\" x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" "
                      "fill=\"%s\" stroke=\"#ffffff\" stroke-width=\"2\"/>\n", x, y, CELL_W, CELL_H,
                      col);
            const char *fill = dark ? "fill=\"#ffffff\"" : "fill=\"#111111\"";
            char extra[64];
            snprintf(extra, sizeof extra, "%s font-weight=\"bold\"", fill);
            sb_text(b, x + CELL_W / 2, y + 21, 15, "middle", extra, lab);
            sb_text(b, x + CELL_W / 2, y + 38, 12, "middle", fill, sub);
        }
    }
}

static char *svg_heatmap(const qb_report *r)
{
    heat hb, hc;
    heat_build(r, 0, &hb);
    heat_build(r, 1, &hc);
    if (!hb.rows.n && !hc.rows.n) {
        heat_free(&hb);
        heat_free(&hc);
        return NULL;
    }
    double lw1 = hb.rows.n ? heat_label_w(&hb) : 0, lw2 = hc.rows.n ? heat_label_w(&hc) : 0;
    double w1 = hb.rows.n ? lw1 + CELL_W * (double)hb.cols.n : 0;
    double w2 = hc.rows.n ? lw2 + CELL_W * (double)hc.cols.n : 0;
    double gap = (w1 > 0 && w2 > 0) ? 40 : 0;
    double legend_w = 90;
    double top = 124;
    size_t nrows = hb.rows.n > hc.rows.n ? hb.rows.n : hc.rows.n;
    double W = 30 + w1 + gap + w2 + legend_w + 20;
    double H = top + CELL_H * (double)nrows + 70;
    if (H < top + 220) H = top + 220;
    const char *title = "Detection rate by defense and precision",
               *sub = "cells: detected/decided (k/n) and rate; 95% Wilson intervals in the tables";
    W = fmax(W, head_w(title, sub));
    sbuf b = {NULL, 0, 0};
    svg_open(&b, W, H, title);
    sb_text(&b, W / 2, 50, 13, "middle", "fill=\"#444444\"", sub);
    double x = 30;
    if (hb.rows.n) {
        heat_draw(&b, &hb, x + lw1, top, "Backdoored models: detection rate", hb.title);
        x += w1 + gap;
    }
    if (hc.rows.n) heat_draw(&b, &hc, x + lw2, top, "Clean models: false-positive rate", hc.title);
    double yb = top + CELL_H * (double)nrows + 36;
    sb_text(&b, 30 + (w1 + gap + w2) / 2, yb, 14, "middle", "", "precision (columns)");
    /* color legend */
    double lx = W - legend_w + 4, ly = top, lh = 160;
    sb_printf(&b, "<defs><linearGradient id=\"qbheat\" x1=\"0\" y1=\"1\" x2=\"0\" y2=\"0\">\n");
    for (int i = 0; i <= 4; i++) {
        char col[8];
        int dark;
        heat_color(i / 4.0, col, &dark);
        sb_printf(&b, "<stop offset=\"%d%%\" stop-color=\"%s\"/>\n", 25 * i, col);
    }
    sb_printf(&b, "</linearGradient></defs>\n");
    sb_text(&b, lx, ly - 12, 13, "start", "", "rate");
    sb_printf(&b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"18\" height=\"%.1f\" fill=\"url(#qbheat)\" "
              "stroke=\"#888888\"/>\n", lx, ly, lh);
    for (int i = 0; i <= 4; i++) {
        char t[16];
        snprintf(t, sizeof t, "%d%%", 25 * i);
        sb_text(&b, lx + 24, ly + lh - lh * i / 4.0 + 4, 12, "start", "", t);
    }
    sb_printf(&b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"18\" height=\"14\" fill=\"#eeeeee\" "
              "stroke=\"#888888\"/>\n", lx, ly + lh + 14);
    sb_text(&b, lx + 24, ly + lh + 26, 12, "start", "", "none");
    sb_printf(&b, "</svg>\n");
    heat_free(&hb);
    heat_free(&hc);
    return b.s;
}

/* ---- shared: axes and series ------------------------------------------- */

typedef struct series {
    strset names;                 /* labels (owned) */
} series;

static void series_free(series *s)
{
    for (size_t i = 0; i < s->names.n; i++) free((char *)s->names.v[i]);
    set_free(&s->names);
}

static size_t series_add(series *s, const char *lab)
{
    long i = set_find(&s->names, lab);
    return i >= 0 ? (size_t)i : set_add(&s->names, xstrdup(lab));
}

/* A vertical 0-100 % axis with grid at (x0, y0) (top) of height h, width w. */
static void y_axis_pct(sbuf *b, double x0, double y0, double w, double h, const char *label)
{
    for (int i = 0; i <= 5; i++) {
        double y = y0 + h - h * i / 5.0;
        char t[16];
        snprintf(t, sizeof t, "%d", 20 * i);
        sb_printf(&*b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\"/>\n",
                  x0, y, x0 + w, y, i ? "#e0e0e0" : "#444444");
        sb_text(b, x0 - 6, y + 4, 12, "end", "", t);
    }
    sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#444444\"/>\n", x0,
              y0, x0, y0 + h);
    char tr[96];
    snprintf(tr, sizeof tr, "transform=\"rotate(-90 %.1f %.1f)\"", x0 - 40, y0 + h / 2);
    sb_text(b, x0 - 40, y0 + h / 2, 14, "middle", tr, label);
}

/* Legend entries in rows of at most `per_row`, from (x, y). */
static double legend(sbuf *b, const series *s, const char *title, double x, double y, double W)
{
    double cx = x, cy = y;
    if (title[0]) {
        char t[128];
        snprintf(t, sizeof t, "%s:", title);
        sb_text(b, cx, cy, 13, "start", "font-weight=\"bold\"", t);
        cx += TEXT_W(utf8_len(t), 13) + 14;
    }
    for (size_t i = 0; i < s->names.n; i++) {
        double w = 30 + TEXT_W(utf8_len(s->names.v[i]), 13) + 18;
        if (cx + w > W - 10 && cx > x) {
            cx = x;
            cy += 22;
        }
        const char *col = palette[i % N_PALETTE];
        sb_printf(b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"%s\" "
                  "stroke-width=\"2.5\"/>\n<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4.5\" fill=\"%s\"/>\n",
                  cx, cy - 4, cx + 24, cy - 4, col, cx + 12, cy - 4, col);
        sb_text(b, cx + 30, cy, 13, "start", "", s->names.v[i]);
        cx += w;
    }
    return cy;
}

/* ---- 2. CA and ASR versus bit width ------------------------------------- */

static char *svg_bitwidth(const qb_report *r)
{
    if (!r->n_perf) return NULL;
    /* mitigation "none" only, when there are several and it is one */
    int only_none = 0;
    {
        strset mit = {NULL, 0, 0};
        for (size_t i = 0; i < r->n_perf; i++) set_add(&mit, r->perf[i].key.v[QB_AXIS_MITIGATION]);
        only_none = mit.n > 1 && set_find(&mit, "none") >= 0;
        set_free(&mit);
    }
    size_t m = 0;
    const qb_report_perf **g = xmalloc(r->n_perf, sizeof *g);
    qb_report_key *keys = xmalloc(r->n_perf, sizeof *keys);
    strset cats = {NULL, 0, 0}, skipped = {NULL, 0, 0};
    for (size_t i = 0; i < r->n_perf; i++) {
        if (only_none && strcmp(r->perf[i].key.v[QB_AXIS_MITIGATION], "none")) continue;
        if (!r->perf[i].ca.n && !r->perf[i].asr.n) continue;
        g[m] = &r->perf[i];
        keys[m++] = r->perf[i].key;
        set_add(&cats, r->perf[i].key.v[QB_AXIS_PRECISION]);
    }
    prec_sort(&cats, &skipped);
    unsigned mask = varying(keys, sizeof *keys, m) & ~(1u << QB_AXIS_PRECISION);
    if (!(mask & (1u << QB_AXIS_TRIGGER))) mask |= 1u << QB_AXIS_TRIGGER;
    free(keys);
    if (!m || !cats.n) {
        free(g);
        set_free(&cats);
        set_free(&skipped);
        return NULL;
    }
    series s = {{NULL, 0, 0}};
    size_t *sid = xmalloc(m, sizeof *sid);
    char lab[256];
    for (size_t i = 0; i < m; i++) {
        key_label(lab, sizeof lab, &g[i]->key, mask);
        sid[i] = series_add(&s, lab);
    }
    double pw = 40.0 + 80.0 * (double)cats.n, ph = 300, left = 80, top = 90, gap = 90;
    if (pw < 300) pw = 300;
    double W = left + 2 * pw + gap + 30;
    sbuf b = {NULL, 0, 0};
    /* legend height estimate: lay it out once off-screen */
    sbuf tmp = {NULL, 0, 0};
    char ltitle[128];
    mask_title(ltitle, sizeof ltitle, mask);
    double ly_end = legend(&tmp, &s, ltitle, 30, 0, W);
    free(tmp.s);
    double H = top + ph + 80 + ly_end + 30 + (skipped.n ? 22 : 0);
    const char *title = "CA and ASR of the deployed model versus bit width",
               *sub = only_none ? "mean over seeds with bootstrap 95% interval; precision on a "
                                  "categorical axis; mitigation none only"
                                : "mean over seeds with bootstrap 95% interval; precision on a "
                                  "categorical axis";
    W = fmax(W, head_w(title, sub));
    svg_open(&b, W, H, title);
    sb_text(&b, W / 2, 50, 13, "middle", "fill=\"#444444\"", sub);
    const char *panel_name[2] = {"Clean accuracy (CA)", "Attack success rate (ASR)"};
    for (int p = 0; p < 2; p++) {
        double x0 = left + (double)p * (pw + gap), y0 = top;
        sb_text(&b, x0 + pw / 2, y0 - 12, 15, "middle", "font-weight=\"bold\"", panel_name[p]);
        y_axis_pct(&b, x0, y0, pw, ph, p ? "ASR (%)" : "CA (%)");
        double step = pw / (double)cats.n;
        for (size_t c = 0; c < cats.n; c++) {
            double x = x0 + step * ((double)c + 0.5);
            sb_text(&b, x, y0 + ph + 18, 13, "middle", "", cats.v[c]);
            int bits = qb_report_precision_bits(cats.v[c]);
            char t[32];
            if (bits > 0) snprintf(t, sizeof t, "%d bit", bits);
            else snprintf(t, sizeof t, "pooled");
            sb_text(&b, x, y0 + ph + 34, 11, "middle", "fill=\"#555555\"", t);
        }
        sb_text(&b, x0 + pw / 2, y0 + ph + 56, 14, "middle", "", "precision (bit width)");
        double dodge = s.names.n > 1 ? fmin(8.0, step * 0.5 / (double)s.names.n) : 0;
        for (size_t k = 0; k < s.names.n; k++) {
            const char *col = palette[k % N_PALETTE];
            double xoff = dodge * ((double)k - ((double)s.names.n - 1) / 2);
            /* points in category order */
            double px[64], py[64];
            size_t np = 0;
            for (size_t c = 0; c < cats.n && c < 64; c++) {
                for (size_t i = 0; i < m; i++) {
                    if (sid[i] != k || strcmp(g[i]->key.v[QB_AXIS_PRECISION], cats.v[c])) continue;
                    const qb_report_summary *sm = p ? &g[i]->asr : &g[i]->ca;
                    if (!sm->n || isnan(sm->mean)) continue;
                    double x = x0 + step * ((double)c + 0.5) + xoff;
                    double y = y0 + ph - ph * sm->mean;
                    if (!isnan(sm->lo) && !isnan(sm->hi)) {
                        double ylo = y0 + ph - ph * sm->lo, yhi = y0 + ph - ph * sm->hi;
                        sb_printf(&b, "<path class=\"errbar\" d=\"M%.1f %.1fV%.1fM%.1f %.1fH%.1fM%.1f "
                                  "%.1fH%.1f\" stroke=\"%s\" stroke-width=\"1.5\" fill=\"none\"/>\n",
                                  x, ylo, yhi, x - 4, ylo, x + 4, x - 4, yhi, x + 4, col);
                    }
                    px[np] = x;
                    py[np++] = y;
                }
            }
            if (np > 1) {
                sb_printf(&b, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"2\" points=\"", col);
                for (size_t i = 0; i < np; i++) sb_printf(&b, "%s%.1f,%.1f", i ? " " : "", px[i], py[i]);
                sb_printf(&b, "\"/>\n");
            }
            for (size_t i = 0; i < np; i++)
                sb_printf(&b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"/>\n", px[i], py[i],
                          col);
        }
    }
    double yl = top + ph + 90;
    legend(&b, &s, ltitle, 30, yl, W);
    if (skipped.n) {
        char note[512];
        size_t len = (size_t)snprintf(note, sizeof note, "not placed (no bit width in the name):");
        for (size_t i = 0; i < skipped.n && len < sizeof note; i++)
            len += (size_t)snprintf(note + len, sizeof note - len, " %s", skipped.v[i]);
        sb_text(&b, 30, H - 12, 12, "start", "fill=\"#555555\"", note);
    }
    sb_printf(&b, "</svg>\n");
    series_free(&s);
    free(sid);
    free(g);
    set_free(&cats);
    set_free(&skipped);
    return b.s;
}

/* ---- 3. mitigation effect ---------------------------------------------- */

static char *svg_mitigation(const qb_report *r)
{
    strset mit = {NULL, 0, 0}, trig = {NULL, 0, 0};
    for (size_t i = 0; i < r->n_perf; i++) {
        if (!r->perf[i].asr.n) continue;
        set_add(&mit, r->perf[i].key.v[QB_AXIS_MITIGATION]);
        set_add(&trig, r->perf[i].key.v[QB_AXIS_TRIGGER]);
    }
    if (mit.n < 2) {
        set_free(&mit);
        set_free(&trig);
        return NULL;
    }
    /* series: the varying axes but trigger and mitigation (precision, dataset) */
    size_t m = 0;
    qb_report_key *keys = xmalloc(r->n_perf, sizeof *keys);
    for (size_t i = 0; i < r->n_perf; i++)
        if (r->perf[i].asr.n) keys[m++] = r->perf[i].key;
    unsigned mask = varying(keys, sizeof *keys, m);
    mask &= ~((1u << QB_AXIS_TRIGGER) | (1u << QB_AXIS_MITIGATION) | (1u << QB_AXIS_DEFENSE));
    mask |= 1u << QB_AXIS_PRECISION;
    free(keys);
    series s = {{NULL, 0, 0}};
    /* series in precision order */
    strset precs = {NULL, 0, 0};
    for (size_t i = 0; i < r->n_perf; i++)
        if (r->perf[i].asr.n) set_add(&precs, r->perf[i].key.v[QB_AXIS_PRECISION]);
    prec_sort(&precs, NULL);
    char lab[256];
    for (size_t pi = 0; pi < precs.n; pi++)
        for (size_t i = 0; i < r->n_perf; i++)
            if (r->perf[i].asr.n && !strcmp(r->perf[i].key.v[QB_AXIS_PRECISION], precs.v[pi])) {
                key_label(lab, sizeof lab, &r->perf[i].key, mask);
                series_add(&s, lab);
            }
    double lw = 0;
    for (size_t i = 0; i < mit.n; i++) lw = fmax(lw, TEXT_W(utf8_len(mit.v[i]), 13));
    double left = 30 + lw + 14, pw = 240, gap = 44, top = 100, rowh = 30;
    double ph = rowh * (double)mit.n;
    double W = left + (pw + gap) * (double)trig.n + 10;
    const char *title = "Mitigation effect: ASR after mitigation, per trigger",
               *sub = "mean over seeds with bootstrap 95% interval (deployed model, requantized)";
    W = fmax(W, head_w(title, sub));
    sbuf tmp = {NULL, 0, 0};
    char ltitle[128];
    mask_title(ltitle, sizeof ltitle, mask);
    double ly_end = legend(&tmp, &s, ltitle, 30, 0, W);
    free(tmp.s);
    double H = top + ph + 70 + ly_end + 30;
    sbuf b = {NULL, 0, 0};
    svg_open(&b, W, H, title);
    sb_text(&b, W / 2, 50, 13, "middle", "fill=\"#444444\"", sub);
    for (size_t mi = 0; mi < mit.n; mi++)
        sb_text(&b, left - 10, top + rowh * ((double)mi + 0.5) + 4.5, 13, "end", "", mit.v[mi]);
    sb_text(&b, 14, top - 10, 13, "start", "font-weight=\"bold\"", "mitigation");
    for (size_t t = 0; t < trig.n; t++) {
        double x0 = left + (pw + gap) * (double)t;
        char ptitle[96];
        snprintf(ptitle, sizeof ptitle, "trigger: %s", trig.v[t]);
        sb_text(&b, x0 + pw / 2, top - 12, 15, "middle", "font-weight=\"bold\"", ptitle);
        sb_printf(&b, "<rect x=\"%.1f\" y=\"%.1f\" width=\"%.1f\" height=\"%.1f\" fill=\"none\" "
                  "stroke=\"#444444\"/>\n", x0, (double)top, pw, ph);
        for (int i = 0; i <= 4; i++) {
            double x = x0 + pw * i / 4.0;
            char tk[16];
            snprintf(tk, sizeof tk, "%d", 25 * i);
            if (i > 0 && i < 4)
                sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" "
                          "stroke=\"#e0e0e0\"/>\n", x, (double)top, x, top + ph);
            sb_text(&b, x, top + ph + 16, 12, "middle", "", tk);
        }
        for (size_t mi = 1; mi < mit.n; mi++)
            sb_printf(&b, "<line x1=\"%.1f\" y1=\"%.1f\" x2=\"%.1f\" y2=\"%.1f\" stroke=\"#f0f0f0\"/>\n",
                      x0, top + rowh * (double)mi, x0 + pw, top + rowh * (double)mi);
        sb_text(&b, x0 + pw / 2, top + ph + 36, 14, "middle", "", "ASR after mitigation (%)");
        double dodge = s.names.n > 1 ? fmin(8.0, rowh * 0.6 / (double)s.names.n) : 0;
        for (size_t i = 0; i < r->n_perf; i++) {
            const qb_report_perf *g = &r->perf[i];
            if (!g->asr.n || strcmp(g->key.v[QB_AXIS_TRIGGER], trig.v[t]) || isnan(g->asr.mean))
                continue;
            long mi = set_find(&mit, g->key.v[QB_AXIS_MITIGATION]);
            key_label(lab, sizeof lab, &g->key, mask);
            size_t k = (size_t)set_find(&s.names, lab);
            const char *col = palette[k % N_PALETTE];
            double y = top + rowh * ((double)mi + 0.5) + dodge * ((double)k - ((double)s.names.n - 1) / 2);
            double x = x0 + pw * g->asr.mean;
            if (!isnan(g->asr.lo) && !isnan(g->asr.hi))
                sb_printf(&b, "<path class=\"errbar\" d=\"M%.1f %.1fH%.1fM%.1f %.1fV%.1fM%.1f %.1fV%.1f\" "
                          "stroke=\"%s\" stroke-width=\"1.5\" fill=\"none\"/>\n",
                          x0 + pw * g->asr.lo, y, x0 + pw * g->asr.hi, x0 + pw * g->asr.lo, y - 3,
                          y + 3, x0 + pw * g->asr.hi, y - 3, y + 3, col);
            sb_printf(&b, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"4\" fill=\"%s\"/>\n", x, y, col);
        }
    }
    legend(&b, &s, ltitle, 30, top + ph + 70, W);
    sb_printf(&b, "</svg>\n");
    series_free(&s);
    set_free(&precs);
    set_free(&mit);
    set_free(&trig);
    return b.s;
}

/* ---- public ------------------------------------------------------------- */

const char *qb_report_figure_name(qb_report_figure fig)
{
    static const char *const names[QB_FIG_COUNT] = {"detection_heatmap", "bitwidth", "mitigation"};
    return (unsigned)fig < QB_FIG_COUNT ? names[fig] : "?";
}

char *qb_report_svg(const qb_report *r, qb_report_figure fig)
{
    switch (fig) {
    case QB_FIG_HEATMAP: return svg_heatmap(r);
    case QB_FIG_BITWIDTH: return svg_bitwidth(r);
    case QB_FIG_MITIGATION: return svg_mitigation(r);
    default: return NULL;
    }
}

/* "DIR/<figure>.svg", malloc'd. */
static char *figure_path(const char *dir, qb_report_figure fig)
{
    size_t len = strlen(dir) + strlen(qb_report_figure_name(fig)) + 8;
    char *path = xmalloc(len, 1);
    snprintf(path, len, "%s/%s.svg", dir, qb_report_figure_name(fig));
    return path;
}

/* mkdir -p dir */
static int make_dirs(const char *dir, qb_error *err)
{
    char *d = xstrdup(dir);
    for (char *p = d + 1;; p++) {
        if (*p && *p != '/') continue;
        char c = *p;
        *p = '\0';
        if (mkdir(d, 0777) && errno != EEXIST) {
            QB_FAIL(err, "--plots: cannot create directory %s: %s", d, strerror(errno));
            free(d);
            return -1;
        }
        *p = c;
        if (!c) break;
    }
    free(d);
    return qb_file_check_dir(dir, "--plots:", err);
}

int qb_report_write_plots(const qb_report *r, const char *dir, const char *input,
                          qb_error *err)
{
    if (make_dirs(dir, err)) return -1;
    for (int fig = 0; fig < QB_FIG_COUNT; fig++) {
        char *path = figure_path(dir, (qb_report_figure)fig);
        int bad = qb_file_check_not_input(path, &input, 1, err);
        free(path);
        if (bad) return -1;
    }
    int written = 0;
    for (int fig = 0; fig < QB_FIG_COUNT; fig++) {
        char *svg = qb_report_svg(r, (qb_report_figure)fig);
        if (!svg) continue;
        char *path = figure_path(dir, (qb_report_figure)fig);
        qb_file_out out;
        int rc = qb_file_out_open(&out, path, err);
        if (rc == 0 && fputs(svg, out.f) < 0) {
            rc = QB_FAIL(err, "--plots: cannot write %s: %s", path, strerror(errno));
            qb_file_out_abort(&out);
        } else if (rc == 0) {
            rc = qb_file_out_commit(&out, err);
        }
        free(svg);
        free(path);
        if (rc) return -1;
        written++;
    }
    return written;
}
