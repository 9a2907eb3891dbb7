/* qblind merge: shard results files into one (store/merge.h). */
#include <getopt.h>
#include <inttypes.h>
#include <mpi.h>
#include <stdio.h>
#include <string.h>

#include <hdf5.h>

#include "store/merge.h"
#include "store/results_probe.h"
#include "cli/cli.h"

static const char merge_usage[] =
    "usage: qblind merge OUT.h5 SHARD.h5... [--force] [-q]\n"
    "Combine the results files of `qblind run --shard I/N` (one per shard) into one\n"
    "results file, equal to what one job over the whole spec writes: every task in\n"
    "the spec's order, the shards' finished rows and their /details arrays copied\n"
    "as they are. Refuses files of different specs or shard counts, two files of one\n"
    "shard, and files that are not shards. Reports shards with no file and pending\n"
    "tasks; their tasks stay pending in OUT, which `qblind run SPEC -o OUT.h5`\n"
    "resumes like any results file.\n"
    "  -f, --force   replace OUT if it exists (never otherwise)\n"
    "  -q, --quiet   no summary line\n"
    "  -h, --help\n"
    "Exit status: 0 merged, every task finished; 3 merged, but shards were missing\n"
    "or tasks pending (OUT written; see the messages); 1 error (OUT untouched);\n"
    "2 usage.\n";

int qb_cmd_merge(int argc, char **argv)
{
    int force = 0, quiet = 0, usage_rc = -1, c;
    static const struct option opts[] = {{"force", no_argument, NULL, 'f'},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    optind = 1;
    opterr = 0;
    qb_error err;
    while (usage_rc < 0 && (c = getopt_long(argc, argv, ":fqh", opts, NULL)) != -1) {
        switch (c) {
        case 'f': force = 1; break;
        case 'q': quiet = 1; break;
        case 'h': usage_rc = 0; break;
        default: qb_cli_option_error(c, argv, &err); return qb_cli_usage_error("merge", &err);
        }
    }
    if (usage_rc < 0 && argc - optind < 2) {
        QB_FAIL(&err, argc - optind == 1 ? "no shard files after OUT.h5 %s (see --help)"
                                          : "expected OUT.h5 and SHARD.h5 files%s (see --help)",
                argc - optind == 1 ? argv[optind] : "");
        return qb_cli_usage_error("merge", &err);
    }
    if (usage_rc >= 0) {
        fputs(merge_usage, usage_rc ? stderr : stdout);
        return usage_rc;
    }
    /* every shard is read first in a separate process (libhdf5 may crash
     * on a damaged file), before MPI and before anything is written */
    for (int i = optind + 1; i < argc; i++)
        if (qb_results_probe(argv[i], QB_RESULTS_PROBE_ROWS | QB_RESULTS_PROBE_ATTRS |
                                          QB_RESULTS_PROBE_DETAILS, &err)) {
            qb_error_print(&err);
            return 1;
        }
    /* the results writer runs on MPI-IO: a singleton MPI process */
    MPI_Init(&argc, &argv);
    unsigned maj, min, rel;
    H5get_libversion(&maj, &min, &rel);
    char h5v[32];
    snprintf(h5v, sizeof h5v, "%u.%u.%u", maj, min, rel);
    qb_kv prov[] = {{"qblind_version", QBLIND_VERSION}, {"hdf5_version", h5v}};
    qb_merge_config cfg = {argv[optind], (const char *const *)argv + optind + 1,
                           (size_t)(argc - optind - 1), force, prov, 2};
    qb_merge_report rep;
    int rc = qb_merge_shards(&cfg, &rep, &err);
    if (rc) {
        qb_error_print(&err);
        if (rep.io_failed) {
            /* HDF5 1.10.8 crashes in MPI_Finalize after a failed write or
             * close (store/results.h): leave without it */
            fprintf(stderr, "qblind: merge: %s was not written\n", cfg.out);
            qb_merge_report_free(&rep);
            MPI_Abort(MPI_COMM_WORLD, 1);
        }
        qb_merge_report_free(&rep);
        MPI_Finalize();
        return 1;
    }
    if (!quiet)
        fprintf(stderr, "qblind: merge: %zu shard file%s of %" PRIu32 " (by %s), spec %016" PRIx64
                ": %zu tasks, %zu finished, %zu pending; %zu detail arrays -> %s\n",
                cfg.n_shards, cfg.n_shards > 1 ? "s" : "", rep.shard.count,
                qb_shard_by_name(rep.shard.by), rep.spec_hash, rep.n_tasks, rep.n_finished,
                rep.n_pending, rep.n_details, cfg.out);
    /* the problems print even with --quiet */
    if (rep.n_missing) {
        fprintf(stderr, "qblind: merge: missing shard%s (no file given):", rep.n_missing > 1 ? "s" : "");
        for (uint32_t i = 0; i < rep.n_missing && i < 50; i++)
            fprintf(stderr, " %" PRIu32 "/%" PRIu32, rep.missing[i], rep.shard.count);
        fprintf(stderr, "%s\n", rep.n_missing > 50 ? " ..." : "");
    }
    for (size_t k = 0; k < cfg.n_shards; k++)
        if (rep.pending_in[k])
            fprintf(stderr, "qblind: merge: %s has %zu pending task%s (its run stopped early or "
                    "failed: run it again to resume)\n", cfg.shards[k], rep.pending_in[k],
                    rep.pending_in[k] > 1 ? "s" : "");
    if (rep.n_pending) {
        fprintf(stderr, "qblind: merge: %s is incomplete: %zu of %zu tasks pending; finish the "
                "shards and merge again (--force), or resume %s itself with `qblind run SPEC -o "
                "%s`\n", cfg.out, rep.n_pending, rep.n_tasks, cfg.out, cfg.out);
        rc = 3;
    }
    qb_merge_report_free(&rep);
    MPI_Finalize();
    return rc;
}
