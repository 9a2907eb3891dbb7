/* Deterministic random numbers.
 *
 * xoshiro256** seeded through splitmix64. Every random decision in qblind
 * (init, shuffling, poisoning, noise) draws from a qb_rng seeded from the
 * task's own parameters via qb_seed_derive, never from time or rank, so a
 * given seed reproduces bit-identical results anywhere. */
#ifndef QB_RNG_H
#define QB_RNG_H

#include <stddef.h>
#include <stdint.h>

typedef struct qb_rng {
    uint64_t s[4];
} qb_rng;

void qb_rng_seed(qb_rng *r, uint64_t seed);
uint64_t qb_rng_next(qb_rng *r);
/* Uniform integer in [0, n), unbiased (rejection). n > 0. */
uint32_t qb_rng_below(qb_rng *r, uint32_t n);
/* Uniform float in [0, 1) with 24 random bits. */
float qb_rng_uniform(qb_rng *r);
/* Standard normal (Box-Muller, one value per call; deterministic). */
float qb_rng_normal(qb_rng *r);
/* Fisher-Yates shuffle of a[0..n). */
void qb_rng_shuffle_u32(qb_rng *r, uint32_t *a, size_t n);

/* Derive an independent 64-bit seed for a named sub-stream ("init",
 * "shuffle", "poison", ...) of a parent seed. Stable across versions:
 * changing it changes every result. */
uint64_t qb_seed_derive(uint64_t seed, const char *tag);

/* Stateless hash of (seed, index) to [0, 1): a fixed pattern indexed by
 * position (trigger noise) without storing it. */
float qb_hash_uniform(uint64_t seed, uint64_t index);

#endif
