/* Shards (store/shard.h): "i/N" parsing; the shards of a spec are disjoint
 * and cover it, in both selections, for several N; membership is id mod N
 * (computed here independently from the full spec's ids), does not depend
 * on the order the spec lists its values in, and is the same on every
 * call; by model, a model's tasks share a shard; the restricted tables
 * (tasks in spec order, models recounted and renumbered, the sorted-id
 * index) are consistent; the spec hash is the whole spec's; an empty shard
 * is valid; the balance of a 1,200-task spec. No MPI here (the shard file
 * checks are in test_merge). */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store/shard.h"
#include "jobs/spec.h"
#include "jobs/task.h"
#include "tests/testutil.h"

static const char SPEC[] =
    "dataset: synthetic\n"
    "seed: {range: [0, 10]}\n"
    "trigger: [clean, square, checker]\n"
    "precision: [fp32, int8, int4]\n"
    "defense: [none, forensics]\n"
    "exclude:\n"
    "  - {trigger: clean, precision: int4}\n"
    "train: {arch: lenet, epochs: 1}\n";

/* The same spec, lists reordered and reformatted: the same task ids. */
static const char SPEC_REORDERED[] =
    "train: {epochs: 1, arch: lenet}\n"
    "defense: [forensics, none]\n"
    "precision: [int4, fp32, int8]\n"
    "trigger: [checker, clean, square]\n"
    "seed: [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]\n"
    "dataset: synthetic\n"
    "exclude: [{precision: int4, trigger: clean}]\n";

static void parse_ok(qb_spec *s, const char *text)
{
    qb_error e = {0};
    if (qb_spec_parse(s, text, strlen(text), "spec.yaml", &e)) fail_msg("%s", e.msg);
}

static void test_parse(void **state)
{
    (void)state;
    qb_shard sh = {9, 9, QB_SHARD_BY_TASK};
    qb_error e;
    assert_int_equal(qb_shard_parse("0/4", &sh, &e), 0);
    assert_int_equal(sh.index, 0);
    assert_int_equal(sh.count, 4);
    assert_int_equal(sh.by, QB_SHARD_BY_TASK); /* left as it was */
    assert_int_equal(qb_shard_parse("999999/1000000", &sh, &e), 0);
    assert_int_equal(sh.index, 999999);
    assert_int_equal(sh.count, 1000000);
    assert_int_equal(qb_shard_parse("0/1", &sh, &e), 0);
    static const char *const bad[] = {"4/4", "5/4", "a/4", "1/0", "-1/3", "1/", "/3", "1/3x",
                                      " 1/3", "1/1000001", "3", "", "1//3", "99999999999/3"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        e.msg[0] = '\0';
        if (qb_shard_parse(bad[i], &sh, &e) != -1) fail_msg("\"%s\" accepted", bad[i]);
        assert_non_null(strstr(e.msg, "--shard"));
    }
    assert_int_equal(qb_shard_parse("4/4", &sh, &e), -1);
    assert_non_null(strstr(e.msg, "0..3"));
    qb_shard_by by = QB_SHARD_BY_TASK;
    assert_int_equal(qb_shard_by_parse("model", &by, &e), 0);
    assert_int_equal(by, QB_SHARD_BY_MODEL);
    assert_int_equal(qb_shard_by_parse("task", &by, &e), 0);
    assert_int_equal(by, QB_SHARD_BY_TASK);
    assert_int_equal(qb_shard_by_parse("models", &by, &e), -1);
    assert_non_null(strstr(e.msg, "model or task"));
    char buf[64];
    qb_shard none = {0, 0, QB_SHARD_BY_MODEL}, two = {1, 3, QB_SHARD_BY_TASK};
    assert_string_equal(qb_shard_text(&none, buf, sizeof buf), "none");
    assert_string_equal(qb_shard_text(&two, buf, sizeof buf), "1/3 by task");
    qb_kv kv[3];
    char bufs[2][16];
    assert_int_equal(qb_shard_provenance(&none, kv, bufs), 0);
    assert_int_equal(qb_shard_provenance(&two, kv, bufs), 3);
    assert_string_equal(kv[0].key, "shard_index");
    assert_string_equal(kv[0].value, "1");
    assert_string_equal(kv[1].key, "shard_count");
    assert_string_equal(kv[1].value, "3");
    assert_string_equal(kv[2].key, "shard_by");
    assert_string_equal(kv[2].value, "task");
}

/* Check the restricted tables of shard sh of `full` against the full
 * spec; owner[t] (full task index) gets sh->index. */
static void check_restricted(const qb_spec *full, const qb_spec *r, const qb_shard *sh,
                             uint32_t *owner)
{
    assert_true(r->hash == full->hash);
    size_t k = 0;
    for (size_t t = 0; t < full->n_tasks; t++) {
        const qb_task *ft = &full->tasks[t];
        uint64_t key = sh->by == QB_SHARD_BY_TASK ? ft->id : full->models[ft->model].id;
        if (key % sh->count != sh->index) continue;
        /* independent of qb_shard_of: the id mod N */
        assert_int_equal(owner[t], UINT32_MAX);
        owner[t] = sh->index;
        assert_true(k < r->n_tasks);
        const qb_task *rt = &r->tasks[k];
        /* same task, same order */
        assert_true(rt->id == ft->id);
        assert_int_equal(rt->dataset, ft->dataset);
        assert_int_equal(rt->seed, ft->seed);
        assert_int_equal(rt->trigger, ft->trigger);
        assert_int_equal(rt->precision, ft->precision);
        assert_int_equal(rt->defense, ft->defense);
        assert_true(rt->model < r->n_models);
        assert_true(r->models[rt->model].id == full->models[ft->model].id);
        assert_int_equal(qb_spec_find_task(r, ft->id), k);
        assert_int_equal(qb_shard_of(r, k, sh->count, sh->by), sh->index);
        char a[4096], b[4096];
        qb_spec_task_identity(full, t, a, sizeof a);
        qb_spec_task_identity(r, k, b, sizeof b);
        assert_string_equal(a, b);
        qb_spec_model_identity(full, ft->model, a, sizeof a);
        qb_spec_model_identity(r, rt->model, b, sizeof b);
        assert_string_equal(a, b);
        k++;
    }
    assert_int_equal(k, r->n_tasks);
    /* models: those used, in order of first use, counts right */
    size_t sum = 0;
    for (size_t m = 0; m < r->n_models; m++) {
        const qb_spec_model *md = &r->models[m];
        assert_true(md->n_tasks > 0);
        assert_true(md->first_task < r->n_tasks);
        assert_int_equal(r->tasks[md->first_task].model, m);
        for (size_t t = 0; t < md->first_task; t++) assert_int_not_equal(r->tasks[t].model, m);
        if (m > 0) assert_true(md->first_task > r->models[m - 1].first_task);
        size_t c = 0;
        for (size_t t = 0; t < r->n_tasks; t++) c += r->tasks[t].model == m;
        assert_int_equal(c, md->n_tasks);
        sum += c;
    }
    assert_int_equal(sum, r->n_tasks);
    for (size_t i = 1; i < r->n_tasks; i++) assert_true(r->sorted_ids[i - 1] < r->sorted_ids[i]);
    for (size_t i = 0; i < r->n_tasks; i++)
        assert_true(r->tasks[r->sorted_pos[i]].id == r->sorted_ids[i]);
}

static void test_disjoint_covering_by_id(void **state)
{
    (void)state;
    qb_spec full;
    parse_ok(&full, SPEC);
    assert_int_equal(full.n_tasks, 10 * (3 * 3 - 1) * 2);
    uint32_t *owner = malloc(full.n_tasks * sizeof *owner);
    static const uint32_t counts[] = {1, 2, 3, 7, 16, 200};
    for (int by = 0; by < 2; by++) {
        for (size_t c = 0; c < sizeof counts / sizeof counts[0]; c++) {
            for (size_t t = 0; t < full.n_tasks; t++) owner[t] = UINT32_MAX;
            size_t total = 0;
            for (uint32_t i = 0; i < counts[c]; i++) {
                qb_spec r;
                parse_ok(&r, SPEC);
                qb_shard sh = {i, counts[c], (qb_shard_by)by};
                qb_shard_restrict(&r, &sh);
                check_restricted(&full, &r, &sh, owner);
                total += r.n_tasks;
                qb_spec_free(&r);
            }
            /* covering: every task in exactly one shard (disjoint is
             * checked as owners are set) */
            assert_int_equal(total, full.n_tasks);
            for (size_t t = 0; t < full.n_tasks; t++) assert_int_not_equal(owner[t], UINT32_MAX);
            if (by == QB_SHARD_BY_MODEL)
                for (size_t t = 0; t < full.n_tasks; t++)
                    assert_int_equal(owner[t], owner[full.models[full.tasks[t].model].first_task]);
        }
    }
    /* no shard: nothing changes */
    qb_spec r;
    parse_ok(&r, SPEC);
    qb_shard none = {0, 0, QB_SHARD_BY_MODEL};
    qb_shard_restrict(&r, &none);
    assert_int_equal(r.n_tasks, full.n_tasks);
    assert_int_equal(r.n_models, full.n_models);
    assert_memory_equal(r.tasks, full.tasks, full.n_tasks * sizeof *full.tasks);
    qb_spec_free(&r);
    free(owner);
    qb_spec_free(&full);
}

/* Every shard id set, as a sorted list, for a spec text. */
static void shard_ids(const char *text, const qb_shard *sh, uint64_t **ids, size_t *n)
{
    qb_spec r;
    parse_ok(&r, text);
    qb_shard_restrict(&r, sh);
    *n = r.n_tasks;
    *ids = malloc((r.n_tasks ? r.n_tasks : 1) * sizeof **ids);
    memcpy(*ids, r.sorted_ids, r.n_tasks * sizeof **ids);
    qb_spec_free(&r);
}

static void test_deterministic_and_order_free(void **state)
{
    (void)state;
    qb_spec a, b;
    parse_ok(&a, SPEC);
    parse_ok(&b, SPEC_REORDERED);
    assert_true(a.hash == b.hash); /* the premise: the same sweep */
    qb_spec_free(&a);
    qb_spec_free(&b);
    for (int by = 0; by < 2; by++) {
        for (uint32_t i = 0; i < 5; i++) {
            qb_shard sh = {i, 5, (qb_shard_by)by};
            uint64_t *x, *y, *z;
            size_t nx, ny, nz;
            shard_ids(SPEC, &sh, &x, &nx);
            shard_ids(SPEC, &sh, &z, &nz);
            shard_ids(SPEC_REORDERED, &sh, &y, &ny);
            assert_int_equal(nx, ny);
            assert_int_equal(nx, nz);
            assert_memory_equal(x, y, nx * sizeof *x);
            assert_memory_equal(x, z, nx * sizeof *x);
            free(x);
            free(y);
            free(z);
        }
    }
}

static void test_empty_shard_and_balance(void **state)
{
    (void)state;
    /* 2 models in 50 shards by model: at least 48 shards are empty */
    static const char two[] = "dataset: synthetic\nseed: 0\ntrigger: [clean, square]\n"
                              "precision: [fp32, int8]\n";
    size_t empty = 0, total = 0;
    for (uint32_t i = 0; i < 50; i++) {
        qb_spec r;
        parse_ok(&r, two);
        qb_shard sh = {i, 50, QB_SHARD_BY_MODEL};
        qb_shard_restrict(&r, &sh);
        if (r.n_tasks == 0) {
            empty++;
            assert_int_equal(r.n_models, 0);
            assert_int_equal(qb_spec_find_task(&r, 12345), SIZE_MAX);
        }
        total += r.n_tasks;
        qb_spec_free(&r);
    }
    assert_true(empty >= 48);
    assert_int_equal(total, 4);

    /* 1,200 tasks in 4 shards by task: each near 300 (binomial sd ~15) */
    static const char big[] = "dataset: synthetic\nseed: {range: [0, 100]}\n"
                              "trigger: [clean, square]\nprecision: [fp32, int8, int4]\n"
                              "defense: [none, forensics]\n";
    for (int by = 0; by < 2; by++) {
        for (uint32_t i = 0; i < 4; i++) {
            qb_spec r;
            parse_ok(&r, big);
            qb_shard sh = {i, 4, (qb_shard_by)by};
            qb_shard_restrict(&r, &sh);
            /* by model the unit is a model of 6 tasks: sd ~ 6 * 4.3 */
            size_t lo = by == QB_SHARD_BY_TASK ? 230 : 200, hi = by == QB_SHARD_BY_TASK ? 370 : 400;
            if (r.n_tasks < lo || r.n_tasks > hi)
                fail_msg("shard %u/4 by %s has %zu of 1200 tasks", i, by ? "task" : "model",
                         r.n_tasks);
            qb_spec_free(&r);
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_disjoint_covering_by_id),
        cmocka_unit_test(test_deterministic_and_order_free),
        cmocka_unit_test(test_empty_shard_and_balance),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
