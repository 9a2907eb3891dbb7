/* The self-contained HTML page of `qblind report --html FILE`: the tables
 * (report/report.h), the figures (report/svg.h) inline, the spec and the
 * provenance of the results file. */
#ifndef QB_REPORT_HTML_H
#define QB_REPORT_HTML_H

#include <stdio.h>

#include "core/error.h"
#include "report/report.h"
#include "store/results_attrs.h"

/* One self-contained HTML page: the tables (qb_report_write_html_tables),
 * the figures as inline SVG, the spec (attribute spec_text, escaped, in a
 * <pre>) and the provenance (every other root attribute) of the results
 * file `title`. attrs may be NULL when n_attrs is 0. No external resource
 * (no script, stylesheet, font or image from elsewhere). -1 on a write
 * error. */
int qb_report_write_html(const qb_report *r, const char *title, const qb_kv *attrs,
                         size_t n_attrs, FILE *f, qb_error *err);

#endif
