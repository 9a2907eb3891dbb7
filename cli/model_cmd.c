/* The options, data loading and checks the one-model commands share
 * (cli/model_cmd.h). */
#include "cli/model_cmd.h"

#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "core/model_io.h"
#include "core/threads.h"
#include "core/train.h"

enum { OPT_DATA_DIR = 256, OPT_EPOCHS, OPT_BATCH, OPT_LR, OPT_MOMENTUM, OPT_WD, OPT_SCHEDULE,
       OPT_TRIGGER_SIZE, OPT_TRIGGER_X, OPT_TRIGGER_Y, OPT_ALPHA, OPT_TARGET, OPT_RATE,
       OPT_ARCH, OPT_PRECISION, OPT_QA_TARGET, OPT_QA_EPOCHS, OPT_QA_LR, OPT_QA_EPS,
       OPT_QA_LAMBDA, OPT_DETAILS, OPT_THREADS, OPT_PRESET, OPT_NORMALIZE, OPT_AUGMENT };

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
    {"threads", required_argument, NULL, OPT_THREADS},
    {"preset", required_argument, NULL, OPT_PRESET},
    {"normalize", required_argument, NULL, OPT_NORMALIZE},
    {"augment", required_argument, NULL, OPT_AUGMENT},
    {NULL, 0, NULL, 0},
};

const char qb_model_opts_help[] =
    "Data and model:\n"
    "  -d, --dataset NAME     fashion-mnist (default), mnist, cifar10, gtsrb, synthetic\n"
    "      --data-dir DIR     where the dataset files are (default: $QBLIND_DATA_DIR,\n"
    "                         then /usr/share/datasets/fashion-mnist)\n"
    "      --arch NAME        lenet (default for 28x28), cnn-small (default for 32x32),\n"
    "                         resnet20, preact-resnet18, vgg11-bn (README \"The engine\")\n"
    "Training (defaults in brackets):\n"
    "      --epochs N         [5]\n"
    "      --batch N          [64]\n"
    "      --lr X             [0.05] base learning rate\n"
    "      --momentum X       [0.9]\n"
    "      --weight-decay X   [5e-4]\n"
    "      --schedule S       [cosine] constant | cosine | step\n"
    "      --preset P         [default] default | backdoorbench: BackdoorBench's recipe\n"
    "                         (batch 128, lr 0.01, momentum 0.9, weight decay 5e-4,\n"
    "                         cosine, 100 epochs, 50 for gtsrb, --normalize dataset,\n"
    "                         --augment dataset); the options above override it\n"
    "      --normalize N      [none] the model's input normalisation: none | dataset\n"
    "                         (BackdoorBench's values; README \"Data as fed to the\n"
    "                         model\") | MEAN/STD with comma-separated per-channel\n"
    "                         values (one value: every channel), e.g. 0.5/0.5;\n"
    "                         eval and defend need the one the model was trained with\n"
    "      --augment A        [none] none | crop | flip | crop-flip | dataset: random\n"
    "                         crop with zero padding 4, horizontal flip; dataset =\n"
    "                         crop, and flip except for mnist and gtsrb\n"
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
    "      --threads N        [1] threads for the float GEMMs; results do not depend\n"
    "                         on it\n"
    "  -q, --quiet            no per-epoch progress\n"
    "  -h, --help             this help\n";

typedef struct precision_each {
    int (*fn)(const qb_precision *, void *);
    void *ctx;
    qb_error *err;
} precision_each;

static int parse_precision(const char *name, void *ctxp)
{
    precision_each *c = ctxp;
    qb_precision p;
    if (qb_precision_parse(name, &p, c->err)) return qb_error_prefix(c->err, "--precision: ");
    return c->fn ? c->fn(&p, c->ctx) : 0;
}

int qb_precision_list_each(const char *list, int (*fn)(const qb_precision *, void *), void *ctx,
                           qb_error *err)
{
    precision_each c = {fn, ctx, err};
    return qb_cli_list_each("--precision", list, parse_precision, &c, err);
}

/* Up to QB_NORM_MAX_C comma-separated numbers (finite; > 0 if positive). */
static int parse_norm_values(const char *what, const char *text, int positive, float *v, int *n,
                             qb_error *err)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", text);
    *n = 0;
    char *save = NULL;
    for (char *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        if (*n == QB_NORM_MAX_C)
            return QB_FAIL(err, "--normalize: more than %d %s values", QB_NORM_MAX_C, what);
        char *end;
        float f = strtof(tok, &end);
        if (end == tok || *end || !isfinite(f) || (positive && !(f > 0.0f)))
            return QB_FAIL(err, "--normalize: %s value \"%s\" is not a finite number%s", what, tok,
                           positive ? " > 0" : "");
        v[(*n)++] = f;
    }
    if (*n == 0) return QB_FAIL(err, "--normalize: no %s values", what);
    return 0;
}

/* --normalize for a dataset of c channels. */
static int parse_normalize(const char *text, const char *dataset, int c, qb_norm *out,
                           qb_error *err)
{
    memset(out, 0, sizeof *out);
    if (!strcmp(text, "none")) return 0;
    if (!strcmp(text, "dataset")) {
        if (qb_dataset_norm_default(dataset, out))
            return QB_FAIL(err, "--normalize dataset: unknown dataset %s", dataset);
        return 0;
    }
    const char *slash = strchr(text, '/');
    if (!slash || strchr(slash + 1, '/'))
        return QB_FAIL(err, "--normalize \"%s\": expected none, dataset or MEAN/STD (e.g. 0.5/0.5 "
                            "or 0.49,0.48,0.45/0.25,0.24,0.26)",
                       text);
    char mean[256];
    snprintf(mean, sizeof mean, "%.*s", (int)(slash - text), text);
    float mv[QB_NORM_MAX_C], sv[QB_NORM_MAX_C];
    int nm, ns;
    if (parse_norm_values("mean", mean, 0, mv, &nm, err) ||
        parse_norm_values("std", slash + 1, 1, sv, &ns, err))
        return -1;
    if (nm != ns) return QB_FAIL(err, "--normalize: %d mean values but %d std values", nm, ns);
    if (nm != 1 && nm != c)
        return QB_FAIL(err, "--normalize: %d values per list; dataset %s has %d channel%s (give 1 "
                            "value%s)",
                       nm, dataset, c, c == 1 ? "" : "s", c == 1 ? "" : ", or one per channel");
    out->on = 1;
    for (int ch = 0; ch < QB_NORM_MAX_C; ch++) {
        out->mean[ch] = ch < c ? mv[nm == 1 ? 0 : ch] : 0.0f;
        out->std[ch] = ch < c ? sv[nm == 1 ? 0 : ch] : 1.0f;
    }
    return 0;
}

static int parse_augment(const char *text, const char *dataset, qb_augment *out, qb_error *err)
{
    static const char *const words[] = {"none", "crop", "flip", "crop-flip", "dataset"};
    int k = 0;
    while (k < 5 && strcmp(text, words[k])) k++;
    if (k == 5)
        return QB_FAIL(err, "--augment \"%s\": expected none, crop, flip, crop-flip or dataset",
                       text);
    out->pad = k == 1 || k == 3 || k == 4 ? 4 : 0;
    out->flip = k == 2 || k == 3 || (k == 4 && qb_dataset_flip_ok(dataset));
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
    if (qb_precision_list_each(list, add_qa_target, qa, err))
        return qa->n_targets >= QB_QA_MAX_TARGETS
                   ? QB_FAIL(err, "--qa-target: at most %d precisions", QB_QA_MAX_TARGETS)
                   : -1;
    for (int i = 0; i < qa->n_targets; i++)
        if (qb_precision_is_float(&qa->targets[i]))
            return QB_FAIL(err, "--qa-target: %s is not a quantized precision", qa->targets[i].name);
    return 0;
}

/* Parse the options shared by train/eval/demo/defend. Returns 0, 1 for
 * --help (already printed), -1 on error (in err). */
static int parse_opts(int argc, char **argv, qb_model_opts *o, const char *usage, qb_error *err)
{
    memset(o, 0, sizeof *o);
    o->dataset = "fashion-mnist";
    o->precisions = "fp32";
    qb_model_job_default(&o->job);
    qb_trigger t;
    qb_trigger_default(&t, QB_TRIGGER_NONE);
    int size = -1, tx = 0, ty = 0, xset = 0, yset = 0, target = -1;
    float alpha = -1.0f;
    int qa_epochs = -1, threads = 1;
    opterr = 0;
    int c;
    /* First pass: the dataset and --preset, so that the preset (whose
     * epochs, flips and normalisation depend on the dataset) is applied
     * before every other option, whatever their order. */
    const char *preset = "default", *normalize = NULL, *augment = NULL;
    optind = 0; /* glibc: restart the scan */
    while ((c = getopt_long(argc, argv, ":hd:s:t:o:p:qD:P:", long_opts, NULL)) != -1) {
        if (c == 'd') o->dataset = optarg;
        if (c == OPT_PRESET) preset = optarg;
    }
    if (!strcmp(preset, "backdoorbench")) {
        qb_train_config_backdoorbench(&o->job.train, o->dataset);
        normalize = augment = "dataset";
        o->norm_set = 1;
    } else if (strcmp(preset, "default")) {
        return QB_FAIL(err, "--preset \"%s\": expected default or backdoorbench", preset);
    }
    optind = 0;
    while ((c = getopt_long(argc, argv, ":hd:s:t:o:p:qD:P:", long_opts, NULL)) != -1) {
        qb_train_config *tc = &o->job.train;
        int rc = 0;
        switch (c) {
        case 'h': printf("%s\n%s", usage, qb_model_opts_help); return 1;
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
        case OPT_THREADS: rc = qb_cli_parse_threads(optarg, &threads, err); break;
        case OPT_PRESET: break; /* the first pass's */
        case OPT_NORMALIZE:
            normalize = optarg;
            o->norm_set = 1;
            break;
        case OPT_AUGMENT: augment = optarg; break;
        case 'P': {
            char *eq = strchr(optarg, '=');
            if (!eq || eq == optarg)
                return QB_FAIL(err, "--param \"%s\": expected KEY=VALUE", optarg);
            if (o->n_params == QB_MODEL_CMD_MAX_PARAMS)
                return QB_FAIL(err, "--param: at most %d", QB_MODEL_CMD_MAX_PARAMS);
            *eq = '\0';
            o->params[o->n_params].key = optarg;
            o->params[o->n_params++].value = eq + 1;
            break;
        }
        default: return qb_cli_option_error(c, argv, err);
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
    if (normalize &&
        parse_normalize(normalize, o->dataset, qb_dataset_channels(o->dataset), &o->job.norm, err))
        return -1;
    if (augment && parse_augment(augment, o->dataset, &o->job.train.augment, err)) return -1;
    o->job.train.progress = !o->quiet;
    o->job.qa.epochs = qa_epochs >= 0 ? qa_epochs : qa_default_epochs(o->job.qa.mode);
    if (qb_threads_set(threads, err)) return -1;
    return qb_precision_list_each(o->precisions, NULL, NULL, err);
}

static int load_data(const qb_model_opts *o, qb_dataset *train, qb_dataset *test, qb_error *err)
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
static void default_arch(qb_model_opts *o)
{
    if (!o->arch_set)
        snprintf(o->job.arch, sizeof o->job.arch, "%s", qb_dataset_default_arch(o->dataset));
}

static int fail(const qb_error *err)
{
    qb_error_print(err);
    return 1;
}

/* Parse, check the positional argument, load the data. Returns 0 to go on,
 * -1 after --help, 1 after an error (printed). */
static int start(int argc, char **argv, const char *usage, int wants_model, qb_model_opts *o,
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
    if (load_data(o, train, test, err)) return fail(err);
    /* eval and defend feed the test set through the model's normalisation */
    train->norm = test->norm = o->job.norm;
    default_arch(o);
    return 0;
}

int qb_model_cmd_main(int argc, char **argv, const char *usage, int wants_model,
                      qb_model_cmd_fn body)
{
    qb_model_opts o;
    qb_error err;
    qb_dataset train, test;
    int rc = start(argc, argv, usage, wants_model, &o, &train, &test, &err);
    if (rc) return rc < 0 ? 0 : rc;
    rc = body(&o, &train, &test, &err);
    qb_dataset_free(&train);
    qb_dataset_free(&test);
    return rc ? fail(&err) : 0;
}

int qb_model_cmd_load(qb_model_opts *o, qb_model *m, qb_error *err)
{
    char *meta = NULL;
    if (qb_model_load(m, o->model_path, &meta, err)) return -1;
    const char *line = NULL;
    for (const char *p = meta; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (!strncmp(p, "normalize=", 10)) line = p + 10;
    int rc = 0;
    if (line && !o->norm_set) {
        char text[256];
        snprintf(text, sizeof text, "%.*s", (int)strcspn(line, "\n"), line);
        rc = parse_normalize(text, o->dataset, m->in_c, &o->job.norm, err);
        if (rc)
            qb_error_prefix(err, "model %s, metadata: ", o->model_path);
        else if (!o->quiet)
            fprintf(stderr, "qblind: %s: input normalisation %s (from its metadata)\n",
                    o->model_path, text);
    }
    free(meta);
    if (rc) qb_model_free(m);
    return rc;
}

int qb_model_cmd_check_fits(const qb_model_opts *o, const qb_model *m, const qb_dataset *test,
                            qb_error *err)
{
    if (test->c == m->in_c && test->h == m->in_h && test->w == m->in_w &&
        test->classes == m->classes)
        return 0;
    return QB_FAIL(err,
                   "model %s expects %dx%dx%d inputs with %d classes; dataset %s has %dx%dx%d "
                   "with %d",
                   o->model_path, m->in_c, m->in_h, m->in_w, m->classes, o->dataset, test->c,
                   test->h, test->w, test->classes);
}
