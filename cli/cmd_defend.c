/* qblind defend: run defenses on a saved model deployed at each precision,
 * with the data a sweep task would give them (pipeline/defense_stage.h). */
#include <stdio.h>
#include <string.h>

#include "cli/cli.h"
#include "cli/model_cmd.h"
#include "core/model_io.h"
#include "core/train.h"
#include "defenses/defense.h"
#include "defenses/verdict.h"
#include "pipeline/defense_stage.h"
#include "quant/qmodel.h"

/* The model deployed at one precision, and the defenses to run on it. */
typedef struct defend_ctx {
    const qb_model_opts *o;
    const qb_model *m;
    qb_defense_env env;
    const qb_qmodel *qm; /* set per precision */
    const qb_precision *p;
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

/* Run defense `name` on c->qm and print its row. A defense that fails
 * prints "error" and its message; only a bad --param stops the command. */
static int defend_one(const char *name, void *ctxp)
{
    defend_ctx *c = ctxp;
    const qb_model_opts *o = c->o;
    const qb_defense_entry *e = qb_defense_find(name);
    qb_params prm = {e ? e->params : NULL, o->n_params, o->params};
    int rc = 0;
    for (size_t k = 0; e && k < o->n_params; k++)
        if (qb_params_check(e->params, o->params[k].key, o->params[k].value, c->err)) {
            qb_error_prefix(c->err, "--param for %s: ", name);
            rc = -1;
        }
    if (rc) return -1;
    qb_defense_input in;
    qb_defense_env_input(&c->env, c->qm, c->m, &prm, &in);
    qb_details det;
    qb_details_init(&det);
    qb_defense_result r = {QB_DETECTED_NA, &det, ""};
    double t0 = qb_now();
    qb_error derr;
    int drc = e->run(&in, &r, &derr);
    double secs = qb_now() - t0;
    const char *verdict = drc ? "error" : r.detected == 1 ? "yes" : r.detected == 0 ? "no" : "n/a";
    printf("%-12s %-10s %-8s %8.1f  %s\n", c->p->name, name, verdict, secs,
           drc ? derr.msg : r.summary);
    if (o->details && !drc) print_details(&det);
    fflush(stdout);
    qb_details_free(&det);
    return 0;
}

static int defend_at(const qb_precision *p, void *ctxp)
{
    defend_ctx *c = ctxp;
    qb_qmodel qm;
    if (qb_qmodel_init(&qm, c->m, p, 0.0f, 0, c->err)) return -1;
    c->qm = &qm;
    c->p = p;
    int rc = qb_cli_list_each("--defense", c->o->defenses, defend_one, c, c->err);
    c->qm = NULL;
    qb_qmodel_free(&qm);
    return rc;
}

static int check_defense_name(const char *name, void *ctxp)
{
    qb_error *err = ctxp;
    if (qb_defense_find(name)) return 0;
    char names[128] = "";
    for (const qb_defense_entry *e = qb_defenses; e->key.name; e++)
        snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
                 e == qb_defenses ? "" : ", ", e->key.name);
    return QB_FAIL(err, "--defense: unknown defense \"%s\"; expected one of: %s", name, names);
}

/* Every defense's parameter table: name, default, range, what it does. */
static void print_defense_params(void)
{
    for (const qb_defense_entry *e = qb_defenses; e->key.name; e++) {
        printf("  %s\n", e->key.name);
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

/* Load the model, check it against the data, print one row per precision
 * and defense. */
static int defend_body(qb_model_opts *o, const qb_dataset *train, const qb_dataset *test,
                       qb_error *err)
{
    if (!o->defenses) return QB_FAIL(err, "defend needs --defense (see --help)");
    if (qb_cli_list_each("--defense", o->defenses, check_defense_name, err, err)) return -1;
    qb_model m;
    if (qb_model_cmd_load(o, &m, err)) return -1;
    const qb_dataset test_in = qb_dataset_view_norm(test, &o->job.norm);
    test = &test_in;
    defend_ctx c;
    memset(&c, 0, sizeof c);
    c.o = o;
    c.m = &m;
    c.err = err;
    int rc = -1;
    if (qb_model_cmd_check_fits(o, &m, test, err) == 0 &&
        qb_defense_env_init(&c.env, &o->job, train, test, err) == 0) {
        printf("%-12s %-10s %-8s %8s  %s\n", "precision", "defense", "detected", "seconds",
               "summary");
        rc = qb_precision_list_each(o->precisions, defend_at, &c, err);
        qb_defense_env_free(&c.env);
    }
    qb_model_free(&m);
    return rc;
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
            printf("\n%s", qb_model_opts_help);
            return 0;
        }
    return qb_model_cmd_main(argc, argv, usage, 1, defend_body);
}
