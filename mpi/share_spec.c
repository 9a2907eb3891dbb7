/* The spec on every rank: rank 0 reads it, the others parse its text. */
#include <mpi.h>
#include <stdlib.h>

#include "core/xalloc.h"
#include "mpi/runner.h"

int qb_runner_share_spec(const char *path, qb_spec *s, int rank, qb_error *err)
{
    int64_t len = -1;
    if (rank == 0) {
        if (qb_spec_load(s, path, err) == 0) len = (int64_t)s->text_len;
    }
    MPI_Bcast(&len, 1, MPI_INT64_T, 0, MPI_COMM_WORLD);
    if (len < 0) return rank == 0 ? -1 : QB_FAIL(err, "rank 0 could not load the spec");
    char *text = rank == 0 ? s->text : xmalloc((size_t)len + 1, 1);
    MPI_Bcast(text, (int)len, MPI_CHAR, 0, MPI_COMM_WORLD);
    if (rank != 0) {
        int rc = qb_spec_parse(s, text, (size_t)len, path, err);
        free(text);
        return rc;
    }
    return 0;
}
