/* libFuzzer harness: the results-file readers (qb_results_read and
 * qb_results_count, store/results.h) on the input written to a file;
 * HDF5's own parser (libhdf5, not instrumented) is in the path.
 *
 * Leaks: libhdf5 1.10 leaks internally when it fails on a damaged file
 * (H5Dopen2 -> H5O_msg_read -> H5T__alloc, fuzz/README.md), which no
 * caller can free, so LeakSanitizer ignores allocations made inside
 * libhdf5. What the readers own instead, the identifiers they open, is
 * checked exactly: after each input every kind of HDF5 identifier is back
 * at its count before the input (an H5Dclose or H5Tclose missing on an
 * error path aborts here).
 * Requests of absurd sizes return NULL (allocator_may_return_null), as
 * malloc does outside ASan, so HDF5's own handling of them is what runs.
 * Seeds: fuzz/corpus/results/ (files written by `qblind run`). */
#include <stdio.h>
#include <stdlib.h>

#include <hdf5.h>

#include "fuzz_util.h"
#include "store/results.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
const char *__lsan_default_suppressions(void);
const char *__asan_default_options(void);

const char *__lsan_default_suppressions(void)
{
    return "leak:libhdf5\n";
}

/* libhdf5 mallocs sizes read from the file (H5C_protect) and handles a
 * NULL return; ASan would abort on the request instead of returning NULL. */
const char *__asan_default_options(void)
{
    return "allocator_may_return_null=1";
}

static const H5I_type_t id_types[] = {H5I_FILE,      H5I_GROUP, H5I_DATATYPE, H5I_DATASPACE,
                                      H5I_DATASET,   H5I_ATTR,  H5I_GENPROP_LST};

static void id_counts(hsize_t *n)
{
    for (size_t i = 0; i < sizeof id_types / sizeof id_types[0]; i++)
        if (H5Inmembers(id_types[i], &n[i]) < 0) n[i] = 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    enum { N_TYPES = sizeof id_types / sizeof id_types[0] };
    qb_fuzz_write("r.h5", data, size);
    char path[1024];
    qb_fuzz_path("r.h5", path, sizeof path);
    qb_task_row *rows = NULL;
    size_t n = 0, counts[QB_STATUS_COUNT];
    uint64_t hash = 0;
    qb_error err;
    hsize_t before[N_TYPES], after[N_TYPES];
    H5open();
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL); /* the counts below print nothing */
    id_counts(before);
    if (qb_results_read(path, &rows, &n, &hash, &err) == 0) free(rows);
    qb_results_count(path, counts, &hash, &err);
    id_counts(after);
    for (int i = 0; i < N_TYPES; i++)
        if (after[i] != before[i]) {
            fprintf(stderr, "fuzz_results: HDF5 identifiers of type %d: %llu before, %llu after "
                            "the readers (an identifier left open)\n",
                    (int)id_types[i], (unsigned long long)before[i], (unsigned long long)after[i]);
            abort();
        }
    return 0;
}
