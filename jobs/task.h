/* Tasks, models and their identities: the expansion of a sweep spec.
 *
 * A task is six small indices into the spec's per-axis value tables
 * (jobs/spec.h), the index of its model and a 64-bit id: 32 bytes, so a
 * 1,000,000-task spec needs 32 MB of task table (plus 12 MB of sorted-id
 * index and at most 24 MB of model table).
 *
 * Identity. Every id is qb_hash_finish(FNV-1a 64 of a canonical text):
 *
 *   model id = hash of                      task id = hash of
 *     qblind-model-v1                          qblind-task-v1
 *     dataset=fashion-mnist                    model=<model id, 16 hex digits>
 *     trigger=square                           precision=int8
 *     arch=lenet                               mitigation=none
 *     train.epochs=5 ... train.schedule=cosine defense=nc{patience="5";steps="10"}
 *     attack.rate=0.1 ... attack.alpha=0.15
 *     [attack.qa_target=int8 ... attack.qa_lambda=1]
 *     seed=0
 *
 * one `key=value` per line, each line ending in '\n'. Only settings that
 * can change a result appear: a clean model has no attack.* lines, only
 * qa-pgd/qa-loss models have attack.qa_* lines (qa_epochs resolved to the
 * attack's default, qa_target sorted), `arch` is resolved from the dataset
 * when it is auto, and a task names only its own mitigation's and
 * defense's parameters (keys sorted, values quoted). Numbers are printed
 * in the shortest form that reads back to the same float or double. A
 * model of an architecture the spec declares (`architectures:`) has an
 * `arch.layers="..."` line before the seed: its canonical layer text
 * (jobs/spec.h), so changing a layer changes the model; presets have none.
 * Nothing depends on list or key order, formatting, `name` or `data_dir`,
 * so resuming a reordered spec finds its finished tasks; changing e.g. a
 * defense parameter changes the ids of that defense's tasks and no model
 * id. The texts are versioned (-v1): changing their form means a new
 * version string.
 *
 * The spec hash is the same hash of
 *   qblind-spec-v1, the canonical settings (qb_spec_settings_text),
 *   tasks=<n>, then the sorted task ids as 8 little-endian bytes each. */
#ifndef QB_TASK_H
#define QB_TASK_H

#include <stddef.h>
#include <stdint.h>


typedef struct qb_task {
    uint64_t id;
    uint32_t model;      /* index into spec->models */
    uint32_t seed;       /* index into spec->axes[QB_AXIS_SEED] */
    uint16_t dataset, trigger, precision, mitigation, defense;
    uint16_t reserved;   /* 0 */
} qb_task;
_Static_assert(sizeof(qb_task) == 32, "qb_task is 32 bytes: a million tasks in 32 MB");

/* One distinct model: (dataset, seed, trigger) under the spec's settings.
 * Each is trained once per sweep. */
typedef struct qb_spec_model {
    uint64_t id;
    uint32_t seed;        /* axis table indices */
    uint16_t dataset, trigger;
    uint32_t n_tasks;     /* tasks that use it */
    uint32_t first_task;  /* the lowest of their indices */
} qb_spec_model;
_Static_assert(sizeof(qb_spec_model) == 24, "qb_spec_model is 24 bytes");

/* Axis table index of a task on `axis` (a qb_axis). */
uint32_t qb_task_index(const qb_task *t, int axis);

/* FNV-1a 64: start from QB_HASH_INIT, feed bytes, then finish with the
 * splitmix64 finaliser so every output bit depends on every input bit. */
#define QB_HASH_INIT 0xcbf29ce484222325ull
uint64_t qb_hash_bytes(uint64_t h, const void *data, size_t n);
uint64_t qb_hash_finish(uint64_t h);
/* qb_hash_finish(qb_hash_bytes(QB_HASH_INIT, data, n)) */
uint64_t qb_hash64(const void *data, size_t n);

#endif
