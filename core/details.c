#include "core/details.h"

#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"

void qb_details_init(qb_details *d) { memset(d, 0, sizeof *d); }

void qb_details_free(qb_details *d)
{
    for (size_t i = 0; i < d->n; i++) free(d->items[i].v);
    free(d->items);
    memset(d, 0, sizeof *d);
}

int qb_detail_name_ok(const char *name)
{
    size_t n = strlen(name);
    if (n == 0 || n >= QB_DETAIL_NAME_MAX || !strcmp(name, ".") || !strcmp(name, ".."))
        return 0;
    for (const char *p = name; *p; p++) {
        char c = *p;
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '_' || c == '.' || c == '-'))
            return 0;
    }
    return 1;
}

void qb_details_add(qb_details *d, const char *name, const double *v, size_t n)
{
    if (!qb_detail_name_ok(name)) qb_die_at(__FILE__, __LINE__, "invalid detail name \"%s\"", name);
    qb_detail *e = NULL;
    for (size_t i = 0; i < d->n; i++)
        if (!strcmp(d->items[i].name, name)) {
            e = &d->items[i];
            free(e->v);
            break;
        }
    if (!e) {
        if (d->n == d->cap) {
            d->cap = d->cap ? 2 * d->cap : 8;
            d->items = xrealloc(d->items, d->cap, sizeof *d->items);
        }
        e = &d->items[d->n++];
        memset(e, 0, sizeof *e);
        memcpy(e->name, name, strlen(name) + 1);
    }
    e->n = n;
    e->v = NULL;
    if (n) {
        e->v = xmalloc(n, sizeof(double));
        memcpy(e->v, v, n * sizeof(double));
    }
}

void qb_details_add1(qb_details *d, const char *name, double v) { qb_details_add(d, name, &v, 1); }

void qb_details_add_int(qb_details *d, const char *name, const int *v, size_t n)
{
    double *tmp = xmalloc(n ? n : 1, sizeof(double));
    for (size_t i = 0; i < n; i++) tmp[i] = v[i];
    qb_details_add(d, name, tmp, n);
    free(tmp);
}

const qb_detail *qb_details_find(const qb_details *d, const char *name)
{
    for (size_t i = 0; i < d->n; i++)
        if (!strcmp(d->items[i].name, name)) return &d->items[i];
    return NULL;
}

/* ---- packing (explicit little-endian, so the layout is the same on every
 * host; ranks of one job share a byte order anyway) ---- */

static void put_le(uint8_t *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = 0; i < bytes; i++) v |= (uint64_t)p[i] << (8 * i);
    return v;
}

uint8_t *qb_details_pack(const qb_details *d, size_t *len)
{
    size_t total = 4;
    for (size_t i = 0; i < d->n; i++) total += 2 + strlen(d->items[i].name) + 8 + 8 * d->items[i].n;
    uint8_t *buf = xmalloc(total, 1), *p = buf;
    put_le(p, d->n, 4);
    p += 4;
    for (size_t i = 0; i < d->n; i++) {
        const qb_detail *e = &d->items[i];
        size_t nl = strlen(e->name);
        put_le(p, nl, 2);
        memcpy(p + 2, e->name, nl);
        p += 2 + nl;
        put_le(p, e->n, 8);
        p += 8;
        for (size_t k = 0; k < e->n; k++) {
            uint64_t bits;
            memcpy(&bits, &e->v[k], 8);
            put_le(p, bits, 8);
            p += 8;
        }
    }
    *len = total;
    return buf;
}

int qb_details_unpack(qb_details *d, const uint8_t *buf, size_t len, qb_error *err)
{
    qb_details_init(d);
    if (len < 4) return QB_FAIL(err, "details buffer of %zu bytes is shorter than its header", len);
    size_t count = (size_t)get_le(buf, 4), pos = 4;
    for (size_t i = 0; i < count; i++) {
        if (len - pos < 2) goto truncated;
        size_t nl = (size_t)get_le(buf + pos, 2);
        pos += 2;
        if (nl == 0 || nl >= QB_DETAIL_NAME_MAX || len - pos < nl) goto truncated;
        char name[QB_DETAIL_NAME_MAX];
        memcpy(name, buf + pos, nl);
        name[nl] = '\0';
        pos += nl;
        if (!qb_detail_name_ok(name)) {
            qb_details_free(d);
            return QB_FAIL(err, "details buffer: invalid name at byte %zu", pos - nl);
        }
        if (len - pos < 8) goto truncated;
        uint64_t n = get_le(buf + pos, 8);
        pos += 8;
        if (n > (len - pos) / 8) goto truncated;
        double *v = xmalloc(n ? (size_t)n : 1, sizeof(double));
        for (size_t k = 0; k < n; k++) {
            uint64_t bits = get_le(buf + pos + 8 * k, 8);
            memcpy(&v[k], &bits, 8);
        }
        pos += 8 * (size_t)n;
        qb_details_add(d, name, v, (size_t)n);
        free(v);
    }
    if (pos != len) {
        qb_details_free(d);
        return QB_FAIL(err, "details buffer: %zu trailing bytes", len - pos);
    }
    return 0;
truncated:
    qb_details_free(d);
    return QB_FAIL(err, "details buffer truncated at byte %zu of %zu", pos, len);
}
