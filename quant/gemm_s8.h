/* Integer GEMM for quantized inference: int8 x int8 -> int32.
 *
 *   Y (N, M) = X (N, K) * W (M, K)^T        Y[n][m] = sum_k X[n][k] * W[m][k]
 *
 * X holds activations (one row per output position or sample), W weights
 * (one row per output channel); both row-major with K contiguous, so every
 * output is the dot product of two contiguous int8 rows. All values must
 * lie in [-127, 127]: the AVX2 path multiplies |x| (u8) by sign-adjusted
 * weights (vpmaddubsw cannot overflow then) and the VNNI path adds 128 to
 * activations to make them u8 for vpdpbusd and subtracts 128 * sum(W[m])
 * afterwards. Results are exact int32 sums on every path: all paths must
 * agree bit for bit with qb_gemm_s8_ref (tested on odd sizes).
 *
 * Weights are packed once per layer (qb_s8_weights_pack) into the layout
 * the chosen kernel wants; activations are used as given. */
#ifndef QB_GEMM_S8_H
#define QB_GEMM_S8_H

#include <stddef.h>
#include <stdint.h>

typedef enum qb_gemm_s8_path {
    QB_GEMM_S8_AUTO = 0,  /* the fastest path this CPU supports */
    QB_GEMM_S8_REF,       /* scalar reference */
    QB_GEMM_S8_AVX2,      /* vpmaddubsw / vpmaddwd */
    QB_GEMM_S8_VNNI,      /* AVX-512 VNNI vpdpbusd */
} qb_gemm_s8_path;

/* Packed weights (owned buffers; free with qb_s8_weights_free). */
typedef struct qb_s8_weights {
    int M, K;                /* logical shape of W */
    qb_gemm_s8_path path;    /* the kernel this packing is for (never AUTO) */
    int8_t *packed;          /* kernel-specific layout, padded */
    int32_t *row_sums;       /* (M) sum_k W[m][k], for the VNNI offset */
    size_t packed_len;
} qb_s8_weights;

/* Which path AUTO resolves to on this CPU (QBLIND_SCALAR=1 in the
 * environment forces REF; QBLIND_GEMM_S8=ref|avx2|vnni forces one that the
 * CPU supports). */
qb_gemm_s8_path qb_gemm_s8_best(void);
/* 1 if this CPU can run `path`. */
int qb_gemm_s8_supported(qb_gemm_s8_path path);
const char *qb_gemm_s8_path_name(qb_gemm_s8_path path);

/* Pack W (M, K), row stride ldw, for `path` (AUTO = best). */
void qb_s8_weights_pack(qb_s8_weights *w, const int8_t *W, int M, int K, size_t ldw,
                        qb_gemm_s8_path path);
void qb_s8_weights_free(qb_s8_weights *w);

/* Y (N, M), row stride ldy, = X (N, K) (row stride ldx) * W^T. */
void qb_gemm_s8(const qb_s8_weights *w, int N, const int8_t *X, size_t ldx, int32_t *Y,
                size_t ldy);

/* The oracle: plain loops over unpacked W. */
void qb_gemm_s8_ref(int N, int M, int K, const int8_t *X, size_t ldx, const int8_t *W,
                    size_t ldw, int32_t *Y, size_t ldy);

#endif
