/* Progress of a run on stderr. */
#include <stdio.h>
#include <unistd.h>

#include "core/train.h"
#include "mpi/runner.h"

void qb_progress_init(qb_progress *p, size_t total, size_t already_done, int quiet)
{
    p->total = total;
    p->done = p->done_at_start = already_done;
    p->failed = p->invalid = 0;
    p->t0 = p->last_print = qb_now();
    p->tty = isatty(STDERR_FILENO);
    p->quiet = quiet;
}

void qb_progress_task(qb_progress *p, int status)
{
    p->done++;
    p->failed += status == QB_STATUS_FAILED;
    p->invalid += status == QB_STATUS_INVALID;
    qb_progress_print(p, 0);
}

void qb_progress_print(qb_progress *p, int force)
{
    if (p->quiet) return;
    double now = qb_now();
    if (!force && now - p->last_print < (p->tty ? 0.5 : 10.0)) return;
    p->last_print = now;
    double dt = now - p->t0;
    size_t ran = p->done - p->done_at_start;
    double rate = dt > 0 ? (double)ran / dt : 0.0;
    double eta = rate > 0 ? (double)(p->total - p->done) / rate : -1.0;
    char etas[32];
    if (eta < 0)
        snprintf(etas, sizeof etas, "?");
    else
        snprintf(etas, sizeof etas, "%dh%02dm%02ds", (int)(eta / 3600), (int)(eta / 60) % 60,
                 (int)eta % 60);
    fprintf(stderr, "%sqblind: %zu/%zu tasks done, %zu failed, %zu invalid, %.2f tasks/s, ETA %s%s",
            p->tty ? "\r" : "", p->done, p->total, p->failed, p->invalid, rate, etas,
            p->tty ? "   " : "\n");
    if (p->tty && force) fputc('\n', stderr);
    fflush(stderr);
}
