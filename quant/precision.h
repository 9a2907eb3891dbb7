/* The values of the `precision` axis.
 *
 *   fp32          no quantization
 *   int8          = w8a8: every conv and linear layer runs in real integer
 *                 arithmetic: int8 weights, activations quantized per batch
 *                 at run time (dynamic, symmetric, per tensor), int32
 *                 accumulation, rescaled to float between layers
 *   int8-linear   as int8 but only linear layers (convolutions stay float):
 *                 the layer selection of PyTorch's quantize_dynamic
 *   int4          = w4a32: weights fake-quantized to 4 bits (simulated),
 *                 activations float
 *   wNaM          N-bit weights (2..8), M-bit activations (2..8, or 32 for
 *                 float). M <= 8 runs the integer kernels (codes of N and M
 *                 bits held in int8); M = 32 is simulated (de-quantized
 *                 float weights).
 * Suffixes, in any order:
 *   -pc           per-output-channel weight scales (default per tensor)
 *   -away         round half away from zero (default half to even)
 * e.g. int8-pc, w4a8, w3a32, w2a32, int4-pc-away. */
#ifndef QB_PRECISION_H
#define QB_PRECISION_H

#include "core/error.h"
#include "quant/quantizer.h"

#define QB_PRECISION_NAME_MAX 32

typedef struct qb_precision {
    char name[QB_PRECISION_NAME_MAX]; /* canonical name */
    int w_bits;           /* 2..8, or 32 (fp32) */
    int a_bits;           /* 2..8, or 32 (float activations) */
    qb_granularity gran;  /* weights */
    qb_round_mode round;
    int linear_only;      /* quantize linear layers only (int8-linear) */
} qb_precision;

/* Parse a precision name. Errors name the value and the accepted forms. */
int qb_precision_parse(const char *name, qb_precision *p, qb_error *err);

/* 1 when inference runs the integer kernels (weights and activations both
 * at most 8 bits), 0 for fp32 and for simulated (float-activation)
 * precisions. */
int qb_precision_is_integer(const qb_precision *p);
/* 1 for fp32 (nothing to quantize). */
int qb_precision_is_float(const qb_precision *p);

#endif
