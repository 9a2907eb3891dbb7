/* Shared helpers for the cmocka suites of the defenses (defenses/): the
 * pieces of a qb_defense_input, a defense run's result, and the small
 * poisoned-training case of the defenses that read the training set.
 * Linked as qb_testutil_defenses by the suites that include this header
 * (tests/CMakeLists.txt). */
#ifndef QB_TESTUTIL_DEFENSES_H
#define QB_TESTUTIL_DEFENSES_H

#include <stddef.h>
#include <stdint.h>

#include "core/dataset.h"
#include "core/details.h"
#include "core/model.h"
#include "attacks/trigger.h"
#include "defenses/defense.h"
#include "quant/qmodel.h"

/* in = all zero but the deployed model of qm: model, qmodel, precision. */
void qb_test_input_deployed(qb_defense_input *in, const qb_qmodel *qm);

/* The defender's held-out data: in->test, in->pool (n_pool test indices)
 * and in->eval_from; the other fields are left alone. */
void qb_test_input_pool(qb_defense_input *in, const qb_dataset *test, const uint32_t *pool,
                        size_t n_pool, size_t eval_from);

/* A defense's result and its details, before a run: res.detected =
 * `detected` (a value no rule gives shows a run that did not set it),
 * res.details = &det. Not to be copied (res points into it). */
typedef struct qb_test_run {
    qb_details det;
    qb_defense_result res;
} qb_test_run;
void qb_test_run_init(qb_test_run *r, int detected);
/* Empties the details for another run (res.detected is left as it is). */
void qb_test_run_reset(qb_test_run *r);
void qb_test_run_free(qb_test_run *r);

/* Runs `defense` on `in` into run, expecting it not to run: it must
 * return -1 with `frag` in the message and leave run's details empty. */
void qb_test_defense_fails(qb_defense_fn defense, const qb_defense_input *in, qb_test_run *run,
                           const char *frag);

/* Runs `defense` on `in` again and fails unless it succeeds with details
 * identical to `det` (names, lengths, bits). */
void qb_test_rerun_same(qb_defense_fn defense, const qb_defense_input *in, const qb_details *det);

/* The case of the defenses that read the training set (AC, SS): the
 * synthetic data set (seed 3, 300 training and 10 test images), a LeNet
 * built for it with random parameters (seed 1), every `stride`-th training
 * sample marked poisoned (ground truth only: the images are not changed),
 * the default square trigger, and `in` reading all of them as an attacked
 * FP32 model with seed 77 and the defaults of `params`. Not to be copied
 * (in points into it). */
typedef struct qb_test_train_case {
    qb_dataset train, test;
    qb_model model;
    uint8_t *is_poisoned; /* (train.n) */
    size_t n_poisoned;
    qb_trigger trigger;
    qb_defense_input in;
    qb_test_run run[2]; /* two runs' results (res.detected 0 before a run) */
} qb_test_train_case;
void qb_test_train_case_init(qb_test_train_case *c, size_t stride, const qb_param_def *params);
/* Runs `defense` on c->in into c->run[i] (emptied first); fails the test
 * unless it succeeds. */
void qb_test_train_case_run(qb_test_train_case *c, qb_defense_fn defense, int i);
/* A detail a defense must write, and its number of values. */
typedef struct qb_test_detail_len {
    const char *name;
    size_t n;
} qb_test_detail_len;
/* c->run[0] and c->run[1] (the same defense run twice on c->in) agree:
 * each of the n_want details is in run[0] with want[k].n values and in
 * run[1] bit for bit the same; both runs gave the same verdict. */
void qb_test_train_case_assert_same(const qb_test_train_case *c, const qb_test_detail_len *want,
                                    size_t n_want);
/* The same model defended as a clean one: no poisoned samples. */
void qb_test_train_case_unpoisoned(qb_test_train_case *c);
void qb_test_train_case_free(qb_test_train_case *c);

#endif
