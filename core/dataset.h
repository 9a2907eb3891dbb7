/* Image classification datasets, held in memory as raw 8-bit pixels.
 *
 * Pixels stay uint8 (60k Fashion-MNIST images are 47 MB, not 188 MB as
 * float); batches are converted to float in [0, 1] when they are used.
 * Loaders read files that may come from strangers: every header field,
 * count, size and offset is checked, and failures name the file and the
 * byte offset. */
#ifndef QB_DATASET_H
#define QB_DATASET_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/* Per-channel input normalisation, applied when pixels are converted to a
 * model's input: x = (p / 255 - mean[c]) / std[c]. It lives with the data
 * a model is fed (and is copied with them), so every consumer that turns a
 * dataset into model input (training, metrics, defenses' activations) sees
 * the same transform. Triggers and augmentation work on the uint8 pixels,
 * before it. on = 0: p / 255 exactly as without normalisation. */
#define QB_NORM_MAX_C 3
typedef struct qb_norm {
    int on;
    float mean[QB_NORM_MAX_C]; /* in [0, 1] pixel units */
    float std[QB_NORM_MAX_C];  /* > 0 */
} qb_norm;

typedef struct qb_dataset {
    char name[32];
    int c, h, w;       /* image shape */
    int classes;       /* labels are in [0, classes) */
    size_t n;          /* number of samples */
    uint8_t *images;   /* (n, c, h, w), 0..255, owned */
    uint8_t *labels;   /* (n), owned */
    qb_norm norm;      /* how batches become model input (off after init;
                          copied by qb_dataset_copy / subset) */
} qb_dataset;

/* Allocate an n-sample dataset (pixels and labels zeroed). */
void qb_dataset_init(qb_dataset *d, const char *name, size_t n, int c, int h, int w, int classes);
void qb_dataset_free(qb_dataset *d);
/* Deep copy (poisoning works on a copy of the clean training set). */
void qb_dataset_copy(qb_dataset *dst, const qb_dataset *src);
/* New dataset of the samples idx[0..count). */
void qb_dataset_subset(qb_dataset *dst, const qb_dataset *src, const uint32_t *idx, size_t count);

static inline size_t qb_dataset_image_size(const qb_dataset *d)
{
    return (size_t)d->c * (size_t)d->h * (size_t)d->w;
}

/* A view of d fed through norm: the same arrays (never free a view; it is
 * valid while d is), another normalisation. */
qb_dataset qb_dataset_view_norm(const qb_dataset *d, const qb_norm *norm);

/* Convert samples idx[0..b) to model input: out (b, c, h, w), p / 255 in
 * [0, 1], normalised by d->norm when it is on. If idx is NULL the samples
 * first..first+b are used. */
void qb_dataset_batch_float(const qb_dataset *d, const uint32_t *idx, size_t first, size_t b,
                            float *out);

/* The same for n images held as uint8 pixels px (n, c, hw): out (n, c, hw).
 * norm may be NULL (no normalisation). */
void qb_norm_pixels(const qb_norm *norm, const uint8_t *px, size_t n, int c, size_t hw, float *out);

/* Normalise n images of pixel floats x (n, c, hw), values in [0, 1] pixel
 * units, in place; a no-op when norm is NULL or off. */
void qb_norm_apply(const qb_norm *norm, float *x, size_t n, int c, size_t hw);

/* Check a normalisation against a channel count: on with c > QB_NORM_MAX_C,
 * or a std that is not a finite positive number, or a mean that is not
 * finite, fails. `what` names it in the message. */
int qb_norm_validate(const qb_norm *norm, int c, const char *what, qb_error *err);

/* BackdoorBench's normalisation for a named dataset
 * (utils/aggregate_block/dataset_and_transform_generate.py,
 * get_dataset_normalization): cifar10 mean (0.4914, 0.4822, 0.4465), std
 * (0.247, 0.243, 0.261); mnist 0.5 / 0.5; gtsrb none (BackdoorBench's
 * Normalize([0,0,0], [1,1,1])). Not in BackdoorBench, ours: fashion-mnist
 * 0.5 / 0.5 (MNIST's) and synthetic 0.5 / 0.5 per channel. -1 for a name
 * qb_dataset_load does not know. */
int qb_dataset_norm_default(const char *name, qb_norm *out);

/* Whether a horizontal flip keeps the class of a named dataset's images:
 * 1 for cifar10 (BackdoorBench flips it), fashion-mnist (garments are
 * mirror-symmetric classes) and synthetic (symmetric shapes); 0 for mnist
 * (digits) and gtsrb (signs with a direction: "keep left" / "keep
 * right", arrows), and for unknown names. */
int qb_dataset_flip_ok(const char *name);

/* Channels of a named dataset's images, by name (1 for the IDX ones,
 * fashion-mnist and mnist; 3 for the others), 0 for an unknown name. */
int qb_dataset_channels(const char *name);

/* The seed `synthetic` is generated from by the pipeline and the CLI: the
 * data of a study are fixed, the model seed varies the models. */
#define QB_SYNTHETIC_SEED 0

/* Names accepted by qb_dataset_load, NULL-terminated: the one list of the
 * `dataset` axis (the spec parser, jobs/axis_values.c, reads it). */
extern const char *const qb_dataset_names[];

/* The architecture `auto` means for a named dataset (a spec's
 * `train.arch: auto`, `qblind train` without --arch): lenet for the 28x28
 * ones (fashion-mnist, mnist), cnn-small for the 32x32 ones (cifar10,
 * gtsrb, synthetic). By name, so that it is known before the data are
 * loaded (a task's identity names the real architecture). NULL for a name
 * qb_dataset_load does not know. */
const char *qb_dataset_default_arch(const char *name);

/* Load train and test splits of a named dataset.
 *   name:     fashion-mnist | mnist | cifar10 | gtsrb | synthetic
 *   data_dir: directory holding the files (its <name>/ subfolder or itself),
 *             or NULL; searched first, then the environment variable
 *             QBLIND_DATA_DIR likewise, then the Debian package path for
 *             fashion-mnist. cifar10 and gtsrb also accept the folder their
 *             archives extract to (cifar-10-batches-bin/, GTSRB/). The first
 *             directory holding the dataset is used; if its files are
 *             broken that is the error (no fall-through).
 *   seed:     only used by `synthetic` (10000 train / 2000 test samples).
 * On success both outputs are owned by the caller (qb_dataset_free).
 * On failure returns -1, nothing is allocated, and err names every path
 * tried and how to obtain the files. */
int qb_dataset_load(const char *name, const char *data_dir, uint64_t seed, qb_dataset *train,
                    qb_dataset *test, qb_error *err);

/* IDX pair (MNIST / Fashion-MNIST), gzip or plain (zlib reads both).
 * Checks magic 2051/2049, dims, that counts agree, that the file holds
 * exactly the announced bytes, and labels < 10. */
int qb_idx_load(const char *images_path, const char *labels_path, const char *name,
                qb_dataset *out, qb_error *err);

/* CIFAR-10 binary version: dir/data_batch_{1..5}.bin and dir/test_batch.bin,
 * records of 1 label byte + 3072 pixel bytes (R, G, B planes of 32x32). */
int qb_cifar10_load(const char *dir, qb_dataset *train, qb_dataset *test, qb_error *err);

/* GTSRB: dir/Final_Training/Images/000NN/GT-000NN.csv with PPM images, and
 * dir/Final_Test/Images/GT-final_test.csv (with ClassId; dir/GT-final_test.csv
 * is accepted too). Training ClassIds must match their folder. Each image is
 * cropped to its ROI and resized (bilinear) to 3x32x32; 43 classes. */
int qb_gtsrb_load(const char *dir, qb_dataset *train, qb_dataset *test, qb_error *err);

/* Synthetic: 10 classes of simple coloured shapes on noisy backgrounds,
 * 3x32x32, generated from the seed (n_train, n_test samples). */
void qb_synthetic_generate(uint64_t seed, size_t n_train, size_t n_test, qb_dataset *train,
                           qb_dataset *test);

#endif
