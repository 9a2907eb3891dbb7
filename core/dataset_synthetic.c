/* Synthetic dataset: 10 classes of coloured shapes on noisy backgrounds.
 *
 * Each class is one shape drawn in its own base colour (both jittered), at
 * a random position and size, over a random dark background with per-pixel
 * noise. Shape and colour both identify the class, so a small CNN learns it
 * to well above 90% in a few epochs, while position, size, colour jitter
 * and noise keep it from being a lookup table. Classes are exactly balanced
 * (counts differ by at most one). Generation is a few milliseconds per
 * thousand images and depends only on the seed. */
#include "core/dataset.h"

#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/xalloc.h"

enum {
    QB_SYN_CLASSES = 10,
    QB_SYN_SIDE = 32,
    QB_SYN_NOISE = 24,      /* background noise amplitude: +-24 grey levels */
    QB_SYN_JITTER = 25,     /* shape colour jitter per channel */
    QB_SYN_BG_MAX = 110,    /* background base level per channel 0..110 */
};

/* Base colours: bright, mutually distinct, all far from a dark background. */
static const uint8_t syn_palette[QB_SYN_CLASSES][3] = {
    {230, 40, 40},   /* 0 disc: red */
    {40, 220, 60},   /* 1 square: green */
    {60, 90, 245},   /* 2 triangle: blue */
    {235, 225, 50},  /* 3 ring: yellow */
    {225, 60, 220},  /* 4 plus: magenta */
    {50, 220, 230},  /* 5 X: cyan */
    {245, 145, 35},  /* 6 horizontal bar: orange */
    {240, 240, 240}, /* 7 vertical bar: white */
    {150, 240, 150}, /* 8 square frame: pale green */
    {250, 160, 190}, /* 9 diamond: pink */
};

static int iabs(int v) { return v < 0 ? -v : v; }

/* Whether pixel offset (dx, dy) from the centre is inside shape k of
 * radius r (integer arithmetic, scaled by 4 to keep quarter radii exact). */
static int syn_inside(int k, int dx, int dy, int r)
{
    int ax = iabs(dx), ay = iabs(dy);
    switch (k) {
    case 0: return dx * dx + dy * dy <= r * r;
    case 1: return 5 * ax <= 4 * r && 5 * ay <= 4 * r;
    case 2: return dy >= -r && dy <= r && 2 * ax <= dy + r;
    case 3: {
        int d2 = dx * dx + dy * dy;
        return d2 <= r * r && 400 * d2 >= 121 * r * r; /* 0.55 r .. r */
    }
    case 4: return (4 * ax <= r && ay <= r) || (4 * ay <= r && ax <= r);
    case 5: return 4 * iabs(ax - ay) <= r && ax <= r && ay <= r;
    case 6: return 3 * ay <= r && ax <= r;
    case 7: return 3 * ax <= r && ay <= r;
    case 8: {
        int m = ax > ay ? ax : ay;
        return m <= r && 5 * m >= 3 * r; /* 0.6 r .. r */
    }
    default: return ax + ay <= r;
    }
}

static uint8_t clamp_u8(int v) { return (uint8_t)(v < 0 ? 0 : v > 255 ? 255 : v); }

/* Draw one image of class k into img (3, 32, 32). */
static void syn_draw(qb_rng *rng, int k, uint8_t *img)
{
    const int S = QB_SYN_SIDE, plane = QB_SYN_SIDE * QB_SYN_SIDE;
    int bg[3], fg[3];
    for (int c = 0; c < 3; c++) {
        bg[c] = (int)qb_rng_below(rng, QB_SYN_BG_MAX + 1);
        fg[c] = clamp_u8(syn_palette[k][c] + (int)qb_rng_below(rng, 2 * QB_SYN_JITTER + 1) -
                         QB_SYN_JITTER);
    }
    int r = 6 + (int)qb_rng_below(rng, 5);   /* radius 6..10 */
    int cx = 11 + (int)qb_rng_below(rng, 11); /* centre 11..21: shape stays inside */
    int cy = 11 + (int)qb_rng_below(rng, 11);
    /* Noise: one 64-bit draw gives 8 bytes, each mapped to -24..24. */
    uint64_t bits = 0;
    int left = 0;
    for (int y = 0; y < S; y++) {
        for (int x = 0; x < S; x++) {
            int in = syn_inside(k, x - cx, y - cy, r);
            for (int c = 0; c < 3; c++) {
                if (left == 0) {
                    bits = qb_rng_next(rng);
                    left = 8;
                }
                int noise = (int)(((bits & 0xff) * (2 * QB_SYN_NOISE + 1)) >> 8) - QB_SYN_NOISE;
                bits >>= 8;
                left--;
                /* Shapes get a quarter of the noise: still textured, never
                 * washed into the background. */
                int v = in ? fg[c] + noise / 4 : bg[c] + noise;
                img[c * plane + y * S + x] = clamp_u8(v);
            }
        }
    }
}

static void syn_split(uint64_t seed, const char *tag, size_t n, qb_dataset *d)
{
    qb_dataset_init(d, "synthetic", n, 3, QB_SYN_SIDE, QB_SYN_SIDE, QB_SYN_CLASSES);
    qb_rng rng;
    qb_rng_seed(&rng, qb_seed_derive(seed, tag));
    /* Balanced labels in random order. */
    uint32_t *lab = xmalloc(n, sizeof *lab);
    for (size_t i = 0; i < n; i++) lab[i] = (uint32_t)(i % QB_SYN_CLASSES);
    qb_rng_shuffle_u32(&rng, lab, n);
    size_t sz = qb_dataset_image_size(d);
    for (size_t i = 0; i < n; i++) {
        d->labels[i] = (uint8_t)lab[i];
        syn_draw(&rng, (int)lab[i], d->images + i * sz);
    }
    free(lab);
}

void qb_synthetic_generate(uint64_t seed, size_t n_train, size_t n_test, qb_dataset *train,
                           qb_dataset *test)
{
    QB_ASSERT(n_train <= UINT32_MAX && n_test <= UINT32_MAX);
    syn_split(seed, "synthetic/train", n_train, train);
    syn_split(seed, "synthetic/test", n_test, test);
}
