/* The driver of qb_gemm_f32: orientation, blocking, packing, threads and
 * the choice of path. None of these choices changes a bit of the result
 * (core/gemm_f32.h): they only decide which output lands in which vector
 * lane and when a running sum takes a round trip through memory.
 *
 *   - orientation: C = A B or, computed as its transpose, C^T = B^T A^T
 *     (fmaf(a, b, s) == fmaf(b, a, s)), and the tile shape (MR x NR) among
 *     the path's kernels: the pair with the lowest estimate of padded
 *     lanes, packing and copies (kernel_cost);
 *   - blocks of KC k and NC columns; B panels NR wide read in place where
 *     B's rows are contiguous, else packed; A read in place by broadcasts
 *     (its last panel of fewer than MR rows zero-padded); one micro-kernel
 *     call per tile; tiles at the edges, and tiles of a transposed C, go
 *     through a small buffer;
 *   - threads take whole tiles: contiguous ranges of panels along the
 *     dimension with more of them. */
#include "core/gemm_f32.h"

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/gemm_f32_kernels.h"
#include "core/threads.h"
#include "core/xalloc.h"

enum {
    KC = 256,  /* k per block: a B panel (KC x NR) stays in L1 */
    NC = 1024, /* columns per block (a multiple of every NR) */
    MAX_TILE = 12 * 64,
};

/* One problem with explicit strides: op(A)(i, p) = a[i*rsa + p*csa],
 * op(B)(p, j) = b[p*rsb + j*csb], C(i, j) = c[i*rsc + j*csc]. */
typedef struct gemm_args {
    int m, n, k, acc;
    const float *a;
    size_t rsa, csa;
    const float *b;
    size_t rsb, csb;
    float *c;
    size_t rsc, csc;
    const qb_f32_ukernel *uk;
    int simd_pack; /* 1: B panels with rsb == 1 packed by qb_f32_pack_t_avx512 */
} gemm_args;

/* ---- the reference ------------------------------------------------------- */

void qb_gemm_f32_ref(int ta, int tb, int m, int n, int k, const float *a, size_t lda,
                     const float *b, size_t ldb, int accumulate, float *c, size_t ldc)
{
    const size_t rsa = ta ? 1 : lda, csa = ta ? lda : 1;
    const size_t rsb = tb ? 1 : ldb, csb = tb ? ldb : 1;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < n; j++) {
            float s = accumulate ? c[(size_t)i * ldc + j] : 0.0f;
            for (int p = 0; p < k; p++)
                s = fmaf(a[(size_t)i * rsa + (size_t)p * csa], b[(size_t)p * rsb + (size_t)j * csb],
                         s);
            c[(size_t)i * ldc + j] = s;
        }
}

/* ---- paths ---------------------------------------------------------------- */

const char *qb_gemm_f32_path_name(qb_gemm_f32_path path)
{
    switch (path) {
    case QB_GEMM_F32_AUTO: return "auto";
    case QB_GEMM_F32_PORTABLE: return "portable";
    case QB_GEMM_F32_AVX2: return "avx2";
    case QB_GEMM_F32_AVX512: return "avx512";
    }
    return "unknown";
}

int qb_gemm_f32_supported(qb_gemm_f32_path path)
{
    switch (path) {
    case QB_GEMM_F32_AUTO:
    case QB_GEMM_F32_PORTABLE: return 1;
#if defined(__x86_64__) && defined(__GNUC__)
    case QB_GEMM_F32_AVX2:
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    case QB_GEMM_F32_AVX512:
        /* gcc's cpu model also checks that the OS saves the zmm state. */
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") != 0;
#else
    case QB_GEMM_F32_AVX2:
    case QB_GEMM_F32_AVX512: return 0;
#endif
    }
    return 0;
}

static qb_gemm_f32_path path_from_env(void)
{
    qb_gemm_f32_path best = QB_GEMM_F32_PORTABLE;
    if (qb_gemm_f32_supported(QB_GEMM_F32_AVX512))
        best = QB_GEMM_F32_AVX512;
    else if (qb_gemm_f32_supported(QB_GEMM_F32_AVX2))
        best = QB_GEMM_F32_AVX2;
    const char *scalar = getenv("QBLIND_SCALAR");
    if (scalar && !strcmp(scalar, "1")) return QB_GEMM_F32_PORTABLE;
    const char *force = getenv("QBLIND_GEMM_F32");
    if (!force || !*force) return best;
    for (int p = QB_GEMM_F32_PORTABLE; p <= QB_GEMM_F32_AVX512; p++)
        if (!strcmp(force, qb_gemm_f32_path_name((qb_gemm_f32_path)p))) {
            if (qb_gemm_f32_supported((qb_gemm_f32_path)p)) return (qb_gemm_f32_path)p;
            fprintf(stderr, "qblind: warning: QBLIND_GEMM_F32=%s: this CPU cannot run it; using %s\n",
                    force, qb_gemm_f32_path_name(best));
            return best;
        }
    fprintf(stderr, "qblind: warning: QBLIND_GEMM_F32=%s is not portable, avx2 or avx512; using %s\n",
            force, qb_gemm_f32_path_name(best));
    return best;
}

qb_gemm_f32_path qb_gemm_f32_best(void)
{
    static int cached = -1; /* the same value from every thread: a benign race */
    if (cached < 0) cached = (int)path_from_env();
    return (qb_gemm_f32_path)cached;
}

static const qb_f32_ukernel *path_kernels(qb_gemm_f32_path path, int *count)
{
#if defined(__x86_64__) && defined(__GNUC__)
    if (path == QB_GEMM_F32_AVX512) return qb_f32_kernels_avx512(count);
    if (path == QB_GEMM_F32_AVX2) return qb_f32_kernels_avx2(count);
#endif
    (void)path;
    return qb_f32_kernels_portable(count);
}

/* ---- the loop nest -------------------------------------------------------- */

/* Workspace of one thread: B panels, an A edge panel, an edge tile. */
typedef struct gemm_ws {
    float *mem;
    size_t len;
} gemm_ws;

static gemm_ws WS[QB_THREADS_MAX];

static float *ws_get(int t, size_t floats)
{
    if (WS[t].len < floats) {
        free(WS[t].mem);
        WS[t].mem = xaligned(floats, sizeof(float));
        WS[t].len = floats;
    }
    return WS[t].mem;
}

static size_t round_up(size_t x, size_t to) { return (x + to - 1) / to * to; }

/* bp (kc, NR): op(B) k p0.., columns j0 .. j0+cols-1, zero past cols. */
static void pack_b(const gemm_args *g, int p0, int kc, int j0, int cols, int NR, float *bp)
{
    const float *src = g->b + (size_t)p0 * g->rsb + (size_t)j0 * g->csb;
    if (g->csb == 1) {
        for (int p = 0; p < kc; p++) {
            float *dst = bp + (size_t)p * NR;
            memcpy(dst, src + (size_t)p * g->rsb, (size_t)cols * sizeof(float));
            for (int j = cols; j < NR; j++) dst[j] = 0.0f;
        }
        return;
    }
#if defined(__x86_64__) && defined(__GNUC__)
    if (g->simd_pack && g->rsb == 1) {
        qb_f32_pack_t_avx512(src, g->csb, kc, cols, NR, bp);
        return;
    }
#endif
    for (int j = 0; j < NR; j++) {
        const float *s = src + (size_t)j * g->csb;
        if (j < cols)
            for (int p = 0; p < kc; p++) bp[(size_t)p * NR + j] = s[(size_t)p * g->rsb];
        else
            for (int p = 0; p < kc; p++) bp[(size_t)p * NR + j] = 0.0f;
    }
}

/* ap (kc, MR) laid out [p][r]: op(A) rows i0 .. i0+rows-1, zero past rows. */
static void pack_a_edge(const gemm_args *g, int i0, int rows, int p0, int kc, int MR, float *ap)
{
    for (int r = 0; r < MR; r++) {
        const float *s = g->a + (size_t)(i0 + r) * g->rsa + (size_t)p0 * g->csa;
        for (int p = 0; p < kc; p++) ap[(size_t)p * MR + r] = r < rows ? s[(size_t)p * g->csa] : 0.0f;
    }
}

/* C tile at (i, j), rows x cols valid, through the micro-kernel; tiles at
 * the edges or of a transposed C go through buf (MR x NR). */
static void tile_run(const gemm_args *g, int i, int j, int rows, int cols, int kc,
                     const float *a, size_t rsa, size_t csa, const float *b, size_t rsb,
                     int load, float *buf)
{
    const int MR = g->uk->mr, NR = g->uk->nr;
    float *c = g->c + (size_t)i * g->rsc + (size_t)j * g->csc;
    if (rows == MR && cols == NR && g->csc == 1) {
        g->uk->fn(kc, a, rsa, csa, b, rsb, c, g->rsc, load);
        return;
    }
    if (load)
        for (int r = 0; r < MR; r++)
            for (int q = 0; q < NR; q++)
                buf[r * NR + q] = r < rows && q < cols ? c[(size_t)r * g->rsc + (size_t)q * g->csc]
                                                       : 0.0f;
    g->uk->fn(kc, a, rsa, csa, b, rsb, buf, (size_t)NR, load);
    for (int r = 0; r < rows; r++)
        for (int q = 0; q < cols; q++) c[(size_t)r * g->rsc + (size_t)q * g->csc] = buf[r * NR + q];
}

/* One thread's problem: blocks of KC k and NC columns; B read in place
 * where its rows are contiguous, else packed panel by panel; A read in
 * place (broadcasts) except a last panel of fewer than MR rows. */
static void gemm_serial(const gemm_args *g, int t)
{
    const int MR = g->uk->mr, NR = g->uk->nr;
    const int kcmax = g->k < KC ? g->k : KC;
    const size_t b_len = (size_t)NR * kcmax, a_len = (size_t)MR * kcmax;
    float *ws = ws_get(t, round_up(b_len, 16) + round_up(a_len, 16) + MAX_TILE);
    float *bp = ws, *aedge = ws + round_up(b_len, 16), *buf = aedge + round_up(a_len, 16);
    const int m_full = g->m / MR * MR, rows_last = g->m - m_full;
    for (int j0 = 0; j0 < g->n; j0 += NC) {
        const int nc = g->n - j0 < NC ? g->n - j0 : NC;
        for (int p0 = 0; p0 < g->k; p0 += KC) {
            const int kc = g->k - p0 < KC ? g->k - p0 : KC;
            const int load = g->acc || p0 > 0;
            if (rows_last) pack_a_edge(g, m_full, rows_last, p0, kc, MR, aedge);
            for (int jr = 0; jr < nc; jr += NR) {
                const int cols = nc - jr < NR ? nc - jr : NR;
                const float *b = g->b + (size_t)p0 * g->rsb + (size_t)(j0 + jr) * g->csb;
                size_t rsb = g->rsb;
                /* in place unless its rows are strided, it is an edge, or
                 * (read again for every row panel) its kc rows, each on its
                 * own cache lines, overflow a 32 KiB share of L1 */
                if (g->csb != 1 || cols < NR ||
                    (g->m > MR && (size_t)kc * NR * sizeof(float) > 32768)) {
                    pack_b(g, p0, kc, j0 + jr, cols, NR, bp);
                    b = bp, rsb = (size_t)NR;
                }
                for (int i = 0; i < m_full; i += MR)
                    tile_run(g, i, j0 + jr, MR, cols, kc,
                             g->a + (size_t)i * g->rsa + (size_t)p0 * g->csa, g->rsa, g->csa, b,
                             rsb, load, buf);
                if (rows_last)
                    tile_run(g, m_full, j0 + jr, rows_last, cols, kc, aedge, 1, (size_t)MR, b,
                             rsb, load, buf);
            }
        }
    }
}

/* ---- choices -------------------------------------------------------------- */

/* Estimated cycles of an (m, n, k) problem with kernel uk: the fmas on
 * padded tiles (two per cycle, or fewer where one vector load of B and MR
 * broadcasts per MR * NV fmas outnumber them), B packed where its rows are
 * not contiguous, C copied through the tile buffer where its columns are
 * not. */
static double kernel_cost(const gemm_args *g, int m, int n, size_t csb, size_t csc,
                          const qb_f32_ukernel *uk, int width)
{
    const int nv = uk->nr / width;
    const double loads = (double)(uk->mr + nv) / (double)(uk->mr * nv);
    const double pm = (double)round_up((size_t)m, (size_t)uk->mr),
                 pn = (double)round_up((size_t)n, (size_t)uk->nr);
    const double kblocks = (double)((g->k + KC - 1) / KC), tile = (double)uk->mr * uk->nr;
    double cost = pm * pn / width * g->k * (loads > 1.0 ? loads : 1.0) / 2.0;
    if (csb != 1) cost += (double)g->k * pn;
    if (csc != 1) {
        cost += 2.0 * pm * pn * kblocks;
    } else { /* edge tiles go through the buffer: copied in and out */
        if (m % uk->mr) cost += 2.0 * tile * (pn / uk->nr) * kblocks;
        if (n % uk->nr) cost += 2.0 * tile * (pm / uk->mr) * kblocks;
    }
    return cost;
}

/* The orientation and kernel for g (with m, n, k, strides set). */
static void choose(gemm_args *g, qb_gemm_f32_path path)
{
    int count;
    const qb_f32_ukernel *ks = path_kernels(path, &count);
    const int width = path == QB_GEMM_F32_AVX512 ? 16 : path == QB_GEMM_F32_AVX2 ? 8 : 16;
    double best = INFINITY;
    int best_k = 0, best_t = 0;
    for (int t = 0; t < 2; t++)
        for (int i = 0; i < count; i++) {
            double cost = t ? kernel_cost(g, g->n, g->m, g->rsa, g->rsc, &ks[i], width)
                            : kernel_cost(g, g->m, g->n, g->csb, g->csc, &ks[i], width);
            if (cost < best) best = cost, best_k = i, best_t = t;
        }
    g->uk = &ks[best_k];
    g->simd_pack = path == QB_GEMM_F32_AVX512;
    if (best_t) { /* C^T (n, m) = op(B)^T op(A)^T */
        gemm_args s = *g;
        g->m = s.n, g->n = s.m;
        g->a = s.b, g->rsa = s.csb, g->csa = s.rsb;
        g->b = s.a, g->rsb = s.csa, g->csb = s.rsa;
        g->rsc = s.csc, g->csc = s.rsc;
    }
}

typedef struct split_ctx {
    const gemm_args *g;
} split_ctx;

/* Thread t of nt: a contiguous range of whole panels along the dimension
 * with more of them. */
static void gemm_part(void *arg, int t, int nt)
{
    const gemm_args *g = ((const split_ctx *)arg)->g;
    gemm_args s = *g;
    const int pm = (g->m + g->uk->mr - 1) / g->uk->mr, pn = (g->n + g->uk->nr - 1) / g->uk->nr;
    const int along_n = pn >= pm, panels = along_n ? pn : pm;
    const int lo = (int)((long long)panels * t / nt), hi = (int)((long long)panels * (t + 1) / nt);
    if (lo >= hi) return;
    if (along_n) {
        int j0 = lo * g->uk->nr, j1 = hi * g->uk->nr < g->n ? hi * g->uk->nr : g->n;
        s.n = j1 - j0;
        s.b = g->b + (size_t)j0 * g->csb;
        s.c = g->c + (size_t)j0 * g->csc;
    } else {
        int i0 = lo * g->uk->mr, i1 = hi * g->uk->mr < g->m ? hi * g->uk->mr : g->m;
        s.m = i1 - i0;
        s.a = g->a + (size_t)i0 * g->rsa;
        s.c = g->c + (size_t)i0 * g->rsc;
    }
    gemm_serial(&s, t);
}

static void gemm_run(qb_gemm_f32_path path, int threads, int ta, int tb, int m, int n, int k,
                     const float *a, size_t lda, const float *b, size_t ldb, int accumulate,
                     float *c, size_t ldc)
{
    if (m <= 0 || n <= 0) return;
    if (k <= 0) {
        if (!accumulate)
            for (int i = 0; i < m; i++) memset(c + (size_t)i * ldc, 0, (size_t)n * sizeof(float));
        return;
    }
    gemm_args g = {m, n, k, accumulate, a, ta ? 1 : lda, ta ? lda : 1, b, tb ? 1 : ldb,
                   tb ? ldb : 1, c, ldc, 1, NULL, 0};
    choose(&g, path);
    split_ctx ctx = {&g};
    /* Small problems are not worth waking the workers for. */
    if (threads > 1 && (double)m * n * k >= 65536.0)
        qb_threads_run(gemm_part, &ctx);
    else
        gemm_serial(&g, 0);
}

void qb_gemm_f32(int ta, int tb, int m, int n, int k, const float *a, size_t lda,
                 const float *b, size_t ldb, int accumulate, float *c, size_t ldc)
{
    gemm_run(qb_gemm_f32_best(), qb_threads_count(), ta, tb, m, n, k, a, lda, b, ldb, accumulate,
             c, ldc);
}

void qb_gemm_f32_on(qb_gemm_f32_path path, int ta, int tb, int m, int n, int k, const float *a,
                    size_t lda, const float *b, size_t ldb, int accumulate, float *c,
                    size_t ldc)
{
    if (path == QB_GEMM_F32_AUTO) path = qb_gemm_f32_best();
    QB_ASSERT(qb_gemm_f32_supported(path));
    gemm_run(path, 1, ta, tb, m, n, k, a, lda, b, ldb, accumulate, c, ldc);
}
