/* libFuzzer harness: the two binary dataset readers of core/dataset.h.
 * The first input byte picks the reader, the rest is its files:
 *   'I'  qb_idx_load: the images file, "#LABELS#", the labels file (gzip
 *        or plain: zlib reads both);
 *   'C'  qb_cifar10_load: data_batch_1.bin .. data_batch_5.bin and
 *        test_batch.bin separated by "#CIFAR#"; files the input does not
 *        reach repeat its last part.
 * The files are written to the process's temporary directory.
 * Seeds: fuzz/corpus/idx_cifar10/. */
#include <stddef.h>
#include <stdint.h>

#include "core/dataset.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void fuzz_idx(const uint8_t *data, size_t size)
{
    qb_fuzz_part part[2];
    int n = qb_fuzz_split(data, size, "#LABELS#", part, 2);
    qb_fuzz_write("images", part[0].p, part[0].n);
    if (n > 1)
        qb_fuzz_write("labels", part[1].p, part[1].n);
    else
        qb_fuzz_remove("labels");
    char ipath[1024], lpath[1024];
    qb_dataset d;
    qb_error err;
    if (qb_idx_load(qb_fuzz_path("images", ipath, sizeof ipath),
                    qb_fuzz_path("labels", lpath, sizeof lpath), "fuzz", &d, &err) == 0)
        qb_dataset_free(&d);
}

static void fuzz_cifar10(const uint8_t *data, size_t size)
{
    static const char *const names[6] = {"cifar/data_batch_1.bin", "cifar/data_batch_2.bin",
                                         "cifar/data_batch_3.bin", "cifar/data_batch_4.bin",
                                         "cifar/data_batch_5.bin", "cifar/test_batch.bin"};
    static int made;
    if (!made) {
        qb_fuzz_mkdirs("cifar");
        made = 1;
    }
    qb_fuzz_part part[6];
    int n = qb_fuzz_split(data, size, "#CIFAR#", part, 6);
    for (int i = 0; i < 6; i++) {
        const qb_fuzz_part *p = &part[i < n ? i : n - 1];
        qb_fuzz_write(names[i], p->p, p->n);
    }
    char dir[1024];
    qb_dataset train, test;
    qb_error err;
    if (qb_cifar10_load(qb_fuzz_path("cifar", dir, sizeof dir), &train, &test, &err) == 0) {
        qb_dataset_free(&train);
        qb_dataset_free(&test);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0) return 0;
    if (data[0] == 'I') fuzz_idx(data + 1, size - 1);
    if (data[0] == 'C') fuzz_cifar10(data + 1, size - 1);
    return 0;
}
