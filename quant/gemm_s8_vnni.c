/* AVX-512 VNNI int8 GEMM: vpdpbusd (u8 x s8, 4 products summed into each
 * int32 lane).
 *
 * vpdpbusd wants one unsigned operand. Activations x in [-127, 127] become
 * u = x + 128 (x ^ 0x80) in [1, 255] once per block of rows, while they
 * are copied into a small padded buffer; the accumulators start at
 * -128 * row_sums[m] (stored after the packed panels at pack time), so
 * they end at sum_k u*w - 128 * sum_k w = sum_k x*w exactly (int32 arithmetic wraps modulo 2^32 in between, the
 * final value is exact whenever the true sum fits, see QB_S8_MAX_K).
 * Copying X costs one pass over the block per call, shared by all M/16
 * panels, and buys three things: no vpxord in the inner loop (it would
 * compete with vpdpbusd for ports 0 and 5: 16 vpdpbusd + 4 vpxord ran at
 * 79% of the peak loop on this machine), K tails padded with x = 0 read
 * without faulting (masked loads), and rows past N padded the same way.
 *
 * Micro-kernel (tile): R rows of X x P panels of 16 m, R*P zmm
 * accumulators held in registers for the whole K loop; per group of 4 k it
 * loads P weight vectors and broadcasts R activation dwords from L1.
 * 6 x 4 (24 accumulators + 4 weights + 1 broadcast = 29 of 32 zmm) for
 * wide layers; 12 x 2 and 12 x 1 when the layer has only 1-2 panels so
 * there are still >= 10 independent vpdpbusd chains (latency 5, two per
 * cycle). */
#include "quant/gemm_s8_kernels.h"

#if defined(__x86_64__) && defined(__GNUC__)

#include <immintrin.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"

#define VNNI_TARGET "avx512f,avx512bw,avx512vl,avx512vnni"
#define VNNI_INLINE static inline __attribute__((always_inline, target(VNNI_TARGET)))

enum {
    PW = QB_S8_VNNI_PW,
    G = QB_S8_VNNI_G,
    RB = 12,              /* X rows per group() call: 2 x 6 or 1 x 12 */
    STACK_XB = RB * 1024, /* bytes of X copy on the stack: RB rows up to K = 1024 */
};

/* acc += u8 x s8 (vpdpbusd acc, u, w). Inline asm rather than
 * _mm512_dpbusd_epi32: with the intrinsic, gcc 12 copied every
 * accumulator to a fresh register and back around each vpdpbusd in these
 * tiles (2 extra vmovdqa per vpdpbusd, plus spills of the 6 x 4 tile);
 * with the tied "+v" operand the loop is loads + vpdpbusd only (checked
 * with objdump). */
#define DPBUSD(acc, u, w) __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(u), "v"(w))

/* Y rows [0, rows) of one tile: Y (rows, P*16 masked by last) at y.
 * xb: (R, ldxb) offset activations; wg: the group's packed weights
 * (nkg, P, 16, 4); nb: (P*16) -128 * row_sums. R and P are compile-time
 * constants after inlining, so acc[][] lives in registers. */
VNNI_INLINE void tile(const int R, const int P, int nkg, const uint8_t *xb, size_t ldxb,
                      const int8_t *wg, const int32_t *nb, int rows, int32_t *y, size_t ldy,
                      __mmask16 last)
{
    __m512i acc[RB][G];
#pragma GCC unroll 4
    for (int p = 0; p < P; p++) {
        const __m512i b = _mm512_load_si512((const void *)(nb + p * PW));
#pragma GCC unroll 16
        for (int r = 0; r < R; r++) acc[r][p] = b;
    }
    int kg = 0;
    do { /* nkg >= 1 (K >= 1) */
        const int8_t *wk = wg + (size_t)kg * P * 64;
        __m512i wv[G];
#pragma GCC unroll 4
        for (int p = 0; p < P; p++) wv[p] = _mm512_load_si512((const void *)(wk + p * 64));
#pragma GCC unroll 16
        for (int r = 0; r < R; r++) {
            int32_t d;
            memcpy(&d, xb + (size_t)r * ldxb + 4 * (size_t)kg, 4);
            const __m512i xv = _mm512_set1_epi32(d);
#pragma GCC unroll 4
            for (int p = 0; p < P; p++) DPBUSD(acc[r][p], xv, wv[p]);
        }
    } while (++kg < nkg);
#pragma GCC unroll 16
    for (int r = 0; r < R; r++) {
        if (r < rows) {
#pragma GCC unroll 4
            for (int p = 0; p < P; p++)
                _mm512_mask_storeu_epi32(y + (size_t)r * ldy + p * PW,
                                         p == P - 1 ? last : (__mmask16)0xFFFF, acc[r][p]);
        }
    }
}

/* One group of P panels over the (up to RB) rows of a packed block. */
VNNI_INLINE void group(int P, int nkg, const uint8_t *xb, size_t ldxb, const int8_t *wg,
                       const int32_t *nb, int rows, int32_t *y, size_t ldy, __mmask16 last)
{
    switch (P) {
    case 4:
    case 3:
        for (int r0 = 0; r0 < rows; r0 += 6) {
            const int rr = rows - r0 < 6 ? rows - r0 : 6;
            const uint8_t *xr = xb + (size_t)r0 * ldxb;
            int32_t *yr = y + (size_t)r0 * ldy;
            if (P == 4) tile(6, 4, nkg, xr, ldxb, wg, nb, rr, yr, ldy, last);
            else tile(6, 3, nkg, xr, ldxb, wg, nb, rr, yr, ldy, last);
        }
        break;
    case 2:
        if (rows > 6) tile(12, 2, nkg, xb, ldxb, wg, nb, rows, y, ldy, last);
        else tile(6, 2, nkg, xb, ldxb, wg, nb, rows, y, ldy, last);
        break;
    default:
        if (rows > 6) tile(12, 1, nkg, xb, ldxb, wg, nb, rows, y, ldy, last);
        else tile(6, 1, nkg, xb, ldxb, wg, nb, rows, y, ldy, last);
        break;
    }
}

/* xb (rows rounded up to RB, ldxb) = X rows [0, rows) ^ 0x80, zero
 * activations (0x80) past K and in the rows after `rows`. ldxb is a
 * multiple of 64; bytes past K of a source row are never read (masked
 * loads do not fault). Chunks outer, rows inner: with LeNet's short rows
 * (K = 25) the per-row loop overhead cost as much as the copy. */
VNNI_INLINE void pack_x(uint8_t *xb, size_t ldxb, const int8_t *X, size_t ldx, int rows, int K)
{
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    const size_t full = (size_t)K / 64, tail = (size_t)K % 64;
    for (size_t c = 0; c < full; c++)
        for (int r = 0; r < rows; r++) {
            const __m512i v = _mm512_loadu_si512((const void *)(X + (size_t)r * ldx + 64 * c));
            _mm512_store_si512((void *)(xb + (size_t)r * ldxb + 64 * c), _mm512_xor_si512(v, bias));
        }
    if (tail) {
        const __mmask64 m = ((__mmask64)1 << tail) - 1;
        for (int r = 0; r < rows; r++) {
            const __m512i v = _mm512_maskz_loadu_epi8(m, X + (size_t)r * ldx + 64 * full);
            _mm512_store_si512((void *)(xb + (size_t)r * ldxb + 64 * full), _mm512_xor_si512(v, bias));
        }
    }
    const int padded = (rows + RB - 1) / RB * RB;
    if (rows < padded) memset(xb + (size_t)rows * ldxb, 0x80, (size_t)(padded - rows) * ldxb);
}

/* X is copied in blocks of up to 8 x RB rows as long as a block fits the
 * stack buffer (short rows: LeNet's conv1 has K = 25), so the per-block
 * costs are shared by more rows; every group of panels then runs over the
 * whole block, RB rows at a time (its weights stay in cache meanwhile).
 * K > 1024 takes a heap buffer of RB rows. */
__attribute__((target(VNNI_TARGET))) void qb_gemm_s8_vnni(const qb_s8_weights *w, int N,
                                                          const int8_t *X, size_t ldx,
                                                          int32_t *Y, size_t ldy)
{
    const int M = w->M, K = w->K;
    const int K4 = (K + 3) & ~3, nkg = K4 / 4, NP = (M + PW - 1) / PW;
    const size_t ldxb = ((size_t)K + 63) & ~(size_t)63;
    const size_t fit = STACK_XB / (RB * ldxb);
    const int BR = RB * (fit < 1 ? 1 : fit > 8 ? 8 : (int)fit); /* rows per block */
    _Alignas(64) uint8_t stack_xb[STACK_XB];
    uint8_t *xb = fit >= 1 ? stack_xb : xaligned(RB * ldxb, 1);
    const int32_t *nb = (const int32_t *)(const void *)(w->packed + (size_t)NP * PW * K4);

    for (int n0 = 0; n0 < N; n0 += BR) {
        const int rows = N - n0 < BR ? N - n0 : BR;
        pack_x(xb, ldxb, X + (size_t)n0 * ldx, ldx, rows, K);
        for (int g = 0; g * G < NP; g++) {
            const int P = NP - g * G < G ? NP - g * G : G, m0 = g * G * PW;
            const int cols = M - (m0 + (P - 1) * PW); /* in the last panel, 1..16 */
            const __mmask16 last = cols >= PW ? (__mmask16)0xFFFF : (__mmask16)((1u << cols) - 1);
            const int8_t *wg = w->packed + (size_t)g * G * PW * K4;
            for (int s0 = 0; s0 < rows; s0 += RB)
                group(P, nkg, xb + (size_t)s0 * ldxb, ldxb, wg, nb + m0,
                      rows - s0 < RB ? rows - s0 : RB, Y + (size_t)(n0 + s0) * ldy + m0, ldy,
                      last);
        }
    }
    if (xb != stack_xb) free(xb);
}

#else
/* Not x86-64: the dispatcher never selects this path. */
typedef int qb_gemm_s8_vnni_unused;
#endif
