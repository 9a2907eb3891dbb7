#include "quant/qmodel.h"

#include <stdlib.h>
#include <string.h>

#include "core/conv2d.h"
#include "core/rng.h"
#include "core/xalloc.h"

int qb_precision_quantizes_layer(const qb_precision *prec, const qb_model *m, int i)
{
    if (qb_precision_is_float(prec)) return 0;
    qb_layer_kind k = m->layers[i].kind;
    if (k == QB_LAYER_LINEAR) return 1;
    return k == QB_LAYER_CONV2D && !prec->linear_only;
}

/* Grow a scratch buffer to at least n elements of size `size`. */
static void *grow(void *p, size_t *len, size_t n, size_t size)
{
    if (n <= *len) return p;
    free(p);
    *len = n;
    return xaligned(n, size);
}

/* ---- float path: fake-quantized activations (straight-through) ---------- */

static const float *hook_input(void *ctx, const qb_model *m, int layer, int b, const float *x,
                               float *scratch)
{
    const qb_qmodel *qm = ctx;
    if (!qm->ql[layer].active || qm->prec.a_bits >= 32) return x;
    size_t n = (size_t)b * qb_layer_in_size(&m->layers[layer]);
    /* one scale for the whole batch tensor: "dynamic, per batch" */
    qb_fake_quant(x, 1, n, qm->prec.a_bits, QB_GRAN_TENSOR, qm->prec.round, scratch);
    return scratch;
}

/* ---- integer path -------------------------------------------------------- */

/* rows (OH*OW, K): patch of output position p in row p, K = C*k*k in the
 * weight order (c, ky, kx); zero outside the image (padding). */
static void im2row_s8(const qb_layer *l, const int8_t *x, int8_t *rows)
{
    const int C = l->in_c, H = l->in_h, W = l->in_w, K = l->k, S = l->stride, P = l->pad;
    const size_t kk = (size_t)C * K * K;
    int8_t *r = rows;
    for (int oy = 0; oy < l->out_h; oy++)
        for (int ox = 0; ox < l->out_w; ox++, r += kk) {
            size_t k = 0;
            for (int c = 0; c < C; c++)
                for (int ky = 0; ky < K; ky++) {
                    int iy = oy * S - P + ky;
                    const int8_t *src = x + ((size_t)c * H + (iy < 0 ? 0 : iy)) * W;
                    for (int kx = 0; kx < K; kx++, k++) {
                        int ix = ox * S - P + kx;
                        r[k] = (iy >= 0 && iy < H && ix >= 0 && ix < W) ? src[ix] : 0;
                    }
                }
        }
}

/* Quantize the layer input (b, in_size) with one per-batch scale. */
static float quantize_input(qb_qmodel *qm, size_t n, const float *x)
{
    qm->xq = grow(qm->xq, &qm->xq_len, n, 1);
    float s = qb_quant_scale(x, n, qm->prec.a_bits);
    qb_quantize_with_scale(x, n, s, qm->prec.a_bits, qm->prec.round, qm->xq);
    return s;
}

static void run_conv(qb_qmodel *qm, const qb_layer *l, const qb_qlayer *q,
                     const qb_conv_epilogue *ep, int b, const float *x, const float *bias,
                     float *y)
{
    const size_t in_size = qb_layer_in_size(l), ohw = (size_t)l->out_h * l->out_w;
    const size_t K = q->cols, OC = q->rows;
    const size_t y_size = ep->pool ? OC * (size_t)(l->out_h / 2) * (l->out_w / 2) : OC * ohw;
    float sx = quantize_input(qm, (size_t)b * in_size, x);
    qm->rows8 = grow(qm->rows8, &qm->rows8_len, ohw * K, 1);
    qm->acc = grow(qm->acc, &qm->acc_len, ohw * OC, sizeof(int32_t));
    qm->tmp = grow(qm->tmp, &qm->tmp_len, ohw * OC, sizeof(float));
    for (int i = 0; i < b; i++) {
        im2row_s8(l, qm->xq + (size_t)i * in_size, qm->rows8);
        /* acc (OH*OW, OC) = rows (OH*OW, K) * codes^T */
        qb_gemm_s8(&q->packed, (int)ohw, qm->rows8, K, qm->acc, OC);
        for (size_t oc = 0; oc < OC; oc++) {
            float f = sx * (qm->prec.gran == QB_GRAN_CHANNEL ? q->scales[oc] : q->scales[0]);
            float *t = qm->tmp + oc * ohw;
            const int32_t *a = qm->acc + oc;
            for (size_t p = 0; p < ohw; p++) t[p] = (float)a[p * OC] * f;
        }
        qb_conv2d_epilogue_apply(l, ep, 1, qm->tmp, bias, y + (size_t)i * y_size, NULL);
    }
}

static void run_linear(qb_qmodel *qm, const qb_layer *l, const qb_qlayer *q, int b,
                       const float *x, const float *bias, float *y)
{
    const size_t IN = q->cols, OUT = q->rows;
    (void)l;
    float sx = quantize_input(qm, (size_t)b * IN, x);
    qm->acc = grow(qm->acc, &qm->acc_len, (size_t)b * OUT, sizeof(int32_t));
    qb_gemm_s8(&q->packed, b, qm->xq, IN, qm->acc, OUT);
    for (int i = 0; i < b; i++)
        for (size_t o = 0; o < OUT; o++) {
            float f = sx * (qm->prec.gran == QB_GRAN_CHANNEL ? q->scales[o] : q->scales[0]);
            y[(size_t)i * OUT + o] = (float)qm->acc[(size_t)i * OUT + o] * f + bias[o];
        }
}

static int hook_run(void *ctx, const qb_model *m, int layer, const qb_conv_epilogue *ep, int b,
                    const float *x, float *y)
{
    qb_qmodel *qm = ctx;
    const qb_qlayer *q = &qm->ql[layer];
    if (!qm->integer || !q->active) return 0;
    const qb_layer *l = &m->layers[layer];
    const float *bias = m->params + l->b_off;
    if (l->kind == QB_LAYER_CONV2D)
        run_conv(qm, l, q, ep, b, x, bias, y);
    else
        run_linear(qm, l, q, b, x, bias, y);
    return 1;
}

/* ---- building ------------------------------------------------------------ */

int qb_qmodel_init(qb_qmodel *qm, const qb_model *fp, const qb_precision *prec,
                   float noise_std, uint64_t seed, qb_error *err)
{
    memset(qm, 0, sizeof *qm);
    if (!qb_precision_is_float(prec) && (prec->w_bits < 2 || prec->w_bits > 8))
        return QB_FAIL(err, "precision %s: weight bits %d outside 2..8", prec->name, prec->w_bits);
    if (!(noise_std >= 0.0f)) return QB_FAIL(err, "re-quantization noise must be >= 0");
    qb_model_copy(&qm->model, fp);
    qm->model.hooks = NULL;
    qm->prec = *prec;
    if (qb_precision_is_float(prec)) return 0;

    qb_rng rng;
    qb_rng_seed(&rng, qb_seed_derive(seed, "requant-noise"));
    for (int i = 0; i < fp->n_layers; i++) {
        if (!qb_precision_quantizes_layer(prec, fp, i)) continue;
        const qb_layer *l = &fp->layers[i];
        qb_qlayer *q = &qm->ql[i];
        q->active = 1;
        q->rows = (size_t)l->out_c;
        q->cols = l->w_len / q->rows;
        float *w = qm->model.params + l->w_off; /* (rows, cols), still FP32 */
        if (noise_std > 0.0f) {
            float s = qb_quant_scale(w, l->w_len, prec->w_bits);
            for (size_t j = 0; j < l->w_len; j++) w[j] += noise_std * s * qb_rng_normal(&rng);
        }
        q->codes = xmalloc(l->w_len, 1);
        q->scales = xmalloc(prec->gran == QB_GRAN_CHANNEL ? q->rows : 1, sizeof(float));
        qb_quantize_symmetric(w, q->rows, q->cols, prec->w_bits, prec->gran, prec->round,
                              q->codes, q->scales);
    }
    qb_qmodel_finish(qm);
    return 0;
}

void qb_qmodel_finish(qb_qmodel *qm)
{
    const qb_model *m = &qm->model;
    for (int i = 0; i < m->n_layers; i++) {
        qb_qlayer *q = &qm->ql[i];
        if (!q->active) continue;
        qb_dequantize(q->codes, q->rows, q->cols, qm->prec.gran, q->scales,
                      qm->model.params + m->layers[i].w_off);
    }
    qm->integer = qb_precision_is_integer(&qm->prec);
    if (qm->integer)
        for (int i = 0; i < m->n_layers; i++)
            if (qm->ql[i].active)
                qb_s8_weights_pack(&qm->ql[i].packed, qm->ql[i].codes, (int)qm->ql[i].rows,
                                   (int)qm->ql[i].cols, qm->ql[i].cols, QB_GEMM_S8_AUTO);
    qm->hooks.ctx = qm;
    qm->hooks.input = hook_input;
    qm->hooks.run = hook_run;
    qm->model.hooks = &qm->hooks;
}

void qb_qmodel_free(qb_qmodel *qm)
{
    for (int i = 0; i < QB_MAX_LAYERS; i++) {
        free(qm->ql[i].codes);
        free(qm->ql[i].scales);
        if (qm->ql[i].packed.packed || qm->ql[i].packed.row_sums)
            qb_s8_weights_free(&qm->ql[i].packed);
    }
    free(qm->xq);
    free(qm->rows8);
    free(qm->acc);
    free(qm->tmp);
    qb_model_free(&qm->model);
    memset(qm, 0, sizeof *qm);
}
