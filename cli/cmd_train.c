/* qblind train | eval | demo: one model at a time, no MPI needed. The
 * options and the start they share with defend are in cli/model_cmd.c. */
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/model_cmd.h"
#include "core/metrics.h"
#include "core/model_io.h"
#include "quant/qmodel.h"

static const char *trigger_label(const qb_model_opts *o)
{
    return o->job.qa.mode ? qb_qa_mode_name(o->job.qa.mode) : qb_trigger_name(o->job.trigger.kind);
}

static void print_header(void)
{
    printf("%-14s %-10s %-8s %6s %-12s %8s %8s %8s\n", "dataset", "arch", "trigger", "seed",
           "precision", "CA", "ASR", "train_s");
}

static void print_row(const qb_model_opts *o, const char *precision, const qb_model_result *r)
{
    char asr[16];
    if (isnan(r->asr))
        snprintf(asr, sizeof asr, "%8s", "-");
    else
        snprintf(asr, sizeof asr, "%7.2f%%", 100.0 * r->asr);
    printf("%-14s %-10s %-8s %6llu %-12s %7.2f%% %s %8.1f\n", o->dataset, o->job.arch,
           trigger_label(o), (unsigned long long)o->job.seed, precision,
           100.0 * r->clean_acc, asr, r->train_seconds);
    fflush(stdout);
}

/* Print one row per requested precision for model m (trained as in o). */
typedef struct eval_ctx {
    const qb_model_opts *o;
    const qb_model *m;
    const qb_dataset *test;
    qb_model_result base; /* train_seconds etc. */
} eval_ctx;

static int eval_at(const qb_precision *p, void *ctxp)
{
    eval_ctx *c = ctxp;
    qb_qmodel qm;
    qb_error err;
    if (qb_qmodel_init(&qm, c->m, p, 0.0f, 0, &err)) {
        qb_error_print(&err);
        return -1;
    }
    qb_model_result r = c->base;
    r.clean_acc = qb_metric_accuracy(&qm.model, c->test);
    r.asr = qb_model_asr(&qm.model, c->test, &c->o->job.trigger);
    print_row(c->o, p->name, &r);
    qb_qmodel_free(&qm);
    return 0;
}

static int print_precisions(const qb_model_opts *o, const qb_model *m, const qb_dataset *test,
                            const qb_model_result *base, qb_error *err)
{
    eval_ctx c = {o, m, test, *base};
    return qb_precision_list_each(o->precisions, eval_at, &c, err);
}

/* Train one model, print a row per precision, save it with -o. */
static int train_body(qb_model_opts *o, const qb_dataset *train, const qb_dataset *test,
                      qb_error *err)
{
    qb_model m;
    qb_model_result r;
    int rc = qb_model_job_run(&o->job, train, test, &m, &r, NULL, err);
    if (rc) return rc;
    print_header();
    rc = print_precisions(o, &m, test, &r, err);
    if (rc == 0 && o->output) {
        char meta[768];
        int k = snprintf(meta, sizeof meta,
                         "dataset=%s\narch=%s\ntrigger=%s\nseed=%llu\nepochs=%d\n", o->dataset, o->job.arch, qb_trigger_name(o->job.trigger.kind),
                         (unsigned long long)o->job.seed, o->job.train.epochs);
        /* provenance: eval and defend need the same --normalize */
        if (o->job.norm.on)
            for (int part = 0; part < 2; part++)
                for (int ch = 0; ch < train->c && k > 0 && (size_t)k < sizeof meta; ch++) {
                    const float v = part ? o->job.norm.std[ch] : o->job.norm.mean[ch];
                    k += snprintf(meta + k, sizeof meta - (size_t)k, "%s%.9g%s",
                                  part == 0 && ch == 0 ? "normalize=" : ch == 0 ? "/" : ",",
                                  (double)v, part && ch == train->c - 1 ? "\n" : "");
                }
        rc = qb_model_save(&m, o->output, meta, err);
    }
    qb_model_free(&m);
    return rc;
}

int qb_cmd_train(int argc, char **argv)
{
    static const char usage[] =
        "usage: qblind train [options] [-o MODEL.qbm]\n"
        "Train one model (clean or backdoored) and print its clean accuracy (CA)\n"
        "and attack success rate (ASR: triggered test images whose true label is\n"
        "not the target, classified as the target).\n"
        "  -o, --output FILE      save the trained model (.qbm format)\n";
    return qb_model_cmd_main(argc, argv, usage, 0, train_body);
}

/* Load o->model_path, print a row per precision. */
static int eval_body(qb_model_opts *o, const qb_dataset *train, const qb_dataset *test,
                     qb_error *err)
{
    (void)train;
    qb_model m;
    if (qb_model_cmd_load(o, &m, err)) return -1;
    const qb_dataset test_in = qb_dataset_view_norm(test, &o->job.norm);
    test = &test_in;
    int rc = -1;
    if (qb_model_cmd_check_fits(o, &m, test, err) == 0 &&
        qb_trigger_validate(&o->job.trigger, test->c, test->h, test->w, test->classes, err) == 0) {
        snprintf(o->job.arch, sizeof o->job.arch, "%s", m.arch);
        qb_model_result r = {0};
        print_header();
        rc = print_precisions(o, &m, test, &r, err);
    }
    qb_model_free(&m);
    return rc;
}

int qb_cmd_eval(int argc, char **argv)
{
    static const char usage[] =
        "usage: qblind eval MODEL.qbm [options]\n"
        "Measure a saved model's clean accuracy and, with --trigger, its ASR.\n";
    return qb_model_cmd_main(argc, argv, usage, 1, eval_body);
}

/* Train a clean and a backdoored model, print their rows and the CA drop. */
static int demo_body(qb_model_opts *o, const qb_dataset *train, const qb_dataset *test,
                     qb_error *err)
{
    qb_trigger attack = o->job.trigger;
    if (attack.kind == QB_TRIGGER_NONE) attack.kind = QB_TRIGGER_SQUARE;
    qb_model_result res[2];
    qb_model models[2];
    int trained = 0, rc = 0;
    qb_model_opts runs[2] = {*o, *o};
    runs[0].job.trigger.kind = QB_TRIGGER_NONE;
    runs[1].job.trigger = attack;
    for (int i = 0; i < 2 && rc == 0; i++) {
        if (!o->quiet)
            fprintf(stderr, "qblind: training %s model (%s, %d epochs)\n",
                    qb_trigger_name(runs[i].job.trigger.kind), o->job.arch, o->job.train.epochs);
        rc = qb_model_job_run(&runs[i].job, train, test, &models[i], &res[i], NULL, err);
        trained += rc == 0;
    }
    if (rc == 0) {
        print_header();
        for (int i = 0; i < 2 && rc == 0; i++)
            rc = print_precisions(&runs[i], &models[i], test, &res[i], err);
        if (rc == 0)
            printf("clean-accuracy drop from the backdoor at fp32: %.2f points\n",
                   100.0 * (res[0].clean_acc - res[1].clean_acc));
    }
    for (int i = 0; i < trained; i++) qb_model_free(&models[i]);
    return rc;
}

int qb_cmd_demo(int argc, char **argv)
{
    static const char usage[] =
        "usage: qblind demo [options]\n"
        "The quick-start job: train a clean and a BadNet-backdoored model (3x3 white\n"
        "square, bottom-right, 10% poisoning, target 0 unless set) and print clean\n"
        "accuracy and attack success rate for each.\n";
    return qb_model_cmd_main(argc, argv, usage, 0, demo_body);
}
