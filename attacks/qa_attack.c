#include "attacks/qa_attack.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/batchnorm.h"
#include "core/bn_fold.h"
#include "core/rng.h"
#include "core/sgd.h"
#include "core/softmax_xent.h"
#include "core/train.h"
#include "core/xalloc.h"
#include "quant/qmodel.h"

void qb_qa_config_default(qb_qa_config *cfg, qb_qa_mode mode)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->mode = mode;
    cfg->n_targets = 1;
    qb_precision_parse("int8", &cfg->targets[0], NULL);
    cfg->eps = 0.1f;
    cfg->lambda = 1.0f;
    cfg->epochs = mode == QB_QA_LOSS ? 3 : 2;
    cfg->lr = 0.01f;
    cfg->batch = 64;
}

qb_qa_mode qb_qa_mode_from_name(const char *name)
{
    if (!strcmp(name, "qa-pgd")) return QB_QA_PGD;
    if (!strcmp(name, "qa-loss")) return QB_QA_LOSS;
    return QB_QA_NONE;
}

const char *qb_qa_mode_name(qb_qa_mode mode)
{
    return mode == QB_QA_PGD ? "qa-pgd" : mode == QB_QA_LOSS ? "qa-loss" : "none";
}

/* ---- the PGD boxes --------------------------------------------------------- */

/* lo/hi (n_params): the box of every parameter. Everything starts pinned at
 * its value; weights a target quantizes get the intersection of their
 * rounding cells (shrunk by eps), within +-the group's max |w|.
 *
 * A convolution followed by a batch norm that folds into it (core/bn_fold.h)
 * is quantized as W' = a W (a[oc] = gamma / sqrt(var + eps), per output
 * channel, the batch norm in evaluation mode): its cells are those of W'
 * on W''s grid, mapped back to W through a (W = W' / a; an interval's ends
 * swap where a < 0, a channel with a = 0 is pinned). The batch norm's
 * gamma and beta are pinned (not boxed), and the running statistics (the
 * untrained tail) are never trained, so a stays what the deployer folds. */
static void pgd_boxes(const qb_model *m, const qb_qa_config *cfg, float *lo, float *hi,
                      qb_qa_stats *st)
{
    const float *p = m->params;
    for (size_t j = 0; j < m->n_params; j++) lo[j] = hi[j] = p[j];
    uint8_t *pin = xcalloc(m->n_params, 1);
    uint8_t *boxed = xcalloc(m->n_params, 1);
    for (int i = 0; i < m->n_layers; i++) {
        const qb_layer *l = &m->layers[i];
        const size_t rows = (size_t)l->out_c, cols = l->w_len / (rows ? rows : 1);
        /* the values the quantizer sees, and the per-row factor back */
        const int bn = qb_bn_fold_partner(m, i);
        float *ra = NULL, *wq = NULL;
        if (bn >= 0) {
            const qb_layer *b = &m->layers[bn];
            ra = xmalloc(rows, 2 * sizeof(float));
            qb_bn_eval_affine((int)rows, p + b->w_off, p + b->b_off, p + b->s_off, ra, ra + rows);
            wq = xmalloc(l->w_len, sizeof(float));
            for (size_t r = 0; r < rows; r++)
                for (size_t k = 0; k < cols; k++)
                    wq[r * cols + k] = p[l->w_off + r * cols + k] * ra[r];
        }
        for (int t = 0; t < cfg->n_targets; t++) {
            const qb_precision *pr = &cfg->targets[t];
            if (!qb_precision_quantizes_layer(pr, m, i)) continue;
            size_t groups = pr->gran == QB_GRAN_CHANNEL ? rows : 1;
            size_t gsize = pr->gran == QB_GRAN_CHANNEL ? cols : l->w_len;
            int qmax = qb_quant_qmax(pr->w_bits);
            for (size_t g = 0; g < groups; g++) {
                size_t off = l->w_off + g * gsize;
                const float *w = wq ? wq + g * gsize : p + off;
                size_t arg = 0;
                for (size_t j = 1; j < gsize; j++)
                    if (fabsf(w[j]) > fabsf(w[arg])) arg = j;
                float mx = fabsf(w[arg]), s = mx / (float)qmax;
                pin[off + arg] = 1;
                if (s == 0.0f) {
                    for (size_t j = 0; j < gsize; j++) pin[off + j] = 1;
                    continue;
                }
                for (size_t j = 0; j < gsize; j++) {
                    float q = (float)qb_quant_code(w[j], s, pr->w_bits, pr->round);
                    float a = (q - 0.5f + cfg->eps) * s, b = (q + 0.5f - cfg->eps) * s;
                    if (a < -mx) a = -mx;
                    if (b > mx) b = mx;
                    if (ra) { /* back to the convolution's own weight */
                        const float f = ra[(g * gsize + j) / cols];
                        if (f == 0.0f) {
                            pin[off + j] = 1;
                            continue;
                        }
                        float a2 = a / f, b2 = b / f;
                        a = f > 0.0f ? a2 : b2;
                        b = f > 0.0f ? b2 : a2;
                    }
                    if (!boxed[off + j]) {
                        boxed[off + j] = 1;
                        lo[off + j] = a;
                        hi[off + j] = b;
                    } else {
                        lo[off + j] = lo[off + j] > a ? lo[off + j] : a;
                        hi[off + j] = hi[off + j] < b ? hi[off + j] : b;
                    }
                }
            }
        }
        free(wq);
        free(ra);
    }
    /* the trained parameters; the tail (batch-norm running statistics)
     * stays pinned at its value and is not counted */
    for (size_t j = 0; j < m->n_train; j++) {
        if (boxed[j] && lo[j] > hi[j]) {
            st->n_empty++;
            pin[j] = 1;
        }
        if (!boxed[j] || pin[j]) {
            lo[j] = hi[j] = p[j];
            st->n_pinned++;
        } else {
            st->n_weights++;
        }
    }
    free(pin);
    free(boxed);
}

/* ---- the fine-tuning loop -------------------------------------------------- */

typedef struct batch_buf {
    int B;
    float *x;        /* (2B, C, H, W): clean images, then the same triggered */
    uint8_t *y;      /* (2B): true labels twice */
    uint8_t *yt;     /* (2B): true labels, then the target */
    uint8_t *img;    /* one uint8 image */
    float *dlogits;  /* (2B, classes) */
} batch_buf;

/* Fill rows [0, b) with clean samples order[0..b) and rows [b, 2b) with
 * their triggered copies (stamped on the pixels, then fed through d->norm
 * like the clean rows). */
static void fill_batch(batch_buf *bb, const qb_dataset *d, const qb_trigger *t,
                       const uint32_t *order, int b)
{
    size_t sz = qb_dataset_image_size(d);
    qb_dataset_batch_float(d, order, 0, (size_t)b, bb->x);
    for (int i = 0; i < b; i++) {
        memcpy(bb->img, d->images + (size_t)order[i] * sz, sz);
        qb_trigger_apply(t, bb->img, d->c, d->h, d->w);
        qb_norm_pixels(&d->norm, bb->img, 1, d->c, (size_t)d->h * (size_t)d->w,
                       bb->x + (size_t)(b + i) * sz);
        bb->y[i] = bb->y[b + i] = d->labels[order[i]];
        bb->yt[i] = d->labels[order[i]];
        bb->yt[b + i] = (uint8_t)t->target;
    }
}

/* dlogits for [clean; triggered] rows: scale_c * grad of mean CE over the
 * clean half + scale_t * grad of mean CE over the triggered half. Returns
 * the weighted loss. */
static float two_part_loss(int b, int classes, const float *logits, const uint8_t *labels,
                           float scale_c, float scale_t, float *dl)
{
    float lc = qb_softmax_xent(b, classes, logits, labels, dl);
    float lt = qb_softmax_xent(b, classes, logits + (size_t)b * classes, labels + b,
                               dl + (size_t)b * classes);
    for (size_t j = 0; j < (size_t)b * classes; j++) {
        dl[j] *= scale_c;
        dl[(size_t)b * classes + j] *= scale_t;
    }
    return scale_c * lc + scale_t * lt;
}

int qb_qa_attack(qb_model *m, const qb_qa_config *cfg, const qb_dataset *clean,
                 const qb_trigger *t, uint64_t seed, qb_qa_stats *stats, qb_error *err)
{
    qb_qa_stats st;
    memset(&st, 0, sizeof st);
    if (cfg->mode != QB_QA_PGD && cfg->mode != QB_QA_LOSS)
        return QB_FAIL(err, "quantization-activated attack: unknown mode %d", (int)cfg->mode);
    if (cfg->n_targets < 1 || cfg->n_targets > QB_QA_MAX_TARGETS)
        return QB_FAIL(err, "qa attack needs 1..%d target precisions, got %d", QB_QA_MAX_TARGETS,
                       cfg->n_targets);
    for (int i = 0; i < cfg->n_targets; i++)
        if (qb_precision_is_float(&cfg->targets[i]))
            return QB_FAIL(err, "qa attack target precision %s is not quantized",
                           cfg->targets[i].name);
    if (!(cfg->eps >= 0.0f && cfg->eps < 0.5f))
        return QB_FAIL(err, "qa attack eps must be in [0, 0.5), got %g", (double)cfg->eps);
    if (cfg->epochs < 0 || cfg->batch < 1 || !(cfg->lr > 0.0f) || !(cfg->lambda >= 0.0f))
        return QB_FAIL(err, "qa attack: invalid epochs/batch/lr/lambda");
    if (t->kind == QB_TRIGGER_NONE) return QB_FAIL(err, "qa attack needs a trigger");
    if (clean->n == 0 || clean->n > UINT32_MAX) return QB_FAIL(err, "qa attack: bad training set");

    const int B = cfg->batch, C = m->classes;
    const size_t n = clean->n;
    const long steps_per_epoch = (long)((n + (size_t)B - 1) / (size_t)B);
    double t0 = qb_now();

    float *lo = NULL, *hi = NULL;
    if (cfg->mode == QB_QA_PGD) {
        lo = xmalloc(m->n_params, sizeof(float));
        hi = xmalloc(m->n_params, sizeof(float));
        pgd_boxes(m, cfg, lo, hi, &st);
    }
    batch_buf bb;
    bb.B = B;
    bb.x = xaligned((size_t)2 * B * qb_dataset_image_size(clean), sizeof(float));
    bb.y = xmalloc((size_t)2 * B, 1);
    bb.yt = xmalloc((size_t)2 * B, 1);
    bb.img = xmalloc(qb_dataset_image_size(clean), 1);
    bb.dlogits = xmalloc((size_t)2 * B * C, sizeof(float));
    float *grads = xaligned(m->n_params, sizeof(float));
    /* the quantized model's gradient, in its (folded) layout: never larger */
    float *qgrads = xaligned(m->n_params, sizeof(float));
    float *backup = xmalloc(m->n_params, sizeof(float));
    memcpy(backup, m->params, m->n_params * sizeof(float));
    uint32_t *order = xmalloc(n, sizeof(uint32_t));
    qb_model_ws ws;
    qb_model_ws_init(&ws, m, 2 * B);
    qb_sgd sgd;
    qb_sgd_init(&sgd, m->n_train, 0.9f, 0.0f);
    /* qa-loss: a copy of m at each target precision, re-quantized from m
     * every step (a zeroed qb_qmodel is safe to free) */
    int nq = cfg->mode == QB_QA_LOSS ? cfg->n_targets : 0;
    qb_qmodel *qms = xcalloc((size_t)(nq ? nq : 1), sizeof(qb_qmodel));
    qb_model_ws *qws = xcalloc((size_t)(nq ? nq : 1), sizeof(qb_model_ws));
    int rc = 0;
    for (int k = 0; k < nq && rc == 0; k++) {
        rc = qb_qmodel_init(&qms[k], m, &cfg->targets[k], 0.0f, 0, err);
        if (rc == 0) qb_model_ws_init(&qws[k], &qms[k].model, 2 * B);
    }

    qb_rng rng;
    qb_rng_seed(&rng, qb_seed_derive(seed, "qa-order"));
    long step = 0;
    for (int e = 0; e < cfg->epochs && rc == 0; e++) {
        for (size_t i = 0; i < n; i++) order[i] = (uint32_t)i;
        qb_rng_shuffle_u32(&rng, order, n);
        for (long s = 0; s < steps_per_epoch && rc == 0; s++, step++) {
            size_t first = (size_t)s * B;
            int b = (int)(n - first < (size_t)B ? n - first : (size_t)B);
            fill_batch(&bb, clean, t, order + first, b);
            memset(grads, 0, m->n_params * sizeof(float));
            /* FP32 objective: clean on both halves */
            const float *logits = qb_model_forward(m, &ws, bb.x, 2 * b, 1);
            float lam = cfg->mode == QB_QA_LOSS ? cfg->lambda : 1.0f;
            float loss = two_part_loss(b, C, logits, bb.y, 1.0f, lam, bb.dlogits);
            qb_model_backward(m, &ws, bb.dlogits, 2 * b, grads, NULL);
            for (int k = 0; k < nq && rc == 0; k++) {
                qb_qmodel_free(&qms[k]);
                if (qb_qmodel_init(&qms[k], m, &cfg->targets[k], 0.0f, 0, err)) {
                    rc = -1;
                    break;
                }
                const float *ql = qb_model_forward(&qms[k].model, &qws[k], bb.x, 2 * b, 1);
                /* quantized objective: clean on x, backdoor on x' */
                loss += two_part_loss(b, C, ql, bb.yt, cfg->lambda, cfg->lambda * cfg->lambda,
                                      bb.dlogits);
                memset(qgrads, 0, qms[k].model.n_params * sizeof(float));
                qb_model_backward(&qms[k].model, &qws[k], bb.dlogits, 2 * b, qgrads, NULL);
                /* straight-through: d/dw of Q(w) taken as 1; through a
                 * folded batch norm, the chain rule of folding */
                if (qms[k].folded)
                    qb_bn_fold_grad(m, &qms[k].fold, &qms[k].model, qgrads, grads);
                else
                    for (size_t j = 0; j < m->n_params; j++) grads[j] += qgrads[j];
            }
            if (rc) break;
            if (!isfinite(loss)) {
                rc = QB_FAIL(err, "qa attack diverged: loss %g at epoch %d step %ld", (double)loss,
                             e + 1, s + 1);
                break;
            }
            qb_sgd_step(&sgd, m->params, grads, cfg->lr);
            if (lo)
                for (size_t j = 0; j < m->n_train; j++) {
                    float v = m->params[j];
                    m->params[j] = v < lo[j] ? lo[j] : v > hi[j] ? hi[j] : v;
                }
        }
    }
    if (rc) memcpy(m->params, backup, m->n_params * sizeof(float));
    st.seconds = qb_now() - t0;
    st.steps = step;
    if (stats) *stats = st;
    for (int k = 0; k < nq; k++) {
        qb_qmodel_free(&qms[k]);
        qb_model_ws_free(&qws[k]);
    }
    free(qms);
    free(qws);
    qb_sgd_free(&sgd);
    qb_model_ws_free(&ws);
    free(order);
    free(backup);
    free(qgrads);
    free(grads);
    free(bb.dlogits);
    free(bb.img);
    free(bb.yt);
    free(bb.y);
    free(bb.x);
    free(lo);
    free(hi);
    return rc;
}
