/* int8 GEMM: the scalar reference, weight packing and the run-time choice
 * of kernel. The SIMD kernels live in gemm_s8_avx2.c and gemm_s8_vnni.c,
 * each compiled with function-level target attributes (the library is
 * built without -march), and are only called after __builtin_cpu_supports
 * said yes. The packed layout is described in gemm_s8_kernels.h. */
#include "quant/gemm_s8.h"
#include "quant/gemm_s8_kernels.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"

/* Largest K whose exact sum fits int32 on every path: |sum| <= K * 127^2
 * <= INT32_MAX. (The VNNI accumulator itself wraps modulo 2^32 around the
 * 128 * row_sum offset; the final difference is exact whenever the true
 * sum fits, which is this bound.) */
#define QB_S8_MAX_K 133144

void qb_gemm_s8_ref(int N, int M, int K, const int8_t *X, size_t ldx, const int8_t *W,
                    size_t ldw, int32_t *Y, size_t ldy)
{
    assert(N >= 0 && M >= 0 && K >= 0 && K <= QB_S8_MAX_K);
    assert((size_t)K <= ldx && (size_t)K <= ldw && (size_t)M <= ldy);
    for (int n = 0; n < N; n++) {
        const int8_t *x = X + (size_t)n * ldx;
        int32_t *y = Y + (size_t)n * ldy;
        for (int m = 0; m < M; m++) {
            const int8_t *wr = W + (size_t)m * ldw;
            int32_t s = 0;
            for (int k = 0; k < K; k++) s += (int32_t)x[k] * (int32_t)wr[k];
            y[m] = s;
        }
    }
}

/* ---- paths and dispatch ------------------------------------------------- */

const char *qb_gemm_s8_path_name(qb_gemm_s8_path path)
{
    switch (path) {
    case QB_GEMM_S8_AUTO: return "auto";
    case QB_GEMM_S8_REF: return "ref";
    case QB_GEMM_S8_AVX2: return "avx2";
    case QB_GEMM_S8_VNNI: return "vnni";
    }
    return "unknown";
}

int qb_gemm_s8_supported(qb_gemm_s8_path path)
{
    switch (path) {
    case QB_GEMM_S8_AUTO:
    case QB_GEMM_S8_REF: return 1;
#if defined(__x86_64__) && defined(__GNUC__)
    case QB_GEMM_S8_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") != 0;
    case QB_GEMM_S8_VNNI:
        /* avx512bw for the masked byte loads of the activation tails;
         * gcc's cpu model also checks that the OS saves the zmm state. */
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vnni");
#else
    case QB_GEMM_S8_AVX2:
    case QB_GEMM_S8_VNNI: return 0;
#endif
    }
    return 0;
}

/* Read on every call (not cached): packing happens once per layer, and the
 * tests change the environment between calls. */
qb_gemm_s8_path qb_gemm_s8_best(void)
{
    const char *scalar = getenv("QBLIND_SCALAR");
    if (scalar && !strcmp(scalar, "1")) return QB_GEMM_S8_REF;
    const char *force = getenv("QBLIND_GEMM_S8");
    if (force) {
        static const qb_gemm_s8_path named[] = {QB_GEMM_S8_REF, QB_GEMM_S8_AVX2,
                                                QB_GEMM_S8_VNNI};
        for (size_t i = 0; i < sizeof named / sizeof named[0]; i++)
            if (!strcmp(force, qb_gemm_s8_path_name(named[i])) && qb_gemm_s8_supported(named[i]))
                return named[i];
        /* unknown or unsupported here: fall through to the fastest path */
    }
    if (qb_gemm_s8_supported(QB_GEMM_S8_VNNI)) return QB_GEMM_S8_VNNI;
    if (qb_gemm_s8_supported(QB_GEMM_S8_AVX2)) return QB_GEMM_S8_AVX2;
    return QB_GEMM_S8_REF;
}

/* ---- packing ------------------------------------------------------------ */

static size_t panels_len(int M, int K, int PW)
{
    size_t np = ((size_t)M + (size_t)PW - 1) / (size_t)PW;
    size_t k4 = ((size_t)K + 3) & ~(size_t)3;
    return np * (size_t)PW * k4;
}

/* W (M, K) -> the panel layout of gemm_s8_kernels.h, zero padded. */
static void pack_panels(int8_t *dst, const int8_t *W, int M, int K, size_t ldw, int PW, int G)
{
    const int K4 = (K + 3) & ~3, NP = (M + PW - 1) / PW;
    for (int g = 0; g * G < NP; g++) {
        const int Pg = NP - g * G < G ? NP - g * G : G;
        int8_t *gb = dst + (size_t)g * G * PW * K4; /* (K4/4, Pg, PW, 4) */
        for (int kg = 0; kg < K4 / 4; kg++)
            for (int p = 0; p < Pg; p++)
                for (int j = 0; j < PW; j++) {
                    int8_t *o = gb + (((size_t)kg * Pg + p) * PW + j) * 4;
                    const int m = (g * G + p) * PW + j;
                    for (int t = 0; t < 4; t++) {
                        const int k = 4 * kg + t;
                        o[t] = (m < M && k < K) ? W[(size_t)m * ldw + k] : 0;
                    }
                }
    }
}

/* An explicit path this CPU cannot run falls back to the best one (the
 * packing records what it chose in w->path): weights packed on a node
 * must work on that node. */
void qb_s8_weights_pack(qb_s8_weights *w, const int8_t *W, int M, int K, size_t ldw,
                        qb_gemm_s8_path path)
{
    assert(M >= 0 && K >= 0 && K <= QB_S8_MAX_K && (size_t)K <= ldw);
    if (path == QB_GEMM_S8_AUTO || !qb_gemm_s8_supported(path)) path = qb_gemm_s8_best();
    memset(w, 0, sizeof *w);
    w->M = M;
    w->K = K;
    w->path = path;
    w->row_sums = xmalloc(M > 0 ? (size_t)M : 1, sizeof(int32_t));
    for (int m = 0; m < M; m++) {
        int32_t s = 0;
        for (int k = 0; k < K; k++) s += W[(size_t)m * ldw + k];
        w->row_sums[m] = s;
    }
    switch (path) {
    case QB_GEMM_S8_AVX2:
        w->packed_len = panels_len(M, K, QB_S8_AVX2_PW);
        w->packed = xaligned(w->packed_len, 1);
        pack_panels(w->packed, W, M, K, ldw, QB_S8_AVX2_PW, QB_S8_AVX2_G);
        break;
    case QB_GEMM_S8_VNNI: {
        /* panels, then the accumulators' start values (see the header) */
        const size_t plen = panels_len(M, K, QB_S8_VNNI_PW);
        const size_t np = ((size_t)M + QB_S8_VNNI_PW - 1) / QB_S8_VNNI_PW;
        w->packed_len = plen + np * QB_S8_VNNI_PW * sizeof(int32_t);
        w->packed = xaligned(w->packed_len, 1);
        pack_panels(w->packed, W, M, K, ldw, QB_S8_VNNI_PW, QB_S8_VNNI_G);
        int32_t *nb = (int32_t *)(void *)(w->packed + plen);
        for (size_t m = 0; m < np * QB_S8_VNNI_PW; m++)
            nb[m] = m < (size_t)M ? (int32_t)(0u - 128u * (uint32_t)w->row_sums[m]) : 0;
        break;
    }
    default: /* REF: W itself, rows made contiguous (M, K) */
        w->packed_len = (size_t)M * (size_t)K;
        w->packed = xaligned(w->packed_len, 1);
        for (int m = 0; m < M; m++)
            if (K) memcpy(w->packed + (size_t)m * K, W + (size_t)m * ldw, (size_t)K);
        break;
    }
}

void qb_s8_weights_free(qb_s8_weights *w)
{
    if (!w) return;
    free(w->packed);
    free(w->row_sums);
    memset(w, 0, sizeof *w);
}

void qb_gemm_s8(const qb_s8_weights *w, int N, const int8_t *X, size_t ldx, int32_t *Y,
                size_t ldy)
{
    const int M = w->M, K = w->K;
    assert(N >= 0 && (size_t)K <= ldx && (size_t)M <= ldy);
    if (N <= 0 || M <= 0) return;
    if (K == 0) {
        for (int n = 0; n < N; n++) memset(Y + (size_t)n * ldy, 0, (size_t)M * sizeof *Y);
        return;
    }
    switch (w->path) {
#if defined(__x86_64__) && defined(__GNUC__)
    case QB_GEMM_S8_AVX2: qb_gemm_s8_avx2(w, N, X, ldx, Y, ldy); return;
    case QB_GEMM_S8_VNNI: qb_gemm_s8_vnni(w, N, X, ldx, Y, ldy); return;
#endif
    case QB_GEMM_S8_REF: qb_gemm_s8_ref(N, M, K, X, ldx, w->packed, (size_t)K, Y, ldy); return;
    default: break;
    }
    /* weights packed for a path this build cannot run: a corrupted struct */
    abort();
}
