/* The AVX2 and AVX-512 micro-kernels (core/gemm_f32_kernels.h). Each is a
 * function with its own target attribute (the library is built for
 * baseline x86-64) and is only called after __builtin_cpu_supports said
 * yes. One template per instruction set, instantiated for several tile
 * shapes: MR rows of NV vectors, MR * NV accumulators in registers, NV
 * panel loads and MR broadcasts per k step. Every accumulator lane is one
 * output whose fused multiply-adds run in p order, so all shapes and both
 * widths compute the bits of the portable kernel. */
#include "core/gemm_f32_kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>

#define MAX_MR 12
#define MAX_NV 4

#define AVX512_INLINE static inline __attribute__((always_inline, target("avx512f")))
#define AVX2_INLINE static inline __attribute__((always_inline, target("avx2,fma")))

/* tile_<ISA>(MR, NV, ...): the micro-kernel of core/gemm_f32_kernels.h
 * for vectors of W floats (type V) with the ISA's load, store, zero,
 * broadcast and fused multiply-add. */
#define TILE_TEMPLATE(ISA, ATTR, V, W, LOADU, STOREU, ZERO, SET1, FMADD)                   \
    ATTR void tile_##ISA(const int MR, const int NV, int kc, const float *a, size_t rsa,     \
                         size_t csa, const float *b, size_t rsb, float *c, size_t rsc,      \
                         int load)                                                          \
    {                                                                                       \
        V acc[MAX_MR][MAX_NV];                                                              \
        _Pragma("GCC unroll 12") for (int r = 0; r < MR; r++)                               \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)                            \
                acc[r][v] = load ? LOADU(c + r * rsc + W * v) : ZERO();                     \
        for (int p = 0; p < kc; p++) {                                                      \
            const float *ap = a + (size_t)p * csa, *bp = b + (size_t)p * rsb;               \
            V bv[MAX_NV];                                                                   \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++) bv[v] = LOADU(bp + W * v); \
            _Pragma("GCC unroll 12") for (int r = 0; r < MR; r++) {                         \
                const V av = SET1(ap[r * rsa]);                                             \
                _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)                        \
                    acc[r][v] = FMADD(av, bv[v], acc[r][v]);                                \
            }                                                                               \
        }                                                                                   \
        _Pragma("GCC unroll 12") for (int r = 0; r < MR; r++)                               \
            _Pragma("GCC unroll 4") for (int v = 0; v < NV; v++)                            \
                STOREU(c + r * rsc + W * v, acc[r][v]);                                     \
    }

TILE_TEMPLATE(avx512, AVX512_INLINE, __m512, 16, _mm512_loadu_ps, _mm512_storeu_ps,
              _mm512_setzero_ps, _mm512_set1_ps, _mm512_fmadd_ps)
TILE_TEMPLATE(avx2, AVX2_INLINE, __m256, 8, _mm256_loadu_ps, _mm256_storeu_ps,
              _mm256_setzero_ps, _mm256_set1_ps, _mm256_fmadd_ps)

#define KERNEL(ISA, TARGET, MR, NV)                                                      \
    __attribute__((noinline, target(TARGET))) static void ISA##_##MR##x##NV(            \
        int kc, const float *a, size_t rsa, size_t csa, const float *b, size_t rsb,   \
        float *c, size_t rsc, int load)                                                \
    {                                                                                  \
        tile_##ISA(MR, NV, kc, a, rsa, csa, b, rsb, c, rsc, load);                     \
    }

KERNEL(avx512, "avx512f", 6, 4)
KERNEL(avx512, "avx512f", 12, 2)
KERNEL(avx512, "avx512f", 8, 1)
KERNEL(avx512, "avx512f", 8, 2)
KERNEL(avx512, "avx512f", 4, 4)
KERNEL(avx2, "avx2,fma", 6, 2)
KERNEL(avx2, "avx2,fma", 12, 1)
KERNEL(avx2, "avx2,fma", 4, 2)

/* dst (kc, NR) = the first kc floats of `cols` rows of src (row stride ld),
 * transposed; rows cols..NR-1 of the panel are zero. 16 x 16 blocks
 * through registers (unpack / shuffle), tails by scalar copies. */
__attribute__((target("avx512f"))) void qb_f32_pack_t_avx512(const float *src, size_t ld,
                                                            int kc, int cols, int NR,
                                                            float *dst)
{
    int j0 = 0;
    for (; j0 + 16 <= cols; j0 += 16) {
        int p0 = 0;
        for (; p0 + 16 <= kc; p0 += 16) {
            __m512 r[16], t[16];
            for (int i = 0; i < 16; i++) r[i] = _mm512_loadu_ps(src + (size_t)(j0 + i) * ld + p0);
            for (int i = 0; i < 16; i += 2) {
                t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
                t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
            }
            for (int i = 0; i < 16; i += 4) {
                r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
                r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i]), _mm512_castps_pd(t[i + 2])));
                r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
                r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(_mm512_castps_pd(t[i + 1]), _mm512_castps_pd(t[i + 3])));
            }
            for (int i = 0; i < 4; i++) {
                t[i] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0x88);
                t[i + 4] = _mm512_shuffle_f32x4(r[i], r[i + 4], 0xdd);
                t[i + 8] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0x88);
                t[i + 12] = _mm512_shuffle_f32x4(r[i + 8], r[i + 12], 0xdd);
            }
            for (int i = 0; i < 4; i++) {
                r[i] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0x88);
                r[i + 8] = _mm512_shuffle_f32x4(t[i], t[i + 8], 0xdd);
                r[i + 4] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0x88);
                r[i + 12] = _mm512_shuffle_f32x4(t[i + 4], t[i + 12], 0xdd);
            }
            /* r[q] now holds column p0 + q of the block */
            for (int q = 0; q < 16; q++) _mm512_storeu_ps(dst + (size_t)(p0 + q) * NR + j0, r[q]);
        }
        for (; p0 < kc; p0++)
            for (int i = 0; i < 16; i++) dst[(size_t)p0 * NR + j0 + i] = src[(size_t)(j0 + i) * ld + p0];
    }
    for (int j = j0; j < NR; j++)
        for (int p = 0; p < kc; p++) dst[(size_t)p * NR + j] = j < cols ? src[(size_t)j * ld + p] : 0.0f;
}

const qb_f32_ukernel *qb_f32_kernels_avx512(int *count)
{
    static const qb_f32_ukernel k[] = {
        {6, 64, avx512_6x4}, {12, 32, avx512_12x2}, {8, 16, avx512_8x1},
        {8, 32, avx512_8x2}, {4, 64, avx512_4x4}};
    *count = (int)(sizeof k / sizeof k[0]);
    return k;
}

const qb_f32_ukernel *qb_f32_kernels_avx2(int *count)
{
    static const qb_f32_ukernel k[] = {{6, 16, avx2_6x2}, {12, 8, avx2_12x1}, {4, 16, avx2_4x2}};
    *count = (int)(sizeof k / sizeof k[0]);
    return k;
}

#endif
