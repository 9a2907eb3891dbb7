/* The portable micro-kernel: plain C, one fmaf per product. fmaf is
 * correctly rounded (C11 F.10.10.1; glibc's is, in hardware where the CPU
 * has FMA and in software otherwise), so this gives the bits of the SIMD
 * kernels on any CPU, only slower. The loops keep each accumulator's chain
 * in p order; the compiler may not reassociate them (no -ffast-math).
 * Two clones: on a CPU with FMA the compiler's own fused multiply-add
 * instruction (inlined, so the path tests of tests/test_gemm_f32.c and
 * tests/numerics_paths.sh stay quick); elsewhere libm's fmaf. */
#include "core/gemm_f32_kernels.h"

#include <math.h>

#define PORTABLE_MR 4
#define PORTABLE_NR 16

#if defined(__x86_64__) && defined(__GNUC__) && !defined(QB_NO_CLONES)
__attribute__((target_clones("fma", "default")))
#endif
static void kernel_4x16(int kc, const float *a, size_t rsa, size_t csa, const float *b,
                        size_t rsb, float *c, size_t rsc, int load)
{
    float acc[PORTABLE_MR][PORTABLE_NR];
    for (int r = 0; r < PORTABLE_MR; r++)
        for (int j = 0; j < PORTABLE_NR; j++) acc[r][j] = load ? c[r * rsc + j] : 0.0f;
    for (int p = 0; p < kc; p++) {
        const float *ap = a + (size_t)p * csa, *bp = b + (size_t)p * rsb;
        for (int r = 0; r < PORTABLE_MR; r++)
            for (int j = 0; j < PORTABLE_NR; j++) acc[r][j] = fmaf(ap[r * rsa], bp[j], acc[r][j]);
    }
    for (int r = 0; r < PORTABLE_MR; r++)
        for (int j = 0; j < PORTABLE_NR; j++) c[r * rsc + j] = acc[r][j];
}

const qb_f32_ukernel *qb_f32_kernels_portable(int *count)
{
    static const qb_f32_ukernel k[] = {{PORTABLE_MR, PORTABLE_NR, kernel_4x16}};
    *count = 1;
    return k;
}
