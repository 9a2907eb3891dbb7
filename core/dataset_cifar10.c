/* CIFAR-10 binary version reader.
 *
 * Each file is a sequence of 3073-byte records: 1 label byte (0..9) and
 * 3072 pixel bytes, the R, G and B planes of a 32x32 image in row-major
 * order, which is already our (c, h, w) layout. The official files hold
 * 10000 records each; we accept any positive whole number of records so
 * tests can use small files, and refuse anything else. */
#include "core/dataset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/file.h"
#include "core/xalloc.h"

enum {
    QB_CIFAR_SIDE = 32,
    QB_CIFAR_PIXELS = 3 * 32 * 32,
    QB_CIFAR_RECORD = 1 + 3 * 32 * 32,
    QB_CIFAR_CLASSES = 10,
    QB_CIFAR_TRAIN_FILES = 5,
};
/* One batch file never holds more than this many records (the official ones
 * hold 10000); bigger is corrupt and would only waste memory. */
#define QB_CIFAR_MAX_RECORDS 1000000u

/* Size of one batch file in records, checked against the format. */
static int cifar_file_records(const char *path, size_t *records, qb_error *err)
{
    struct stat st;
    if (stat(path, &st) != 0)
        return QB_FAIL(err, "%s: cannot open: %s (the CIFAR-10 binary version has "
                            "data_batch_1.bin .. data_batch_5.bin and test_batch.bin)",
                       path, strerror(errno));
    if (!S_ISREG(st.st_mode)) return qb_file_check_regular(path, NULL, err); /* says what it is */
    size_t size = (size_t)st.st_size;
    if (size == 0) return QB_FAIL(err, "%s: byte offset 0: empty file", path);
    if (size % QB_CIFAR_RECORD != 0)
        return QB_FAIL(err, "%s: byte offset %zu: file length %zu is not a whole number of "
                            "%d-byte records (truncated record %zu starts here)",
                       path, size - size % QB_CIFAR_RECORD, size, QB_CIFAR_RECORD,
                       size / QB_CIFAR_RECORD);
    if (size / QB_CIFAR_RECORD > QB_CIFAR_MAX_RECORDS)
        return QB_FAIL(err, "%s: %zu records, more than the limit of %u per file", path,
                       size / QB_CIFAR_RECORD, QB_CIFAR_MAX_RECORDS);
    *records = size / QB_CIFAR_RECORD;
    return 0;
}

/* Read `records` records of path into d at sample offset `first`. */
static int cifar_file_read(const char *path, size_t records, qb_dataset *d, size_t first,
                           qb_error *err)
{
    FILE *f = qb_file_fopen_regular(path, NULL, err);
    if (!f) return -1;
    uint8_t rec[QB_CIFAR_RECORD];
    for (size_t i = 0; i < records; i++) {
        size_t off = i * QB_CIFAR_RECORD;
        size_t got = fread(rec, 1, sizeof rec, f);
        if (got != sizeof rec) {
            /* The file shrank between stat and read, or a read error. */
            QB_FAIL(err, "%s: byte offset %zu: short read (%zu of %d bytes of record %zu)%s%s",
                    path, off + got, got, QB_CIFAR_RECORD, i, ferror(f) ? ": " : "",
                    ferror(f) ? strerror(errno) : "");
            fclose(f);
            return -1;
        }
        if (rec[0] >= QB_CIFAR_CLASSES) {
            QB_FAIL(err, "%s: byte offset %zu: label %u out of range 0..%d (record %zu)", path, off,
                    rec[0], QB_CIFAR_CLASSES - 1, i);
            fclose(f);
            return -1;
        }
        d->labels[first + i] = rec[0];
        memcpy(d->images + (first + i) * QB_CIFAR_PIXELS, rec + 1, QB_CIFAR_PIXELS);
    }
    if (fgetc(f) != EOF) {
        QB_FAIL(err, "%s: byte offset %zu: file grew while being read", path,
                records * QB_CIFAR_RECORD);
        fclose(f);
        return -1;
    }
    fclose(f);
    return 0;
}

/* Load the listed files, in order, into one dataset. */
static int cifar_load_files(const char *dir, const char *const *names, int count, qb_dataset *out,
                            qb_error *err)
{
    char paths[QB_CIFAR_TRAIN_FILES][1100];
    size_t records[QB_CIFAR_TRAIN_FILES] = {0}, total = 0;
    QB_ASSERT(count <= QB_CIFAR_TRAIN_FILES);
    for (int i = 0; i < count; i++) {
        int len = snprintf(paths[i], sizeof paths[i], "%s/%s", dir, names[i]);
        if (len < 0 || (size_t)len >= sizeof paths[i])
            return QB_FAIL(err, "CIFAR-10 directory path too long: %s", dir);
        if (cifar_file_records(paths[i], &records[i], err)) return -1;
        total += records[i];
    }
    qb_dataset_init(out, "cifar10", total, 3, QB_CIFAR_SIDE, QB_CIFAR_SIDE, QB_CIFAR_CLASSES);
    size_t first = 0;
    for (int i = 0; i < count; i++) {
        if (cifar_file_read(paths[i], records[i], out, first, err)) {
            qb_dataset_free(out);
            return -1;
        }
        first += records[i];
    }
    return 0;
}

int qb_cifar10_load(const char *dir, qb_dataset *train, qb_dataset *test, qb_error *err)
{
    static const char *const train_names[QB_CIFAR_TRAIN_FILES] = {
        "data_batch_1.bin", "data_batch_2.bin", "data_batch_3.bin", "data_batch_4.bin",
        "data_batch_5.bin"};
    static const char *const test_names[1] = {"test_batch.bin"};
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    if (cifar_load_files(dir, train_names, QB_CIFAR_TRAIN_FILES, train, err)) return -1;
    if (cifar_load_files(dir, test_names, 1, test, err)) {
        qb_dataset_free(train);
        return -1;
    }
    return 0;
}
