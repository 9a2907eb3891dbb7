/* Fine-Pruning: the shared procedure (defenses/fineprune.h) and the `fp`
 * defense.
 *
 * The defense. Data from the defender's pool (qb_defense_clean_split, in
 * order): pool[0, n_train) the clean training split (ranking and
 * fine-tuning), pool[n_train, + n_val) the validation split (where pruning
 * stops). CA is measured on the clean images of the pool's evaluation part
 * pool[eval_from..), ASR on their non-target images with in->trigger
 * stamped. Fine-tuning draws its batch order from qb_seed_derive(in->seed,
 * "fp-finetune").
 *
 * `detected` (docs/DESIGN.md reports FP as `mitigated`): for a backdoored model
 * YES when fine-pruning mitigated the backdoor (ASR after <= 20% with a CA
 * drop <= 5 points), NO when it did not; for a clean model QB_DETECTED_NA —
 * there is no backdoor to remove — though everything is run and recorded
 * (fp.mitigated then says whether the probe trigger's rate, normally
 * already low, stayed <= 20% at an acceptable CA cost).
 *
 * Details: fp.layer, fp.mean_act (per channel), fp.prune_order,
 * fp.curve_pruned, fp.curve_ca (validation CA per step), fp.curve_asr (ASR
 * per step, evaluation set), fp.n_pruned, fp.ca_before, fp.asr_before,
 * fp.ca_pruned, fp.asr_pruned, fp.ca_tuned, fp.asr_tuned, fp.tune_loss,
 * fp.pruned_drift, fp.mitigated. CA/ASR are fractions. */
#include "defenses/fineprune.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/metrics.h"
#include "attacks/poison.h"
#include "core/rng.h"
#include "core/xalloc.h"
#include "defenses/defense.h"
#include "defenses/verdict.h"
#include "quant/qmodel.h"

const qb_param_def qb_fp_params[] = {
    {"n_train", QB_PARAM_INT, 2000, 1, 1000000, NULL,
     "clean images that rank the channels and fine-tune (first slice of the defender's pool)"},
    {"n_val", QB_PARAM_INT, 1000, 1, 1000000, NULL,
     "clean validation images that decide where pruning stops (next slice)"},
    {"max_ca_drop", QB_PARAM_REAL, 4.0, 0.0, 100.0, NULL,
     "validation accuracy (points) pruning may cost before it stops (default 4)"},
    {"epochs", QB_PARAM_INT, 10, 0, 1000, NULL, "fine-tuning epochs over the training split"},
    {"lr", QB_PARAM_REAL, 0.01, 1e-6, 10.0, NULL, "fine-tuning learning rate (cosine schedule)"},
    {"batch", QB_PARAM_INT, 64, 1, 65536, NULL, "fine-tuning batch size"},
    {NULL, 0, 0, 0, 0, NULL, NULL},
};

void qb_fineprune_config_default(qb_fineprune_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->max_ca_drop = 4.0;
    qb_train_config_default(&cfg->tune);
    cfg->tune.epochs = 10;
    cfg->tune.lr = 0.01f;
}

void qb_fineprune_result_free(qb_fineprune_result *r)
{
    free(r->mean_act);
    free(r->order);
    free(r->curve_pruned);
    free(r->curve_ca);
    free(r->curve_asr);
    memset(r, 0, sizeof *r);
}

/* ---- the steps ----------------------------------------------------------- */

int qb_fineprune_rank_layer(const qb_model *m, int conv)
{
    QB_ASSERT(conv >= 0 && conv < m->n_layers && m->layers[conv].kind == QB_LAYER_CONV2D);
    if (conv + 1 < m->n_layers && m->layers[conv + 1].kind == QB_LAYER_RELU) return conv + 1;
    return conv;
}

/* mean[c] = mean over d's samples and positions of channel c of layer
 * `layer`'s output (unfused workspace, inference). */
static void layer_channel_means(const qb_model *m, int layer, const qb_dataset *d, double *mean)
{
    const qb_layer *l = &m->layers[layer];
    const int C = l->out_c;
    const size_t hw = (size_t)l->out_h * l->out_w, osz = qb_layer_out_size(l);
    const int B = d->n < 256 ? (int)(d->n ? d->n : 1) : 256;
    qb_model_ws ws;
    qb_model_ws_init(&ws, m, B);
    qb_model_ws_set_fused(&ws, 0);
    float *x = xaligned((size_t)B * qb_dataset_image_size(d), sizeof(float)); /* (B, C, H, W) */
    for (int c = 0; c < C; c++) mean[c] = 0.0;
    for (size_t first = 0; first < d->n; first += (size_t)B) {
        int b = d->n - first < (size_t)B ? (int)(d->n - first) : B;
        qb_dataset_batch_float(d, NULL, first, (size_t)b, x);
        qb_model_forward(m, &ws, x, b, 0);
        const float *a = ws.act[layer + 1]; /* (b, C, OH, OW) */
        for (int i = 0; i < b; i++)
            for (int c = 0; c < C; c++) {
                const float *p = a + (size_t)i * osz + (size_t)c * hw;
                double s = 0.0;
                for (size_t j = 0; j < hw; j++) s += p[j];
                mean[c] += s;
            }
    }
    double denom = (double)d->n * (double)hw;
    for (int c = 0; c < C; c++) mean[c] = d->n ? mean[c] / denom : 0.0;
    free(x);
    qb_model_ws_free(&ws);
}

void qb_fineprune_channel_means(const qb_model *m, int conv, const qb_dataset *d, double *mean)
{
    layer_channel_means(m, qb_fineprune_rank_layer(m, conv), d, mean);
}

void qb_fineprune_rank(const double *mean, int C, int *order)
{
    size_t n = C > 0 ? (size_t)C : 0;
    uint32_t *r = xmalloc(n ? n : 1, sizeof(uint32_t));
    qb_defense_rank(mean, n, 0, r);
    for (size_t c = 0; c < n; c++) order[c] = (int)r[c];
    free(r);
}

void qb_fineprune_zero_channel(qb_model *m, int conv, int ch)
{
    const qb_layer *l = &m->layers[conv];
    QB_ASSERT(l->kind == QB_LAYER_CONV2D && ch >= 0 && ch < l->out_c);
    size_t per = (size_t)l->in_c * l->k * l->k; /* weights (OC, C, k, k) */
    memset(m->params + l->w_off + (size_t)ch * per, 0, per * sizeof(float));
    if (l->b_len) m->params[l->b_off + (size_t)ch] = 0.0f;
}

int qb_fineprune_target_of(const qb_model *m, qb_fineprune_target *t)
{
    memset(t, 0, sizeof *t);
    t->conv = t->linear = -1;
    if (!qb_model_has_graph_layers(m)) {
        t->conv = qb_model_last_conv(m);
        if (t->conv < 0) return -1;
        t->layer = qb_fineprune_rank_layer(m, t->conv);
        t->channels = m->layers[t->conv].out_c;
        return 0;
    }
    for (int i = m->n_layers - 1; i >= 0 && t->linear < 0; i--)
        if (m->layers[i].kind == QB_LAYER_LINEAR) t->linear = i;
    t->layer = qb_model_penultimate_layer(m);
    if (t->linear < 0 || t->layer < 0 || qb_model_last_conv(m) < 0) return -1;
    const qb_layer *f = &m->layers[t->layer];
    t->channels = f->out_c;
    QB_ASSERT(qb_layer_out_size(f) == (size_t)m->layers[t->linear].in_c);
    return 0;
}

void qb_fineprune_prune(qb_model *m, const qb_fineprune_target *t, int ch)
{
    if (t->conv >= 0) {
        qb_fineprune_zero_channel(m, t->conv, ch);
        return;
    }
    const qb_layer *f = &m->layers[t->layer], *l = &m->layers[t->linear];
    QB_ASSERT(ch >= 0 && ch < t->channels);
    const size_t hw = (size_t)f->out_h * f->out_w, in = (size_t)l->in_c;
    for (int o = 0; o < l->out_c; o++) /* weights (OUT, IN), IN = (C, H, W) flattened */
        memset(m->params + l->w_off + (size_t)o * in + (size_t)ch * hw, 0, hw * sizeof(float));
}

/* Largest |param| of the pruned channels order[0..n). */
static double pruned_max_abs(const qb_model *m, const qb_fineprune_target *t, const int *order,
                             int n)
{
    double mx = 0.0;
    if (t->conv < 0) {
        const qb_layer *f = &m->layers[t->layer], *l = &m->layers[t->linear];
        const size_t hw = (size_t)f->out_h * f->out_w, in = (size_t)l->in_c;
        for (int i = 0; i < n; i++)
            for (int o = 0; o < l->out_c; o++) {
                const float *w = m->params + l->w_off + (size_t)o * in + (size_t)order[i] * hw;
                for (size_t j = 0; j < hw; j++) mx = fmax(mx, fabs(w[j]));
            }
        return mx;
    }
    const qb_layer *l = &m->layers[t->conv];
    size_t per = (size_t)l->in_c * l->k * l->k;
    for (int i = 0; i < n; i++) {
        const float *w = m->params + l->w_off + (size_t)order[i] * per;
        for (size_t j = 0; j < per; j++) mx = fmax(mx, fabs(w[j]));
        if (l->b_len) mx = fmax(mx, fabs(m->params[l->b_off + (size_t)order[i]]));
    }
    return mx;
}

int qb_fineprune_step_ok(double ca0, double ca, double max_ca_drop)
{
    return (ca0 - ca) * 100.0 <= max_ca_drop + 1e-9;
}

int qb_fineprune_n_pruned(const double *ca, int n, double max_ca_drop)
{
    int k = 0;
    while (k + 1 < n && qb_fineprune_step_ok(ca[0], ca[k + 1], max_ca_drop)) k++;
    return k;
}

int qb_fineprune_mitigated(double ca_before, double ca_tuned, double asr_tuned)
{
    return asr_tuned <= QB_FP_MAX_ASR + 1e-12 && ca_before - ca_tuned <= QB_FP_MAX_CA_DROP + 1e-12;
}

/* CA and ASR of a model on the evaluation sets. */
static void evaluate(const qb_model *m, const qb_dataset *eval_clean, const qb_dataset *eval_trig,
                     int target, double *ca, double *asr)
{
    *ca = eval_clean ? qb_metric_accuracy(m, eval_clean) : NAN;
    *asr = eval_trig ? qb_metric_target_rate(m, eval_trig, target) : NAN;
}

int qb_fineprune_run(const qb_model *deployed, const qb_precision *prec,
                     const qb_dataset *clean_train, const qb_dataset *clean_val,
                     const qb_dataset *eval_clean, const qb_dataset *eval_trig, int target,
                     const qb_fineprune_config *cfg, qb_fineprune_result *out,
                     qb_model *tuned_fp, qb_error *err)
{
    memset(out, 0, sizeof *out);
    qb_fineprune_target tg;
    if (qb_fineprune_target_of(deployed, &tg))
        return QB_FAIL(err, "fine-pruning needs a convolutional layer%s; architecture %s has none",
                       qb_model_has_graph_layers(deployed) ? " and a final linear layer" : "",
                       deployed->arch);
    if (clean_train->n == 0 || clean_val->n == 0)
        return QB_FAIL(err, "fine-pruning needs clean training and validation images (got %zu "
                            "and %zu)",
                       clean_train->n, clean_val->n);
    const int C = tg.channels;
    qb_fineprune_result r;
    memset(&r, 0, sizeof r);
    r.layer = tg.conv >= 0 ? tg.conv : tg.layer;
    r.channels = C;
    r.mean_act = xmalloc((size_t)C, sizeof(double));
    r.order = xmalloc((size_t)C, sizeof(int));
    r.curve_pruned = xmalloc((size_t)C + 1, sizeof(int));
    r.curve_ca = xmalloc((size_t)C + 1, sizeof(double));
    r.curve_asr = xmalloc((size_t)C + 1, sizeof(double));

    /* 1. rank on the deployed model */
    layer_channel_means(deployed, tg.layer, clean_train, r.mean_act);
    qb_fineprune_rank(r.mean_act, C, r.order);

    /* 2. prune a float copy step by step, each step re-quantized */
    evaluate(deployed, eval_clean, eval_trig, target, &r.ca_before, &r.asr_before);
    r.curve_pruned[0] = 0;
    r.curve_ca[0] = qb_metric_accuracy(deployed, clean_val);
    r.curve_asr[0] = r.asr_before;
    r.n_steps = 1;
    qb_model work;
    qb_model_copy(&work, deployed);
    work.hooks = NULL; /* the de-quantized weights as a plain float model */
    for (int k = 1; k <= C; k++) {
        qb_fineprune_prune(&work, &tg, r.order[k - 1]);
        qb_qmodel qm;
        if (qb_qmodel_init(&qm, &work, prec, 0.0f, 0, err)) {
            qb_model_free(&work);
            qb_fineprune_result_free(&r);
            return -1;
        }
        r.curve_pruned[k] = k;
        r.curve_ca[k] = qb_metric_accuracy(&qm.model, clean_val);
        r.curve_asr[k] = eval_trig ? qb_metric_target_rate(&qm.model, eval_trig, target) : NAN;
        r.n_steps = k + 1;
        qb_qmodel_free(&qm);
        if (!qb_fineprune_step_ok(r.curve_ca[0], r.curve_ca[k], cfg->max_ca_drop)) break;
    }
    r.n_pruned = qb_fineprune_n_pruned(r.curve_ca, r.n_steps, cfg->max_ca_drop);

    /* the pruned model: the deployed weights with order[0..n_pruned) zeroed */
    qb_model_free(&work);
    qb_model_copy(&work, deployed);
    work.hooks = NULL;
    for (int k = 0; k < r.n_pruned; k++) qb_fineprune_prune(&work, &tg, r.order[k]);
    qb_qmodel qm;
    if (qb_qmodel_init(&qm, &work, prec, 0.0f, 0, err)) goto fail;
    evaluate(&qm.model, eval_clean, eval_trig, target, &r.ca_pruned, &r.asr_pruned);
    qb_qmodel_free(&qm);

    /* 3. fine-tune the float model, keep the mask, re-quantize */
    qb_train_stats st;
    if (qb_train(&work, clean_train, &cfg->tune, &st, err)) {
        qb_error_prefix(err, "fine-pruning: fine-tuning the pruned model: ");
        goto fail;
    }
    r.tune_loss = st.final_loss;
    r.pruned_drift = pruned_max_abs(&work, &tg, r.order, r.n_pruned);
    for (int k = 0; k < r.n_pruned; k++) qb_fineprune_prune(&work, &tg, r.order[k]);
    if (qb_qmodel_init(&qm, &work, prec, 0.0f, 0, err)) goto fail;
    evaluate(&qm.model, eval_clean, eval_trig, target, &r.ca_tuned, &r.asr_tuned);
    qb_qmodel_free(&qm);
    if (!isfinite(r.ca_tuned)) {
        QB_FAIL(err, "fine-pruning: clean accuracy after fine-tuning is not finite");
        goto fail;
    }
    r.mitigated = qb_fineprune_mitigated(r.ca_before, r.ca_tuned, r.asr_tuned);

    if (tuned_fp)
        *tuned_fp = work;
    else
        qb_model_free(&work);
    *out = r;
    return 0;
fail:
    qb_model_free(&work);
    qb_fineprune_result_free(&r);
    return -1;
}

/* ---- the defense --------------------------------------------------------- */

int qb_fineprune_from_input(const qb_defense_input *in, const char *who, qb_fineprune_result *r,
                            qb_model *tuned_fp, qb_error *err)
{
    const qb_params *p = &in->params;
    const size_t n_train = (size_t)qb_params_int(p, "n_train");
    const size_t n_val = (size_t)qb_params_int(p, "n_val");
    qb_fineprune_config cfg;
    qb_fineprune_config_default(&cfg);
    cfg.max_ca_drop = qb_params_num(p, "max_ca_drop");
    cfg.tune.epochs = qb_params_int(p, "epochs");
    cfg.tune.lr = (float)qb_params_num(p, "lr");
    cfg.tune.batch = qb_params_int(p, "batch");
    cfg.tune.seed = qb_seed_derive(in->seed, "fp-finetune");

    qb_dataset tr = {0}, val = {0}, ev = {0}, ev_trig = {0};
    char what[96];
    int rc = -1;
    snprintf(what, sizeof what, "%s (training split)", who);
    if (qb_defense_clean_split(in, what, 0, n_train, &tr, err)) goto out;
    snprintf(what, sizeof what, "%s (validation split)", who);
    if (qb_defense_clean_split(in, what, n_train, n_val, &val, err)) goto out;
    if (in->eval_from >= in->n_pool) {
        QB_FAIL(err, "%s needs evaluation images but the defender's pool has none after "
                     "position %zu",
                who, in->eval_from);
        goto out;
    }
    qb_dataset_subset(&ev, in->test, in->pool + in->eval_from, in->n_pool - in->eval_from);
    qb_poison_asr_set(&ev, in->trigger, &ev_trig);
    rc = qb_fineprune_run(in->model, in->precision, &tr, &val, &ev, &ev_trig, in->trigger->target,
                          &cfg, r, tuned_fp, err);
out:
    qb_dataset_free(&tr);
    qb_dataset_free(&val);
    qb_dataset_free(&ev);
    qb_dataset_free(&ev_trig);
    return rc;
}

int qb_defense_fp(const qb_defense_input *in, qb_defense_result *res, qb_error *err)
{
    qb_fineprune_result r;
    if (qb_fineprune_from_input(in, "fp", &r, NULL, err)) return -1;
    qb_details_add1(res->details, "fp.layer", r.layer);
    qb_details_add(res->details, "fp.mean_act", r.mean_act, (size_t)r.channels);
    qb_details_add_int(res->details, "fp.prune_order", r.order, (size_t)r.channels);
    qb_details_add_int(res->details, "fp.curve_pruned", r.curve_pruned, (size_t)r.n_steps);
    qb_details_add(res->details, "fp.curve_ca", r.curve_ca, (size_t)r.n_steps);
    qb_details_add(res->details, "fp.curve_asr", r.curve_asr, (size_t)r.n_steps);
    qb_details_add1(res->details, "fp.n_pruned", r.n_pruned);
    qb_details_add1(res->details, "fp.ca_before", r.ca_before);
    qb_details_add1(res->details, "fp.asr_before", r.asr_before);
    qb_details_add1(res->details, "fp.ca_pruned", r.ca_pruned);
    qb_details_add1(res->details, "fp.asr_pruned", r.asr_pruned);
    qb_details_add1(res->details, "fp.ca_tuned", r.ca_tuned);
    qb_details_add1(res->details, "fp.asr_tuned", r.asr_tuned);
    qb_details_add1(res->details, "fp.tune_loss", r.tune_loss);
    qb_details_add1(res->details, "fp.pruned_drift", r.pruned_drift);
    qb_details_add1(res->details, "fp.mitigated", r.mitigated);
    /* `detected` = mitigated, where there is a backdoor to remove: a clean
     * model, or a backdoor that is not active at this precision (ASR before
     * already at or below the 20% bar, e.g. a quantization-activated one at
     * fp32), would be "mitigated" trivially, so those are n/a. */
    if (in->attacked && r.asr_before > QB_FP_MAX_ASR)
        res->detected = r.mitigated ? QB_DETECTED_YES : QB_DETECTED_NO;
    else
        res->detected = QB_DETECTED_NA;
    snprintf(res->summary, sizeof res->summary,
             "pruned %d/%d channels; CA %.2f%% -> %.2f%%, ASR %.1f%% -> %.1f%% (pruned %.1f%%)%s",
             r.n_pruned, r.channels, 100.0 * r.ca_before, 100.0 * r.ca_tuned,
             100.0 * r.asr_before, 100.0 * r.asr_tuned, 100.0 * r.asr_pruned,
             r.mitigated ? ": mitigated" : "");
    qb_fineprune_result_free(&r);
    return 0;
}
