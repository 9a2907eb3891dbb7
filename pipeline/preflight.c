/* The checks of a spec's data before its first task (pipeline/preflight.h). */
#include "pipeline/preflight.h"

#include "attacks/model_job.h"
#include "core/dataset.h"
#include "core/model.h"

/* The model jobs of dataset d (one per trigger) against its data. */
static int check_jobs(const qb_spec *s, uint32_t d, const char *name, const qb_dataset *train,
                      qb_error *err)
{
    const uint32_t n_trig = s->axes[QB_AXIS_TRIGGER].n;
    for (uint32_t t = 0; t < n_trig; t++) {
        const qb_model_job *job = &s->res.jobs[(size_t)d * n_trig + t];
        char tbuf[QB_AXIS_VALUE_MAX];
        const char *trig = qb_spec_value(s, QB_AXIS_TRIGGER, t, tbuf, sizeof tbuf);
        qb_error e;
        if (qb_trigger_validate(&job->trigger, train->c, train->h, train->w, train->classes, &e))
            return QB_FAIL(err, "spec %s: dataset %s (%dx%dx%d, %d classes), `trigger: %s`: %s; "
                           "every task of it would fail", s->path, name, train->c, train->h,
                           train->w, train->classes, trig, e.msg);
        qb_model m;
        if (qb_model_plan(&m, job->arch, train->c, train->h, train->w, train->classes, &e))
            return QB_FAIL(err, "spec %s: dataset %s (%dx%dx%d, %d classes): architecture %s: "
                           "%s; every task of it would fail", s->path, name, train->c, train->h,
                           train->w, train->classes, job->arch, e.msg);
    }
    return 0;
}

int qb_spec_preflight(const qb_spec *s, qb_error *err)
{
    for (uint32_t d = 0; d < s->axes[QB_AXIS_DATASET].n; d++) {
        char buf[QB_AXIS_VALUE_MAX];
        const char *name = qb_spec_value(s, QB_AXIS_DATASET, d, buf, sizeof buf);
        qb_dataset train, test;
        qb_error e;
        if (qb_dataset_load(name, s->data_dir, QB_SYNTHETIC_SEED, &train, &test, &e))
            return QB_FAIL(err, "spec %s: dataset %s cannot be loaded: %s", s->path, name, e.msg);
        int rc = check_jobs(s, d, name, &train, err);
        qb_dataset_free(&train);
        qb_dataset_free(&test);
        if (rc) return -1;
    }
    return 0;
}
