#include "defenses/by_class.h"

#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"

void qb_by_class_init(qb_by_class *g, const uint8_t *labels, size_t n, int classes)
{
    QB_ASSERT(classes >= 1 && n <= UINT32_MAX);
    g->classes = classes;
    g->n = n;
    g->start = xcalloc((size_t)classes + 1, sizeof(size_t));
    g->order = xmalloc(n ? n : 1, sizeof(uint32_t));
    for (size_t i = 0; i < n; i++) {
        QB_ASSERT(labels[i] < classes);
        g->start[labels[i] + 1]++;
    }
    for (int c = 0; c < classes; c++) g->start[c + 1] += g->start[c];
    size_t *fill = xmalloc((size_t)classes, sizeof(size_t));
    memcpy(fill, g->start, (size_t)classes * sizeof(size_t));
    for (size_t i = 0; i < n; i++) g->order[fill[labels[i]]++] = (uint32_t)i;
    free(fill);
}

void qb_by_class_free(qb_by_class *g)
{
    free(g->order);
    free(g->start);
    memset(g, 0, sizeof *g);
}

int qb_by_class_check(const qb_by_class *g, size_t min_n, const char *who, qb_error *err)
{
    for (int c = 0; c < g->classes; c++)
        if (qb_by_class_size(g, c) < min_n)
            return QB_FAIL(err, "%s needs at least %zu training samples per class, class %d has %zu",
                           who, min_n, c, qb_by_class_size(g, c));
    return 0;
}

void qb_by_class_gather(const qb_by_class *g, int c, const float *act, size_t dim, float *out)
{
    const uint32_t *idx = g->order + g->start[c];
    size_t m = qb_by_class_size(g, c);
    for (size_t i = 0; i < m; i++) memcpy(out + i * dim, act + (size_t)idx[i] * dim, dim * sizeof(float));
}
