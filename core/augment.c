/* Random crop with zero padding and horizontal flip (core/augment.h). */
#include "core/augment.h"

#include <string.h>

#include "core/error.h"

void qb_augment_sample(const qb_augment *a, qb_rng *rng, qb_augment_draw *d)
{
    d->dy = d->dx = a->pad;
    d->flip = 0;
    if (a->pad > 0) {
        const uint32_t span = 2u * (uint32_t)a->pad + 1u;
        d->dy = (int)qb_rng_below(rng, span);
        d->dx = (int)qb_rng_below(rng, span);
    }
    if (a->flip) d->flip = (int)qb_rng_below(rng, 2);
}

void qb_augment_image(const qb_augment *a, const qb_augment_draw *d, const uint8_t *src,
                      uint8_t *dst, int c, int h, int w)
{
    QB_ASSERT(src != dst && c >= 1 && h >= 1 && w >= 1);
    QB_ASSERT(d->dy >= 0 && d->dx >= 0 && d->dy <= 2 * a->pad && d->dx <= 2 * a->pad);
    const int oy = d->dy - a->pad, ox = d->dx - a->pad; /* source = target + offset */
    const size_t plane = (size_t)h * (size_t)w;
    for (int ch = 0; ch < c; ch++) {
        const uint8_t *s = src + (size_t)ch * plane;
        uint8_t *o = dst + (size_t)ch * plane;
        for (int y = 0; y < h; y++) {
            uint8_t *row = o + (size_t)y * (size_t)w;
            const int sy = y + oy;
            if (sy < 0 || sy >= h) {
                memset(row, 0, (size_t)w);
                continue;
            }
            const uint8_t *srow = s + (size_t)sy * (size_t)w;
            /* the columns x whose source column is inside the image: without
             * a flip sx = x + ox, with one sx = w - 1 - x + ox; both give
             * x in [lo, hi) */
            int lo = d->flip ? (ox > 0 ? ox : 0) : (ox < 0 ? -ox : 0);
            int hi = d->flip ? (ox < 0 ? w + ox : w) : (ox > 0 ? w - ox : w);
            if (lo > w) lo = w; /* a shift by the whole width or more */
            if (hi < lo) hi = lo;
            memset(row, 0, (size_t)lo);
            if (!d->flip) {
                memcpy(row + lo, srow + lo + ox, (size_t)(hi - lo));
            } else {
                for (int x = lo; x < hi; x++) row[x] = srow[w - 1 - x + ox];
            }
            memset(row + hi, 0, (size_t)(w - hi));
        }
    }
}
