/* The figures and the HTML page of `qblind report` (report/svg.h,
 * report/html.h) on a constructed report (hand-counted expectations):
 * - every SVG is well-formed XML (a small checker below: balanced tags,
 *   quoted attributes, no raw < or stray & in text) with a viewBox, a
 *   <title> and text;
 * - the heatmap has one cell per (defense, precision) for backdoored and
 *   for clean models, with the k/n labels counted by hand; none without
 *   defense rows;
 * - the bit-width figure orders fp32, int8, int4, has one error bar per
 *   value and names a precision it cannot place; qb_report_precision_bits
 *   (report/precision_order.h);
 * - the mitigation figure exists only with more than one mitigation;
 * - HTML escaping of a spec text with <, &, quotes and a </pre><script>;
 *   the page is well-formed, self-contained (no external reference) and
 *   holds the tables, the figures, the spec and the provenance. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "report/escape.h"
#include "report/html.h"
#include "report/precision_order.h"
#include "report/report.h"
#include "report/svg.h"
#include "store/results.h"

/* ---- a minimal XML well-formedness check -------------------------------- */

static int is_void_html(const char *name, size_t len)
{
    static const char *const v[] = {"meta", "br", "hr", "img", "link", "input"};
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++)
        if (strlen(v[i]) == len && !strncmp(v[i], name, len)) return 1;
    return 0;
}

/* & must start an entity: &name; or &#digits; */
static int amp_ok(const char *p)
{
    const char *q = p + 1;
    if (*q == '#') {
        q++;
        if (!isdigit((unsigned char)*q)) return 0;
        while (isdigit((unsigned char)*q)) q++;
    } else {
        if (!isalpha((unsigned char)*q)) return 0;
        while (isalnum((unsigned char)*q)) q++;
    }
    return *q == ';';
}

#define BAD(...) do { snprintf(msg, sizeof msg, __VA_ARGS__); return msg; } while (0)

/* Balanced tags, quoted attributes, escaped text, one root; html: void
 * elements, <!DOCTYPE>, raw <style>. NULL when well-formed, else what is
 * wrong and where (a static buffer). */
static const char *xml_problem(const char *s, int html)
{
    static char msg[256];
    const char *stack[256];
    size_t len[256], depth = 0;
    int roots = 0;
    const char *p = s;
    while (*p) {
        if (*p == '&') {
            if (!amp_ok(p)) BAD("bad & near: %.30s", p);
            p++;
            continue;
        }
        if (*p == '>') BAD("raw > in text near: %.40s", p);
        if (*p != '<') {
            p++;
            continue;
        }
        if (!strncmp(p, "<!--", 4)) {
            const char *e = strstr(p, "-->");
            if (!e) BAD("unterminated comment");
            p = e + 3;
            continue;
        }
        if (p[1] == '!' || p[1] == '?') {
            const char *e = strchr(p, '>');
            if (!e) BAD("unterminated declaration");
            p = e + 1;
            continue;
        }
        int closing = p[1] == '/';
        const char *n = p + 1 + closing;
        size_t nl = 0;
        while (isalnum((unsigned char)n[nl]) || n[nl] == ':' || n[nl] == '-') nl++;
        if (!nl) BAD("tag without a name near: %.40s", p);
        const char *q = n + nl;
        if (closing) {
            while (isspace((unsigned char)*q)) q++;
            if (*q != '>') BAD("bad closing tag near: %.40s", p);
            if (!depth) BAD("closing tag without an open one near: %.40s", p);
            depth--;
            if (len[depth] != nl || strncmp(stack[depth], n, nl))
                BAD("</%.*s> closes <%.*s>", (int)nl, n, (int)len[depth], stack[depth]);
            p = q + 1;
            continue;
        }
        int self = 0;
        for (;;) {
            while (isspace((unsigned char)*q)) q++;
            if (*q == '>') break;
            if (q[0] == '/' && q[1] == '>') {
                self = 1;
                q++;
                break;
            }
            size_t al = 0;
            while (isalnum((unsigned char)q[al]) || q[al] == '-' || q[al] == ':' || q[al] == '_') al++;
            if (!al) BAD("bad attribute near: %.40s", q);
            q += al;
            if (*q != '=' || q[1] != '"') BAD("unquoted attribute near: %.40s", q - al);
            q += 2;
            while (*q && *q != '"') {
                if (*q == '<') BAD("raw < in an attribute near: %.40s", q);
                if (*q == '&' && !amp_ok(q)) BAD("bad & near: %.30s", q);
                q++;
            }
            if (!*q) BAD("unterminated attribute value");
            q++;
        }
        if (!self && !(html && is_void_html(n, nl))) {
            if (depth == 256) BAD("nesting too deep");
            if (!depth) roots++;
            stack[depth] = n;
            len[depth++] = nl;
        } else if (!depth) {
            roots++;
        }
        p = q + 1;
        /* raw text elements of HTML: skip their content to the end tag */
        if (html && !self && ((nl == 5 && !strncmp(n, "style", 5)) || (nl == 6 && !strncmp(n, "script", 6)))) {
            const char *e = strstr(p, nl == 5 ? "</style>" : "</script>");
            if (!e) BAD("unterminated <%.*s>", (int)nl, n);
            p = e;
        }
    }
    if (depth) BAD("unclosed <%.*s>", (int)len[depth - 1], stack[depth - 1]);
    if (roots != 1) BAD("%d root elements", roots);
    return NULL;
}

static void assert_well_formed(const char *s, int html)
{
    const char *m = xml_problem(s, html);
    if (m) fail_msg("not well-formed: %s", m);
}

static size_t count(const char *s, const char *needle)
{
    size_t n = 0, l = strlen(needle);
    for (const char *p = strstr(s, needle); p; p = strstr(p + l, needle)) n++;
    return n;
}

/* ---- a constructed report ----------------------------------------------- */

/* Backdoored detections (k of 3 seeds) per defense x precision, and on
 * clean models (false positives). */
static const char *const precs[3] = {"fp32", "int8", "int4"};
static const size_t det_k[2][3] = {{3, 2, 1} /* nc */, {0, 0, 0} /* ac */};
static const size_t fp_k[2][3] = {{0, 0, 0} /* nc */, {0, 0, 1} /* ac */};

typedef struct rows {
    qb_task_row *v;
    size_t n;
} rows;

static void add(rows *r, const char *trigger, const char *prec, const char *mit, const char *def,
                int64_t seed, int32_t detected)
{
    qb_task_row *row = &r->v[r->n];
    qb_task_row_init(row);
    row->task_id = (uint64_t)r->n + 1;
    snprintf(row->dataset, sizeof row->dataset, "toy");
    snprintf(row->trigger, sizeof row->trigger, "%s", trigger);
    snprintf(row->precision, sizeof row->precision, "%s", prec);
    snprintf(row->mitigation, sizeof row->mitigation, "%s", mit);
    snprintf(row->defense, sizeof row->defense, "%s", def);
    row->seed = seed;
    row->status = QB_STATUS_OK;
    row->detected = detected;
    row->ca_mitig = 0.9 - 0.01 * (double)seed;
    row->asr_mitig = strcmp(trigger, "clean") ? 0.95 + 0.01 * (double)seed : NAN;
    r->n++;
}

/* The grid: triggers clean/badnet x precisions x mitigations x defenses
 * none/nc/ac x seeds 0..2. extra_prec: one more precision (NULL: none). */
static void make_rows(rows *r, size_t n_mit, const char *extra_prec)
{
    static const char *const mits[2] = {"none", "requant-round"};
    static const char *const defs[2] = {"nc", "ac"};
    r->v = calloc(200, sizeof *r->v);
    r->n = 0;
    size_t np = extra_prec ? 4 : 3;
    for (int t = 0; t < 2; t++)
        for (size_t pi = 0; pi < np; pi++)
            for (size_t m = 0; m < n_mit; m++)
                for (int64_t seed = 0; seed < 3; seed++) {
                    const char *prec = pi < 3 ? precs[pi] : extra_prec;
                    const char *trig = t ? "badnet" : "clean";
                    add(r, trig, prec, mits[m], "none", seed, QB_DETECTED_NA);
                    for (int d = 0; d < 2; d++) {
                        size_t k = pi < 3 ? (t ? det_k[d][pi] : fp_k[d][pi]) : 0;
                        add(r, trig, prec, mits[m], defs[d], seed,
                            (size_t)seed < k ? QB_DETECTED_YES : QB_DETECTED_NO);
                    }
                }
}

static void build(const rows *r, qb_report *rep)
{
    qb_report_options opt;
    qb_report_options_default(&opt);
    opt.boot_resamples = 200;
    qb_error err;
    assert_int_equal(qb_report_build(r->v, r->n, &opt, rep, &err), 0);
}

/* Each figure test's state: the rows of make_rows and their report. */
typedef struct fixture {
    rows r;
    qb_report rep;
} fixture;

static int fixture_setup(void **state, size_t n_mit, const char *extra_prec)
{
    fixture *fx = calloc(1, sizeof *fx);
    if (!fx) return -1;
    make_rows(&fx->r, n_mit, extra_prec);
    build(&fx->r, &fx->rep);
    *state = fx;
    return 0;
}

static int setup_one_mitigation(void **state) { return fixture_setup(state, 1, NULL); }
static int setup_two_mitigations(void **state) { return fixture_setup(state, 2, NULL); }
/* one mitigation and the precision bf16, which has no bit width */
static int setup_bf16(void **state) { return fixture_setup(state, 1, "bf16"); }

static int fixture_teardown(void **state)
{
    fixture *fx = *state;
    qb_report_free(&fx->rep);
    free(fx->r.v);
    free(fx);
    return 0;
}

static void assert_svg_basics(const char *svg)
{
    assert_non_null(svg);
    assert_well_formed(svg, 0);
    assert_non_null(strstr(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 "));
    assert_non_null(strstr(svg, "<title>"));
    assert_true(count(svg, "<text") > 5);
}

/* ---- tests -------------------------------------------------------------- */

static void test_precision_bits(void **state)
{
    (void)state;
    assert_int_equal(qb_report_precision_bits("fp32"), 32);
    assert_int_equal(qb_report_precision_bits("int8"), 8);
    assert_int_equal(qb_report_precision_bits("int4"), 4);
    assert_int_equal(qb_report_precision_bits("int2"), 2);
    assert_int_equal(qb_report_precision_bits("int8-linear"), 8);
    assert_int_equal(qb_report_precision_bits("w4a8"), 4);
    assert_int_equal(qb_report_precision_bits("w6a6"), 6);
    assert_int_equal(qb_report_precision_bits("fp"), -1);
    assert_int_equal(qb_report_precision_bits("bf16"), -1);
    assert_int_equal(qb_report_precision_bits("int"), -1);
    assert_int_equal(qb_report_precision_bits("w4"), -1);
    assert_int_equal(qb_report_precision_bits("int8x"), -1);
    assert_int_equal(qb_report_precision_bits("*"), -1);
}

static void test_heatmap(void **state)
{
    fixture *fx = *state;
    rows *r = &fx->r;
    qb_report *rep = &fx->rep;
    char *svg = qb_report_svg(rep, QB_FIG_HEATMAP);
    assert_svg_basics(svg);
    /* 2 defenses x 3 precisions, backdoored and clean */
    assert_int_equal(count(svg, "class=\"cell\""), 12);
    /* k/3 labels: backdoored nc 3, 2, 1; ac 0, 0, 0; clean nc 0, 0, 0; ac 0, 0, 1 */
    assert_int_equal(count(svg, ">3/3<"), 1);
    assert_int_equal(count(svg, ">2/3<"), 1);
    assert_int_equal(count(svg, ">1/3<"), 2);
    assert_int_equal(count(svg, ">0/3<"), 8);
    assert_int_equal(count(svg, ">67%<"), 1);
    assert_non_null(strstr(svg, "false-positive rate"));
    /* columns in bit-width order */
    const char *a = strstr(svg, ">fp32<"), *b = strstr(svg, ">int8<"), *c = strstr(svg, ">int4<");
    assert_true(a && b && c && a < b && b < c);
    free(svg);
    /* one mitigation: no mitigation figure */
    assert_null(qb_report_svg(rep, QB_FIG_MITIGATION));
    qb_report_free(rep);

    /* rows without a defense: no heatmap */
    size_t m = 0;
    for (size_t i = 0; i < r->n; i++)
        if (!strcmp(r->v[i].defense, "none")) r->v[m++] = r->v[i];
    r->n = m;
    build(r, rep);
    assert_null(qb_report_svg(rep, QB_FIG_HEATMAP));
    svg = qb_report_svg(rep, QB_FIG_BITWIDTH);
    assert_svg_basics(svg);
    free(svg);
}

static void test_bitwidth(void **state)
{
    const qb_report *rep = &((fixture *)*state)->rep;
    char *svg = qb_report_svg(rep, QB_FIG_BITWIDTH);
    assert_svg_basics(svg);
    /* CA: clean and badnet x 3 placed precisions; ASR: badnet x 3 */
    assert_int_equal(count(svg, "class=\"errbar\""), 9);
    assert_int_equal(count(svg, "<polyline"), 3);
    const char *a = strstr(svg, ">32 bit<"), *b = strstr(svg, ">8 bit<"), *c = strstr(svg, ">4 bit<");
    assert_true(a && b && c && a < b && b < c);
    assert_non_null(strstr(svg, "not placed (no bit width in the name): bf16"));
    assert_non_null(strstr(svg, ">trigger:<"));
    assert_non_null(strstr(svg, ">badnet<"));
    free(svg);
}

static void test_mitigation(void **state)
{
    const qb_report *rep = &((fixture *)*state)->rep;
    char *svg = qb_report_svg(rep, QB_FIG_MITIGATION);
    assert_svg_basics(svg);
    assert_non_null(strstr(svg, ">requant-round<"));
    assert_non_null(strstr(svg, ">trigger: badnet<"));
    assert_null(strstr(svg, ">trigger: clean<")); /* no ASR on clean models */
    /* badnet x 2 mitigations x 3 precisions */
    assert_int_equal(count(svg, "class=\"errbar\""), 6);
    free(svg);
    /* with several mitigations the bit-width figure shows "none" only */
    svg = qb_report_svg(rep, QB_FIG_BITWIDTH);
    assert_svg_basics(svg);
    assert_non_null(strstr(svg, "mitigation none only"));
    assert_int_equal(count(svg, "class=\"errbar\""), 9);
    free(svg);
}

static char *slurp(FILE *f)
{
    fflush(f);
    long len = ftell(f);
    rewind(f);
    char *s = calloc((size_t)len + 1, 1);
    assert_int_equal(fread(s, 1, (size_t)len, f), (size_t)len);
    return s;
}

static void test_escape(void **state)
{
    (void)state;
    FILE *f = tmpfile();
    assert_non_null(f);
    qb_html_escape(f, "a<b & \"c\" 'd' >e");
    char *s = slurp(f);
    assert_string_equal(s, "a&lt;b &amp; &quot;c&quot; &#39;d&#39; &gt;e");
    free(s);
    fclose(f);
}

static void test_html_page(void **state)
{
    const qb_report *rep = &((fixture *)*state)->rep;
    const qb_kv attrs[3] = {
        {"n_ranks", "2"},
        {"qblind_version", "0.1<beta>"},
        {"spec_text", "name: a<b & \"c\" 'd'\n# </pre><script>alert(1)</script>\n"}};
    FILE *f = tmpfile();
    assert_non_null(f);
    qb_error err;
    assert_int_equal(qb_report_write_html(rep, "r&d.h5", attrs, 3, f, &err), 0);
    char *s = slurp(f);
    fclose(f);
    assert_well_formed(s, 1);
    assert_non_null(strstr(s, "<pre>name: a&lt;b &amp; &quot;c&quot; &#39;d&#39;\n# "
                              "&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;\n</pre>"));
    assert_null(strstr(s, "<script"));
    assert_non_null(strstr(s, "<td>qblind_version</td><td>0.1&lt;beta&gt;</td>"));
    assert_non_null(strstr(s, "<td>n_ranks</td><td>2</td>"));
    assert_non_null(strstr(s, "qblind report: r&amp;d.h5"));
    /* the figures inline, the tables */
    assert_int_equal(count(s, "<svg "), 3);
    assert_true(count(s, "<table>") >= 4);
    assert_non_null(strstr(s, "<h2>Detection</h2>"));
    assert_non_null(strstr(s, "<th>rate [95% CI]</th>"));
    /* self-contained: the only URL is the SVG namespace; no external refs */
    assert_int_equal(count(s, "http"), count(s, "xmlns=\"http://www.w3.org/2000/svg\""));
    assert_null(strstr(s, "src="));
    assert_null(strstr(s, "<link"));
    assert_null(strstr(s, "@import"));
    free(s);
}

static void test_checker_catches_errors(void **state)
{
    (void)state;
    /* the checker itself must be able to fail: the good case passes */
    assert_null(xml_problem("<a x=\"1\"><b/>t &amp; u &#39;</a>", 0));
    assert_null(xml_problem("<!DOCTYPE html><html><meta charset=\"utf-8\"><style>a>b{}</style></html>", 1));
    assert_non_null(xml_problem("<a><b></a></b>", 0));
    assert_non_null(xml_problem("<a>x < y</a>", 0));
    assert_non_null(xml_problem("<a>x & y</a>", 0));
    assert_non_null(xml_problem("<a>x > y</a>", 0));
    assert_non_null(xml_problem("<a x=1></a>", 0));
    assert_non_null(xml_problem("<a x=\"<\"></a>", 0));
    assert_non_null(xml_problem("<a>", 0));
    assert_non_null(xml_problem("<a/><b/>", 0));
    assert_non_null(xml_problem("<meta charset=\"utf-8\"><p></p>", 0));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_precision_bits),
        cmocka_unit_test_setup_teardown(test_heatmap, setup_one_mitigation, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_bitwidth, setup_bf16, fixture_teardown),
        cmocka_unit_test_setup_teardown(test_mitigation, setup_two_mitigations, fixture_teardown),
        cmocka_unit_test(test_escape),
        cmocka_unit_test_setup_teardown(test_html_page, setup_two_mitigations, fixture_teardown),
        cmocka_unit_test(test_checker_catches_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
