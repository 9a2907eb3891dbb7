/* im2col and col2im, the data movement of core/conv2d.c's convolutions.
 *
 * col (K, nb*OH*OW) with K = C*k*k: row (c, ky, kx), column (image, oy, ox)
 * holds x[image][c][oy*S - P + ky][ox*S - P + kx], or +0.0f where that lies
 * in the zero padding. col2im is its adjoint: every column entry added to
 * its input pixel, each pixel's terms in increasing (ky, kx) starting from
 * +0.0f.
 *
 * The generic loops (qb_im2col_ref, qb_col2im_ref) define the bits; the
 * fast kernels (AVX-512 rows for stride 1 and 2 with the masks computed once
 * per kernel column, rows from zero-padded copies of the images, col2im for
 * stride 1 as a gather that sums each pixel's terms in registers in the
 * same order) only move the same floats and add them in the same order.
 * tests/test_conv_paths.c compares them bit for bit. */
#ifndef QB_IM2COL_H
#define QB_IM2COL_H

#include <stddef.h>

#include "core/layer.h"

/* col (C*k*k, nb*OH*OW) from nb images starting at x (nb, C, H, W). */
void qb_im2col(const qb_layer *l, int nb, const float *x, float *col);
/* dx (nb, C, H, W) = col2im(dcol): overwrites dx. */
void qb_col2im(const qb_layer *l, int nb, const float *dcol, float *dx);
/* The generic versions of both (per-row bounds, scatter-add col2im): the
 * definition, and the oracles of the tests. */
void qb_im2col_ref(const qb_layer *l, int nb, const float *x, float *col);
void qb_col2im_ref(const qb_layer *l, int nb, const float *dcol, float *dx);

/* The switch behind qb_conv2d_set_generic (core/conv2d.h): on = 1, only the
 * generic paths run from now on. Process-wide. */
void qb_im2col_set_generic(int on);
/* 1 unless the generic paths are forced (qb_im2col_set_generic(1), or
 * QBLIND_SCALAR=1 in the environment, read once). */
int qb_im2col_fast(void);
/* 1 if the fast paths are on and this CPU runs AVX-512F. */
int qb_im2col_avx512(void);

/* 1 for a 1x1 stride-1 unpadded layer: its input (C, H*W) per image is its
 * column matrix already (no im2col needed). */
int qb_im2col_pointwise(const qb_layer *l);
/* 1 if qb_im2col_rows runs for l from x (AVX-512, stride 1 or 2, output
 * rows at most 256 wide), and so may be asked for a band of rows. */
int qb_im2col_rows_ok(const qb_layer *l);
/* 1 if qb_im2col_rows_ok and l pads: the padded copy pays (rows become
 * plain loads; masked loads measured ~25% slower). */
int qb_im2col_padded_ok(const qb_layer *l);

/* Floats of the padded copy of nb images, (nb, C, H+2P, W+2P) plus 64 of
 * slack the row kernels may read past the last row (never stored). */
size_t qb_im2col_pad_size(const qb_layer *l, int nb);
/* pad = the nb images x with P zeros (+0.0f) around every plane, and the
 * slack zeroed. Needs qb_im2col_pad_size(l, nb) floats. */
void qb_im2col_pad(const qb_layer *l, int nb, const float *x, float *pad);

/* col (K, nb*(oy1-oy0)*OW): the im2col of nb images' output rows [oy0,
 * oy1). From their padded copy pad (qb_im2col_pad) when pad is not NULL,
 * which needs qb_im2col_padded_ok(l); else from x, where a band of rows
 * (not all of them) needs qb_im2col_rows_ok(l). */
void qb_im2col_rows(const qb_layer *l, int nb, const float *x, const float *pad, int oy0,
                    int oy1, float *col);

#endif
