/* What the one-model commands share: train, eval and demo (cli/cmd_train.c)
 * and defend (cli/cmd_defend.c) take the same options (how the model is or
 * was trained, the precisions to deploy it at), load the same data and
 * check a saved model against it. */
#ifndef QB_CLI_MODEL_CMD_H
#define QB_CLI_MODEL_CMD_H

#include <stddef.h>

#include "attacks/model_job.h"
#include "core/dataset.h"
#include "core/error.h"
#include "core/model.h"
#include "core/params.h"
#include "quant/precision.h"

#define QB_MODEL_CMD_MAX_PARAMS 32

/* The parsed options of a one-model command. Strings point into argv. */
typedef struct qb_model_opts {
    const char *dataset, *data_dir, *output, *model_path;
    const char *precisions; /* comma-separated, validated */
    const char *defenses;   /* defend: comma-separated */
    qb_param_kv params[QB_MODEL_CMD_MAX_PARAMS]; /* defend: -P key=value, key and value
                                                    point into argv (split in place) */
    size_t n_params;
    int arch_set, quiet, details;
    int norm_set;           /* --normalize (or the preset) was given */
    qb_model_job job;
} qb_model_opts;

/* The options' help, printed after each command's own usage text. */
extern const char qb_model_opts_help[];

/* Call fn for every precision of a comma-separated list (fn NULL: only
 * validate). Returns 0, or -1 at the first bad name (in err) or the first
 * fn that returns nonzero (err as fn left it). */
int qb_precision_list_each(const char *list, int (*fn)(const qb_precision *, void *), void *ctx,
                           qb_error *err);

/* The body of a one-model command: o parsed, train / test loaded (the
 * architecture defaulted for them). Returns 0, or -1 with err set. */
typedef int (*qb_model_cmd_fn)(qb_model_opts *o, const qb_dataset *train,
                               const qb_dataset *test, qb_error *err);

/* A one-model command from start to exit code: parse argv (--help prints
 * usage and the options' help), check the positional argument (a model
 * file when wants_model, none otherwise), one BLAS thread, load the
 * dataset, run body, free the data. Errors are printed.
 * Returns the exit code: 0, or 1 after an error. */
int qb_model_cmd_main(int argc, char **argv, const char *usage, int wants_model,
                      qb_model_cmd_fn body);

/* Load o->model_path into m. Without --normalize (nor --preset) the
 * model's own normalisation is taken from its metadata's `normalize=`
 * line (written by `qblind train -o`), if it has one, into o->job.norm:
 * feed data through it with qb_dataset_view_norm. */
int qb_model_cmd_load(qb_model_opts *o, qb_model *m, qb_error *err);

/* 0 if the saved model m takes the dataset's images and classes, else -1
 * with a message naming both. */
int qb_model_cmd_check_fits(const qb_model_opts *o, const qb_model *m, const qb_dataset *test,
                            qb_error *err);

#endif
