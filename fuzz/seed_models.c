/* Seed maker for fuzz/corpus/qbm/ and fuzz/corpus/qbq/ (run by
 * fuzz/make_corpus.sh): small models of both architectures with
 * pseudo-random parameters, written by the product's own writers
 * (version 1 for the chains; version 2, with links and the architecture
 * text, for a small residual graph with batch norms declared here)
 * (qb_model_save, qb_qmodel_save; the quantized ones at a few precisions).
 * Usage: seed_models OUTDIR   (writes into OUTDIR/qbm/ and OUTDIR/qbq/) */
#include <stdio.h>

#include "core/arch.h"
#include "core/model.h"
#include "core/model_io.h"
#include "core/rng.h"
#include "quant/precision.h"
#include "quant/qmodel.h"
#include "quant/qmodel_io.h"

int main(int argc, char **argv)
{
    static const char *const precs[] = {"int8", "int4-pc", "int8-linear", "w3a32"};
    /* The smallest inputs each architecture accepts: (1,16,16) for lenet's
     * two conv5+pool stages, (1,4,4) for cnn-small's two pools. */
    static const struct {
        const char *arch;
        int c, h, w, classes;
    } shapes[] = {{"lenet", 1, 16, 16, 2}, {"cnn-small", 1, 4, 4, 3}, {"fuzz-res", 2, 4, 4, 3}};
    static const char fuzz_res[] = "conv 4 k=3 pad=1 bias=0\nbn\nrelu as=a\n"
                                   "conv 4 k=3 pad=1 bias=0\nbn\nadd a\nrelu as=b\n"
                                   "conv 6 k=1 stride=2 bias=0 in=b as=sc\n"
                                   "conv 6 k=3 stride=2 pad=1 in=b\nadd sc\n"
                                   "avgpool\nflatten\nlinear classes\n";
    if (argc != 2) {
        fprintf(stderr, "usage: seed_models OUTDIR\n");
        return 2;
    }
    qb_error err;
    if (qb_arch_declare("fuzz-res", fuzz_res, &err)) goto fail;
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        qb_model m;
        if (qb_model_build(&m, shapes[s].arch, shapes[s].c, shapes[s].h, shapes[s].w,
                           shapes[s].classes, &err))
            goto fail;
        qb_rng rng;
        qb_rng_seed(&rng, 7 + s);
        for (size_t i = 0; i < m.n_params; i++) m.params[i] = 0.1f * qb_rng_normal(&rng);
        char path[1024];
        snprintf(path, sizeof path, "%s/qbm/%s_%dx%dx%d", argv[1], shapes[s].arch, shapes[s].c,
                 shapes[s].h, shapes[s].w);
        if (qb_model_save(&m, path, "{\"seed\": \"fuzz/seed_models.c\"}", &err)) goto fail;
        for (size_t k = 0; s == 0 && k < sizeof precs / sizeof precs[0]; k++) {
            qb_precision prec;
            qb_qmodel qm;
            snprintf(path, sizeof path, "%s/qbq/%s_%s", argv[1], shapes[s].arch, precs[k]);
            if (qb_precision_parse(precs[k], &prec, &err) ||
                qb_qmodel_init(&qm, &m, &prec, 0.0f, 0, &err) || qb_qmodel_save(&qm, path, &err))
                goto fail;
            qb_qmodel_free(&qm);
        }
        qb_model_free(&m);
    }
    return 0;
fail:
    qb_error_print(&err);
    return 1;
}
