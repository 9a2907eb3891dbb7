/* Reading a results file in a bounded child process first
 * (store/results_probe.h). */
#define _GNU_SOURCE /* posix_spawn_file_actions_addclosefrom_np (glibc 2.34) */
#include "store/results_probe.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <hdf5.h>

#include "core/xalloc.h"
#include "store/hdf5_util.h"
#include "store/results.h"
#include "store/results_attrs.h"
#include "store/shard.h"

extern char **environ;

/* ---- the parent: spawn, bound, reap ---------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double qb_results_probe_timeout(long long size)
{
    return 60.0 + (double)(size > 0 ? size : 0) / 2e6;
}

static int spawn_setup(posix_spawn_file_actions_t *fa, posix_spawnattr_t *at, int out_fd)
{
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    sigdelset(&all, SIGKILL);
    sigdelset(&all, SIGSTOP);
    return posix_spawn_file_actions_init(fa) || posix_spawnattr_init(at) ||
           posix_spawn_file_actions_addopen(fa, 0, "/dev/null", O_RDONLY, 0) ||
           posix_spawn_file_actions_adddup2(fa, out_fd, 1) ||
           posix_spawn_file_actions_addclosefrom_np(fa, 3) ||
           posix_spawnattr_setflags(at, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF) ||
           posix_spawnattr_setsigmask(at, &none) || posix_spawnattr_setsigdefault(at, &all);
}

/* Append what the pipe has (waiting at most ms) to o->out; the rest of a
 * long output is read and dropped. Returns 0 at EOF, else 1. */
static int read_some(int fd, int ms, qb_results_probe_outcome *o)
{
    struct pollfd p = {fd, POLLIN, 0};
    if (poll(&p, 1, ms) <= 0) return 1; /* nothing yet, or EINTR: look again */
    char sink[512];
    size_t room = sizeof o->out - 1 - o->out_len;
    ssize_t r = read(fd, room ? o->out + o->out_len : sink, room ? room : sizeof sink);
    if (r > 0 && room) o->out_len += (size_t)r;
    return r != 0;
}

/* Collect the child's output and reap it, killing it at the deadline. */
static void wait_bounded(pid_t pid, int fd, double deadline, qb_results_probe_outcome *o)
{
    int open_ = 1, status = 0, reaped = 0;
    for (;;) {
        double left = deadline - now_s();
        int ms = left <= 0 ? 0 : left > 0.1 ? 100 : (int)(left * 1000) + 1;
        if (open_)
            open_ = read_some(fd, ms, o);
        else if (!reaped)
            poll(NULL, 0, ms < 2 ? ms : 2); /* EOF: it is exiting */
        pid_t w = reaped ? 0 : waitpid(pid, &status, WNOHANG);
        if (w == pid) { /* what it wrote before it exited */
            struct pollfd p = {fd, POLLIN, 0};
            while (open_ && poll(&p, 1, 0) > 0) open_ = read_some(fd, 0, o);
            break;
        }
        if (w < 0 && errno != EINTR) reaped = 1; /* by someone else (SIGCHLD ignored) */
        if (reaped && (!open_ || left <= 0)) { /* its output is all we know */
            o->out[o->out_len] = '\0';
            o->reaped_elsewhere = 1;
            return;
        }
        if (!reaped && now_s() >= deadline) {
            kill(pid, SIGKILL);
            while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
            o->timed_out = 1;
            break;
        }
    }
    o->out[o->out_len] = '\0';
    o->exited = WIFEXITED(status);
    o->exit_code = o->exited ? WEXITSTATUS(status) : 0;
    o->sig = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

int qb_results_probe_spawn(char *const argv[], double timeout_s, qb_results_probe_outcome *o,
                           qb_error *err)
{
    memset(o, 0, sizeof *o);
    int fds[2];
    if (pipe2(fds, O_CLOEXEC) != 0)
        return QB_FAIL(err, "cannot start %s: pipe: %s", argv[0], strerror(errno));
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    pid_t pid = -1;
    int e = spawn_setup(&fa, &at, fds[1]);
    if (e == 0) e = posix_spawn(&pid, argv[0], &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    close(fds[1]);
    if (e != 0) {
        close(fds[0]);
        return QB_FAIL(err, "cannot start %s: %s", argv[0], strerror(e));
    }
    wait_bounded(pid, fds[0], now_s() + timeout_s, o);
    close(fds[0]);
    return 0;
}

/* The child's verdict ("ok\n", or "error\n" src "\n" line "\n" message)
 * into err; -1 also for no or a garbled verdict. */
static int parse_verdict(const qb_results_probe_outcome *o, qb_error *err, int *have)
{
    static char src[256]; /* err->src_file must outlive this call */
    *have = 0;
    if (!strcmp(o->out, "ok\n")) return *have = 1, 0;
    if (strncmp(o->out, "error\n", 6) != 0) return -1;
    const char *a = o->out + 6, *b = strchr(a, '\n'), *c = b ? strchr(b + 1, '\n') : NULL;
    if (!c) return -1;
    snprintf(src, sizeof src, "%.*s", (int)(b - a), a);
    int line = atoi(b + 1);
    qb_error_set(err, src, line, "%s", c + 1);
    *have = 1;
    return -1;
}

int qb_results_probe(const char *path, unsigned parts, qb_error *err)
{
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode)) return 0; /* the caller says why */
    double timeout = qb_results_probe_timeout((long long)st.st_size);
    char parts_s[16], cpu_s[32], ppid_s[32];
    snprintf(parts_s, sizeof parts_s, "%u", parts);
    snprintf(cpu_s, sizeof cpu_s, "%.0f", timeout);
    snprintf(ppid_s, sizeof ppid_s, "%ld", (long)getpid());
    char *argv[] = {"/proc/self/exe", QB_RESULTS_PROBE_COMMAND, parts_s, cpu_s, ppid_s,
                    (char *)path, NULL};
    qb_results_probe_outcome o;
    if (qb_results_probe_spawn(argv, timeout, &o, err)) {
        qb_error_prefix(err, "results file %s: cannot check it in a separate process: ", path);
        return -1;
    }
    int have = 0, rc = parse_verdict(&o, err, &have);
    if (have && (o.reaped_elsewhere || (o.exited && (o.exit_code == 0) == (rc == 0)))) return rc;
    /* crashed, killed, out of bounds, or no verdict: nothing of it is used */
    char how[160];
    if (o.timed_out)
        snprintf(how, sizeof how, "reading it took longer than %.0f s (stopped)", timeout);
    else if (!o.exited && o.sig == SIGXCPU)
        snprintf(how, sizeof how, "reading it used more than %.0f s of CPU", timeout);
    else if (!o.exited && o.sig)
        snprintf(how, sizeof how, "libhdf5 crashed reading it (signal %d, SIG%s)", o.sig,
                 sigabbrev_np(o.sig) ? sigabbrev_np(o.sig) : "?");
    else if (!o.exited)
        snprintf(how, sizeof how, "the process reading it ended without a verdict");
    else
        snprintf(how, sizeof how, "reading it stopped with exit status %d before it finished "
                 "(its messages, if any, are above)", o.exit_code);
    return QB_FAIL(err, "results file %s is damaged: %s, in the separate process that checks "
                   "results files before qblind opens them; nothing was written", path, how);
}

/* ---- the child: limits, the readers, the verdict ------------------------------ */

/* Bytes of address space this process has mapped (/proc/self/statm). */
static unsigned long long vm_size(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long long pages = 0;
    if (f) {
        if (fscanf(f, "%llu", &pages) != 1) pages = 0;
        fclose(f);
    }
    return pages * (unsigned long long)sysconf(_SC_PAGESIZE);
}

static void set_limit(int what, rlim_t soft, rlim_t hard)
{
    struct rlimit cur;
    if (getrlimit(what, &cur) != 0) return;
    if (cur.rlim_max != RLIM_INFINITY && hard > cur.rlim_max) hard = cur.rlim_max;
    if (soft > hard) soft = hard;
    struct rlimit l = {soft, hard};
    setrlimit(what, &l);
}

static void limit_self(rlim_t cpu_s)
{
    set_limit(RLIMIT_CORE, 0, 0);
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    set_limit(RLIMIT_CPU, cpu_s, cpu_s + 5);
    rlim_t as = (rlim_t)(vm_size() + QB_RESULTS_PROBE_MEM);
    set_limit(RLIMIT_AS, as, as);
}

/* Name of link i of group g (malloc'd), or NULL. */
static char *link_name(hid_t g, hsize_t i)
{
    ssize_t len = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, NULL, 0, H5P_DEFAULT);
    char *name = len >= 0 ? xmalloc((size_t)len + 1, 1) : NULL;
    if (name && H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, (size_t)len + 1,
                                   H5P_DEFAULT) < 0) {
        free(name);
        name = NULL;
    }
    return name;
}

/* Entry `task` of the group g = /details/<name>: its object header, and
 * if it is a 1-D dataset its values read as float64. */
static int read_detail(hid_t g, const char *name, const char *task, const char *path,
                       qb_error *err)
{
    H5O_info_t oi;
    if (H5Oget_info_by_name2(g, task, &oi, H5O_INFO_BASIC, H5P_DEFAULT) < 0)
        return QB_H5_FAIL(err, path, "H5Oget_info_by_name", "/details/%s/%s", name, task);
    if (oi.type != H5O_TYPE_DATASET) return 0; /* not qblind's: nobody reads it */
    hid_t ds = H5Dopen2(g, task, H5P_DEFAULT);
    hid_t sp = ds >= 0 ? H5Dget_space(ds) : H5I_INVALID_HID;
    hssize_t np = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
    int rc = 0;
    if (np < 0) {
        rc = QB_H5_FAIL(err, path, "H5Dopen2", "/details/%s/%s", name, task);
    } else if (np > 0 && H5Sget_simple_extent_ndims(sp) == 1) {
        double *v = xmalloc((size_t)np, sizeof *v);
        if (H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0)
            rc = QB_H5_FAIL(err, path, "H5Dread", "/details/%s/%s", name, task);
        free(v);
    }
    qb_h5_close(&sp);
    qb_h5_close(&ds);
    return rc;
}

/* Every /details/<name>/<task> array of `file`, opened and read as
 * float64, as merge copies them (store/merge.c) and a resume replaces
 * them (store/results_writer.c). */
static int read_details(hid_t file, const char *path, qb_error *err)
{
    int e = qb_h5_link_exists(file, "details", path, err);
    if (e <= 0) return e;
    hid_t d = H5Gopen2(file, "details", H5P_DEFAULT);
    H5G_info_t gi;
    if (d < 0 || H5Gget_info(d, &gi) < 0) {
        qb_h5_close(&d);
        return QB_H5_FAIL(err, path, "H5Gopen2", "/details is not a readable group");
    }
    int rc = 0;
    for (hsize_t i = 0; i < gi.nlinks && rc == 0; i++) {
        H5G_info_t ni;
        char *name = link_name(d, i);
        hid_t g = name ? H5Gopen2(d, name, H5P_DEFAULT) : H5I_INVALID_HID;
        if (g < 0 || H5Gget_info(g, &ni) < 0) {
            rc = QB_H5_FAIL(err, path, "H5Gopen2", "/details/%s is not a readable group",
                            name ? name : "?");
            ni.nlinks = 0;
        }
        for (hsize_t j = 0; j < ni.nlinks && rc == 0; j++) {
            char *task = link_name(g, j);
            rc = task ? read_detail(g, name, task, path, err)
                      : QB_H5_FAIL(err, path, "H5Lget_name_by_idx", "/details/%s", name);
            free(task);
        }
        qb_h5_close(&g);
        free(name);
    }
    qb_h5_close(&d);
    return rc;
}

static int probe_parts(const char *path, unsigned parts, qb_error *err)
{
    if (parts & QB_RESULTS_PROBE_ROWS) {
        qb_results_damage *bad = NULL;
        size_t n_bad = 0;
        if (qb_results_list_damaged(path, &bad, &n_bad, err)) return -1;
        free(bad);
    }
    if (parts & QB_RESULTS_PROBE_ATTRS) {
        qb_kv *attrs = NULL;
        size_t n = 0;
        qb_shard sh;
        char *text = NULL;
        if (qb_results_read_attrs(path, &attrs, &n, err)) return -1;
        qb_results_attrs_free(attrs, n);
        if (qb_shard_read_file(path, &sh, NULL, &text, err)) return -1;
        free(text);
    }
    if (parts & QB_RESULTS_PROBE_DETAILS) {
        qb_h5_quiet q;
        qb_h5_quiet_begin(&q);
        hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
        int rc = f < 0 ? QB_H5_FAIL(err, path, "H5Fopen", "to read /details")
                       : read_details(f, path, err);
        qb_h5_close(&f);
        qb_h5_quiet_end(&q);
        if (rc) return -1;
    }
    return 0;
}

int qb_results_probe_main(int argc, char **argv)
{
    char *end;
    if (argc != 5) return 2;
    unsigned long parts = strtoul(argv[1], &end, 10);
    unsigned long cpu = strtoul(argv[2], &end, 10);
    long parent = strtol(argv[3], &end, 10);
    /* gone with the parent; if it is gone already, nobody waits for us */
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if ((long)getppid() != parent) return 2;
    limit_self((rlim_t)(cpu ? cpu : 60));
    qb_error err;
    int rc = probe_parts(argv[4], (unsigned)parts, &err);
    if (rc == 0) {
        fputs("ok\n", stdout);
        fflush(stdout);
        return 0; /* and libhdf5 closes at exit, as it does in the parent */
    }
    printf("error\n%s\n%d\n%s", err.src_file ? err.src_file : "?", err.src_line, err.msg);
    fflush(stdout);
    /* libhdf5 cannot close cleanly after some failures on damaged files
     * (it prints "infinite loop closing library" at exit): the parent
     * stops anyway */
    _exit(1);
}
