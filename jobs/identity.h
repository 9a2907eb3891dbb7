/* Task identity (the texts and their hashes: jobs/task.h) as the expansion
 * uses it: hash states after the shared prefixes, so that each task feeds
 * only its own short lines (jobs/spec_expand.c). Implemented with the text
 * functions in jobs/identity.c, from the same emitters. */
#ifndef QB_IDENTITY_H
#define QB_IDENTITY_H

#include <stddef.h>
#include <stdint.h>

#include "jobs/spec.h"

/* The architecture of a model of `dataset`: train.arch, or for `auto` the
 * dataset's default (core/dataset.h). */
const char *qb_spec_arch(const qb_spec *s, const char *dataset);

/* FNV state after everything of a model's identity but its seed line
 * (dataset and trigger are axis table indices). */
uint64_t qb_id_model_prefix(const qb_spec *s, uint32_t dataset, uint32_t trigger);
/* The model id: the prefix state, then the seed line, finished. */
uint64_t qb_id_model(uint64_t prefix, uint64_t seed);
/* FNV state after a task's header and model line. */
uint64_t qb_id_task_prefix(uint64_t model_id);
/* The task line "axis=value\n" of value idx (precision, mitigation or
 * defense) as a malloc'd string of *len bytes (NUL-terminated). */
char *qb_id_task_line(const qb_spec *s, qb_axis axis, uint32_t idx, size_t *len);
/* FNV state after the spec hash's header, settings and task count; the
 * sorted ids follow (jobs/task.h). */
uint64_t qb_id_spec_prefix(const qb_spec *s, size_t n_tasks);

#endif
