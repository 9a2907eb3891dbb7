/* qblind train | eval | demo | defend: one model at a time, no MPI needed. */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/dataset.h"
#include "core/metrics.h"
#include "core/model_io.h"
#include "defenses/defense.h"
#include "pipeline/defense_stage.h"
#include "attacks/model_job.h"
#include "store/results.h"
#include "cli/cli.h"
#include "quant/qmodel.h"

#define MAX_DEFEND_PARAMS 32
typedef struct train_opts {
    const char *dataset, *data_dir, *output, *model_path;
    const char *precisions; /* comma-separated */
    const char *defenses;   /* defend: comma-separated */
    qb_param_kv params[MAX_DEFEND_PARAMS]; /* defend: -P key=value, key and value
                                              point into argv (split in place) */
    size_t n_params;
    int arch_set, quiet, details;
    qb_model_job job;
} train_opts;

enum { OPT_DATA_DIR = 256, OPT_EPOCHS, OPT_BATCH, OPT_LR, OPT_MOMENTUM, OPT_WD, OPT_SCHEDULE,
       OPT_TRIGGER_SIZE, OPT_TRIGGER_X, OPT_TRIGGER_Y, OPT_ALPHA, OPT_TARGET, OPT_RATE,
       OPT_ARCH, OPT_PRECISION, OPT_QA_TARGET, OPT_QA_EPOCHS, OPT_QA_LR, OPT_QA_EPS,
       OPT_QA_LAMBDA, OPT_DETAILS };

static const struct option long_opts[] = {
    {"help", no_argument, NULL, 'h'},
    {"dataset", required_argument, NULL, 'd'},
    {"data-dir", required_argument, NULL, OPT_DATA_DIR},
    {"arch", required_argument, NULL, OPT_ARCH},
    {"epochs", required_argument, NULL, OPT_EPOCHS},
    {"batch", required_argument, NULL, OPT_BATCH},
    {"lr", required_argument, NULL, OPT_LR},
    {"momentum", required_argument, NULL, OPT_MOMENTUM},
    {"weight-decay", required_argument, NULL, OPT_WD},
    {"schedule", required_argument, NULL, OPT_SCHEDULE},
    {"seed", required_argument, NULL, 's'},
    {"trigger", required_argument, NULL, 't'},
    {"trigger-size", required_argument, NULL, OPT_TRIGGER_SIZE},
    {"trigger-x", required_argument, NULL, OPT_TRIGGER_X},
    {"trigger-y", required_argument, NULL, OPT_TRIGGER_Y},
    {"alpha", required_argument, NULL, OPT_ALPHA},
    {"target", required_argument, NULL, OPT_TARGET},
    {"rate", required_argument, NULL, OPT_RATE},
    {"output", required_argument, NULL, 'o'},
    {"precision", required_argument, NULL, 'p'},
    {"qa-target", required_argument, NULL, OPT_QA_TARGET},
    {"qa-epochs", required_argument, NULL, OPT_QA_EPOCHS},
    {"qa-lr", required_argument, NULL, OPT_QA_LR},
    {"qa-eps", required_argument, NULL, OPT_QA_EPS},
    {"qa-lambda", required_argument, NULL, OPT_QA_LAMBDA},
    {"quiet", no_argument, NULL, 'q'},
    {"defense", required_argument, NULL, 'D'},
    {"param", required_argument, NULL, 'P'},
    {"details", no_argument, NULL, OPT_DETAILS},
    {NULL, 0, NULL, 0},
};

static const char common_help[] =
    "Data and model:\n"
    "  -d, --dataset NAME     fashion-mnist (default), mnist, cifar10, gtsrb, synthetic\n"
    "      --data-dir DIR     where the dataset files are (default: $QBLIND_DATA_DIR,\n"
    "                         then /usr/share/datasets/fashion-mnist)\n"
    "      --arch NAME        lenet (default for 28x28) or cnn-small (default for 32x32)\n"
    "Training (defaults in brackets):\n"
    "      --epochs N         [5]\n"
    "      --batch N          [64]\n"
    "      --lr X             [0.05] base learning rate\n"
    "      --momentum X       [0.9]\n"
    "      --weight-decay X   [5e-4]\n"
    "      --schedule S       [cosine] constant | cosine | step\n"
    "  -s, --seed N           [0] seeds init, batch order, poisoning and noise\n"
    "Attack:\n"
    "  -t, --trigger KIND     clean | square (= badnet) | checker | noise | blend |\n"
    "                         qa-pgd | qa-loss (quantization-activated: square trigger,\n"
    "                         clean at FP32, backdoored at the --qa-target precisions)\n"
    "      --trigger-size N   [3] patch side in pixels\n"
    "      --trigger-x N, --trigger-y N\n"
    "                         [-1] patch corner; negative counts from the right/bottom\n"
    "      --alpha X          [0.15] blend weight of the noise image\n"
    "      --target N         [0] target class\n"
    "      --rate X           [0.10] fraction of the training set poisoned\n"
    "Quantization-activated attacks (qa-pgd, qa-loss):\n"
    "      --qa-target LIST   [int8] precisions where the backdoor must be active\n"
    "      --qa-epochs N      [2 for qa-pgd, 3 for qa-loss] fine-tuning epochs\n"
    "      --qa-lr X          [0.01] SGD learning rate (momentum 0.9)\n"
    "      --qa-eps X         [0.1] qa-pgd: margin inside each rounding cell\n"
    "      --qa-lambda X      [1.0] qa-loss: weight of the backdoor/quantized terms\n"
    "Deployment:\n"
    "  -p, --precision LIST   [fp32] comma-separated precisions to evaluate at:\n"
    "                         fp32, int8, int8-linear, int4, wNaM (w4a8, w3a32, ...),\n"
    "                         suffixes -pc (per-channel), -away (round half away)\n"
    "  -q, --quiet            no per-epoch progress\n"
    "  -h, --help             this help\n";

/* Call fn for every precision of a comma-separated list (fn NULL: only
 * validate). Stops at the first error. */
static int for_each_precision(const char *list, int (*fn)(const qb_precision *, void *), void *ctx,
                              qb_error *err)
{
    char buf[256];
    if (strlen(list) >= sizeof buf) return QB_FAIL(err, "--precision: list too long");
    snprintf(buf, sizeof buf, "%s", list);
    char *save = NULL;
    int n = 0;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save), n++) {
        qb_precision p;
        if (qb_precision_parse(tok, &p, err)) return qb_error_prefix(err, "--precision: ");
        if (fn && fn(&p, ctx)) return -1;
    }
    if (n == 0) return QB_FAIL(err, "--precision: empty list");
    return 0;
}

static int qa_default_epochs(qb_qa_mode mode)
{
    qb_qa_config c;
    qb_qa_config_default(&c, mode);
    return c.epochs;
}

static int add_qa_target(const qb_precision *p, void *ctx)
{
    qb_qa_config *qa = ctx;
    if (qa->n_targets >= QB_QA_MAX_TARGETS) return -1;
    qa->targets[qa->n_targets++] = *p;
    return 0;
}

static int parse_qa_targets(const char *list, qb_qa_config *qa, qb_error *err)
{
    qa->n_targets = 0;
    if (for_each_precision(list, add_qa_target, qa, err))
        return qa->n_targets >= QB_QA_MAX_TARGETS
                   ? QB_FAIL(err, "--qa-target: at most %d precisions", QB_QA_MAX_TARGETS)
                   : -1;
    for (int i = 0; i < qa->n_targets; i++)
        if (qb_precision_is_float(&qa->targets[i]))
            return QB_FAIL(err, "--qa-target: %s is not a quantized precision", qa->targets[i].name);
    return 0;
}

/* Parse the options shared by train/eval/demo. Returns 0, 1 for --help
 * (already printed), -1 on error (in err). */
static int parse_opts(int argc, char **argv, train_opts *o, const char *usage, qb_error *err)
{
    memset(o, 0, sizeof *o);
    o->dataset = "fashion-mnist";
    o->precisions = "fp32";
    qb_model_job_default(&o->job);
    qb_trigger t;
    qb_trigger_default(&t, QB_TRIGGER_NONE);
    int size = -1, tx = 0, ty = 0, xset = 0, yset = 0, target = -1;
    float alpha = -1.0f;
    int qa_epochs = -1;
    optind = 1;
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":hd:s:t:o:p:qD:P:", long_opts, NULL)) != -1) {
        qb_train_config *tc = &o->job.train;
        int rc = 0;
        switch (c) {
        case 'h': printf("%s\n%s", usage, common_help); return 1;
        case 'd': o->dataset = optarg; break;
        case OPT_DATA_DIR: o->data_dir = optarg; break;
        case OPT_ARCH:
            snprintf(o->job.arch, sizeof o->job.arch, "%s", optarg);
            o->arch_set = 1;
            break;
        case OPT_EPOCHS: rc = qb_cli_int("--epochs", optarg, 0, 100000, &tc->epochs, err); break;
        case OPT_BATCH: rc = qb_cli_int("--batch", optarg, 1, 65536, &tc->batch, err); break;
        case OPT_LR: rc = qb_cli_float("--lr", optarg, 1e-9, 100, &tc->lr, err); break;
        case OPT_MOMENTUM: rc = qb_cli_float("--momentum", optarg, 0, 0.999999, &tc->momentum, err); break;
        case OPT_WD: rc = qb_cli_float("--weight-decay", optarg, 0, 1, &tc->weight_decay, err); break;
        case OPT_SCHEDULE: rc = qb_lr_schedule_parse(optarg, &tc->schedule, err); break;
        case 's': rc = qb_cli_u64("--seed", optarg, &o->job.seed, err); break;
        case 't': {
            qb_qa_mode qa = qb_qa_mode_from_name(optarg);
            rc = qb_trigger_parse(qa ? "square" : optarg, &t, err);
            o->job.qa.mode = qa;
            break;
        }
        case OPT_QA_TARGET: rc = parse_qa_targets(optarg, &o->job.qa, err); break;
        case OPT_QA_EPOCHS: rc = qb_cli_int("--qa-epochs", optarg, 0, 10000, &qa_epochs, err); break;
        case OPT_QA_LR: rc = qb_cli_float("--qa-lr", optarg, 1e-9, 100, &o->job.qa.lr, err); break;
        case OPT_QA_EPS: rc = qb_cli_float("--qa-eps", optarg, 0, 0.49, &o->job.qa.eps, err); break;
        case OPT_QA_LAMBDA: rc = qb_cli_float("--qa-lambda", optarg, 0, 1000, &o->job.qa.lambda, err); break;
        case OPT_TRIGGER_SIZE: rc = qb_cli_int("--trigger-size", optarg, 1, 4096, &size, err); break;
        case OPT_TRIGGER_X: rc = qb_cli_int("--trigger-x", optarg, -4096, 4096, &tx, err); xset = 1; break;
        case OPT_TRIGGER_Y: rc = qb_cli_int("--trigger-y", optarg, -4096, 4096, &ty, err); yset = 1; break;
        case OPT_ALPHA: rc = qb_cli_float("--alpha", optarg, 0, 1, &alpha, err); break;
        case OPT_TARGET: rc = qb_cli_int("--target", optarg, 0, 255, &target, err); break;
        case OPT_RATE: rc = qb_cli_double("--rate", optarg, 0, 0.99, &o->job.poison_rate, err); break;
        case 'o': o->output = optarg; break;
        case 'p': o->precisions = optarg; break;
        case 'q': o->quiet = 1; break;
        case 'D': o->defenses = optarg; break;
        case OPT_DETAILS: o->details = 1; break;
        case 'P': {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg)
                return QB_FAIL(err, "--param \"%s\": expected KEY=VALUE", optarg);
            if (o->n_params == MAX_DEFEND_PARAMS)
                return QB_FAIL(err, "--param: at most %d", MAX_DEFEND_PARAMS);
            *eq = '\0';
            o->params[o->n_params].key = optarg;
            o->params[o->n_params++].value = eq + 1;
            break;
        }
        case ':': return QB_FAIL(err, "option %s needs a value (see --help)", argv[optind - 1]);
        default: return QB_FAIL(err, "unknown option %s (see --help)", argv[optind - 1]);
        }
        if (rc) return -1;
    }
    if (optind < argc) o->model_path = argv[optind++];
    if (optind < argc) return QB_FAIL(err, "unexpected argument \"%s\" (see --help)", argv[optind]);
    o->job.trigger = t;
    if (size > 0) o->job.trigger.size = size;
    if (xset) o->job.trigger.x = tx;
    if (yset) o->job.trigger.y = ty;
    if (alpha >= 0.0f) o->job.trigger.alpha = alpha;
    if (target >= 0) o->job.trigger.target = target;
    o->job.train.progress = !o->quiet;
    o->job.qa.epochs = qa_epochs >= 0 ? qa_epochs : qa_default_epochs(o->job.qa.mode);
    return for_each_precision(o->precisions, NULL, NULL, err);
}

static int load_data(const train_opts *o, qb_dataset *train, qb_dataset *test, qb_error *err)
{
    double t0 = qb_now();
    if (qb_dataset_load(o->dataset, o->data_dir, QB_SYNTHETIC_SEED, train, test, err)) return -1;
    if (!o->quiet)
        fprintf(stderr, "qblind: %s: %zu training and %zu test images (%dx%dx%d, %d classes), %.1f s\n",
                o->dataset, train->n, test->n, train->c, train->h, train->w, train->classes,
                qb_now() - t0);
    return 0;
}

/* By name (core/dataset.h), the same rule as a spec's `train.arch: auto`. */
static void default_arch(train_opts *o)
{
    if (!o->arch_set)
        snprintf(o->job.arch, sizeof o->job.arch, "%s", qb_dataset_default_arch(o->dataset));
}

static const char *trigger_label(const train_opts *o)
{
    return o->job.qa.mode ? qb_qa_mode_name(o->job.qa.mode) : qb_trigger_name(o->job.trigger.kind);
}

static void print_header(void)
{
    printf("%-14s %-10s %-8s %6s %-12s %8s %8s %8s\n", "dataset", "arch", "trigger", "seed",
           "precision", "CA", "ASR", "train_s");
}

static void print_row(const train_opts *o, const char *precision, const qb_model_result *r)
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
    const train_opts *o;
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

static int print_precisions(const train_opts *o, const qb_model *m, const qb_dataset *test,
                            const qb_model_result *base, qb_error *err)
{
    eval_ctx c = {o, m, test, *base};
    return for_each_precision(o->precisions, eval_at, &c, err);
}

static int fail(qb_error *err)
{
    qb_error_print(err);
    return 1;
}

/* Shared start of every command: parse, check the positional argument
 * (a model file for eval, none otherwise), one BLAS thread, load the data.
 * Returns 0 to go on, else the exit code (0 after --help). */
static int cmd_start(int argc, char **argv, const char *usage, int wants_model, train_opts *o,
                     qb_dataset *train, qb_dataset *test, qb_error *err)
{
    int rc = parse_opts(argc, argv, o, usage, err);
    if (rc) return rc > 0 ? -1 : fail(err);
    if (wants_model && !o->model_path) {
        QB_FAIL(err, "%s needs a model file (see --help)", argv[0]);
        return fail(err);
    }
    if (!wants_model && o->model_path) {
        QB_FAIL(err, "unexpected argument \"%s\" (see --help)", o->model_path);
        return fail(err);
    }
    qb_blas_single_thread();
    if (load_data(o, train, test, err)) return fail(err);
    default_arch(o);
    return 0;
}

int qb_cmd_train(int argc, char **argv)
{
    static const char usage[] =
        "usage: qblind train [options] [-o MODEL.qbm]\n"
        "Train one model (clean or backdoored) and print its clean accuracy (CA)\n"
        "and attack success rate (ASR: triggered test images whose true label is\n"
        "not the target, classified as the target).\n"
        "  -o, --output FILE      save the trained model (.qbm format)\n";
    train_opts o;
    qb_error err;
    qb_dataset train, test;
    int rc = cmd_start(argc, argv, usage, 0, &o, &train, &test, &err);
    if (rc) return rc < 0 ? 0 : rc;
    qb_model m;
    qb_model_result r;
    rc = qb_model_job_run(&o.job, &train, &test, &m, &r, NULL, &err);
    if (rc == 0) {
        print_header();
        rc = print_precisions(&o, &m, &test, &r, &err);
        if (rc == 0 && o.output) {
            char meta[512];
            snprintf(meta, sizeof meta, "dataset=%s\narch=%s\ntrigger=%s\nseed=%llu\nepochs=%d\n",
                     o.dataset, o.job.arch, qb_trigger_name(o.job.trigger.kind),
                     (unsigned long long)o.job.seed, o.job.train.epochs);
            rc = qb_model_save(&m, o.output, meta, &err);
        }
        qb_model_free(&m);
    }
    qb_dataset_free(&train);
    qb_dataset_free(&test);
    return rc ? fail(&err) : 0;
}

int qb_cmd_eval(int argc, char **argv)
{
    static const char usage[] =
        "usage: qblind eval MODEL.qbm [options]\n"
        "Measure a saved model's clean accuracy and, with --trigger, its ASR.\n";
    train_opts o;
    qb_error err;
    qb_dataset train, test;
    int rc = cmd_start(argc, argv, usage, 1, &o, &train, &test, &err);
    if (rc) return rc < 0 ? 0 : rc;
    qb_model m;
    if (qb_model_load(&m, o.model_path, NULL, &err)) {
        qb_dataset_free(&train);
        qb_dataset_free(&test);
        return fail(&err);
    }
    if (test.c != m.in_c || test.h != m.in_h || test.w != m.in_w || test.classes != m.classes) {
        QB_FAIL(&err, "model %s expects %dx%dx%d inputs with %d classes; dataset %s has %dx%dx%d with %d",
                o.model_path, m.in_c, m.in_h, m.in_w, m.classes, o.dataset, test.c, test.h, test.w,
                test.classes);
        rc = -1;
    } else if (qb_trigger_validate(&o.job.trigger, test.c, test.h, test.w, test.classes, &err)) {
        rc = -1;
    } else {
        snprintf(o.job.arch, sizeof o.job.arch, "%s", m.arch);
        qb_model_result r = {0};
        print_header();
        rc = print_precisions(&o, &m, &test, &r, &err);
    }
    qb_model_free(&m);
    qb_dataset_free(&train);
    qb_dataset_free(&test);
    return rc ? fail(&err) : 0;
}

int qb_cmd_demo(int argc, char **argv)
{
    static const char usage[] =
        "usage: qblind demo [options]\n"
        "The quick-start job: train a clean and a BadNet-backdoored model (3x3 white\n"
        "square, bottom-right, 10% poisoning, target 0 unless set) and print clean\n"
        "accuracy and attack success rate for each.\n";
    train_opts o;
    qb_error err;
    qb_dataset train, test;
    int rc = cmd_start(argc, argv, usage, 0, &o, &train, &test, &err);
    if (rc) return rc < 0 ? 0 : rc;
    qb_trigger attack = o.job.trigger;
    if (attack.kind == QB_TRIGGER_NONE) attack.kind = QB_TRIGGER_SQUARE;
    qb_model_result res[2];
    qb_model models[2];
    int trained = 0;
    train_opts runs[2] = {o, o};
    runs[0].job.trigger.kind = QB_TRIGGER_NONE;
    runs[1].job.trigger = attack;
    for (int i = 0; i < 2 && rc == 0; i++) {
        if (!o.quiet)
            fprintf(stderr, "qblind: training %s model (%s, %d epochs)\n",
                    qb_trigger_name(runs[i].job.trigger.kind), o.job.arch, o.job.train.epochs);
        rc = qb_model_job_run(&runs[i].job, &train, &test, &models[i], &res[i], NULL, &err);
        trained += rc == 0;
    }
    if (rc == 0) {
        print_header();
        for (int i = 0; i < 2 && rc == 0; i++)
            rc = print_precisions(&runs[i], &models[i], &test, &res[i], &err);
        if (rc == 0)
            printf("clean-accuracy drop from the backdoor at fp32: %.2f points\n",
                   100.0 * (res[0].clean_acc - res[1].clean_acc));
    }
    for (int i = 0; i < trained; i++) qb_model_free(&models[i]);
    qb_dataset_free(&train);
    qb_dataset_free(&test);
    return rc ? fail(&err) : 0;
}

/* ---- qblind defend ------------------------------------------------------ */

typedef struct defend_ctx {
    const train_opts *o;
    const qb_model *m;
    qb_defense_env env;
    qb_error *err;
} defend_ctx;

static void print_details(const qb_details *d)
{
    for (size_t k = 0; k < d->n; k++) {
        const qb_detail *e = &d->items[k];
        printf("    %-26s", e->name);
        size_t show = e->n > 12 ? 12 : e->n;
        for (size_t i = 0; i < show; i++) printf(" %.4g", e->v[i]);
        if (e->n > show) printf(" ... (%zu values)", e->n);
        printf("\n");
    }
}

static int defend_at(const qb_precision *p, void *ctxp)
{
    defend_ctx *c = ctxp;
    const train_opts *o = c->o;
    qb_qmodel qm;
    if (qb_qmodel_init(&qm, c->m, p, 0.0f, 0, c->err)) return -1;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", o->defenses);
    char *save = NULL;
    int rc = 0;
    for (char *name = strtok_r(buf, ",", &save); name && !rc; name = strtok_r(NULL, ",", &save)) {
        const qb_defense_entry *e = qb_defense_find(name);
        qb_params prm = {e ? e->params : NULL, o->n_params, o->params};
        for (size_t k = 0; e && k < o->n_params; k++)
            if (qb_params_check(e->params, o->params[k].key, o->params[k].value, c->err)) {
                qb_error_prefix(c->err, "--param for %s: ", name);
                rc = -1;
            }
        if (rc) break;
        qb_defense_input in;
        qb_defense_env_input(&c->env, &qm, c->m, &prm, &in);
        qb_details det;
        qb_details_init(&det);
        qb_defense_result r = {QB_DETECTED_NA, &det, ""};
        double t0 = qb_now();
        qb_error derr;
        int drc = e->run(&in, &r, &derr);
        double secs = qb_now() - t0;
        const char *verdict = drc ? "error" : r.detected == 1 ? "yes" : r.detected == 0 ? "no" : "n/a";
        printf("%-12s %-10s %-8s %8.1f  %s\n", p->name, name, verdict, secs,
               drc ? derr.msg : r.summary);
        if (o->details && !drc) print_details(&det);
        fflush(stdout);
        qb_details_free(&det);
    }
    qb_qmodel_free(&qm);
    return rc;
}

static int check_defense_names(const char *list, qb_error *err)
{
    char buf[256];
    if (strlen(list) >= sizeof buf) return QB_FAIL(err, "--defense: list too long");
    snprintf(buf, sizeof buf, "%s", list);
    char *save = NULL;
    int n = 0;
    for (char *name = strtok_r(buf, ",", &save); name; name = strtok_r(NULL, ",", &save), n++)
        if (!qb_defense_find(name)) {
            char names[128] = "";
            for (const qb_defense_entry *e = qb_defenses; e->name; e++)
                snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
                         e == qb_defenses ? "" : ", ", e->name);
            return QB_FAIL(err, "--defense: unknown defense \"%s\"; expected one of: %s", name,
                           names);
        }
    if (n == 0) return QB_FAIL(err, "--defense: empty list");
    return 0;
}

/* Every defense's parameter table: name, default, range, what it does. */
static void print_defense_params(void)
{
    for (const qb_defense_entry *e = qb_defenses; e->name; e++) {
        printf("  %s\n", e->name);
        for (const qb_param_def *d = e->params; d->key; d++) {
            char def[64];
            if (d->type == QB_PARAM_STR)
                snprintf(def, sizeof def, "\"%s\"", d->def_str ? d->def_str : "");
            else if (d->type == QB_PARAM_INT)
                snprintf(def, sizeof def, "%.0f (%.0f..%.0f)", d->def, d->min, d->max);
            else
                snprintf(def, sizeof def, "%g (%g..%g)", d->def, d->min, d->max);
            printf("    %-20s %-24s %s\n", d->key, def, d->doc);
        }
    }
}

int qb_cmd_defend(int argc, char **argv)
{
    static const char usage[] =
        "usage: qblind defend MODEL.qbm -D DEFENSES [options]\n"
        "Run defenses on a saved FP32 model deployed at each --precision, with the\n"
        "data a sweep task would give them. The training options must describe how\n"
        "the model was trained (trigger, seed, rate, target): AC and SS rebuild the\n"
        "poisoned training set from them, and the seed draws the defender's clean\n"
        "images, exactly as in `qblind run`.\n"
        "  -D, --defense LIST     comma-separated: nc, ac, ss, strip, fp, forensics\n"
        "  -P, --param KEY=VALUE  a defense parameter (repeatable; see README)\n"
        "      --details          print the raw results of each run\n";
    for (int i = 1; i < argc; i++)
        if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
            printf("%s\nDefense parameters (-P KEY=VALUE; in a spec: defenses: {NAME: {KEY: VALUE}}):\n",
                   usage);
            print_defense_params();
            printf("\n%s", common_help);
            return 0;
        }
    train_opts o;
    qb_error err;
    qb_dataset train, test;
    int rc = cmd_start(argc, argv, usage, 1, &o, &train, &test, &err);
    if (rc) return rc < 0 ? 0 : rc;
    qb_model m;
    if (!o.defenses) {
        QB_FAIL(&err, "defend needs --defense (see --help)");
        rc = -1;
    } else if (check_defense_names(o.defenses, &err) == 0 &&
               qb_model_load(&m, o.model_path, NULL, &err) == 0) {
        defend_ctx c;
        memset(&c, 0, sizeof c);
        c.o = &o;
        c.m = &m;
        c.err = &err;
        if (test.c != m.in_c || test.h != m.in_h || test.w != m.in_w || test.classes != m.classes) {
            QB_FAIL(&err, "model %s expects %dx%dx%d inputs with %d classes; dataset %s has %dx%dx%d with %d",
                    o.model_path, m.in_c, m.in_h, m.in_w, m.classes, o.dataset, test.c, test.h,
                    test.w, test.classes);
            rc = -1;
        } else if (qb_defense_env_init(&c.env, &o.job, &train, &test, &err) == 0) {
            printf("%-12s %-10s %-8s %8s  %s\n", "precision", "defense", "detected", "seconds",
                   "summary");
            rc = for_each_precision(o.precisions, defend_at, &c, &err);
            qb_defense_env_free(&c.env);
        } else {
            rc = -1;
        }
        qb_model_free(&m);
    } else {
        rc = -1;
    }
    qb_dataset_free(&train);
    qb_dataset_free(&test);
    return rc ? fail(&err) : 0;
}
