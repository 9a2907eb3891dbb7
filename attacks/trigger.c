/* BadNet-family triggers.
 *
 * Patch triggers (square, checker, noise) overwrite a size x size patch in
 * every channel; blend mixes a whole-image noise pattern into the image.
 * Noise values come from qb_hash_uniform(seed, index), index counted inside
 * the pattern (patch-relative for NOISE, image-relative for BLEND), so a
 * trigger is fully described by its fields and needs no stored pattern. */
#include "attacks/trigger.h"

#include <math.h>
#include <string.h>

#include "core/rng.h"

#define QB_TRIGGER_DEFAULT_SEED 0x5EEDull

void qb_trigger_default(qb_trigger *t, qb_trigger_kind kind)
{
    memset(t, 0, sizeof *t);
    t->kind = kind;
    t->size = 3;
    t->x = -1;
    t->y = -1;
    t->alpha = 0.15f;
    t->seed = QB_TRIGGER_DEFAULT_SEED;
    t->target = 0;
}

static const struct {
    const char *name;
    qb_trigger_kind kind;
} trigger_names[] = {
    {"clean", QB_TRIGGER_NONE},   {"badnet", QB_TRIGGER_SQUARE}, {"square", QB_TRIGGER_SQUARE},
    {"checker", QB_TRIGGER_CHECKER}, {"noise", QB_TRIGGER_NOISE},   {"blend", QB_TRIGGER_BLEND},
};

int qb_trigger_parse(const char *name, qb_trigger *t, qb_error *err)
{
    for (size_t i = 0; i < sizeof trigger_names / sizeof trigger_names[0]; i++) {
        if (name && strcmp(name, trigger_names[i].name) == 0) {
            qb_trigger_default(t, trigger_names[i].kind);
            return 0;
        }
    }
    return QB_FAIL(err,
                   "unknown trigger '%s' (known: clean, badnet, square, checker, noise, blend)",
                   name ? name : "(null)");
}

const char *qb_trigger_name(qb_trigger_kind kind)
{
    switch (kind) {
    case QB_TRIGGER_NONE: return "clean";
    case QB_TRIGGER_SQUARE: return "square";
    case QB_TRIGGER_CHECKER: return "checker";
    case QB_TRIGGER_NOISE: return "noise";
    case QB_TRIGGER_BLEND: return "blend";
    }
    return "unknown";
}

/* Patch top-left in pixels along one axis of length len. Negative positions
 * count from the far edge: -1 puts the patch flush with it. */
static int patch_origin(int pos, int size, int len)
{
    return pos >= 0 ? pos : len + pos + 1 - size;
}

int qb_trigger_validate(const qb_trigger *t, int c, int h, int w, int classes, qb_error *err)
{
    if ((int)t->kind < QB_TRIGGER_NONE || (int)t->kind > QB_TRIGGER_BLEND)
        return QB_FAIL(err, "trigger kind %d is not one of clean, square, checker, noise, blend",
                       (int)t->kind);
    if (c < 1 || h < 1 || w < 1)
        return QB_FAIL(err, "trigger: image shape %dx%dx%d is empty", c, h, w);
    if (t->kind == QB_TRIGGER_NONE) return 0;
    if (t->target < 0 || t->target >= classes)
        return QB_FAIL(err, "trigger %s: target class %d outside 0..%d", qb_trigger_name(t->kind),
                       t->target, classes - 1);
    if (t->kind == QB_TRIGGER_BLEND) {
        /* The whole image is blended: size and position do not apply. */
        if (!(t->alpha > 0.0f && t->alpha <= 1.0f))
            return QB_FAIL(err, "trigger blend: alpha %g outside (0, 1]", (double)t->alpha);
        return 0;
    }
    if (t->size < 1 || t->size > h || t->size > w)
        return QB_FAIL(err, "trigger %s: size %d does not fit a %dx%d image (1..%d)",
                       qb_trigger_name(t->kind), t->size, h, w, h < w ? h : w);
    int px = patch_origin(t->x, t->size, w), py = patch_origin(t->y, t->size, h);
    if (px < 0 || px + t->size > w)
        return QB_FAIL(err, "trigger %s: x = %d puts the %d-pixel patch at columns %d..%d, outside "
                            "0..%d",
                       qb_trigger_name(t->kind), t->x, t->size, px, px + t->size - 1, w - 1);
    if (py < 0 || py + t->size > h)
        return QB_FAIL(err, "trigger %s: y = %d puts the %d-pixel patch at rows %d..%d, outside "
                            "0..%d",
                       qb_trigger_name(t->kind), t->y, t->size, py, py + t->size - 1, h - 1);
    return 0;
}

/* Noise byte of a pattern: uniform [0, 1) scaled to 0..255. */
static uint8_t noise_u8(uint64_t seed, uint64_t index)
{
    int v = (int)(qb_hash_uniform(seed, index) * 256.0f);
    return (uint8_t)(v > 255 ? 255 : v);
}

void qb_trigger_apply(const qb_trigger *t, uint8_t *img, int c, int h, int w)
{
    if (t->kind == QB_TRIGGER_NONE) return;
    const size_t plane = (size_t)h * (size_t)w;
    if (t->kind == QB_TRIGGER_BLEND) {
        QB_ASSERT(t->alpha > 0.0f && t->alpha <= 1.0f);
        const float a = t->alpha;
        for (size_t i = 0; i < (size_t)c * plane; i++) {
            float noise = qb_hash_uniform(t->seed, i);
            float v = roundf((1.0f - a) * (float)img[i] + a * noise * 255.0f);
            img[i] = (uint8_t)(v > 255.0f ? 255.0f : v < 0.0f ? 0.0f : v);
        }
        return;
    }
    const int s = t->size;
    const int px = patch_origin(t->x, s, w), py = patch_origin(t->y, s, h);
    QB_ASSERT(s >= 1 && px >= 0 && py >= 0 && px + s <= w && py + s <= h);
    for (int ch = 0; ch < c; ch++) {
        for (int i = 0; i < s; i++) {
            uint8_t *row = img + (size_t)ch * plane + (size_t)(py + i) * (size_t)w + (size_t)px;
            for (int j = 0; j < s; j++) {
                uint8_t v;
                switch (t->kind) {
                case QB_TRIGGER_SQUARE: v = 255; break;
                case QB_TRIGGER_CHECKER: v = ((i + j) & 1) ? 0 : 255; break;
                default: /* NOISE: patch-relative index, so moving the patch keeps its pattern */
                    v = noise_u8(t->seed, ((uint64_t)ch * (uint64_t)s + (uint64_t)i) * (uint64_t)s +
                                              (uint64_t)j);
                    break;
                }
                row[j] = v;
            }
        }
    }
}
