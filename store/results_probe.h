/* Reading a results file that may come from a stranger in a separate
 * process first, so that libhdf5 crashing on it ends that process, not
 * the command.
 *
 * Why. libhdf5 1.10.8 trusts sizes in the file: on some damaged files it
 * reads past its buffers or dies with SIGSEGV inside H5Dopen2, H5Aexists
 * or H5Dread (fuzz/known/README.md), before qblind's own checks see
 * anything, and no check can run before libhdf5 parses the file. So every
 * command that reads an existing results file it did not just write
 * (status, report, merge's shards, run's resume) calls qb_results_probe
 * on it before it opens it itself.
 *
 * How. qb_results_probe starts a fresh process, /proc/self/exe (this
 * program) with the hidden command QB_RESULTS_PROBE_COMMAND, by
 * posix_spawn (a new exec'd process, never a bare fork: the caller may be
 * an MPI rank after MPI_Init, where fork is unsafe under Open MPI). That
 * process (qb_results_probe_main) limits itself first: address space
 * (its size at start + QB_RESULTS_PROBE_MEM), CPU time, no core dump
 * (RLIMIT_CORE 0, not dumpable), killed if its parent dies; then it reads the parts asked for through the same reader
 * functions the commands use, and tells the parent "ok" or its error. The
 * parent waits at most the wall-clock bound (qb_results_probe_timeout),
 * then kills it.
 *
 * What is promised. When qb_results_probe returns 0, a process of this
 * program read those parts of the file completely without crashing. A
 * damaged file the readers refuse cleanly gives the readers' own error
 * (the same text as reading in this process). One that crashes libhdf5,
 * or takes longer or more memory than the bounds, gives "results file X
 * is damaged: libhdf5 crashed reading it (signal 11, SIGSEGV) ...". Not
 * promised: an over-read that does not fault is not seen (a release
 * build cannot; ASan builds of the child report it as a crash); a file
 * replaced between the check and the caller's own open is not checked
 * again. */
#ifndef QB_RESULTS_PROBE_H
#define QB_RESULTS_PROBE_H

#include <stddef.h>

#include "core/error.h"

/* The hidden command: main() of every program that calls qb_results_probe
 * must pass argv (from this word on) to qb_results_probe_main when
 * argv[1] is this (cli/main.c does). */
#define QB_RESULTS_PROBE_COMMAND "__probe-results"

/* Address space the checking process may add to what it had at start. */
#define QB_RESULTS_PROBE_MEM (1024ull << 20)

/* What to read, as the callers read it:
 *   ROWS     the root attributes that identify the file and every row of
 *            /tasks, checked (qb_results_list_damaged: the path of
 *            qb_results_read, qb_results_count and the writer's resume);
 *   ATTRS    every root attribute (qb_results_read_attrs) and the shard
 *            attributes (qb_shard_read_file): report --html, merge, run;
 *   DETAILS  every /details/<name>/<task> array, opened and read as merge
 *            copies them and as a resume replaces them. */
enum {
    QB_RESULTS_PROBE_ROWS = 1,
    QB_RESULTS_PROBE_ATTRS = 2,
    QB_RESULTS_PROBE_DETAILS = 4,
};

/* Check `path` (parts: QB_RESULTS_PROBE_* or'ed) in a separate process,
 * as described above. A path that does not exist or is not a regular
 * file is not checked (0): the caller's own open reports it, or creates
 * the file. Returns 0, or -1 with err: the readers' own error, or what
 * happened to the checking process, naming the file. Safe after
 * MPI_Init (rank 0 of `qblind run` calls it). */
int qb_results_probe(const char *path, unsigned parts, qb_error *err);

/* The wall-clock bound for a file of `size` bytes, in seconds: 60 s plus
 * 1 s per 2 MB (a disk read at 2 MB/s); the CPU bound is the same. */
double qb_results_probe_timeout(long long size);

/* How a bounded child process ended (qb_results_probe_spawn). */
typedef struct qb_results_probe_outcome {
    int exited;      /* 1: exited with exit_code; 0: died on signal `sig` */
    int exit_code;
    int sig;
    int timed_out;   /* 1: still running at the wall-clock bound: killed (SIGKILL) */
    int reaped_elsewhere; /* 1: its status was lost (SIGCHLD ignored): out is all there is */
    char out[2048];  /* its standard output, NUL-terminated, cut to fit */
    size_t out_len;
} qb_results_probe_outcome;

/* Run argv[0] (a path; argv NULL-terminated) in a new process by
 * posix_spawn: standard input /dev/null, standard output captured into
 * o->out, standard error shared, every other descriptor closed, signal
 * mask empty and dispositions default. Wait at most timeout_s seconds of
 * wall-clock time, then kill it (SIGKILL) and reap it. Returns 0 with *o
 * filled, or -1 with err when the process could not be started. */
int qb_results_probe_spawn(char *const argv[], double timeout_s, qb_results_probe_outcome *o,
                           qb_error *err);

/* The checking process: argv = {QB_RESULTS_PROBE_COMMAND, parts,
 * cpu seconds, parent pid, path}. Prints "ok\n", or "error\n" + the
 * error's source file, line and message (one per line) on standard
 * output; returns 0 or 1 (2 for a wrong command line). */
int qb_results_probe_main(int argc, char **argv);

#endif
