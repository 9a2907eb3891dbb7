#include "quant/precision.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse_bits(const char *s, const char **end)
{
    if (*s < '0' || *s > '9') return -1;
    int v = 0;
    while (*s >= '0' && *s <= '9' && v < 100) v = v * 10 + (*s++ - '0');
    *end = s;
    return v;
}

int qb_precision_parse(const char *name, qb_precision *p, qb_error *err)
{
    memset(p, 0, sizeof *p);
    static const char expected[] =
        "expected " QB_PRECISION_NAMED ", or " QB_PRECISION_GENERAL;
    if (strlen(name) >= QB_PRECISION_NAME_MAX)
        return QB_FAIL(err, "unknown precision \"%.40s...\"; %s", name, expected);
    char base[QB_PRECISION_NAME_MAX];
    snprintf(base, sizeof base, "%s", name);
    /* strip suffixes from the right */
    for (;;) {
        size_t n = strlen(base);
        if (n > 3 && !strcmp(base + n - 3, "-pc") && p->gran != QB_GRAN_CHANNEL) {
            p->gran = QB_GRAN_CHANNEL;
            base[n - 3] = '\0';
        } else if (n > 5 && !strcmp(base + n - 5, "-away") && p->round != QB_ROUND_HALF_AWAY) {
            p->round = QB_ROUND_HALF_AWAY;
            base[n - 5] = '\0';
        } else {
            break;
        }
    }
    if (!strcmp(base, "fp32")) {
        if (p->gran || p->round)
            return QB_FAIL(err, "precision \"%s\": fp32 takes no -pc/-away suffix", name);
        p->w_bits = p->a_bits = 32;
    } else if (!strcmp(base, "int8")) {
        p->w_bits = p->a_bits = 8;
    } else if (!strcmp(base, "int8-linear")) {
        p->w_bits = p->a_bits = 8;
        p->linear_only = 1;
    } else if (!strcmp(base, "int4")) {
        p->w_bits = 4;
        p->a_bits = 32;
    } else if (base[0] == 'w') {
        const char *s = base + 1, *e;
        int w = parse_bits(s, &e);
        if (w < 0 || *e != 'a') return QB_FAIL(err, "unknown precision \"%s\"; %s", name, expected);
        int a = parse_bits(e + 1, &e);
        if (a < 0 || *e != '\0') return QB_FAIL(err, "unknown precision \"%s\"; %s", name, expected);
        if (w < 2 || w > 8)
            return QB_FAIL(err, "precision \"%s\": weight bits %d outside 2..8", name, w);
        if (!((a >= 2 && a <= 8) || a == 32))
            return QB_FAIL(err, "precision \"%s\": activation bits %d not in 2..8 or 32", name, a);
        p->w_bits = w;
        p->a_bits = a;
    } else {
        return QB_FAIL(err, "unknown precision \"%s\"; %s", name, expected);
    }
    snprintf(p->name, sizeof p->name, "%s", name);
    return 0;
}

int qb_precision_is_float(const qb_precision *p) { return p->w_bits == 32; }

int qb_precision_is_integer(const qb_precision *p)
{
    return p->w_bits <= 8 && p->a_bits <= 8;
}

int qb_precision_canonical(const qb_precision *p, char *out, size_t n)
{
    char buf[QB_PRECISION_NAME_MAX];
    if (p->w_bits == 32)
        snprintf(buf, sizeof buf, "fp32");
    else if (p->linear_only)
        snprintf(buf, sizeof buf, "int8-linear");
    else if (p->w_bits == 8 && p->a_bits == 8)
        snprintf(buf, sizeof buf, "int8");
    else if (p->w_bits == 4 && p->a_bits == 32)
        snprintf(buf, sizeof buf, "int4");
    else
        snprintf(buf, sizeof buf, "w%da%d", p->w_bits, p->a_bits);
    if (p->gran == QB_GRAN_CHANNEL) strncat(buf, "-pc", sizeof buf - strlen(buf) - 1);
    if (p->round == QB_ROUND_HALF_AWAY) strncat(buf, "-away", sizeof buf - strlen(buf) - 1);
    if (strlen(buf) >= n) return -1;
    memcpy(out, buf, strlen(buf) + 1);
    return 0;
}
