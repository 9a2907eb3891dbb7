/* 2-D convolution (cross-correlation, as PyTorch), NCHW, square kernel,
 * stride and zero padding, via im2col + qb_gemm_f32 (core/gemm_f32.h).
 *
 * The batch is processed in chunks of images whose im2col matrix fits in
 * the L2 cache; each chunk is one GEMM:
 *   col (K, N) with K = C*k*k, N = nb*OH*OW  (column = image, oy, ox)
 *   tmp (OC, N) = W (OC, K) * col (K, N)
 * and tmp is scattered to NCHW with the bias added. That generic path is
 * the definition of every result: output (i, oc, oy, ox) is the fmaf chain
 * of core/gemm_f32.h over k = (c, ky, kx) in that order, + bias, and the
 * backward sums are those of the same chunks (dw: the chain over the
 * chunk's columns in order; db: sum_fixed per chunk; dx: col2im's ordered
 * sum over (ky, kx) from +0.0f).
 *
 * Faster paths give the same bits (tests/test_conv_paths.c compares them
 * with the generic one):
 *   - im2col of stride 1 or 2 and col2im of stride 1 by AVX-512 row kernels
 *     (core/im2col.h: rows from zero-padded copies of the images; col2im
 *     gathers each input pixel's terms in registers in the same order
 *     instead of adding into memory);
 *   - 1x1 stride-1 unpadded ("pointwise"): no im2col, the GEMM reads each
 *     image in place (its (C, H*W) plane set is its column matrix) and the
 *     input gradient is written in place;
 *   - large images in bands of output rows (im2col written and read in L2);
 *     many-channel layers with few output positions in wide chunks;
 *   - no pool and one image per chunk (every large layer), or pointwise: the
 *     GEMM writes y itself and bias/ReLU run in place (no scatter); in the
 *     backward pass without ReLU or pool dy is used as it is (no gather).
 * QBLIND_SCALAR=1 in the environment, or qb_conv2d_set_generic(1), runs the
 * generic path only. */
#ifndef QB_CONV2D_H
#define QB_CONV2D_H

#include <stddef.h>
#include <stdint.h>

#include "core/im2col.h" /* qb_im2col, qb_col2im and their references */
#include "core/layer.h"

/* Optional epilogue fused into the GEMM's output scatter: ReLU, then a
 * 2x2 stride-2 max-pool. Fusing avoids writing and re-reading the
 * full-resolution activation; the result is bit-identical to running the
 * separate relu and maxpool layers (bias is added before comparing, ties
 * keep the first maximum, and gradients only flow where the output > 0). */
typedef struct qb_conv_epilogue {
    int relu;              /* apply ReLU after the bias */
    const qb_layer *pool;  /* NULL, or a 2x2/2 maxpool layer after the ReLU */
    float *col_cache;      /* NULL, or (b * C*k*k * OH*OW) floats (see
                              qb_conv2d_col_cache_worth): the forward
                              pass keeps its im2col there and the backward pass
                              of the same batch reuses it instead of
                              recomputing (training) */
} qb_conv_epilogue;

/* Floats of im2col cache for b images (qb_conv_epilogue.col_cache). */
size_t qb_conv2d_col_size(const qb_layer *l, int b);

/* Whether a training pass over batches of up to b images should keep an
 * im2col cache for conv layer l (qb_conv_epilogue.col_cache, of
 * qb_conv2d_col_size(l, b) floats). 0 when it cannot pay or costs too
 * much memory: pointwise layers (1x1 stride 1, no padding: there is no
 * im2col), and layers whose cache exceeds QB_CONV_CACHE_IMAGE_BYTES per
 * image (recomputing an im2col that stays in L2 is faster than writing one
 * to memory and reading it back: bench/bench_conv measured the fast paths
 * without cache 4-12% faster on every cnn-small / resnet layer, and equal
 * within 6% on LeNet's) or QB_CONV_CACHE_MAX_BYTES in all. 1 otherwise
 * (LeNet's first layer, 58 KB per image). The choice never changes a
 * result (the cache holds exactly the im2col the backward pass would
 * recompute); the caller passes col_cache = NULL where this returns 0. */
int qb_conv2d_col_cache_worth(const qb_layer *l, int b);
#define QB_CONV_CACHE_IMAGE_BYTES ((size_t)64 * 1024)
#define QB_CONV_CACHE_MAX_BYTES ((size_t)64 * 1024 * 1024)

/* Floats of scratch a forward or backward pass over `b` images needs. */
size_t qb_conv2d_work_size(const qb_layer *l, int b);

/* y (b, OC, OH, OW) = conv(x (b, C, H, W), w (OC, C, k, k)) + bias (OC).
 * bias may be NULL: no bias (y is the convolution alone, bit for bit). */
void qb_conv2d_forward(const qb_layer *l, int b, const float *x, const float *w,
                       const float *bias, float *y, float *work);

/* Forward with an epilogue. y is the epilogue's output: (b, OC, OH/2,
 * OW/2) with a pool, else (b, OC, OH, OW). argmax (same shape as y, index
 * within the OH*OW plane) is recorded when not NULL; it is needed by the
 * backward pass of a pooled block. */
void qb_conv2d_forward_ex(const qb_layer *l, const qb_conv_epilogue *ep, int b, const float *x,
                          const float *w, const float *bias, float *y, int32_t *argmax,
                          float *work);

/* Backward through the epilogue and the convolution: y/argmax are the
 * forward outputs, dy the gradient of y. Accumulates dw and db; writes dx.
 * Each of dw, db, dx may be NULL: not computed (dw NULL also skips the
 * im2col of x); a layer without bias passes db = NULL. */
void qb_conv2d_backward_ex(const qb_layer *l, const qb_conv_epilogue *ep, int b, const float *x,
                           const float *w, const float *y, const int32_t *argmax,
                           const float *dy, float *dw, float *db, float *dx, float *work);

/* Accumulates dw (OC, C, k, k) += and db (OC) +=; writes dx (b, C, H, W)
 * (overwritten, not accumulated) unless dx is NULL (first layer). */
void qb_conv2d_backward(const qb_layer *l, int b, const float *x, const float *w,
                        const float *dy, float *dw, float *db, float *dx, float *work);

/* The epilogue alone: tmp (OC, nb*OH*OW) GEMM output (without bias) of
 * nb images -> y (their first image's slot) through bias (NULL: none),
 * ReLU and pool as ep says. For convolutions computed elsewhere (the integer kernels). */
void qb_conv2d_epilogue_apply(const qb_layer *l, const qb_conv_epilogue *ep, int nb,
                              const float *tmp, const float *bias, float *y, int32_t *argmax);

/* One pooled row of the fused epilogue (exposed for the SIMD-vs-reference
 * test): simd = 0 runs the scalar reference, 1 the kernel chosen for this
 * CPU. r0/r1: two conv output rows (OW floats); dst/am: PW outputs. */
void qb_conv2d_pool_rows(int simd, const float *r0, const float *r1, float bv, int relu, int PW,
                         int OW, int32_t base, float *dst, int32_t *am);

/* on = 1: every conv function takes the generic path from now on (the
 * reference of the tests and benchmarks); on = 0: the fast paths again
 * (unless QBLIND_SCALAR=1). Process-wide; not while another thread runs a
 * convolution, and never between a forward pass and the backward pass
 * that reuses its col_cache (the fast pointwise path fills no cache). */
void qb_conv2d_set_generic(int on);

#endif
