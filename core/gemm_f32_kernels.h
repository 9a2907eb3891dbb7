/* Internal to core/gemm_f32*.c: the micro-kernels behind qb_gemm_f32.
 * Not a public header.
 *
 * A micro-kernel computes one MR x NR tile of C from packed panels:
 *
 *   ap: (kc, MR)  ap[p*MR + r] = op(A)[i0 + r][p0 + p]   (rows past m: 0)
 *   bp: (kc, NR)  bp[p*NR + j] = op(B)[p0 + p][j0 + j]   (cols past n: 0)
 *   c:  the tile, row stride rs_c, unit column stride, all MR x NR valid
 *
 *   for each (r, j): s = load ? c[r][j] : +0.0f;
 *                    for p = 0 .. kc-1: s = fma(ap[p][r], bp[p][j], s);
 *                    c[r][j] = s
 *
 * Each (r, j) is one vector lane of one accumulator for the whole k loop,
 * so the chain of core/gemm_f32.h is kept lane by lane. Panels are 64-byte
 * aligned and NR is a multiple of the path's vector width. */
#ifndef QB_GEMM_F32_KERNELS_H
#define QB_GEMM_F32_KERNELS_H

#include <stddef.h>

typedef void (*qb_f32_ukernel_fn)(int kc, const float *ap, const float *bp, float *c,
                                  size_t rs_c, int load);

typedef struct qb_f32_ukernel {
    int mr, nr;
    qb_f32_ukernel_fn fn;
} qb_f32_ukernel;

/* The kernels of each path, in no particular order; *count set. The driver
 * picks per call the shape that wastes the fewest padded lanes. */
const qb_f32_ukernel *qb_f32_kernels_portable(int *count);
#if defined(__x86_64__) && defined(__GNUC__)
const qb_f32_ukernel *qb_f32_kernels_avx2(int *count);
const qb_f32_ukernel *qb_f32_kernels_avx512(int *count);
#endif

#endif
