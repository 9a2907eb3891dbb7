/* A CNN: a layer graph (core/layer.h: a table in topological order) and
 * ONE parameter buffer.
 *
 * All weights and biases live in model->params, each layer owning a slice
 * (weight then bias, layers in order: the order of PyTorch's state_dict for
 * the same nn.Sequential; batch norm: gamma then beta). After the trained
 * parameters, [n_train, n_params) holds what training does not optimise:
 * the running mean and variance of every batch norm, in layer order.
 * Gradients and optimizer state use the same layout, so an optimizer step,
 * a checkpoint and an MPI message are each one flat loop or one buffer.
 * Architectures are text (core/arch.h).
 *
 * Activations live in a qb_model_ws sized for a maximum batch: a model can
 * be shared read-only by several workspaces. */
#ifndef QB_MODEL_H
#define QB_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"
#include "core/layer.h"

#define QB_MAX_LAYERS 160
#define QB_ARCH_NAME_MAX 32

struct qb_model;
struct qb_conv_epilogue;

/* Execution overrides, used by quantized models (quant/qmodel.h); a plain
 * FP32 model has none. Both apply to conv and linear layers only.
 *   input: called on the layer's input in every forward pass that the
 *          layer runs in float; returns x itself or a transformed copy
 *          written to scratch (b * in_size floats), e.g. fake-quantized
 *          activations. The backward pass treats it as the identity (the
 *          straight-through estimator) and uses the transformed input for
 *          the weight gradient.
 *   run:   inference only (training = 0): run the layer (with its fused
 *          epilogue for conv; ep is NULL for linear) itself, e.g. with
 *          integer kernels, writing y. Returns 1 if it did, 0 to fall back
 *          to float (then `input` applies). */
typedef struct qb_layer_hooks {
    void *ctx;
    const float *(*input)(void *ctx, const struct qb_model *m, int layer, int b, const float *x,
                          float *scratch);
    int (*run)(void *ctx, const struct qb_model *m, int layer,
               const struct qb_conv_epilogue *ep, int b, const float *x, float *y);
} qb_layer_hooks;

typedef struct qb_model {
    char arch[QB_ARCH_NAME_MAX];
    int in_c, in_h, in_w; /* input of one sample */
    int classes;
    int n_layers;
    qb_layer layers[QB_MAX_LAYERS];
    size_t n_params;
    size_t n_train;  /* parameters [0, n_train) are trained; the rest are
                        batch-norm running statistics */
    float *params; /* (n_params), owned */
    const qb_layer_hooks *hooks; /* NULL, or overrides owned by whoever set
                                    them (a qb_qmodel); copies share them */
} qb_model;

/* Build `arch` (a preset of core/arch.h or a declared architecture) for
 * inputs (c, h, w) and `classes` outputs, parameters zeroed. Fails (with
 * the reason) for unknown names or inputs too small for the architecture.
 * On success free with qb_model_free. */
int qb_model_build(qb_model *m, const char *arch, int c, int h, int w, int classes,
                   qb_error *err);
/* As qb_model_build but allocates nothing: fills the layer table and
 * n_params, params stays NULL (the model loader compares a file against
 * it before trusting the file's sizes). Refuses inputs whose activations
 * exceed QB_MAX_ACTIVATION floats per sample. */
int qb_model_plan(qb_model *m, const char *arch, int c, int h, int w, int classes,
                  qb_error *err);
#define QB_MAX_ACTIVATION ((size_t)1 << 24)
void qb_model_free(qb_model *m);
/* Deep copy (dst must not hold a model). */
void qb_model_copy(qb_model *dst, const qb_model *src);

/* PyTorch's default initialisation: weights and biases uniform in
 * +-1/sqrt(fan_in) (kaiming_uniform with a = sqrt(5)), from `seed`; batch
 * norms gamma 1, beta 0, running mean 0, running variance 1. */
void qb_model_init_params(qb_model *m, uint64_t seed);

/* Index of the layer whose output is the "penultimate representation"
 * used by defenses: the input of the last linear layer (through a
 * flatten). */
int qb_model_penultimate_layer(const qb_model *m);

/* 1 if the model has a batch norm or a residual addition. */
int qb_model_has_graph_layers(const qb_model *m);

/* The node a layer's output feeds when it is used exactly once by a layer
 * of kind `kind`: that layer's index, else -1. */
int qb_model_sole_consumer(const qb_model *m, int layer, qb_layer_kind kind);

/* Activation buffers for batches of up to max_batch samples. */
typedef struct qb_model_ws {
    int max_batch;
    float *act[QB_MAX_LAYERS + 1]; /* views: act[i+1] is the output of layer i,
                                      (b, out_size); act[0] is the caller's input
                                      and a flatten layer's output is its input */
    float *owned[QB_MAX_LAYERS + 1]; /* the buffers behind act, owned */
    int32_t *argmax[QB_MAX_LAYERS]; /* maxpool layers: (b, out_size) */
    float *bn_stat[QB_MAX_LAYERS];  /* batch norm in training mode: (2C) the
                                       batch mean and 1/sqrt(var + eps) */
    float *bn_var[QB_MAX_LAYERS];   /* ... and the unbiased batch variance (C) */
    float *gslot[8];                /* activation gradients (b, act_max), by
                                       liveness (core/model_run.c) */
    int uses[QB_MAX_LAYERS + 1];    /* consumers of every node */
    size_t col_budget;              /* floats of im2col cache still allowed */
    int trained_bn;                 /* the last forward used batch statistics */
    /* Inference in a fused workspace recycles activation buffers by
     * liveness (a node's buffer is reused once its last consumer ran):
     * only the output stays readable afterwards (unless
     * qb_model_ws_set_recycling(ws, 0)). */
    float *pool[16];                /* (b, act_max) each */
    int pool_ref[16];
    int pool_of[QB_MAX_LAYERS + 1]; /* node -> pool buffer, -1 */
    int left[QB_MAX_LAYERS + 1];    /* consumers still to run */
    int recycling, no_recycling;
    int bn_training;                /* 1: batch norms use and update batch
                                       statistics (qb_model_ws_set_bn_training) */
    float *work;                    /* conv scratch */
    float *col_cache[QB_MAX_LAYERS]; /* conv layers: im2col kept from a training
                                        forward for the backward pass */
    float *hook_in[QB_MAX_LAYERS];   /* conv/linear, with an input hook:
                                        (b, in_size) transformed inputs */
    const float *layer_in[QB_MAX_LAYERS]; /* the input each conv/linear layer
                                        actually used in the last forward */
    size_t act_max;                 /* largest per-sample activation */
    int unfused;                    /* 1: run every layer separately */
} qb_model_ws;

void qb_model_ws_init(qb_model_ws *ws, const qb_model *m, int max_batch);
void qb_model_ws_free(qb_model_ws *ws);

/* By default a conv followed by relu (and a 2x2 maxpool) runs as one
 * fused block whose intermediate activations (act[] of the conv and relu
 * layers) are not materialised; the block output is bit-identical to the
 * separate layers. qb_model_ws_set_fused(ws, 0) materialises every layer
 * (for code that inspects intermediate activations, and for the tests). */
void qb_model_ws_set_fused(qb_model_ws *ws, int fused);

/* A fused inference pass (training = 0) recycles the buffers of
 * intermediate activations once their consumers ran, so only the logits
 * stay readable (preact-resnet18 at batch 256: 0.25 GB instead of 2 GB).
 * qb_model_ws_set_recycling(ws, 0) keeps every materialised activation in
 * ws->act (for callers that read the fused blocks' outputs). An unfused
 * workspace and a training pass never recycle. */
void qb_model_ws_set_recycling(qb_model_ws *ws, int on);

/* Batch norms in training mode (1: normalise with the batch's statistics,
 * as PyTorch's model.train()) or evaluation mode (0, the default:
 * the running statistics, as model.eval()). Training mode needs batches of
 * more than one value per channel. */
void qb_model_ws_set_bn_training(qb_model_ws *ws, int on);

/* After a forward pass in batch-norm training mode: move every batch
 * norm's running statistics towards the batch's (momentum QB_BN_MOMENTUM,
 * unbiased variance), as PyTorch does in the forward pass. */
void qb_model_bn_update(qb_model *m, const qb_model_ws *ws);

/* Forward b <= max_batch samples x (b, in_c, in_h, in_w). Returns the
 * logits (b, classes), valid until the next call with this workspace. If
 * `training` is 0 maxpool argmax is not recorded (backward not allowed). */
const float *qb_model_forward(const qb_model *m, qb_model_ws *ws, const float *x, int b,
                              int training);

/* Backward after a training forward of the same b samples. Accumulates the
 * parameter gradients into grads (n_params, same layout as params); grads
 * NULL skips them (input gradients only: trigger optimisation). If dx is
 * not NULL it receives the input gradient (b, in_c, in_h, in_w). */
void qb_model_backward(const qb_model *m, qb_model_ws *ws, const float *dlogits, int b,
                       float *grads, float *dx);

#endif
