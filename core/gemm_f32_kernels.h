/* Internal to core/gemm_f32*.c: the micro-kernels behind qb_gemm_f32.
 * Not a public header.
 *
 * A micro-kernel computes one full MR x NR tile of C:
 *
 *   a:  op(A) rows i0.., k p0..: element (r, p) at a[r*rsa + p*csa]
 *       (broadcast one by one, so any strides do: A is never packed)
 *   b:  op(B) k p0.., columns j0..: element (p, j) at b[p*rsb + j], NR
 *       contiguous floats per p (B itself where its rows are contiguous,
 *       else a packed panel)
 *   c:  the tile, row stride rsc, unit column stride
 *
 *   for each (r, j): s = load ? c[r][j] : +0.0f;
 *                    for p = 0 .. kc-1: s = fma(a(r, p), b(p, j), s);
 *                    c[r][j] = s
 *
 * Each (r, j) is one vector lane of one accumulator for the whole k loop,
 * so the chain of core/gemm_f32.h is kept lane by lane. NR is a multiple
 * of the path's vector width; b needs no alignment. */
#ifndef QB_GEMM_F32_KERNELS_H
#define QB_GEMM_F32_KERNELS_H

#include <stddef.h>

typedef void (*qb_f32_ukernel_fn)(int kc, const float *a, size_t rsa, size_t csa,
                                  const float *b, size_t rsb, float *c, size_t rsc, int load);

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
/* A B panel from rows contiguous along k (op(B) = B^T): dst (kc, NR) with
 * dst[p][j] = src[j*ld + p] for j < cols, 0 for cols <= j < NR. */
void qb_f32_pack_t_avx512(const float *src, size_t ld, int kc, int cols, int NR, float *dst);
#endif

#endif
