/* Internal to quant/gemm_s8*.c: the packed weight layout and the SIMD
 * kernels behind qb_gemm_s8. Not a public header.
 *
 * Packed weights (both SIMD paths; pack_panels in gemm_s8.c writes it):
 *
 *   columns m are cut into panels of PW consecutive m (PW = 16 int32 lanes
 *   of a zmm for VNNI, 8 of a ymm for AVX2), K into groups of 4 k (one
 *   int32 lane holds the 4 int8 products vpdpbusd / vpmaddubsw+vpmaddwd
 *   sum). Panels are gathered in groups of G (G = the panels one
 *   micro-kernel call covers: 4 for VNNI, 2 for AVX2); the last group may
 *   hold fewer (Pg = NP - g*G). Group g starts at byte g*G*PW*K4 and is
 *
 *       [K4/4][Pg][PW][4]      byte (kg, p, j, t) = W[(g*G + p)*PW + j][4*kg + t]
 *
 *   so the micro-kernel reads one contiguous stream per group: for each
 *   k-group, Pg vectors of PW*4 bytes. Columns m >= M and k >= K are zero,
 *   so any activation bytes that meet them contribute nothing (the kernels
 *   pad X rows with zero activations anyway).
 *
 *   K4 = K rounded up to 4; NP = ceil(M / PW). The buffer is 64-byte
 *   aligned, and every weight vector is aligned to its size.
 *
 * VNNI only: after the panels (at byte NP*PW*K4, 64-byte aligned) come
 * NP*16 int32, -128 * row_sums[m] (0 for m >= M), computed modulo 2^32:
 * the start value of the accumulators (see gemm_s8_vnni.c). */
#ifndef QB_GEMM_S8_KERNELS_H
#define QB_GEMM_S8_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include "quant/gemm_s8.h"

#define QB_S8_VNNI_PW 16
#define QB_S8_VNNI_G 4
#define QB_S8_AVX2_PW 8
#define QB_S8_AVX2_G 2

#if defined(__x86_64__) && defined(__GNUC__)
/* Y (N, M) = X (N, K) * W^T from weights packed with (PW, G) of the path.
 * Same contract as qb_gemm_s8 (w->path already checked). */
void qb_gemm_s8_avx2(const qb_s8_weights *w, int N, const int8_t *X, size_t ldx, int32_t *Y,
                     size_t ldy);
void qb_gemm_s8_vnni(const qb_s8_weights *w, int N, const int8_t *X, size_t ldx, int32_t *Y,
                     size_t ldy);
#endif

#endif
