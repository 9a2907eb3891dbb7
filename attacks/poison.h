/* BadNet all-to-one poisoning of a training set, with ground truth. */
#ifndef QB_POISON_H
#define QB_POISON_H

#include <stddef.h>
#include <stdint.h>

#include "core/dataset.h"
#include "core/error.h"
#include "attacks/trigger.h"

typedef struct qb_poison {
    size_t n_poisoned;
    uint32_t *indices;     /* (n_poisoned) sorted sample indices, owned */
    uint8_t *is_poisoned;  /* (n) 1 where the sample was poisoned, owned */
    uint8_t *orig_labels;  /* (n) labels before poisoning, owned */
} qb_poison;

/* Poison round(rate * n) samples of `train` in place: stamp the trigger and
 * relabel to t->target. Candidates are the samples whose true label is not
 * the target (relabelling a target-class sample would be a no-op), chosen
 * uniformly without replacement from `seed`. Fails if rate is outside
 * [0, 1) or asks for more samples than there are candidates.
 * On success `out` is owned by the caller (qb_poison_free). */
int qb_poison_apply(qb_dataset *train, const qb_trigger *t, double rate, uint64_t seed,
                    qb_poison *out, qb_error *err);
void qb_poison_free(qb_poison *p);

/* Copy of `test` containing only the samples whose label != t->target, each
 * with the trigger stamped (labels kept as the true labels): the ASR set.
 * It keeps test->norm: the trigger is stamped on the pixels, the
 * normalisation applies when they become model input. */
void qb_poison_asr_set(const qb_dataset *test, const qb_trigger *t, qb_dataset *out);

#endif
