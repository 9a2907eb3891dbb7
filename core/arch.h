/* Architectures: a model's layer graph written as text, one layer per
 * line. The presets (lenet, cnn-small, resnet20, preact-resnet18,
 * vgg11-bn) are written in this form, and a spec can declare its own in
 * the same form (README "Architectures").
 *
 * A line is an operation, its arguments and options, `#` starts a comment:
 *
 *   conv OUT [k=K] [stride=S] [pad=P] [bias=0|1] [cin=C]   (k 3, stride 1, pad 0, bias 1)
 *   bn                      batch normalisation of the input's channels
 *   relu
 *   maxpool K [stride=S]    (stride K)
 *   avgpool                 global average pool (C, H, W) -> (C, 1, 1)
 *   flatten
 *   linear OUT              OUT a number or `classes`
 *   add NAME                the input plus the output of layer NAME
 *
 * Every line may also carry `in=NAME` (its input is layer NAME's output
 * instead of the previous line's; `in=input` is the model input) and
 * `as=NAME` (names its output). A name is defined once and used only
 * after its line, so the graph cannot have a cycle; every output but the
 * last must be used; the last must be `classes` wide. `cin=C` states the
 * input channels a convolution expects (checked). */
#ifndef QB_ARCH_H
#define QB_ARCH_H

#include <stddef.h>

#include "core/error.h"

struct qb_model;

#define QB_ARCH_LINES_MAX 512
#define QB_ARCH_LINE_MAX 256
#define QB_ARCH_TEXT_MAX (QB_ARCH_LINES_MAX * QB_ARCH_LINE_MAX)

/* Where a declaration is wrong: the line (0-based index into the lines
 * given) and the column (0-based byte offset in that line). -1 when the
 * error is not about one line (too many layers, activations too large). */
typedef struct qb_arch_where {
    int line, col;
} qb_arch_where;

/* Plan the model `name` from `lines` (n of them) for inputs (c, h, w) and
 * `classes` outputs: fill m's layer table, n_params and n_train; params
 * stays NULL. On an error, *where (if not NULL) locates it and m is
 * zeroed. */
int qb_arch_plan_lines(struct qb_model *m, const char *name, const char *const *lines, int n,
                       int c, int h, int w, int classes, qb_arch_where *where, qb_error *err);

/* The same from one text whose lines are separated by '\n'. */
int qb_arch_plan_text(struct qb_model *m, const char *name, const char *text, int c, int h,
                      int w, int classes, qb_arch_where *where, qb_error *err);

/* The text of architecture `name`: a preset, or one declared with
 * qb_arch_declare. NULL if unknown. The string lives until exit. */
const char *qb_arch_text(const char *name);

/* Declare architecture `name` with `text` for this process (a spec's
 * `architectures:` entry, or a model file's stored graph). Declaring the
 * same name again with the same text is a no-op; with another text, or a
 * preset's name with another text, it fails. Not thread-safe: declare
 * before starting threads. The text is not checked here (plan it). */
int qb_arch_declare(const char *name, const char *text, qb_error *err);

/* 1 if name is a preset. */
int qb_arch_is_preset(const char *name);

/* The presets' names, NULL-terminated. */
extern const char *const qb_arch_names[];

#endif
