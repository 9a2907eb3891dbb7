#include "tests/testutil_defenses.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"
#include "tests/testutil.h"

void qb_test_input_deployed(qb_defense_input *in, const qb_qmodel *qm)
{
    memset(in, 0, sizeof *in);
    in->model = &qm->model;
    in->qmodel = qm;
    in->precision = &qm->prec;
}

void qb_test_input_pool(qb_defense_input *in, const qb_dataset *test, const uint32_t *pool,
                        size_t n_pool, size_t eval_from)
{
    in->test = test;
    in->pool = pool;
    in->n_pool = n_pool;
    in->eval_from = eval_from;
}

void qb_test_run_init(qb_test_run *r, int detected)
{
    qb_details_init(&r->det);
    memset(&r->res, 0, sizeof r->res);
    r->res.detected = detected;
    r->res.details = &r->det;
}

void qb_test_run_reset(qb_test_run *r)
{
    qb_details_free(&r->det);
    qb_details_init(&r->det);
}

void qb_test_run_free(qb_test_run *r)
{
    qb_details_free(&r->det);
}

void qb_test_defense_fails(qb_defense_fn defense, const qb_defense_input *in, qb_test_run *run,
                           const char *frag)
{
    qb_error err;
    memset(&err, 0, sizeof err);
    assert_int_equal(defense(in, &run->res, &err), -1);
    qb_test_assert_msg_has(&err, frag);
    assert_int_equal(run->det.n, 0);
}

void qb_test_rerun_same(qb_defense_fn defense, const qb_defense_input *in, const qb_details *det)
{
    qb_test_run again;
    qb_test_run_init(&again, 0);
    qb_error err;
    assert_int_equal(defense(in, &again.res, &err), 0);
    qb_test_details_assert_equal(det, &again.det);
    qb_test_run_free(&again);
}

void qb_test_train_case_init(qb_test_train_case *c, size_t stride, const qb_param_def *params)
{
    qb_error err;
    qb_synthetic_generate(3, 300, 10, &c->train, &c->test);
    const qb_dataset *t = &c->train;
    assert_int_equal(qb_model_build(&c->model, "lenet", t->c, t->h, t->w, t->classes, &err), 0);
    qb_model_init_params(&c->model, 1);
    c->is_poisoned = xcalloc(t->n, 1);
    c->n_poisoned = 0;
    for (size_t i = 0; i < t->n; i += stride) c->is_poisoned[i] = 1, c->n_poisoned++;
    qb_trigger_default(&c->trigger, QB_TRIGGER_SQUARE);
    qb_defense_input *in = &c->in;
    memset(in, 0, sizeof *in);
    in->model = &c->model;
    in->fp32 = &c->model;
    in->train = &c->train;
    in->is_poisoned = c->is_poisoned;
    in->n_poisoned = c->n_poisoned;
    in->test = &c->test;
    in->trigger = &c->trigger;
    in->attacked = 1;
    in->seed = 77;
    in->params = (qb_params){.defs = params, .n = 0, .kv = NULL};
    qb_test_run_init(&c->run[0], 0);
    qb_test_run_init(&c->run[1], 0);
}

void qb_test_train_case_run(qb_test_train_case *c, qb_defense_fn defense, int i)
{
    qb_error err;
    qb_test_run_reset(&c->run[i]);
    assert_int_equal(defense(&c->in, &c->run[i].res, &err), 0);
}

void qb_test_train_case_assert_same(const qb_test_train_case *c, const qb_test_detail_len *want,
                                    size_t n_want)
{
    for (size_t k = 0; k < n_want; k++) {
        const qb_detail *a = qb_details_find(&c->run[0].det, want[k].name);
        const qb_detail *b = qb_details_find(&c->run[1].det, want[k].name);
        assert_non_null(a);
        assert_int_equal(a->n, want[k].n);
        assert_non_null(b);
        assert_int_equal(a->n, b->n);
        assert_memory_equal(a->v, b->v, a->n * sizeof(double));
    }
    assert_int_equal(c->run[0].res.detected, c->run[1].res.detected);
}

void qb_test_train_case_unpoisoned(qb_test_train_case *c)
{
    c->in.is_poisoned = NULL;
    c->in.n_poisoned = 0;
}

void qb_test_train_case_free(qb_test_train_case *c)
{
    qb_test_run_free(&c->run[0]);
    qb_test_run_free(&c->run[1]);
    free(c->is_poisoned);
    qb_model_free(&c->model);
    qb_dataset_free(&c->train);
    qb_dataset_free(&c->test);
}
