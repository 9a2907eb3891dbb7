/* A layer of a sequential CNN: its kind, per-sample input/output shapes,
 * hyper-parameters, and where its weights live in the model's single
 * parameter buffer. Kernels for each kind live in core/<kind>.c. */
#ifndef QB_LAYER_H
#define QB_LAYER_H

#include <stddef.h>

typedef enum qb_layer_kind {
    QB_LAYER_CONV2D = 1,
    QB_LAYER_MAXPOOL = 2,
    QB_LAYER_RELU = 3,
    QB_LAYER_FLATTEN = 4,
    QB_LAYER_LINEAR = 5,
} qb_layer_kind;

typedef struct qb_layer {
    qb_layer_kind kind;
    int in_c, in_h, in_w;    /* input of one sample (C, H, W); linear: (in, 1, 1) */
    int out_c, out_h, out_w; /* output of one sample */
    int k, stride, pad;      /* conv / pool window (square), zero for others */
    size_t w_off, w_len;     /* weight slice of the parameter buffer */
    size_t b_off, b_len;     /* bias slice */
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
