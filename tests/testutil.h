/* Shared helpers for the cmocka suites. */
#ifndef QB_TESTUTIL_H
#define QB_TESTUTIL_H

#include <stddef.h>
#include <stdint.h>

#include "core/details.h"
#include "core/error.h"
#include "core/model.h"

/* The end of a suite's main: runs the tests given as arguments
 * (cmocka_unit_test(...) entries) as the cmocka group "tests" without
 * group fixtures, and evaluates to the number that failed:
 *     return qb_test_run_group(cmocka_unit_test(test_a), cmocka_unit_test(test_b));
 * (cmocka_run_group_tests wants a named array; this saves declaring one.) */
#define qb_test_run_group(...)                                                   \
    _cmocka_run_group_tests("tests", (const struct CMUnitTest[]){__VA_ARGS__},   \
                            sizeof((const struct CMUnitTest[]){__VA_ARGS__}) /   \
                                sizeof(struct CMUnitTest),                       \
                            NULL, NULL)

/* A fresh empty directory under $TMPDIR (or /tmp), removed by
 * qb_test_tmpdir_remove. Returns a malloc'd path. */
char *qb_test_tmpdir(void);
void qb_test_tmpdir_remove(const char *dir);
/* The same as a cmocka fixture: setup puts a fresh directory (char *) in
 * *state, teardown removes it with its contents and frees the path. A
 * test reads it as `const char *dir = *state;`. */
int qb_test_tmpdir_setup(void **state);
int qb_test_tmpdir_teardown(void **state);
#define qb_test_with_tmpdir(f) \
    cmocka_unit_test_setup_teardown(f, qb_test_tmpdir_setup, qb_test_tmpdir_teardown)
/* "dir/name", malloc'd. */
char *qb_test_path_join(const char *dir, const char *name);
/* Write bytes to path (asserts on failure). */
void qb_test_write_file(const char *path, const void *data, size_t len);
/* path of a committed fixture: $QBLIND_FIXTURES/name (malloc'd). */
char *qb_test_fixture_path(const char *name);

/* PyTorch fixtures (tests/fixtures/gen_torch_fixture.py's docstring has
 * the format): a container of named sections, checked on load (magic,
 * CRC-32, sections tiling the file). Section dtypes: */
enum {
    QB_TFIX_F32 = 1,   /* float32 */
    QB_TFIX_I16Q = 2,  /* int16 code k, value k / 65536 (exact) */
    QB_TFIX_U8Q = 3,   /* uint8 code k, value k / 256 (exact) */
    QB_TFIX_U8 = 4,    /* uint8 as is */
    QB_TFIX_I16Q12 = 5 /* int16 code k, value k / 4096 (exact) */
};
typedef struct qb_test_fixture {
    uint8_t *buf;
    size_t len;
    uint32_t n_sections;
} qb_test_fixture;
/* Load the fixture at `path` (at most 256 MB); fails the test, printing
 * `hint` (how to regenerate it), if it is missing or corrupt. Free with
 * qb_test_fixture_free. */
void qb_test_fixture_load(qb_test_fixture *f, const char *path, const char *hint);
void qb_test_fixture_free(qb_test_fixture *f);
/* The section `name` as floats (malloc'd, count of them); fails the test
 * unless it exists with this dtype and element count. */
float *qb_test_fixture_get(const qb_test_fixture *f, const char *name, int dtype, size_t count);

/* Fails the test unless |got - want| <= rtol * |want| + atol_rel * max|want|
 * for all n elements; prints `what`, n, max|want| and the worst element's
 * error as a fraction of its bound, and on failure the element. Returns
 * that fraction. */
double qb_test_assert_close(const char *what, const float *got, const float *want, size_t n,
                            double rtol, double atol_rel);
/* The same per parameter tensor of m (every layer's weight and bias
 * slices of the flat buffers got and want; each tensor its own max|want|),
 * so a failure names the tensor. Returns the worst fraction. */
double qb_test_assert_params_close(const char *what, const struct qb_model *m, const float *got,
                                   const float *want, double rtol, double atol_rel);

/* n zeroed floats (asserts on failure; at least one is allocated). */
float *qb_test_falloc(size_t n);
struct qb_rng;
/* n floats uniform in [lo, hi) from r (qb_test_falloc'd). */
float *qb_test_random_floats(struct qb_rng *r, size_t n, float lo, float hi);

/* Run this test program again as a child, `self mode arg` (its main
 * dispatches on mode), with ASAN_OPTIONS set to asan_options when not
 * NULL; returns the waitpid status. Output is flushed first. */
int qb_test_run_self(const char *mode, const char *arg, const char *asan_options);

/* Fails the test (printing both) unless e's message contains frag. */
void qb_test_assert_msg_has(const qb_error *e, const char *frag);

/* The value of a one-value detail; fails if it is missing or longer. */
double qb_test_detail1(const qb_details *d, const char *name);
/* a and b hold the same details in the same order: names, lengths and
 * bit-identical values (a defense run twice on the same input). */
void qb_test_details_assert_equal(const qb_details *a, const qb_details *b);

/* The LeNet of the MNIST-shaped tests (1x28x28 inputs, 10 classes) with
 * its initial parameters from `seed`. Free with qb_model_free. */
void qb_test_lenet(struct qb_model *m, uint64_t seed);

/* Build `arch` for (c, h, w) inputs and `classes` outputs (asserting it
 * builds), with PyTorch's initialisation from `seed` and random batch
 * norms from `bn_seed`, so that folding them or normalising with them is
 * not the identity: for each channel, in this order of draws u in [0, 1):
 * gamma = +-(g_lo + g_w u) (negative with probability neg: an extra draw
 * first, only if neg > 0), beta = b_w (u - 1/2), running mean =
 * m_w (u - 1/2), running variance = v_lo + v_w u. Free with
 * qb_model_free. */
typedef struct qb_test_bn_ranges {
    double neg, g_lo, g_w, b_w, m_w, v_lo, v_w;
} qb_test_bn_ranges;
void qb_test_model_random(struct qb_model *m, const char *arch, int c, int h, int w, int classes,
                          uint64_t seed, uint64_t bn_seed, const qb_test_bn_ranges *r);
/* The same as a cmocka fixture: *state = a qb_model *, the test LeNet
 * with parameter seed 1, freed afterwards. */
int qb_test_lenet_setup(void **state);
int qb_test_lenet_teardown(void **state);
#define qb_test_with_lenet(f) \
    cmocka_unit_test_setup_teardown(f, qb_test_lenet_setup, qb_test_lenet_teardown)
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

/* A finite-difference objective: L at the current inputs and parameters;
 * with sig not NULL it also writes the signature of the piecewise-linear
 * region it is on (ReLU signs, argmax indices). */
typedef double (*qb_test_loss_fn)(void *ctx, int32_t *sig);

/* One element's difference quotient of L = loss(ctx, .) in p[j], the
 * element's perturbation applied in float (tests/test_layers.c explains
 * the method): the largest of h, h/2, h/4, h/8 for which [p - h, p + h]
 * holds no kink (the signature at both ends equals sig0, the one at p,
 * where L = l0) gives the central difference; if only one side is clean,
 * that side's one-sided difference. sig_len 0: L is smooth, no
 * signatures (sig0 and sig unused); else sig is scratch of sig_len.
 * *num = the quotient, *den = its denominator (the float step actually
 * taken). Returns 2 (central), 1 (one-sided), or 0 when every step
 * crosses a kink on both sides (then *den = 0). p[j] is restored. */
int qb_test_fd_quotient(qb_test_loss_fn loss, void *ctx, size_t sig_len, const int32_t *sig0,
                        int32_t *sig, double l0, float *p, size_t j, float h, double *num,
                        double *den);

/* The objective of whole-model finite-difference checks: L = sum(r *
 * logits) in double for model m at inputs x (b samples), r (b, classes),
 * evaluated with an unfused workspace (every ReLU output and argmax is
 * materialised, so the region signature can read them). m, x and r are
 * not owned: a check perturbs m's parameters or x in place. */
typedef struct qb_test_fd_model {
    const qb_model *m;
    qb_model_ws ws;
    float *x;
    const float *r;
    int b;
} qb_test_fd_model;
void qb_test_fd_model_init(qb_test_fd_model *c, const qb_model *m, float *x, const float *r,
                           int b);
void qb_test_fd_model_free(qb_test_fd_model *c);
/* L at the current parameters and inputs (a qb_test_fd_model *ctx); with
 * sig not NULL also the region signature (qb_test_region_sig_len int32). */
double qb_test_fd_model_loss(void *ctx, int32_t *sig);
/* sum |r * logits| at the current point: the scale of L's own rounding. */
double qb_test_fd_model_mag(qb_test_fd_model *c);

struct qb_layer;
/* The exact (double) output y = sum_k x[k] w[k] + bias of a conv (NCHW,
 * before any activation; a direct nested loop, no im2col) or linear layer
 * l for b samples, and mag = sum|terms| + |bias| per output, the scale of
 * a float evaluation's rounding. x (b, in size), y and mag (b, out size). */
void qb_test_layer_direct(const struct qb_layer *l, int b, const float *x, const float *w,
                          const float *bias, double *y, double *mag);

#endif
