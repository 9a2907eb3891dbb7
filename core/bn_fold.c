#include "core/bn_fold.h"

#include <ctype.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arch.h"
#include "core/batchnorm.h"
#include "core/xalloc.h"

int qb_bn_fold_partner(const qb_model *m, int conv)
{
    if (conv < 0 || conv >= m->n_layers || m->layers[conv].kind != QB_LAYER_CONV2D) return -1;
    return qb_model_sole_consumer(m, conv, QB_LAYER_BATCHNORM);
}

int qb_bn_fold_count(const qb_model *m)
{
    int n = 0;
    for (int i = 0; i < m->n_layers; i++) n += qb_bn_fold_partner(m, i) >= 0;
    return n;
}

/* The layer table of the folded model: map filled. */
static void fold_map(const qb_model *m, qb_bn_fold_map *map)
{
    memset(map, 0, sizeof *map);
    map->n_src = m->n_layers;
    int folded_into[QB_MAX_LAYERS]; /* source bn -> source conv, or -1 */
    for (int i = 0; i < m->n_layers; i++) folded_into[i] = -1;
    for (int i = 0; i < m->n_layers; i++) {
        int j = qb_bn_fold_partner(m, i);
        if (j >= 0) folded_into[j] = i;
    }
    int d = 0;
    for (int i = 0; i < m->n_layers; i++) {
        if (folded_into[i] >= 0) {
            /* the folded conv takes the batch norm's place: everything the
             * conv's output reached went through this batch norm, and
             * the layers between them do not read either */
            map->to[i] = d;
            map->to[folded_into[i]] = d;
            map->from[d] = folded_into[i];
            map->bn[d] = i;
            d++;
        } else if (qb_bn_fold_partner(m, i) >= 0) {
            continue; /* placed at its batch norm */
        } else {
            map->to[i] = d;
            map->from[d] = i;
            map->bn[d] = -1;
            d++;
        }
    }
    map->n_dst = d;
}

/* The folded model's node for source node t. */
static int dst_node(const qb_bn_fold_map *map, int t)
{
    return t == 0 ? 0 : map->to[t - 1] + 1;
}

/* linear_classes[k] = 1 if the k-th layer line of `text` is `linear
 * classes` (the layer lines: lines with anything before a '#'). */
static void classes_lines(const char *text, int n_layers, char *linear_classes)
{
    for (int i = 0; i < n_layers; i++) linear_classes[i] = 0;
    int k = 0;
    for (const char *p = text; *p && k < n_layers;) {
        const char *end = strchr(p, '\n');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        const char *hash = memchr(p, '#', len);
        if (hash) len = (size_t)(hash - p);
        /* words of the line */
        const char *w[3];
        size_t wl[3];
        int nw = 0;
        for (size_t i = 0; i < len;) {
            if (isspace((unsigned char)p[i])) {
                i++;
                continue;
            }
            size_t j = i;
            while (j < len && !isspace((unsigned char)p[j])) j++;
            if (!memchr(p + i, '=', j - i) && nw < 3) {
                w[nw] = p + i;
                wl[nw] = j - i;
                nw++;
            }
            i = j;
        }
        int any = 0;
        for (size_t i = 0; i < len; i++) any |= !isspace((unsigned char)p[i]);
        if (any) {
            linear_classes[k] = nw >= 2 && wl[0] == 6 && memcmp(w[0], "linear", 6) == 0 &&
                                wl[1] == 7 && memcmp(w[1], "classes", 7) == 0;
            k++;
        }
        if (!end) break;
        p = end + 1;
    }
}

/* The derived architecture's name. */
static void fold_name(const char *src, const char *text, char *out, size_t cap)
{
    static const char suffix[] = ".bnfold";
    if (strlen(src) + sizeof suffix <= (size_t)QB_ARCH_NAME_MAX) {
        snprintf(out, cap, "%s%s", src, suffix);
        return;
    }
    uint32_t h = 2166136261u; /* FNV-1a */
    for (const char *p = text; *p; p++) h = (h ^ (uint8_t)*p) * 16777619u;
    snprintf(out, cap, "%.14s-%08x%s", src, h, suffix);
}

/* The text of the folded model: one line per folded layer. */
static char *fold_text(const qb_model *m, const qb_bn_fold_map *map, const char *src_text)
{
    char linear_classes[QB_MAX_LAYERS];
    classes_lines(src_text, m->n_layers, linear_classes);
    size_t cap = (size_t)map->n_dst * 96 + 1, len = 0;
    char *t = xmalloc(cap, 1);
    t[0] = '\0';
    for (int d = 0; d < map->n_dst; d++) {
        const int s = map->from[d];
        const qb_layer *l = &m->layers[s];
        char line[128], in[24];
        if (dst_node(map, l->src) == 0)
            snprintf(in, sizeof in, "in=input");
        else
            snprintf(in, sizeof in, "in=n%d", dst_node(map, l->src));
        switch (l->kind) {
        case QB_LAYER_CONV2D:
            snprintf(line, sizeof line, "conv %d k=%d stride=%d pad=%d bias=%d", l->out_c, l->k,
                     l->stride, l->pad, map->bn[d] >= 0 || l->b_len > 0);
            break;
        case QB_LAYER_BATCHNORM: snprintf(line, sizeof line, "bn"); break;
        case QB_LAYER_RELU: snprintf(line, sizeof line, "relu"); break;
        case QB_LAYER_MAXPOOL:
            snprintf(line, sizeof line, "maxpool %d stride=%d", l->k, l->stride);
            break;
        case QB_LAYER_AVGPOOL: snprintf(line, sizeof line, "avgpool"); break;
        case QB_LAYER_FLATTEN: snprintf(line, sizeof line, "flatten"); break;
        case QB_LAYER_LINEAR:
            if (linear_classes[s])
                snprintf(line, sizeof line, "linear classes");
            else
                snprintf(line, sizeof line, "linear %d", l->out_c);
            break;
        case QB_LAYER_ADD:
            if (dst_node(map, l->src2) == 0)
                snprintf(line, sizeof line, "add input");
            else
                snprintf(line, sizeof line, "add n%d", dst_node(map, l->src2));
            break;
        }
        len += (size_t)snprintf(t + len, cap - len, "%s %s as=n%d\n", line, in, d + 1);
        QB_ASSERT(len < cap);
    }
    return t;
}

int qb_bn_fold(const qb_model *m, qb_model *dst, qb_bn_fold_map *map, qb_error *err)
{
    qb_bn_fold_map local;
    if (!map) map = &local;
    if (qb_bn_fold_count(m) == 0) {
        memset(map, 0, sizeof *map);
        map->n_src = map->n_dst = m->n_layers;
        for (int i = 0; i < m->n_layers; i++) {
            map->to[i] = map->from[i] = i;
            map->bn[i] = -1;
        }
        qb_model_copy(dst, m);
        dst->hooks = NULL;
        return 0;
    }
    const char *src_text = qb_arch_text(m->arch);
    if (!src_text)
        return QB_FAIL(err, "batch-norm folding: architecture \"%s\" is not declared", m->arch);
    fold_map(m, map);
    char *text = fold_text(m, map, src_text);
    char name[QB_ARCH_NAME_MAX + 16];
    fold_name(m->arch, src_text, name, sizeof name);
    qb_error e2;
    int rc = qb_arch_declare(name, text, &e2);
    if (rc == 0 && qb_arch_plan_text(dst, name, text, m->in_c, m->in_h, m->in_w, m->classes, NULL,
                                     &e2))
        rc = -1;
    free(text);
    if (rc)
        return QB_FAIL(err, "batch-norm folding of %s: %s", m->arch, e2.msg);
    /* the planned table is the one the map describes */
    QB_ASSERT(dst->n_layers == map->n_dst);
    for (int d = 0; d < map->n_dst; d++) {
        const qb_layer *a = &dst->layers[d], *b = &m->layers[map->from[d]];
        QB_ASSERT(a->kind == b->kind && a->out_c == b->out_c && a->out_h == b->out_h &&
                  a->out_w == b->out_w && a->in_c == b->in_c && a->w_len == b->w_len);
        QB_ASSERT(a->src == dst_node(map, b->src));
        QB_ASSERT(a->src2 == (b->src2 < 0 ? -1 : dst_node(map, b->src2)));
    }
    dst->params = xcalloc(dst->n_params, sizeof(float));
    for (int d = 0; d < map->n_dst; d++) {
        const qb_layer *ld = &dst->layers[d], *ls = &m->layers[map->from[d]];
        float *pd = dst->params;
        const float *ps = m->params;
        if (map->bn[d] < 0) {
            QB_ASSERT(ld->b_len == ls->b_len && ld->s_len == ls->s_len);
            memcpy(pd + ld->w_off, ps + ls->w_off, ls->w_len * sizeof(float));
            memcpy(pd + ld->b_off, ps + ls->b_off, ls->b_len * sizeof(float));
            memcpy(pd + ld->s_off, ps + ls->s_off, ls->s_len * sizeof(float));
            continue;
        }
        const qb_layer *bn = &m->layers[map->bn[d]];
        const int OC = ls->out_c;
        const size_t per = ls->w_len / (size_t)OC;
        float *sa = xmalloc((size_t)OC, 2 * sizeof(float)), *sc = sa + OC;
        qb_bn_eval_affine(OC, ps + bn->w_off, ps + bn->b_off, ps + bn->s_off, sa, sc);
        for (int oc = 0; oc < OC; oc++) {
            const float *w = ps + ls->w_off + (size_t)oc * per;
            float *wd = pd + ld->w_off + (size_t)oc * per;
            for (size_t k = 0; k < per; k++) wd[k] = w[k] * sa[oc];
            float bias = ls->b_len ? sa[oc] * ps[ls->b_off + (size_t)oc] : 0.0f;
            pd[ld->b_off + (size_t)oc] = bias + sc[oc];
        }
        free(sa);
    }
    return 0;
}

void qb_bn_fold_grad(const qb_model *m, const qb_bn_fold_map *map, const qb_model *dst,
                     const float *g_dst, float *g_src)
{
    QB_ASSERT(map->n_src == m->n_layers && map->n_dst == dst->n_layers);
    const float *ps = m->params;
    for (int d = 0; d < map->n_dst; d++) {
        const qb_layer *ld = &dst->layers[d], *ls = &m->layers[map->from[d]];
        if (map->bn[d] < 0) {
            for (size_t k = 0; k < ls->w_len; k++) g_src[ls->w_off + k] += g_dst[ld->w_off + k];
            for (size_t k = 0; k < ls->b_len; k++) g_src[ls->b_off + k] += g_dst[ld->b_off + k];
            continue;
        }
        const qb_layer *bn = &m->layers[map->bn[d]];
        const int OC = ls->out_c;
        const size_t per = ls->w_len / (size_t)OC;
        const float *gamma = ps + bn->w_off, *mean = ps + bn->s_off, *var = mean + OC;
        for (int oc = 0; oc < OC; oc++) {
            const double s = 1.0 / sqrt((double)var[oc] + (double)QB_BN_EPS);
            const float a = (float)(gamma[oc] * s);
            const float *w = ps + ls->w_off + (size_t)oc * per;
            const float *gw = g_dst + ld->w_off + (size_t)oc * per;
            double dot = 0.0;
            for (size_t k = 0; k < per; k++) {
                g_src[ls->w_off + (size_t)oc * per + k] += a * gw[k];
                dot += (double)w[k] * gw[k];
            }
            const float gb = g_dst[ld->b_off + (size_t)oc];
            const double b = ls->b_len ? ps[ls->b_off + (size_t)oc] : 0.0;
            if (ls->b_len) g_src[ls->b_off + (size_t)oc] += a * gb;
            g_src[bn->b_off + (size_t)oc] += gb;
            g_src[bn->w_off + (size_t)oc] += (float)(s * (dot + (b - mean[oc]) * gb));
        }
    }
}
