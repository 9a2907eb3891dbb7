/* qblind run | plan | status. */
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <hdf5.h>

#include "core/gemm_f32.h"
#include "core/threads.h"
#include "core/train.h"
#include "core/xalloc.h"
#include "jobs/cost.h"
#include "store/results_probe.h"
#include "store/shard.h"
#include "cli/cli.h"
#include "pipeline/preflight.h"
#include "mpi/runner.h"


static int print_err(qb_error *err)
{
    qb_error_print(err);
    return 1;
}

/* ---- run --------------------------------------------------------------- */

static const char run_usage[] =
    "usage: [mpirun -n N] qblind run SPEC.yaml -o RESULTS.h5 [options]\n"
    "Run a sweep: every task of the spec, on all MPI ranks (rank 0 coordinates,\n"
    "the others work; alone, rank 0 works). Resumable: run the same command again\n"
    "after an interruption and finished tasks are skipped.\n"
    "  -o, --output FILE   the results file (created, or resumed)\n"
    "      --models DIR    model store [RESULTS.h5.models]\n"
    "      --force         accept a results file written from another spec: keep\n"
    "                      the finished rows of tasks that still exist\n"
    "      --retry-failed  run failed tasks again (after fixing their cause); each\n"
    "                      failed row stays until its task's new row replaces it\n"
    "      --shard I/N     run only shard I (0..N-1) of N: a fixed 1/N of the tasks,\n"
    "                      chosen by id hash, into its own file (`qblind merge`\n"
    "                      combines the N files; slurm/array.sbatch)\n"
    "      --shard-by WHAT model (default: each model's tasks in one shard, so\n"
    "                      every model is trained once) or task (finer balance;\n"
    "                      shards train the models they share again)\n"
    "      --threads N     threads per rank for the float GEMMs [1]; results do not\n"
    "                      depend on it (a job with fewer models than cores can\n"
    "                      still use every core: fewer ranks, more threads)\n"
    "      --worker-timeout S  give up a worker rank that holds a task (or has not\n"
    "                      asked for its first) and has sent nothing for S seconds\n"
    "                      (a rank or node gone silently):\n"
    "                      its task stays pending, the others finish theirs and the\n"
    "                      job ends (MPI_Abort) with exit 75. S must exceed the\n"
    "                      longest task; default 0: wait for ever (docs/CLUSTER.md)\n"
    "  -q, --quiet         no progress on stderr\n"
    "      --empty-tasks   benchmark the runner: workers skip the pipeline and return\n"
    "                      ok with no metrics at once (expansion, scheduling, MPI,\n"
    "                      recording and flushing every row are real)\n"
    "  -h, --help\n"
    "Exit status: 0 all tasks finished (some may be failed or invalid: see the\n"
    "table and `qblind status`), 1 error, or every task of the file failed (their\n"
    "messages are printed), 75 stopped early by SIGTERM/SIGUSR1/SIGINT with tasks\n"
    "left or a worker given up (rerun to resume).\n";

typedef struct row_fill_ctx {
    const qb_spec *spec;
} row_fill_ctx;

static int fill_pending(void *ctx, size_t index, qb_task_row *row, qb_error *err)
{
    (void)err;
    const row_fill_ctx *c = ctx;
    qb_runner_fill_row(c->spec, index, NULL, 0, "", row);
    return 0;
}

/* The short table at the end: one line per (trigger, precision,
 * mitigation, defense) with mean CA/ASR over seeds and datasets. */
#define QB_SUMMARY_MAX_TASKS 20000

/* The table from rows (n; NULL when they could not be read: nothing is
 * printed, their error was). */
static void print_summary(const qb_spec *s, const char *path, const qb_task_row *rows, size_t n)
{
    /* the table reads every row (540 bytes each) and groups them pairwise:
     * for large sweeps use `qblind status` (and the report) instead */
    if (s->n_tasks > QB_SUMMARY_MAX_TASKS) {
        printf("%zu tasks: table skipped above %d tasks; see `qblind status %s`\n", s->n_tasks,
               QB_SUMMARY_MAX_TASKS, path);
        return;
    }
    if (!rows) return;
    printf("%-14s %-8s %-12s %-13s %-9s %4s %8s %8s %9s %8s\n", "dataset", "trigger", "precision",
           "mitigation", "defense", "n", "CA", "ASR", "detected", "status");
    char *seen = xcalloc(n ? n : 1, 1);
    for (size_t i = 0; i < n; i++) {
        if (seen[i]) continue;
        double ca = 0, asr = 0;
        int k = 0, ka = 0, ok = 0, bad = 0, yes = 0, judged = 0, errors = 0;
        for (size_t j = i; j < n; j++) {
            if (seen[j] || strcmp(rows[j].dataset, rows[i].dataset) ||
                strcmp(rows[j].trigger, rows[i].trigger) ||
                strcmp(rows[j].precision, rows[i].precision) ||
                strcmp(rows[j].mitigation, rows[i].mitigation) ||
                strcmp(rows[j].defense, rows[i].defense))
                continue;
            seen[j] = 1;
            yes += rows[j].detected == QB_DETECTED_YES;
            judged += rows[j].detected == QB_DETECTED_YES || rows[j].detected == QB_DETECTED_NO;
            errors += rows[j].detected == QB_DETECTED_ERROR;
            if (rows[j].status == QB_STATUS_OK || rows[j].status == QB_STATUS_INVALID) {
                ok += rows[j].status == QB_STATUS_OK;
                if (!isnan(rows[j].ca_mitig)) ca += rows[j].ca_mitig, k++;
                if (!isnan(rows[j].asr_mitig)) asr += rows[j].asr_mitig, ka++;
            } else {
                bad++;
            }
        }
        char cas[16] = "-", asrs[16] = "-", sts[32], dets[32] = "-";
        /* detected: yes / tasks the defense judged (n/a rows left out) */
        if (judged || errors)
            snprintf(dets, sizeof dets, "%d/%d%s", yes, judged, errors ? " +err" : "");
        if (k) snprintf(cas, sizeof cas, "%.2f%%", 100.0 * ca / k);
        if (ka) snprintf(asrs, sizeof asrs, "%.2f%%", 100.0 * asr / ka);
        snprintf(sts, sizeof sts, "%d ok%s", ok, bad ? " +other" : "");
        printf("%-14s %-8s %-12s %-13s %-9s %4d %8s %8s %9s %8s\n", rows[i].dataset,
               rows[i].trigger, rows[i].precision, rows[i].mitigation, rows[i].defense, k + bad,
               cas, asrs, dets, sts);
    }
    free(seen);
}

typedef struct run_opts {
    const char *out, *models, *spec_path, *shard_arg, *shard_by;
    int force, quiet, empty_tasks, retry_failed, threads;
    double worker_timeout;
} run_opts;

/* Parse run's command line into o. Returns -1 to go on, else the exit
 * status after printing the usage (rank 0). */
static int parse_run_args(int argc, char **argv, int rank, run_opts *o)
{
    int c;
    static const struct option opts[] = {
        {"output", required_argument, NULL, 'o'}, {"models", required_argument, NULL, 'm'},
        {"force", no_argument, NULL, 'f'},       {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},        {"empty-tasks", no_argument, NULL, 'E'},
        {"shard", required_argument, NULL, 'S'}, {"shard-by", required_argument, NULL, 'B'},
        {"retry-failed", no_argument, NULL, 'R'}, {"threads", required_argument, NULL, 'T'},
        {"worker-timeout", required_argument, NULL, 'W'},
        {NULL, 0, NULL, 0}};
    memset(o, 0, sizeof *o);
    o->threads = 1;
    optind = 1;
    opterr = 0;
    int usage_rc = -1;
    while ((c = getopt_long(argc, argv, ":o:qh", opts, NULL)) != -1) {
        switch (c) {
        case 'o': o->out = optarg; break;
        case 'm': o->models = optarg; break;
        case 'f': o->force = 1; break;
        case 'q': o->quiet = 1; break;
        case 'E': o->empty_tasks = 1; break;
        case 'S': o->shard_arg = optarg; break;
        case 'B': o->shard_by = optarg; break;
        case 'R': o->retry_failed = 1; break;
        case 'T': {
            qb_error err;
            if (qb_cli_parse_threads(optarg, &o->threads, &err))
                return rank == 0 ? qb_cli_usage_error("run", &err) : 2;
            break;
        }
        case 'W': {
            char *end;
            o->worker_timeout = strtod(optarg, &end);
            if (end == optarg || *end || !(o->worker_timeout >= 0)) {
                qb_error err;
                QB_FAIL(&err, "--worker-timeout: expected seconds >= 0, got \"%s\"", optarg);
                return rank == 0 ? qb_cli_usage_error("run", &err) : 2;
            }
            break;
        }
        case 'h': usage_rc = 0; break;
        default: {
            qb_error err;
            qb_cli_option_error(c, argv, &err);
            return rank == 0 ? qb_cli_usage_error("run", &err) : 2;
        }
        }
    }
    if (usage_rc < 0 && (optind != argc - 1 || !o->out)) {
        qb_error err;
        if (!o->out)
            QB_FAIL(&err, "no results file given: -o RESULTS.h5 (see --help)");
        else if (optind == argc)
            QB_FAIL(&err, "no spec given (see --help)");
        else
            QB_FAIL(&err, "expected one spec, got \"%s\" and \"%s\" (see --help)", argv[optind],
                    argv[optind + 1]);
        return rank == 0 ? qb_cli_usage_error("run", &err) : 2;
    }
    if (usage_rc >= 0) {
        if (rank == 0) fputs(run_usage, usage_rc ? stderr : stdout);
        return usage_rc;
    }
    o->spec_path = argv[optind];
    return -1;
}

/* Rank 0: create or open the results file of spec (status: (n_tasks) the
 * tasks' statuses in it), with the run's provenance. Returns 1 when open,
 * 0 with err. */
static int open_results(const run_opts *o, const qb_spec *spec, const qb_shard *shard, int size,
                        qb_results **res, uint8_t *status, qb_error *err)
{
    unsigned maj, min, rel;
    H5get_libversion(&maj, &min, &rel);
    char h5v[32], ranks[16];
    snprintf(h5v, sizeof h5v, "%u.%u.%u", maj, min, rel);
    snprintf(ranks, sizeof ranks, "%d", size);
    qb_kv prov[6] = {{"qblind_version", QBLIND_VERSION}, {"hdf5_version", h5v},
                     {"gemm_f32_path", qb_gemm_f32_path_name(qb_gemm_f32_best())}};
    char shard_bufs[2][16];
    size_t n_prov = 3 + qb_shard_provenance(shard, prov + 3, shard_bufs);
    qb_results_config cfg = {o->out,  spec->text, spec->hash, o->force,
                             size,    prov,       n_prov,     o->retry_failed};
    row_fill_ctx fc = {spec};
    return qb_shard_check_file(o->out, shard, err) == 0 &&
           qb_results_create_or_open_fn(res, &cfg, spec->n_tasks, fill_pending, &fc, status,
                                        err) == 0;
}

/* 1 (after saying why) when every task of the results file failed: a
 * run that measured nothing is not a success, whatever the cause. The
 * distinct messages of the first failed rows are printed. rows/damaged
 * (n) are the file's rows as read for the summary, or NULL (a large file:
 * counted by qb_results_count, no messages). */
static int all_failed(const char *path, const qb_task_row *rows, const uint8_t *damaged, size_t n)
{
    size_t counts[QB_STATUS_COUNT] = {0}, total = 0;
    qb_error err;
    if (rows) {
        /* as qb_results_count counts: damaged rows are pending */
        for (size_t i = 0; i < n; i++)
            counts[!damaged[i] && qb_task_status_finished(rows[i].status) ? rows[i].status
                                                                            : QB_STATUS_PENDING]++;
    } else if (qb_results_count(path, counts, NULL, &err)) {
        return 0;
    }
    for (int i = 0; i < QB_STATUS_COUNT; i++) total += counts[i];
    if (total == 0 || counts[QB_STATUS_FAILED] != total) return 0;
    fprintf(stderr, "qblind: error: every task failed (%zu of %zu); nothing was measured\n",
            total, total);
    for (size_t i = 0, shown = 0; rows && i < n && shown < 3; i++) {
        int seen = 0;
        for (size_t j = 0; j < i && !seen; j++) seen = !strcmp(rows[j].message, rows[i].message);
        if (seen) continue;
        fprintf(stderr, "qblind:   %s\n", rows[i].message);
        shown++;
    }
    fprintf(stderr, "qblind: fix the cause, then `qblind run --retry-failed` runs them again\n");
    return 1;
}

/* Rank 0: coordinate the sweep into res (closed here), print the summary.
 * Returns 0, or QB_EXIT_RESUME if drained; aborts the job on an I/O error. */
static int run_rank0(const run_opts *o, const qb_spec *spec, const qb_shard *shard,
                     size_t spec_tasks, int size, qb_results *res, const uint8_t *status,
                     const qb_model_store *store)
{
    size_t finished = 0;
    for (size_t i = 0; i < spec->n_tasks; i++) finished += status[i] != QB_STATUS_PENDING;
    if (!o->quiet && shard->count) {
        char st[64];
        fprintf(stderr, "qblind: %s: shard %s: %zu of the spec's %zu tasks\n", o->spec_path,
                qb_shard_text(shard, st, sizeof st), spec->n_tasks, spec_tasks);
    }
    if (!o->quiet)
        fprintf(stderr, "qblind: %s: %zu tasks, %zu models, %zu already finished; %d rank%s\n",
                o->spec_path, spec->n_tasks, spec->n_models, finished, size, size > 1 ? "s" : "");
    qb_progress prog;
    qb_progress_init(&prog, spec->n_tasks, finished, o->quiet);
    qb_transport transport = qb_transport_mpi();
    qb_run_sink sink = qb_run_sink_results(res);
    qb_run_ctx ctx = {.spec = spec, .transport = &transport, .sink = &sink, .store = store,
                      .status = status, .n_ranks = size, .progress = &prog,
                      .empty_tasks = o->empty_tasks, .worker_timeout = o->worker_timeout};
    qb_error err;
    double t0 = qb_now();
    int rc = qb_coordinator_run(&ctx, &err);
    qb_progress_print(&prog, 1);
    qb_error cerr;
    if (qb_results_close(res, &cerr) && rc == 0) {
        err = cerr;
        rc = -1;
    }
    if (rc) {
        /* After a failed HDF5 write/flush/close, HDF5 1.10.8 crashes in
         * MPI_Finalize's close callbacks: abort instead. The file holds
         * everything up to the last successful flush. */
        qb_error_print(&err);
        fprintf(stderr, "qblind: the results file keeps every task recorded before the error; "
                        "fix the cause and run the same command to resume\n");
        MPI_Abort(MPI_COMM_WORLD, 1);
    }
    /* the summary prints even with --quiet (only progress is quiet) */
    fprintf(stderr, "qblind: %zu tasks ran in %.1f s; %ld models trained\n",
            prog.done - prog.done_at_start, qb_now() - t0, ctx.trainings);
    /* the file's rows, read once for the table and the all-failed check */
    qb_task_row *rows = NULL;
    uint8_t *damaged = NULL;
    size_t n_rows = 0;
    if (spec->n_tasks <= QB_SUMMARY_MAX_TASKS &&
        qb_results_read_marked(o->out, &rows, &damaged, &n_rows, &err))
        qb_error_print(&err);
    print_summary(spec, o->out, rows, n_rows);
    if (ctx.lost) { /* MPI_Finalize would wait for the lost ranks */
        fprintf(stderr, "qblind: %d worker rank%s given up: ending the job; run the same command "
                        "again to resume\n", ctx.lost, ctx.lost > 1 ? "s" : "");
        MPI_Abort(MPI_COMM_WORLD, QB_EXIT_RESUME);
    }
    if (ctx.drained) {
        fprintf(stderr, "qblind: stopped early; run the same command again to resume\n");
        rc = QB_EXIT_RESUME;
    } else {
        rc = all_failed(o->out, rows, damaged, n_rows);
    }
    free(rows);
    free(damaged);
    return rc;
}

int qb_cmd_run(int argc, char **argv)
{
    MPI_Init(&argc, &argv);
    int rank, size;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    qb_runner_install_signals();

    run_opts o;
    int usage_rc = parse_run_args(argc, argv, rank, &o);
    if (usage_rc >= 0) {
        MPI_Finalize();
        return usage_rc;
    }
    qb_error err;
    if (qb_threads_set(o.threads, &err)) {
        if (rank == 0) qb_error_print(&err);
        MPI_Finalize();
        return 1;
    }
    qb_shard shard = {0, 0, QB_SHARD_BY_MODEL};
    if ((o.shard_arg && qb_shard_parse(o.shard_arg, &shard, &err)) ||
        (o.shard_by && qb_shard_by_parse(o.shard_by, &shard.by, &err)) ||
        (o.shard_by && !o.shard_arg && QB_FAIL(&err, "--shard-by needs --shard I/N"))) {
        if (rank == 0) qb_error_print(&err);
        MPI_Finalize();
        return 2;
    }
    qb_spec spec;
    memset(&spec, 0, sizeof spec);
    if (qb_runner_share_spec(o.spec_path, &spec, rank, &err)) {
        if (rank == 0) qb_error_print(&err);
        qb_spec_free(&spec);
        MPI_Finalize();
        return 1;
    }
    size_t spec_tasks = spec.n_tasks;
    qb_shard_restrict(&spec, &shard); /* every rank: the same tables */
    char store_dir[4096];
    if (o.models)
        snprintf(store_dir, sizeof store_dir, "%s", o.models);
    else
        qb_model_store_default_dir(o.out, store_dir, sizeof store_dir);
    qb_model_store store;
    /* rank 0: a results file to resume is read first in a separate process
     * (libhdf5 may crash on a damaged one), before anything is written;
     * what would make every task fail is an error now, not rows */
    int ok = rank != 0 ||
             (qb_results_probe(o.out, QB_RESULTS_PROBE_ROWS | QB_RESULTS_PROBE_ATTRS |
                                          QB_RESULTS_PROBE_DETAILS, &err) == 0 &&
              (o.empty_tasks || qb_spec_preflight(&spec, &err) == 0) &&
              qb_model_store_open(&store, store_dir, &err) == 0);

    /* rank 0 opens the results file (alone, MPI-IO on COMM_SELF) */
    qb_results *res = NULL;
    uint8_t *status = NULL;
    if (rank == 0 && ok) {
        status = xmalloc(spec.n_tasks ? spec.n_tasks : 1, 1);
        ok = open_results(&o, &spec, &shard, size, &res, status, &err);
    }
    MPI_Bcast(&ok, 1, MPI_INT, 0, MPI_COMM_WORLD);
    if (!ok) {
        if (rank == 0) qb_error_print(&err);
        free(status);
        qb_spec_free(&spec);
        MPI_Finalize();
        return 1;
    }
    MPI_Bcast(store_dir, (int)sizeof store_dir, MPI_CHAR, 0, MPI_COMM_WORLD);
    if (rank != 0 && qb_model_store_open(&store, store_dir, &err)) {
        qb_error_print(&err); /* the directory exists: rank 0 made it */
        MPI_Abort(MPI_COMM_WORLD, 1);
    }

    int rc = 0;
    if (rank == 0)
        rc = run_rank0(&o, &spec, &shard, spec_tasks, size, res, status, &store);
    else
        qb_worker_loop(&spec, &store, o.empty_tasks);
    free(status);
    qb_spec_free(&spec);
    MPI_Bcast(&rc, 1, MPI_INT, 0, MPI_COMM_WORLD);
    MPI_Finalize();
    return rc;
}

/* ---- plan -------------------------------------------------------------- */

int qb_cmd_plan(int argc, char **argv)
{
    int no_data = argc == 3 && !strcmp(argv[1], "--no-data");
    if ((argc != 2 && !no_data) || !strcmp(argv[argc - 1], "-h") ||
        !strcmp(argv[argc - 1], "--help")) {
        FILE *f = argc == 2 ? stdout : stderr;
        fputs("usage: qblind plan [--no-data] SPEC.yaml\n"
              "Validate a spec and print its size and a cost estimate; runs nothing.\n"
              "  --no-data   skip the check of the datasets' files (plan a study for a\n"
              "              machine that has them; the shapes and sizes are known by name)\n",
              f);
        return argc == 2 ? 0 : 2;
    }
    const char *path = argv[argc - 1];
    qb_spec s;
    qb_error err;
    double t0 = qb_now();
    if (qb_spec_load(&s, path, &err)) return print_err(&err);
    if (!no_data && qb_spec_preflight(&s, &err)) {
        qb_spec_free(&s);
        return print_err(&err);
    }
    printf("spec %s: valid (hash %016" PRIx64 ", parsed, expanded and %s in %.2f s)\n", path,
           s.hash, no_data ? "its data NOT checked (--no-data)" : "its data checked",
           qb_now() - t0);
    printf("  tasks:  %zu\n  models: %zu (each trained once)\n", s.n_tasks, s.n_models);
    const char *names[QB_AXIS_COUNT] = {"dataset", "seed", "trigger", "precision", "mitigation",
                                        "defense"};
    for (int a = 0; a < QB_AXIS_COUNT; a++) printf("  %-10s %zu values\n", names[a], (size_t)s.axes[a].n);
    /* The cost model (jobs/cost.h): each model's layer graph on its dataset. */
    qb_spec_cost cost;
    if (qb_spec_cost_estimate(&s, &cost, &err)) {
        qb_spec_free(&s);
        return print_err(&err);
    }
    for (size_t i = 0; i < cost.n_archs; i++) {
        const qb_cost_arch *a = &cost.archs[i];
        printf("  model    %s on %s: %.3g M multiply-adds per image forward; training "
               "%.3g ms per image, %.0f s per epoch of %zu images (x %zu model%s)\n", a->arch,
               a->dataset, a->macs / 1e6, a->train_image * 1e3, a->train_image * (double)a->n_train,
               a->n_train, a->n_models, a->n_models == 1 ? "" : "s");
    }
    double total = cost.train_s + cost.task_s;
    printf("  estimated cost: %.2f core-hours = %.0f core-seconds (training %.0f s, evaluation %.0f s)\n",
           total / 3600, total, cost.train_s, cost.task_s);
    printf("  wall time on N worker ranks: about %.0f s / N (+ one coordinator rank; at least the\n"
           "  longest model: %.0f s; training is per model, not split)\n", total, cost.longest_s);
    qb_spec_cost_free(&cost);
    printf("  memory of the expansion: %.1f MB\n", (double)qb_spec_memory(&s) / 1e6);
    qb_spec_free(&s);
    return 0;
}

/* ---- status -------------------------------------------------------------- */

int qb_cmd_status(int argc, char **argv)
{
    if (argc != 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
        FILE *f = argc == 2 ? stdout : stderr;
        fputs("usage: qblind status RESULTS.h5\n"
              "Count the tasks of a results file by status: done (ok), invalid, failed,\n"
              "pending. Safe while a run is writing it.\n", f);
        return argc == 2 ? 0 : 2;
    }
    size_t counts[QB_STATUS_COUNT];
    uint64_t hash;
    qb_error err;
    if (qb_results_probe(argv[1], QB_RESULTS_PROBE_ROWS, &err) ||
        qb_results_count(argv[1], counts, &hash, &err))
        return print_err(&err);
    size_t total = 0;
    for (int i = 0; i < QB_STATUS_COUNT; i++) total += counts[i];
    printf("%s (spec %016" PRIx64 "): %zu tasks\n", argv[1], hash, total);
    printf("  ok       %zu\n  invalid  %zu\n  failed   %zu\n  pending  %zu\n",
           counts[QB_STATUS_OK], counts[QB_STATUS_INVALID], counts[QB_STATUS_FAILED],
           counts[QB_STATUS_PENDING]);
    if (counts[QB_STATUS_FAILED])
        printf("  (a rerun skips the %zu failed tasks; `qblind run --retry-failed` runs them "
               "again)\n", counts[QB_STATUS_FAILED]);
    qb_results_damage *bad = NULL;
    size_t n_bad = 0;
    if (qb_results_list_damaged(argv[1], &bad, &n_bad, &err)) return print_err(&err);
    if (n_bad) {
        printf("  damaged  %zu (counted as pending: a resume runs their tasks again)\n", n_bad);
        for (size_t i = 0; i < n_bad && i < 10; i++)
            printf("    row %" PRIu64 " (task %016" PRIx64 "): %s\n", bad[i].row, bad[i].task_id,
                   bad[i].why);
        if (n_bad > 10) printf("    ... and %zu more\n", n_bad - 10);
    }
    free(bad);
    return 0;
}
