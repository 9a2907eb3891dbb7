#include "core/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arch.h"
#include "core/rng.h"
#include "core/xalloc.h"

const char *qb_layer_kind_name(qb_layer_kind kind)
{
    switch (kind) {
    case QB_LAYER_CONV2D: return "conv2d";
    case QB_LAYER_MAXPOOL: return "maxpool";
    case QB_LAYER_RELU: return "relu";
    case QB_LAYER_FLATTEN: return "flatten";
    case QB_LAYER_LINEAR: return "linear";
    case QB_LAYER_BATCHNORM: return "batchnorm";
    case QB_LAYER_ADD: return "add";
    case QB_LAYER_AVGPOOL: return "avgpool";
    }
    return "?";
}

int qb_model_plan(qb_model *m, const char *arch, int c, int h, int w, int classes,
                  qb_error *err)
{
    const char *text = qb_arch_text(arch);
    if (!text) {
        memset(m, 0, sizeof *m);
        char list[256] = "";
        for (int i = 0; qb_arch_names[i]; i++) {
            strcat(list, i ? ", " : "");
            strcat(list, qb_arch_names[i]);
        }
        return QB_FAIL(err, "unknown architecture \"%.40s\"; expected one of: %s, or one declared "
                       "in the spec's architectures", arch, list);
    }
    qb_error e2;
    qb_arch_where where;
    if (qb_arch_plan_text(m, arch, text, c, h, w, classes, &where, &e2)) {
        /* an error about one layer is the input's doing: the text planned
         * before, for other inputs; the others name what they are about */
        if (where.line < 0) return QB_FAIL(err, "%s", e2.msg);
        return QB_FAIL(err, "architecture %s does not fit input %dx%dx%d: %s", arch, c, h, w,
                       e2.msg);
    }
    return 0;
}

int qb_model_build(qb_model *m, const char *arch, int c, int h, int w, int classes,
                   qb_error *err)
{
    if (qb_model_plan(m, arch, c, h, w, classes, err)) return -1;
    m->params = xcalloc(m->n_params, sizeof(float));
    return 0;
}

void qb_model_free(qb_model *m)
{
    free(m->params);
    memset(m, 0, sizeof *m);
}

void qb_model_copy(qb_model *dst, const qb_model *src)
{
    *dst = *src;
    dst->params = xmalloc(src->n_params, sizeof(float));
    memcpy(dst->params, src->params, src->n_params * sizeof(float));
}

void qb_model_init_params(qb_model *m, uint64_t seed)
{
    qb_rng rng;
    qb_rng_seed(&rng, qb_seed_derive(seed, "init"));
    for (int i = 0; i < m->n_layers; i++) {
        const qb_layer *l = &m->layers[i];
        float *p = m->params + l->w_off;
        if (l->kind == QB_LAYER_BATCHNORM) {
            for (size_t j = 0; j < l->w_len; j++) p[j] = 1.0f;
            for (size_t j = 0; j < l->b_len; j++) m->params[l->b_off + j] = 0.0f;
            for (size_t j = 0; j < l->s_len; j++)
                m->params[l->s_off + j] = j < l->s_len / 2 ? 0.0f : 1.0f;
            continue;
        }
        if (l->w_len == 0) continue;
        size_t fan_in = l->kind == QB_LAYER_CONV2D ? (size_t)l->in_c * l->k * l->k
                                                   : (size_t)l->in_c;
        float bound = 1.0f / sqrtf((float)fan_in);
        for (size_t j = 0; j < l->w_len + l->b_len; j++)
            p[j] = (2.0f * qb_rng_uniform(&rng) - 1.0f) * bound;
    }
}

int qb_model_penultimate_layer(const qb_model *m)
{
    for (int i = m->n_layers - 1; i >= 0; i--) {
        const qb_layer *l = &m->layers[i];
        if (l->kind != QB_LAYER_LINEAR) continue;
        int node = l->src;
        /* a flatten only renames its input */
        while (node > 0 && m->layers[node - 1].kind == QB_LAYER_FLATTEN)
            node = m->layers[node - 1].src;
        return node - 1;
    }
    return m->n_layers - 2;
}

int qb_model_has_graph_layers(const qb_model *m)
{
    for (int i = 0; i < m->n_layers; i++)
        if (m->layers[i].kind == QB_LAYER_BATCHNORM || m->layers[i].kind == QB_LAYER_ADD)
            return 1;
    return 0;
}

int qb_model_sole_consumer(const qb_model *m, int layer, qb_layer_kind kind)
{
    int node = layer + 1, found = -1, n = 0;
    for (int i = layer + 1; i < m->n_layers; i++) {
        const qb_layer *l = &m->layers[i];
        if (l->src == node) n++, found = i;
        if (l->src2 == node) n++, found = i;
    }
    return n == 1 && m->layers[found].kind == kind ? found : -1;
}
