#include "core/softmax_xent.h"

#include <math.h>
#include <stddef.h>

void qb_softmax(int b, int classes, const float *logits, float *probs)
{
    for (int i = 0; i < b; i++) {
        const float *z = logits + (size_t)i * classes;
        float *p = probs + (size_t)i * classes;
        float m = z[0];
        for (int c = 1; c < classes; c++) m = z[c] > m ? z[c] : m;
        float s = 0.0f;
        for (int c = 0; c < classes; c++) s += p[c] = expf(z[c] - m);
        float inv = 1.0f / s;
        for (int c = 0; c < classes; c++) p[c] *= inv;
    }
}

float qb_softmax_xent(int b, int classes, const float *logits, const uint8_t *labels,
                      float *dlogits)
{
    double loss = 0.0;
    for (int i = 0; i < b; i++) {
        const float *z = logits + (size_t)i * classes;
        float m = z[0];
        for (int c = 1; c < classes; c++) m = z[c] > m ? z[c] : m;
        double s = 0.0;
        for (int c = 0; c < classes; c++) s += exp((double)(z[c] - m));
        double log_s = log(s);
        loss += log_s - (double)(z[labels[i]] - m);
        if (dlogits) {
            float *d = dlogits + (size_t)i * classes;
            for (int c = 0; c < classes; c++)
                d[c] = (float)(exp((double)(z[c] - m) - log_s) / b);
            d[labels[i]] -= 1.0f / (float)b;
        }
    }
    return (float)(loss / b);
}
