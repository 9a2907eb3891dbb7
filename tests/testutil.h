/* Shared helpers for the cmocka suites. */
#ifndef QB_TESTUTIL_H
#define QB_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

/* A fresh empty directory under $TMPDIR (or /tmp), removed by
 * qb_test_tmpdir_remove. Returns a malloc'd path. */
char *qb_test_tmpdir(void);
void qb_test_tmpdir_remove(const char *dir);
/* Write bytes to path (asserts on failure). */
void qb_test_write_file(const char *path, const void *data, size_t len);
/* path of a committed fixture: $QBLIND_FIXTURES/name (malloc'd). */
char *qb_test_fixture_path(const char *name);

struct qb_model;
struct qb_model_ws;
/* The "region signature" of a training forward pass for finite-difference
 * checks of whole models (unfused workspace): ReLU signs, except for a ReLU
 * feeding a maxpool (only the selected entry matters there), and for every
 * maxpool "output > 0 ? 1 + argmax : 0". If it is equal at p - h, p and
 * p + h, every pre-activation is linear in the perturbed value over the
 * interval and the central difference is exact. qb_test_region_sig_len
 * gives its length for batch b; qb_test_region_sig fills sig from ws after
 * a training forward of b samples. */
size_t qb_test_region_sig_len(const struct qb_model *m, int b);
void qb_test_region_sig(const struct qb_model *m, const struct qb_model_ws *ws, int b,
                        int32_t *sig);

struct qb_layer;
/* The exact (double) output y = sum_k x[k] w[k] + bias of a conv (NCHW,
 * before any activation; a direct nested loop, no im2col) or linear layer
 * l for b samples, and mag = sum|terms| + |bias| per output, the scale of
 * a float evaluation's rounding. x (b, in size), y and mag (b, out size). */
void qb_test_layer_direct(const struct qb_layer *l, int b, const float *x, const float *w,
                          const float *bias, double *y, double *mag);

#endif
