/* The cost model of `qblind plan` (jobs/cost.h). */
#include "jobs/cost.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "attacks/model_job.h"
#include "core/xalloc.h"

/* Seconds per unit on one core of the development machine (jobs/cost.h).
 * MAC and ELEM were fitted to the CPU seconds of one epoch of `qblind
 * train` on synthetic at batch 128 (bench/plan_cost.sh: 19.8 s for
 * resnet20, 192.8 s for preact-resnet18, 2026-12-08, after the padded
 * im2col and the 32-lane batch norm; bench/RESULTS.md);
 * PARAM is not fitted (an SGD step with momentum reads and writes ~16
 * bytes per parameter: ~2 ns) and is < 1% of these models' cost at batch
 * 128. */
#define QB_COST_MAC 1.0e-11  /* a multiply-add in a GEMM */
#define QB_COST_ELEM 4.0e-10 /* a value through a memory-bound pass */
#define QB_COST_PARAM 2.0e-9 /* a parameter's optimizer step */

/* A task's evaluations (quantize, CA and ASR over the test set) on LeNet
 * for Fashion-MNIST, and its stages' (stage_seconds), are scaled by the
 * model's inference cost over its test set relative to that LeNet's over
 * Fashion-MNIST's 10,000 test images. */
#define QB_COST_TASK_LENET 1.0

double qb_cost_layer_macs(const qb_layer *l)
{
    if (l->kind == QB_LAYER_CONV2D)
        return (double)qb_layer_out_size(l) * l->in_c * l->k * l->k;
    if (l->kind == QB_LAYER_LINEAR) return (double)l->in_c * l->out_c;
    return 0.0;
}

/* Passes of a memory-bound layer over its output, forward and backward. */
static void elem_passes(qb_layer_kind kind, double *fwd, double *bwd)
{
    switch (kind) {
    case QB_LAYER_BATCHNORM: *fwd = 3, *bwd = 3; break; /* statistics, normalise; two sums, apply */
    case QB_LAYER_ADD: *fwd = 1, *bwd = 2; break;
    case QB_LAYER_RELU:
    case QB_LAYER_MAXPOOL:
    case QB_LAYER_AVGPOOL: *fwd = 1, *bwd = 1; break;
    default: *fwd = *bwd = 0; break; /* flatten is a view; conv/linear elsewhere */
    }
}

double qb_cost_forward_macs(const qb_model *m)
{
    double macs = 0;
    for (int i = 0; i < m->n_layers; i++) macs += qb_cost_layer_macs(&m->layers[i]);
    return macs;
}

/* training 1: forward and backward; 0: forward only */
static double image_seconds(const qb_model *m, int training)
{
    double s = 0;
    for (int i = 0; i < m->n_layers; i++) {
        const qb_layer *l = &m->layers[i];
        double macs = qb_cost_layer_macs(l);
        if (l->kind == QB_LAYER_CONV2D || l->kind == QB_LAYER_LINEAR) {
            /* backward: the weight gradient always, the input's unless it is the model's */
            double passes = training ? (l->src == 0 ? 2.0 : 3.0) : 1.0;
            s += passes * macs * QB_COST_MAC;
        } else {
            double fwd, bwd;
            elem_passes(l->kind, &fwd, &bwd);
            s += (fwd + (training ? bwd : 0.0)) * (double)qb_layer_out_size(l) * QB_COST_ELEM;
        }
    }
    return s;
}

double qb_cost_train_image(const qb_model *m, int batch)
{
    return image_seconds(m, 1) + (double)m->n_train * QB_COST_PARAM / (batch > 0 ? batch : 1);
}

double qb_cost_infer_image(const qb_model *m) { return image_seconds(m, 0); }

/* Seconds of a mitigation or defense run on LeNet, one core (medians of
 * the studies in bench/RESULTS.md); 0 for none and unknown names. */
static double stage_seconds(const char *name)
{
    static const struct {
        const char *name;
        double seconds;
    } cost[] = {
        {"nc", 30.0},       {"ac", 3.5},       {"ss", 2.5},          {"strip", 8.0},
        {"fp", 6.0},        {"forensics", 0.1}, {"finetune", 2.0},   {"requant-pc", 1.0},
        {"requant-round", 1.0}, {"requant-bits", 1.0}, {"requant-noise", 1.0},
        {"fineprune", 6.0},
    };
    for (size_t i = 0; i < sizeof cost / sizeof cost[0]; i++)
        if (!strcmp(name, cost[i].name)) return cost[i].seconds;
    return 0.0;
}

/* The entry of (arch, dataset), added if new. */
static qb_cost_arch *arch_entry(qb_spec_cost *c, const char *arch, const char *dataset)
{
    for (size_t i = 0; i < c->n_archs; i++)
        if (!strcmp(c->archs[i].arch, arch) && !strcmp(c->archs[i].dataset, dataset))
            return &c->archs[i];
    c->archs = xrealloc(c->archs, c->n_archs + 1, sizeof *c->archs);
    qb_cost_arch *a = &c->archs[c->n_archs++];
    memset(a, 0, sizeof *a);
    snprintf(a->arch, sizeof a->arch, "%s", arch);
    snprintf(a->dataset, sizeof a->dataset, "%s", dataset);
    return a;
}

int qb_spec_cost_estimate(const qb_spec *s, qb_spec_cost *out, qb_error *err)
{
    memset(out, 0, sizeof *out);
    qb_model lenet;
    if (qb_model_plan(&lenet, "lenet", 1, 28, 28, 10, err)) return -1;
    const double lenet_infer = qb_cost_infer_image(&lenet);
    double *model_scale = xmalloc(s->n_models ? s->n_models : 1, sizeof(double));
    for (size_t i = 0; i < s->n_models; i++) {
        qb_model_job job;
        qb_spec_model_job(s, i, &job, err); /* returns 0 */
        const char *dataset = s->axes[QB_AXIS_DATASET].names[s->models[i].dataset];
        size_t before = out->n_archs;
        qb_cost_arch *a = arch_entry(out, job.arch, dataset);
        if (out->n_archs > before) { /* planned once per (architecture, dataset) */
            qb_spec_dataset_info di;
            qb_model m;
            qb_error e = {0};
            int bad = qb_spec_dataset_info_of(dataset, &di)
                          ? QB_FAIL(&e, "no shape known for dataset %s", dataset)
                          : qb_model_plan(&m, job.arch, di.c, di.h, di.w, di.classes, &e);
            if (bad) {
                free(model_scale);
                qb_spec_cost_free(out);
                return QB_FAIL(err, "the cost of model %zu (%s on %s): %s", i, job.arch, dataset,
                               e.msg);
            }
            a->macs = qb_cost_forward_macs(&m);
            a->train_image = qb_cost_train_image(&m, job.train.batch);
            a->n_train = di.n_train;
            a->eval_scale = qb_cost_infer_image(&m) * (double)di.n_test / (lenet_infer * 10000.0);
        }
        a->n_models++;
        /* the qa repair: a forward and backward pass per image and epoch
         * for each of its targets and the float model, ~4 trainings' worth */
        double images = (double)job.train.epochs * (double)a->n_train +
                        (job.qa.mode ? (double)job.qa.epochs * 4 * (double)a->n_train : 0.0);
        double t = images * a->train_image;
        out->train_s += t;
        if (t > out->longest_s) out->longest_s = t;
        model_scale[i] = a->eval_scale;
    }
    uint32_t n_mit = s->axes[QB_AXIS_MITIGATION].n, n_def = s->axes[QB_AXIS_DEFENSE].n;
    double *mit_s = xcalloc(n_mit ? n_mit : 1, sizeof(double));
    double *def_s = xcalloc(n_def ? n_def : 1, sizeof(double));
    for (uint32_t v = 0; v < n_mit; v++) mit_s[v] = stage_seconds(s->axes[QB_AXIS_MITIGATION].names[v]);
    for (uint32_t v = 0; v < n_def; v++) def_s[v] = stage_seconds(s->axes[QB_AXIS_DEFENSE].names[v]);
    for (size_t i = 0; i < s->n_tasks; i++) {
        const qb_task *t = &s->tasks[i];
        out->task_s += model_scale[t->model] *
                       (QB_COST_TASK_LENET + mit_s[t->mitigation] + def_s[t->defense]);
    }
    free(model_scale);
    free(mit_s);
    free(def_s);
    return 0;
}

void qb_spec_cost_free(qb_spec_cost *c)
{
    free(c->archs);
    memset(c, 0, sizeof *c);
}
