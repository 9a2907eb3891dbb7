/* Merging shard results files (store/merge.h) and the shard check of
 * `qblind run` (qb_shard_check_file):
 *   - shards written by the results writer, with made-up deterministic
 *     rows and /details arrays per task (as the coordinator writes them),
 *     merged for 1, 3 and 4 shards, by model and by task, given in any
 *     order, equal the file written for the whole spec at once on every
 *     column but the timings, rank, host and finished_at (which differ on
 *     purpose), in the same row order, with the same detail arrays bit for
 *     bit, the same spec text and hash, and no shard attributes;
 *   - a missing shard and unfinished tasks are reported, their tasks
 *     pending in the output (pending rows as the run writes them);
 *   - refused, with the file named and nothing left behind: shards of
 *     different specs, of different counts or selections, two files of one
 *     shard, one file twice, a whole-spec file, a file that is not HDF5, a
 *     row outside its file's shard, an existing OUT without --force (kept
 *     as it was; replaced with it), OUT being a shard file.
 * Runs as a plain process: MPI_Init makes it a singleton. */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>
#include <mpi.h>

#include "store/merge.h"
#include "store/pending_row.h"
#include "store/results.h"
#include "store/shard.h"
#include "jobs/spec.h"
#include "tests/testutil.h"
#include "tests/testutil_results.h"

static const char SPEC_A[] =
    "dataset: synthetic\n"
    "seed: {range: [0, 5]}\n"
    "trigger: [clean, square]\n"
    "precision: [fp32, int8, int4]\n"
    "defense: [none, forensics]\n"
    "train: {arch: lenet, epochs: 1}\n";
/* another sweep: one setting differs */
static const char SPEC_B[] =
    "dataset: synthetic\n"
    "seed: {range: [0, 5]}\n"
    "trigger: [clean, square]\n"
    "precision: [fp32, int8, int4]\n"
    "defense: [none, forensics]\n"
    "train: {arch: lenet, epochs: 2}\n";
#define N_TASKS_A 60

static void parse_ok(qb_spec *s, const char *text)
{
    qb_error e = {0};
    if (qb_spec_parse(s, text, strlen(text), "spec.yaml", &e)) fail_msg("%s", e.msg);
}

/* ---- made-up task outcomes ----------------------------------------------- */

/* The finished row of task t: metrics from its id only (a task's result
 * does not depend on where it ran); `run` changes what legitimately
 * differs between runs: timings, rank, host, finished_at. */
static void made_row(const qb_spec *s, size_t t, int run, qb_task_row *row)
{
    qb_spec_pending_row(s, t, row);
    uint64_t id = row->task_id;
    row->status = id % 5 == 0 ? QB_STATUS_FAILED : id % 5 == 1 ? QB_STATUS_INVALID : QB_STATUS_OK;
    if (row->status == QB_STATUS_FAILED)
        snprintf(row->message, sizeof row->message, "defense: made-up failure of %016" PRIx64, id);
    row->ca_quant = (double)(id % 1000) / 1000.0;
    row->asr_quant = (double)((id >> 10) % 1000) / 1000.0;
    row->ca_mitig = id % 3 ? row->ca_quant : NAN;
    row->asr_mitig = (double)(id >> 40) * 0x1p-24;
    row->detected = (int32_t)((id >> 20) % 4) - 1;
    row->t_model = 0.5 + run;
    row->t_quant = 0.25 * run;
    row->t_mitig = NAN;
    row->t_defense = 1.0 / (run + 3);
    row->t_total = 2.0 + run;
    row->rank = run;
    snprintf(row->host, sizeof row->host, "node-%d", run);
    row->finished_at = 1.7e9 + 100.0 * run + (double)t;
    row->attempts = 1;
}

/* Detail arrays of a task: "a.scores" (1..4 values) for 2 of 3 ids,
 * "b.curve" (3 values) for odd ids, "c.empty" (no values) for 1 of 7. */
static size_t made_detail(uint64_t id, int which, double *v)
{
    size_t n = 0;
    if (which == 0 && id % 3) n = id % 4 + 1;
    if (which == 1 && id % 2) n = 3;
    for (size_t i = 0; i < n; i++) v[i] = (double)(id >> (8 * i)) * 1e-7 + (double)i / 3.0;
    return n;
}
static const char *const DETAIL_NAMES[3] = {"a.scores", "b.curve", "c.empty"};

static int all_tasks(uint64_t id) { (void)id; return 1; }
static int most_tasks(uint64_t id) { return id % 4 != 0; }

/* Write a results file for shard `sh` of spec_text (count 0: the whole
 * spec) with every task for which finished(id) holds recorded, details
 * first; the file claims to be shard `claim` (normally sh). */
static void write_file(const char *path, const char *spec_text, const qb_shard *sh,
                       const qb_shard *claim, int run, int (*finished)(uint64_t))
{
    qb_spec s;
    parse_ok(&s, spec_text);
    qb_shard_restrict(&s, sh);
    qb_kv prov[4] = {{"qblind_version", "test"}};
    char bufs[2][16];
    size_t n_prov = 1 + qb_shard_provenance(claim, prov + 1, bufs);
    qb_results_config cfg = {path, s.text, s.hash, 0, 1, prov, n_prov, 0};
    qb_task_row *pending = malloc((s.n_tasks ? s.n_tasks : 1) * sizeof *pending);
    for (size_t t = 0; t < s.n_tasks; t++) qb_spec_pending_row(&s, t, &pending[t]);
    qb_results *r;
    qb_error e;
    if (qb_results_create_or_open(&r, &cfg, pending, s.n_tasks, NULL, &e)) fail_msg("%s", e.msg);
    for (size_t t = 0; t < s.n_tasks; t++) {
        uint64_t id = s.tasks[t].id;
        if (!finished(id)) continue;
        for (int k = 0; k < 3; k++) {
            double v[8];
            size_t n = made_detail(id, k, v);
            if ((n || (k == 2 && id % 7 == 0)) &&
                qb_results_write_detail(r, t, DETAIL_NAMES[k], v, n, &e))
                fail_msg("%s", e.msg);
        }
        qb_task_row row;
        made_row(&s, t, run, &row);
        if (qb_results_record(r, t, &row, &e)) fail_msg("%s", e.msg);
    }
    if (qb_results_close(r, &e)) fail_msg("%s", e.msg);
    free(pending);
    qb_spec_free(&s);
}

/* ---- comparing files --------------------------------------------------------- */

/* Every column but t_*, rank, host, finished_at. */
static void assert_rows_equal_deterministic(const qb_task_row *a, const qb_task_row *b)
{
    qb_test_rows_assert_same(a, b);
    assert_int_equal(a->attempts, b->attempts);
}

/* All /details/<name>/<id> of a file as "name/id" strings, sorted. */
static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *name_at(hid_t g, hsize_t i)
{
    char buf[256];
    assert_true(H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, buf, sizeof buf,
                                   H5P_DEFAULT) > 0);
    return strdup(buf);
}

static size_t list_details(const char *path, char ***out)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    assert_true(f >= 0);
    hid_t d = H5Gopen2(f, "details", H5P_DEFAULT);
    assert_true(d >= 0);
    H5G_info_t gi;
    assert_true(H5Gget_info(d, &gi) >= 0);
    size_t n = 0, cap = 16;
    char **v = malloc(cap * sizeof *v);
    for (hsize_t i = 0; i < gi.nlinks; i++) {
        char *name = name_at(d, i);
        hid_t g = H5Gopen2(d, name, H5P_DEFAULT);
        H5G_info_t ni;
        assert_true(g >= 0 && H5Gget_info(g, &ni) >= 0);
        for (hsize_t j = 0; j < ni.nlinks; j++) {
            char *tid = name_at(g, j);
            if (n == cap) v = realloc(v, (cap *= 2) * sizeof *v);
            v[n] = malloc(strlen(name) + strlen(tid) + 2);
            sprintf(v[n++], "%s/%s", name, tid);
            free(tid);
        }
        H5Gclose(g);
        free(name);
    }
    H5Gclose(d);
    H5Fclose(f);
    qsort(v, n, sizeof *v, cmp_str);
    *out = v;
    return n;
}

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++) free(v[i]);
    free(v);
}

/* a equals b on every deterministic field, row order included, with the
 * same detail arrays bit for bit and the same spec. */
static void assert_files_equal(const char *a, const char *b)
{
    qb_task_row *ra, *rb;
    size_t na, nb;
    uint64_t ha, hb;
    qb_error e;
    if (qb_results_read(a, &ra, &na, &ha, &e) || qb_results_read(b, &rb, &nb, &hb, &e))
        fail_msg("%s", e.msg);
    assert_true(ha == hb);
    assert_int_equal(na, nb);
    for (size_t i = 0; i < na; i++) assert_rows_equal_deterministic(&ra[i], &rb[i]);
    free(ra);
    free(rb);
    char *ta, *tb;
    qb_shard sa, sb;
    assert_int_equal(qb_shard_read_file(a, &sa, NULL, &ta, &e), 0);
    assert_int_equal(qb_shard_read_file(b, &sb, NULL, &tb, &e), 0);
    assert_string_equal(ta, tb);
    assert_int_equal(sa.count, sb.count);
    free(ta);
    free(tb);
    char **da, **db;
    size_t nda = list_details(a, &da), ndb = list_details(b, &db);
    assert_int_equal(nda, ndb);
    for (size_t i = 0; i < nda; i++) {
        assert_string_equal(da[i], db[i]);
        char name[128];
        uint64_t id;
        const char *slash = strchr(da[i], '/');
        snprintf(name, sizeof name, "%.*s", (int)(slash - da[i]), da[i]);
        id = strtoull(slash + 1, NULL, 16);
        double *va, *vb;
        size_t la, lb;
        if (qb_results_read_detail(a, id, name, &va, &la, &e) ||
            qb_results_read_detail(b, id, name, &vb, &lb, &e))
            fail_msg("%s", e.msg);
        assert_int_equal(la, lb);
        if (la) assert_memory_equal(va, vb, la * sizeof *va);
        free(va);
        free(vb);
    }
    free_list(da, nda);
    free_list(db, ndb);
}

/* No OUT.merge.<pid> or results .tmp. files left in dir. */
static void assert_no_leftovers(const char *dir)
{
    DIR *d = opendir(dir);
    assert_non_null(d);
    struct dirent *en;
    while ((en = readdir(d)) != NULL)
        if (strstr(en->d_name, ".merge.") || strstr(en->d_name, ".tmp."))
            fail_msg("left behind: %s/%s", dir, en->d_name);
    closedir(d);
}

static int merge(const char *out, const char *const *in, size_t n, int force,
                 qb_merge_report *rep, qb_error *e)
{
    qb_merge_config cfg = {out, in, n, force, NULL, 0};
    return qb_merge_shards(&cfg, rep, e);
}

/* ---- tests --------------------------------------------------------------------- */

static void test_merge_equals_single_job(void **state)
{
    const char *dir = *state;
    char *single = qb_test_path_join(dir, "single.h5");
    qb_shard none = {0, 0, QB_SHARD_BY_MODEL};
    write_file(single, SPEC_A, &none, &none, 0, all_tasks);
    static const uint32_t counts[] = {1, 3, 4};
    for (int by = 0; by < 2; by++) {
        for (size_t c = 0; c < 3; c++) {
            uint32_t n = counts[c];
            char *paths[4];
            const char *in[4];
            for (uint32_t i = 0; i < n; i++) {
                char name[64];
                snprintf(name, sizeof name, "s-%d-%u-%u.h5", by, i, n);
                paths[i] = qb_test_path_join(dir, name);
                qb_shard sh = {i, n, (qb_shard_by)by};
                write_file(paths[i], SPEC_A, &sh, &sh, 1 + (int)i, all_tasks);
                in[n - 1 - i] = paths[i]; /* any order */
            }
            char *out = qb_test_path_join(dir, "merged.h5");
            qb_merge_report rep;
            qb_error e;
            if (merge(out, in, n, 1, &rep, &e)) fail_msg("%s", e.msg);
            assert_int_equal(rep.n_tasks, N_TASKS_A);
            assert_int_equal(rep.n_finished, N_TASKS_A);
            assert_int_equal(rep.n_pending, 0);
            assert_int_equal(rep.n_missing, 0);
            assert_int_equal(rep.shard.count, n);
            assert_int_equal(rep.shard.by, by);
            for (uint32_t i = 0; i < n; i++) assert_int_equal(rep.pending_in[i], 0);
            qb_merge_report_free(&rep);
            assert_files_equal(single, out);
            /* and the merged rows are the shards' rows as they were:
             * their timings, not the single job's */
            qb_task_row *rows;
            size_t nr;
            assert_int_equal(qb_results_read(out, &rows, &nr, NULL, &e), 0);
            size_t not_run0 = 0;
            for (size_t r = 0; r < nr; r++) not_run0 += rows[r].rank != 0;
            assert_int_equal(not_run0, nr);
            free(rows);
            assert_no_leftovers(dir);
            for (uint32_t i = 0; i < n; i++) {
                remove(paths[i]);
                free(paths[i]);
            }
            free(out);
        }
    }
    free(single);
}

static void test_missing_shard_and_pending_reported(void **state)
{
    const char *dir = *state;
    char *s0 = qb_test_path_join(dir, "s0.h5"), *s2 = qb_test_path_join(dir, "s2.h5");
    char *out = qb_test_path_join(dir, "m.h5");
    qb_shard sh0 = {0, 3, QB_SHARD_BY_TASK}, sh2 = {2, 3, QB_SHARD_BY_TASK};
    write_file(s0, SPEC_A, &sh0, &sh0, 1, all_tasks);
    write_file(s2, SPEC_A, &sh2, &sh2, 2, most_tasks);
    const char *in[] = {s0, s2};
    qb_merge_report rep;
    qb_error e;
    if (merge(out, in, 2, 0, &rep, &e)) fail_msg("%s", e.msg);
    qb_spec s;
    parse_ok(&s, SPEC_A);
    size_t per[3] = {0, 0, 0}, unfinished2 = 0;
    for (size_t t = 0; t < s.n_tasks; t++) {
        uint32_t k = qb_shard_of(&s, t, 3, QB_SHARD_BY_TASK);
        per[k]++;
        unfinished2 += k == 2 && !most_tasks(s.tasks[t].id);
    }
    assert_true(per[1] > 0 && unfinished2 > 0); /* the premise */
    assert_int_equal(rep.n_missing, 1);
    assert_int_equal(rep.missing[0], 1);
    assert_int_equal(rep.pending_in[0], 0);
    assert_int_equal(rep.pending_in[1], unfinished2);
    assert_int_equal(rep.n_pending, per[1] + unfinished2);
    assert_int_equal(rep.n_finished, s.n_tasks - per[1] - unfinished2);
    qb_merge_report_free(&rep);
    /* the output: pending rows exactly as a run writes them, no details */
    qb_task_row *rows;
    size_t n;
    assert_int_equal(qb_results_read(out, &rows, &n, NULL, &e), 0);
    assert_int_equal(n, s.n_tasks);
    for (size_t t = 0; t < n; t++) {
        uint32_t k = qb_shard_of(&s, t, 3, QB_SHARD_BY_TASK);
        int done = k == 0 || (k == 2 && most_tasks(s.tasks[t].id));
        qb_task_row want;
        if (done) {
            made_row(&s, t, 0, &want);
        } else {
            qb_spec_pending_row(&s, t, &want);
            assert_int_equal(rows[t].status, QB_STATUS_PENDING);
            assert_int_equal(rows[t].rank, -1);
            assert_true(isnan(rows[t].finished_at));
            double *v;
            size_t nv;
            assert_int_equal(qb_results_read_detail(out, want.task_id, "b.curve", &v, &nv, &e), -1);
        }
        assert_rows_equal_deterministic(&rows[t], &want);
    }
    free(rows);
    /* the incomplete merge is a whole-spec file: no shard attributes */
    qb_shard got;
    assert_int_equal(qb_shard_read_file(out, &got, NULL, NULL, &e), 0);
    assert_int_equal(got.count, 0);
    qb_spec_free(&s);
    free(s0);
    free(s2);
    free(out);
}

/* merge must fail with a message containing want1 (and want2). */
static void refused(const char *dir, const char *out, const char *const *in, size_t n, int force,
                    const char *want1, const char *want2)
{
    qb_merge_report rep;
    qb_error e = {0};
    int rc = merge(out, in, n, force, &rep, &e);
    assert_int_equal(rep.io_failed, 0);
    qb_merge_report_free(&rep);
    if (rc != -1) fail_msg("merge accepted (expected \"%s\")", want1);
    if (!strstr(e.msg, want1) || (want2 && !strstr(e.msg, want2)))
        fail_msg("message \"%s\" lacks \"%s\" / \"%s\"", e.msg, want1, want2 ? want2 : "");
    assert_no_leftovers(dir);
}

static void copy_file(const char *from, const char *to)
{
    FILE *f = fopen(from, "rb");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *buf = malloc((size_t)n);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    fclose(f);
    qb_test_write_file(to, buf, (size_t)n);
    free(buf);
}

static void test_refusals(void **state)
{
    const char *dir = *state;
    char *a0 = qb_test_path_join(dir, "a0.h5"), *a1 = qb_test_path_join(dir, "a1.h5");
    char *b1 = qb_test_path_join(dir, "b1.h5"), *c1 = qb_test_path_join(dir, "c1of3.h5");
    char *t1 = qb_test_path_join(dir, "t1.h5"), *dup = qb_test_path_join(dir, "dup0.h5");
    char *whole = qb_test_path_join(dir, "whole.h5"), *junk = qb_test_path_join(dir, "junk.h5");
    char *forged = qb_test_path_join(dir, "forged.h5");
    char *out = qb_test_path_join(dir, "out.h5");
    qb_shard m0 = {0, 2, QB_SHARD_BY_MODEL}, m1 = {1, 2, QB_SHARD_BY_MODEL};
    qb_shard c13 = {1, 3, QB_SHARD_BY_MODEL}, t12 = {1, 2, QB_SHARD_BY_TASK};
    qb_shard none = {0, 0, QB_SHARD_BY_MODEL};
    write_file(a0, SPEC_A, &m0, &m0, 1, all_tasks);
    write_file(a1, SPEC_A, &m1, &m1, 2, all_tasks);
    write_file(b1, SPEC_B, &m1, &m1, 2, all_tasks);
    write_file(c1, SPEC_A, &c13, &c13, 2, all_tasks);
    write_file(t1, SPEC_A, &t12, &t12, 2, all_tasks);
    write_file(whole, SPEC_A, &none, &none, 0, all_tasks);
    /* shard 0's rows in a file that says it is shard 1 */
    write_file(forged, SPEC_A, &m0, &m1, 2, all_tasks);
    copy_file(a0, dup);
    qb_test_write_file(junk, "not hdf5\n", 9);

    const char *diff_spec[] = {a0, b1};
    refused(dir, out, diff_spec, 2, 0, "different spec", b1);
    const char *diff_count[] = {a0, c1};
    refused(dir, out, diff_count, 2, 0, "one count and selection", c1);
    const char *diff_by[] = {a0, t1};
    refused(dir, out, diff_by, 2, 0, "1/2 by task", t1);
    const char *dup_shard[] = {a0, a1, dup};
    refused(dir, out, dup_shard, 3, 0, "are both shard 0/2 by model", dup);
    const char *twice[] = {a0, a1, a0};
    refused(dir, out, twice, 3, 0, "the same file", a0);
    const char *not_shard[] = {whole};
    refused(dir, out, not_shard, 1, 0, "not a shard file", whole);
    const char *not_h5[] = {a0, junk};
    refused(dir, out, not_h5, 2, 0, junk, NULL);
    const char *absent[] = {a0, "/nonexistent/x.h5"};
    refused(dir, out, absent, 2, 0, "/nonexistent/x.h5", NULL);
    const char *lies[] = {a0, forged};
    refused(dir, out, lies, 2, 0, "of shard 0", forged);
    const char *none_given[1] = {NULL};
    refused(dir, out, none_given, 0, 0, "no shard files", NULL);

    /* OUT exists: refused and untouched without force, replaced with it */
    qb_test_write_file(out, "keep me\n", 8);
    const char *good[] = {a1, a0};
    refused(dir, out, good, 2, 0, "exists", "--force");
    FILE *f = fopen(out, "rb");
    char buf[16] = "";
    assert_non_null(f);
    assert_int_equal(fread(buf, 1, sizeof buf, f), 8);
    fclose(f);
    assert_memory_equal(buf, "keep me\n", 8);
    qb_merge_report rep;
    qb_error e;
    if (merge(out, good, 2, 1, &rep, &e)) fail_msg("%s", e.msg);
    assert_int_equal(rep.n_pending, 0);
    qb_merge_report_free(&rep);
    assert_files_equal(whole, out);
    /* OUT is one of the inputs: refused even with force */
    const char *self[] = {a1, a0};
    refused(dir, a0, self, 2, 1, "is one of the shard files", a0);
    assert_no_leftovers(dir);

    char *all[] = {a0, a1, b1, c1, t1, dup, whole, junk, forged, out};
    for (size_t i = 0; i < sizeof all / sizeof all[0]; i++) free(all[i]);
}

static void test_run_shard_check(void **state)
{
    const char *dir = *state;
    char *s = qb_test_path_join(dir, "s.h5"), *w = qb_test_path_join(dir, "w.h5");
    qb_shard m1 = {1, 3, QB_SHARD_BY_MODEL}, none = {0, 0, QB_SHARD_BY_MODEL};
    qb_error e;
    assert_int_equal(qb_shard_check_file(s, &m1, &e), 0); /* absent: a new file */
    write_file(s, SPEC_A, &m1, &m1, 1, most_tasks);
    write_file(w, SPEC_A, &none, &none, 1, most_tasks);
    assert_int_equal(qb_shard_check_file(s, &m1, &e), 0);
    assert_int_equal(qb_shard_check_file(w, &none, &e), 0);
    qb_shard got;
    uint64_t hash;
    assert_int_equal(qb_shard_read_file(s, &got, &hash, NULL, &e), 0);
    assert_int_equal(got.index, 1);
    assert_int_equal(got.count, 3);
    assert_int_equal(got.by, QB_SHARD_BY_MODEL);
    qb_spec sp;
    parse_ok(&sp, SPEC_A);
    assert_true(hash == sp.hash); /* the whole spec's hash */
    qb_spec_free(&sp);

    assert_int_equal(qb_shard_check_file(s, &none, &e), -1);
    assert_non_null(strstr(e.msg, s));
    assert_non_null(strstr(e.msg, "--shard 1/3 --shard-by model"));
    qb_shard other = {2, 3, QB_SHARD_BY_MODEL}, by_task = {1, 3, QB_SHARD_BY_TASK};
    qb_shard count4 = {1, 4, QB_SHARD_BY_MODEL};
    assert_int_equal(qb_shard_check_file(s, &other, &e), -1);
    assert_non_null(strstr(e.msg, "holds shard 1/3 by model, this run is shard 2/3 by model"));
    assert_int_equal(qb_shard_check_file(s, &by_task, &e), -1);
    assert_int_equal(qb_shard_check_file(s, &count4, &e), -1);
    assert_int_equal(qb_shard_check_file(w, &m1, &e), -1);
    assert_non_null(strstr(e.msg, "holds the whole spec"));
    free(s);
    free(w);
}

int main(void)
{
    MPI_Init(NULL, NULL);
    return qb_test_run_group_mpi(qb_test_with_tmpdir(test_merge_equals_single_job),
                                 qb_test_with_tmpdir(test_missing_shard_and_pending_reported),
                                 qb_test_with_tmpdir(test_refusals),
                                 qb_test_with_tmpdir(test_run_shard_check));
}
