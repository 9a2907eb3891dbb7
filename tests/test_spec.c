/* Sweep specs: expansion (product, exclude, include, ranges, presets),
 * canonical values, task and model identity (stable under reordering and
 * reformatting, changed only where a setting matters), model jobs, every
 * validation error with its exact message, and a 1,000,000-task expansion.
 *
 * Measured on the 2-core build machine: the 1,000,000-task spec of
 * test_million (125000 seeds x 2 triggers x 4 precisions, exclude and
 * include entries, 251000 models) parses and expands in 0.31-0.34 s
 * (Release; 0.8 s under ASan/UBSan Debug); the expansion holds 51 MB (tasks
 * 32 MB, sorted-id index 12 MB, models 6 MB, seed table 1 MB) and the peak
 * resident set grows by 69 MB. test_million checks < 10 s and < 500 MB. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include "core/arch.h"
#include "core/dataset.h"
#include "core/model.h"
#include "core/train.h"
#include "attacks/trigger.h"
#include "jobs/axis_values.h"
#include "jobs/cost.h"
#include "jobs/spec.h"
#include "jobs/task.h"
#include "tests/testutil.h"

/* Parse text as "spec.yaml"; the test fails with the message if it does not parse. */

/* The defense axis values, in registry order (none, then defenses/registry.c). */
#define DEFENSES "none, nc, ac, ss, strip, fp, forensics"

static void parse_ok(qb_spec *s, const char *text)
{
    qb_error e = {0};
    if (qb_spec_parse(s, text, strlen(text), "spec.yaml", &e)) {
        print_error("spec did not parse: %s\n--- spec:\n%s\n", e.msg, text);
        fail();
    }
}

static const char *tuple(const qb_spec *s, size_t i, char *buf, size_t n)
{
    qb_spec_task_tuple(s, i, buf, n);
    return buf;
}

static void assert_tuple(const qb_spec *s, size_t i, const char *want)
{
    char buf[256];
    assert_string_equal(tuple(s, i, buf, sizeof buf), want);
}

/* Index of the task whose tuple text is `want`, or SIZE_MAX. */
static size_t find_tuple(const qb_spec *s, const char *want)
{
    char buf[256];
    for (size_t i = 0; i < s->n_tasks; i++)
        if (!strcmp(tuple(s, i, buf, sizeof buf), want)) return i;
    return SIZE_MAX;
}

/* ---- defaults, product, ranges ---------------------------------------------- */

static void test_defaults(void **state)
{
    (void)state;
    qb_spec s;
    parse_ok(&s, "{}\n");
    assert_int_equal(s.n_tasks, 1);
    assert_int_equal(s.n_models, 1);
    assert_tuple(&s, 0, "dataset=fashion-mnist seed=0 trigger=clean precision=fp32 mitigation=none "
                        "defense=none");
    qb_train_config d;
    qb_train_config_default(&d);
    assert_int_equal(s.set.train.epochs, d.epochs);
    assert_int_equal(s.set.train.batch, d.batch);
    assert_true(s.set.train.lr == d.lr);
    assert_true(s.set.train.momentum == d.momentum);
    assert_true(s.set.train.weight_decay == d.weight_decay);
    assert_int_equal(s.set.train.schedule, d.schedule);
    assert_string_equal(s.set.arch, "auto");
    assert_true(s.set.rate == 0.1);
    assert_int_equal(s.set.size, 3);
    assert_int_equal(s.set.x, -1);
    assert_int_equal(s.set.qa_epochs, -1);
    assert_int_equal(s.set.n_qa_targets, 1);
    assert_string_equal(s.set.qa_targets[0], "int8");
    assert_null(s.name);
    assert_null(s.data_dir);
    assert_int_equal(s.text_len, 3);
    assert_string_equal(s.text, "{}\n");
    /* The canonical texts are part of every results file's identity: these
     * ids may only change together with the -v1 version strings. Both were
     * reproduced by a separate Python FNV-1a + splitmix64 implementation
     * hashing the texts documented in jobs/task.h. */
    assert_int_equal(s.models[0].id, 0x9be20398c8cc19fdull);
    assert_int_equal(s.tasks[0].id, 0x7214f034224417eeull);
    qb_spec_free(&s);
    qb_spec_free(&s); /* harmless twice */
}

static void test_product_order_and_models(void **state)
{
    (void)state;
    qb_spec s;
    parse_ok(&s, "dataset: [mnist, fashion-mnist]\n"
                 "seed: [3, 1]\n"
                 "trigger: [clean, badnet]\n"
                 "precision: [fp32, int8]\n");
    assert_int_equal(s.n_tasks, 16);
    assert_int_equal(s.n_models, 8);
    /* dataset outermost, defense innermost, lists in the order written */
    assert_tuple(&s, 0, "dataset=mnist seed=3 trigger=clean precision=fp32 mitigation=none defense=none");
    assert_tuple(&s, 1, "dataset=mnist seed=3 trigger=clean precision=int8 mitigation=none defense=none");
    assert_tuple(&s, 2, "dataset=mnist seed=3 trigger=square precision=fp32 mitigation=none defense=none");
    assert_tuple(&s, 4, "dataset=mnist seed=1 trigger=clean precision=fp32 mitigation=none defense=none");
    assert_tuple(&s, 15, "dataset=fashion-mnist seed=1 trigger=square precision=int8 mitigation=none "
                         "defense=none");
    for (size_t m = 0; m < s.n_models; m++) {
        assert_int_equal(s.models[m].n_tasks, 2);
        assert_int_equal(s.models[m].first_task, 2 * m);
        assert_int_equal(s.tasks[2 * m].model, m);
        assert_int_equal(s.tasks[2 * m + 1].model, m);
    }
    /* tasks of one model share (dataset, seed, trigger); other models differ */
    for (size_t i = 0; i < s.n_tasks; i++) {
        const qb_spec_model *m = &s.models[s.tasks[i].model];
        assert_int_equal(m->dataset, s.tasks[i].dataset);
        assert_int_equal(m->seed, s.tasks[i].seed);
        assert_int_equal(m->trigger, s.tasks[i].trigger);
        assert_int_equal(qb_spec_find_task(&s, s.tasks[i].id), i);
    }
    assert_int_equal(qb_spec_find_task(&s, 12345), SIZE_MAX);
    for (size_t i = 1; i < s.n_tasks; i++) assert_true(s.sorted_ids[i - 1] < s.sorted_ids[i]);
    qb_spec_free(&s);

    /* single values, no lists */
    parse_ok(&s, "dataset: synthetic\nseed: 42\ntrigger: blend\nprecision: w3a32\n");
    assert_int_equal(s.n_tasks, 1);
    assert_tuple(&s, 0, "dataset=synthetic seed=42 trigger=blend precision=w3a32 mitigation=none "
                        "defense=none");
    qb_spec_free(&s);
}

static void test_seed_ranges(void **state)
{
    (void)state;
    qb_spec s;
    parse_ok(&s, "seed: {range: [10, 15]}\n");
    assert_int_equal(s.n_tasks, 5);
    assert_int_equal(s.n_models, 5);
    static const char *const want[] = {"10", "11", "12", "13", "14"};
    for (uint32_t i = 0; i < 5; i++) {
        char v[32];
        assert_string_equal(qb_spec_value(&s, QB_AXIS_SEED, s.tasks[i].seed, v, sizeof v), want[i]);
    }
    qb_spec_free(&s);
    /* the largest seed and a range ending at 2^63 */
    parse_ok(&s, "seed: {range: [9223372036854775806, 9223372036854775808]}\n");
    assert_int_equal(s.n_tasks, 2);
    assert_int_equal(s.axes[QB_AXIS_SEED].seeds[1], 9223372036854775807ull);
    qb_spec_free(&s);
    parse_ok(&s, "seed: [9223372036854775807, 0]\n");
    assert_int_equal(s.axes[QB_AXIS_SEED].seeds[0], 9223372036854775807ull);
    qb_spec_free(&s);
}

static void test_exclude(void **state)
{
    (void)state;
    qb_spec s;
    parse_ok(&s, "seed: {range: [0, 4]}\n"
                 "trigger: [clean, square, checker]\n"
                 "precision: [fp32, int8, int4]\n"
                 "exclude:\n"
                 "  - {trigger: clean, precision: [int8, int4]}  # any of\n"
                 "  - {seed: {range: [2, 10]}, trigger: checker}\n"
                 "  - {precision: w2a8}                          # matches nothing\n"
                 "  - {trigger: badnet, seed: 3, precision: fp32}\n");
    /* 4*3*3 = 36; -8 clean int8/int4; -6 checker seeds 2,3; -1 square seed 3 fp32 */
    assert_int_equal(s.n_tasks, 21);
    assert_true(find_tuple(&s, "dataset=fashion-mnist seed=0 trigger=clean precision=fp32 "
                               "mitigation=none defense=none") != SIZE_MAX);
    assert_true(find_tuple(&s, "dataset=fashion-mnist seed=0 trigger=clean precision=int8 "
                               "mitigation=none defense=none") == SIZE_MAX);
    assert_true(find_tuple(&s, "dataset=fashion-mnist seed=1 trigger=checker precision=int4 "
                               "mitigation=none defense=none") != SIZE_MAX);
    assert_true(find_tuple(&s, "dataset=fashion-mnist seed=2 trigger=checker precision=int4 "
                               "mitigation=none defense=none") == SIZE_MAX);
    assert_true(find_tuple(&s, "dataset=fashion-mnist seed=3 trigger=square precision=fp32 "
                               "mitigation=none defense=none") == SIZE_MAX);
    assert_true(find_tuple(&s, "dataset=fashion-mnist seed=3 trigger=square precision=int8 "
                               "mitigation=none defense=none") != SIZE_MAX);
    /* models: 4 seeds x 3 triggers minus checker at seeds 2, 3 */
    assert_int_equal(s.n_models, 10);
    qb_spec_free(&s);

    /* YAML anchors and aliases reuse a list */
    parse_ok(&s, "precision: &low [int8, int4]\n"
                 "trigger: [clean, square]\n"
                 "exclude: [{trigger: clean, precision: *low}]\n");
    assert_int_equal(s.n_tasks, 2);
    qb_spec_free(&s);
}

static void test_include(void **state)
{
    (void)state;
    qb_spec s;
    parse_ok(&s, "trigger: [clean, square]\n"
                 "precision: [fp32, int8]\n"
                 "exclude:\n"
                 "  - {trigger: clean, precision: int8}\n"
                 "include:\n"
                 "  # already a task: not added again\n"
                 "  - {dataset: fashion-mnist, seed: 0, trigger: square, precision: int8,\n"
                 "     mitigation: none, defense: none}\n"
                 "  # excluded above: include brings it back\n"
                 "  - {dataset: fashion-mnist, seed: 0, trigger: clean, precision: int8,\n"
                 "     mitigation: none, defense: none}\n"
                 "  # new values, lists mean every combination (2 x 2 = 4 tasks)\n"
                 "  - {dataset: mnist, seed: [7, 8], trigger: badnet, precision: [int4, int8],\n"
                 "     mitigation: none, defense: none}\n"
                 "  # repeats one of those: not added twice\n"
                 "  - {dataset: mnist, seed: {range: [8, 9]}, trigger: square, precision: int4,\n"
                 "     mitigation: none, defense: none}\n");
    assert_int_equal(s.n_tasks, 3 + 1 + 4);
    assert_tuple(&s, 3, "dataset=fashion-mnist seed=0 trigger=clean precision=int8 mitigation=none "
                        "defense=none");
    assert_tuple(&s, 4, "dataset=mnist seed=7 trigger=square precision=int4 mitigation=none "
                        "defense=none");
    assert_tuple(&s, 7, "dataset=mnist seed=8 trigger=square precision=int8 mitigation=none "
                        "defense=none");
    /* include-only values extend the tables past the axes' own values */
    assert_int_equal(s.axes[QB_AXIS_DATASET].n_listed, 1);
    assert_int_equal(s.axes[QB_AXIS_DATASET].n, 2);
    assert_int_equal(s.axes[QB_AXIS_SEED].n, 3);
    assert_int_equal(s.axes[QB_AXIS_PRECISION].n, 3);
    /* models: (fm,0,clean) (fm,0,square) (mnist,7,square) (mnist,8,square) */
    assert_int_equal(s.n_models, 4);
    assert_int_equal(s.models[0].n_tasks, 2);
    assert_int_equal(s.models[1].n_tasks, 2);
    assert_int_equal(s.models[2].n_tasks, 2);
    qb_spec_free(&s);
}

/* ---- presets ------------------------------------------------------------------ */

static void test_presets(void **state)
{
    (void)state;
    qb_spec a, b;
    char ta[2048], tb[2048];
    /* `default` writes out exactly the built-in defaults */
    parse_ok(&a, "trigger: [clean, qa-loss]\n");
    parse_ok(&b, "extends: default\ntrigger: [clean, qa-loss]\n");
    qb_spec_settings_text(&a, ta, sizeof ta);
    qb_spec_settings_text(&b, tb, sizeof tb);
    assert_string_equal(ta, tb);
    assert_int_equal(a.hash, b.hash);
    for (size_t i = 0; i < a.n_tasks; i++) assert_int_equal(a.tasks[i].id, b.tasks[i].id);
    assert_string_equal(b.extends, "default");
    qb_spec_free(&a);
    qb_spec_free(&b);

    parse_ok(&a, "extends: fast\n");
    assert_int_equal(a.set.train.epochs, 1);
    assert_int_equal(a.set.qa_epochs, 1);
    assert_true(a.set.train.lr == 0.05f);
    qb_spec_free(&a);
    /* the spec overrides the preset key by key, wherever `extends` is */
    parse_ok(&a, "train: {lr: 0.1}\nattack: {qa_epochs: 4}\nextends: fast\n");
    assert_int_equal(a.set.train.epochs, 1);
    assert_true(a.set.train.lr == 0.1f);
    assert_int_equal(a.set.qa_epochs, 4);
    qb_spec_free(&a);
    /* every preset parses */
    for (size_t i = 0; qb_spec_preset_name(i); i++) {
        char text[64];
        snprintf(text, sizeof text, "extends: %s\n", qb_spec_preset_name(i));
        parse_ok(&a, text);
        assert_non_null(qb_spec_preset_text(i));
        qb_spec_free(&a);
    }
}


/* ---- canonical values and the registry ----------------------------------------- */

static void test_canonical_values(void **state)
{
    (void)state;
    static const struct {
        qb_axis axis;
        const char *in, *out;
    } cases[] = {
        {QB_AXIS_TRIGGER, "badnet", "square"},     {QB_AXIS_TRIGGER, "qa-pgd", "qa-pgd"},
        {QB_AXIS_PRECISION, "w8a8", "int8"},       {QB_AXIS_PRECISION, "w4a32", "int4"},
        {QB_AXIS_PRECISION, "int8-away-pc", "int8-pc-away"},
        {QB_AXIS_PRECISION, "w8a8-pc", "int8-pc"}, {QB_AXIS_PRECISION, "int8-linear", "int8-linear"},
        {QB_AXIS_PRECISION, "w4a8", "w4a8"},       {QB_AXIS_PRECISION, "fp32", "fp32"},
        {QB_AXIS_SEED, "007", "7"},                {QB_AXIS_SEED, "9223372036854775807", "9223372036854775807"},
        {QB_AXIS_DATASET, "gtsrb", "gtsrb"},       {QB_AXIS_DEFENSE, "none", "none"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char out[QB_AXIS_VALUE_MAX];
        assert_int_equal(qb_axis_canonical(cases[i].axis, cases[i].in, out, sizeof out), 0);
        assert_string_equal(out, cases[i].out);
    }
    static const char *const bad_prec[] = {"int9", "w9a8", "w8a33", "fp32-pc", "int8-pc-pc", "", "FP32"};
    for (size_t i = 0; i < sizeof bad_prec / sizeof bad_prec[0]; i++) {
        char out[QB_AXIS_VALUE_MAX];
        assert_int_equal(qb_axis_canonical(QB_AXIS_PRECISION, bad_prec[i], out, sizeof out), -1);
    }
    /* every canonical precision means the same quantizer as what it came from */
    static const char *const precs[] = {"fp32", "int8", "int8-pc", "int8-away", "int8-linear",
                                        "int8-linear-pc-away", "int4", "int4-pc", "w2a8", "w3a32",
                                        "w8a32", "w4a4-away", "w8a8-away-pc", "w4a32-pc"};
    for (size_t i = 0; i < sizeof precs / sizeof precs[0]; i++) {
        char out[QB_AXIS_VALUE_MAX];
        qb_precision p, q;
        assert_int_equal(qb_axis_canonical(QB_AXIS_PRECISION, precs[i], out, sizeof out), 0);
        assert_int_equal(qb_precision_parse(precs[i], &p, NULL), 0);
        assert_int_equal(qb_precision_parse(out, &q, NULL), 0);
        assert_int_equal(p.w_bits, q.w_bits);
        assert_int_equal(p.a_bits, q.a_bits);
        assert_int_equal(p.gran, q.gran);
        assert_int_equal(p.round, q.round);
        assert_int_equal(p.linear_only, q.linear_only);
        char again[QB_AXIS_VALUE_MAX];
        qb_axis_canonical(QB_AXIS_PRECISION, out, again, sizeof again);
        assert_string_equal(out, again);
    }
    char buf[256];
    assert_string_equal(qb_axis_expected(QB_AXIS_DEFENSE, buf, sizeof buf), "expected one of: " DEFENSES);
    assert_string_equal(qb_axis_expected(QB_AXIS_TRIGGER, buf, sizeof buf),
                        "expected one of: clean, square, badnet, checker, noise, blend, qa-pgd, "
                        "qa-loss");
    for (int a = 0; a < QB_AXIS_COUNT; a++) {
        qb_axis back;
        assert_int_equal(qb_axis_from_name(qb_axis_name((qb_axis)a), &back), 0);
        assert_int_equal(back, a);
        char out[QB_AXIS_VALUE_MAX];
        assert_int_equal(qb_axis_canonical((qb_axis)a, qb_axis_default((qb_axis)a), out, sizeof out), 0);
    }
}

static void test_registry_matches_core(void **state)
{
    (void)state;
    /* every dataset has an `auto` architecture */
    for (int i = 0; qb_dataset_names[i]; i++) assert_non_null(qb_dataset_default_arch(qb_dataset_names[i]));
    assert_string_equal(qb_dataset_default_arch("fashion-mnist"), "lenet");
    assert_string_equal(qb_dataset_default_arch("cifar10"), "cnn-small");
    /* every registered trigger builds a model job; every value's alias
     * points at a registered value */
    char text[1024] = "dataset: [fashion-mnist, synthetic]\ntrigger: [";
    int k = 0;
    static const qb_axis enumerated[] = {QB_AXIS_TRIGGER, QB_AXIS_MITIGATION, QB_AXIS_DEFENSE};
    for (size_t a = 0; a < 3; a++) {
        qb_axis_value v, canon;
        for (size_t i = 0; !qb_axis_value_at(enumerated[a], i, &v); i++) {
            if (v.alias_of) assert_int_equal(qb_axis_lookup(v.axis, v.alias_of, &canon), 0);
            if (v.axis != QB_AXIS_TRIGGER || v.alias_of) continue;
            snprintf(text + strlen(text), sizeof text - strlen(text), "%s%s", k++ ? ", " : "", v.name);
        }
    }
    strcat(text, "]\n");
    qb_spec s;
    parse_ok(&s, text);
    assert_int_equal(s.n_models, 2 * (size_t)k);
    for (size_t m = 0; m < s.n_models; m++) {
        qb_model_job job;
        qb_error e = {0};
        assert_int_equal(qb_spec_model_job(&s, m, &job, &e), 0);
        const char *ds = s.axes[QB_AXIS_DATASET].names[s.models[m].dataset];
        assert_string_equal(job.arch, strcmp(ds, "synthetic") ? "lenet" : "cnn-small");
    }
    qb_spec_free(&s);
}

static void test_model_job(void **state)
{
    (void)state;
    qb_spec s;
    parse_ok(&s, "seed: 17\n"
                 "trigger: [clean, checker, qa-loss, qa-pgd]\n"
                 "train: {arch: cnn-small, epochs: 2, batch: 32, lr: 0.01, momentum: 0.5,\n"
                 "        weight_decay: 0, schedule: step}\n"
                 "attack: {rate: 0.05, target: 3, size: 4, x: 2, y: -2, alpha: 0.2,\n"
                 "         qa_target: [w4a8, int4, int8], qa_lr: 0.02, qa_eps: 0.2, qa_lambda: 2}\n");
    qb_model_job job;
    qb_error e = {0};
    assert_int_equal(s.n_models, 4);
    assert_int_equal(qb_spec_model_job(&s, 0, &job, &e), 0); /* clean */
    assert_string_equal(job.arch, "cnn-small");
    assert_int_equal(job.seed, 17);
    assert_int_equal(job.train.epochs, 2);
    assert_int_equal(job.train.batch, 32);
    assert_true(job.train.lr == 0.01f);
    assert_true(job.train.momentum == 0.5f);
    assert_true(job.train.weight_decay == 0.0f);
    assert_int_equal(job.train.schedule, QB_LR_STEP);
    assert_int_equal(job.train.progress, 0);
    assert_int_equal(job.trigger.kind, QB_TRIGGER_NONE);
    assert_true(job.poison_rate == 0.0);
    assert_int_equal(job.qa.mode, QB_QA_NONE);

    assert_int_equal(qb_spec_model_job(&s, 1, &job, &e), 0); /* checker */
    assert_int_equal(job.trigger.kind, QB_TRIGGER_CHECKER);
    assert_int_equal(job.trigger.size, 4);
    assert_int_equal(job.trigger.x, 2);
    assert_int_equal(job.trigger.y, -2);
    assert_int_equal(job.trigger.target, 3);
    assert_true(job.trigger.alpha == 0.2f);
    assert_true(job.poison_rate == 0.05);
    assert_int_equal(job.qa.mode, QB_QA_NONE);

    assert_int_equal(qb_spec_model_job(&s, 2, &job, &e), 0); /* qa-loss */
    assert_int_equal(job.qa.mode, QB_QA_LOSS);
    assert_int_equal(job.trigger.kind, QB_TRIGGER_SQUARE);
    assert_int_equal(job.qa.n_targets, 3);
    /* canonical (sorted) order, whatever order the spec listed them in */
    assert_string_equal(job.qa.targets[0].name, "int4");
    assert_string_equal(job.qa.targets[1].name, "int8");
    assert_string_equal(job.qa.targets[2].name, "w4a8");
    assert_int_equal(job.qa.epochs, 3); /* qa-loss default */
    assert_true(job.qa.lr == 0.02f);
    assert_true(job.qa.eps == 0.2f);
    assert_true(job.qa.lambda == 2.0f);

    assert_int_equal(qb_spec_model_job(&s, 3, &job, &e), 0); /* qa-pgd */
    assert_int_equal(job.qa.mode, QB_QA_PGD);
    assert_int_equal(job.qa.epochs, 2); /* qa-pgd default */
    qb_precision p;
    assert_int_equal(qb_spec_task_precision(&s, 0, &p, &e), 0);
    assert_int_equal(p.w_bits, 32);
    qb_spec_free(&s);
}

/* ---- identity -------------------------------------------------------------------- */

/* id == hash(identity text) for every task and model */
static void check_identity_texts(const qb_spec *s)
{
    char buf[4096];
    for (size_t i = 0; i < s->n_tasks; i++) {
        size_t n = qb_spec_task_identity(s, i, buf, sizeof buf);
        assert_true(n < sizeof buf);
        assert_int_equal(strlen(buf), n);
        assert_int_equal(qb_hash64(buf, n), s->tasks[i].id);
    }
    for (size_t m = 0; m < s->n_models; m++) {
        size_t n = qb_spec_model_identity(s, m, buf, sizeof buf);
        assert_true(n < sizeof buf);
        assert_int_equal(qb_hash64(buf, n), s->models[m].id);
    }
    /* truncation reports the full length, like snprintf */
    char small[8];
    size_t n = qb_spec_task_identity(s, 0, small, sizeof small);
    assert_true(n > sizeof small);
    assert_int_equal(strlen(small), sizeof small - 1);
}

/* train.normalize / augment / epochs: dataset and the backdoorbench
 * preset, resolved per dataset; specs that do not use them keep their ids
 * (writing the defaults out changes nothing). */
static void test_normalize_augment(void **state)
{
    (void)state;
    qb_spec a, b;
    parse_ok(&a, "dataset: [mnist, cifar10]\ntrigger: square\n");
    parse_ok(&b, "dataset: [mnist, cifar10]\ntrigger: square\n"
                 "train: {normalize: none, augment: none}\n");
    assert_int_equal(a.hash, b.hash);
    for (size_t m = 0; m < a.n_models; m++) assert_int_equal(a.models[m].id, b.models[m].id);
    qb_spec_free(&b);

    /* BackdoorBench's recipe: per dataset */
    parse_ok(&b, "extends: backdoorbench\ndataset: [mnist, cifar10, gtsrb]\ntrigger: square\n");
    assert_int_equal(b.set.train.batch, 128);
    assert_true(b.set.train.lr == 0.01f && b.set.train.momentum == 0.9f);
    assert_true(b.set.train.weight_decay == 5e-4f);
    assert_int_equal(b.set.train.schedule, QB_LR_COSINE);
    assert_int_equal(b.set.normalize, QB_SPEC_NORM_DATASET);
    assert_int_equal(b.set.augment, QB_SPEC_AUG_DATASET);
    qb_model_job job;
    qb_error e;
    int seen = 0;
    for (size_t m = 0; m < b.n_models; m++) {
        assert_int_equal(qb_spec_model_job(&b, m, &job, &e), 0);
        const char *ds = b.axes[QB_AXIS_DATASET].names[b.models[m].dataset];
        if (!strcmp(ds, "cifar10")) {
            assert_int_equal(job.train.epochs, 100);
            assert_true(job.norm.on && job.norm.mean[0] == 0.4914f && job.norm.std[2] == 0.261f);
            assert_int_equal(job.train.augment.pad, 4);
            assert_int_equal(job.train.augment.flip, 1);
            seen |= 1;
        } else if (!strcmp(ds, "gtsrb")) {
            assert_int_equal(job.train.epochs, 50);
            assert_int_equal(job.norm.on, 0);
            assert_int_equal(job.train.augment.pad, 4);
            assert_int_equal(job.train.augment.flip, 0);
            seen |= 2;
        } else {
            assert_int_equal(job.train.epochs, 100);
            assert_true(job.norm.on && job.norm.mean[0] == 0.5f && job.norm.std[0] == 0.5f);
            assert_int_equal(job.train.augment.flip, 0);
            seen |= 4;
        }
        for (size_t k = 0; k < a.n_models; k++) /* another recipe, other models */
            assert_int_not_equal(b.models[m].id, a.models[k].id);
    }
    assert_int_equal(seen, 7);
    check_identity_texts(&b);
    qb_spec_free(&b);
    qb_spec_free(&a);

    /* epochs: dataset on cifar10 is epochs 100: one model, one id (but
     * the spec hash keeps what was written) */
    parse_ok(&a, "dataset: cifar10\ntrigger: square\ntrain: {epochs: 100, normalize: dataset}\n");
    parse_ok(&b, "dataset: cifar10\ntrigger: square\ntrain: {epochs: dataset, normalize: dataset}\n");
    assert_int_equal(a.models[0].id, b.models[0].id);
    assert_int_not_equal(a.hash, b.hash);
    qb_spec_free(&b);
    /* the list, explicitly: the same model as `dataset` for cifar10 */
    parse_ok(&b, "dataset: cifar10\ntrigger: square\ntrain: {epochs: 100, normalize: "
                 "{mean: [0.4914, 0.4822, 0.4465], std: [0.247, 0.243, 0.261]}}\n");
    assert_int_equal(a.models[0].id, b.models[0].id);
    qb_spec_free(&b);
    qb_spec_free(&a);
    /* one value for every channel; mean 0 std 1 is no normalisation */
    parse_ok(&a, "dataset: synthetic\ntrain: {normalize: {mean: [0.5], std: [0.5]}, augment: crop}\n");
    assert_int_equal(qb_spec_model_job(&a, 0, &job, &e), 0);
    assert_true(job.norm.on && job.norm.mean[2] == 0.5f && job.norm.std[1] == 0.5f);
    assert_int_equal(job.train.augment.pad, 4);
    assert_int_equal(job.train.augment.flip, 0);
    qb_spec_free(&a);
    parse_ok(&a, "dataset: synthetic\n");
    parse_ok(&b, "dataset: synthetic\ntrain: {normalize: {mean: [0], std: [1]}}\n");
    assert_int_equal(a.models[0].id, b.models[0].id);
    qb_spec_free(&b);
    parse_ok(&b, "dataset: synthetic\ntrain: {augment: flip}\n");
    assert_int_not_equal(a.models[0].id, b.models[0].id);
    assert_int_equal(qb_spec_model_job(&b, 0, &job, &e), 0);
    assert_int_equal(job.train.augment.pad, 0);
    assert_int_equal(job.train.augment.flip, 1);
    qb_spec_free(&b);
    qb_spec_free(&a);
}

static void load_fixture(qb_spec *s, const char *name)
{
    char *path = qb_test_fixture_path(name);
    qb_error e = {0};
    if (qb_spec_load(s, path, &e)) {
        print_error("%s: %s\n", path, e.msg);
        fail();
    }
    free(path);
}

static void test_identity_stable_under_reordering(void **state)
{
    (void)state;
    qb_spec a, b;
    load_fixture(&a, "specs/stable_a.yaml");
    load_fixture(&b, "specs/stable_b.yaml");
    /* 2 datasets x 3 seeds x 3 triggers x 3 precisions = 54; -6 clean
     * w4a8-pc; synthetic seeds 1, 2: -2 x 8 remaining; +1 include */
    assert_int_equal(a.n_tasks, 54 - 6 - 16 + 1);
    assert_int_equal(b.n_tasks, a.n_tasks);
    assert_int_equal(b.n_models, a.n_models);
    assert_int_equal(a.n_models, 9 + 3 + 1);
    assert_string_equal(a.name, "stability-a");
    assert_string_equal(b.data_dir, "/elsewhere");
    /* same tuple -> same id, whatever the positions */
    for (size_t i = 0; i < a.n_tasks; i++) {
        char t[256];
        size_t j = find_tuple(&b, tuple(&a, i, t, sizeof t));
        assert_true(j != SIZE_MAX);
        assert_int_equal(a.tasks[i].id, b.tasks[j].id);
        assert_int_equal(a.models[a.tasks[i].model].id, b.models[b.tasks[j].model].id);
    }
    assert_int_equal(a.hash, b.hash);
    /* the positions did change */
    char t0[256], u0[256];
    assert_string_not_equal(tuple(&a, 0, t0, sizeof t0), tuple(&b, 0, u0, sizeof u0));
    check_identity_texts(&a);
    check_identity_texts(&b);
    qb_spec_free(&a);
    qb_spec_free(&b);
}

/* Parse base and a variant; count tasks and models whose ids changed
 * (matched by tuple). */
static void count_changes(const char *base, const char *variant, size_t *tasks_changed,
                          size_t *models_changed, int *hash_changed)
{
    qb_spec a, b;
    parse_ok(&a, base);
    parse_ok(&b, variant);
    assert_int_equal(a.n_tasks, b.n_tasks);
    *tasks_changed = *models_changed = 0;
    for (size_t i = 0; i < a.n_tasks; i++) {
        char t[256];
        size_t j = find_tuple(&b, tuple(&a, i, t, sizeof t));
        assert_true(j != SIZE_MAX);
        *tasks_changed += a.tasks[i].id != b.tasks[j].id;
    }
    for (size_t m = 0; m < a.n_models; m++) {
        char t[256];
        size_t j = find_tuple(&b, tuple(&a, a.models[m].first_task, t, sizeof t));
        *models_changed += a.models[m].id != b.models[b.tasks[j].model].id;
    }
    *hash_changed = a.hash != b.hash;
    check_identity_texts(&b);
    qb_spec_free(&a);
    qb_spec_free(&b);
}

static void test_identity_changes_where_settings_matter(void **state)
{
    (void)state;
    /* 2 seeds x 3 triggers x 2 precisions = 12 tasks, 6 models (2 per trigger) */
    static const char base[] = "seed: [0, 1]\ntrigger: [clean, square, qa-pgd]\nprecision: [fp32, int8]\n";
    static const struct {
        const char *extra;
        size_t tasks, models;
        int hash;
    } cases[] = {
        /* results-neutral: nothing changes, not even the spec hash */
        {"name: other\ndata_dir: /x\n# a comment\n", 0, 0, 0},
        {"train: {lr: 5e-2}\n", 0, 0, 0},                /* = 0.05 */
        {"train: {arch: lenet}\n", 0, 0, 1},             /* = auto for fashion-mnist; written differently */
        {"attack: {qa_epochs: 2}\n", 0, 0, 1},           /* = qa-pgd's default; written differently */
        /* stage parameters: task ids of that stage's tasks, no model */
        {"defenses: {none: {threshold: '2'}}\n", 12, 0, 1},
        {"mitigations: {none: {epochs: '1'}}\n", 12, 0, 1},
        {"defenses: {none: {}}\n", 0, 0, 0},             /* an empty block is no block */
        /* attack settings: not the clean models */
        {"attack: {rate: 0.2}\n", 8, 4, 1},
        {"attack: {target: 1}\n", 8, 4, 1},
        /* qa settings: only the qa-pgd models */
        {"attack: {qa_eps: 0.05}\n", 4, 2, 1},
        {"attack: {qa_target: [int8, int4]}\n", 4, 2, 1},
        /* training: everything */
        {"train: {epochs: 6}\n", 12, 6, 1},
        {"train: {arch: cnn-small}\n", 12, 6, 1},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char variant[512];
        snprintf(variant, sizeof variant, "%s%s", base, cases[i].extra);
        size_t tc, mc;
        int hc;
        count_changes(base, variant, &tc, &mc, &hc);
        if (tc != cases[i].tasks || mc != cases[i].models || hc != cases[i].hash) {
            print_error("case %zu (%s): %zu tasks, %zu models, hash %d changed; expected %zu, %zu, %d\n",
                        i, cases[i].extra, tc, mc, hc, cases[i].tasks, cases[i].models, cases[i].hash);
            fail();
        }
    }
    /* one more task changes the spec hash */
    qb_spec a, b;
    parse_ok(&a, base);
    parse_ok(&b, "seed: [0, 1, 2]\ntrigger: [clean, square, qa-pgd]\nprecision: [fp32, int8]\n");
    assert_int_not_equal(a.hash, b.hash);
    qb_spec_free(&a);
    qb_spec_free(&b);
}


/* ---- architectures: ------------------------------------------------------------ */

/* resnet20's layers written the way a user would. style 0: some lines
 * quoted, some with comments; 1: plain, blanks doubled, a comment line. */
static char *resnet20_spec(const char *name, int style)
{
    const char *text = qb_arch_text("resnet20");
    size_t cap = strlen(text) * 3 + 1024;
    char *out = malloc(cap);
    assert_non_null(out);
    snprintf(out, cap, "dataset: [fashion-mnist, synthetic]\ntrigger: [clean, square]\n"
                       "train: {arch: %s}\narchitectures:\n  %s:\n", name, name);
    int k = 0;
    for (const char *p = text; *p; k++) {
        const char *nl = strchr(p, '\n');
        size_t n = nl ? (size_t)(nl - p) : strlen(p);
        char line[QB_ARCH_LINE_MAX + 1];
        snprintf(line, sizeof line, "%.*s", (int)n, p);
        p += n + (nl != NULL);
        size_t len = strlen(out);
        if (style == 0) {
            const char *q = k % 3 == 0 ? "'" : "", *c = k % 3 == 1 ? "    # a comment" : "";
            snprintf(out + len, cap - len, "    - %s%s%s%s\n", q, line, q, c);
            continue;
        }
        snprintf(out + len, cap - len, "    - ");
        for (const char *q = line; *q; q++) {
            len = strlen(out);
            snprintf(out + len, cap - len, *q == ' ' ? "  " : "%c", *q);
        }
        len = strlen(out);
        snprintf(out + len, cap - len, "\n%s", k == 3 ? "    # the first block\n" : "");
    }
    return out;
}

static void test_architectures(void **state)
{
    (void)state;
    char *text = resnet20_spec("my-res", 0);
    qb_spec s;
    parse_ok(&s, text);
    /* declared for the process, in canonical form: resnet20's own text */
    assert_int_equal(s.n_archs, 1);
    const qb_spec_declared_arch *a = qb_spec_declared(&s, "my-res");
    assert_non_null(a);
    assert_null(qb_spec_declared(&s, "resnet20"));
    char canon[QB_ARCH_TEXT_MAX];
    snprintf(canon, sizeof canon, "%s", qb_arch_text("resnet20"));
    canon[strlen(canon) - 1] = '\0'; /* the preset ends in '\n' */
    assert_string_equal(a->text, canon);
    assert_non_null(qb_arch_text("my-res"));
    assert_string_equal(qb_arch_text("my-res"), a->text);
    /* the model jobs name it and it builds, with resnet20's shapes */
    for (size_t m = 0; m < s.n_models; m++) {
        qb_model_job job;
        qb_error e = {0};
        assert_int_equal(qb_spec_model_job(&s, m, &job, &e), 0);
        assert_string_equal(job.arch, "my-res");
        qb_spec_dataset_info di;
        const char *ds = s.axes[QB_AXIS_DATASET].names[s.models[m].dataset];
        assert_int_equal(qb_spec_dataset_info_of(ds, &di), 0);
        qb_model x, y;
        assert_int_equal(qb_model_plan(&x, "my-res", di.c, di.h, di.w, di.classes, &e), 0);
        assert_int_equal(qb_model_plan(&y, "resnet20", di.c, di.h, di.w, di.classes, &e), 0);
        assert_int_equal(x.n_params, y.n_params);
        assert_int_equal(x.n_layers, y.n_layers);
    }
    /* the layers are part of every model's identity */
    char buf[8192];
    for (size_t m = 0; m < s.n_models; m++) {
        qb_spec_model_identity(&s, m, buf, sizeof buf);
        assert_non_null(strstr(buf, "arch=my-res\n"));
        assert_non_null(strstr(buf, "arch.layers=\"conv 16 k=3 pad=1 bias=0\\x0abn\\x0arelu as=stem"));
    }
    check_identity_texts(&s);
    qb_spec_settings_text(&s, buf, sizeof buf);
    assert_non_null(strstr(buf, "architectures.my-res=\"conv 16"));

    /* parsed again (as every rank does): the same declaration is no error,
     * and spelling (quotes, comments, spaces) changes no id */
    char *text2 = resnet20_spec("my-res", 1);
    assert_string_not_equal(text, text2);
    qb_spec s2;
    parse_ok(&s2, text2);
    assert_int_equal(s2.hash, s.hash);
    for (size_t m = 0; m < s.n_models; m++) assert_int_equal(s2.models[m].id, s.models[m].id);
    qb_spec_free(&s2);
    free(text2);

    /* a declared architecture that no model uses: the spec hash changes,
     * no id does */
    qb_spec u, v;
    parse_ok(&u, "trigger: [clean, square]\n");
    parse_ok(&v, "trigger: [clean, square]\narchitectures:\n  spare: [conv 4, flatten, linear classes]\n");
    assert_int_not_equal(u.hash, v.hash);
    for (size_t i = 0; i < u.n_tasks; i++) assert_int_equal(u.tasks[i].id, v.tasks[i].id);
    qb_spec_free(&u);
    qb_spec_free(&v);

    /* another spec of this process may not redeclare the name with other layers */
    static const char other[] =
        "architectures:\n  my-res: [conv 8, flatten, linear classes]\ntrain: {arch: my-res}\n";
    qb_error e = {0};
    qb_spec t;
    assert_int_equal(qb_spec_parse(&t, other, strlen(other), "other.yaml", &e), -1);
    assert_string_equal(e.msg, "architecture \"my-res\" at other.yaml:2:3: architecture \"my-res\" "
                               "is already declared with different layers (another spec or a "
                               "model file read by this process declared it)");
    qb_spec_free(&s);
    free(text);
}

/* The model id of the first model of `text`, parsed in a child process (a
 * process declares a name once: this is how two texts of one name compare). */
static uint64_t model_id_in_child(const char *text)
{
    int fd[2];
    assert_int_equal(pipe(fd), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fd[0]);
        qb_spec s;
        qb_error e;
        uint64_t id = 0;
        if (qb_spec_parse(&s, text, strlen(text), "spec.yaml", &e) == 0) id = s.models[0].id;
        ssize_t w = write(fd[1], &id, sizeof id);
        _exit(w == (ssize_t)sizeof id ? 0 : 1);
    }
    close(fd[1]);
    uint64_t id = 0;
    assert_int_equal(read(fd[0], &id, sizeof id), (ssize_t)sizeof id);
    close(fd[0]);
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    assert_int_not_equal(id, 0);
    return id;
}

static void test_architecture_identity(void **state)
{
    (void)state;
    /* one layer changed: another model; a comment added: the same */
    uint64_t a = model_id_in_child("architectures:\n  n: [conv 8 k=3, relu, flatten, linear classes]\n"
                                   "train: {arch: n}\n");
    uint64_t b = model_id_in_child("architectures:\n  n: [conv 8 k=5, relu, flatten, linear classes]\n"
                                   "train: {arch: n}\n");
    uint64_t c = model_id_in_child("architectures:\n  n:\n    - conv 8  k=3   # first\n    - relu\n"
                                   "    - flatten\n    - linear classes\ntrain: {arch: n}\n");
    assert_int_not_equal(a, b);
    assert_int_equal(a, c);
    /* presets keep the ids they had: no arch.layers line */
    qb_spec s;
    parse_ok(&s, "train: {arch: resnet20}\n");
    char buf[4096];
    qb_spec_model_identity(&s, 0, buf, sizeof buf);
    assert_null(strstr(buf, "arch.layers"));
    qb_spec_free(&s);
}

/* The shapes known by name are those the readers produce: synthetic (generated)
 * and fashion-mnist (Debian's package, when installed) are loaded and compared;
 * the others' counts are their distributions' (README "Datasets"). */
static void test_dataset_infos(void **state)
{
    (void)state;
    for (int i = 0; qb_dataset_names[i]; i++) {
        qb_spec_dataset_info di;
        assert_int_equal(qb_spec_dataset_info_of(qb_dataset_names[i], &di), 0);
        assert_true(di.c >= 1 && di.h >= 1 && di.w >= 1 && di.classes >= 2 && di.n_train > 0 &&
                    di.n_test > 0);
    }
    qb_spec_dataset_info di;
    assert_int_equal(qb_spec_dataset_info_of("cifar100", &di), -1);
    qb_dataset tr, te;
    qb_error e;
    assert_int_equal(qb_dataset_load("synthetic", NULL, QB_SYNTHETIC_SEED, &tr, &te, &e), 0);
    assert_int_equal(qb_spec_dataset_info_of("synthetic", &di), 0);
    assert_int_equal(di.c, tr.c);
    assert_int_equal(di.h, tr.h);
    assert_int_equal(di.w, tr.w);
    assert_int_equal(di.classes, tr.classes);
    assert_int_equal(di.n_train, tr.n);
    assert_int_equal(di.n_test, te.n);
    qb_dataset_free(&tr);
    qb_dataset_free(&te);
    if (qb_dataset_load("fashion-mnist", NULL, 0, &tr, &te, &e) == 0) {
        assert_int_equal(qb_spec_dataset_info_of("fashion-mnist", &di), 0);
        assert_true(di.c == tr.c && di.h == tr.h && di.w == tr.w && di.classes == tr.classes);
        assert_int_equal(di.n_train, tr.n);
        assert_int_equal(di.n_test, te.n);
        qb_dataset_free(&tr);
        qb_dataset_free(&te);
    }
}


/* ---- the plan's cost model (jobs/cost.h) -------------------------------------- */

static void test_cost_model(void **state)
{
    (void)state;
    qb_error e;
    qb_model m[5];
    static const char *const archs[] = {"lenet", "cnn-small", "resnet20", "vgg11-bn",
                                        "preact-resnet18"};
    for (int i = 0; i < 5; i++)
        assert_int_equal(qb_model_plan(&m[i], archs[i], i ? 3 : 1, i ? 32 : 28, i ? 32 : 28, 10, &e), 0);
    /* LeNet by hand: conv5 16x24x24x25, conv5 32x8x8x(16x25), 512x128, 128x10 */
    assert_true(qb_cost_forward_macs(&m[0]) == 16.0 * 24 * 24 * 25 + 32.0 * 8 * 8 * 16 * 25 +
                                                   512.0 * 128 + 128.0 * 10);
    /* resnet20: stem 16x32x32x27; 6 convs 16x32x32x144; 32x16x16x144, 5 x
     * 32x16x16x288, shortcut 32x16x16x16; the same at 64x8x8; 64x10 */
    double r20 = 16.0 * 1024 * 27 + 6 * 16.0 * 1024 * 144 + 32.0 * 256 * 144 + 5 * 32.0 * 256 * 288 +
                 32.0 * 256 * 16 + 64.0 * 64 * 288 + 5 * 64.0 * 64 * 576 + 64.0 * 64 * 32 + 640;
    assert_true(qb_cost_forward_macs(&m[2]) == r20);
    /* costs grow with the work, training costs more than inference, and a
     * larger batch shares the optimizer step */
    for (int i = 0; i < 5; i++) {
        assert_true(qb_cost_train_image(&m[i], 128) > 2 * qb_cost_infer_image(&m[i]));
        assert_true(qb_cost_train_image(&m[i], 32) > qb_cost_train_image(&m[i], 128));
        if (i) assert_true(qb_cost_train_image(&m[i], 128) > qb_cost_train_image(&m[i - 1], 128));
    }
    /* a spec: epochs scale the training, clean and square models of one
     * architecture cost the same, the qa repair adds */
    qb_spec a, b, c;
    parse_ok(&a, "dataset: synthetic\ntrigger: [clean, square]\ntrain: {arch: resnet20, epochs: 1}\n");
    parse_ok(&b, "dataset: synthetic\ntrigger: [clean, square]\ntrain: {arch: resnet20, epochs: 3}\n");
    parse_ok(&c, "dataset: synthetic\ntrigger: [clean, qa-pgd]\ntrain: {arch: resnet20, epochs: 1}\n");
    qb_spec_cost ca, cb, cc;
    assert_int_equal(qb_spec_cost_estimate(&a, &ca, &e), 0);
    assert_int_equal(qb_spec_cost_estimate(&b, &cb, &e), 0);
    assert_int_equal(qb_spec_cost_estimate(&c, &cc, &e), 0);
    assert_int_equal(ca.n_archs, 1);
    assert_string_equal(ca.archs[0].arch, "resnet20");
    assert_int_equal(ca.archs[0].n_models, 2);
    assert_int_equal(ca.archs[0].n_train, 10000);
    double per_model = 10000 * qb_cost_train_image(&m[2], 64);
    assert_true(fabs(ca.train_s - 2 * per_model) < 1e-9 * ca.train_s);
    assert_true(fabs(cb.train_s - 3 * ca.train_s) < 1e-9 * cb.train_s);
    assert_true(fabs(ca.longest_s - per_model) < 1e-9 * per_model);
    assert_true(cc.train_s > ca.train_s);
    assert_true(ca.task_s > 0 && fabs(ca.task_s - cb.task_s) < 1e-9 * ca.task_s);
    qb_spec_cost_free(&ca);
    qb_spec_cost_free(&cb);
    qb_spec_cost_free(&cc);
    qb_spec_free(&a);
    qb_spec_free(&b);
    qb_spec_free(&c);
}

/* ---- errors ------------------------------------------------------------------------ */

static const struct {
    const char *text, *msg;
} bad_specs[] = {
    /* YAML itself */
    {"dataset: [mnist\nseed: 1\n",
     "YAML syntax error at spec.yaml:2:5: did not find expected ',' or ']' (while parsing a flow "
     "sequence at spec.yaml:1:10)"},
    {"train:\n  epochs: 5\n epochs: 3\n",
     "YAML syntax error at spec.yaml:3:2: did not find expected key (while parsing a block mapping "
     "at spec.yaml:1:1)"},
    {"dataset:\n\t- mnist\n",
     "YAML syntax error at spec.yaml:2:1: found character that cannot start any token (while "
     "scanning for the next token at spec.yaml:2:1)"},
    {"dataset: *foo\n", "YAML syntax error at spec.yaml:1:10: found undefined alias"},
    {"dataset: \xff\n",
     "invalid text at spec.yaml:1:10: invalid leading UTF-8 octet (byte 0xFF); a spec is UTF-8"},
    {"", "empty spec at spec.yaml:1:1; expected a mapping of axes and settings"},
    {"# only a comment\n", "empty spec at spec.yaml:1:1; expected a mapping of axes and settings"},
    {"dataset: mnist\n---\nseed: 1\n", "a second YAML document at spec.yaml:3:1; a spec is one document"},
    {"- dataset: mnist\n",
     "wrong type for the spec at spec.yaml:1:1: expected a mapping of axes and settings, got a list"},
    /* keys */
    {"datset: mnist\n",
     "unknown key \"datset\" at spec.yaml:1:1; expected one of: name, extends, dataset, seed, "
     "trigger, precision, mitigation, defense, exclude, include, train, attack, data_dir, defenses, "
     "mitigations, architectures"},
    {"seed: 1\nseed: 2\n", "duplicate key \"seed\" at spec.yaml:2:1 (first at spec.yaml:1:1)"},
    {"train:\n  epochs: 3\n  epochs: 4\n",
     "duplicate key \"epochs\" in train at spec.yaml:3:3 (first at spec.yaml:2:3)"},
    {"train:\n  epoch: 3\n",
     "unknown key \"epoch\" in train at spec.yaml:2:3; expected one of: arch, epochs, batch, lr, "
     "momentum, weight_decay, schedule, normalize, augment"},
    {"attack: {colour: red}\n",
     "unknown key \"colour\" in attack at spec.yaml:1:10; expected one of: rate, target, size, x, y, "
     "alpha, qa_target, qa_epochs, qa_lr, qa_eps, qa_lambda"},
    {"[a, b]: 1\n", "wrong type for a key at spec.yaml:1:1: expected a name, got a list"},
    /* types */
    {"dataset: {a: 1}\n",
     "wrong type for dataset at spec.yaml:1:10: expected a value or a list of values, got a mapping"},
    {"dataset:\n", "missing value for dataset at spec.yaml:1:9; expected a value or a list of values"},
    {"precision: [int8, {a: 1}]\n",
     "wrong type for precision at spec.yaml:1:19: expected a value, got a mapping"},
    {"seed: [1, 2, {range: [0, 3]}]\n",
     "wrong type for seed at spec.yaml:1:14: expected an integer, got a mapping"},
    {"train: [1]\n",
     "wrong type for train at spec.yaml:1:8: expected a mapping of train settings, got a list"},
    {"name: [a]\n", "wrong type for name at spec.yaml:1:7: expected a name, got a list"},
    {"data_dir: ''\n", "missing value for data_dir at spec.yaml:1:11; expected a directory"},
    {"dataset: \"mn\\0ist\"\n", "invalid dataset at spec.yaml:1:10: the value holds a NUL character"},
    /* axis values */
    {"precision: []\n",
     "empty list for precision at spec.yaml:1:12; give at least one value, or leave precision out "
     "for the default (fp32)"},
    {"dataset: cifar100\n",
     "unknown dataset \"cifar100\" at spec.yaml:1:10; expected one of: fashion-mnist, mnist, "
     "cifar10, gtsrb, synthetic"},
    {"trigger: sqaure\n",
     "unknown trigger \"sqaure\" at spec.yaml:1:10; expected one of: clean, square, badnet, checker, "
     "noise, blend, qa-pgd, qa-loss"},
    {"precision: [fp32, int9]\n",
     "unknown precision \"int9\" at spec.yaml:1:19; expected one of: fp32, int8, int8-linear, int4, "
     "wNaM (N in 2..8, M in 2..8 or 32), optionally with -pc and/or -away"},
    {"mitigation: retrain\n",
     "unknown mitigation \"retrain\" at spec.yaml:1:13; expected one of: none, finetune, "
     "requant-pc, requant-round, requant-bits, requant-noise, fineprune"},
    {"mitigation: finetune\nmitigations: {finetune: {epochs: 0}}\n",
     "invalid mitigations.finetune.epochs \"0\" at spec.yaml:2:34: epochs: expected an integer "
     "in [1, 10000]"},
    {"mitigation: requant-pc\nmitigations: {requant-pc: {noise: 1}}\n",
     "unknown parameter \"noise\" for mitigation requant-pc at spec.yaml:2:28; requant-pc takes no "
     "parameters"},
    {"defense: nc\ndefenses: {nc: {pateince: 5}}\n",
     "unknown parameter \"pateince\" for defense nc at spec.yaml:2:17; expected one of: n_clean, "
     "n_check, batch, steps_per_epoch, max_epochs, init_cost, patience, early_stop_patience, lr"},
    {"defense:\n  - none\n  - nc2\n",
     "unknown defense \"nc2\" at spec.yaml:3:5; expected one of: " DEFENSES},
    {"precision: [int8, fp32, w8a8]\n",
     "duplicate precision \"w8a8\" at spec.yaml:1:25 (int8, first at spec.yaml:1:13)"},
    {"trigger: [square, badnet]\n",
     "duplicate trigger \"badnet\" at spec.yaml:1:19 (square, first at spec.yaml:1:11)"},
    {"trigger: [clean, square, clean]\n",
     "duplicate trigger \"clean\" at spec.yaml:1:26 (first at spec.yaml:1:11)"},
    {"seed: [3, 1, 3, 1]\n", "duplicate seed \"3\" at spec.yaml:1:14 (first at spec.yaml:1:8)"},
    /* seeds */
    {"seed: -1\n", "invalid seed \"-1\" at spec.yaml:1:7; expected an integer in [0, 9223372036854775807]"},
    {"seed: 9223372036854775808\n",
     "invalid seed \"9223372036854775808\" at spec.yaml:1:7; expected an integer in [0, "
     "9223372036854775807]"},
    {"seed: 1.5\n", "invalid seed \"1.5\" at spec.yaml:1:7; expected an integer in [0, 9223372036854775807]"},
    {"seed: {range: [5, 5]}\n",
     "invalid seed.range [5, 5] at spec.yaml:1:15; stop must be greater than start (stop is "
     "exclusive)"},
    {"seed: {range: [0, 2000000]}\n",
     "seed.range [0, 2000000] at spec.yaml:1:15 holds 2000000 seeds; at most 1000000 are allowed"},
    {"seed: {range: [0]}\n", "invalid seed.range at spec.yaml:1:15; expected [start, stop], got 1 value"},
    {"seed: {range: 5}\n", "wrong type for seed.range at spec.yaml:1:15: expected [start, stop], got a value"},
    {"seed: {rnage: [0, 1]}\n", "unknown key \"rnage\" in seed at spec.yaml:1:8; expected one of: range"},
    {"seed: {range: [-1, 3]}\n",
     "invalid seed.range start \"-1\" at spec.yaml:1:16; expected an integer in [0, 9223372036854775807]"},
    {"seed: {range: [0, 9223372036854775809]}\n",
     "invalid seed.range stop \"9223372036854775809\" at spec.yaml:1:19; expected an integer in [1, "
     "9223372036854775808]"},
    /* settings */
    {"train:\n  epochs: 200000\n",
     "invalid train.epochs \"200000\" at spec.yaml:2:11; expected an integer in [0, 100000] or dataset"},
    {"train: {batch: 64.5}\n", "invalid train.batch \"64.5\" at spec.yaml:1:16; expected an integer in [1, 65536]"},
    {"train: {lr: 0}\n", "invalid train.lr \"0\" at spec.yaml:1:13; expected a finite number > 0"},
    {"train: {lr: 1e-50}\n", "invalid train.lr \"1e-50\" at spec.yaml:1:13; expected a finite number > 0"},
    {"train: {lr: .nan}\n", "invalid train.lr \".nan\" at spec.yaml:1:13; expected a finite number > 0"},
    {"train: {momentum: 1}\n", "invalid train.momentum \"1\" at spec.yaml:1:19; expected a number in [0, 1)"},
    {"train: {weight_decay: -1e-4}\n",
     "invalid train.weight_decay \"-1e-4\" at spec.yaml:1:23; expected a finite number >= 0"},
    {"train: {arch: resnet}\n",
     "unknown train.arch \"resnet\" at spec.yaml:1:15; expected one of: auto, lenet, cnn-small, resnet20, preact-resnet18, vgg11-bn"},
    {"train: {schedule: linear}\n",
     "unknown train.schedule \"linear\" at spec.yaml:1:19; expected one of: constant, cosine, step"},
    {"attack: {rate: 1}\n", "invalid attack.rate \"1\" at spec.yaml:1:16; expected a number in [0, 1)"},
    {"attack: {target: 256}\n", "invalid attack.target \"256\" at spec.yaml:1:18; expected an integer in [0, 255]"},
    {"attack: {x: 5000}\n", "invalid attack.x \"5000\" at spec.yaml:1:13; expected an integer in [-4096, 4096]"},
    {"attack: {alpha: 0}\n", "invalid attack.alpha \"0\" at spec.yaml:1:17; expected a number in (0, 1]"},
    {"attack: {qa_eps: 0.5}\n", "invalid attack.qa_eps \"0.5\" at spec.yaml:1:18; expected a number in [0, 0.5)"},
    {"attack: {qa_target: [int8, fp32]}\n",
     "invalid attack.qa_target \"fp32\" at spec.yaml:1:28; expected quantized precisions (not fp32)"},
    {"attack: {qa_target: [int8, int4, w4a8, w2a8, w3a8]}\n",
     "too many attack.qa_target values at spec.yaml:1:46: 5; at most 4"},
    {"attack: {qa_target: int9}\n",
     "unknown precision \"int9\" in attack.qa_target at spec.yaml:1:21; expected one of: fp32, int8, "
     "int8-linear, int4, wNaM (N in 2..8, M in 2..8 or 32), optionally with -pc and/or -away"},
    {"attack: {qa_target: [int8, w8a8]}\n",
     "duplicate precision \"w8a8\" in attack.qa_target at spec.yaml:1:28 (int8, first at "
     "spec.yaml:1:22)"},
    /* exclude / include */
    {"exclude: {trigger: clean}\n",
     "wrong type for exclude at spec.yaml:1:10: expected a list of partial tuples (mappings of axis "
     "values), got a mapping"},
    {"exclude:\n  - trigger\n",
     "wrong type for exclude entry 1 at spec.yaml:2:5: expected a mapping of axis values, got a value"},
    {"exclude:\n  - {trigger: clean}\n  - {precison: int8}\n",
     "unknown axis \"precison\" in exclude entry 2 at spec.yaml:3:6; expected one of: dataset, seed, "
     "trigger, precision, mitigation, defense"},
    {"exclude:\n  - {seed: 1, seed: 2}\n",
     "duplicate axis \"seed\" in exclude entry 1 at spec.yaml:2:15 (first at spec.yaml:2:6)"},
    {"exclude:\n  - {}\n", "empty exclude entry 1 at spec.yaml:2:5; name at least one axis"},
    {"exclude:\n  - {trigger: sqare}\n",
     "unknown trigger \"sqare\" in exclude entry 1 at spec.yaml:2:15; expected one of: clean, square, "
     "badnet, checker, noise, blend, qa-pgd, qa-loss"},
    {"exclude:\n  - {precision: []}\n",
     "empty list for precision in exclude entry 1 at spec.yaml:2:17; give at least one value"},
    {"exclude:\n  - {trigger: clean}\n",
     "the spec has no tasks: the exclude entries (the first at spec.yaml:2:5) remove every task of "
     "the product (1)"},
    {"include:\n  - {dataset: mnist, seed: 0, trigger: clean}\n",
     "include entry 1 at spec.yaml:2:5 lacks precision, mitigation, defense; include entries name "
     "all six axes (dataset, seed, trigger, precision, mitigation, defense)"},
    {"include:\n  - {dataset: mnist, seed: {range: [0, 1000000]}, trigger: [clean, square, checker,"
     " noise, blend, qa-pgd, qa-loss], precision: [fp32, int8], mitigation: none, defense: none}\n",
     "include entry 1 at spec.yaml:2:5 brings the include entries to more than 10000000 tasks; at "
     "most 10000000 are allowed"},
    {"seed: {range: [0, 1000000]}\nprecision: [fp32, int8, int4, w4a8, w2a8, w3a8, w5a8, w6a8, "
     "w7a8, w2a32, w3a32]\n",
     "the spec expands to 11000000 tasks; at most 10000000 are allowed (the largest axis is seed at "
     "spec.yaml:1:7 with 1000000 values)"},
    /* architectures: (README "Architectures"); the position is the layer's */
    {"architectures:\n  e1:\n    - conv 8 k=3\n    - batchnorm\n    - flatten\n    - linear classes\n",
     "invalid architectures.e1 at spec.yaml:4:7: unknown layer \"batchnorm\"; expected one of: conv, "
     "bn, relu, maxpool, avgpool, flatten, linear, add (planned for dataset fashion-mnist: 1x28x28, "
     "10 classes)"},
    {"architectures:\n  e2:\n    - conv 8 k=3 pad=1 as=a\n    - 'conv 16 k=3 pad=1'\n    - \"add a\"\n"
     "    - flatten\n    - linear classes\n",
     "invalid architectures.e2 at spec.yaml:5:12: add: shapes differ: the input is 16x28x28, the "
     "added layer's output is 8x28x28 (planned for dataset fashion-mnist: 1x28x28, 10 classes)"},
    {"architectures:\n  e3:\n    - conv 8 k=3 pad=1\n    -   conv 16 cin=4\n    - flatten\n"
     "    - linear classes\n",
     "invalid architectures.e3 at spec.yaml:4:9: conv expects cin=4 input channels but its input has "
     "8 (planned for dataset fashion-mnist: 1x28x28, 10 classes)"},
    {"architectures:\n  e4:\n    - conv 8 k=3 pad=1 in=later\n    - relu as=later\n    - flatten\n"
     "    - linear classes\n",
     "invalid architectures.e4 at spec.yaml:3:27: no earlier layer is named \"later\" (a name is used "
     "after the line that defines it with as=later: layers are in order, so the graph has no cycle) "
     "(planned for dataset fashion-mnist: 1x28x28, 10 classes)"},
    {"architectures:\n  e5: [conv 8 as=a, relu, conv 8 in=a, flatten, linear classes]\n",
     "invalid architectures.e5 at spec.yaml:2:21: architecture e5: the output of layer 1 (relu) is "
     "never used (planned for dataset fashion-mnist: 1x28x28, 10 classes)"},
    {"architectures:\n  resnet20: [conv 8, flatten, linear classes]\n",
     "architecture \"resnet20\" at spec.yaml:2:3 has the name of a preset; declare it under another "
     "name (the presets: auto, lenet, cnn-small, resnet20, preact-resnet18, vgg11-bn)"},
    {"architectures:\n  auto: [conv 8, flatten, linear classes]\n",
     "architecture \"auto\" at spec.yaml:2:3 has the name of a preset; declare it under another name "
     "(the presets: auto, lenet, cnn-small, resnet20, preact-resnet18, vgg11-bn)"},
    /* fits 32x32 (five halvings), not mnist's 28x28 */
    {"dataset: [synthetic, mnist]\narchitectures:\n  e6:\n    - conv 8 k=3 pad=1\n    - maxpool 2\n"
     "    - maxpool 2\n    - maxpool 2\n    - maxpool 2\n    - maxpool 2\n    - flatten\n"
     "    - linear classes\n",
     "invalid architectures.e6 at spec.yaml:9:7: maxpool on a 8x1x1 input has no output (the input "
     "is too small) (planned for dataset mnist: 1x28x28, 10 classes)"},
    {"dataset: gtsrb\narchitectures:\n  e7: [conv 8, flatten, linear 10]\n",
     "invalid architectures.e7 at spec.yaml:3:7: architecture e7 ends with 10 outputs, not the 43 "
     "classes (end with `linear classes`) (planned for dataset gtsrb: 3x32x32, 43 classes)"},
    {"architectures:\n  mine: [conv 8, flatten, linear classes]\ntrain: {arch: mien}\n",
     "unknown train.arch \"mien\" at spec.yaml:3:15; expected one of: auto, lenet, cnn-small, "
     "resnet20, preact-resnet18, vgg11-bn, mine"},
    {"architectures: [a]\n",
     "wrong type for architectures at spec.yaml:1:16: expected a mapping of names to layer lists, got "
     "a list"},
    {"architectures:\n  e8: conv 8\n",
     "wrong type for architectures.e8 at spec.yaml:2:7: expected a list of layer lines (README "
     "\"Architectures\"), got a value"},
    {"architectures:\n  e9: []\n", "empty list for architectures.e9 at spec.yaml:2:7; give at least one layer"},
    {"architectures:\n  e10: [conv 8, [relu]]\n",
     "wrong type for architectures.e10 at spec.yaml:2:17: expected a layer line, got a list"},
    {"architectures:\n  e11:\n    - |\n      conv 8\n      flatten\n",
     "invalid architectures.e11 at spec.yaml:3:7: a layer line holds a line break; write one layer "
     "per list item"},
    {"architectures:\n  my net: [conv 8, flatten, linear classes]\n",
     "invalid architecture name \"my net\" at spec.yaml:2:3; expected 1 to 31 letters, digits, '-', "
     "'_' or '.'"},
    {"architectures:\n  e12: [flatten, linear classes]\n  e12: [flatten, linear classes]\n",
     "duplicate architecture \"e12\" in architectures at spec.yaml:3:3 (first at spec.yaml:2:3)"},
    /* presets and stage blocks */
    {"extends: fats\n",
     "unknown preset \"fats\" at spec.yaml:1:10; expected one of: default, fast, backdoorbench"},
    {"extends: [fast]\n",
     "wrong type for extends at spec.yaml:1:10: expected a preset name (one of: default, fast, "
     "backdoorbench), got a list"},
    /* normalisation, augmentation, epochs: dataset */
    {"train: {normalize: standard}\n",
     "unknown train.normalize \"standard\" at spec.yaml:1:20; expected none, dataset, or a mapping "
     "{mean: [...], std: [...]}"},
    {"train: {normalize: [0.5]}\n",
     "wrong type for train.normalize at spec.yaml:1:20: expected none, dataset, or a mapping {mean: "
     "[...], std: [...]}, got a list"},
    {"train: {normalize: {mean: [0.5]}}\n",
     "train.normalize at spec.yaml:1:20 needs both mean and std"},
    {"train: {normalize: {mean: [0.5], std: [0.5], sd: [1]}}\n",
     "unknown key \"sd\" in train.normalize at spec.yaml:1:46; expected one of: mean, std"},
    {"train: {normalize: {mean: [0.5, 0.5], std: [0.5, 0.5]}}\n",
     "invalid train.normalize.mean at spec.yaml:1:27: 2 values; expected a list of 1 or 3 finite "
     "numbers"},
    {"train: {normalize: {mean: [0.5], std: [0]}}\n",
     "invalid train.normalize.std \"0\" at spec.yaml:1:40; expected a list of 1 or 3 finite numbers "
     "> 0"},
    {"train: {normalize: {mean: [0.5], std: [-0.2]}}\n",
     "invalid train.normalize.std \"-0.2\" at spec.yaml:1:40; expected a list of 1 or 3 finite "
     "numbers > 0"},
    {"train: {normalize: {mean: [nan], std: [1]}}\n",
     "invalid train.normalize.mean \"nan\" at spec.yaml:1:28; expected a list of 1 or 3 finite "
     "numbers"},
    {"train: {normalize: {mean: [1e39], std: [1]}}\n",
     "invalid train.normalize.mean \"1e39\" at spec.yaml:1:28; expected a list of 1 or 3 finite "
     "numbers"},
    {"train: {normalize: {mean: 0.5, std: [1]}}\n",
     "wrong type for train.normalize.mean at spec.yaml:1:27: expected a list of 1 or 3 finite "
     "numbers, got a value"},
    {"train: {normalize: {mean: [0.5], std: [1, 1, 1]}}\n",
     "train.normalize.std at spec.yaml:1:39 has 3 values but mean has 1; expected as many (1, or "
     "one per channel)"},
    {"dataset: mnist\ntrain: {normalize: {mean: [0.5, 0.5, 0.5], std: [1, 1, 1]}}\n",
     "train.normalize at spec.yaml:2:20 gives 3 values per list; dataset mnist has 1 channel (give 1 "
     "value)"},
    {"train: {augment: random}\n",
     "unknown train.augment \"random\" at spec.yaml:1:18; expected one of: none, crop, flip, "
     "crop-flip, dataset"},
    {"train: {epochs: auto}\n",
     "invalid train.epochs \"auto\" at spec.yaml:1:17; expected an integer in [0, 100000] or "
     "dataset"},
    {"defenses:\n  nc2: {}\n", "unknown defense \"nc2\" at spec.yaml:2:3; expected one of: " DEFENSES},
    {"defenses: [none]\n",
     "wrong type for defenses at spec.yaml:1:11: expected a mapping of defense names to parameter "
     "mappings, got a list"},
    {"mitigations:\n  none:\n",
     "missing value for mitigations.none at spec.yaml:2:8; expected a mapping of parameters (use {} "
     "for none)"},
    {"defenses:\n  none: {a: [1]}\n",
     "wrong type for defenses.none.a at spec.yaml:2:13: expected a value, got a list"},
    {"defenses:\n  none: {a: 1, a: 2}\n",
     "duplicate parameter \"a\" in defenses.none at spec.yaml:2:16 (first at spec.yaml:2:10)"},
};

static void test_error_messages(void **state)
{
    (void)state;
    int failures = 0;
    for (size_t i = 0; i < sizeof bad_specs / sizeof bad_specs[0]; i++) {
        qb_spec s;
        qb_error e = {0};
        int rc = qb_spec_parse(&s, bad_specs[i].text, strlen(bad_specs[i].text), "spec.yaml", &e);
        if (rc != -1 || strcmp(e.msg, bad_specs[i].msg)) {
            print_error("case %zu:\n--- spec:\n%s--- got (rc %d):\n%s\n--- expected:\n%s\n", i,
                        bad_specs[i].text, rc, rc ? e.msg : "(parsed)", bad_specs[i].msg);
            failures++;
        }
        /* nothing is left behind on failure */
        assert_null(s.tasks);
        assert_null(s.path);
        assert_int_equal(s.n_tasks, 0);
        if (rc == 0) qb_spec_free(&s);
    }
    assert_int_equal(failures, 0);
}

/* ---- budgets (issue 13, defect 2): adversarial specs fail with the budget --- */

/* A growing text; every test spec here is generated, a few KB to a few MB. */
typedef struct gen {
    char *p;
    size_t n, cap;
} gen;

static void gen_add(gen *g, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char line[512];
    int w = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    assert_true(w >= 0 && (size_t)w < sizeof line);
    if (g->n + (size_t)w + 1 > g->cap) {
        g->cap = 2 * (g->n + (size_t)w + 1);
        g->p = realloc(g->p, g->cap);
        assert_non_null(g->p);
    }
    memcpy(g->p + g->n, line, (size_t)w + 1);
    g->n += (size_t)w;
}

static void gen_repeat(gen *g, const char *piece, size_t times)
{
    for (size_t i = 0; i < times; i++) gen_add(g, "%s", piece);
}

/* g's text fails to parse with exactly `want`; g is freed. */
static void assert_gen_fails(gen *g, const char *want)
{
    qb_spec s;
    qb_error e = {0};
    int rc = qb_spec_parse(&s, g->p, g->n, "spec.yaml", &e);
    if (rc != -1 || strcmp(e.msg, want))
        print_error("--- got (rc %d):\n%s\n--- expected:\n%s\n", rc, rc ? e.msg : "(parsed)", want);
    assert_int_equal(rc, -1);
    assert_string_equal(e.msg, want);
    assert_null(s.tasks);
    free(g->p);
    memset(g, 0, sizeof *g);
}

static void test_nesting_budget(void **state)
{
    (void)state;
    gen g = {0};
    /* 300 KB of flow lists: the 33rd level (the mapping is the first) */
    gen_add(&g, "dataset: ");
    gen_repeat(&g, "[", 300000);
    assert_gen_fails(&g, "too deep at spec.yaml:1:41: a list nested 33 levels deep; at most 32 "
                         "levels are allowed");
    /* the same, closed: syntax would be fine, depth is not */
    gen_add(&g, "dataset: ");
    gen_repeat(&g, "[", 100);
    gen_add(&g, "mnist");
    gen_repeat(&g, "]", 100);
    gen_add(&g, "\n");
    assert_gen_fails(&g, "too deep at spec.yaml:1:41: a list nested 33 levels deep; at most 32 "
                         "levels are allowed");
    /* flow mappings */
    gen_add(&g, "train: ");
    gen_repeat(&g, "{a: ", 50000);
    assert_gen_fails(&g, "too deep at spec.yaml:1:132: a mapping nested 33 levels deep; at most 32 "
                         "levels are allowed");
    /* block lists on one line, and block mappings one per line */
    gen_add(&g, "dataset:\n");
    gen_repeat(&g, "- ", 100000);
    gen_add(&g, "mnist\n");
    assert_gen_fails(&g, "too deep at spec.yaml:2:63: a list nested 33 levels deep; at most 32 "
                         "levels are allowed");
    for (int d = 0; d < 40; d++) gen_add(&g, "%*sk%d:\n", d, "", d);
    assert_gen_fails(&g, "too deep at spec.yaml:33:33: a mapping nested 33 levels deep; at most 32 "
                         "levels are allowed");
    /* 32 levels are allowed: the spec's own checks speak */
    gen_add(&g, "dataset: ");
    gen_repeat(&g, "[", 31);
    gen_add(&g, "mnist");
    gen_repeat(&g, "]", 31);
    gen_add(&g, "\n");
    assert_gen_fails(&g, "wrong type for dataset at spec.yaml:1:11: expected a value, got a list");
}

static void test_values_budget(void **state)
{
    (void)state;
    gen g = {0};
    /* an alias of a 10^6-seed range in 5000 exclude entries (~160 KB): the
     * 16th entry passes 2^24 values */
    gen_add(&g, "seed: &s {range: [0, 1000000]}\ntrigger: [clean, square]\nexclude:\n");
    gen_repeat(&g, "  - {seed: *s, trigger: square}\n", 5000);
    assert_gen_fails(&g, "too many values in exclude entry 16 at spec.yaml:19:5 (1000000 at "
                         "spec.yaml:1:18): the spec names more than 16777216 values (seed ranges "
                         "count each seed, aliases each use); at most 16777216 are allowed");
    /* the same in include entries */
    gen_add(&g, "seed: &s {range: [0, 1000000]}\ninclude:\n");
    gen_repeat(&g, "  - {dataset: mnist, seed: *s, trigger: square, precision: int8, mitigation: "
                   "none, defense: none}\n", 3000);
    assert_gen_fails(&g, "too many values in include entry 16 at spec.yaml:18:5 (1000000 at "
                         "spec.yaml:1:18): the spec names more than 16777216 values (seed ranges "
                         "count each seed, aliases each use); at most 16777216 are allowed");
    /* a large range written out in many entries, no alias */
    gen_add(&g, "trigger: [clean, square]\nexclude:\n");
    gen_repeat(&g, "  - {seed: {range: [0, 1000000]}, trigger: square}\n", 2000);
    assert_gen_fails(&g, "too many values in exclude entry 17 at spec.yaml:19:5 (1000000 at "
                         "spec.yaml:19:20): the spec names more than 16777216 values (seed ranges "
                         "count each seed, aliases each use); at most 16777216 are allowed");
    /* an alias of a 1000-value list: 1002 values at the top, 1001 per entry;
     * entry 16760 passes 2^24 at its 456th value (seed 455) */
    gen_add(&g, "trigger: [clean, square]\nseed: &s [0");
    for (int i = 1; i < 1000; i++) gen_add(&g, ", %d", i);
    gen_add(&g, "]\nexclude:\n");
    gen_repeat(&g, "  - {seed: *s, trigger: square}\n", 17000);
    assert_gen_fails(&g, "too many values in exclude entry 16760 at spec.yaml:16763:5 (1 at "
                         "spec.yaml:2:2176): the spec names more than 16777216 values (seed ranges "
                         "count each seed, aliases each use); at most 16777216 are allowed");
}

static void test_exclude_budget(void **state)
{
    (void)state;
    gen g = {0};
    /* 10^7 tasks against 30000 distinct entries: refused before matching */
    gen_add(&g, "seed: {range: [0, 1000000]}\nprecision: [fp32, int8, int4, w4a8, w2a8, w3a8, "
                "w5a8, w6a8, w7a8, w2a32]\nexclude:\n");
    for (int i = 0; i < 30000; i++) gen_add(&g, "  - {seed: %d, precision: int8}\n", 7 * i);
    assert_gen_fails(&g, "the 30000 exclude entries (the first at spec.yaml:4:5) are too many to "
                         "match: 60015 value classes and 10000000 tasks against them take 28147035 "
                         "and 4690000000 words; at most 33554432 and 4294967296 are allowed");
    /* many entries naming one range through an alias are matched in a few
     * seed classes, not per seed: same tasks as one entry */
    qb_spec a, b;
    gen_add(&g, "seed: {range: [0, 20000]}\ntrigger: [clean, square]\nexclude:\n");
    gen_add(&g, "  - {seed: &r {range: [100, 900]}, trigger: square}\n");
    gen_repeat(&g, "  - {seed: *r, trigger: square}\n", 15);
    parse_ok(&a, g.p);
    free(g.p);
    memset(&g, 0, sizeof g);
    parse_ok(&b, "seed: {range: [0, 20000]}\ntrigger: [clean, square]\nexclude:\n"
                 "  - {seed: {range: [100, 900]}, trigger: square}\n");
    assert_int_equal(a.n_tasks, 40000 - 800);
    assert_int_equal(a.n_tasks, b.n_tasks);
    for (size_t i = 0; i < a.n_tasks; i++) assert_int_equal(a.tasks[i].id, b.tasks[i].id);
    qb_spec_free(&a);
    qb_spec_free(&b);
}

static void test_errors_from_files(void **state)
{
    (void)state;
    char *path = qb_test_fixture_path("specs/unknown_defense.yaml");
    qb_spec s;
    qb_error e = {0};
    assert_int_equal(qb_spec_load(&s, path, &e), -1);
    char want[1024];
    snprintf(want, sizeof want, "unknown defense \"nc2\" at %s:12:5; expected one of: " DEFENSES, path);
    assert_string_equal(e.msg, want);
    free(path);

    char *dir = qb_test_tmpdir();
    char missing[512];
    snprintf(missing, sizeof missing, "%s/nope.yaml", dir);
    assert_int_equal(qb_spec_load(&s, missing, &e), -1);
    snprintf(want, sizeof want, "cannot open spec %s: No such file or directory", missing);
    assert_string_equal(e.msg, want);
    /* a spec written to disk reads back the same as from memory */
    char file[512];
    snprintf(file, sizeof file, "%s/s.yaml", dir);
    static const char text[] = "trigger: [clean, square]\nprecision: [fp32, int8]\n";
    qb_test_write_file(file, text, strlen(text));
    qb_spec a, b;
    assert_int_equal(qb_spec_load(&a, file, &e), 0);
    parse_ok(&b, text);
    assert_int_equal(a.hash, b.hash);
    assert_string_equal(a.text, text);
    assert_string_equal(a.path, file);
    qb_spec_free(&a);
    qb_spec_free(&b);
    qb_test_tmpdir_remove(dir);
    free(dir);
}

/* The paper's configs on its datasets: the grid, the architecture and
 * BackdoorBench's recipe. */
/* A declared architecture read from a file: both datasets, both names. */
static void test_architectures_fixture(void **state)
{
    (void)state;
    qb_spec s;
    load_fixture(&s, "specs/architectures.yaml");
    assert_int_equal(s.n_models, 4);
    assert_int_equal(s.n_archs, 2);
    assert_string_equal(s.archs[0].name, "tiny-plain"); /* sorted */
    assert_string_equal(s.archs[0].text, "conv 8 k=3\nrelu\nmaxpool 2\nflatten\nlinear classes");
    const qb_spec_declared_arch *a = qb_spec_declared(&s, "tiny-res");
    assert_non_null(a);
    assert_int_equal(a->n_lines, 14);
    assert_string_equal(a->lines[2], "relu as=stem"); /* YAML drops the comment */
    assert_int_equal(a->line_marks[2].line, 10);
    assert_int_equal(a->line_marks[2].col, 7);
    assert_int_equal(a->line_marks[10].col, 8); /* inside the quotes */
    assert_true(a->exact[10]);
    for (size_t m = 0; m < s.n_models; m++) {
        qb_model_job job;
        qb_error e = {0};
        assert_int_equal(qb_spec_model_job(&s, m, &job, &e), 0);
        assert_string_equal(job.arch, "tiny-res");
    }
    check_identity_texts(&s);
    qb_spec_free(&s);
}

static void test_paper_configs(void **state)
{
    (void)state;
    static const struct {
        const char *file, *dataset, *arch;
        int epochs;
    } cfgs[] = {
        {"../../configs/paper-cifar10.yaml", "cifar10", "preact-resnet18", 100},
        {"../../configs/paper-gtsrb.yaml", "gtsrb", "preact-resnet18", 50},
        {"../../configs/paper-cifar10-resnet20.yaml", "cifar10", "resnet20", 100},
        {"../../configs/paper-gtsrb-resnet20.yaml", "gtsrb", "resnet20", 50},
    };
    for (size_t i = 0; i < sizeof cfgs / sizeof cfgs[0]; i++) {
        qb_spec s;
        load_fixture(&s, cfgs[i].file);
        assert_int_equal(s.n_tasks, 300);
        assert_int_equal(s.n_models, 20);
        for (size_t m = 0; m < s.n_models; m++) {
            qb_model_job job;
            qb_error e = {0};
            assert_int_equal(qb_spec_model_job(&s, m, &job, &e), 0);
            assert_string_equal(s.axes[QB_AXIS_DATASET].names[s.models[m].dataset], cfgs[i].dataset);
            assert_string_equal(job.arch, cfgs[i].arch);
            assert_int_equal(job.train.epochs, cfgs[i].epochs);
            assert_int_equal(job.train.batch, 128);
            assert_true(job.train.lr == 0.01f && job.train.momentum == 0.9f &&
                        job.train.weight_decay == 5e-4f && job.train.schedule == QB_LR_COSINE);
        }
        qb_spec_free(&s);
    }
}

static void test_quickstart_config(void **state)
{
    (void)state;
    qb_spec s;
    load_fixture(&s, "../../configs/quickstart.yaml");
    assert_int_equal(s.n_tasks, 6);
    assert_int_equal(s.n_models, 2);
    assert_tuple(&s, 0, "dataset=fashion-mnist seed=0 trigger=clean precision=fp32 mitigation=none "
                        "defense=strip");
    assert_tuple(&s, 5, "dataset=fashion-mnist seed=0 trigger=square precision=int4 "
                        "mitigation=none defense=strip");
    /* it writes the defaults out: the same ids as a spec that does not */
    qb_spec d;
    parse_ok(&d, "trigger: [clean, square]\nprecision: [fp32, int8, int4]\ndefense: strip\n");
    for (size_t i = 0; i < s.n_tasks; i++) assert_int_equal(s.tasks[i].id, d.tasks[i].id);
    qb_model_job job;
    qb_error e = {0};
    assert_int_equal(qb_spec_model_job(&s, 1, &job, &e), 0);
    assert_string_equal(job.arch, "lenet");
    assert_int_equal(job.trigger.kind, QB_TRIGGER_SQUARE);
    qb_spec_free(&s);
    qb_spec_free(&d);
}

/* ---- scale --------------------------------------------------------------------------- */

static long max_rss_kb(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return ru.ru_maxrss;
}

static void test_million(void **state)
{
    (void)state;
    static const char text[] = "seed: {range: [0, 125000]}\n"
                               "trigger: [clean, square]\n"
                               "precision: [fp32, int8, int4, w4a8]\n"
                               "exclude:\n"
                               "  - {seed: {range: [1000, 2000]}, trigger: clean, precision: w4a8}\n"
                               "include:\n"
                               "  - {dataset: mnist, seed: {range: [0, 1000]}, trigger: square,\n"
                               "     precision: int8, mitigation: none, defense: none}\n";
    long rss0 = max_rss_kb();
    double t0 = qb_now();
    qb_spec s;
    parse_ok(&s, text);
    double secs = qb_now() - t0;
    long rss1 = max_rss_kb();
    assert_int_equal(s.n_tasks, 1000000 - 1000 + 1000);
    assert_int_equal(s.n_models, 250000 + 1000);
    size_t bytes = qb_spec_memory(&s);
    fprintf(stderr, "[ info     ] 1,000,000 tasks, %zu models: %.2f s, %.1f MB held, peak RSS +%.1f MB\n",
            s.n_models, secs, bytes / 1e6, (rss1 - rss0) / 1e3);
    assert_true(secs < 10.0);
    assert_true(bytes < 100u << 20); /* 32 B task + 12 B index per task, 24 B per model */
    assert_int_equal(sizeof(qb_task) * s.n_tasks, 32000000);
#if !defined(__SANITIZE_ADDRESS__)
    assert_true(rss1 - rss0 < 500L * 1024); /* the bound the runner is held to */
#endif
    /* unique ids, every one found where it is */
    for (size_t i = 1; i < s.n_tasks; i++) assert_true(s.sorted_ids[i - 1] < s.sorted_ids[i]);
    for (size_t i = 0; i < s.n_tasks; i += 9973) assert_int_equal(qb_spec_find_task(&s, s.tasks[i].id), i);
    assert_tuple(&s, s.n_tasks - 1, "dataset=mnist seed=999 trigger=square precision=int8 "
                                    "mitigation=none defense=none");
    qb_spec_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_product_order_and_models),
        cmocka_unit_test(test_seed_ranges),
        cmocka_unit_test(test_exclude),
        cmocka_unit_test(test_include),
        cmocka_unit_test(test_presets),
        cmocka_unit_test(test_normalize_augment),
        cmocka_unit_test(test_canonical_values),
        cmocka_unit_test(test_registry_matches_core),
        cmocka_unit_test(test_model_job),
        cmocka_unit_test(test_identity_stable_under_reordering),
        cmocka_unit_test(test_identity_changes_where_settings_matter),
        cmocka_unit_test(test_architectures),
        cmocka_unit_test(test_architecture_identity),
        cmocka_unit_test(test_dataset_infos),
        cmocka_unit_test(test_cost_model),
        cmocka_unit_test(test_error_messages),
        cmocka_unit_test(test_nesting_budget),
        cmocka_unit_test(test_values_budget),
        cmocka_unit_test(test_exclude_budget),
        cmocka_unit_test(test_errors_from_files),
        cmocka_unit_test(test_quickstart_config),
        cmocka_unit_test(test_paper_configs),
        cmocka_unit_test(test_architectures_fixture),
        cmocka_unit_test(test_million),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
