/* Helpers shared by the defenses: activations, clean splits, robust
 * statistics. */
#include "defenses/defense.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/sort.h"
#include "core/xalloc.h"

float *qb_defense_activations(const qb_model *m, const qb_dataset *d, const uint32_t *idx,
                              size_t n, int layer, size_t *dim)
{
    if (layer < 0) layer = m->n_layers - 1;
    QB_ASSERT(layer < m->n_layers);
    size_t dm = qb_layer_out_size(&m->layers[layer]);
    *dim = dm;
    const int B = 256;
    qb_model_ws ws;
    qb_model_ws_init(&ws, m, B);
    qb_model_ws_set_fused(&ws, 0);
    size_t isz = qb_dataset_image_size(d);
    float *x = xmalloc((size_t)B * isz, sizeof(float));
    float *out = xmalloc(n ? n * dm : 1, sizeof(float));
    for (size_t i = 0; i < n; i += B) {
        size_t b = n - i < (size_t)B ? n - i : (size_t)B;
        qb_dataset_batch_float(d, idx ? idx + i : NULL, idx ? 0 : i, b, x);
        qb_model_forward(m, &ws, x, (int)b, 0);
        memcpy(out + i * dm, ws.act[layer + 1], b * dm * sizeof(float));
    }
    free(x);
    qb_model_ws_free(&ws);
    return out;
}

int qb_defense_clean_split(const qb_defense_input *in, const char *who, size_t from, size_t n,
                           qb_dataset *out, qb_error *err)
{
    if (from > in->eval_from || n > in->eval_from - from)
        return QB_FAIL(err,
                       "%s needs %zu clean held-out images (from position %zu of the defender's "
                       "pool) but the pool has %zu before its evaluation part",
                       who, n, from, in->eval_from);
    qb_dataset_subset(out, in->test, in->pool + from, n);
    return 0;
}

int qb_model_last_conv(const qb_model *m)
{
    for (int i = m->n_layers - 1; i >= 0; i--)
        if (m->layers[i].kind == QB_LAYER_CONV2D) return i;
    return -1;
}

double qb_median(const double *v, size_t n)
{
    QB_ASSERT(n >= 1);
    double *t = xmalloc(n, sizeof(double));
    memcpy(t, v, n * sizeof(double));
    qsort(t, n, sizeof(double), qb_cmp_double);
    double m = n % 2 ? t[n / 2] : 0.5 * (t[n / 2 - 1] + t[n / 2]);
    free(t);
    return m;
}

typedef struct ranked {
    double s;
    uint32_t i;
} ranked;

static int cmp_position(const ranked *x, const ranked *y)
{
    return (x->i > y->i) - (x->i < y->i);
}

static int cmp_ascending(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    return x->s != y->s ? (x->s < y->s ? -1 : 1) : cmp_position(x, y);
}

static int cmp_descending(const void *a, const void *b)
{
    const ranked *x = a, *y = b;
    return x->s != y->s ? (x->s < y->s ? 1 : -1) : cmp_position(x, y);
}

void qb_defense_rank(const double *score, size_t n, int descending, uint32_t *order)
{
    ranked *r = xmalloc(n ? n : 1, sizeof(ranked));
    for (size_t i = 0; i < n; i++) r[i] = (ranked){score[i], (uint32_t)i};
    qsort(r, n, sizeof(ranked), descending ? cmp_descending : cmp_ascending);
    for (size_t i = 0; i < n; i++) order[i] = r[i].i;
    free(r);
}

void qb_mad_anomaly(const double *v, size_t n, double *idx)
{
    double med = qb_median(v, n);
    double *dev = xmalloc(n, sizeof(double));
    for (size_t i = 0; i < n; i++) dev[i] = fabs(v[i] - med);
    double mad = 1.4826 * qb_median(dev, n);
    for (size_t i = 0; i < n; i++)
        idx[i] = mad > 0 ? dev[i] / mad : (dev[i] > 0 ? INFINITY : 0.0);
    free(dev);
}
