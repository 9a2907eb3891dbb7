/* libFuzzer harness: the GTSRB reader (qb_gtsrb_load, core/dataset.h): its
 * GT CSV parser and its PPM reader. The input is split at NUL bytes (a CSV
 * never holds one): part 0 is the CSV of training class 0 and also the test
 * CSV; parts 1..4 are the images 0.ppm .. 3.ppm, written next to both. The
 * other 42 class folders hold a header-only CSV. Seeds: fuzz/corpus/gtsrb/. */
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "core/dataset.h"
#include "fuzz_util.h"

#define FUZZ_GTSRB_IMAGES 4

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char train_dir[] = "Final_Training/Images/00000";
static const char test_dir[] = "Final_Test/Images";

static void gtsrb_tree_make(void)
{
    static const char header[] = "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId\n";
    char rel[256];
    for (int c = 0; c < 43; c++) {
        snprintf(rel, sizeof rel, "Final_Training/Images/%05d", c);
        qb_fuzz_mkdirs(rel);
        snprintf(rel, sizeof rel, "Final_Training/Images/%05d/GT-%05d.csv", c, c);
        qb_fuzz_write(rel, (const uint8_t *)header, sizeof header - 1);
    }
    qb_fuzz_mkdirs(test_dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int made;
    if (!made) {
        gtsrb_tree_make();
        made = 1;
    }
    qb_fuzz_part part[1 + FUZZ_GTSRB_IMAGES];
    int n = 0; /* split at NUL bytes (the last part keeps any further NULs) */
    size_t start = 0;
    for (size_t i = 0; i <= size && n < 1 + FUZZ_GTSRB_IMAGES; i++) {
        if (i == size || (data[i] == '\0' && n < FUZZ_GTSRB_IMAGES)) {
            part[n].p = data + start;
            part[n].n = i - start;
            n++;
            start = i + 1;
            if (i == size) break;
        }
    }
    char rel[256];
    snprintf(rel, sizeof rel, "%s/GT-00000.csv", train_dir);
    qb_fuzz_write(rel, part[0].p, part[0].n);
    snprintf(rel, sizeof rel, "%s/GT-final_test.csv", test_dir);
    qb_fuzz_write(rel, part[0].p, part[0].n);
    for (int k = 0; k < FUZZ_GTSRB_IMAGES; k++) {
        for (int d = 0; d < 2; d++) {
            snprintf(rel, sizeof rel, "%s/%d.ppm", d ? test_dir : train_dir, k);
            if (1 + k < n)
                qb_fuzz_write(rel, part[1 + k].p, part[1 + k].n);
            else
                qb_fuzz_remove(rel);
        }
    }
    char dir[1024];
    qb_dataset train, test;
    qb_error err;
    if (qb_gtsrb_load(qb_fuzz_path("", dir, sizeof dir), &train, &test, &err) == 0) {
        qb_dataset_free(&train);
        qb_dataset_free(&test);
    }
    return 0;
}
