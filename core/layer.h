/* A layer of a CNN graph: its kind, which activations it reads, per-sample
 * input/output shapes, hyper-parameters, and where its weights live in the
 * model's single parameter buffer. Kernels for each kind live in
 * core/<kind>.c.
 *
 * The graph: activation node 0 is the model input, node i+1 the output of
 * layer i. Layer i reads node `src` (and, for an addition, node `src2`),
 * both <= i: the layer table is in topological order, so a forward pass is
 * one loop over it and a backward pass one loop back. A chain (every
 * pre-residual model) has src = i. */
#ifndef QB_LAYER_H
#define QB_LAYER_H

#include <stddef.h>

typedef enum qb_layer_kind {
    QB_LAYER_CONV2D = 1,
    QB_LAYER_MAXPOOL = 2,
    QB_LAYER_RELU = 3,
    QB_LAYER_FLATTEN = 4,
    QB_LAYER_LINEAR = 5,
    QB_LAYER_BATCHNORM = 6, /* 2-D batch normalisation, per channel */
    QB_LAYER_ADD = 7,       /* residual addition: node src + node src2 */
    QB_LAYER_AVGPOOL = 8,   /* global average pool: (C, H, W) -> (C, 1, 1) */
} qb_layer_kind;

#define QB_LAYER_KIND_MAX 8

/* PyTorch's BatchNorm2d defaults: eps in the denominator, momentum of the
 * running statistics. */
#define QB_BN_EPS 1e-5f
#define QB_BN_MOMENTUM 0.1f

typedef struct qb_layer {
    qb_layer_kind kind;
    int in_c, in_h, in_w;    /* input of one sample (C, H, W); linear: (in, 1, 1) */
    int out_c, out_h, out_w; /* output of one sample */
    int k, stride, pad;      /* conv / pool window (square), zero for others */
    int src, src2;           /* input node(s); src2 = -1 unless an addition */
    size_t w_off, w_len;     /* weight slice of the parameter buffer (batch
                                norm: gamma, C) */
    size_t b_off, b_len;     /* bias slice (b_len 0: a convolution without
                                bias; batch norm: beta, C) */
    size_t s_off, s_len;     /* batch norm: running mean then running
                                variance (2C), in the model's untrained tail */
} qb_layer;

static inline size_t qb_layer_in_size(const qb_layer *l)
{
    return (size_t)l->in_c * (size_t)l->in_h * (size_t)l->in_w;
}
static inline size_t qb_layer_out_size(const qb_layer *l)
{
    return (size_t)l->out_c * (size_t)l->out_h * (size_t)l->out_w;
}

const char *qb_layer_kind_name(qb_layer_kind kind);

#endif
