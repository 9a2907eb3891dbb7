#include "core/train.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/rng.h"
#include "core/softmax_xent.h"
#include "core/xalloc.h"

double qb_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void qb_train_config_default(qb_train_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->epochs = 5;
    cfg->batch = 64;
    cfg->lr = 0.05f;
    cfg->momentum = 0.9f;
    cfg->weight_decay = 5e-4f;
    cfg->schedule = QB_LR_COSINE;
    cfg->seed = 0;
}

int qb_train_backdoorbench_epochs(const char *dataset)
{
    return dataset && !strcmp(dataset, "gtsrb") ? 50 : 100;
}

void qb_train_config_backdoorbench(qb_train_config *cfg, const char *dataset)
{
    qb_train_config_default(cfg);
    cfg->epochs = qb_train_backdoorbench_epochs(dataset);
    cfg->batch = 128;
    cfg->lr = 0.01f;
    cfg->momentum = 0.9f;
    cfg->weight_decay = 5e-4f;
    cfg->schedule = QB_LR_COSINE;
    cfg->augment.pad = 4;
    cfg->augment.flip = dataset ? qb_dataset_flip_ok(dataset) : 1;
}

int qb_train_config_validate(const qb_train_config *cfg, qb_error *err)
{
    if (cfg->epochs < 0 || cfg->epochs > 100000)
        return QB_FAIL(err, "train.epochs must be in [0, 100000], got %d", cfg->epochs);
    if (cfg->batch < 1 || cfg->batch > 65536)
        return QB_FAIL(err, "train.batch must be in [1, 65536], got %d", cfg->batch);
    if (!(cfg->lr > 0.0f) || !isfinite(cfg->lr))
        return QB_FAIL(err, "train.lr must be a positive number, got %g", (double)cfg->lr);
    if (!(cfg->momentum >= 0.0f && cfg->momentum < 1.0f))
        return QB_FAIL(err, "train.momentum must be in [0, 1), got %g", (double)cfg->momentum);
    if (!(cfg->weight_decay >= 0.0f) || !isfinite(cfg->weight_decay))
        return QB_FAIL(err, "train.weight_decay must be >= 0, got %g", (double)cfg->weight_decay);
    if (cfg->augment.pad < 0 || cfg->augment.pad > QB_AUGMENT_MAX_PAD)
        return QB_FAIL(err, "train.augment padding must be in [0, %d], got %d", QB_AUGMENT_MAX_PAD,
                       cfg->augment.pad);
    if (cfg->augment.flip != 0 && cfg->augment.flip != 1)
        return QB_FAIL(err, "train.augment flip must be 0 or 1, got %d", cfg->augment.flip);
    return 0;
}

int qb_train(qb_model *m, const qb_dataset *train, const qb_train_config *cfg,
             qb_train_stats *stats, qb_error *err)
{
    if (qb_train_config_validate(cfg, err)) return -1;
    if (train->c != m->in_c || train->h != m->in_h || train->w != m->in_w ||
        train->classes != m->classes)
        return QB_FAIL(err, "dataset %s (%dx%dx%d, %d classes) does not match model %s (%dx%dx%d, %d classes)",
                       train->name, train->c, train->h, train->w, train->classes, m->arch,
                       m->in_c, m->in_h, m->in_w, m->classes);
    if (train->n == 0) return QB_FAIL(err, "dataset %s has no training samples", train->name);
    if (train->n > UINT32_MAX) return QB_FAIL(err, "dataset %s is too large", train->name);
    if (qb_norm_validate(&train->norm, train->c, train->name, err)) return -1;

    const int B = cfg->batch;
    const size_t n = train->n, img = qb_dataset_image_size(train);
    const size_t hw = (size_t)train->h * (size_t)train->w;
    const int augment = qb_augment_on(&cfg->augment);
    const long steps_per_epoch = (long)((n + (size_t)B - 1) / (size_t)B);
    const long total = steps_per_epoch * cfg->epochs;

    qb_model_ws ws;
    qb_model_ws_init(&ws, m, B);
    qb_model_ws_set_bn_training(&ws, 1); /* batch statistics, as model.train() */
    qb_sgd sgd;
    qb_sgd_init(&sgd, m->n_train, cfg->momentum, cfg->weight_decay);
    float *grads = xaligned(m->n_params, sizeof(float));
    float *x = xaligned((size_t)B * img, sizeof(float));       /* (B, C, H, W) */
    float *dlogits = xmalloc((size_t)B * m->classes, sizeof(float));
    uint8_t *y = xmalloc((size_t)B, 1);
    uint8_t *px = augment ? xmalloc((size_t)B * img, 1) : NULL; /* (B, C, H, W) augmented */
    uint32_t *order = xmalloc(n, sizeof(uint32_t));
    float *backup = xmalloc(m->n_params, sizeof(float));
    memcpy(backup, m->params, m->n_params * sizeof(float));

    qb_rng rng;
    qb_rng_seed(&rng, qb_seed_derive(cfg->seed, "shuffle"));
    qb_rng aug_rng; /* its own stream: turning augmentation on keeps the batch order */
    qb_rng_seed(&aug_rng, qb_seed_derive(cfg->seed, "augment"));
    double t0 = qb_now(), epoch_loss = 0.0;
    long step = 0;
    int rc = 0;
    for (int e = 0; e < cfg->epochs && rc == 0; e++) {
        for (size_t i = 0; i < n; i++) order[i] = (uint32_t)i;
        qb_rng_shuffle_u32(&rng, order, n);
        epoch_loss = 0.0;
        for (long s = 0; s < steps_per_epoch; s++, step++) {
            size_t first = (size_t)s * B;
            int b = (int)(n - first < (size_t)B ? n - first : (size_t)B);
            if (augment) {
                for (int i = 0; i < b; i++) {
                    qb_augment_draw d;
                    qb_augment_sample(&cfg->augment, &aug_rng, &d);
                    const uint8_t *src = train->images + (size_t)order[first + i] * img;
                    qb_augment_image(&cfg->augment, &d, src, px + (size_t)i * img, train->c,
                                     train->h, train->w);
                }
                qb_norm_pixels(&train->norm, px, (size_t)b, train->c, hw, x);
            } else {
                qb_dataset_batch_float(train, order + first, 0, (size_t)b, x);
            }
            for (int i = 0; i < b; i++) y[i] = train->labels[order[first + i]];
            const float *logits = qb_model_forward(m, &ws, x, b, 1);
            qb_model_bn_update(m, &ws);
            float loss = qb_softmax_xent(b, m->classes, logits, y, dlogits);
            if (!isfinite(loss)) {
                rc = QB_FAIL(err, "training diverged: loss %g at epoch %d step %ld (lr %g)",
                             (double)loss, e + 1, s + 1, (double)cfg->lr);
                memcpy(m->params, backup, m->n_params * sizeof(float));
                break;
            }
            epoch_loss += loss * b;
            memset(grads, 0, m->n_params * sizeof(float));
            qb_model_backward(m, &ws, dlogits, b, grads, NULL);
            qb_sgd_step(&sgd, m->params, grads, qb_lr_at(cfg->schedule, cfg->lr, step, total));
        }
        if (rc) break;
        epoch_loss /= (double)n;
        /* The loss is checked every step; parameters once per epoch (a
         * last step can overflow them without a non-finite loss). */
        for (size_t i = 0; i < m->n_params; i++)
            if (!isfinite(m->params[i])) {
                rc = QB_FAIL(err, "training diverged: parameter %zu is %g after epoch %d (lr %g)", i,
                             (double)m->params[i], e + 1, (double)cfg->lr);
                memcpy(m->params, backup, m->n_params * sizeof(float));
                break;
            }
        if (cfg->progress && rc == 0)
            fprintf(stderr, "  epoch %d/%d  loss %.4f  %.1f s\n", e + 1, cfg->epochs, epoch_loss,
                    qb_now() - t0);
    }
    if (stats) {
        stats->seconds = qb_now() - t0;
        stats->final_loss = rc ? NAN : epoch_loss;
        stats->steps = step;
    }
    free(backup);
    free(order);
    free(px);
    free(y);
    free(dlogits);
    free(x);
    free(grads);
    qb_sgd_free(&sgd);
    qb_model_ws_free(&ws);
    return rc;
}
