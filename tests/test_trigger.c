/* Triggers (pixel-exact, each kind, placement, validation) and BadNet
 * poisoning (count, candidates, relabelling, ground truth, determinism, the
 * ASR set). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/dataset.h"
#include "attacks/model_job.h"
#include "attacks/poison.h"
#include "core/rng.h"
#include "attacks/trigger.h"
#include "tests/testutil.h"

/* Image (c, h, w) filled with a fixed non-trivial pattern. */
static uint8_t *pattern_image(int c, int h, int w)
{
    uint8_t *img = malloc((size_t)c * h * w);
    assert_non_null(img);
    for (int i = 0; i < c * h * w; i++) img[i] = (uint8_t)(37 * i + 11);
    return img;
}

/* The default trigger of `kind` with another size and top-left corner. */
static qb_trigger placed(qb_trigger_kind kind, int size, int x, int y)
{
    qb_trigger t;
    qb_trigger_default(&t, kind);
    t.size = size;
    t.x = x;
    t.y = y;
    return t;
}

/* t passes validation on (c, h, w) images of 10 classes. */
static void expect_valid(const qb_trigger *t, int c, int h, int w)
{
    qb_error e = {0};
    assert_int_equal(qb_trigger_validate(t, c, h, w, 10, &e), 0);
}

/* A trigger, a pattern image (c, h, w) with it applied (img), and the
 * pattern (orig). */
typedef struct applied {
    qb_trigger t;
    uint8_t *img, *orig;
} applied;

/* With `validate`, t must first pass validation on such images. */
static applied stamp(qb_trigger t, int c, int h, int w, int validate)
{
    if (validate) expect_valid(&t, c, h, w);
    applied s = {t, pattern_image(c, h, w), pattern_image(c, h, w)};
    qb_trigger_apply(&t, s.img, c, h, w);
    return s;
}

static void applied_free(applied *s)
{
    free(s->img);
    free(s->orig);
}

/* ---- defaults, names ---------------------------------------------------- */

static void test_defaults_and_names(void **state)
{
    (void)state;
    qb_trigger t;
    qb_trigger_default(&t, QB_TRIGGER_CHECKER);
    assert_int_equal(t.kind, QB_TRIGGER_CHECKER);
    assert_int_equal(t.size, 3);
    assert_int_equal(t.x, -1);
    assert_int_equal(t.y, -1);
    assert_float_equal(t.alpha, 0.15f, 0);
    assert_int_equal(t.seed, 0x5EED);
    assert_int_equal(t.target, 0);

    static const struct {
        const char *name;
        qb_trigger_kind kind;
    } cases[] = {{"clean", QB_TRIGGER_NONE},     {"badnet", QB_TRIGGER_SQUARE},
                 {"square", QB_TRIGGER_SQUARE},  {"checker", QB_TRIGGER_CHECKER},
                 {"noise", QB_TRIGGER_NOISE},    {"blend", QB_TRIGGER_BLEND}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qb_error e = {0};
        memset(&t, 0x7f, sizeof t);
        assert_int_equal(qb_trigger_parse(cases[i].name, &t, &e), 0);
        assert_int_equal(t.kind, cases[i].kind);
        assert_int_equal(t.size, 3);
        assert_int_equal(t.target, 0);
    }
    for (int k = QB_TRIGGER_NONE; k <= QB_TRIGGER_BLEND; k++) {
        qb_error e = {0};
        assert_int_equal(qb_trigger_parse(qb_trigger_name((qb_trigger_kind)k), &t, &e), 0);
        assert_int_equal(t.kind, k);
    }
    qb_error e = {0};
    assert_int_equal(qb_trigger_parse("sqare", &t, &e), -1);
    qb_test_assert_msg_has(&e, "sqare");
    qb_test_assert_msg_has(&e, "checker");
}

/* ---- pixel-exact application -------------------------------------------- */

static void test_square_default_bottom_right(void **state)
{
    (void)state;
    enum { C = 3, H = 8, W = 10 };
    qb_trigger t;
    qb_trigger_default(&t, QB_TRIGGER_SQUARE);
    applied s = stamp(t, C, H, W, 1);
    const uint8_t *img = s.img, *orig = s.orig;
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                int i = (c * H + y) * W + x;
                int in = y >= H - 3 && x >= W - 3;
                assert_int_equal(img[i], in ? 255 : orig[i]);
            }
    applied_free(&s);
}

static void test_checker_placed(void **state)
{
    (void)state;
    enum { C = 2, H = 9, W = 7 };
    applied s = stamp(placed(QB_TRIGGER_CHECKER, 4, 1, 2), C, H, W, 1);
    const uint8_t *img = s.img, *orig = s.orig;
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                int i = (c * H + y) * W + x;
                if (x >= 1 && x < 5 && y >= 2 && y < 6)
                    assert_int_equal(img[i], ((x - 1) + (y - 2)) % 2 == 0 ? 255 : 0);
                else
                    assert_int_equal(img[i], orig[i]);
            }
    assert_int_equal(img[2 * W + 1], 255); /* white at the patch's top-left */
    applied_free(&s);
}

static void test_noise_fixed_pattern(void **state)
{
    (void)state;
    enum { C = 3, H = 12, W = 12 };
    applied s = stamp(placed(QB_TRIGGER_NOISE, 5, 0, 0), C, H, W, 0);
    qb_trigger *t = &s.t;
    uint8_t *a = s.img, *orig = s.orig, *b = pattern_image(C, H, W);
    int distinct = 0;
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
                int i = (c * H + y) * W + x;
                if (x < 5 && y < 5) {
                    uint64_t idx = (uint64_t)((c * 5 + y) * 5 + x);
                    int want = (int)(qb_hash_uniform(0x5EED, idx) * 256.0f);
                    assert_int_equal(a[i], want > 255 ? 255 : want);
                    distinct += a[i] != a[0];
                } else {
                    assert_int_equal(a[i], orig[i]);
                }
            }
    assert_true(distinct > 30); /* noise, not a flat patch */
    /* The same pattern wherever the patch goes. */
    t->x = -1;
    t->y = -2;
    qb_trigger_apply(t, b, C, H, W);
    for (int c = 0; c < C; c++)
        for (int y = 0; y < 5; y++)
            for (int x = 0; x < 5; x++)
                assert_int_equal(b[(c * H + y + H - 6) * W + x + W - 5], a[(c * H + y) * W + x]);
    /* Applying twice is the same as once: a fixed pattern. */
    memcpy(orig, a, (size_t)C * H * W);
    t->x = 0;
    t->y = 0;
    qb_trigger_apply(t, a, C, H, W);
    assert_memory_equal(a, orig, (size_t)C * H * W);
    /* Another seed, another pattern. */
    t->seed = 99;
    qb_trigger_apply(t, a, C, H, W);
    assert_true(memcmp(a, orig, (size_t)C * H * W) != 0);
    free(b);
    applied_free(&s);
}

static void test_blend(void **state)
{
    (void)state;
    enum { C = 3, H = 6, W = 5, N = C * H * W };
    qb_trigger t;
    qb_trigger_default(&t, QB_TRIGGER_BLEND);
    applied s = stamp(t, C, H, W, 1);
    uint8_t *img = s.img;
    const uint8_t *orig = s.orig;
    int changed = 0;
    for (int i = 0; i < N; i++) {
        double u = qb_hash_uniform(0x5EED, (uint64_t)i);
        double exact = (1.0 - 0.15) * orig[i] + 0.15 * u * 255.0;
        /* round() of the mix; float evaluation may differ from double only
         * at an exact .5 tie. */
        assert_true(fabs((double)img[i] - exact) <= 0.5 + 1e-4);
        changed += img[i] != orig[i];
    }
    assert_true(changed > N / 2);
    /* alpha = 1: the image becomes the noise pattern. */
    t.alpha = 1.0f;
    memcpy(img, orig, N);
    qb_trigger_apply(&t, img, C, H, W);
    for (int i = 0; i < N; i++)
        assert_int_equal(img[i], (int)roundf(qb_hash_uniform(0x5EED, (uint64_t)i) * 255.0f));
    applied_free(&s);
}

static void test_none_is_noop(void **state)
{
    (void)state;
    qb_trigger t;
    qb_trigger_default(&t, QB_TRIGGER_NONE);
    applied s = stamp(t, 3, 4, 4, 0);
    assert_memory_equal(s.img, s.orig, 48);
    expect_valid(&t, 3, 4, 4);
    applied_free(&s);
}

/* ---- placement and validation ------------------------------------------- */

/* Top-left corner where the square landed (first 255 in scan order). */
static void square_origin(const qb_trigger *t, int h, int w, int *px, int *py)
{
    uint8_t *img = calloc((size_t)h * w, 1);
    assert_non_null(img);
    qb_trigger_apply(t, img, 1, h, w);
    *px = *py = -1;
    for (int i = 0; i < h * w && *px < 0; i++)
        if (img[i] == 255) {
            *px = i % w;
            *py = i / w;
        }
    free(img);
}

static void test_positions(void **state)
{
    (void)state;
    qb_trigger t;
    qb_trigger_default(&t, QB_TRIGGER_SQUARE);
    static const struct {
        int x, y, size, px, py;
    } cases[] = {
        {-1, -1, 3, 17, 9}, /* flush bottom-right of 20 x 12 */
        {-2, -1, 3, 16, 9}, /* one pixel in from the right */
        {0, 0, 3, 0, 0},    {5, 2, 4, 5, 2}, {-20, -12, 1, 0, 0}, {-4, 0, 2, 15, 0},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        t.x = cases[i].x;
        t.y = cases[i].y;
        t.size = cases[i].size;
        expect_valid(&t, 1, 12, 20);
        int px, py;
        square_origin(&t, 12, 20, &px, &py);
        assert_int_equal(px, cases[i].px);
        assert_int_equal(py, cases[i].py);
    }
}

static void test_validate_errors(void **state)
{
    (void)state;
    static const struct {
        qb_trigger_kind kind;
        int size, x, y, target;
        float alpha;
        const char *frag;
    } cases[] = {
        {QB_TRIGGER_SQUARE, 0, -1, -1, 0, 0.15f, "size 0"},
        {QB_TRIGGER_SQUARE, 9, -1, -1, 0, 0.15f, "size 9"},
        {QB_TRIGGER_CHECKER, 3, 6, 0, 0, 0.15f, "x = 6"},     /* columns 6..8 of 8 */
        {QB_TRIGGER_CHECKER, 3, -7, 0, 0, 0.15f, "x = -7"},   /* columns -1..1 */
        {QB_TRIGGER_NOISE, 3, 0, -9, 0, 0.15f, "y = -9"},
        {QB_TRIGGER_NOISE, 3, 0, 8, 0, 0.15f, "y = 8"},
        {QB_TRIGGER_SQUARE, 3, -1, -1, 10, 0.15f, "target class 10"},
        {QB_TRIGGER_SQUARE, 3, -1, -1, -1, 0.15f, "target class -1"},
        {QB_TRIGGER_BLEND, 3, -1, -1, 0, 0.0f, "alpha"},
        {QB_TRIGGER_BLEND, 3, -1, -1, 0, 1.5f, "alpha"},
        {QB_TRIGGER_BLEND, 3, -1, -1, 0, NAN, "alpha"},
        {(qb_trigger_kind)17, 3, -1, -1, 0, 0.15f, "kind 17"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qb_trigger t;
        qb_trigger_default(&t, QB_TRIGGER_SQUARE);
        t.kind = cases[i].kind;
        t.size = cases[i].size;
        t.x = cases[i].x;
        t.y = cases[i].y;
        t.target = cases[i].target;
        t.alpha = cases[i].alpha;
        qb_error e = {0};
        assert_int_equal(qb_trigger_validate(&t, 3, 8, 8, 10, &e), -1);
        qb_test_assert_msg_has(&e, cases[i].frag);
    }
    /* Edges that are fine: full-image patch, alpha 1, blend ignores x/y. */
    qb_trigger t;
    qb_trigger_default(&t, QB_TRIGGER_SQUARE);
    t.size = 8;
    expect_valid(&t, 3, 8, 8);
    qb_trigger_default(&t, QB_TRIGGER_BLEND);
    t.alpha = 1.0f;
    t.x = 100;
    expect_valid(&t, 3, 8, 8);
}

/* ---- poisoning ------------------------------------------------------------ */

static void test_poison_contract(void **state)
{
    (void)state;
    qb_dataset clean, te, train;
    qb_synthetic_generate(5, 1000, 10, &clean, &te);
    qb_dataset_copy(&train, &clean);
    qb_trigger t;
    qb_trigger_default(&t, QB_TRIGGER_SQUARE);
    t.target = 3;
    qb_poison p;
    qb_error e = {0};
    assert_int_equal(qb_poison_apply(&train, &t, 0.123, 77, &p, &e), 0);
    assert_int_equal(p.n_poisoned, 123);
    size_t sz = qb_dataset_image_size(&clean), flagged = 0;
    uint8_t *stamped = malloc(sz);
    assert_non_null(stamped);
    for (size_t k = 0; k < p.n_poisoned; k++) {
        if (k) assert_true(p.indices[k] > p.indices[k - 1]); /* sorted, unique */
        assert_true(p.indices[k] < clean.n);
        assert_int_equal(p.is_poisoned[p.indices[k]], 1);
    }
    for (size_t i = 0; i < clean.n; i++) {
        assert_int_equal(p.orig_labels[i], clean.labels[i]);
        flagged += p.is_poisoned[i];
        if (p.is_poisoned[i]) {
            assert_int_not_equal(clean.labels[i], 3); /* never a target-class sample */
            assert_int_equal(train.labels[i], 3);
            memcpy(stamped, clean.images + i * sz, sz);
            qb_trigger_apply(&t, stamped, 3, 32, 32);
            assert_memory_equal(train.images + i * sz, stamped, sz);
        } else {
            assert_int_equal(p.is_poisoned[i], 0);
            assert_int_equal(train.labels[i], clean.labels[i]);
            assert_memory_equal(train.images + i * sz, clean.images + i * sz, sz);
        }
    }
    assert_int_equal(flagged, 123);

    /* Same seed: the same samples; another seed: others. */
    qb_dataset again;
    qb_dataset_copy(&again, &clean);
    qb_poison q;
    assert_int_equal(qb_poison_apply(&again, &t, 0.123, 77, &q, &e), 0);
    assert_memory_equal(q.indices, p.indices, p.n_poisoned * sizeof *p.indices);
    assert_memory_equal(again.images, train.images, clean.n * sz);
    qb_poison_free(&q);
    qb_dataset_free(&again);
    qb_dataset_copy(&again, &clean);
    assert_int_equal(qb_poison_apply(&again, &t, 0.123, 78, &q, &e), 0);
    assert_int_equal(q.n_poisoned, 123);
    assert_true(memcmp(q.indices, p.indices, p.n_poisoned * sizeof *p.indices) != 0);
    qb_poison_free(&q);
    qb_dataset_free(&again);

    /* round(rate * n): 0.0125 * 1000 = 12.5 -> 13; 0.0014 * 1000 = 1.4 -> 1. */
    qb_dataset_copy(&again, &clean);
    assert_int_equal(qb_poison_apply(&again, &t, 0.0125, 1, &q, &e), 0);
    assert_int_equal(q.n_poisoned, 13);
    qb_poison_free(&q);
    assert_int_equal(qb_poison_apply(&again, &t, 0.0014, 1, &q, &e), 0);
    assert_int_equal(q.n_poisoned, 1);
    qb_poison_free(&q);
    assert_int_equal(qb_poison_apply(&again, &t, 0.0, 1, &q, &e), 0);
    assert_int_equal(q.n_poisoned, 0);
    qb_poison_free(&q);
    /* All 900 non-target samples can be taken, not one more. */
    qb_dataset_free(&again);
    qb_dataset_copy(&again, &clean);
    assert_int_equal(qb_poison_apply(&again, &t, 0.9, 1, &q, &e), 0);
    assert_int_equal(q.n_poisoned, 900);
    for (size_t i = 0; i < again.n; i++) assert_int_equal(again.labels[i], 3);
    qb_poison_free(&q);
    qb_dataset_free(&again);

    free(stamped);
    qb_poison_free(&p);
    assert_null(p.indices);
    qb_dataset_free(&train);
    qb_dataset_free(&clean);
    qb_dataset_free(&te);
}

static void test_poison_errors(void **state)
{
    (void)state;
    qb_dataset tr, te;
    qb_synthetic_generate(5, 200, 10, &tr, &te);
    qb_dataset orig;
    qb_dataset_copy(&orig, &tr);
    qb_trigger t;
    qb_trigger_default(&t, QB_TRIGGER_SQUARE);
    static const struct {
        double rate;
        const char *frag;
    } cases[] = {{1.0, "outside [0, 1)"}, {-0.01, "outside [0, 1)"}, {NAN, "outside [0, 1)"},
                 {0.95, "only 180"}};
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qb_poison p;
        memset(&p, 0x5a, sizeof p);
        qb_error e = {0};
        assert_int_equal(qb_poison_apply(&tr, &t, cases[i].rate, 1, &p, &e), -1);
        qb_test_assert_msg_has(&e, cases[i].frag);
        assert_null(p.indices);
        assert_null(p.is_poisoned);
        assert_null(p.orig_labels);
        assert_int_equal(p.n_poisoned, 0);
    }
    /* A trigger that does not fit, and a clean trigger with a rate. */
    qb_poison p;
    qb_error e = {0};
    t.size = 40;
    assert_int_equal(qb_poison_apply(&tr, &t, 0.1, 1, &p, &e), -1);
    qb_test_assert_msg_has(&e, "size 40");
    assert_null(p.indices);
    qb_trigger_default(&t, QB_TRIGGER_NONE);
    assert_int_equal(qb_poison_apply(&tr, &t, 0.1, 1, &p, &e), -1);
    qb_test_assert_msg_has(&e, "clean");
    /* Failures leave the training set untouched. */
    assert_memory_equal(tr.images, orig.images, tr.n * qb_dataset_image_size(&tr));
    assert_memory_equal(tr.labels, orig.labels, tr.n);
    qb_dataset_free(&orig);
    qb_dataset_free(&tr);
    qb_dataset_free(&te);
}

static void test_asr_set(void **state)
{
    (void)state;
    qb_dataset tr, te, asr;
    qb_synthetic_generate(8, 10, 305, &tr, &te);
    qb_trigger t;
    qb_trigger_default(&t, QB_TRIGGER_CHECKER);
    t.target = 7;
    t.size = 4;
    qb_poison_asr_set(&te, &t, &asr);
    size_t non_target = 0;
    for (size_t i = 0; i < te.n; i++) non_target += te.labels[i] != 7;
    assert_int_equal(asr.n, non_target);
    assert_int_equal(asr.c, te.c);
    assert_int_equal(asr.classes, te.classes);
    size_t sz = qb_dataset_image_size(&te), j = 0;
    uint8_t *stamped = malloc(sz);
    assert_non_null(stamped);
    for (size_t i = 0; i < te.n; i++) {
        if (te.labels[i] == 7) continue;
        assert_int_not_equal(asr.labels[j], 7);
        assert_int_equal(asr.labels[j], te.labels[i]);
        memcpy(stamped, te.images + i * sz, sz);
        qb_trigger_apply(&t, stamped, te.c, te.h, te.w);
        assert_memory_equal(asr.images + j * sz, stamped, sz);
        assert_int_equal(asr.images[j * sz + 28 * 32 + 28], 255); /* the trigger is there */
        j++;
    }
    assert_int_equal(j, asr.n);
    free(stamped);
    qb_dataset_free(&asr);
    qb_dataset_free(&tr);
    qb_dataset_free(&te);
}


/* BackdoorBench's BadNet trigger on 32x32 images (resource/badnet/
 * generate_white_square.py: image_size 32, square_size 3, distance 0 to
 * the right and bottom edges) is white on rows and columns 29..31
 * (0-based): our default placement there. */
static void test_square_backdoorbench_32(void **state)
{
    (void)state;
    qb_trigger t;
    qb_trigger_default(&t, QB_TRIGGER_SQUARE);
    applied s = stamp(t, 3, 32, 32, 1);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 32; y++)
            for (int x = 0; x < 32; x++) {
                int i = (c * 32 + y) * 32 + x;
                int in = y >= 29 && y <= 31 && x >= 29 && x <= 31;
                assert_int_equal(s.img[i], in ? 255 : s.orig[i]);
            }
    applied_free(&s);
}

/* The trigger is stamped in pixel space, then normalised: a triggered
 * pixel reaches the model as (1 - mean) / std. Were the white value
 * written after normalisation (1.0, or 255) the model would see something
 * else; were the image normalised twice, too. Checked on the training set
 * as the model job builds it and on the ASR set. */
static void test_trigger_before_normalisation(void **state)
{
    (void)state;
    enum { C = 3, H = 8, W = 8, N = 40 };
    qb_dataset d;
    qb_dataset_init(&d, "t", N, C, H, W, 10);
    qb_rng r;
    qb_rng_seed(&r, 3);
    for (size_t i = 0; i < (size_t)N * C * H * W; i++) d.images[i] = (uint8_t)qb_rng_below(&r, 200);
    for (size_t i = 0; i < N; i++) d.labels[i] = (uint8_t)(i % 10);
    qb_model_job job;
    qb_model_job_default(&job);
    qb_trigger_default(&job.trigger, QB_TRIGGER_SQUARE);
    job.poison_rate = 0.5;
    job.norm = (qb_norm){1, {0.4f, 0.5f, 0.6f}, {0.2f, 0.25f, 0.3f}};
    qb_dataset data;
    qb_poison pz;
    qb_error err;
    assert_int_equal(qb_model_job_training_set(&job, &d, &data, &pz, &err), 0);
    assert_true(pz.n_poisoned > 0);
    float x[C * H * W];
    const uint32_t s = pz.indices[0];
    qb_dataset_batch_float(&data, &s, 0, 1, x);
    for (int c = 0; c < C; c++)
        for (int y = 0; y < H; y++)
            for (int xx = 0; xx < W; xx++) {
                int i = (c * H + y) * W + xx;
                int in = y >= H - 3 && xx >= W - 3;
                float p = in ? 1.0f : (float)d.images[(size_t)s * C * H * W + i] * (1.0f / 255.0f);
                assert_float_equal(x[i], (p - job.norm.mean[c]) / job.norm.std[c], 1e-6);
            }
    /* the ASR set keeps the normalisation and stamps on the pixels too */
    qb_dataset view = qb_dataset_view_norm(&d, &job.norm), asr;
    qb_poison_asr_set(&view, &job.trigger, &asr);
    qb_dataset_batch_float(&asr, NULL, 0, 1, x);
    assert_float_equal(x[(0 * H + H - 1) * W + W - 1], (1.0f - 0.4f) / 0.2f, 1e-6);
    assert_float_equal(x[(2 * H + H - 2) * W + W - 2], (1.0f - 0.6f) / 0.3f, 1e-6);
    qb_dataset_free(&asr);
    qb_poison_free(&pz);
    qb_dataset_free(&data);
    qb_dataset_free(&d);
}

int main(void)
{
    return qb_test_run_group(cmocka_unit_test(test_defaults_and_names),
                             cmocka_unit_test(test_square_default_bottom_right),
                             cmocka_unit_test(test_checker_placed),
                             cmocka_unit_test(test_noise_fixed_pattern),
                             cmocka_unit_test(test_blend), cmocka_unit_test(test_none_is_noop),
                             cmocka_unit_test(test_positions),
                             cmocka_unit_test(test_validate_errors),
                             cmocka_unit_test(test_poison_contract),
                             cmocka_unit_test(test_poison_errors), cmocka_unit_test(test_asr_set),
                             cmocka_unit_test(test_square_backdoorbench_32),
                             cmocka_unit_test(test_trigger_before_normalisation));
}
