/* The HTML page of `qblind report` (report/html.h). */
#include "report/html.h"

#include <stdlib.h>
#include <string.h>

#include "report/escape.h"
#include "report/svg.h"

static const char html_style[] =
    "body{font-family:" QB_REPORT_FONT ";margin:24px auto;max-width:1400px;padding:0 16px;"
    "color:#111;line-height:1.4}\n"
    "h1{font-size:24px}h2{font-size:20px;margin-top:32px;border-bottom:1px solid #ccc}\n"
    "table{border-collapse:collapse;margin:8px 0 16px;font-size:13px}\n"
    "th,td{border:1px solid #ccc;padding:3px 8px;text-align:left;vertical-align:top}\n"
    "th{background:#f0f3f7}tr:nth-child(even) td{background:#fafafa}\n"
    "figure{margin:16px 0}figure svg{max-width:100%;height:auto}\n"
    "pre{background:#f6f6f6;border:1px solid #ddd;padding:10px;overflow:auto;font-size:12px}\n";

int qb_report_write_html(const qb_report *r, const char *title, const qb_kv *attrs,
                         size_t n_attrs, FILE *f, qb_error *err)
{
    const char *t = title ? title : "(rows)";
    fputs("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n", f);
    fputs("<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>"
          "qblind report: ", f);
    qb_html_escape(f, t);
    fprintf(f, "</title>\n<style>\n%s</style>\n</head>\n<body>\n", html_style);
    fputs("<h1>qblind report: ", f);
    qb_html_escape(f, t);
    fputs("</h1>\n<p>Contents: the tables below, <a href=\"#figures\">figures</a>, "
          "<a href=\"#spec\">spec</a>, <a href=\"#provenance\">provenance</a>.</p>\n", f);
    if (qb_report_write_html_tables(r, f, err)) return -1;
    fputs("<h2 id=\"figures\">Figures</h2>\n", f);
    int any = 0;
    for (int fig = 0; fig < QB_FIG_COUNT; fig++) {
        char *svg = qb_report_svg(r, (qb_report_figure)fig);
        if (!svg) continue;
        fprintf(f, "<figure id=\"fig-%s\">\n%s</figure>\n", qb_report_figure_name((qb_report_figure)fig),
                svg);
        free(svg);
        any = 1;
    }
    if (!any) fputs("<p>No figure applies to this file.</p>\n", f);
    const char *spec = NULL;
    for (size_t i = 0; i < n_attrs; i++)
        if (!strcmp(attrs[i].key, "spec_text")) spec = attrs[i].value;
    fputs("<h2 id=\"spec\">Spec</h2>\n", f);
    if (spec) {
        fputs("<pre>", f);
        qb_html_escape(f, spec);
        fputs("</pre>\n", f);
    } else {
        fputs("<p>The file has no spec_text attribute.</p>\n", f);
    }
    fputs("<h2 id=\"provenance\">Provenance</h2>\n<table>\n<tr><th>attribute</th><th>value</th></tr>\n", f);
    for (size_t i = 0; i < n_attrs; i++) {
        if (!strcmp(attrs[i].key, "spec_text")) continue;
        fputs("<tr><td>", f);
        qb_html_escape(f, attrs[i].key);
        fputs("</td><td>", f);
        qb_html_escape(f, attrs[i].value);
        fputs("</td></tr>\n", f);
    }
    fputs("</table>\n</body>\n</html>\n", f);
    if (fflush(f) || ferror(f)) return QB_FAIL(err, "report: write error (disk full?)");
    return 0;
}
