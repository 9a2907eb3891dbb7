/* Batch-norm folding: the model a deployment toolchain runs.
 *
 * A batch norm in evaluation mode is a per-channel affine map
 * y = a x + c (a = gamma / sqrt(var + eps), c = beta - mean a; core/batchnorm.h).
 * When its input is a convolution whose output nothing else reads, the two
 * are one convolution with weights a[oc] W[oc] and bias a[oc] b[oc] + c[oc]
 * (b = 0 for a convolution without bias): the folded model has that
 * convolution (with a bias) in place of the pair and no batch norm. Batch
 * norms whose input is anything else (PreAct-ResNet's after an addition, a
 * convolution whose output also feeds a shortcut) stay, in evaluation mode.
 *
 * The folded model has an architecture of its own, derived from the
 * source's: named "<source>.bnfold" (or, for a source name too long for
 * that, a prefix of it, '-', eight hex digits of a hash of the source's
 * text, ".bnfold"), its text written from the folded layer table (every
 * line with in= and as=, names n1, n2, ...), and declared for this
 * process (core/arch.h), so a folded model saves and loads like any other
 * (.qbm version 2 carries the text; a quantized model's .qbq carries the
 * folded model as its float part). The text depends on the source's text
 * only, not on the input shape. */
#ifndef QB_BN_FOLD_H
#define QB_BN_FOLD_H

#include "core/error.h"
#include "core/model.h"

/* Which layers went where. */
typedef struct qb_bn_fold_map {
    int n_src;                /* layers of the source model */
    int n_dst;                /* layers of the folded model */
    int to[QB_MAX_LAYERS];    /* source layer -> folded layer (a folded batch
                                 norm -> its convolution's) */
    int from[QB_MAX_LAYERS];  /* folded layer -> source layer (a folded
                                 convolution: the source convolution) */
    int bn[QB_MAX_LAYERS];    /* folded layer -> the source batch norm folded
                                 into it, or -1 */
} qb_bn_fold_map;

/* The batch norm that folds into convolution layer `conv` of m (its sole
 * consumer), or -1 (conv is not a convolution, or its output is read by
 * anything else or by something else than a batch norm). */
int qb_bn_fold_partner(const qb_model *m, int conv);

/* Number of batch norms of m that fold. */
int qb_bn_fold_count(const qb_model *m);

/* dst (not holding a model) = m with every foldable batch norm folded
 * (params computed from m's, the running statistics of the folded batch
 * norms gone; hooks NULL), map (may be NULL) filled. Without a foldable
 * batch norm dst is a copy of m under m's architecture and the map the
 * identity. Fails (nothing allocated) only if the derived architecture
 * cannot be declared (an architecture of that name declared with other
 * layers) or m's architecture text is unknown. */
int qb_bn_fold(const qb_model *m, qb_model *dst, qb_bn_fold_map *map, qb_error *err);

/* The straight-through chain rule of folding: given g_dst (dst->n_params),
 * the gradient with respect to the folded model's parameters, ADD the
 * gradient with respect to m's trained parameters into g_src
 * (m->n_params; the running statistics are constants, their entries are
 * not touched). For a folded pair, with s = 1 / sqrt(var + eps):
 *   dW[oc] += a[oc] dW'[oc],  db[oc] += a[oc] db'[oc] (a bias),
 *   dbeta[oc] += db'[oc],
 *   dgamma[oc] += s[oc] (sum_k W[oc,k] dW'[oc,k] + (b[oc] - mean[oc]) db'[oc]).
 * Other layers' gradients are added as they are. */
void qb_bn_fold_grad(const qb_model *m, const qb_bn_fold_map *map, const qb_model *dst,
                     const float *g_dst, float *g_src);

#endif
