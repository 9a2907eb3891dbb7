/* The cost model of `qblind plan`: core-seconds a spec will take, from
 * its models' layer graphs.
 *
 * Training one image costs, per layer (core/layer.h), on one core:
 *   conv, linear   multiply-adds x (3: forward, weight and input gradients;
 *                  2 for a layer reading the model input, which needs no
 *                  input gradient) x QB_COST_MAC (the im2col around a
 *                  convolution is folded into it);
 *   bn, relu, add, pools: output values x passes (bn 6, add 3, the others
 *                  2) x QB_COST_ELEM: memory-bound passes, which make thin
 *                  residual nets (resnet20's 16 channels) slower per
 *                  multiply-add than wide ones;
 *   the optimizer step, parameters x QB_COST_PARAM / batch.
 * Inference is the forward part. The constants were fitted to one thread
 * of the development machine (bench/plan_cost.sh measures them against
 * bench_train; the numbers are in bench/RESULTS.md, "The plan's cost
 * model"): re-run it after a change that makes training faster. */
#ifndef QB_COST_H
#define QB_COST_H

#include <stddef.h>

#include "core/error.h"
#include "core/model.h"
#include "jobs/spec.h"

/* Multiply-adds of one sample through layer l (conv and linear; 0 for
 * the others). */
double qb_cost_layer_macs(const qb_layer *l);

/* Multiply-adds of one forward pass of one image (conv and linear). */
double qb_cost_forward_macs(const qb_model *m);

/* Core-seconds to train on one image at batch `batch` (forward, backward,
 * the optimizer step's share). m needs its layer table only (a plan). */
double qb_cost_train_image(const qb_model *m, int batch);

/* Core-seconds of one image's forward pass. */
double qb_cost_infer_image(const qb_model *m);

/* One architecture on one dataset, as the spec's models use it. */
typedef struct qb_cost_arch {
    char arch[QB_ARCH_NAME_MAX];
    char dataset[QB_AXIS_VALUE_MAX];
    double macs;        /* forward multiply-adds per image */
    double train_image; /* core-seconds per training image */
    size_t n_train;     /* images per epoch */
    size_t n_models;    /* models of the spec with it */
    double eval_scale;  /* a task's evaluation and stages relative to LeNet
                           on Fashion-MNIST (inference cost x test images) */
} qb_cost_arch;

typedef struct qb_spec_cost {
    double train_s;   /* core-seconds training the models (with qa repair) */
    double task_s;    /* core-seconds of the tasks: evaluations, mitigations, defenses */
    double longest_s; /* the longest single model's training */
    size_t n_archs;
    qb_cost_arch *archs; /* (n_archs) owned; free with qb_spec_cost_free */
} qb_spec_cost;

/* Estimate the cost of an expanded spec. Every model's architecture must
 * plan for its dataset (the spec parser checked it). 0, or -1 with err. */
int qb_spec_cost_estimate(const qb_spec *s, qb_spec_cost *out, qb_error *err);
void qb_spec_cost_free(qb_spec_cost *c);

#endif
