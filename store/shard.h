/* Shards: a deterministic 1/N of a spec's tasks, for clusters that prefer
 * job arrays (`qblind run --shard i/N`, slurm/array.sbatch), and the
 * shard attributes of a results file.
 *
 * Selection. Task t belongs to shard  key(t) mod N,  where key(t) is
 *   by model (the default): the id of t's model (jobs/task.h), so every
 *            model's tasks land in one shard and each model is trained
 *            once across the whole array, as in a single job;
 *   by task:  t's own id: the finest balance (useful when the spec has
 *            fewer models than shards), but a model's tasks spread over
 *            up to N shards, each of which trains that model again.
 * Both ids are hashes (FNV-1a + splitmix64 finaliser) of the canonical
 * text of the task, never of its position: the shards are disjoint, their
 * union is the spec, and a task's shard does not change when the spec's
 * lists are reordered or reformatted. The task's row and its /details
 * arrays do not depend on the shard it ran in (seeds come from the task's
 * own tuple), so merging the shards gives the single job's file.
 *
 * A shard results file is an ordinary results file (store/results.h) whose
 * /tasks holds only the shard's tasks, whose spec_hash is the whole spec's,
 * and whose root carries three more string attributes (written as
 * provenance entries when the file is created, rewritten on every open):
 *   shard_index  "0".."N-1"
 *   shard_count  "N"
 *   shard_by     "model" | "task"
 * A file without them is a whole-spec file. */
#ifndef QB_SHARD_H
#define QB_SHARD_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "store/results.h"
#include "jobs/spec.h"

#define QB_SHARD_MAX_COUNT 1000000u

typedef enum qb_shard_by {
    QB_SHARD_BY_MODEL = 0,
    QB_SHARD_BY_TASK = 1,
} qb_shard_by;

/* count 0: no sharding (the whole spec); else 0 <= index < count. */
typedef struct qb_shard {
    uint32_t index, count;
    qb_shard_by by;
} qb_shard;

/* "i/N" (decimal, 0 <= i < N <= QB_SHARD_MAX_COUNT) into sh->index and
 * sh->count; sh->by is left as it is. -1 with a message otherwise. */
int qb_shard_parse(const char *text, qb_shard *sh, qb_error *err);

/* "model" | "task" into *by; -1 with a message otherwise. */
int qb_shard_by_parse(const char *text, qb_shard_by *by, qb_error *err);
const char *qb_shard_by_name(qb_shard_by by);

/* The shard (0..count-1) of task `task` of the spec; count >= 1. The spec
 * may be a restricted one (the answer is the same). */
uint32_t qb_shard_of(const qb_spec *s, size_t task, uint32_t count, qb_shard_by by);

/* Restrict an expanded spec to the tasks of shard sh (nothing to do when
 * sh->count is 0): s->tasks keeps them in their order, s->models only the
 * models they use (in order of first use, n_tasks and first_task
 * recounted, tasks' model indices renumbered), the sorted-id index only
 * their ids. s->hash stays the hash of the whole spec (it names the task
 * list of the sweep, which the shard files share). A shard may be empty
 * (n_tasks 0, n_models 0). Deterministic: every rank restricting the same
 * spec gets the same tables. */
void qb_shard_restrict(qb_spec *s, const qb_shard *sh);

/* The shard's provenance entries (3; 0 when sh->count is 0) into kv, with
 * the numbers printed into bufs (which must outlive kv). Returns how many. */
size_t qb_shard_provenance(const qb_shard *sh, qb_kv kv[3], char bufs[2][16]);

/* What the results file at `path` says about itself (serial HDF5, no
 * MPI): its spec hash, its spec text (malloc'd into *spec_text if not
 * NULL; free()) and its shard (count 0 when it is a whole-spec file).
 * -1 with the file named if it is not a qblind results file or its shard
 * attributes are malformed. */
int qb_shard_read_file(const char *path, qb_shard *sh, uint64_t *spec_hash, char **spec_text,
                       qb_error *err);

/* Before `qblind run` opens an existing results file: its shard must be
 * the run's (both none, or the same index, count and selection), else -1
 * with a message that names the file and both shards. 0 when the file does
 * not exist. A shard mismatch is refused even with --force: the file's
 * rows belong to another part of the sweep. */
int qb_shard_check_file(const char *path, const qb_shard *sh, qb_error *err);

/* "3/8 by model" (or "none") into buf; returns buf. */
const char *qb_shard_text(const qb_shard *sh, char *buf, size_t n);

#endif
