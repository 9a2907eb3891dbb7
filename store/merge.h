/* Merging shard results files (store/shard.h) into one results file:
 * `qblind merge OUT.h5 SHARD.h5...`.
 *
 * The merged file is the file one job over the whole spec would have
 * written: /tasks has every task of the spec in the spec's order, each
 * finished row copied byte for byte from the shard that ran it (timings,
 * rank, host and finished_at included), every other task pending; the
 * /details/<name>/<task id> arrays of the finished tasks are copied too;
 * spec_text and spec_hash are the spec's; it carries no shard attributes,
 * so `qblind run SPEC -o OUT.h5` resumes it like any single-job file (that
 * is one way to finish the tasks of a shard that never ran).
 *
 * Refused, with the file named, before anything is written:
 *   - a file that is not a qblind results file, or not a shard file;
 *   - shards of different specs (spec_hash), of different shard counts or
 *     selections, two files of one shard, one file given twice;
 *   - a row whose task is not in the spec or not in its file's shard;
 *   - OUT existing, unless force (then it is replaced, atomically);
 *   - OUT being one of the shard files.
 * Reported (not refused): shards with no file, and pending tasks.
 *
 * The output is built beside OUT as OUT.merge.<pid> and renamed into place
 * only when complete, so an interrupted merge never leaves a half-written
 * OUT. Needs MPI initialised (the writer is store/results.h's). */
#ifndef QB_MERGE_H
#define QB_MERGE_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "store/results.h"
#include "store/shard.h"
#include "jobs/spec.h"

typedef struct qb_merge_config {
    const char *out;
    const char *const *shards; /* n_shards paths */
    size_t n_shards;
    int force;                 /* replace an existing OUT */
    const qb_kv *provenance;   /* extra root attributes (store/results.h), may be NULL */
    size_t n_provenance;
} qb_merge_config;

typedef struct qb_merge_report {
    uint64_t spec_hash;
    qb_shard shard;          /* count and selection of the shards (index unused) */
    size_t n_tasks;          /* tasks of the whole spec */
    size_t n_finished;       /* finished rows copied */
    size_t n_pending;        /* tasks pending in OUT (n_tasks - n_finished) */
    size_t n_details;        /* detail arrays copied */
    uint32_t n_missing;      /* shards with no file */
    uint32_t *missing;       /* (n_missing) their indices, ascending */
    size_t *pending_in;      /* (n_shards) pending tasks per given file, in its own rows */
    int io_failed;           /* the writer failed after OUT's temporary file was
                                opened: end the process without MPI_Finalize
                                (store/results.h, "Full disk") */
} qb_merge_report;

/* Merge cfg->shards into cfg->out. Returns 0 (the report filled; OUT may
 * still be incomplete: see n_missing and n_pending) or -1 with err (no OUT
 * written or replaced; the report's counts are partial). Free the report
 * with qb_merge_report_free in both cases. */
int qb_merge_shards(const qb_merge_config *cfg, qb_merge_report *rep, qb_error *err);
void qb_merge_report_free(qb_merge_report *rep);

#endif
