/* Training-time data augmentation on uint8 images, as the field trains:
 * random crop with zero padding (torchvision's RandomCrop(size,
 * padding=pad): the image is padded with black pixels on every side and a
 * crop of the original size is taken at a uniform offset) and a horizontal
 * flip with probability 1/2 (RandomHorizontalFlip), in that order.
 *
 * It runs on the pixels, after any trigger was stamped (a poisoned image is
 * cropped and flipped like any other) and before the normalisation of
 * core/dataset.h (a padded pixel is black, p = 0, whatever the
 * normalisation makes of it). The draws come from one qb_rng seeded by the
 * training seed and are consumed in batch order, sample by sample, so a
 * run is the same on any thread count. */
#ifndef QB_AUGMENT_H
#define QB_AUGMENT_H

#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"

typedef struct qb_augment {
    int pad;  /* random crop with this much zero padding; 0: no crop */
    int flip; /* 1: horizontal flip with probability 1/2 */
} qb_augment;

/* The maximum padding accepted (qb_train_config_validate). */
#define QB_AUGMENT_MAX_PAD 64

static inline int qb_augment_on(const qb_augment *a) { return a->pad > 0 || a->flip; }

/* One image's draws: crop offset (dy, dx) in [0, 2 pad] (pad = no shift)
 * and the flip bit. Draw order: dy, dx (only when pad > 0), flip (only
 * when a->flip). */
typedef struct qb_augment_draw {
    int dy, dx, flip;
} qb_augment_draw;

void qb_augment_sample(const qb_augment *a, qb_rng *rng, qb_augment_draw *d);

/* Write the augmented image of src (c, h, w) to dst (c, h, w) (dst != src):
 * dst[ch][y][x] = src[ch][y + dy - pad][x' + dx - pad] where x' = w - 1 - x
 * when flipped, else x; 0 where that falls outside src. */
void qb_augment_image(const qb_augment *a, const qb_augment_draw *d, const uint8_t *src,
                      uint8_t *dst, int c, int h, int w);

#endif
