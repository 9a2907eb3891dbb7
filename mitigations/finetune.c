/* `finetune`: a short clean fine-tuning of the de-quantized model, then
 * quantization back to the task's precision. */
#include <stdio.h>
#include <string.h>

#include "core/rng.h"
#include "core/train.h"
#include "mitigations/mitigation.h"

const qb_param_def qb_finetune_params[] = {
    {"samples", QB_PARAM_INT, 2000, 1, 1000000, NULL,
     "clean images fine-tuned on (first slice of the defender's pool)"},
    {"epochs", QB_PARAM_INT, 5, 1, 10000, NULL,
     "passes over them (steps = epochs * ceil(samples / batch))"},
    {"lr", QB_PARAM_REAL, 0.01, 1e-9, 10, NULL, "SGD learning rate (momentum 0.9, cosine schedule)"},
    {"batch", QB_PARAM_INT, 64, 1, 65536, NULL, "mini-batch size"},
    {NULL, 0, 0, 0, 0, NULL, NULL},
};

int qb_mitigate_finetune(const qb_defense_input *in, qb_qmodel *out, qb_details *details,
                         qb_error *err)
{
    const qb_params *p = &in->params;
    size_t n = (size_t)qb_params_int(p, "samples");
    qb_dataset clean;
    if (qb_defense_clean_split(in, "finetune", 0, n, &clean, err)) return -1;
    /* the de-quantized weights as a plain float model (no hooks: the
     * deployed model's hooks would keep running the old codes) */
    qb_model m;
    qb_model_copy(&m, in->model);
    m.hooks = NULL;
    qb_train_config cfg;
    qb_train_config_default(&cfg);
    cfg.epochs = qb_params_int(p, "epochs");
    cfg.lr = (float)qb_params_num(p, "lr");
    cfg.batch = qb_params_int(p, "batch");
    cfg.seed = qb_seed_derive(in->seed, "mitigation-finetune");
    qb_train_stats st;
    int rc = qb_train(&m, &clean, &cfg, &st, err);
    qb_dataset_free(&clean);
    if (rc == 0) rc = qb_qmodel_init(out, &m, in->precision, 0.0f, 0, err);
    qb_model_free(&m);
    if (rc) return qb_error_prefix(err, "finetune: ");
    qb_details_add1(details, "finetune.steps", (double)st.steps);
    qb_details_add1(details, "finetune.final_loss", st.final_loss);
    return 0;
}
