/* HTML/XML escaping (report/escape.h). */
#include "report/escape.h"

const char *qb_html_entity(char c)
{
    switch (c) {
    case '&': return "&amp;";
    case '<': return "&lt;";
    case '>': return "&gt;";
    case '"': return "&quot;";
    case '\'': return "&#39;";
    default: return NULL;
    }
}

void qb_html_escape(FILE *f, const char *s)
{
    for (; *s; s++) {
        const char *e = qb_html_entity(*s);
        if (e) fputs(e, f);
        else fputc(*s, f);
    }
}
