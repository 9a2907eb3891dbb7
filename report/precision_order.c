/* The precision axis of the figures (report/precision_order.h). */
#include "report/precision_order.h"

#include <ctype.h>
#include <string.h>

int qb_report_precision_bits(const char *name)
{
    const char *p = name;
    int bits = -1;
    if (!strncmp(p, "fp", 2) || !strncmp(p, "int", 3) || (p[0] == 'w' && isdigit((unsigned char)p[1]))) {
        p += p[0] == 'f' ? 2 : p[0] == 'i' ? 3 : 1;
        if (!isdigit((unsigned char)*p)) return -1;
        bits = 0;
        for (; isdigit((unsigned char)*p) && bits < 1000; p++) bits = 10 * bits + (*p - '0');
        if (name[0] == 'w') {
            /* wNaM: weight bits N; M must follow */
            if (*p != 'a' || !isdigit((unsigned char)p[1])) return -1;
            for (p++; isdigit((unsigned char)*p); p++) {}
        }
        if (*p != '\0' && *p != '-') return -1;
        if (bits < 1 || bits > 64) return -1;
    }
    return bits;
}

int qb_report_precision_cmp(const char *a, const char *b)
{
    int ba = qb_report_precision_bits(a), bb = qb_report_precision_bits(b);
    if (ba != bb) return ba > bb ? -1 : 1;
    size_t la = strlen(a), lb = strlen(b);
    if (la != lb) return la < lb ? -1 : 1;
    return strcmp(a, b);
}
