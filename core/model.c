#include "core/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/conv2d.h"
#include "core/simd.h"
#include "core/linear.h"
#include "core/maxpool.h"
#include "core/relu.h"
#include "core/rng.h"
#include "core/xalloc.h"

const char *const qb_arch_names[] = {"lenet", "cnn-small", NULL};

const char *qb_layer_kind_name(qb_layer_kind kind)
{
    switch (kind) {
    case QB_LAYER_CONV2D: return "conv2d";
    case QB_LAYER_MAXPOOL: return "maxpool";
    case QB_LAYER_RELU: return "relu";
    case QB_LAYER_FLATTEN: return "flatten";
    case QB_LAYER_LINEAR: return "linear";
    }
    return "?";
}

/* ---- building ------------------------------------------------------------ */

typedef struct builder {
    qb_model *m;
    int c, h, w; /* current activation shape */
    qb_error *err;
    int failed;
} builder;

static qb_layer *push(builder *b, qb_layer_kind kind)
{
    if (b->failed) return NULL;
    if (b->m->n_layers >= QB_MAX_LAYERS) {
        b->failed = 1;
        QB_FAIL(b->err, "architecture %s has more than %d layers", b->m->arch, QB_MAX_LAYERS);
        return NULL;
    }
    qb_layer *l = &b->m->layers[b->m->n_layers++];
    memset(l, 0, sizeof *l);
    l->kind = kind;
    l->in_c = b->c;
    l->in_h = b->h;
    l->in_w = b->w;
    return l;
}

static void finish(builder *b, qb_layer *l)
{
    if (l->out_h < 1 || l->out_w < 1) {
        b->failed = 1;
        QB_FAIL(b->err,
                "architecture %s does not fit input %dx%dx%d: layer %d (%s) has no output",
                b->m->arch, b->m->in_c, b->m->in_h, b->m->in_w, b->m->n_layers - 1,
                qb_layer_kind_name(l->kind));
        return;
    }
    b->c = l->out_c;
    b->h = l->out_h;
    b->w = l->out_w;
}

static void add_params(builder *b, qb_layer *l, size_t w_len, size_t b_len)
{
    l->w_off = b->m->n_params;
    l->w_len = w_len;
    l->b_off = l->w_off + w_len;
    l->b_len = b_len;
    b->m->n_params = l->b_off + b_len;
}

static void conv(builder *b, int oc, int k, int stride, int pad)
{
    qb_layer *l = push(b, QB_LAYER_CONV2D);
    if (!l) return;
    l->k = k;
    l->stride = stride;
    l->pad = pad;
    l->out_c = oc;
    l->out_h = (b->h + 2 * pad - k) / stride + 1;
    l->out_w = (b->w + 2 * pad - k) / stride + 1;
    if (b->h + 2 * pad < k || b->w + 2 * pad < k) l->out_h = l->out_w = 0;
    add_params(b, l, (size_t)oc * b->c * k * k, (size_t)oc);
    finish(b, l);
}

static void pool(builder *b, int k)
{
    qb_layer *l = push(b, QB_LAYER_MAXPOOL);
    if (!l) return;
    l->k = k;
    l->stride = k;
    l->out_c = b->c;
    l->out_h = b->h / k;
    l->out_w = b->w / k;
    finish(b, l);
}

static void relu(builder *b)
{
    qb_layer *l = push(b, QB_LAYER_RELU);
    if (!l) return;
    l->out_c = b->c;
    l->out_h = b->h;
    l->out_w = b->w;
    finish(b, l);
}

static void flatten(builder *b)
{
    qb_layer *l = push(b, QB_LAYER_FLATTEN);
    if (!l) return;
    l->out_c = b->c * b->h * b->w;
    l->out_h = l->out_w = 1;
    finish(b, l);
}

static void linear(builder *b, int out)
{
    qb_layer *l = push(b, QB_LAYER_LINEAR);
    if (!l) return;
    int in = b->c * b->h * b->w;
    l->in_c = in;
    l->in_h = l->in_w = 1;
    l->out_c = out;
    l->out_h = l->out_w = 1;
    add_params(b, l, (size_t)out * in, (size_t)out);
    finish(b, l);
}

int qb_model_plan(qb_model *m, const char *arch, int c, int h, int w, int classes,
                  qb_error *err)
{
    memset(m, 0, sizeof *m);
    if (c < 1 || h < 1 || w < 1 || classes < 2 || classes > 256)
        return QB_FAIL(err, "invalid model input %dx%dx%d with %d classes", c, h, w, classes);
    if (strlen(arch) >= sizeof m->arch)
        return QB_FAIL(err, "unknown architecture \"%.40s...\"", arch);
    snprintf(m->arch, sizeof m->arch, "%s", arch);
    m->in_c = c;
    m->in_h = h;
    m->in_w = w;
    m->classes = classes;
    builder b = {m, c, h, w, err, 0};
    if (strcmp(arch, "lenet") == 0) {
        /* (1,28,28) -> conv5 (16,24,24) -> pool (16,12,12) -> conv5 (32,8,8)
         * -> pool (32,4,4) -> 512 -> 128 -> classes */
        conv(&b, 16, 5, 1, 0); relu(&b); pool(&b, 2);
        conv(&b, 32, 5, 1, 0); relu(&b); pool(&b, 2);
        flatten(&b); linear(&b, 128); relu(&b); linear(&b, classes);
    } else if (strcmp(arch, "cnn-small") == 0) {
        /* VGG-like, (3,32,32): [conv3 32, conv3 32, pool] (32,16,16),
         * [conv3 64, conv3 64, pool] (64,8,8) -> 4096 -> 256 -> classes */
        conv(&b, 32, 3, 1, 1); relu(&b); conv(&b, 32, 3, 1, 1); relu(&b); pool(&b, 2);
        conv(&b, 64, 3, 1, 1); relu(&b); conv(&b, 64, 3, 1, 1); relu(&b); pool(&b, 2);
        flatten(&b); linear(&b, 256); relu(&b); linear(&b, classes);
    } else {
        memset(m, 0, sizeof *m);
        return QB_FAIL(err, "unknown architecture \"%s\"; expected one of: lenet, cnn-small",
                       arch);
    }
    if (b.failed) {
        memset(m, 0, sizeof *m);
        return -1;
    }
    for (int i = 0; i < m->n_layers; i++)
        if (qb_layer_in_size(&m->layers[i]) > QB_MAX_ACTIVATION ||
            qb_layer_out_size(&m->layers[i]) > QB_MAX_ACTIVATION) {
            memset(m, 0, sizeof *m);
            return QB_FAIL(err, "architecture %s on %dx%dx%d inputs: layer %d activations exceed %zu floats per sample",
                           arch, c, h, w, i, QB_MAX_ACTIVATION);
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
        if (l->w_len == 0) continue;
        size_t fan_in = l->kind == QB_LAYER_CONV2D ? (size_t)l->in_c * l->k * l->k
                                                   : (size_t)l->in_c;
        float bound = 1.0f / sqrtf((float)fan_in);
        float *p = m->params + l->w_off;
        for (size_t j = 0; j < l->w_len + l->b_len; j++)
            p[j] = (2.0f * qb_rng_uniform(&rng) - 1.0f) * bound;
    }
}

int qb_model_penultimate_layer(const qb_model *m)
{
    for (int i = m->n_layers - 1; i >= 0; i--)
        if (m->layers[i].kind == QB_LAYER_LINEAR) return i - 1;
    return m->n_layers - 2;
}

/* ---- workspace ----------------------------------------------------------- */

void qb_model_ws_init(qb_model_ws *ws, const qb_model *m, int max_batch)
{
    memset(ws, 0, sizeof *ws);
    ws->max_batch = max_batch;
    size_t work = 0, act_max = qb_layer_in_size(&m->layers[0]);
    for (int i = 0; i < m->n_layers; i++) {
        const qb_layer *l = &m->layers[i];
        size_t out = qb_layer_out_size(l);
        if (out > act_max) act_max = out;
        if (l->kind != QB_LAYER_FLATTEN)
            ws->act[i + 1] = ws->owned[i + 1] = xaligned((size_t)max_batch * out, sizeof(float));
        if (l->kind == QB_LAYER_MAXPOOL)
            ws->argmax[i] = xmalloc((size_t)max_batch * out, sizeof(int32_t));
        if ((l->kind == QB_LAYER_CONV2D || l->kind == QB_LAYER_LINEAR) && m->hooks &&
            m->hooks->input)
            ws->hook_in[i] = xaligned((size_t)max_batch * qb_layer_in_size(l), sizeof(float));
        if (l->kind == QB_LAYER_CONV2D) {
            size_t s = qb_conv2d_work_size(l, max_batch);
            if (s > work) work = s;
        }
    }
    ws->act_max = act_max;
    ws->grad_a = xaligned((size_t)max_batch * act_max, sizeof(float));
    ws->grad_b = xaligned((size_t)max_batch * act_max, sizeof(float));
    ws->work = xaligned(work ? work : 1, sizeof(float));
}

void qb_model_ws_free(qb_model_ws *ws)
{
    for (int i = 0; i < QB_MAX_LAYERS; i++) {
        free(ws->owned[i + 1]);
        free(ws->argmax[i]);
        free(ws->col_cache[i]);
        free(ws->hook_in[i]);
    }
    free(ws->grad_a);
    free(ws->grad_b);
    free(ws->work);
    memset(ws, 0, sizeof *ws);
}

void qb_model_ws_set_fused(qb_model_ws *ws, int fused) { ws->unfused = !fused; }

/* ---- forward / backward -------------------------------------------------- */

/* How many layers starting at conv layer i run as one block, and with
 * which epilogue: conv (1), conv+relu (2), conv+relu+maxpool 2x2/2 (3). */
static int conv_block(const qb_model *m, const qb_model_ws *ws, int i, qb_conv_epilogue *ep)
{
    ep->relu = 0;
    ep->pool = NULL;
    ep->col_cache = ws->col_cache[i];
    if (ws->unfused) return 1;
    if (i + 1 >= m->n_layers || m->layers[i + 1].kind != QB_LAYER_RELU) return 1;
    ep->relu = 1;
    const qb_layer *p = i + 2 < m->n_layers ? &m->layers[i + 2] : NULL;
    if (p && p->kind == QB_LAYER_MAXPOOL && p->k == 2 && p->stride == 2) {
        ep->pool = p;
        return 3;
    }
    return 2;
}

/* The input conv/linear layer i runs on: x, or the input hook's transform
 * of it. Recorded for the backward pass. */
static const float *layer_input(const qb_model *m, qb_model_ws *ws, int i, int b, const float *x)
{
    if (m->hooks && m->hooks->input) x = m->hooks->input(m->hooks->ctx, m, i, b, x, ws->hook_in[i]);
    ws->layer_in[i] = x;
    return x;
}

const float *qb_model_forward(const qb_model *m, qb_model_ws *ws, const float *x, int b,
                              int training)
{
    QB_ASSERT(b >= 1 && b <= ws->max_batch);
    const float *in = x;
    ws->act[0] = (float *)x;
    for (int i = 0; i < m->n_layers; i++) {
        const qb_layer *l = &m->layers[i];
        float *out = ws->act[i + 1];
        const float *p = m->params;
        switch (l->kind) {
        case QB_LAYER_CONV2D: {
            qb_conv_epilogue ep;
            int span = conv_block(m, ws, i, &ep);
            out = ws->act[i + span];
            if (!training && m->hooks && m->hooks->run &&
                m->hooks->run(m->hooks->ctx, m, i, &ep, b, in, out)) {
                ws->layer_in[i] = in;
                i += span - 1;
                break;
            }
            in = layer_input(m, ws, i, b, in);
            if (!training) {
                ep.col_cache = NULL;
            } else if (!ep.col_cache) {
                /* allocated on the first training pass: inference never needs it */
                ws->col_cache[i] = xaligned(qb_conv2d_col_size(l, ws->max_batch), sizeof(float));
                ep.col_cache = ws->col_cache[i];
            }
            qb_conv2d_forward_ex(l, &ep, b, in, p + l->w_off, p + l->b_off, out,
                                 ep.pool && training ? ws->argmax[i + 2] : NULL, ws->work);
            i += span - 1;
            break;
        }
        case QB_LAYER_MAXPOOL:
            qb_maxpool_forward(l, b, in, out, training ? ws->argmax[i] : NULL);
            break;
        case QB_LAYER_RELU:
            qb_relu_forward((size_t)b * qb_layer_out_size(l), in, out);
            break;
        case QB_LAYER_FLATTEN:
            out = (float *)in;
            ws->act[i + 1] = out;
            break;
        case QB_LAYER_LINEAR:
            if (!training && m->hooks && m->hooks->run &&
                m->hooks->run(m->hooks->ctx, m, i, NULL, b, in, out)) {
                ws->layer_in[i] = in;
                break;
            }
            in = layer_input(m, ws, i, b, in);
            qb_linear_forward(b, l->in_c, l->out_c, in, p + l->w_off, p + l->b_off, out);
            break;
        }
        in = out;
    }
    return in;
}

void qb_model_backward(const qb_model *m, qb_model_ws *ws, const float *dlogits, int b,
                       float *grads, float *dx)
{
    QB_ASSERT(b >= 1 && b <= ws->max_batch);
    /* Walk the layers forwards once to find the fused blocks, then go
     * backwards over block boundaries. */
    int start_of[QB_MAX_LAYERS];
    for (int i = 0; i < m->n_layers; i++) {
        start_of[i] = i;
        if (m->layers[i].kind == QB_LAYER_CONV2D) {
            qb_conv_epilogue ep;
            int span = conv_block(m, ws, i, &ep);
            for (int j = 1; j < span; j++) start_of[i + j] = i;
            i += span - 1;
        }
    }
    const float *dy = dlogits;
    float *bufs[2] = {ws->grad_a, ws->grad_b};
    int flip = 0;
    for (int last = m->n_layers - 1; last >= 0;) {
        int i = start_of[last];
        const qb_layer *l = &m->layers[i];
        /* conv/linear: the input the layer actually used (after any input hook) */
        const float *x = ws->layer_in[i] ? ws->layer_in[i] : ws->act[i];
        /* The first layer writes straight into the caller's dx (or skips
         * the input gradient entirely: nothing upstream needs it). */
        float *out = i == 0 ? dx : bufs[flip];
        const float *p = m->params;
        switch (l->kind) {
        case QB_LAYER_CONV2D: {
            qb_conv_epilogue ep;
            conv_block(m, ws, i, &ep);
            qb_conv2d_backward_ex(l, &ep, b, x, p + l->w_off, ws->act[last + 1],
                                  ep.pool ? ws->argmax[i + 2] : NULL, dy,
                                  grads ? grads + l->w_off : NULL,
                                  grads ? grads + l->b_off : NULL, out, ws->work);
            break;
        }
        case QB_LAYER_MAXPOOL:
            if (out) qb_maxpool_backward(l, b, dy, ws->argmax[i], out);
            break;
        case QB_LAYER_RELU:
            if (out) qb_relu_backward((size_t)b * qb_layer_out_size(l), ws->act[i + 1], dy, out);
            break;
        case QB_LAYER_FLATTEN:
            /* NCHW flattens in place: the gradient passes through unchanged */
            if (i == 0 && dx) memcpy(dx, dy, sizeof(float) * (size_t)b * qb_layer_in_size(l));
            last = i - 1;
            continue;
        case QB_LAYER_LINEAR:
            qb_linear_backward(b, l->in_c, l->out_c, x, p + l->w_off, dy,
                               grads ? grads + l->w_off : NULL, grads ? grads + l->b_off : NULL,
                               out);
            break;
        }
        dy = out;
        flip ^= 1;
        last = i - 1;
    }
}
