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

#include <stddef.h>

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

/* The accepted forms, for messages: the named precisions, then the
 * general form (quant/precision.c, jobs/axis_values.c). */
#define QB_PRECISION_NAMED "fp32, int8, int8-linear, int4"
#define QB_PRECISION_GENERAL "wNaM (N in 2..8, M in 2..8 or 32), optionally with -pc and/or -away"

/* Parse a precision name. Errors name the value and the accepted forms.
 * p->name is the name as given (qb_precision_canonical spells it the one
 * way). */
int qb_precision_parse(const char *name, qb_precision *p, qb_error *err);

/* The one spelling of p's quantizer configuration, so that w8a8 and int8
 * (the same precision) are one value and suffix order does not matter:
 * fp32, int8, int8-linear, int4 or wNaM, then -pc, then -away
 * (w8a8-away-pc -> int8-pc-away). Into out (n bytes); returns 0, or -1
 * when it does not fit (out then holds nothing). */
int qb_precision_canonical(const qb_precision *p, char *out, size_t n);

/* 1 when inference runs the integer kernels (weights and activations both
 * at most 8 bits), 0 for fp32 and for simulated (float-activation)
 * precisions. */
int qb_precision_is_integer(const qb_precision *p);
/* 1 for fp32 (nothing to quantize). */
int qb_precision_is_float(const qb_precision *p);

#endif
