#include "core/rng.h"

#include <math.h>

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

void qb_rng_seed(qb_rng *r, uint64_t seed)
{
    uint64_t x = seed;
    for (int i = 0; i < 4; i++) r->s[i] = splitmix64(&x);
}

uint64_t qb_rng_next(qb_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

uint32_t qb_rng_below(qb_rng *r, uint32_t n)
{
    /* Lemire's multiply-shift with rejection of the biased low region. */
    uint64_t m = (uint64_t)(uint32_t)(qb_rng_next(r) >> 32) * n;
    uint32_t low = (uint32_t)m;
    if (low < n) {
        uint32_t threshold = (uint32_t)(-n) % n;
        while (low < threshold) {
            m = (uint64_t)(uint32_t)(qb_rng_next(r) >> 32) * n;
            low = (uint32_t)m;
        }
    }
    return (uint32_t)(m >> 32);
}

float qb_rng_uniform(qb_rng *r)
{
    return (float)(qb_rng_next(r) >> 40) * (1.0f / 16777216.0f);
}

float qb_rng_normal(qb_rng *r)
{
    /* u1 in (0, 1] so log is finite. Computed in double for accuracy. */
    double u1 = ((double)(qb_rng_next(r) >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = (double)(qb_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}

void qb_rng_shuffle_u32(qb_rng *r, uint32_t *a, size_t n)
{
    for (size_t i = n; i > 1; i--) {
        uint32_t j = qb_rng_below(r, (uint32_t)i);
        uint32_t t = a[i - 1];
        a[i - 1] = a[j];
        a[j] = t;
    }
}

uint64_t qb_seed_derive(uint64_t seed, const char *tag)
{
    /* FNV-1a over the tag, mixed with the seed through splitmix64. */
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)tag; *p; p++) {
        h ^= *p;
        h *= 0x100000001b3ull;
    }
    uint64_t x = seed ^ h;
    splitmix64(&x);
    return splitmix64(&x);
}

float qb_hash_uniform(uint64_t seed, uint64_t index)
{
    uint64_t x = seed ^ (index * 0xD1B54A32D192ED03ull);
    return (float)(splitmix64(&x) >> 40) * (1.0f / 16777216.0f);
}
