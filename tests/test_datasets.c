/* Dataset loaders: the real Fashion-MNIST files, and small IDX, CIFAR-10 and
 * GTSRB files written here in the real formats, good and broken. Broken
 * files must fail with a message naming the file and the byte offset (or
 * CSV line and field), and leave the outputs unallocated. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <zlib.h>

#include "core/dataset.h"
#include "tests/testutil.h"

#define FASHION_DIR "/usr/share/datasets/fashion-mnist"

/* ---- helpers ------------------------------------------------------------ */

static void mkdir_p(const char *path)
{
    char buf[2048];
    snprintf(buf, sizeof buf, "%s", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p == '/') {
            *p = '\0';
            mkdir(buf, 0755);
            *p = '/';
        }
    }
    mkdir(buf, 0755);
    struct stat st;
    assert_int_equal(stat(buf, &st), 0);
}

static void write_gz(const char *path, const void *data, size_t len)
{
    gzFile f = gzopen(path, "wb");
    assert_non_null(f);
    assert_int_equal(gzwrite(f, data, (unsigned)len), (int)len);
    assert_int_equal(gzclose(f), Z_OK);
}

static void put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* tr has n_tr and te n_te images, tr's of c x h x w in `classes` classes. */
static void check_sizes(const qb_dataset *tr, const qb_dataset *te, size_t n_tr, size_t n_te,
                        int c, int h, int w, int classes)
{
    assert_int_equal(tr->n, n_tr);
    assert_int_equal(te->n, n_te);
    assert_int_equal(tr->c, c);
    assert_int_equal(tr->h, h);
    assert_int_equal(tr->w, w);
    assert_int_equal(tr->classes, classes);
}

static void assert_unallocated(const qb_dataset *d)
{
    assert_null(d->images);
    assert_null(d->labels);
    assert_int_equal(d->n, 0);
}

/* IDX image file bytes: n images of rows x cols, pixel (i, k) = (7i + k) & 255. */
static uint8_t *idx_images(uint32_t magic, uint32_t n_header, uint32_t n, uint32_t rows,
                           uint32_t cols, size_t *len)
{
    *len = 16 + (size_t)n * rows * cols;
    uint8_t *b = malloc(*len);
    assert_non_null(b);
    put_be32(b, magic);
    put_be32(b + 4, n_header);
    put_be32(b + 8, rows);
    put_be32(b + 12, cols);
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < (size_t)rows * cols; k++)
            b[16 + i * rows * cols + k] = (uint8_t)((7 * i + k) & 255);
    return b;
}

/* IDX label file bytes: label i = (3i + 1) % 10. */
static uint8_t *idx_labels(uint32_t magic, uint32_t n_header, uint32_t n, size_t *len)
{
    *len = 8 + n;
    uint8_t *b = malloc(*len);
    assert_non_null(b);
    put_be32(b, magic);
    put_be32(b + 4, n_header);
    for (uint32_t i = 0; i < n; i++) b[8 + i] = (uint8_t)((3 * i + 1) % 10);
    return b;
}

/* The bytes of a good IDX pair: n images of 4x3 (idx_images) and their n
 * labels (idx_labels), headers announcing n. */
typedef struct idx_pair {
    uint8_t *im, *lb;
    size_t li, ll;
} idx_pair;

static void idx_pair_init(idx_pair *p, uint32_t n)
{
    p->im = idx_images(2051, n, n, 4, 3, &p->li);
    p->lb = idx_labels(2049, n, n, &p->ll);
}

static void idx_pair_free(idx_pair *p)
{
    free(p->im);
    free(p->lb);
}

/* Write a good IDX pair (n images of 4x3) as dir/<prefix>-{images-idx3,labels-idx1}-ubyte[.gz]. */
static void write_idx_pair(const char *dir, const char *prefix, uint32_t n, int gz)
{
    char p[1024];
    size_t li, ll;
    uint8_t *im = idx_images(2051, n, n, 4, 3, &li);
    uint8_t *lb = idx_labels(2049, n, n, &ll);
    snprintf(p, sizeof p, "%s/%s-images-idx3-ubyte%s", dir, prefix, gz ? ".gz" : "");
    if (gz) write_gz(p, im, li); else qb_test_write_file(p, im, li);
    snprintf(p, sizeof p, "%s/%s-labels-idx1-ubyte%s", dir, prefix, gz ? ".gz" : "");
    if (gz) write_gz(p, lb, ll); else qb_test_write_file(p, lb, ll);
    free(im);
    free(lb);
}

static void check_idx_content(const qb_dataset *d, uint32_t n)
{
    assert_int_equal(d->n, n);
    assert_int_equal(d->c, 1);
    assert_int_equal(d->h, 4);
    assert_int_equal(d->w, 3);
    assert_int_equal(d->classes, 10);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(d->labels[i], (3 * i + 1) % 10);
        for (size_t k = 0; k < 12; k++)
            assert_int_equal(d->images[i * 12 + k], (7 * i + k) & 255);
    }
}

/* Runs qb_idx_load on the given bytes (written plain or gz) and expects a
 * failure whose message has both the path of `which` file and `frag`. */
static void expect_idx_error(const uint8_t *im, size_t li, const uint8_t *lb, size_t ll, int gz,
                             int which_labels, const char *frag)
{
    char *dir = qb_test_tmpdir();
    char *pi = qb_test_path_join(dir, gz ? "img.gz" : "img");
    char *pl = qb_test_path_join(dir, gz ? "lab.gz" : "lab");
    if (gz) {
        write_gz(pi, im, li);
        write_gz(pl, lb, ll);
    } else {
        qb_test_write_file(pi, im, li);
        qb_test_write_file(pl, lb, ll);
    }
    qb_dataset d;
    memset(&d, 0xAB, sizeof d);
    qb_error e = {0};
    assert_int_equal(qb_idx_load(pi, pl, "t", &d, &e), -1);
    qb_test_assert_msg_has(&e, which_labels ? pl : pi);
    qb_test_assert_msg_has(&e, frag);
    assert_unallocated(&d);
    free(pi);
    free(pl);
    qb_test_tmpdir_remove(dir);
    free(dir);
}

/* ---- containers ----------------------------------------------------------- */

static void test_container_ops(void **state)
{
    (void)state;
    qb_dataset d, c, s;
    qb_dataset_init(&d, "toy", 4, 2, 2, 3, 5);
    assert_int_equal(qb_dataset_image_size(&d), 12);
    for (size_t i = 0; i < 48; i++) assert_int_equal(d.images[i], 0);
    for (size_t i = 0; i < 48; i++) d.images[i] = (uint8_t)(i * 5);
    for (int i = 0; i < 4; i++) d.labels[i] = (uint8_t)(4 - i);
    qb_dataset_copy(&c, &d);
    assert_ptr_not_equal(c.images, d.images);
    assert_memory_equal(c.images, d.images, 48);
    assert_memory_equal(c.labels, d.labels, 4);
    assert_string_equal(c.name, "toy");
    uint32_t idx[2] = {3, 1};
    qb_dataset_subset(&s, &d, idx, 2);
    assert_int_equal(s.n, 2);
    assert_memory_equal(s.images, d.images + 36, 12);
    assert_memory_equal(s.images + 12, d.images + 12, 12);
    assert_int_equal(s.labels[0], 1);
    assert_int_equal(s.labels[1], 3);
    float f[24];
    qb_dataset_batch_float(&d, NULL, 2, 2, f);
    for (int k = 0; k < 24; k++) assert_float_equal(f[k], d.images[24 + k] / 255.0f, 1e-7);
    qb_dataset_batch_float(&d, idx, 0, 2, f);
    for (int k = 0; k < 12; k++) assert_float_equal(f[k], d.images[36 + k] / 255.0f, 1e-7);
    qb_dataset_free(&d);
    qb_dataset_free(&c);
    qb_dataset_free(&s);
    assert_null(d.images);
}

/* ---- Fashion-MNIST: the real files ------------------------------------ */

static void test_fashion_mnist_real(void **state)
{
    (void)state;
    struct stat st;
    if (stat(FASHION_DIR "/train-images-idx3-ubyte.gz", &st) != 0) {
        print_message("SKIP: " FASHION_DIR " absent (apt-get install dataset-fashion-mnist)\n");
        skip();
    }
    unsetenv("QBLIND_DATA_DIR");
    qb_dataset tr, te;
    qb_error e = {0};
    if (qb_dataset_load("fashion-mnist", NULL, 0, &tr, &te, &e) != 0) {
        print_error("%s\n", e.msg);
        fail();
    }
    check_sizes(&tr, &te, 60000, 10000, 1, 28, 28, 10);
    size_t ct[10] = {0}, ce[10] = {0};
    for (size_t i = 0; i < tr.n; i++) ct[tr.labels[i]]++;
    for (size_t i = 0; i < te.n; i++) ce[te.labels[i]]++;
    for (int k = 0; k < 10; k++) {
        assert_int_equal(ct[k], 6000);
        assert_int_equal(ce[k], 1000);
    }
    /* Reference values from an independent reader (Python gzip). */
    static const uint8_t first_train[10] = {9, 0, 0, 3, 0, 2, 7, 2, 5, 5};
    static const uint8_t first_test[10] = {9, 2, 1, 1, 6, 1, 4, 6, 5, 7};
    assert_memory_equal(tr.labels, first_train, 10);
    assert_memory_equal(te.labels, first_test, 10);
    uint64_t sum_tr = 0, sum_te = 0, sum0 = 0;
    for (size_t i = 0; i < tr.n * 784; i++) sum_tr += tr.images[i];
    for (size_t i = 0; i < te.n * 784; i++) sum_te += te.images[i];
    for (size_t i = 0; i < 784; i++) sum0 += tr.images[i];
    assert_int_equal(sum_tr, 3431114169ull);
    assert_int_equal(sum_te, 573469082ull);
    assert_int_equal(sum0, 76247);
    qb_dataset_free(&tr);
    qb_dataset_free(&te);
}

/* ---- IDX ------------------------------------------------------------------ */

static void test_idx_good_plain_and_gz(void **state)
{
    (void)state;
    for (int gz = 0; gz <= 1; gz++) {
        char *dir = qb_test_tmpdir();
        write_idx_pair(dir, "train", 7, gz);
        char pi[1024], pl[1024];
        snprintf(pi, sizeof pi, "%s/train-images-idx3-ubyte%s", dir, gz ? ".gz" : "");
        snprintf(pl, sizeof pl, "%s/train-labels-idx1-ubyte%s", dir, gz ? ".gz" : "");
        qb_dataset d;
        qb_error e = {0};
        assert_int_equal(qb_idx_load(pi, pl, "mnist", &d, &e), 0);
        check_idx_content(&d, 7);
        assert_string_equal(d.name, "mnist");
        qb_dataset_free(&d);
        qb_test_tmpdir_remove(dir);
        free(dir);
    }
}

static void test_idx_bad_magic(void **state)
{
    (void)state;
    idx_pair p;
    idx_pair_init(&p, 3);
    put_be32(p.im, 2049); /* an images file with the labels' magic */
    expect_idx_error(p.im, p.li, p.lb, p.ll, 0, 0, "byte offset 0");
    expect_idx_error(p.im, p.li, p.lb, p.ll, 1, 0, "bad magic");
    put_be32(p.im, 2051);
    p.lb[3] = 0x03; /* labels file claiming to be images */
    expect_idx_error(p.im, p.li, p.lb, p.ll, 0, 1, "byte offset 0");
    idx_pair_free(&p);
}

static void test_idx_count_mismatch(void **state)
{
    (void)state;
    idx_pair p;
    idx_pair_init(&p, 3);
    size_t ll4, li;
    uint8_t *lb4 = idx_labels(2049, 4, 4, &ll4);
    expect_idx_error(p.im, p.li, lb4, ll4, 1, 1, "byte offset 4");
    free(lb4);
    /* Header count larger than the payload: reported where the data ends. */
    uint8_t *im2 = idx_images(2051, 5, 3, 4, 3, &li);
    expect_idx_error(im2, li, p.lb, p.ll, 0, 0, "byte offset 52");
    free(im2);
    idx_pair_free(&p);
}

static void test_idx_truncated(void **state)
{
    idx_pair p;
    idx_pair_init(&p, 3);
    uint8_t *im = p.im, *lb = p.lb;
    size_t li = p.li, ll = p.ll;
    /* Cut the image payload after 20 of 36 bytes: offset 16 + 20. */
    expect_idx_error(im, 36, lb, ll, 0, 0, "byte offset 36");
    expect_idx_error(im, 36, lb, ll, 1, 0, "byte offset 36");
    /* Cut inside the header. */
    expect_idx_error(im, 10, lb, ll, 0, 0, "byte offset 10");
    /* Labels cut short. */
    expect_idx_error(im, li, lb, ll - 1, 0, 1, "byte offset 10");
    /* A gzip stream cut in the middle (compressed bytes missing). */
    const char *dir = *state;
    char *pi = qb_test_path_join(dir, "img.gz"), *pl = qb_test_path_join(dir, "lab");
    size_t big_n = 2000;
    size_t bl;
    uint8_t *big = idx_images(2051, (uint32_t)big_n, (uint32_t)big_n, 4, 3, &bl);
    uint8_t *blb = idx_labels(2049, (uint32_t)big_n, (uint32_t)big_n, &ll);
    write_gz(pi, big, bl);
    FILE *f = fopen(pi, "rb");
    assert_non_null(f);
    uint8_t gzbuf[65536];
    size_t gl = fread(gzbuf, 1, sizeof gzbuf, f);
    fclose(f);
    assert_true(gl > 100);
    qb_test_write_file(pi, gzbuf, gl / 2);
    qb_test_write_file(pl, blb, ll);
    qb_dataset d;
    qb_error e = {0};
    assert_int_equal(qb_idx_load(pi, pl, "t", &d, &e), -1);
    qb_test_assert_msg_has(&e, pi);
    qb_test_assert_msg_has(&e, "byte offset");
    assert_unallocated(&d);
    free(big);
    free(blb);
    free(pi);
    free(pl);
    idx_pair_free(&p);
}

static void test_idx_label_out_of_range_and_trailing(void **state)
{
    (void)state;
    idx_pair p;
    idx_pair_init(&p, 5);
    p.lb[8 + 3] = 10;
    expect_idx_error(p.im, p.li, p.lb, p.ll, 0, 1, "byte offset 11");
    expect_idx_error(p.im, p.li, p.lb, p.ll, 1, 1, "label 10 out of range");
    p.lb[8 + 3] = 1;
    /* One byte more than announced. */
    uint8_t *im2 = malloc(p.li + 1);
    memcpy(im2, p.im, p.li);
    im2[p.li] = 0;
    expect_idx_error(im2, p.li + 1, p.lb, p.ll, 0, 0, "byte offset 76");
    free(im2);
    idx_pair_free(&p);
}

static void test_idx_hostile_header(void **state)
{
    (void)state;
    size_t li, ll;
    uint8_t *lb = idx_labels(2049, 3, 3, &ll);
    /* 4 billion images announced: refused from the header, nothing allocated. */
    uint8_t *im = idx_images(2051, 0xFFFFFFFFu, 3, 4, 3, &li);
    expect_idx_error(im, li, lb, ll, 0, 0, "byte offset 4");
    free(im);
    im = idx_images(2051, 3, 3, 0, 3, &li);
    expect_idx_error(im, li, lb, ll, 0, 0, "byte offset 8");
    free(im);
    im = idx_images(2051, 3, 3, 4, 100000, &li);
    expect_idx_error(im, 16, lb, ll, 0, 0, "byte offset 12");
    free(im);
    /* Within limits but far more than the file holds: a clean short-read
     * error, not a 10-million-image allocation. */
    im = idx_images(2051, 10000000u, 3, 28, 28, &li);
    expect_idx_error(im, li, lb, ll, 0, 0, "file ends inside the image data");
    free(im);
    free(lb);
}

static void test_idx_missing_file(void **state)
{
    const char *dir = *state;
    char *pi = qb_test_path_join(dir, "nope-images"), *pl = qb_test_path_join(dir, "nope-labels");
    qb_dataset d;
    qb_error e = {0};
    assert_int_equal(qb_idx_load(pi, pl, "t", &d, &e), -1);
    qb_test_assert_msg_has(&e, pi);
    assert_unallocated(&d);
    /* a FIFO or a directory: refused without blocking, saying what it is */
    assert_int_equal(mkfifo(pi, 0600), 0);
    assert_int_equal(qb_idx_load(pi, pl, "t", &d, &e), -1);
    qb_test_assert_msg_has(&e, "nope-images is a FIFO (named pipe), not a regular file");
    assert_unallocated(&d);
    assert_int_equal(remove(pi), 0);
    assert_int_equal(mkdir(pi, 0755), 0);
    assert_int_equal(qb_idx_load(pi, pl, "t", &d, &e), -1);
    qb_test_assert_msg_has(&e, "nope-images is a directory, not a regular file");
    assert_unallocated(&d);
    free(pi);
    free(pl);
}

/* ---- search order and the "not found" message ----------------------------- */

static void test_load_mnist_search_order(void **state)
{
    const char *root = *state;
    char *explicit_dir = qb_test_path_join(root, "explicit"), *env_dir = qb_test_path_join(root, "env");
    char *exp_mnist = qb_test_path_join(explicit_dir, "mnist");
    mkdir_p(exp_mnist);
    mkdir_p(env_dir);
    /* explicit/mnist/: 6 train (plain), 2 test (gz); env/: 9 train, 3 test. */
    write_idx_pair(exp_mnist, "train", 6, 0);
    write_idx_pair(exp_mnist, "t10k", 2, 1);
    write_idx_pair(env_dir, "train", 9, 1);
    write_idx_pair(env_dir, "t10k", 3, 0);
    setenv("QBLIND_DATA_DIR", env_dir, 1);
    qb_dataset tr, te;
    qb_error e = {0};
    assert_int_equal(qb_dataset_load("mnist", explicit_dir, 0, &tr, &te, &e), 0);
    check_idx_content(&tr, 6);
    check_idx_content(&te, 2);
    qb_dataset_free(&tr);
    qb_dataset_free(&te);
    /* No explicit dir (or an empty one): the environment variable. */
    assert_int_equal(qb_dataset_load("mnist", NULL, 0, &tr, &te, &e), 0);
    check_idx_content(&tr, 9);
    check_idx_content(&te, 3);
    qb_dataset_free(&tr);
    qb_dataset_free(&te);
    char *empty = qb_test_path_join(root, "empty");
    mkdir_p(empty);
    assert_int_equal(qb_dataset_load("mnist", empty, 0, &tr, &te, &e), 0);
    assert_int_equal(tr.n, 9);
    qb_dataset_free(&tr);
    qb_dataset_free(&te);
    /* Present but broken in the first place searched: reported, not skipped. */
    char p[1024];
    snprintf(p, sizeof p, "%s/t10k-labels-idx1-ubyte.gz", exp_mnist);
    remove(p);
    memset(&e, 0, sizeof e);
    assert_int_equal(qb_dataset_load("mnist", explicit_dir, 0, &tr, &te, &e), -1);
    qb_test_assert_msg_has(&e, "t10k-labels-idx1-ubyte");
    qb_test_assert_msg_has(&e, exp_mnist);
    assert_unallocated(&tr);
    assert_unallocated(&te);
    unsetenv("QBLIND_DATA_DIR");
    free(empty);
    free(exp_mnist);
    free(explicit_dir);
    free(env_dir);
}

static void test_missing_dataset_message(void **state)
{
    const char *root = *state;
    char *explicit_dir = qb_test_path_join(root, "mine"), *env_dir = qb_test_path_join(root, "envdir");
    setenv("QBLIND_DATA_DIR", env_dir, 1);
    static const struct {
        const char *name, *hint;
    } cases[] = {
        {"mnist", "yann.lecun.com"},
        {"cifar10", "https://www.cs.toronto.edu/~kriz/cifar.html"},
        {"gtsrb", "GTSRB_Final_Test_GT"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qb_dataset tr, te;
        qb_error e = {0};
        assert_int_equal(qb_dataset_load(cases[i].name, explicit_dir, 0, &tr, &te, &e), -1);
        char want[1024];
        snprintf(want, sizeof want, "%s/%s", explicit_dir, cases[i].name);
        qb_test_assert_msg_has(&e, want);
        snprintf(want, sizeof want, "%s/%s", env_dir, cases[i].name);
        qb_test_assert_msg_has(&e, want);
        snprintf(want, sizeof want, "%s, ", explicit_dir);
        qb_test_assert_msg_has(&e, want);
        qb_test_assert_msg_has(&e, cases[i].hint);
        qb_test_assert_msg_has(&e, "not found");
        assert_unallocated(&tr);
        assert_unallocated(&te);
    }
    /* Fashion-MNIST names its Debian package and path too. */
    qb_dataset tr, te;
    qb_error e = {0};
    struct stat st;
    if (stat(FASHION_DIR, &st) != 0) {
        assert_int_equal(qb_dataset_load("fashion-mnist", explicit_dir, 0, &tr, &te, &e), -1);
        qb_test_assert_msg_has(&e, FASHION_DIR);
        qb_test_assert_msg_has(&e, "apt-get install dataset-fashion-mnist");
    }
    assert_int_equal(qb_dataset_load("imagenet", NULL, 0, &tr, &te, &e), -1);
    qb_test_assert_msg_has(&e, "imagenet");
    qb_test_assert_msg_has(&e, "cifar10");
    unsetenv("QBLIND_DATA_DIR");
    free(explicit_dir);
    free(env_dir);
}

static void test_dataset_names(void **state)
{
    (void)state;
    const char *want[] = {"fashion-mnist", "mnist", "cifar10", "gtsrb", "synthetic"};
    int i = 0;
    for (; qb_dataset_names[i]; i++) {
        assert_true(i < 5);
        assert_string_equal(qb_dataset_names[i], want[i]);
    }
    assert_int_equal(i, 5);
}

/* qb_dataset_load of `name` from root, QBLIND_DATA_DIR unset, must
 * succeed, and `check` pass on what it loaded. */
static void expect_loads_by_name(const char *name, const char *root,
                                 void (*check)(const qb_dataset *tr, const qb_dataset *te))
{
    qb_dataset tr, te;
    qb_error e = {0};
    unsetenv("QBLIND_DATA_DIR");
    if (qb_dataset_load(name, root, 0, &tr, &te, &e) != 0) {
        print_error("%s\n", e.msg);
        fail();
    }
    check(&tr, &te);
    qb_dataset_free(&tr);
    qb_dataset_free(&te);
}

/* ---- CIFAR-10 ------------------------------------------------------------- */

enum { CIFAR_REC = 3073 };

/* Record r of file f: label (f + r) % 10; pixel k = (k + 31 f + 7 r) & 255. */
static uint8_t *cifar_batch(int f, int records)
{
    uint8_t *b = malloc((size_t)records * CIFAR_REC);
    assert_non_null(b);
    for (int r = 0; r < records; r++) {
        b[(size_t)r * CIFAR_REC] = (uint8_t)((f + r) % 10);
        for (int k = 0; k < 3072; k++)
            b[(size_t)r * CIFAR_REC + 1 + k] = (uint8_t)((k + 31 * f + 7 * r) & 255);
    }
    return b;
}

static const int cifar_counts[6] = {3, 4, 5, 3, 4, 3}; /* batches 1..5, test */

static void write_cifar(const char *dir)
{
    mkdir_p(dir);
    char p[1024];
    for (int f = 0; f < 6; f++) {
        if (f < 5) snprintf(p, sizeof p, "%s/data_batch_%d.bin", dir, f + 1);
        else snprintf(p, sizeof p, "%s/test_batch.bin", dir);
        uint8_t *b = cifar_batch(f, cifar_counts[f]);
        qb_test_write_file(p, b, (size_t)cifar_counts[f] * CIFAR_REC);
        free(b);
    }
}

static void check_cifar(const qb_dataset *tr, const qb_dataset *te)
{
    check_sizes(tr, te, 19, 3, 3, 32, 32, 10);
    size_t s = 0;
    for (int f = 0; f < 6; f++) {
        const qb_dataset *d = f < 5 ? tr : te;
        if (f == 5) s = 0;
        for (int r = 0; r < cifar_counts[f]; r++, s++) {
            assert_int_equal(d->labels[s], (f + r) % 10);
            /* R plane first, row-major: (c, h, w) as stored. */
            for (int k = 0; k < 3072; k += 97)
                assert_int_equal(d->images[s * 3072 + (size_t)k], (k + 31 * f + 7 * r) & 255);
        }
    }
}

static void test_cifar_good(void **state)
{
    const char *root = *state;
    /* The tarball's own folder name under <dir>/cifar10/ is found. */
    char *dir = qb_test_path_join(root, "cifar10/cifar-10-batches-bin");
    write_cifar(dir);
    qb_dataset tr, te;
    qb_error e = {0};
    assert_int_equal(qb_cifar10_load(dir, &tr, &te, &e), 0);
    check_cifar(&tr, &te);
    qb_dataset_free(&tr);
    qb_dataset_free(&te);
    expect_loads_by_name("cifar10", root, check_cifar);
    free(dir);
}

static void expect_cifar_error(const char *dir, const char *file, const char *frag)
{
    qb_dataset tr, te;
    qb_error e = {0};
    assert_int_equal(qb_cifar10_load(dir, &tr, &te, &e), -1);
    char *p = qb_test_path_join(dir, file);
    qb_test_assert_msg_has(&e, p);
    qb_test_assert_msg_has(&e, frag);
    free(p);
    assert_unallocated(&tr);
    assert_unallocated(&te);
}

static void test_cifar_bad(void **state)
{
    const char *dir = *state;
    char *p3 = qb_test_path_join(dir, "data_batch_3.bin"), *pt = qb_test_path_join(dir, "test_batch.bin");
    char *p4 = qb_test_path_join(dir, "data_batch_4.bin");
    /* Odd length: batch 3 cut 100 bytes into its last record (record 2). */
    write_cifar(dir);
    uint8_t *b = cifar_batch(2, 5);
    qb_test_write_file(p3, b, 4 * CIFAR_REC + 100);
    expect_cifar_error(dir, "data_batch_3.bin", "byte offset 12292");
    qb_test_write_file(p3, b, 4 * CIFAR_REC);
    free(b);
    /* Label out of range in the test batch, record 1. */
    b = cifar_batch(5, 3);
    b[CIFAR_REC] = 10;
    qb_test_write_file(pt, b, 3 * CIFAR_REC);
    expect_cifar_error(dir, "test_batch.bin", "byte offset 3073");
    expect_cifar_error(dir, "test_batch.bin", "label 10");
    free(b);
    write_cifar(dir);
    /* Empty file. */
    qb_test_write_file(pt, "", 0);
    expect_cifar_error(dir, "test_batch.bin", "empty");
    write_cifar(dir);
    /* One batch missing. */
    remove(p4);
    expect_cifar_error(dir, "data_batch_4.bin", "cannot open");
    /* A FIFO in its place: refused without blocking. */
    assert_int_equal(mkfifo(p4, 0600), 0);
    expect_cifar_error(dir, "data_batch_4.bin", "is a FIFO (named pipe), not a regular file");
    remove(p4);
    free(p3);
    free(p4);
    free(pt);
}

/* ---- GTSRB ----------------------------------------------------------------- */

/* Pixel of a generated PPM: inside the ROI a per-image colour, outside a
 * different one, so a crop that leaks the border shows. */
static void write_ppm(const char *path, int w, int h, int x1, int y1, int x2, int y2,
                      const uint8_t in[3], const uint8_t out[3])
{
    char head[64];
    int hl = snprintf(head, sizeof head, "P6\n%d %d\n255\n", w, h);
    size_t len = (size_t)hl + (size_t)w * h * 3;
    uint8_t *b = malloc(len);
    assert_non_null(b);
    memcpy(b, head, (size_t)hl);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            int inside = x >= x1 && x <= x2 && y >= y1 && y <= y2;
            memcpy(b + hl + ((size_t)y * w + x) * 3, inside ? in : out, 3);
        }
    qb_test_write_file(path, b, len);
    free(b);
}

static const char GT_HEADER[] = "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\r\n";

static void class_colour(int cls, int k, uint8_t c[3])
{
    c[0] = (uint8_t)(cls * 5);
    c[1] = (uint8_t)(200 - cls * 3);
    c[2] = (uint8_t)(k * 40 + 10);
}

/* Tree under root: class 0 has two training images, every other class one;
 * the test set has three images of classes 5, 42, 0. Real-format CSVs with
 * CRLF line ends as in the official files. */
static void write_gtsrb(const char *root)
{
    static const uint8_t border[3] = {255, 0, 255};
    char dir[1024], p[1200], csv[4096];
    for (int cls = 0; cls < 43; cls++) {
        snprintf(dir, sizeof dir, "%s/Final_Training/Images/%05d", root, cls);
        mkdir_p(dir);
        size_t used = (size_t)snprintf(csv, sizeof csv, "%s", GT_HEADER);
        int count = cls == 0 ? 2 : 1;
        for (int k = 0; k < count; k++) {
            int w = 10 + cls % 7 + k, h = 11 + cls % 5;
            uint8_t c[3];
            class_colour(cls, k, c);
            snprintf(p, sizeof p, "%s/%05d_%05d.ppm", dir, k, 0);
            write_ppm(p, w, h, 2, 3, w - 2, h - 3, c, border);
            used += (size_t)snprintf(csv + used, sizeof csv - used,
                                     "%05d_%05d.ppm;%d;%d;2;3;%d;%d;%d\r\n", k, 0, w, h, w - 2,
                                     h - 3, cls);
        }
        snprintf(p, sizeof p, "%s/GT-%05d.csv", dir, cls);
        qb_test_write_file(p, csv, used);
    }
    snprintf(dir, sizeof dir, "%s/Final_Test/Images", root);
    mkdir_p(dir);
    static const int test_cls[3] = {5, 42, 0};
    size_t used = (size_t)snprintf(csv, sizeof csv, "%s", GT_HEADER);
    for (int k = 0; k < 3; k++) {
        int w = 30 + k * 20, h = 25 + k * 30;
        uint8_t c[3];
        class_colour(test_cls[k], 3, c);
        snprintf(p, sizeof p, "%s/%05d.ppm", dir, k);
        write_ppm(p, w, h, 5, 6, w - 6, h - 5, c, border);
        used += (size_t)snprintf(csv + used, sizeof csv - used, "%05d.ppm;%d;%d;5;6;%d;%d;%d\r\n",
                                 k, w, h, w - 6, h - 5, test_cls[k]);
    }
    snprintf(p, sizeof p, "%s/GT-final_test.csv", dir);
    qb_test_write_file(p, csv, used);
}

static void check_uniform(const qb_dataset *d, size_t s, const uint8_t c[3])
{
    for (int ch = 0; ch < 3; ch++)
        for (int k = 0; k < 1024; k++)
            assert_int_equal(d->images[s * 3072 + (size_t)ch * 1024 + (size_t)k], c[ch]);
}

static void check_gtsrb(const qb_dataset *tr, const qb_dataset *te)
{
    check_sizes(tr, te, 44, 3, 3, 32, 32, 43);
    size_t s = 0;
    for (int cls = 0; cls < 43; cls++) {
        for (int k = 0; k < (cls == 0 ? 2 : 1); k++, s++) {
            assert_int_equal(tr->labels[s], cls);
            uint8_t c[3];
            class_colour(cls, k, c);
            check_uniform(tr, s, c); /* the ROI only: no border colour leaks in */
        }
    }
    static const int test_cls[3] = {5, 42, 0};
    for (int k = 0; k < 3; k++) {
        assert_int_equal(te->labels[k], test_cls[k]);
        uint8_t c[3];
        class_colour(test_cls[k], 3, c);
        check_uniform(te, (size_t)k, c);
    }
}

static void test_gtsrb_good(void **state)
{
    const char *root = *state;
    char *dir = qb_test_path_join(root, "gtsrb/GTSRB"); /* as the zips extract */
    write_gtsrb(dir);
    qb_dataset tr, te;
    qb_error e = {0};
    if (qb_gtsrb_load(dir, &tr, &te, &e) != 0) {
        print_error("%s\n", e.msg);
        fail();
    }
    check_gtsrb(&tr, &te);
    qb_dataset_free(&tr);
    qb_dataset_free(&te);
    expect_loads_by_name("gtsrb", root, check_gtsrb);
    /* The test GT CSV also accepted at the top of the tree. */
    char p[1200], q[1200];
    snprintf(p, sizeof p, "%s/Final_Test/Images/GT-final_test.csv", dir);
    snprintf(q, sizeof q, "%s/GT-final_test.csv", dir);
    assert_int_equal(rename(p, q), 0);
    assert_int_equal(qb_gtsrb_load(dir, &tr, &te, &e), 0);
    assert_int_equal(te.n, 3);
    qb_dataset_free(&tr);
    qb_dataset_free(&te);
    free(dir);
}

/* A 32x32 image with a full-image ROI is copied exactly (identity resize),
 * interleaved RGB becoming planar; a 2x2 ROI upsampled matches bilinear
 * interpolation with pixel centres aligned. */
static void test_gtsrb_resize_exact(void **state)
{
    const char *dir = *state;
    write_gtsrb(dir);
    char p[1200];
    uint8_t img[15 + 32 * 32 * 3];
    memcpy(img, "P6\n32 32\n255\n", 13);
    /* "P6\n32 32\n255\n" is 13 bytes; pixels follow. */
    for (int i = 0; i < 32 * 32 * 3; i++) img[13 + i] = (uint8_t)((i * 37 + i / 96) & 255);
    snprintf(p, sizeof p, "%s/Final_Test/Images/%05d.ppm", dir, 0);
    qb_test_write_file(p, img, 13 + 32 * 32 * 3);
    /* Test image 1: 4x4 with ROI (1,1)-(2,2): a 2x2 crop of values 0, 100 / 200, 40. */
    uint8_t small[11 + 4 * 4 * 3];
    memcpy(small, "P6\n4 4\n255\n", 11);
    memset(small + 11, 250, 4 * 4 * 3);
    const uint8_t q[2][2] = {{0, 100}, {200, 40}};
    for (int y = 0; y < 2; y++)
        for (int x = 0; x < 2; x++)
            for (int c = 0; c < 3; c++) small[11 + ((y + 1) * 4 + (x + 1)) * 3 + c] = q[y][x];
    snprintf(p, sizeof p, "%s/Final_Test/Images/%05d.ppm", dir, 1);
    qb_test_write_file(p, small, sizeof small);
    char csv[512];
    int n = snprintf(csv, sizeof csv,
                     "%s00000.ppm;32;32;0;0;31;31;5\r\n00001.ppm;4;4;1;1;2;2;7\r\n", GT_HEADER);
    snprintf(p, sizeof p, "%s/Final_Test/Images/GT-final_test.csv", dir);
    qb_test_write_file(p, csv, (size_t)n);
    qb_dataset tr, te;
    qb_error e = {0};
    assert_int_equal(qb_gtsrb_load(dir, &tr, &te, &e), 0);
    assert_int_equal(te.n, 2);
    for (int y = 0; y < 32; y++)
        for (int x = 0; x < 32; x++)
            for (int c = 0; c < 3; c++)
                assert_int_equal(te.images[(size_t)c * 1024 + (size_t)y * 32 + (size_t)x],
                                 img[13 + (y * 32 + x) * 3 + c]);
    /* 2 -> 32: source coordinate (o + 0.5) / 16 - 0.5, clamped to [0, 1]. */
    const uint8_t *o = te.images + 3072;
    for (int y = 0; y < 32; y++) {
        double sy = (y + 0.5) / 16.0 - 0.5;
        sy = sy < 0 ? 0 : sy > 1 ? 1 : sy;
        for (int x = 0; x < 32; x++) {
            double sx = (x + 0.5) / 16.0 - 0.5;
            sx = sx < 0 ? 0 : sx > 1 ? 1 : sx;
            double top = q[0][0] + (q[0][1] - q[0][0]) * sx;
            double bot = q[1][0] + (q[1][1] - q[1][0]) * sx;
            double v = top + (bot - top) * sy;
            for (int c = 0; c < 3; c++) {
                int got = o[c * 1024 + y * 32 + x];
                assert_true(got >= (int)(v - 0.5 - 1e-3) && got <= (int)(v + 0.5 + 1e-3));
            }
        }
    }
    assert_int_equal(o[0], 0);         /* corners are the crop's corners */
    assert_int_equal(o[31], 100);
    assert_int_equal(o[31 * 32], 200);
    assert_int_equal(o[1023], 40);
    qb_dataset_free(&tr);
    qb_dataset_free(&te);
}

/* One corruption of a good tree: `text` written over the file `rel` (text
 * NULL: `rel` removed), or `edit` applied to the tree where text cannot
 * say it; loading must fail with frag1 and (unless NULL) frag2 in the
 * message. */
typedef struct gt_corruption {
    const char *rel, *text;
    void (*edit)(const char *root);
    const char *frag1, *frag2;
} gt_corruption;

/* Build a good tree, apply the corruption, expect an error with fragments. */
static void expect_gtsrb_error(const gt_corruption *k)
{
    char *dir = qb_test_tmpdir();
    write_gtsrb(dir);
    if (k->edit) {
        k->edit(dir);
    } else {
        char *p = qb_test_path_join(dir, k->rel);
        if (k->text) qb_test_write_file(p, k->text, strlen(k->text));
        else assert_int_equal(remove(p), 0);
        free(p);
    }
    qb_dataset tr, te;
    qb_error e = {0};
    assert_int_equal(qb_gtsrb_load(dir, &tr, &te, &e), -1);
    qb_test_assert_msg_has(&e, k->frag1);
    if (k->frag2) qb_test_assert_msg_has(&e, k->frag2);
    assert_unallocated(&tr);
    assert_unallocated(&te);
    qb_test_tmpdir_remove(dir);
    free(dir);
}

static void ppm_size_mismatch(const char *root)
{
    static const uint8_t a[3] = {1, 2, 3};
    char *p = qb_test_path_join(root, "Final_Test/Images/00001.ppm");
    write_ppm(p, 49, 55, 0, 0, 0, 0, a, a); /* CSV says 50x55 */
    free(p);
}

/* A directory, or a FIFO (which would block a plain fopen forever), where
 * an image should be. */
static void ppm_is_directory(const char *root)
{
    char *p = qb_test_path_join(root, "Final_Training/Images/00005/00000_00000.ppm");
    assert_int_equal(remove(p), 0);
    assert_int_equal(mkdir(p, 0755), 0);
    free(p);
}

static void ppm_is_fifo(const char *root)
{
    char *p = qb_test_path_join(root, "Final_Test/Images/00001.ppm");
    assert_int_equal(remove(p), 0);
    assert_int_equal(mkfifo(p, 0600), 0);
    free(p);
}

#define GT_CSV_HEAD "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\n"
#define GT_TRAIN4 "Final_Training/Images/00004/GT-00004.csv"
#define GT_TEST "Final_Test/Images/GT-final_test.csv"

static const gt_corruption gt_corruptions[] = {
    {"Final_Training/Images/00007/00000_00000.ppm", "P3\n11 13\n255\n1 2 3\n", NULL,
     "00007/00000_00000.ppm: byte offset 0", "magic"},
    {"Final_Training/Images/00003/00000_00000.ppm", "P6\n13 14\n65535\n", NULL,
     "00003/00000_00000.ppm: byte offset", "maxval 65535"},
    {"Final_Training/Images/00003/00000_00000.ppm", "P6\n13 x4\n255\n", NULL,
     "00003/00000_00000.ppm: byte offset 6", "height"},
    {NULL, NULL, ppm_size_mismatch, "Final_Test/Images/00001.ppm", "49x55"},
    {NULL, NULL, ppm_is_directory, "00005/00000_00000.ppm is a directory, not a regular file",
     "GT-00005.csv line 2"},
    {NULL, NULL, ppm_is_fifo, "00001.ppm is a FIFO (named pipe), not a regular file",
     "GT-final_test.csv line 3"},
    /* class 1: 11x12 announced, a few pixel bytes only */
    {"Final_Training/Images/00001/00000_00000.ppm", "P6\n11 12\n255\nabcdef", NULL,
     "00001/00000_00000.ppm: byte offset 19", "file ends inside the pixel data"},
    {"Final_Training/Images/00002/GT-00002.csv", GT_CSV_HEAD "00000_00000.ppm;12;13;2;3;12;10;2\n",
     NULL, "GT-00002.csv: line 2, field 6 (Roi.X2)", "out of bounds"},
    {GT_TEST, GT_CSV_HEAD "00000.ppm;30;25;5;6;24;20;5\n00001.ppm;50;55;5;40;44;39;42\n", NULL,
     "GT-final_test.csv: line 3, field 5 (Roi.Y1)", "out of bounds"},
    {"Final_Training/Images/00042/00000_00000.ppm", NULL, NULL,
     "00042/00000_00000.ppm: cannot open", "GT-00042.csv line 2"},
    {"Final_Training/Images/00011/GT-00011.csv", NULL, NULL, "00011/GT-00011.csv: cannot open",
     NULL},
    {GT_TEST, NULL, NULL, "GT-final_test.csv", "GTSRB_Final_Test_GT"},
    {GT_TRAIN4, GT_CSV_HEAD "00000_00000.ppm;14;15;2;3;12;12\n", NULL, "GT-00004.csv: line 2",
     "too few fields"},
    {GT_TRAIN4, GT_CSV_HEAD "00000_00000.ppm;14;-15;2;3;12;12;4\n", NULL,
     "GT-00004.csv: line 2, field 3 (Height)", "-15"},
    {GT_TRAIN4, "Filename;Width;Height;X1;Y1;X2;Y2;ClassId\n00000_00000.ppm;14;15;2;3;12;12;4\n",
     NULL, "GT-00004.csv: line 1, field 4", "Roi.X1"},
    {GT_TRAIN4, GT_CSV_HEAD "00000_00000.ppm;14;15;2;3;12;12;5\n", NULL,
     "GT-00004.csv: line 2, field 8 (ClassId)", "class 4"},
    {GT_TEST, GT_CSV_HEAD "00000.ppm;30;25;5;6;24;20;43\n", NULL,
     "GT-final_test.csv: line 2, field 8 (ClassId)", "43 out of range"},
    {GT_TEST, GT_CSV_HEAD "../../Final_Training/Images/00000/00000_00000.ppm;10;11;2;3;8;8;0\n",
     NULL, "GT-final_test.csv: line 2, field 1 (Filename)", "plain file name"},
};

static void test_gtsrb_bad(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof gt_corruptions / sizeof gt_corruptions[0]; i++)
        expect_gtsrb_error(&gt_corruptions[i]);
}

/* ---- synthetic ------------------------------------------------------------ */

static void test_synthetic(void **state)
{
    (void)state;
    qb_dataset a, at, b, bt, c, ct;
    qb_synthetic_generate(42, 1003, 250, &a, &at);
    qb_synthetic_generate(42, 1003, 250, &b, &bt);
    qb_synthetic_generate(43, 1003, 250, &c, &ct);
    check_sizes(&a, &at, 1003, 250, 3, 32, 32, 10);
    assert_memory_equal(a.images, b.images, a.n * 3072);
    assert_memory_equal(a.labels, b.labels, a.n);
    assert_memory_equal(at.images, bt.images, at.n * 3072);
    assert_true(memcmp(a.images, c.images, a.n * 3072) != 0);
    assert_true(memcmp(a.labels, c.labels, a.n) != 0);
    assert_true(memcmp(a.images, at.images, at.n * 3072) != 0); /* train != test */
    size_t cnt[10] = {0}, cnt_t[10] = {0};
    for (size_t i = 0; i < a.n; i++) {
        assert_true(a.labels[i] < 10);
        cnt[a.labels[i]]++;
    }
    for (size_t i = 0; i < at.n; i++) cnt_t[at.labels[i]]++;
    for (int k = 0; k < 10; k++) {
        assert_true(cnt[k] == 100 || cnt[k] == 101);
        assert_int_equal(cnt_t[k], 25);
    }
    /* Labels are shuffled, not in blocks. */
    int same_as_prev = 0;
    for (size_t i = 1; i < a.n; i++) same_as_prev += a.labels[i] == a.labels[i - 1];
    assert_true(same_as_prev < 300);
    /* Each class has its own mean colour: images are not all alike. */
    double mean[10][3] = {{0}};
    for (size_t i = 0; i < a.n; i++)
        for (int ch = 0; ch < 3; ch++) {
            double s = 0;
            for (int k = 0; k < 1024; k++) s += a.images[i * 3072 + (size_t)ch * 1024 + (size_t)k];
            mean[a.labels[i]][ch] += s / 1024.0 / (double)cnt[a.labels[i]];
        }
    for (int k = 0; k < 10; k++)
        for (int j = k + 1; j < 10; j++) {
            double d = 0;
            for (int ch = 0; ch < 3; ch++)
                d += (mean[k][ch] - mean[j][ch]) * (mean[k][ch] - mean[j][ch]);
            assert_true(d > 4.0);
        }
    qb_dataset_free(&a);
    qb_dataset_free(&at);
    qb_dataset_free(&b);
    qb_dataset_free(&bt);
    qb_dataset_free(&c);
    qb_dataset_free(&ct);
    /* By name: the default sizes, seeded. */
    qb_dataset tr, te, tr2, te2;
    qb_error e = {0};
    assert_int_equal(qb_dataset_load("synthetic", NULL, 9, &tr, &te, &e), 0);
    assert_int_equal(qb_dataset_load("synthetic", NULL, 9, &tr2, &te2, &e), 0);
    assert_true(tr.n >= 1000 && te.n >= 100);
    assert_string_equal(tr.name, "synthetic");
    assert_memory_equal(tr.images, tr2.images, tr.n * 3072);
    assert_memory_equal(te.labels, te2.labels, te.n);
    qb_dataset_free(&tr);
    qb_dataset_free(&te);
    qb_dataset_free(&tr2);
    qb_dataset_free(&te2);
}

int main(void)
{
    return qb_test_run_group(cmocka_unit_test(test_container_ops),
                             cmocka_unit_test(test_dataset_names),
                             cmocka_unit_test(test_fashion_mnist_real),
                             cmocka_unit_test(test_idx_good_plain_and_gz),
                             cmocka_unit_test(test_idx_bad_magic),
                             cmocka_unit_test(test_idx_count_mismatch),
                             qb_test_with_tmpdir(test_idx_truncated),
                             cmocka_unit_test(test_idx_label_out_of_range_and_trailing),
                             cmocka_unit_test(test_idx_hostile_header),
                             qb_test_with_tmpdir(test_idx_missing_file),
                             qb_test_with_tmpdir(test_load_mnist_search_order),
                             qb_test_with_tmpdir(test_missing_dataset_message),
                             qb_test_with_tmpdir(test_cifar_good),
                             qb_test_with_tmpdir(test_cifar_bad),
                             qb_test_with_tmpdir(test_gtsrb_good),
                             qb_test_with_tmpdir(test_gtsrb_resize_exact),
                             cmocka_unit_test(test_gtsrb_bad), cmocka_unit_test(test_synthetic));
}
