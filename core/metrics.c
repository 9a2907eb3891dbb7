#include "core/metrics.h"

#include <stdlib.h>

#include "core/xalloc.h"

#define QB_EVAL_BATCH 256

void qb_model_predict(const qb_model *m, const qb_dataset *d, uint8_t *pred)
{
    int B = d->n < QB_EVAL_BATCH ? (int)(d->n ? d->n : 1) : QB_EVAL_BATCH;
    qb_model_ws ws;
    qb_model_ws_init(&ws, m, B);
    float *x = xaligned((size_t)B * qb_dataset_image_size(d), sizeof(float));
    for (size_t first = 0; first < d->n; first += (size_t)B) {
        int b = d->n - first < (size_t)B ? (int)(d->n - first) : B;
        qb_dataset_batch_float(d, NULL, first, (size_t)b, x);
        const float *logits = qb_model_forward(m, &ws, x, b, 0);
        for (int i = 0; i < b; i++) {
            const float *z = logits + (size_t)i * m->classes;
            int best = 0;
            for (int c = 1; c < m->classes; c++)
                if (z[c] > z[best]) best = c;
            pred[first + i] = (uint8_t)best;
        }
    }
    free(x);
    qb_model_ws_free(&ws);
}

static double fraction_where(const qb_model *m, const qb_dataset *d, int target)
{
    if (d->n == 0) return 0.0;
    uint8_t *pred = xmalloc(d->n, 1);
    qb_model_predict(m, d, pred);
    size_t hits = 0;
    for (size_t i = 0; i < d->n; i++)
        hits += target < 0 ? pred[i] == d->labels[i] : pred[i] == target;
    free(pred);
    return (double)hits / (double)d->n;
}

double qb_metric_accuracy(const qb_model *m, const qb_dataset *d)
{
    return fraction_where(m, d, -1);
}

double qb_metric_target_rate(const qb_model *m, const qb_dataset *d, int target)
{
    return fraction_where(m, d, target);
}
