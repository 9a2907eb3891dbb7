/* Draining on SIGTERM / SIGUSR1 (Slurm's pre-timeout signal) / SIGINT:
 * the handler only sets a flag; the loops check it between messages. */
#include <signal.h>
#include <string.h>

#include "mpi/runner.h"

volatile sig_atomic_t qb_drain_requested = 0;

static void on_signal(int sig)
{
    (void)sig;
    qb_drain_requested = 1;
}

void qb_runner_install_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
}
