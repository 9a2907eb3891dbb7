/* A LeNet with a hand-wired backdoor, for the STRIP and Fine-Pruning tests
 * (header-only: static helpers, included by test_strip.c and
 * test_fineprune.c).
 *
 * On 1x28x28 inputs whose pixels are all <= 0.8 (clean images <= 0.4 plus
 * an overlay <= 0.4) every activation is 0 and the logits are all 0: a
 * uniform prediction, entropy log2(10). When the bottom-right 3x3 pixels
 * are >= 1 (the default BadNet square, whatever is added on top):
 *   conv1 ch 0: ones on its kernel's bottom-right 3x3, bias -8: >= 1 at
 *               output (23, 23), <= 9 * 0.8 - 8 < 0 elsewhere on clean input
 *   pool -> (11, 11) >= 1;  conv2 ch 0: ones on input channel 0, bias 0:
 *   >= 1 at (7, 7);  pool -> (3, 3) >= 1;  linear1 row 0: ones on conv2
 *   channel 0's 16 pooled outputs;  linear2 row `target`: 40 * hidden 0.
 * So triggered inputs get logit[target] >= 40 (entropy ~ 0) and the
 * backdoor runs through conv2 channel 0, which clean data never activates
 * (like every other conv2 channel: all mean activations are 0). */
#ifndef QB_TEST_WIRED_LENET_H
#define QB_TEST_WIRED_LENET_H

#include <string.h>

#include "core/dataset.h"
#include "core/model.h"
#include "core/rng.h"

/* lenet layers: 0 conv1, 1 relu, 2 pool, 3 conv2, 4 relu, 5 pool,
 * 6 flatten, 7 linear 512->128, 8 relu, 9 linear 128->10 */
static void wired_lenet(qb_model *m, int target, int backdoor)
{
    qb_error err;
    assert_int_equal(qb_model_build(m, "lenet", 1, 28, 28, 10, &err), 0);
    memset(m->params, 0, m->n_params * sizeof(float));
    if (!backdoor) return;
    const qb_layer *c1 = &m->layers[0], *c2 = &m->layers[3], *l1 = &m->layers[7],
                   *l2 = &m->layers[9];
    float *w1 = m->params + c1->w_off; /* (16, 1, 5, 5) */
    for (int ky = 2; ky < 5; ky++)
        for (int kx = 2; kx < 5; kx++) w1[ky * 5 + kx] = 1.0f;
    m->params[c1->b_off] = -8.0f;
    float *w2 = m->params + c2->w_off; /* (32, 16, 5, 5): channel 0 <- input channel 0 */
    for (int j = 0; j < 25; j++) w2[j] = 1.0f;
    float *w3 = m->params + l1->w_off; /* (128, 512): row 0, columns of conv2 channel 0 */
    for (int j = 0; j < 16; j++) w3[j] = 1.0f;
    float *w4 = m->params + l2->w_off; /* (10, 128) */
    w4[(size_t)target * 128] = 40.0f;
}

/* n images 1x28x28 with pixels uniform in [0, 102] (<= 0.4), labels from
 * labels[0..n_labels) uniformly, from `seed`. */
static void dim_dataset(qb_dataset *d, size_t n, const int *labels, int n_labels, uint64_t seed)
{
    qb_dataset_init(d, "dim", n, 1, 28, 28, 10);
    qb_rng rng;
    qb_rng_seed(&rng, seed);
    for (size_t i = 0; i < n * 784; i++) d->images[i] = (uint8_t)qb_rng_below(&rng, 103);
    for (size_t i = 0; i < n; i++)
        d->labels[i] = (uint8_t)labels[qb_rng_below(&rng, (uint32_t)n_labels)];
}

#endif
