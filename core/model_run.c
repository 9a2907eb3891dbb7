/* Running a model: the workspace, the forward pass over the layer graph
 * and the backward pass back over it (core/model.h). */
#include "core/model.h"

#include <stdlib.h>
#include <string.h>

#include "core/avgpool.h"
#include "core/batchnorm.h"
#include "core/conv2d.h"
#include "core/linear.h"
#include "core/maxpool.h"
#include "core/relu.h"
#include "core/xalloc.h"

#define QB_GSLOTS ((int)(sizeof ((qb_model_ws *)0)->gslot / sizeof(float *)))
#define QB_POOL ((int)(sizeof ((qb_model_ws *)0)->pool / sizeof(float *)))
/* im2col kept from a training forward for its backward pass, per
 * workspace: 64M floats (256 MB); layers beyond it recompute. */
#define QB_COL_CACHE_FLOATS ((size_t)64 << 20)

static size_t node_size(const qb_model *m, int node)
{
    return node == 0 ? (size_t)m->in_c * m->in_h * m->in_w
                     : qb_layer_out_size(&m->layers[node - 1]);
}

void qb_model_ws_init(qb_model_ws *ws, const qb_model *m, int max_batch)
{
    memset(ws, 0, sizeof *ws);
    ws->max_batch = max_batch;
    size_t work = 0, act_max = node_size(m, 0);
    for (int i = 0; i < m->n_layers; i++) {
        const qb_layer *l = &m->layers[i];
        size_t out = qb_layer_out_size(l);
        if (out > act_max) act_max = out;
        ws->uses[l->src]++;
        if (l->src2 >= 0) ws->uses[l->src2]++;
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
    ws->col_budget = QB_COL_CACHE_FLOATS;
    ws->work = xaligned(work ? work : 1, sizeof(float));
}

void qb_model_ws_free(qb_model_ws *ws)
{
    for (int i = 0; i < QB_MAX_LAYERS; i++) {
        free(ws->owned[i + 1]);
        free(ws->argmax[i]);
        free(ws->col_cache[i]);
        free(ws->hook_in[i]);
        free(ws->bn_stat[i]);
        free(ws->bn_var[i]);
    }
    for (int i = 0; i < QB_GSLOTS; i++) free(ws->gslot[i]);
    for (int i = 0; i < QB_POOL; i++) free(ws->pool[i]);
    free(ws->work);
    memset(ws, 0, sizeof *ws);
}

void qb_model_ws_set_fused(qb_model_ws *ws, int fused) { ws->unfused = !fused; }

void qb_model_ws_set_bn_training(qb_model_ws *ws, int on) { ws->bn_training = on; }

void qb_model_ws_set_recycling(qb_model_ws *ws, int on) { ws->no_recycling = !on; }

/* ---- recycled buffers (fused inference) ----------------------------------- */

static void pool_reset(const qb_model *m, qb_model_ws *ws)
{
    for (int k = 0; k < QB_POOL; k++) ws->pool_ref[k] = 0;
    for (int n = 0; n <= m->n_layers; n++) {
        ws->pool_of[n] = -1;
        ws->left[n] = ws->uses[n];
    }
}

static float *pool_take(qb_model_ws *ws, int node)
{
    for (int k = 0; k < QB_POOL; k++)
        if (ws->pool_ref[k] == 0) {
            if (!ws->pool[k])
                ws->pool[k] = xaligned((size_t)ws->max_batch * ws->act_max, sizeof(float));
            ws->pool_ref[k] = 1;
            ws->pool_of[node] = k;
            ws->act[node] = ws->pool[k];
            return ws->pool[k];
        }
    QB_ASSERT(!"more live activations than recycled buffers");
    return NULL;
}

/* Node `to` shares node `from`'s buffer (flatten, an in-place ReLU). */
static void pool_share(qb_model_ws *ws, int from, int to)
{
    ws->act[to] = ws->act[from];
    ws->pool_of[to] = ws->pool_of[from];
    if (ws->pool_of[to] >= 0) ws->pool_ref[ws->pool_of[to]]++;
}

/* After the step that starts at layer i: its inputs lose a consumer. */
static void pool_step_done(const qb_model *m, qb_model_ws *ws, int i)
{
    const int in[2] = {m->layers[i].src, m->layers[i].src2};
    for (int j = 0; j < 2; j++) {
        int n = in[j];
        if (n < 0 || --ws->left[n] > 0 || n == 0 || ws->pool_of[n] < 0) continue;
        ws->pool_ref[ws->pool_of[n]]--;
        ws->pool_of[n] = -1;
    }
}

/* The buffer of node `node` (allocated on its first use). */
static float *node_buf(const qb_model *m, qb_model_ws *ws, int node)
{
    if (ws->recycling) return pool_take(ws, node);
    if (!ws->owned[node])
        ws->owned[node] = xaligned((size_t)ws->max_batch * node_size(m, node), sizeof(float));
    ws->act[node] = ws->owned[node];
    return ws->owned[node];
}

/* How many layers starting at conv layer i run as one block, and with
 * which epilogue: conv (1), conv+relu (2), conv+relu+maxpool 2x2/2 (3).
 * A layer joins the block only if it is the sole consumer of the one
 * before (the block's inner activations are not materialised). */
static int conv_block(const qb_model *m, const qb_model_ws *ws, int i, qb_conv_epilogue *ep)
{
    ep->relu = 0;
    ep->pool = NULL;
    ep->col_cache = ws->col_cache[i];
    if (ws->unfused) return 1;
    if (i + 1 >= m->n_layers || m->layers[i + 1].kind != QB_LAYER_RELU ||
        m->layers[i + 1].src != i + 1 || ws->uses[i + 1] != 1)
        return 1;
    ep->relu = 1;
    const qb_layer *p = i + 2 < m->n_layers ? &m->layers[i + 2] : NULL;
    if (p && p->kind == QB_LAYER_MAXPOOL && p->k == 2 && p->stride == 2 && p->src == i + 2 &&
        ws->uses[i + 2] == 1) {
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

/* A ReLU overwrites its input when nothing else reads it and its producer's
 * backward pass does not need its own output (batch norm and addition
 * need only their inputs): one activation less per bn-relu pair. Not in
 * an unfused workspace, whose callers inspect every activation. */
static float *relu_out(const qb_model *m, qb_model_ws *ws, int i)
{
    const int s = m->layers[i].src;
    if (ws->recycling && s > 0 && ws->uses[s] == 1 && ws->pool_of[s] >= 0) {
        pool_share(ws, s, i + 1); /* inference: no backward pass needs s */
        return ws->act[i + 1];
    }
    if (!ws->unfused && s > 0 && ws->uses[s] == 1 && ws->owned[s] && !ws->owned[i + 1] &&
        (m->layers[s - 1].kind == QB_LAYER_BATCHNORM || m->layers[s - 1].kind == QB_LAYER_ADD)) {
        ws->act[i + 1] = ws->owned[s];
        return ws->owned[s];
    }
    return node_buf(m, ws, i + 1);
}

static const float *conv_bias(const qb_model *m, const qb_layer *l)
{
    return l->b_len ? m->params + l->b_off : NULL;
}

/* Forward of a conv block starting at layer i; returns its span. */
static int forward_conv(const qb_model *m, qb_model_ws *ws, int i, int b, const float *in,
                        int training)
{
    const qb_layer *l = &m->layers[i];
    qb_conv_epilogue ep;
    int span = conv_block(m, ws, i, &ep);
    float *out = node_buf(m, ws, i + span);
    if (!training && m->hooks && m->hooks->run &&
        m->hooks->run(m->hooks->ctx, m, i, &ep, b, in, out)) {
        ws->layer_in[i] = in;
        return span;
    }
    in = layer_input(m, ws, i, b, in);
    if (!training) {
        ep.col_cache = NULL;
    } else if (!ep.col_cache) {
        /* allocated on the first training pass while the budget lasts:
         * inference never needs it */
        size_t need = qb_conv2d_col_size(l, ws->max_batch);
        if (qb_conv2d_col_cache_worth(l, ws->max_batch) && need <= ws->col_budget) {
            ws->col_budget -= need;
            ws->col_cache[i] = xaligned(need, sizeof(float));
            ep.col_cache = ws->col_cache[i];
        }
    }
    qb_conv2d_forward_ex(l, &ep, b, in, m->params + l->w_off, conv_bias(m, l), out,
                         ep.pool && training ? ws->argmax[i + 2] : NULL, ws->work);
    return span;
}

const float *qb_model_forward(const qb_model *m, qb_model_ws *ws, const float *x, int b,
                              int training)
{
    QB_ASSERT(b >= 1 && b <= ws->max_batch);
    ws->act[0] = (float *)x;
    ws->recycling = !training && !ws->unfused && !ws->no_recycling;
    if (ws->recycling) pool_reset(m, ws);
    const float *p = m->params;
    for (int i = 0; i < m->n_layers; i++) {
        const qb_layer *l = &m->layers[i];
        const int first = i;
        const float *in = ws->act[l->src];
        ws->layer_in[i] = NULL;
        size_t n_out = (size_t)b * qb_layer_out_size(l);
        switch (l->kind) {
        case QB_LAYER_CONV2D:
            i += forward_conv(m, ws, i, b, in, training) - 1;
            break;
        case QB_LAYER_MAXPOOL:
            qb_maxpool_forward(l, b, in, node_buf(m, ws, i + 1), training ? ws->argmax[i] : NULL);
            break;
        case QB_LAYER_RELU:
            qb_relu_forward(n_out, in, relu_out(m, ws, i));
            break;
        case QB_LAYER_FLATTEN:
            if (ws->recycling) pool_share(ws, l->src, i + 1);
            ws->act[i + 1] = (float *)in;
            break;
        case QB_LAYER_LINEAR: {
            float *out = node_buf(m, ws, i + 1);
            if (!training && m->hooks && m->hooks->run &&
                m->hooks->run(m->hooks->ctx, m, i, NULL, b, in, out)) {
                ws->layer_in[i] = in;
                break;
            }
            in = layer_input(m, ws, i, b, in);
            qb_linear_forward(b, l->in_c, l->out_c, in, p + l->w_off, p + l->b_off, out);
            break;
        }
        case QB_LAYER_BATCHNORM: {
            int hw = l->in_h * l->in_w;
            float *out = node_buf(m, ws, i + 1);
            if (training && ws->bn_training) {
                if (!ws->bn_stat[i]) {
                    ws->bn_stat[i] = xmalloc(2 * (size_t)l->in_c, sizeof(float));
                    ws->bn_var[i] = xmalloc((size_t)l->in_c, sizeof(float));
                }
                qb_bn_forward_train(b, l->in_c, hw, in, p + l->w_off, p + l->b_off, out,
                                    ws->bn_stat[i], ws->bn_var[i]);
            } else {
                qb_bn_forward_eval(b, l->in_c, hw, in, p + l->w_off, p + l->b_off,
                                   p + l->s_off, out);
            }
            break;
        }
        case QB_LAYER_ADD: {
            const float *in2 = ws->act[l->src2];
            float *out = node_buf(m, ws, i + 1);
            for (size_t j = 0; j < n_out; j++) out[j] = in[j] + in2[j];
            break;
        }
        case QB_LAYER_AVGPOOL:
            qb_avgpool_forward(b, l->in_c, l->in_h * l->in_w, in, node_buf(m, ws, i + 1));
            break;
        }
        if (ws->recycling) pool_step_done(m, ws, first);
    }
    ws->trained_bn = training && ws->bn_training;
    return ws->act[m->n_layers];
}

void qb_model_bn_update(qb_model *m, const qb_model_ws *ws)
{
    if (!ws->trained_bn) return;
    for (int i = 0; i < m->n_layers; i++) {
        const qb_layer *l = &m->layers[i];
        if (l->kind != QB_LAYER_BATCHNORM || !ws->bn_stat[i]) continue;
        qb_bn_running_update(l->in_c, ws->bn_stat[i], ws->bn_var[i], QB_BN_MOMENTUM,
                             m->params + l->s_off);
    }
}

/* ---- backward ------------------------------------------------------------ */

/* Gradient buffers by liveness: a node's gradient lives from its last
 * consumer's backward step (the first to run) to its producer's. */
typedef struct grads {
    qb_model_ws *ws;
    float *of[QB_MAX_LAYERS + 1]; /* node -> its gradient buffer, or NULL */
    int busy[QB_GSLOTS];
} grads;

static float *slot_take(grads *g)
{
    for (int k = 0; k < QB_GSLOTS; k++)
        if (!g->busy[k]) {
            g->busy[k] = 1;
            if (!g->ws->gslot[k])
                g->ws->gslot[k] =
                    xaligned((size_t)g->ws->max_batch * g->ws->act_max, sizeof(float));
            return g->ws->gslot[k];
        }
    QB_ASSERT(!"more live activation gradients than slots");
    return NULL;
}

static void slot_give(grads *g, float *buf)
{
    for (int k = 0; k < QB_GSLOTS; k++)
        if (g->ws->gslot[k] == buf) g->busy[k] = 0;
}

/* Where a step writes the gradient of its input node s (n floats): NULL
 * if nobody needs it; *acc = 1 if the caller must add the result (written
 * to a temporary) into the existing gradient instead. */
static float *grad_dest(grads *g, int s, float *dx, int *acc)
{
    *acc = 0;
    if (s == 0) {
        if (!dx) return NULL;
        if (g->of[0]) {
            *acc = 1;
            return slot_take(g);
        }
        g->of[0] = dx;
        return dx;
    }
    if (g->of[s]) {
        *acc = 1;
        return slot_take(g);
    }
    g->of[s] = slot_take(g);
    return g->of[s];
}

static void grad_finish(grads *g, int s, float *t, int acc, size_t n)
{
    if (!acc || !t) return;
    float *d = g->of[s];
    for (size_t j = 0; j < n; j++) d[j] += t[j];
    slot_give(g, t);
}

void qb_model_backward(const qb_model *m, qb_model_ws *ws, const float *dlogits, int b,
                       float *gradp, float *dx)
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
    grads g;
    memset(&g, 0, sizeof g);
    g.ws = ws;
    const float *p = m->params;
    for (int last = m->n_layers - 1; last >= 0;) {
        int i = start_of[last];
        const qb_layer *l = &m->layers[i];
        const int o = last + 1, s = l->src;
        const float *dy = o == m->n_layers ? dlogits : g.of[o];
        QB_ASSERT(dy != NULL);
        const size_t n_in = (size_t)b * qb_layer_in_size(l);
        const size_t n_out = (size_t)b * qb_layer_out_size(l);
        /* conv/linear: the input the layer actually used (after any input hook) */
        const float *x = ws->layer_in[i] ? ws->layer_in[i] : ws->act[s];
        float *gw = gradp ? gradp + l->w_off : NULL;
        float *gb = gradp && l->b_len ? gradp + l->b_off : NULL;
        int acc;
        /* Elementwise steps whose input has no other consumer work in
         * place: the input's gradient takes over the output's buffer. */
        int in_place = (l->kind == QB_LAYER_RELU || l->kind == QB_LAYER_FLATTEN ||
                        l->kind == QB_LAYER_BATCHNORM) &&
                       s > 0 && ws->uses[s] == 1 && o != m->n_layers && !g.of[s];
        float *out;
        if (in_place) {
            out = g.of[o];
            g.of[s] = out;
            g.of[o] = NULL;
            acc = 0;
        } else {
            out = grad_dest(&g, s, dx, &acc);
        }
        switch (l->kind) {
        case QB_LAYER_CONV2D: {
            qb_conv_epilogue ep;
            conv_block(m, ws, i, &ep);
            qb_conv2d_backward_ex(l, &ep, b, x, p + l->w_off, ws->act[o],
                                  ep.pool ? ws->argmax[i + 2] : NULL, dy, gw, gb, out, ws->work);
            break;
        }
        case QB_LAYER_MAXPOOL:
            if (out) qb_maxpool_backward(l, b, dy, ws->argmax[i], out);
            break;
        case QB_LAYER_RELU:
            if (out) qb_relu_backward(n_out, ws->act[o], dy, out);
            break;
        case QB_LAYER_FLATTEN:
            if (out && out != dy) memcpy(out, dy, n_out * sizeof(float));
            break;
        case QB_LAYER_LINEAR:
            qb_linear_backward(b, l->in_c, l->out_c, x, p + l->w_off, dy, gw,
                               gradp ? gradp + l->b_off : NULL, out);
            break;
        case QB_LAYER_BATCHNORM: {
            int hw = l->in_h * l->in_w;
            if (ws->trained_bn && ws->bn_stat[i])
                qb_bn_backward_train(b, l->in_c, hw, ws->act[s], p + l->w_off, ws->bn_stat[i], dy,
                                     gw, gb, out);
            else
                qb_bn_backward_eval(b, l->in_c, hw, ws->act[s], p + l->w_off, p + l->s_off, dy,
                                    gw, gb, out);
            break;
        }
        case QB_LAYER_ADD: {
            if (out) memcpy(out, dy, n_out * sizeof(float));
            grad_finish(&g, s, out, acc, n_in);
            int acc2;
            float *out2 = grad_dest(&g, l->src2, dx, &acc2);
            if (out2) memcpy(out2, dy, n_out * sizeof(float));
            grad_finish(&g, l->src2, out2, acc2, n_in);
            acc = 0;
            break;
        }
        case QB_LAYER_AVGPOOL:
            if (out) qb_avgpool_backward(b, l->in_c, l->in_h * l->in_w, dy, out);
            break;
        }
        grad_finish(&g, s, out, acc, n_in);
        if (o != m->n_layers && g.of[o]) {
            slot_give(&g, g.of[o]);
            g.of[o] = NULL;
        }
        last = i - 1;
    }
}
