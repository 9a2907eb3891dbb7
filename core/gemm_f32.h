/* Float GEMM with one fixed summation order: the same bits on every CPU.
 *
 *   C (m, n) = [C +] op(A) (m, k) * op(B) (k, n)
 *
 * The result is defined output by output, as the scalar reference
 * qb_gemm_f32_ref computes it:
 *
 *   s = accumulate ? C[i][j] : +0.0f
 *   for p = 0, 1, ..., k-1:  s = fmaf(op(A)[i][p], op(B)[p][j], s)
 *   C[i][j] = s
 *
 * a chain of correctly rounded fused multiply-adds in increasing p. Every
 * path (AVX-512, AVX2, portable) and every blocking, orientation and thread
 * count evaluates exactly this chain for every output (vector lanes hold
 * different outputs, never parts of one sum; a k-block boundary stores the
 * running sum to memory and reloads it, which is exact), so the result is a
 * function of the input bits alone: OpenBLAS's per-CPU kernels (whose
 * summation order differs between Prescott, Haswell and SkylakeX kernels)
 * are not used for anything that reaches a result. README.md
 * ("Numerics: the same bits on every CPU") says what the guarantee covers.
 *
 * Operands are row-major: op(A) = A (m, k) with row stride lda, or A^T
 * with A (k, m); op(B) = B (k, n) with row stride ldb, or B^T with B (n, k);
 * C (m, n) with row stride ldc. */
#ifndef QB_GEMM_F32_H
#define QB_GEMM_F32_H

#include <stddef.h>

typedef enum qb_gemm_f32_path {
    QB_GEMM_F32_AUTO = 0, /* the fastest path this CPU supports */
    QB_GEMM_F32_PORTABLE, /* plain C with fmaf: any CPU, slowest */
    QB_GEMM_F32_AVX2,     /* AVX2 + FMA, 256-bit */
    QB_GEMM_F32_AVX512,   /* AVX-512F, 512-bit */
} qb_gemm_f32_path;

enum { QB_GEMM_N = 0, QB_GEMM_T = 1 };

/* C = [C +] op(A) op(B) on the path AUTO resolves to (see qb_gemm_f32_best),
 * using the threads of core/threads.h. m, n, k >= 0; lda/ldb/ldc at least
 * the row lengths of the stored matrices. C must not overlap A or B. */
void qb_gemm_f32(int ta, int tb, int m, int n, int k, const float *a, size_t lda,
                 const float *b, size_t ldb, int accumulate, float *c, size_t ldc);

/* The same on a given path (which this CPU must support), one thread. */
void qb_gemm_f32_on(qb_gemm_f32_path path, int ta, int tb, int m, int n, int k, const float *a,
                    size_t lda, const float *b, size_t ldb, int accumulate, float *c,
                    size_t ldc);

/* The definition: plain loops, one fmaf chain per output. The oracle of
 * the tests. */
void qb_gemm_f32_ref(int ta, int tb, int m, int n, int k, const float *a, size_t lda,
                     const float *b, size_t ldb, int accumulate, float *c, size_t ldc);

/* Which path AUTO resolves to on this CPU. QBLIND_SCALAR=1 in the
 * environment forces PORTABLE; QBLIND_GEMM_F32=portable|avx2|avx512 forces
 * that path (if this CPU cannot run it, the best it can run is used and a
 * warning is printed once). Read once per process. */
qb_gemm_f32_path qb_gemm_f32_best(void);
/* 1 if this CPU can run `path`. */
int qb_gemm_f32_supported(qb_gemm_f32_path path);
const char *qb_gemm_f32_path_name(qb_gemm_f32_path path);

#endif
