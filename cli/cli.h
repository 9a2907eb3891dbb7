/* Command-line helpers shared by the qblind subcommands. */
#ifndef QB_CLI_H
#define QB_CLI_H

#include <stdint.h>

#include "core/error.h"

/* Strict number parsing: the whole string must be a number in range.
 * Errors name the option ("--epochs: expected an integer in [1, 100000], got \"x\""). */
int qb_cli_int(const char *opt, const char *s, long lo, long hi, int *out, qb_error *err);
int qb_cli_u64(const char *opt, const char *s, uint64_t *out, qb_error *err);
int qb_cli_float(const char *opt, const char *s, double lo, double hi, float *out, qb_error *err);
int qb_cli_double(const char *opt, const char *s, double lo, double hi, double *out,
                  qb_error *err);

/* Call fn(name, ctx) for each name of a comma-separated list, in order,
 * stopping at the first nonzero return (then -1; err is as fn left it).
 * -1 with "OPT: list too long" / "OPT: empty list" in err for a list longer
 * than 255 characters or without a name. */
int qb_cli_list_each(const char *opt, const char *list, int (*fn)(const char *name, void *ctx),
                     void *ctx, qb_error *err);

/* The error for what getopt_long returned as c (opterr 0 and an option
 * string starting with ':'): ':' -> "option X needs a value", anything
 * else -> "unknown option X"; X is the argument getopt stopped at. Always
 * returns -1 with err set. */
int qb_cli_option_error(int c, char **argv, qb_error *err);
/* --threads N: an integer in [1, QB_THREADS_MAX] (core/threads.h) into
 * *n. Returns 0, or -1 with err naming the option and the range. */
int qb_cli_parse_threads(const char *arg, int *n, qb_error *err);
/* The usage line for a wrong command line, and exit code 2: prints err's
 * message, then "see `qblind CMD --help`", to stderr. */
int qb_cli_usage_error(const char *cmd, const qb_error *err);

/* The subcommands: argv[0] is the subcommand name. Return the exit code. */
int qb_cmd_train(int argc, char **argv);
int qb_cmd_eval(int argc, char **argv);
int qb_cmd_demo(int argc, char **argv);
int qb_cmd_defend(int argc, char **argv);
int qb_cmd_run(int argc, char **argv);
int qb_cmd_plan(int argc, char **argv);
int qb_cmd_status(int argc, char **argv);
int qb_cmd_merge(int argc, char **argv);
int qb_cmd_report(int argc, char **argv);
int qb_cmd_arch(int argc, char **argv);

#endif
