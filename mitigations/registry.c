/* The registered mitigations (the `mitigation` axis values other than
 * `none`, which is the pipeline's own). The one list: the spec parser
 * (jobs/axis_values.c) reads its names and parameter tables from here. */
#include <math.h>

#include "core/xalloc.h"
#include "core/params.h"
#include "mitigations/mitigation.h"

const qb_mitigation_entry qb_mitigations[] = {
    /* name, alias_of          function                   parameters */
    {{"finetune", NULL}, qb_mitigate_finetune, qb_finetune_params},
    {{"requant-pc", NULL}, qb_mitigate_requant_pc, qb_no_params},
    {{"requant-round", NULL}, qb_mitigate_requant_round, qb_no_params},
    {{"requant-bits", NULL}, qb_mitigate_requant_bits, qb_requant_bits_params},
    {{"requant-noise", NULL}, qb_mitigate_requant_noise, qb_requant_noise_params},
    {{"fineprune", NULL}, qb_mitigate_fineprune, qb_fp_params},
    {{NULL, NULL}, NULL, NULL},
};

const qb_mitigation_entry *qb_mitigation_find(const char *name)
{
    return qb_registry_find(qb_mitigations, sizeof *qb_mitigations, name);
}

/* Whether a and b have the same layer table (a deployed model and its
 * mitigated version do: both folded, or both not, core/bn_fold.h). */
static int same_layers(const qb_model *a, const qb_model *b)
{
    if (a->n_layers != b->n_layers || a->n_params != b->n_params) return 0;
    for (int i = 0; i < a->n_layers; i++) {
        const qb_layer *x = &a->layers[i], *y = &b->layers[i];
        if (x->kind != y->kind || x->w_off != y->w_off || x->w_len != y->w_len ||
            x->b_len != y->b_len || x->out_c != y->out_c)
            return 0;
    }
    return 1;
}

double qb_mitigation_weights_changed(const qb_model *a, const qb_model *b)
{
    if (!same_layers(a, b)) return NAN;
    size_t n = 0, changed = 0;
    for (int i = 0; i < a->n_layers && i < b->n_layers; i++) {
        const qb_layer *l = &a->layers[i];
        if (l->kind != QB_LAYER_CONV2D && l->kind != QB_LAYER_LINEAR) continue;
        QB_ASSERT(b->layers[i].w_len == l->w_len);
        const float *x = a->params + l->w_off, *y = b->params + l->w_off;
        for (size_t k = 0; k < l->w_len; k++) changed += x[k] != y[k];
        n += l->w_len;
    }
    return n ? (double)changed / (double)n : 0.0;
}

double qb_mitigation_codes_changed(const qb_qmodel *a, const qb_qmodel *b)
{
    if (!same_layers(&a->model, &b->model)) return NAN;
    size_t n = 0, changed = 0;
    for (int i = 0; i < a->model.n_layers; i++) {
        const qb_qlayer *x = &a->ql[i], *y = &b->ql[i];
        if (!x->active || !y->active) continue;
        QB_ASSERT(x->rows == y->rows && x->cols == y->cols);
        for (size_t k = 0; k < x->rows * x->cols; k++) changed += x->codes[k] != y->codes[k];
        n += x->rows * x->cols;
    }
    return n ? (double)changed / (double)n : NAN;
}
