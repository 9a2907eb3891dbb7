/* The double-precision kernels (core/dkernel.h), one C source built for
 * three instruction sets. Needs GNU C (gcc, clang): vector extensions,
 * target attributes. */

/* No fused multiply-add anywhere in this file, whatever the global flags:
 * the AVX-512F build could otherwise fuse x*y+s (GCC contracts by
 * default), and its bits would differ from the baseline build's. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#elif defined(__GNUC__)
#pragma GCC optimize("fp-contract=off")
#endif

#include "core/dkernel.h"

#include <stdlib.h>
#include <string.h>

#define P QB_DKERNEL_PANEL

#if defined(__GNUC__)
#define DK_INLINE static inline __attribute__((always_inline))
#else
#define DK_INLINE static inline
#endif

/* GNU C vectors of 2, 4 and 8 doubles (SSE2, AVX2, AVX-512F registers):
 * element-wise IEEE operations, the same bits as the scalar loop; aligned
 * to a double only, so any row offset can be loaded. A vector type may
 * alias its element type, so reading doubles through them is defined. */
typedef double dk_v2 __attribute__((vector_size(16), aligned(8)));
typedef double dk_v4 __attribute__((vector_size(32), aligned(8)));
typedef double dk_v8 __attribute__((vector_size(64), aligned(8)));

/* The scatter kernel on vectors VT of W doubles: for each panel pair, W
 * columns of the l panel at a time against all P rows of the j panel, the
 * P accumulators (one vector each) in registers over all b rows. The tile
 * shape only decides which entries share a pass, never an entry's order. */
#define DK_SCATTER(name, VT, attr)                                                            \
    attr static void name(const double *pk, size_t b, size_t np, double *s)                   \
    {                                                                                         \
        enum { W = sizeof(VT) / sizeof(double) };                                             \
        size_t dp = np * P;                                                                   \
        for (size_t jp = 0; jp < np; jp++)                                                    \
            for (size_t lp = jp; lp < np; lp++)                                               \
                for (size_t u0 = 0; u0 < P; u0 += W) {                                        \
                    const double *pj = pk + jp * b * P, *pl = pk + lp * b * P + u0;           \
                    double *st = s + jp * P * dp + lp * P + u0;                               \
                    VT acc[P];                                                                \
                    for (size_t t = 0; t < P; t++) acc[t] = *(const VT *)(st + t * dp);       \
                    for (size_t i = 0; i < b; i++) {                                          \
                        VT xb = *(const VT *)(pl + i * P);                                    \
                        for (size_t t = 0; t < P; t++) acc[t] += pj[i * P + t] * xb;          \
                    }                                                                         \
                    for (size_t t = 0; t < P; t++) *(VT *)(st + t * dp) = acc[t];             \
                }                                                                             \
    }

DK_INLINE void symv_body(const double *bm, size_t ld, size_t m, const double *v, double *p)
{
    memset(p, 0, m * sizeof(double));
    for (size_t j = 0; j < m; j++) {
        const double *row = bm + j * ld;
        double vj = v[j];
        for (size_t i = 0; i < m; i++) p[i] += row[i] * vj;
    }
}

DK_INLINE void syr2_body(double *bm, size_t ld, size_t m, const double *v, const double *w)
{
    for (size_t i = 0; i < m; i++) {
        double *row = bm + i * ld;
        double vi = v[i], wi = w[i];
        for (size_t j = 0; j < m; j++) row[j] -= vi * w[j] + wi * v[j];
    }
}

/* Each build: the scatter on its register width, the other bodies inlined
 * under its target (the compiler vectorises their inner loops). */
#define DK_BUILD(sfx, attr, VT)                                                                 \
    DK_SCATTER(scatter_##sfx, VT, attr)                                                        \
    attr static void symv_##sfx(const double *bm, size_t ld, size_t m, const double *v,        \
                                double *p)                                                     \
    {                                                                                          \
        symv_body(bm, ld, m, v, p);                                                            \
    }                                                                                          \
    attr static void syr2_##sfx(double *bm, size_t ld, size_t m, const double *v,              \
                                const double *w)                                               \
    {                                                                                          \
        syr2_body(bm, ld, m, v, w);                                                            \
    }

DK_BUILD(ref, , dk_v2)
#if defined(__x86_64__) && defined(__GNUC__)
#define DK_SIMD 1
DK_BUILD(avx2, __attribute__((target("avx2"))), dk_v4)
DK_BUILD(avx512, __attribute__((target("avx512f"))), dk_v8)
#endif

typedef struct dk_path {
    const char *name;
    void (*scatter)(const double *, size_t, size_t, double *);
    void (*symv)(const double *, size_t, size_t, const double *, double *);
    void (*syr2)(double *, size_t, size_t, const double *, const double *);
} dk_path;

/* The build for this CPU, chosen once (a race between threads would pick
 * the same one): the widest the CPU runs; QBLIND_SCALAR=1 forces the
 * baseline, QBLIND_DKERNEL=avx2 (or scalar, avx512) a narrower one for the
 * tests (ignored when the CPU lacks it). */
static const dk_path *dk_select(void)
{
    static const dk_path ref = {"scalar", scatter_ref, symv_ref, syr2_ref};
    static const dk_path *chosen;
    if (chosen) return chosen;
    const dk_path *c = &ref;
#ifdef DK_SIMD
    static const dk_path avx2 = {"avx2", scatter_avx2, symv_avx2, syr2_avx2};
    static const dk_path avx512 = {"avx512", scatter_avx512, symv_avx512, syr2_avx512};
    const char *force = getenv("QBLIND_SCALAR"), *want = getenv("QBLIND_DKERNEL");
    if (!(force && *force == '1') && !(want && !strcmp(want, "scalar"))) {
        __builtin_cpu_init();
        int a512 = __builtin_cpu_supports("avx512f"), a2 = __builtin_cpu_supports("avx2");
        if (want && !strcmp(want, "avx2")) a512 = 0;
        if (a512)
            c = &avx512;
        else if (a2)
            c = &avx2;
    }
#endif
    chosen = c;
    return c;
}

void qb_dkernel_scatter(const double *pk, size_t b, size_t np, double *s)
{
    dk_select()->scatter(pk, b, np, s);
}

void qb_dkernel_symv(const double *bm, size_t ld, size_t m, const double *v, double *p)
{
    dk_select()->symv(bm, ld, m, v, p);
}

void qb_dkernel_syr2(double *bm, size_t ld, size_t m, const double *v, const double *w)
{
    dk_select()->syr2(bm, ld, m, v, w);
}

const char *qb_dkernel_path(void)
{
    return dk_select()->name;
}
