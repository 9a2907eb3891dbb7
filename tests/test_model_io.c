/* The .qbm model format (core/model_io.h): save/load and encode/decode
 * round trips, rejection of every kind of broken file with a message that
 * names the file and what is wrong, and the atomic save.
 *
 * Corruptions that should be caught by a structural check (layer table,
 * n_params, architecture name, input shape) get their CRC recomputed, so
 * it is that check, not the checksum, that has to catch them. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "core/model.h"
#include "core/file.h"
#include "core/model_io.h"
#include "core/train.h"
#include "tests/testutil.h"

/* ---- helpers ------------------------------------------------------------ */

/* Offsets in a lenet file (core/model_io.h): header at 16, layer table at
 * 16 + 52, 40 bytes per layer, then n_params, metadata length, metadata. */
#define OFF_VERSION 8
#define OFF_HLEN 12
#define OFF_ARCH 16
#define OFF_IN_C (16 + 32)
#define OFF_IN_H (16 + 36)
#define OFF_IN_W (16 + 40)
#define OFF_N_LAYERS (16 + 48)
#define OFF_TABLE (16 + 52)
#define LENET_LAYERS 10
#define OFF_N_PARAMS (OFF_TABLE + LENET_LAYERS * 40)
#define OFF_META_LEN (OFF_N_PARAMS + 8)
#define OFF_META (OFF_META_LEN + 4)

static const char *const META = "arch=lenet\nseed=7\ndataset=fashion-mnist\n";

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* Recompute the trailing CRC-32 of a whole file image. */
static void fix_crc(uint8_t *buf, size_t len)
{
    put_u32(buf + len - 4, (uint32_t)crc32(0L, buf, (uInt)(len - 4)));
}

static void make_model(qb_model *m, const char *arch, int c, int h, int w, int classes,
                       uint64_t seed)
{
    qb_error err;
    assert_int_equal(qb_model_build(m, arch, c, h, w, classes, &err), 0);
    qb_model_init_params(m, seed);
}

static void assert_models_equal(const qb_model *a, const qb_model *b)
{
    assert_string_equal(a->arch, b->arch);
    assert_int_equal(a->in_c, b->in_c);
    assert_int_equal(a->in_h, b->in_h);
    assert_int_equal(a->in_w, b->in_w);
    assert_int_equal(a->classes, b->classes);
    assert_int_equal(a->n_layers, b->n_layers);
    assert_memory_equal(a->layers, b->layers, sizeof(qb_layer) * (size_t)a->n_layers);
    assert_int_equal(a->n_params, b->n_params);
    assert_memory_equal(a->params, b->params, a->n_params * sizeof(float)); /* bit-identical */
}

/* Entries of a directory other than . and .. */
static int dir_entries(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) n++;
    closedir(d);
    return n;
}

/* The encoded lenet file used by the corruption tests, and a temporary
 * directory to write broken copies in. */
typedef struct good_file {
    char *dir;
    qb_model m;
    uint8_t *buf;
    size_t len;
    size_t params_off; /* 16 + H */
} good_file;

static void good_file_init(good_file *g)
{
    qb_error err;
    qb_test_lenet(&g->m, 5);
    assert_int_equal(qb_model_encode(&g->m, META, &g->buf, &g->len, &err), 0);
    assert_int_equal(get_u32(g->buf + OFF_N_LAYERS), LENET_LAYERS);
    g->params_off = 16 + get_u32(g->buf + OFF_HLEN);
    assert_int_equal(g->params_off, OFF_META + strlen(META));
    assert_int_equal(g->len, g->params_off + 4 * g->m.n_params + 4);
}

/* The fixture of the corruption tests: *state = a good_file. */
static int corrupt_setup(void **state)
{
    good_file *g = malloc(sizeof *g);
    assert_non_null(g);
    g->dir = qb_test_tmpdir();
    good_file_init(g);
    *state = g;
    return 0;
}

static int corrupt_teardown(void **state)
{
    good_file *g = *state;
    free(g->buf);
    qb_model_free(&g->m);
    qb_test_tmpdir_remove(g->dir);
    free(g->dir);
    free(g);
    return 0;
}

#define corrupt_test(f) cmocka_unit_test_setup_teardown(f, corrupt_setup, corrupt_teardown)

/* Write bytes as dir/name, load them: must fail with a message naming the
 * file and containing every fragment (NULL-terminated list), allocating
 * nothing. Also decodes the same bytes from memory. */
static void expect_reject(const char *dir, const char *name, const uint8_t *bytes, size_t len,
                          const char *const *frags)
{
    char *path = qb_test_path_join(dir, name);
    qb_test_write_file(path, bytes, len);
    qb_model m;
    char *meta = (char *)1;
    qb_error err;
    memset(&err, 0, sizeof err);
    int rc = qb_model_load(&m, path, &meta, &err);
    if (rc == 0) {
        print_error("%s: loaded, but it is broken\n", name);
        fail();
    }
    assert_int_equal(rc, -1);
    assert_null(m.params);
    assert_null(meta);
    qb_test_assert_msg_has(&err, path);
    for (const char *const *f = frags; *f; f++) qb_test_assert_msg_has(&err, *f);
    /* decode from memory: the same verdict, named by `what` */
    memset(&err, 0, sizeof err);
    assert_int_equal(qb_model_decode(bytes, len, "in-memory.qbm", &m, NULL, &err), -1);
    assert_null(m.params);
    qb_test_assert_msg_has(&err, "in-memory.qbm");
    for (const char *const *f = frags; *f; f++) qb_test_assert_msg_has(&err, *f);
    free(path);
}

/* ---- round trips -------------------------------------------------------- */

static void test_save_load_round_trip(void **state)
{
    const char *dir = *state;
    qb_error err;
    static const struct { const char *arch; int c, h, w, classes; } cases[] = {
        {"lenet", 1, 28, 28, 10}, {"cnn-small", 3, 32, 32, 43}, {"lenet", 3, 32, 32, 2},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qb_model a, b;
        make_model(&a, cases[i].arch, cases[i].c, cases[i].h, cases[i].w, cases[i].classes,
                   100 + i);
        /* non-trivial bit patterns: negative zero, a denormal, the largest
         * finite float (a NaN payload used to be here: NaN and Inf are now
         * refused on load, test_non_finite_parameters_refused) */
        a.params[0] = -0.0f;
        a.params[1] = 1e-40f;
        uint32_t max_bits = 0x7f7fffffu;
        memcpy(&a.params[2], &max_bits, 4);
        char *path = qb_test_path_join(dir, "model.qbm");
        assert_int_equal(qb_model_save(&a, path, META, &err), 0);
        char *meta = NULL;
        assert_int_equal(qb_model_load(&b, path, &meta, &err), 0);
        assert_models_equal(&a, &b);
        assert_string_equal(meta, META);
        free(meta);
        qb_model_free(&b);
        /* meta NULL on save: loads as ""; meta NULL on load: not returned */
        assert_int_equal(qb_model_save(&a, path, NULL, &err), 0);
        assert_int_equal(qb_model_load(&b, path, &meta, &err), 0);
        assert_string_equal(meta, "");
        free(meta);
        qb_model_free(&b);
        assert_int_equal(qb_model_load(&b, path, NULL, &err), 0);
        assert_models_equal(&a, &b);
        qb_model_free(&b);
        free(path);
        qb_model_free(&a);
    }
}

static void test_encode_decode(void **state)
{
    const char *dir = *state;
    qb_error err;
    qb_model a, b;
    make_model(&a, "cnn-small", 3, 32, 32, 10, 9);
    uint8_t *buf;
    size_t len;
    assert_int_equal(qb_model_encode(&a, META, &buf, &len, &err), 0);
    assert_int_equal(len, 16 + 64 + 40 * (size_t)a.n_layers + strlen(META) + 4 * a.n_params + 4);
    assert_memory_equal(buf, "QBLMODEL", 8);
    assert_int_equal(get_u32(buf + OFF_VERSION), 1); /* a chain preset: version 1 */
    /* the file qb_model_save writes is exactly the encoded buffer */
    char *path = qb_test_path_join(dir, "m.qbm");
    assert_int_equal(qb_model_save(&a, path, META, &err), 0);
    uint8_t *file;
    size_t flen;
    assert_int_equal(qb_file_read_all(path, 1u << 30, &file, &flen, &err), 0);
    assert_int_equal(flen, len);
    assert_memory_equal(file, buf, len);
    char *meta;
    assert_int_equal(qb_model_decode(buf, len, "buffer", &b, &meta, &err), 0);
    assert_models_equal(&a, &b);
    assert_string_equal(meta, META);
    /* encoding is deterministic */
    uint8_t *buf2;
    size_t len2;
    assert_int_equal(qb_model_encode(&b, meta, &buf2, &len2, &err), 0);
    assert_int_equal(len2, len);
    assert_memory_equal(buf2, buf, len);
    free(buf2);
    free(meta);
    qb_model_free(&b);
    free(file);
    free(path);
    free(buf);
    qb_model_free(&a);
}

/* A model saved with a NaN or an infinite weight has a valid CRC: it is
 * refused on load all the same, naming the parameter and its offset. */
static void test_non_finite_parameters_refused(void **state)
{
    qb_error err;
    qb_model a, b;
    make_model(&a, "lenet", 1, 28, 28, 10, 3);
    const float bad[] = {NAN, INFINITY, -INFINITY};
    const size_t where[] = {0, a.n_params / 2, a.n_params - 1};
    for (size_t t = 0; t < 3; t++) {
        float keep = a.params[where[t]];
        a.params[where[t]] = bad[t];
        uint8_t *buf;
        size_t len;
        assert_int_equal(qb_model_encode(&a, META, &buf, &len, &err), 0);
        assert_int_equal(qb_model_decode(buf, len, "m.qbm", &b, NULL, &err), -1);
        qb_test_assert_msg_has(&err, "NaN or infinite weights");
        char want[64];
        snprintf(want, sizeof want, "parameter %zu of %zu", where[t], a.n_params);
        qb_test_assert_msg_has(&err, want);
        assert_null(b.params); /* nothing left allocated */
        free(buf);
        a.params[where[t]] = keep;
    }
    qb_model_free(&a);
}

static void test_metadata_limit(void **state)
{
    (void)state;
    qb_error err;
    qb_model a, b;
    qb_test_lenet(&a, 3);
    char *meta = malloc(QB_MODEL_META_MAX + 2);
    assert_non_null(meta);
    memset(meta, 'x', QB_MODEL_META_MAX + 1);
    meta[QB_MODEL_META_MAX + 1] = '\0';
    uint8_t *buf = NULL;
    size_t len = 0;
    memset(&err, 0, sizeof err);
    assert_int_equal(qb_model_encode(&a, meta, &buf, &len, &err), -1);
    assert_null(buf);
    qb_test_assert_msg_has(&err, "65537");
    qb_test_assert_msg_has(&err, "limit");
    meta[QB_MODEL_META_MAX] = '\0'; /* exactly the limit: accepted */
    assert_int_equal(qb_model_encode(&a, meta, &buf, &len, &err), 0);
    char *back;
    assert_int_equal(qb_model_decode(buf, len, "buffer", &b, &back, &err), 0);
    assert_int_equal(strlen(back), QB_MODEL_META_MAX);
    assert_string_equal(back, meta);
    free(back);
    qb_model_free(&b);
    free(buf);
    free(meta);
    qb_model_free(&a);
}

/* ---- corrupt files ------------------------------------------------------ */

static void test_truncated(void **state)
{
    const good_file *g = *state;
    const char *dir = g->dir;
    static const char *const smallest[] = {"shorter than the smallest", NULL};
    static const char *const header[] = {"header length", "truncated", NULL};
    static const char *const trunc[] = {"truncated", NULL};
    expect_reject(dir, "empty.qbm", g->buf, 0, smallest);
    expect_reject(dir, "t10.qbm", g->buf, 10, smallest);
    expect_reject(dir, "t83.qbm", g->buf, 83, smallest);
    expect_reject(dir, "t200.qbm", g->buf, 200, header);        /* inside the layer table */
    expect_reject(dir, "tmeta.qbm", g->buf, OFF_META + 3, header); /* inside the metadata */
    expect_reject(dir, "tparams0.qbm", g->buf, g->params_off, trunc); /* no parameters */
    expect_reject(dir, "tparams.qbm", g->buf, g->params_off + 4 * 1000 + 2, trunc); /* mid-params */
    expect_reject(dir, "nocrc.qbm", g->buf, g->len - 4, trunc);  /* all but the CRC */
    expect_reject(dir, "t1.qbm", g->buf, g->len - 1, trunc);
}

static void test_checksum(void **state)
{
    const good_file *g = *state;
    const char *dir = g->dir;
    static const char *const crc[] = {"checksum mismatch", "corrupt", NULL};
    size_t offs[] = {g->params_off + 4 * 1234 + 1, g->params_off, g->len - 5, OFF_META + 2,
                     g->len - 1};
    for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
        uint8_t *b = malloc(g->len);
        assert_non_null(b);
        memcpy(b, g->buf, g->len);
        b[offs[i]] ^= 0x10; /* one bit of a parameter, the metadata or the CRC */
        expect_reject(dir, "flip.qbm", b, g->len, crc);
        free(b);
    }
}

/* Apply `edit` to a copy of the good file, optionally fix the CRC, expect
 * rejection with the fragments. */
typedef void (*edit_fn)(uint8_t *b, size_t len);

static void reject_edited(const char *dir, const good_file *g, const char *name, edit_fn edit,
                          int recrc, const char *const *frags)
{
    uint8_t *b = malloc(g->len);
    assert_non_null(b);
    memcpy(b, g->buf, g->len);
    edit(b, g->len);
    if (recrc) fix_crc(b, g->len);
    expect_reject(dir, name, b, g->len, frags);
    free(b);
}

static void edit_magic(uint8_t *b, size_t len) { (void)len; b[3] = 'X'; }
static void edit_version(uint8_t *b, size_t len) { (void)len; put_u32(b + OFF_VERSION, 3); }
static void edit_hlen_huge(uint8_t *b, size_t len) { (void)len; put_u32(b + OFF_HLEN, 0xfffffff0u); }
static void edit_hlen_small(uint8_t *b, size_t len) { (void)len; put_u32(b + OFF_HLEN, 10); }
static void edit_hlen_plus4(uint8_t *b, size_t len)
{
    (void)len;
    put_u32(b + OFF_HLEN, get_u32(b + OFF_HLEN) + 4);
}
/* layer 0's kernel size (field 7) 5 -> 3 */
static void edit_layer_k(uint8_t *b, size_t len) { (void)len; put_u32(b + OFF_TABLE + 7 * 4, 3); }
/* layer 3 (second conv) out_c (field 4) 32 -> 31 */
static void edit_layer_oc(uint8_t *b, size_t len)
{
    (void)len;
    put_u32(b + OFF_TABLE + (3 * 10 + 4) * 4, 31);
}
/* layer 1's kind relu -> maxpool */
static void edit_layer_kind(uint8_t *b, size_t len)
{
    (void)len;
    put_u32(b + OFF_TABLE + 10 * 4, 2);
}
static void edit_n_layers_huge(uint8_t *b, size_t len) { (void)len; put_u32(b + OFF_N_LAYERS, QB_MAX_LAYERS + 1); }
static void edit_in_h(uint8_t *b, size_t len) { (void)len; put_u32(b + OFF_IN_H, 29); }
static void edit_in_c_huge(uint8_t *b, size_t len) { (void)len; put_u32(b + OFF_IN_C, 100000); }
static void edit_arch_unknown(uint8_t *b, size_t len)
{
    (void)len;
    memset(b + OFF_ARCH, 0, 32);
    memcpy(b + OFF_ARCH, "resnet", 6);
}
static void edit_arch_unterminated(uint8_t *b, size_t len)
{
    (void)len;
    memset(b + OFF_ARCH, 'a', 32);
}
static void edit_n_params_plus1(uint8_t *b, size_t len)
{
    (void)len;
    put_u64(b + OFF_N_PARAMS, 80202 + 1);
}
static void edit_n_params_huge(uint8_t *b, size_t len)
{
    (void)len;
    put_u64(b + OFF_N_PARAMS, (uint64_t)1 << 62);
}
static void edit_meta_len(uint8_t *b, size_t len)
{
    (void)len;
    put_u32(b + OFF_META_LEN, get_u32(b + OFF_META_LEN) + 1);
}

static void test_bad_fields(void **state)
{
    const good_file *g = *state;
    const char *dir = g->dir;
    assert_int_equal(g->m.n_params, 80202);
    static const char *const magic[] = {"bad magic", NULL};
    static const char *const version[] = {"version 3", "offset 8", NULL};
    static const char *const hlen[] = {"header length", "offset 12", NULL};
    static const char *const hlen4[] = {"metadata length", NULL};
    static const char *const layer_k[] = {"layer 0 field 7", "differs from architecture lenet", NULL};
    static const char *const layer_oc[] = {"layer 3 field 4", "differs", NULL};
    static const char *const layer_kind[] = {"layer 1 field 0", "differs", NULL};
    static const char *const nl[] = {"161 layers", "limit", NULL};
    static const char *const in_h[] = {"layer 0 field 2", "differs", NULL};
    static const char *const in_c[] = {"implausible input", NULL};
    static const char *const unknown[] = {"unknown architecture", "resnet", NULL};
    static const char *const unterm[] = {"architecture name", "not terminated", NULL};
    static const char *const np1[] = {"truncated", NULL};
    static const char *const nph[] = {"parameters announced", "truncated", NULL};
    static const char *const ml[] = {"metadata length", NULL};

    reject_edited(dir, g, "magic.qbm", edit_magic, 0, magic);
    reject_edited(dir, g, "version.qbm", edit_version, 1, version);
    reject_edited(dir, g, "hlen-huge.qbm", edit_hlen_huge, 1, hlen);
    reject_edited(dir, g, "hlen-small.qbm", edit_hlen_small, 1, hlen);
    reject_edited(dir, g, "hlen-plus4.qbm", edit_hlen_plus4, 1, hlen4);
    reject_edited(dir, g, "layer-k.qbm", edit_layer_k, 1, layer_k);
    reject_edited(dir, g, "layer-oc.qbm", edit_layer_oc, 1, layer_oc);
    reject_edited(dir, g, "layer-kind.qbm", edit_layer_kind, 1, layer_kind);
    reject_edited(dir, g, "n-layers.qbm", edit_n_layers_huge, 1, nl);
    reject_edited(dir, g, "in-h.qbm", edit_in_h, 1, in_h);
    reject_edited(dir, g, "in-c.qbm", edit_in_c_huge, 1, in_c);
    reject_edited(dir, g, "arch.qbm", edit_arch_unknown, 1, unknown);
    reject_edited(dir, g, "arch-unterminated.qbm", edit_arch_unterminated, 1, unterm);
    reject_edited(dir, g, "n-params-plus1.qbm", edit_n_params_plus1, 1, np1);
    reject_edited(dir, g, "n-params-huge.qbm", edit_n_params_huge, 1, nph);
    reject_edited(dir, g, "meta-len.qbm", edit_meta_len, 1, ml);
    /* without the CRC fix the same edits are still rejected (by something) */
    static const char *const any[] = {NULL};
    reject_edited(dir, g, "layer-k-nocrc.qbm", edit_layer_k, 0, any);
}

/* Regression: a small file whose header announces a huge input shape (64 x
 * 4096 x 4096 for cnn-small) used to make the loader allocate the
 * architecture's parameters before comparing them with the file (an abort
 * for out of memory). It must be an ordinary error, found without
 * allocating anything sized by the header. */
static void test_huge_shape_rejected_without_allocating(void **state)
{
    (void)state;
    qb_model m;
    qb_error err;
    make_model(&m, "cnn-small", 3, 32, 32, 10, 7);
    uint8_t *buf;
    size_t len;
    assert_int_equal(qb_model_encode(&m, NULL, &buf, &len, &err), 0);
    put_u32(buf + OFF_IN_C, 64);
    put_u32(buf + OFF_IN_H, 4096);
    put_u32(buf + OFF_IN_W, 4096);
    fix_crc(buf, len);
    qb_model out;
    assert_int_equal(qb_model_decode(buf, len, "huge.qbm", &out, NULL, &err), -1);
    assert_non_null(strstr(err.msg, "huge.qbm"));
    assert_null(out.params);
    free(buf);
    qb_model_free(&m);
}

/* n_params one smaller, one parameter fewer in the file and the CRC
 * recomputed: the size checks pass, so the comparison with the
 * architecture has to catch it. */
static void test_n_params_consistent_but_wrong(void **state)
{
    const good_file *g = *state;
    const char *dir = g->dir;
    size_t len = g->len - 4;
    uint8_t *b = malloc(len);
    assert_non_null(b);
    memcpy(b, g->buf, len - 4);
    put_u64(b + OFF_N_PARAMS, g->m.n_params - 1);
    fix_crc(b, len);
    static const char *const frags[] = {"80201 parameters", "does not match architecture lenet",
                                        "80202", NULL};
    expect_reject(dir, "n-params-minus1.qbm", b, len, frags);
    free(b);
}

static void test_trailing_garbage(void **state)
{
    const good_file *g = *state;
    const char *dir = g->dir;
    uint8_t *b = malloc(g->len + 5);
    assert_non_null(b);
    memcpy(b, g->buf, g->len);
    memcpy(b + g->len, "junk!", 5);
    static const char *const frags[] = {"trailing garbage", NULL};
    expect_reject(dir, "trailing.qbm", b, g->len + 5, frags);
    /* garbage with a CRC that matches it: still the size check */
    fix_crc(b, g->len + 5);
    expect_reject(dir, "trailing-crc.qbm", b, g->len + 5, frags);
    free(b);
}

static void test_load_not_a_file(void **state)
{
    const char *dir = *state;
    char *missing = qb_test_path_join(dir, "missing.qbm");
    qb_model m;
    char *meta = (char *)1;
    qb_error err;
    assert_int_equal(qb_model_load(&m, missing, &meta, &err), -1);
    qb_test_assert_msg_has(&err, missing);
    qb_test_assert_msg_has(&err, "cannot open");
    assert_null(m.params);
    assert_int_equal(qb_model_load(&m, dir, NULL, &err), -1); /* a directory */
    qb_test_assert_msg_has(&err, dir);
    assert_null(m.params);
    free(missing);
}

/* ---- atomic save --------------------------------------------------------- */

/* Saving a lenet as path must fail with path and frag in the message. */
static void expect_save_fails(const char *path, const char *frag)
{
    qb_model a;
    qb_test_lenet(&a, 1);
    qb_error err;
    memset(&err, 0, sizeof err);
    assert_int_equal(qb_model_save(&a, path, META, &err), -1);
    qb_test_assert_msg_has(&err, path);
    qb_test_assert_msg_has(&err, frag);
    qb_model_free(&a);
}

static void test_save_missing_directory(void **state)
{
    const char *dir = *state;
    char *path = qb_test_path_join(dir, "no/such/dir/model.qbm");
    expect_save_fails(path, "No such file or directory");
    assert_int_equal(dir_entries(dir), 0); /* no temporary left anywhere */
    free(path);
}

/* The final rename fails (the target is a directory): the temporary file,
 * already written and fsync'd, must be removed. */
static void test_save_rename_fails_no_temp_left(void **state)
{
    const char *dir = *state;
    char *target = qb_test_path_join(dir, "model.qbm");
    assert_int_equal(mkdir(target, 0755), 0);
    expect_save_fails(target, "renaming");
    assert_int_equal(dir_entries(dir), 1); /* only the directory itself */
    struct stat st;
    assert_int_equal(stat(target, &st), 0);
    assert_true(S_ISDIR(st.st_mode));
    free(target);
}

static void test_save_replaces_existing(void **state)
{
    const char *dir = *state;
    char *path = qb_test_path_join(dir, "model.qbm");
    qb_test_write_file(path, "not a model, and longer than nothing", 36);
    qb_model a, b, c;
    qb_test_lenet(&a, 1);
    qb_test_lenet(&b, 2);
    qb_error err;
    assert_int_equal(qb_model_save(&a, path, "first", &err), 0);
    assert_int_equal(dir_entries(dir), 1);
    char *meta;
    assert_int_equal(qb_model_load(&c, path, &meta, &err), 0);
    assert_models_equal(&a, &c);
    assert_string_equal(meta, "first");
    free(meta);
    qb_model_free(&c);
    /* saving b over a: the file is b */
    assert_int_equal(qb_model_save(&b, path, "second", &err), 0);
    assert_int_equal(dir_entries(dir), 1);
    assert_int_equal(qb_model_load(&c, path, &meta, &err), 0);
    assert_models_equal(&b, &c);
    assert_string_equal(meta, "second");
    free(meta);
    qb_model_free(&c);
    /* a failed save (metadata over the limit) leaves the existing file */
    char *big = malloc(QB_MODEL_META_MAX + 2);
    assert_non_null(big);
    memset(big, 'm', QB_MODEL_META_MAX + 1);
    big[QB_MODEL_META_MAX + 1] = '\0';
    assert_int_equal(qb_model_save(&a, path, big, &err), -1);
    free(big);
    assert_int_equal(dir_entries(dir), 1);
    assert_int_equal(qb_model_load(&c, path, NULL, &err), 0);
    assert_models_equal(&b, &c);
    qb_model_free(&c);
    qb_model_free(&b);
    qb_model_free(&a);
    free(path);
}

int main(void)
{
    return qb_test_run_group(qb_test_with_tmpdir(test_save_load_round_trip),
                             qb_test_with_tmpdir(test_encode_decode),
                             cmocka_unit_test(test_non_finite_parameters_refused),
                             cmocka_unit_test(test_metadata_limit), corrupt_test(test_truncated),
                             corrupt_test(test_checksum), corrupt_test(test_bad_fields),
                             corrupt_test(test_n_params_consistent_but_wrong),
                             cmocka_unit_test(test_huge_shape_rejected_without_allocating),
                             corrupt_test(test_trailing_garbage),
                             qb_test_with_tmpdir(test_load_not_a_file),
                             qb_test_with_tmpdir(test_save_missing_directory),
                             qb_test_with_tmpdir(test_save_rename_fails_no_temp_left),
                             qb_test_with_tmpdir(test_save_replaces_existing));
}
