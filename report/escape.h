/* HTML/XML escaping for `qblind report`: one rule for the HTML tables
 * (report/write.c), the SVG figures (report/svg.c) and the page around
 * them (report/html.c). */
#ifndef QB_REPORT_ESCAPE_H
#define QB_REPORT_ESCAPE_H

#include <stdio.h>

/* The entity that stands for c in HTML/XML text and attribute values:
 * "&amp;", "&lt;", "&gt;", "&quot;" or "&#39;" for &, <, >, " and ';
 * NULL for every other byte (written as is). */
const char *qb_html_entity(char c);

/* s with &, <, >, " and ' escaped (qb_html_entity), written to f. */
void qb_html_escape(FILE *f, const char *s);

#endif
