/* Backdoor triggers (BadNet family) stamped onto uint8 images.
 *
 * A trigger is a fixed pattern: the same pixels for every image it is
 * applied to (noise patterns are derived from the trigger's own seed by a
 * stateless hash, so nothing is stored). */
#ifndef QB_TRIGGER_H
#define QB_TRIGGER_H

#include <stdint.h>

#include "core/error.h"

typedef enum qb_trigger_kind {
    QB_TRIGGER_NONE = 0, /* clean: no attack */
    QB_TRIGGER_SQUARE,   /* white size x size square */
    QB_TRIGGER_CHECKER,  /* black/white checkerboard patch, white at the corner */
    QB_TRIGGER_NOISE,    /* random-noise patch (fixed by seed) */
    QB_TRIGGER_BLEND,    /* whole-image noise blended with weight alpha */
} qb_trigger_kind;

typedef struct qb_trigger {
    qb_trigger_kind kind;
    int size;       /* patch side in pixels (default 3) */
    int x, y;       /* patch top-left; negative counts from the right/bottom
                       edge: -1 puts the patch flush with it (default -1, -1
                       = bottom-right corner) */
    float alpha;    /* BLEND: weight of the noise image (default 0.15) */
    uint64_t seed;  /* NOISE/BLEND pattern seed (default 0x5EED) */
    int target;     /* target class (default 0) */
} qb_trigger;

/* Defaults for a kind (size 3, bottom-right, alpha 0.15, target 0). */
void qb_trigger_default(qb_trigger *t, qb_trigger_kind kind);

/* Names: clean, badnet (= square), square, checker, noise, blend. */
int qb_trigger_parse(const char *name, qb_trigger *t, qb_error *err);
const char *qb_trigger_name(qb_trigger_kind kind);

/* Check the trigger fits an image of c x h x w and its fields are in range. */
int qb_trigger_validate(const qb_trigger *t, int c, int h, int w, int classes, qb_error *err);

/* Stamp the trigger onto one image (c, h, w) in place. NONE is a no-op. */
void qb_trigger_apply(const qb_trigger *t, uint8_t *img, int c, int h, int w);

#endif
