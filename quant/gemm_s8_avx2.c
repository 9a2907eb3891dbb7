/* AVX2 int8 GEMM: the sign trick of ggml's AVX2 dot products.
 *
 * vpmaddubsw multiplies u8 by s8 and sums adjacent pairs into s16 with
 * saturation. With |x| (u8) times sign(x) * w (s8, vpsignb) each product
 * is x*w with |x*w| <= 127 * 127, so a pair is at most 32258 and never
 * saturates (the reason every value must stay in [-127, 127]: -128 would
 * give 2 * 128 * 128 = 32768). vpmaddwd by ones then sums the two pairs of
 * each 4-k lane into int32. Per 32 products: vpsignb, vpmaddubsw,
 * vpmaddwd, vpaddd.
 *
 * |x| and x are copied once per block of rows into small zero-padded
 * buffers (K tails and rows past N read as x = 0, without touching bytes
 * past the end of X). Micro-kernel: 4 rows x 2 panels of 8 m, 8 ymm
 * accumulators, 2 weight vectors, the two broadcasts, ones and two
 * temporaries: 15 of the 16 ymm. */
#include "quant/gemm_s8_kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"

#define AVX2_INLINE static inline __attribute__((always_inline, target("avx2")))

enum {
    PW = QB_S8_AVX2_PW,
    G = QB_S8_AVX2_G,
    R = 4,                /* rows per tile */
    RB = 12,              /* rows per packed block */
    STACK_XB = RB * 1024, /* each of the two X planes on the stack up to K = 1024 */
};

/* Y rows [0, rows) of one tile: (rows, P*8 masked by last) at y. xa, xs:
 * (R, ldxb) |x| and x; wg: the group's packed weights (nkg, P, 8, 4). */
AVX2_INLINE void tile(const int P, int nkg, const uint8_t *xa, const int8_t *xs, size_t ldxb,
                      const int8_t *wg, int rows, int32_t *y, size_t ldy, __m256i last)
{
    const __m256i ones = _mm256_set1_epi16(1);
    __m256i acc[R][G];
#pragma GCC unroll 4
    for (int r = 0; r < R; r++)
#pragma GCC unroll 2
        for (int p = 0; p < P; p++) acc[r][p] = _mm256_setzero_si256();
    for (int kg = 0; kg < nkg; kg++) {
        const int8_t *wk = wg + (size_t)kg * P * 32;
        __m256i wv[G];
#pragma GCC unroll 2
        for (int p = 0; p < P; p++) wv[p] = _mm256_load_si256((const __m256i *)(wk + p * 32));
#pragma GCC unroll 4
        for (int r = 0; r < R; r++) {
            int32_t da, ds;
            memcpy(&da, xa + (size_t)r * ldxb + 4 * (size_t)kg, 4);
            memcpy(&ds, xs + (size_t)r * ldxb + 4 * (size_t)kg, 4);
            const __m256i va = _mm256_set1_epi32(da), vs = _mm256_set1_epi32(ds);
#pragma GCC unroll 2
            for (int p = 0; p < P; p++) {
                __m256i t = _mm256_maddubs_epi16(va, _mm256_sign_epi8(wv[p], vs));
                acc[r][p] = _mm256_add_epi32(acc[r][p], _mm256_madd_epi16(t, ones));
            }
        }
    }
#pragma GCC unroll 4
    for (int r = 0; r < R; r++) {
        if (r >= rows) break;
#pragma GCC unroll 2
        for (int p = 0; p < P; p++) {
            int32_t *o = y + (size_t)r * ldy + p * PW;
            if (p == P - 1) _mm256_maskstore_epi32((int *)o, last, acc[r][p]);
            else _mm256_storeu_si256((__m256i *)o, acc[r][p]);
        }
    }
}

/* xa, xs (RB, ldxb) = |X| and X rows [0, rows), zero past K and in rows
 * [rows, RB). ldxb is a multiple of 32. */
__attribute__((target("avx2"))) static void pack_x(uint8_t *xa, int8_t *xs, size_t ldxb,
                                                   const int8_t *X, size_t ldx, int rows, int K)
{
    for (int r = 0; r < RB; r++) {
        uint8_t *da = xa + (size_t)r * ldxb;
        int8_t *ds = xs + (size_t)r * ldxb;
        if (r >= rows) {
            memset(da, 0, ldxb);
            memset(ds, 0, ldxb);
            continue;
        }
        const int8_t *src = X + (size_t)r * ldx;
        for (size_t c = 0; c < ldxb; c += 32) {
            __m256i v;
            if (c + 32 <= (size_t)K) {
                v = _mm256_loadu_si256((const __m256i *)(src + c));
            } else { /* the tail: copy, never read past the row's K bytes */
                _Alignas(32) int8_t t[32] = {0};
                memcpy(t, src + c, (size_t)K - c);
                v = _mm256_load_si256((const __m256i *)t);
            }
            _mm256_store_si256((__m256i *)(da + c), _mm256_abs_epi8(v));
            _mm256_store_si256((__m256i *)(ds + c), v);
        }
    }
}

__attribute__((target("avx2"))) void qb_gemm_s8_avx2(const qb_s8_weights *w, int N,
                                                     const int8_t *X, size_t ldx, int32_t *Y,
                                                     size_t ldy)
{
    const int M = w->M, K = w->K;
    const int K4 = (K + 3) & ~3, nkg = K4 / 4, NP = (M + PW - 1) / PW;
    const size_t ldxb = ((size_t)K + 31) & ~(size_t)31;
    _Alignas(32) uint8_t stack_xa[STACK_XB];
    _Alignas(32) int8_t stack_xs[STACK_XB];
    const int on_stack = RB * ldxb <= STACK_XB;
    uint8_t *xa = on_stack ? stack_xa : xaligned(RB * ldxb, 1);
    int8_t *xs = on_stack ? stack_xs : xaligned(RB * ldxb, 1);

    for (int n0 = 0; n0 < N; n0 += RB) {
        const int rows = N - n0 < RB ? N - n0 : RB;
        pack_x(xa, xs, ldxb, X + (size_t)n0 * ldx, ldx, rows, K);
        for (int g = 0; g * G < NP; g++) {
            const int P = NP - g * G < G ? NP - g * G : G, m0 = g * G * PW;
            const int cols = M - (m0 + (P - 1) * PW); /* in the last panel, 1..8 */
            const __m256i last = _mm256_cmpgt_epi32(
                _mm256_set1_epi32(cols > PW ? PW : cols), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
            const int8_t *wg = w->packed + (size_t)g * G * PW * K4;
            for (int r0 = 0; r0 < rows; r0 += R) {
                const int rr = rows - r0 < R ? rows - r0 : R;
                const size_t xo = (size_t)r0 * ldxb;
                int32_t *y = Y + (size_t)(n0 + r0) * ldy + m0;
                if (P == 2) tile(2, nkg, xa + xo, xs + xo, ldxb, wg, rr, y, ldy, last);
                else tile(1, nkg, xa + xo, xs + xo, ldxb, wg, rr, y, ldy, last);
            }
        }
    }
    if (!on_stack) {
        free(xa);
        free(xs);
    }
}

#else
/* Not x86-64: the dispatcher never selects this path. */
typedef int qb_gemm_s8_avx2_unused;
#endif
