/* Fine-Pruning (Liu, Dolan-Gavitt, Garg, RAID 2018): prune the channels of
 * the last convolutional layer that clean inputs leave dormant (a backdoor
 * tends to live there), as long as clean accuracy allows, then fine-tune
 * on clean data.
 *
 * One procedure, shared by the `fp` defense (defenses/fineprune.c, which
 * reports whether it removed the backdoor) and the fine-pruning
 * mitigation (which deploys the model it produces): qb_fineprune_run.
 *
 * The channels (qb_fineprune_target below): on chains (lenet, cnn-small)
 * those of the last conv layer, as described in steps 1-3; on graphs
 * (batch norms, residual additions: the resnets, vgg11-bn) those of the
 * penultimate representation, the input of the last linear layer (for the
 * resnets the global average pool of the last block, so its channels are
 * the last convolution block's output channels and their mean activation
 * is the one step 1 describes), and pruning a channel zeroes the columns of
 * the linear layer that read it (BackdoorBench's fp.py) instead of a
 * conv's weights. Fine-tuning (qb_train) runs the batch norms the model
 * has in training mode; the mask is re-applied after it (step 3).
 *
 *   1. Rank. Mean activation of every channel of the last conv layer, after
 *      its ReLU (the unfused ReLU output, or the conv output if no ReLU
 *      follows), over the clean training split and all spatial positions,
 *      run on the deployed model (its precision's inference). Pruning order:
 *      increasing mean, ties by channel index.
 *   2. Prune. Work on a float copy of the deployed model's de-quantized
 *      weights (no hooks). Step k zeroes the conv weights and bias of the
 *      k-th channel in the order (the original code zeroes both too:
 *      kangliucn/Fine-pruning-defense, face/conv_output_prune.py), then
 *      re-quantizes the copy to the deployed precision and measures clean
 *      accuracy on the validation split. Pruning stops before the first
 *      step whose validation accuracy is more than max_ca_drop points below
 *      the deployed model's (step 0). The paper stops pruning once
 *      validation accuracy has fallen by a preset amount; the default,
 *      max_ca_drop = 4 points, is the 4% drop we take its evaluation to use
 *      (not re-checked against the paper's text when this was written; the
 *      original code prunes a fixed 48 of 60 channels instead). It is a
 *      parameter of the `fp` defense. With per-tensor scales, pruning the
 *      channel that holds a layer's largest |weight| changes the layer's
 *      scale and so every code of it: the re-quantized model is what a
 *      deployer of the pruned model would run.
 *   3. Fine-tune the pruned float model on the clean training split
 *      (qb_train, cfg->tune) and re-quantize it to the precision. A pruned
 *      channel stays exactly zero through training when a ReLU follows the
 *      conv: its pre-activation is 0, the ReLU passes no gradient where its
 *      output is 0, and weight decay and momentum of zero weights are zero.
 *      The pruning mask is applied again after training regardless (for
 *      architectures without that ReLU); result->pruned_drift records the
 *      largest |weight| it had to remove (0 for lenet and cnn-small).
 *   4. Measure CA on eval_clean and ASR (fraction classified as `target`)
 *      on eval_trig for the deployed model, after pruning and after
 *      fine-tuning, and the ASR at each pruning step (the curve).
 *
 * mitigated = ASR after fine-tuning <= 20% and CA drop (deployed -> after
 * fine-tuning, same evaluation images) <= 5 points (docs/DESIGN.md). */
#ifndef QB_FINEPRUNE_H
#define QB_FINEPRUNE_H

#include <stdint.h>

#include "core/dataset.h"
#include "core/error.h"
#include "core/model.h"
#include "core/train.h"
#include "quant/precision.h"

/* The `mitigated` rule of docs/DESIGN.md. */
#define QB_FP_MAX_ASR 0.20
#define QB_FP_MAX_CA_DROP 0.05

typedef struct qb_fineprune_config {
    double max_ca_drop;    /* validation CA (percentage points) pruning may cost; default 4 */
    qb_train_config tune;  /* fine-tuning; tune.seed orders the batches */
} qb_fineprune_config;

/* Defaults: max_ca_drop 4; fine-tuning 10 epochs, batch 64, lr 0.01,
 * momentum 0.9, weight decay 5e-4, cosine schedule, seed 0. */
void qb_fineprune_config_default(qb_fineprune_config *cfg);

typedef struct qb_fineprune_result {
    int layer;            /* the pruned conv layer (chains) or the ranked
                             penultimate layer (graphs; qb_fineprune_target) */
    int channels;         /* its output channels */
    double *mean_act;     /* (channels) mean activation per channel, channel order */
    int *order;           /* (channels) pruning order, least active first */
    int n_steps;          /* length of the curve: steps 0..n_steps-1 */
    int *curve_pruned;    /* (n_steps) channels pruned at step i (= i) */
    double *curve_ca;     /* (n_steps) validation CA at step i (0: deployed) */
    double *curve_asr;    /* (n_steps) ASR on eval_trig at step i (NaN without it) */
    int n_pruned;         /* channels pruned in the end */
    double ca_before, asr_before;  /* deployed model, eval sets */
    double ca_pruned, asr_pruned;  /* after pruning (re-quantized) */
    double ca_tuned, asr_tuned;    /* after fine-tuning (re-quantized) */
    double tune_loss;     /* fine-tuning: mean loss of the last epoch */
    double pruned_drift;  /* largest |param| of a pruned channel after fine-tuning,
                             before the mask was re-applied */
    int mitigated;        /* qb_fineprune_mitigated(...) */
} qb_fineprune_result;

void qb_fineprune_result_free(qb_fineprune_result *r);

/* Run fine-pruning on `deployed` (a model whose params are the
 * de-quantized weights and whose hooks run precision `prec`; not
 * modified). clean_train ranks the channels and fine-tunes, clean_val
 * decides where pruning stops, eval_clean / eval_trig (may be NULL: ASRs
 * NaN) measure CA and ASR (`target`). On success *out is filled (free with
 * qb_fineprune_result_free) and, if tuned_fp is not NULL, *tuned_fp
 * receives the pruned and fine-tuned FP32 model (no hooks; qb_model_free)
 * that the mitigation quantizes and deploys. Returns -1 with err set when
 * the model has no conv layer, clean_train or clean_val is empty, or
 * fine-tuning diverges (non-finite loss or weights); nothing is then
 * allocated. */
int qb_fineprune_run(const qb_model *deployed, const qb_precision *prec,
                     const qb_dataset *clean_train, const qb_dataset *clean_val,
                     const qb_dataset *eval_clean, const qb_dataset *eval_trig, int target,
                     const qb_fineprune_config *cfg, qb_fineprune_result *out,
                     qb_model *tuned_fp, qb_error *err);

struct qb_defense_input;
/* Fine-pruning with the data and parameters of a defense input (the `fp`
 * parameter table, defenses/defense.h): the clean training and validation
 * splits from the front of the defender's pool, CA/ASR on its evaluation
 * part. Shared by the `fp` defense and the `fineprune` mitigation; `who`
 * names the caller in messages. As qb_fineprune_run otherwise. */
int qb_fineprune_from_input(const struct qb_defense_input *in, const char *who,
                            qb_fineprune_result *r, qb_model *tuned_fp, qb_error *err);

/* ---- the steps, for the tests and the mitigation ---------------------- */

/* The layer whose output ranks the channels of conv layer `conv`: the ReLU
 * right after it, or the conv itself. */
int qb_fineprune_rank_layer(const qb_model *m, int conv);

/* mean[c] (layer `conv`'s out_c entries) = mean over d's samples and the
 * spatial positions of channel c of layer qb_fineprune_rank_layer's
 * output, m in inference mode with an unfused workspace. Accumulated in
 * double, in a fixed order. */
void qb_fineprune_channel_means(const qb_model *m, int conv, const qb_dataset *d,
                                double *mean);

/* order[0..C) = channel indices sorted by increasing mean, ties by index. */
void qb_fineprune_rank(const double *mean, int C, int *order);

/* Zero the weights (C_in*k*k) and the bias (if it has one) of output
 * channel ch of conv layer `conv` of m. */
void qb_fineprune_zero_channel(qb_model *m, int conv, int ch);

/* What is pruned. Chains (no batch norm, no addition: lenet, cnn-small):
 * the output channels of the last conv layer (conv), ranked at `layer` =
 * qb_fineprune_rank_layer. Graphs (resnets, vgg11-bn): the channels of the
 * penultimate representation (`layer` = qb_model_penultimate_layer: for
 * the resnets the global average pool of the last block's output, whose
 * channels are the last convolution block's), pruned by zeroing the
 * columns of the last linear layer (`linear`) that read them (the H*W
 * columns of a channel when the representation is (C, H, W)), as
 * BackdoorBench's defense/fp.py does (it masks the last linear layer's
 * input features, ranked by their mean on clean data). */
typedef struct qb_fineprune_target {
    int layer;     /* the layer whose output channels are ranked */
    int conv;      /* chains: the pruned conv layer; graphs: -1 */
    int linear;    /* graphs: the linear layer whose input columns are zeroed; chains: -1 */
    int channels;  /* channels ranked and pruned */
} qb_fineprune_target;

/* The target of m; -1 if m has no conv layer (or, a graph, no linear one). */
int qb_fineprune_target_of(const qb_model *m, qb_fineprune_target *t);

/* Prune channel ch of target t in m: qb_fineprune_zero_channel on a
 * chain's conv, the channel's columns of the linear layer on a graph. */
void qb_fineprune_prune(qb_model *m, const qb_fineprune_target *t, int ch);

/* Is pruning step with validation CA `ca` allowed, given the deployed
 * model's ca0? (ca0 - ca) * 100 <= max_ca_drop (up to 1e-9 for rounding:
 * a drop of exactly max_ca_drop points is allowed). */
int qb_fineprune_step_ok(double ca0, double ca, double max_ca_drop);

/* Channels pruned for a curve ca[0..n) (ca[0]: unpruned, ca[k]: k channels
 * pruned): the largest k such that steps 1..k are all allowed. */
int qb_fineprune_n_pruned(const double *ca, int n, double max_ca_drop);

/* docs/DESIGN.md's rule: asr_tuned <= 0.20 and ca_before - ca_tuned <= 0.05
 * (fractions; 1e-12 of slack for rounding). */
int qb_fineprune_mitigated(double ca_before, double ca_tuned, double asr_tuned);

#endif
