/* What can be known about a spec's tasks before the first one runs: that
 * their data load and that their models and triggers fit the data. `qblind
 * plan` and the start of `qblind run` check it, so that a spec whose every
 * task would fail says so at once instead of recording failed rows. */
#ifndef QB_PREFLIGHT_H
#define QB_PREFLIGHT_H

#include "core/error.h"
#include "jobs/spec.h"

/* Load each dataset of the spec once (from its data_dir, as the workers
 * do; the train split's shape and classes), and for every (dataset,
 * trigger) model job check that the trigger fits the images and its
 * target class exists (attacks/trigger.h qb_trigger_validate) and that
 * the architecture builds for them (core/model.h qb_model_plan). Returns
 * 0, or -1 with err naming the dataset, the trigger and the problem. Each
 * dataset is freed before the next is loaded. */
int qb_spec_preflight(const qb_spec *s, qb_error *err);

#endif
