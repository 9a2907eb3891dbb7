/* The pending results row of a spec task (store/pending_row.h). */
#include "store/pending_row.h"

#include <stdlib.h>

void qb_spec_pending_row(const qb_spec *s, size_t i, qb_task_row *row)
{
    const qb_task *t = &s->tasks[i];
    char seed[32];
    qb_task_row_init(row);
    row->task_id = t->id;
    row->model_id = s->models[t->model].id;
    qb_spec_value(s, QB_AXIS_DATASET, t->dataset, row->dataset, sizeof row->dataset);
    qb_spec_value(s, QB_AXIS_SEED, t->seed, seed, sizeof seed);
    row->seed = strtoll(seed, NULL, 10);
    qb_spec_value(s, QB_AXIS_TRIGGER, t->trigger, row->trigger, sizeof row->trigger);
    qb_spec_value(s, QB_AXIS_PRECISION, t->precision, row->precision, sizeof row->precision);
    qb_spec_value(s, QB_AXIS_MITIGATION, t->mitigation, row->mitigation, sizeof row->mitigation);
    qb_spec_value(s, QB_AXIS_DEFENSE, t->defense, row->defense, sizeof row->defense);
}
