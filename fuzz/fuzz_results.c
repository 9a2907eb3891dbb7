/* libFuzzer harness: the results-file readers (qb_results_read and
 * qb_results_count, store/results.h) on the input written to a file;
 * HDF5's own parser (libhdf5, not instrumented) is in the path.
 * Seeds: fuzz/corpus/results/ (files written by `qblind run`). */
#include <stdlib.h>

#include "fuzz_util.h"
#include "store/results.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qb_fuzz_write("r.h5", data, size);
    char path[1024];
    qb_fuzz_path("r.h5", path, sizeof path);
    qb_task_row *rows = NULL;
    size_t n = 0, counts[QB_STATUS_COUNT];
    uint64_t hash = 0;
    qb_error err;
    if (qb_results_read(path, &rows, &n, &hash, &err) == 0) free(rows);
    qb_results_count(path, counts, &hash, &err);
    return 0;
}
