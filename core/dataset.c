/* Dataset containers and the named-dataset dispatcher.
 *
 * The readers live in their own files (dataset_idx.c, dataset_cifar10.c,
 * dataset_gtsrb.c, dataset_synthetic.c); this file owns the container
 * helpers and the search for a named dataset on disk. */
#include "core/dataset.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/xalloc.h"

const char *const qb_dataset_names[] = {"fashion-mnist", "mnist", "cifar10", "gtsrb", "synthetic",
                                        NULL};

const char *qb_dataset_default_arch(const char *name)
{
    int known = 0;
    for (int i = 0; qb_dataset_names[i]; i++) known |= !strcmp(name, qb_dataset_names[i]);
    if (!known) return NULL;
    /* the IDX datasets hold 28x28 grey images, the others 3x32x32 */
    return !strcmp(name, "fashion-mnist") || !strcmp(name, "mnist") ? "lenet" : "cnn-small";
}

/* Default sizes of `synthetic` when loaded by name: large enough to train a
 * CNN to high accuracy and to poison at 1% with 100 samples, small enough to
 * be generated in a fraction of a second. */
enum { QB_SYNTHETIC_TRAIN = 10000, QB_SYNTHETIC_TEST = 2000 };

/* The Debian package dataset-fashion-mnist installs the IDX files here. */
static const char QB_FASHION_DEBIAN_DIR[] = "/usr/share/datasets/fashion-mnist";

void qb_dataset_init(qb_dataset *d, const char *name, size_t n, int c, int h, int w, int classes)
{
    QB_ASSERT(d && c > 0 && h > 0 && w > 0 && classes > 0 && classes <= 256);
    memset(d, 0, sizeof *d);
    snprintf(d->name, sizeof d->name, "%s", name ? name : "");
    d->c = c;
    d->h = h;
    d->w = w;
    d->classes = classes;
    d->n = n;
    d->images = xcalloc(n, qb_dataset_image_size(d));
    d->labels = xcalloc(n, 1);
}

void qb_dataset_free(qb_dataset *d)
{
    if (!d) return;
    free(d->images);
    free(d->labels);
    memset(d, 0, sizeof *d);
}

void qb_dataset_copy(qb_dataset *dst, const qb_dataset *src)
{
    QB_ASSERT(dst != src);
    qb_dataset_init(dst, src->name, src->n, src->c, src->h, src->w, src->classes);
    if (src->n) {
        memcpy(dst->images, src->images, src->n * qb_dataset_image_size(src));
        memcpy(dst->labels, src->labels, src->n);
    }
    dst->norm = src->norm;
}

void qb_dataset_subset(qb_dataset *dst, const qb_dataset *src, const uint32_t *idx, size_t count)
{
    QB_ASSERT(dst != src && (idx || count == 0));
    qb_dataset_init(dst, src->name, count, src->c, src->h, src->w, src->classes);
    size_t sz = qb_dataset_image_size(src);
    for (size_t i = 0; i < count; i++) {
        QB_ASSERT(idx[i] < src->n);
        memcpy(dst->images + i * sz, src->images + (size_t)idx[i] * sz, sz);
        dst->labels[i] = src->labels[idx[i]];
    }
    dst->norm = src->norm;
}

qb_dataset qb_dataset_view_norm(const qb_dataset *d, const qb_norm *norm)
{
    qb_dataset v = *d;
    v.norm = *norm;
    return v;
}

void qb_norm_pixels(const qb_norm *norm, const uint8_t *px, size_t n, int c, size_t hw, float *out)
{
    const float scale = 1.0f / 255.0f;
    const size_t len = n * (size_t)c * hw;
    for (size_t k = 0; k < len; k++) out[k] = (float)px[k] * scale;
    qb_norm_apply(norm, out, n, c, hw);
}

void qb_norm_apply(const qb_norm *norm, float *x, size_t n, int c, size_t hw)
{
    if (!norm || !norm->on) return;
    QB_ASSERT(c >= 1 && c <= QB_NORM_MAX_C);
    for (size_t i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++) {
            const float m = norm->mean[ch], s = norm->std[ch];
            float *p = x + (i * (size_t)c + (size_t)ch) * hw;
            for (size_t k = 0; k < hw; k++) p[k] = (p[k] - m) / s;
        }
}

int qb_norm_validate(const qb_norm *norm, int c, const char *what, qb_error *err)
{
    if (!norm->on) return 0;
    if (c < 1 || c > QB_NORM_MAX_C)
        return QB_FAIL(err, "%s: normalisation of %d-channel images (at most %d channels)", what, c,
                       QB_NORM_MAX_C);
    for (int ch = 0; ch < c; ch++) {
        if (!isfinite(norm->mean[ch]))
            return QB_FAIL(err, "%s: normalisation mean of channel %d is %g, not a finite number",
                           what, ch, (double)norm->mean[ch]);
        if (!(norm->std[ch] > 0.0f) || !isfinite(norm->std[ch]))
            return QB_FAIL(err, "%s: normalisation std of channel %d is %g, not a finite number > 0",
                           what, ch, (double)norm->std[ch]);
    }
    return 0;
}

static void norm_set(qb_norm *o, float m0, float m1, float m2, float s0, float s1, float s2)
{
    o->on = 1;
    o->mean[0] = m0, o->mean[1] = m1, o->mean[2] = m2;
    o->std[0] = s0, o->std[1] = s1, o->std[2] = s2;
}

int qb_dataset_norm_default(const char *name, qb_norm *out)
{
    memset(out, 0, sizeof *out);
    if (!name || !qb_dataset_default_arch(name)) return -1;
    if (!strcmp(name, "cifar10"))
        norm_set(out, 0.4914f, 0.4822f, 0.4465f, 0.247f, 0.243f, 0.261f);
    else if (strcmp(name, "gtsrb")) /* mnist, fashion-mnist, synthetic */
        norm_set(out, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f);
    return 0; /* gtsrb: off */
}

int qb_dataset_channels(const char *name)
{
    const char *arch = name ? qb_dataset_default_arch(name) : NULL;
    if (!arch) return 0;
    return !strcmp(name, "fashion-mnist") || !strcmp(name, "mnist") ? 1 : 3;
}

int qb_dataset_flip_ok(const char *name)
{
    return name && (!strcmp(name, "cifar10") || !strcmp(name, "fashion-mnist") ||
                    !strcmp(name, "synthetic"));
}

void qb_dataset_batch_float(const qb_dataset *d, const uint32_t *idx, size_t first, size_t b,
                            float *out)
{
    size_t sz = qb_dataset_image_size(d);
    const size_t hw = (size_t)d->h * (size_t)d->w;
    for (size_t i = 0; i < b; i++) {
        size_t s = idx ? idx[i] : first + i;
        QB_ASSERT(s < d->n);
        qb_norm_pixels(&d->norm, d->images + s * sz, 1, d->c, hw, out + i * sz);
    }
}

/* ---- search ------------------------------------------------------------ */

static int path_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

static int is_dir(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Candidate directories for one dataset, in search order, and the paths
 * that were looked at (for the "not found" message). */
typedef struct search_list {
    char dirs[16][1024];
    int n;
} search_list;

static void search_add(search_list *s, const char *base, const char *sub1, const char *sub2)
{
    if (!base || !*base || s->n >= (int)(sizeof s->dirs / sizeof s->dirs[0])) return;
    char *d = s->dirs[s->n];
    int len = snprintf(d, sizeof s->dirs[0], "%s%s%s%s%s", base, sub1 ? "/" : "", sub1 ? sub1 : "",
                       sub2 ? "/" : "", sub2 ? sub2 : "");
    if (len < 0 || (size_t)len >= sizeof s->dirs[0]) return; /* too long to be real: skip */
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->dirs[i], d) == 0) return;
    s->n++;
}

/* Each base directory is searched as <base>/<name>/ and as <base> itself;
 * cifar10 and gtsrb also accept the folder their archives extract to. */
static void search_add_base(search_list *s, const char *base, const char *name)
{
    const char *extract = NULL;
    if (strcmp(name, "cifar10") == 0) extract = "cifar-10-batches-bin";
    if (strcmp(name, "gtsrb") == 0) extract = "GTSRB";
    search_add(s, base, name, NULL);
    if (extract) search_add(s, base, name, extract);
    search_add(s, base, NULL, NULL);
    if (extract) search_add(s, base, extract, NULL);
}

/* Path of an IDX file in dir: the .gz name if it exists, else the plain
 * name if it exists; returns 0 if neither exists. */
static int idx_find(const char *dir, const char *stem, char *out, size_t cap)
{
    int len = snprintf(out, cap, "%s/%s.gz", dir, stem);
    if (len > 0 && (size_t)len < cap && path_exists(out)) return 1;
    len = snprintf(out, cap, "%s/%s", dir, stem);
    if (len > 0 && (size_t)len < cap && path_exists(out)) return 1;
    return 0;
}

static int load_idx_dir(const char *dir, const char *name, qb_dataset *train, qb_dataset *test,
                        qb_error *err)
{
    static const char *const stems[4] = {"train-images-idx3-ubyte", "train-labels-idx1-ubyte",
                                         "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"};
    char paths[4][1100];
    for (int i = 0; i < 4; i++)
        if (!idx_find(dir, stems[i], paths[i], sizeof paths[i]))
            return QB_FAIL(err, "%s: %s/%s(.gz) is missing (found the training images in %s)", name,
                           dir, stems[i], dir);
    if (qb_idx_load(paths[0], paths[1], name, train, err)) return -1;
    if (qb_idx_load(paths[2], paths[3], name, test, err)) {
        qb_dataset_free(train);
        return -1;
    }
    if (train->c != test->c || train->h != test->h || train->w != test->w) {
        QB_FAIL(err, "%s: training images are %dx%d but test images are %dx%d (%s, %s)", name,
                train->h, train->w, test->h, test->w, paths[0], paths[2]);
        qb_dataset_free(train);
        qb_dataset_free(test);
        return -1;
    }
    return 0;
}

/* Whether dir looks like it holds the named dataset (its first file or
 * folder is there). A dataset that is present but broken is then reported
 * by its reader, not skipped in favour of the next candidate. */
static int dataset_present(const char *name, const char *dir)
{
    char p[1200];
    if (strcmp(name, "fashion-mnist") == 0 || strcmp(name, "mnist") == 0)
        return idx_find(dir, "train-images-idx3-ubyte", p, sizeof p);
    if (strcmp(name, "cifar10") == 0) {
        snprintf(p, sizeof p, "%s/data_batch_1.bin", dir);
        return path_exists(p);
    }
    if (strcmp(name, "gtsrb") == 0) {
        snprintf(p, sizeof p, "%s/Final_Training/Images", dir);
        return is_dir(p);
    }
    return 0;
}

/* What to do to get each dataset that is read from disk ("<dir>": the data
 * directory), for the "not found" message. */
static const struct {
    const char *name, *how;
} how_to_get_them[] = {
    {"fashion-mnist",
     "install the Debian package (apt-get install dataset-fashion-mnist), or place "
     "train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
     "t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz in <dir>/fashion-mnist/"},
    {"mnist", "download the four MNIST IDX files (train-images-idx3-ubyte.gz, "
              "train-labels-idx1-ubyte.gz, t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz) "
              "from a yann.lecun.com/exdb/mnist mirror and place them in <dir>/mnist/"},
    {"cifar10", "download the \"CIFAR-10 binary version\" (cifar-10-binary.tar.gz) from "
                "https://www.cs.toronto.edu/~kriz/cifar.html and extract it into <dir>/cifar10/ "
                "(data_batch_1.bin .. data_batch_5.bin, test_batch.bin)"},
    {"gtsrb", "download GTSRB_Final_Training_Images.zip, GTSRB_Final_Test_Images.zip and "
              "GTSRB_Final_Test_GT.zip (https://benchmark.ini.rub.de/gtsrb_dataset.html), unzip "
              "the first two into <dir>/gtsrb/ and put GT-final_test.csv from the third into "
              "<dir>/gtsrb/GTSRB/Final_Test/Images/"},
};

static const char *how_to_get(const char *name)
{
    for (size_t i = 0; i < sizeof how_to_get_them / sizeof how_to_get_them[0]; i++)
        if (strcmp(name, how_to_get_them[i].name) == 0) return how_to_get_them[i].how;
    return "";
}

int qb_dataset_load(const char *name, const char *data_dir, uint64_t seed, qb_dataset *train,
                    qb_dataset *test, qb_error *err)
{
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    int known = 0;
    for (int i = 0; qb_dataset_names[i]; i++)
        if (name && strcmp(name, qb_dataset_names[i]) == 0) known = 1;
    if (!known)
        return QB_FAIL(err,
                       "unknown dataset '%s' (known: fashion-mnist, mnist, cifar10, gtsrb, "
                       "synthetic)",
                       name ? name : "(null)");

    if (strcmp(name, "synthetic") == 0) {
        qb_synthetic_generate(seed, QB_SYNTHETIC_TRAIN, QB_SYNTHETIC_TEST, train, test);
        return 0;
    }

    search_list s = {.n = 0};
    search_add_base(&s, data_dir, name);
    search_add_base(&s, getenv("QBLIND_DATA_DIR"), name);
    if (strcmp(name, "fashion-mnist") == 0) search_add(&s, QB_FASHION_DEBIAN_DIR, NULL, NULL);

    for (int i = 0; i < s.n; i++) {
        const char *dir = s.dirs[i];
        if (!dataset_present(name, dir)) continue;
        if (strcmp(name, "cifar10") == 0) return qb_cifar10_load(dir, train, test, err);
        if (strcmp(name, "gtsrb") == 0) return qb_gtsrb_load(dir, train, test, err);
        return load_idx_dir(dir, name, train, test, err);
    }

    /* Not found: one message with every place looked at and the remedy. */
    char tried[800];
    size_t used = 0;
    tried[0] = '\0';
    for (int i = 0; i < s.n && used < sizeof tried; i++) {
        int len = snprintf(tried + used, sizeof tried - used, "%s%s", i ? ", " : "", s.dirs[i]);
        if (len < 0) break;
        used += (size_t)len;
    }
    if (s.n == 0) snprintf(tried, sizeof tried, "(no directory: pass a data directory or set "
                                                "QBLIND_DATA_DIR)");
    return QB_FAIL(err, "dataset '%s' not found; looked in: %s. To get it: %s (<dir> = the data "
                        "directory option or $QBLIND_DATA_DIR)",
                   name, tried, how_to_get(name));
}
