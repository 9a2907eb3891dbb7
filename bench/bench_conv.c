/* One convolution layer's training and inference cost, fast paths against
 * the generic path (core/conv2d.h), one thread: forward, and forward plus
 * backward (dw, db, dx), over a batch, with or without the im2col cache.
 * Prints one line per variant:
 *   conv C HxW -> OC k S P  b B  <variant>  fwd <ms> fwd+bwd <ms>
 * usage: bench_conv [--shape C,H,W,OC,K,S,P] [--batch B] [--reps N]
 * Default: the 64-channel 32x32 3x3 layer of preact-resnet18's first stage.
 * Times are this thread's CPU time (CLOCK_THREAD_CPUTIME_ID), best of the
 * repetitions: on a shared machine preemption then costs nothing. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/conv2d.h"
#include "core/rng.h"
#include "core/xalloc.h"

/* Seconds of this thread's CPU time. */
static double cpu_now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

static double run(const qb_layer *l, int b, int reps, int backward, float *cache, const float *x,
                  const float *w, const float *bias, float *y, const float *dy, float *dw,
                  float *db, float *dx, float *work)
{
    qb_conv_epilogue ep = {0, NULL, cache};
    double best = 1e30;
    for (int r = 0; r < reps; r++) {
        double t0 = cpu_now();
        qb_conv2d_forward_ex(l, &ep, b, x, w, bias, y, NULL, work);
        if (backward) qb_conv2d_backward_ex(l, &ep, b, x, w, y, NULL, dy, dw, db, dx, work);
        double t = cpu_now() - t0;
        if (t < best) best = t;
    }
    return best * 1e3;
}

int main(int argc, char **argv)
{
    int c = 64, h = 32, wd = 32, oc = 64, k = 3, s = 1, p = 1, b = 128, reps = 3;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--shape") &&
            sscanf(argv[i + 1], "%d,%d,%d,%d,%d,%d,%d", &c, &h, &wd, &oc, &k, &s, &p) == 7)
            continue;
        if (!strcmp(argv[i], "--batch")) b = atoi(argv[i + 1]);
        else if (!strcmp(argv[i], "--reps")) reps = atoi(argv[i + 1]);
        else {
            fprintf(stderr, "usage: bench_conv [--shape C,H,W,OC,K,S,P] [--batch B] [--reps N]\n");
            return 2;
        }
    }
    if (b < 1 || reps < 1 || k < 1 || s < 1 || h + 2 * p < k || wd + 2 * p < k) {
        fprintf(stderr, "bench_conv: bad shape or batch\n");
        return 2;
    }
    qb_layer l;
    memset(&l, 0, sizeof l);
    l.kind = QB_LAYER_CONV2D;
    l.in_c = c, l.in_h = h, l.in_w = wd, l.out_c = oc, l.k = k, l.stride = s, l.pad = p;
    l.out_h = (h + 2 * p - k) / s + 1;
    l.out_w = (wd + 2 * p - k) / s + 1;
    l.w_len = (size_t)oc * c * k * k;
    l.b_off = l.w_len;
    l.b_len = (size_t)oc;
    size_t nx = (size_t)b * qb_layer_in_size(&l), ny = (size_t)b * qb_layer_out_size(&l);
    float *x = xaligned(nx, sizeof(float)), *dx = xaligned(nx, sizeof(float));
    float *y = xaligned(ny, sizeof(float)), *dy = xaligned(ny, sizeof(float));
    float *w = xaligned(l.w_len, sizeof(float)), *dw = xaligned(l.w_len, sizeof(float));
    float *bias = xaligned(l.b_len, sizeof(float)), *db = xaligned(l.b_len, sizeof(float));
    float *work = xaligned(qb_conv2d_work_size(&l, b), sizeof(float));
    float *cache = xaligned(qb_conv2d_col_size(&l, b), sizeof(float));
    qb_rng rng;
    qb_rng_seed(&rng, 1);
    for (size_t i = 0; i < nx; i++) x[i] = qb_rng_uniform(&rng) - 0.5f;
    for (size_t i = 0; i < ny; i++) dy[i] = qb_rng_uniform(&rng) - 0.5f;
    for (size_t i = 0; i < l.w_len; i++) w[i] = qb_rng_uniform(&rng) - 0.5f;
    for (size_t i = 0; i < l.b_len; i++) bias[i] = 0.1f, db[i] = 0.0f;
    memset(dw, 0, l.w_len * sizeof(float));
    memset(cache, 0, qb_conv2d_col_size(&l, b) * sizeof(float)); /* pages touched */
    printf("# conv %d %dx%d -> %d k%d s%d p%d, batch %d, best of %d; cache worth %d\n", c, h, wd,
           oc, k, s, p, b, reps, qb_conv2d_col_cache_worth(&l, b));
    for (int generic = 1; generic >= 0; generic--)
        for (int cached = 0; cached < 2; cached++) {
            qb_conv2d_set_generic(generic);
            float *cc = cached ? cache : NULL;
            double f = run(&l, b, reps, 0, cc, x, w, bias, y, dy, dw, db, dx, work);
            double fb = run(&l, b, reps, 1, cc, x, w, bias, y, dy, dw, db, dx, work);
            printf("%-8s %-8s fwd %8.2f ms   fwd+bwd %8.2f ms\n", generic ? "generic" : "fast",
                   cached ? "cache" : "no-cache", f, fb);
        }
    /* the data movement alone, one image (what a chunk of a large layer
     * holds), generic vs fast: best of reps*20 */
    for (int generic = 1; generic >= 0; generic--) {
        qb_conv2d_set_generic(generic);
        double bi = 1e30, bc = 1e30;
        for (int r = 0; r < reps * 20; r++) {
            double t0 = cpu_now();
            qb_im2col(&l, 1, x, cache);
            double t1 = cpu_now();
            qb_col2im(&l, 1, cache, dx);
            double t2 = cpu_now();
            if (t1 - t0 < bi) bi = t1 - t0;
            if (t2 - t1 < bc) bc = t2 - t1;
        }
        printf("%-8s one image: im2col %8.1f us   col2im %8.1f us\n", generic ? "generic" : "fast",
               bi * 1e6, bc * 1e6);
    }
    free(x), free(dx), free(y), free(dy), free(w), free(dw), free(bias), free(db), free(work),
        free(cache);
    return 0;
}
