/* The double-precision kernels (core/dkernel.h), one C source built for
 * three instruction sets. */

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

/* One tile of th rows (t0..t0+th) of the jp x lp panel pair: the
 * accumulators stay in registers over all b rows. th is a constant at each
 * call, chosen per build to fit its register file; it only changes which
 * entries share a pass, never an entry's order. */
DK_INLINE void scatter_tile(const double *pj, const double *pl, size_t b, double *s, size_t dp,
                            size_t t0, size_t th)
{
    double acc[P][P];
    for (size_t t = 0; t < th; t++)
        for (size_t u = 0; u < P; u++) acc[t][u] = s[(t0 + t) * dp + u];
    for (size_t i = 0; i < b; i++) {
        const double *xa = pj + i * P + t0, *xb = pl + i * P;
        for (size_t t = 0; t < th; t++)
            for (size_t u = 0; u < P; u++) acc[t][u] += xa[t] * xb[u];
    }
    for (size_t t = 0; t < th; t++)
        for (size_t u = 0; u < P; u++) s[(t0 + t) * dp + u] = acc[t][u];
}

DK_INLINE void scatter_body(const double *pk, size_t b, size_t np, double *s, size_t th)
{
    size_t dp = np * P;
    for (size_t jp = 0; jp < np; jp++)
        for (size_t lp = jp; lp < np; lp++)
            for (size_t t0 = 0; t0 < P; t0 += th)
                scatter_tile(pk + jp * b * P, pk + lp * b * P, b, s + jp * P * dp + lp * P, dp, t0,
                             th);
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

/* Each build: the bodies inlined under its target (tile heights: 2 rows of
 * 8 = 8 xmm, 4 rows = 8 ymm, 8 rows = 8 zmm accumulators). */
#define DK_BUILD(sfx, attr, th)                                                                 \
    attr static void scatter_##sfx(const double *pk, size_t b, size_t np, double *s)           \
    {                                                                                          \
        scatter_body(pk, b, np, s, th);                                                        \
    }                                                                                          \
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

DK_BUILD(ref, , 2)
#if defined(__x86_64__) && defined(__GNUC__)
#define DK_SIMD 1
DK_BUILD(avx2, __attribute__((target("avx2"))), 4)
DK_BUILD(avx512, __attribute__((target("avx512f"))), 8)
#endif

typedef struct dk_path {
    const char *name;
    void (*scatter)(const double *, size_t, size_t, double *);
    void (*symv)(const double *, size_t, size_t, const double *, double *);
    void (*syr2)(double *, size_t, size_t, const double *, const double *);
} dk_path;

/* The build for this CPU, chosen once (a race between threads would pick
 * the same one). */
static const dk_path *dk_select(void)
{
    static const dk_path ref = {"scalar", scatter_ref, symv_ref, syr2_ref};
    static const dk_path *chosen;
    if (chosen) return chosen;
    const dk_path *c = &ref;
#ifdef DK_SIMD
    static const dk_path avx2 = {"avx2", scatter_avx2, symv_avx2, syr2_avx2};
    static const dk_path avx512 = {"avx512", scatter_avx512, symv_avx512, syr2_avx512};
    const char *force = getenv("QBLIND_SCALAR");
    if (!(force && *force == '1')) {
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512f"))
            c = &avx512;
        else if (__builtin_cpu_supports("avx2"))
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
