/* BadNet all-to-one poisoning with ground truth (which samples, and their
 * labels before poisoning), kept for the defenses' TP/FP accounting. */
#include "attacks/poison.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/rng.h"
#include "core/sort.h"
#include "core/xalloc.h"

int qb_poison_apply(qb_dataset *train, const qb_trigger *t, double rate, uint64_t seed,
                    qb_poison *out, qb_error *err)
{
    memset(out, 0, sizeof *out);
    if (!(rate >= 0.0 && rate < 1.0))
        return QB_FAIL(err, "poisoning rate %g outside [0, 1)", rate);
    if (train->n > UINT32_MAX)
        return QB_FAIL(err, "poisoning: %zu samples, more than 2^32-1", train->n);
    if (qb_trigger_validate(t, train->c, train->h, train->w, train->classes, err))
        return qb_error_prefix(err, "poisoning %s: ", train->name);
    if (t->kind == QB_TRIGGER_NONE && rate > 0.0)
        return QB_FAIL(err, "poisoning rate %g with trigger 'clean': a clean model has no "
                            "trigger to plant (use rate 0)",
                       rate);

    size_t n = train->n;
    size_t k = (size_t)llround(rate * (double)n);
    uint32_t *cand = xmalloc(n, sizeof *cand);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (train->labels[i] != (uint8_t)t->target) cand[m++] = (uint32_t)i;
    if (k > m) {
        free(cand);
        return QB_FAIL(err, "poisoning rate %g asks for %zu of %zu samples, but only %zu are "
                            "outside the target class %d",
                       rate, k, n, m, t->target);
    }

    /* Partial Fisher-Yates: the first k candidates become a uniform sample
     * without replacement; sorted afterwards so the choice, not the draw
     * order, is what is recorded. */
    qb_rng rng;
    qb_rng_seed(&rng, seed);
    for (size_t i = 0; i < k; i++) {
        size_t j = i + qb_rng_below(&rng, (uint32_t)(m - i));
        uint32_t tmp = cand[i];
        cand[i] = cand[j];
        cand[j] = tmp;
    }
    qsort(cand, k, sizeof *cand, qb_cmp_u32);

    out->n_poisoned = k;
    out->indices = xmalloc(k, sizeof *out->indices);
    memcpy(out->indices, cand, k * sizeof *cand);
    free(cand);
    out->is_poisoned = xcalloc(n, 1);
    out->orig_labels = xmalloc(n, 1);
    memcpy(out->orig_labels, train->labels, n);

    size_t sz = qb_dataset_image_size(train);
    for (size_t i = 0; i < k; i++) {
        uint32_t s = out->indices[i];
        out->is_poisoned[s] = 1;
        qb_trigger_apply(t, train->images + (size_t)s * sz, train->c, train->h, train->w);
        train->labels[s] = (uint8_t)t->target;
    }
    return 0;
}

void qb_poison_free(qb_poison *p)
{
    if (!p) return;
    free(p->indices);
    free(p->is_poisoned);
    free(p->orig_labels);
    memset(p, 0, sizeof *p);
}

void qb_poison_asr_set(const qb_dataset *test, const qb_trigger *t, qb_dataset *out)
{
    size_t m = 0;
    for (size_t i = 0; i < test->n; i++)
        if (test->labels[i] != (uint8_t)t->target) m++;
    qb_dataset_init(out, test->name, m, test->c, test->h, test->w, test->classes);
    out->norm = test->norm;
    size_t sz = qb_dataset_image_size(test), j = 0;
    for (size_t i = 0; i < test->n; i++) {
        if (test->labels[i] == (uint8_t)t->target) continue;
        memcpy(out->images + j * sz, test->images + i * sz, sz);
        out->labels[j] = test->labels[i];
        qb_trigger_apply(t, out->images + j * sz, test->c, test->h, test->w);
        j++;
    }
}
