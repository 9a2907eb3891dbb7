/* A model deployed at a precision.
 *
 * qb_qmodel holds the quantized codes and scales of every quantized layer,
 * and a qb_model (`model`) whose parameters are the de-quantized weights
 * with hooks installed, so everything that runs a qb_model (metrics,
 * training loops, defenses) runs the deployed model:
 *   - inference of integer precisions (weights and activations <= 8 bits)
 *     runs the real integer kernels: activations quantized per batch
 *     (dynamic, symmetric, per tensor), im2row in int8, int8 x int8 -> int32
 *     GEMM (quant/gemm_s8.h), rescaled to float with the bias, then the
 *     layer's fused ReLU/pool;
 *   - everything else, and every training/gradient pass, runs float on the
 *     de-quantized weights with activations fake-quantized at each
 *     quantized layer's input, and straight-through gradients (the
 *     quantizer's derivative taken as 1).
 * Biases stay float32 (as PyTorch's dynamic quantization keeps them).
 *
 * Batch norms. Before quantizing, every batch norm that follows a
 * convolution read by nothing else is folded into it (core/bn_fold.h, as
 * deployment toolchains do: the folded weights are what is quantized, the
 * folded bias stays float); the deployed model is the folded one (its
 * architecture "<arch>.bnfold"), and `fold` says which of the source's
 * layers went where. The batch norms that stay (PreAct-ResNet's, after an
 * addition) run in float in evaluation mode, like ReLU and pooling.
 *
 * Residual additions. Activations between layers are floats: a quantized
 * layer's output is its integer accumulator rescaled (s_x s_w acc + bias,
 * s_x the per-batch scale of its input, s_w the weights'). An addition
 * adds two such tensors (or one and the float identity shortcut), i.e. it
 * computes s_a acc_a + s_b acc_b (+ biases) in float: "rescaling at the
 * add" is this conversion of each branch to the common real scale before
 * the sum; the sum is requantized (per batch, symmetric) where the next
 * quantized layer reads it, as every other activation is. The scheme does
 * not quantize an addition's inputs to int8 themselves (no layer of it
 * quantizes an activation that is not a conv/linear input), so the
 * integer and the simulated paths treat additions identically.
 *
 * The struct holds pointers into itself (model.hooks): do not copy or move
 * an initialised qb_qmodel; use qb_qmodel_init again. */
#ifndef QB_QMODEL_H
#define QB_QMODEL_H

#include <stdint.h>

#include "core/bn_fold.h"
#include "core/error.h"
#include "core/model.h"
#include "quant/gemm_s8.h"
#include "quant/precision.h"

typedef struct qb_qlayer {
    int active;            /* this conv/linear layer is quantized */
    size_t rows, cols;     /* weight matrix (OC, C*k*k) or (OUT, IN) */
    int8_t *codes;         /* (rows, cols) integer weights, owned */
    float *scales;         /* (rows) per channel or (1) per tensor, owned */
    qb_s8_weights packed;  /* integer inference only */
} qb_qlayer;

typedef struct qb_qmodel {
    qb_model model;        /* de-quantized weights + hooks (owned) */
    qb_precision prec;
    qb_layer_hooks hooks;
    qb_qlayer ql[QB_MAX_LAYERS];
    int integer;           /* inference uses the integer kernels */
    int folded;            /* batch norms were folded (model != the source's layers) */
    qb_bn_fold_map fold;   /* source layers -> model layers (qb_qmodel_init; the
                              identity for fp32 and without foldable batch
                              norms; all zero after qb_qmodel_decode) */
    float *zero_bias;      /* (largest out_c) zeros: convolutions without bias */
    /* scratch of the integer path, grown on demand */
    int8_t *xq;            /* quantized activations (conv: channels-last, zero-padded) */
    int8_t *rows8;         /* im2row patches of a chunk of images */
    int32_t *acc;          /* GEMM output (positions, OC) */
    float *tmp;            /* per-channel rescale factors, then a small tile of
                              rescaled outputs for the epilogue */
    size_t xq_len, rows8_len, acc_len, tmp_len;
} qb_qmodel;

/* Quantize `fp` (not modified, not referenced afterwards) to `prec`,
 * its foldable batch norms folded first (integer precisions and simulated
 * ones alike; fp32 keeps fp's layers).
 * `noise_std` > 0 adds Gaussian noise of that standard deviation, relative
 * to each weight tensor's scale, before rounding (laundering), drawn from
 * `seed`; pass 0 for plain quantization. fp32 gives a float copy without
 * hooks. Fails for an invalid precision, or when the folded architecture
 * cannot be declared (core/bn_fold.h). Free with qb_qmodel_free. */
int qb_qmodel_init(qb_qmodel *qm, const qb_model *fp, const qb_precision *prec,
                   float noise_std, uint64_t seed, qb_error *err);
void qb_qmodel_free(qb_qmodel *qm);

/* Second half of initialisation, for code that fills the quantized layers
 * itself (the .qbq loader): given model (float, no hooks), prec, and for
 * every active layer rows/cols/codes/scales, write the de-quantized
 * weights into model.params, pack the integer weights and install the
 * hooks. */
void qb_qmodel_finish(qb_qmodel *qm);

/* Whether layer i of `m` is quantized under `prec`. */
int qb_precision_quantizes_layer(const qb_precision *prec, const qb_model *m, int i);

#endif
