/* qblind: the entry point. Dispatches to subcommands. */
#include <hdf5.h>
#include <mpi.h>
#include <stdio.h>
#include <string.h>
#include <yaml.h>
#include <zlib.h>

#include "cli/cli.h"
#include "core/gemm_f32.h"
#include "store/results_probe.h"


static const char usage[] =
    "usage: qblind <command> [options]\n"
    "\n"
    "Measure whether backdoor defenses still work on quantized CNNs.\n"
    "\n"
    "Commands:\n"
    "  run       run a sweep spec (under mpirun/srun, or alone) into a results file\n"
    "  plan      validate a spec, count tasks and models, estimate the cost\n"
    "  status    count done / invalid / failed / pending tasks of a results file\n"
    "  merge     combine the shard files of `run --shard I/N` into one results file\n"
    "  report    tables of a results file: detection rates, CA/ASR, paired tests\n"
    "  demo      train a clean and a BadNet model, print CA and ASR\n"
    "  train     train one model, print CA/ASR, optionally save it\n"
    "  eval      evaluate a saved model's CA/ASR\n"
    "  defend    run defenses on a saved model at one or more precisions\n"
    "  arch      list the architecture presets, print one's text or layer table\n"
    "\n"
    "  qblind <command> --help   options of a command\n"
    "  qblind --version          build and library versions\n";

static void print_version(void)
{
    unsigned maj, min, rel;
    H5get_libversion(&maj, &min, &rel);
    char mpi_ver[MPI_MAX_LIBRARY_VERSION_STRING];
    int len = 0;
    MPI_Get_library_version(mpi_ver, &len);
    char *nl = strchr(mpi_ver, ',');
    if (nl) *nl = '\0';
    printf("qblind %s (built %s %s, %s)\n", QBLIND_VERSION, __DATE__, __TIME__,
#ifdef NDEBUG
           "release"
#else
           "debug"
#endif
    );
    printf("  HDF5 %u.%u.%u (parallel)\n  %s\n  libyaml %s\n  zlib %s\n"
           "  float GEMM: %s path (core/gemm_f32.c; the same bits on every path)\n",
           maj, min, rel, mpi_ver, yaml_get_version_string(), zlibVersion(),
           qb_gemm_f32_path_name(qb_gemm_f32_best()));
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    /* hidden: the separate process that reads a results file first
     * (store/results_probe.h) */
    if (!strcmp(cmd, QB_RESULTS_PROBE_COMMAND)) return qb_results_probe_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        fputs(usage, stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        print_version();
        return 0;
    }
    if (!strcmp(cmd, "run")) return qb_cmd_run(argc - 1, argv + 1);
    if (!strcmp(cmd, "plan")) return qb_cmd_plan(argc - 1, argv + 1);
    if (!strcmp(cmd, "status")) return qb_cmd_status(argc - 1, argv + 1);
    if (!strcmp(cmd, "merge")) return qb_cmd_merge(argc - 1, argv + 1);
    if (!strcmp(cmd, "report")) return qb_cmd_report(argc - 1, argv + 1);
    if (!strcmp(cmd, "train")) return qb_cmd_train(argc - 1, argv + 1);
    if (!strcmp(cmd, "eval")) return qb_cmd_eval(argc - 1, argv + 1);
    if (!strcmp(cmd, "demo")) return qb_cmd_demo(argc - 1, argv + 1);
    if (!strcmp(cmd, "defend")) return qb_cmd_defend(argc - 1, argv + 1);
    if (!strcmp(cmd, "arch")) return qb_cmd_arch(argc - 1, argv + 1);
    fprintf(stderr, "qblind: unknown command \"%s\"\n%s", cmd, usage);
    return 2;
}
