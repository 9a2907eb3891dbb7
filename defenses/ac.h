/* Activation Clustering (Chen et al. 2018, "Detecting Backdoor Attacks on
 * Deep Neural Networks by Activation Clustering"): the analysis behind
 * qb_defense_ac (defenses/defense.h), exposed so that it can be run on
 * given activations. */
#ifndef QB_AC_H
#define QB_AC_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/* The fixed rule of docs/DESIGN.md: a class is flagged when its smaller
 * 2-means cluster holds less than QB_AC_SMALL_FRAC of it and the
 * clustering's silhouette exceeds QB_AC_SILHOUETTE. */
#define QB_AC_SMALL_FRAC 0.35
#define QB_AC_SILHOUETTE 0.10

typedef struct qb_ac_config {
    int dims;              /* PCA components per class (ART's nb_dims, 10) */
    int restarts;          /* k-means++ restarts, the lowest inertia kept */
    int max_iter;          /* cap on Lloyd assignment steps per restart */
    size_t silhouette_max; /* classes larger than this: silhouette on a
                              random subsample of this many points */
    uint64_t seed;         /* the defense's seed: k-means draws from
                              qb_seed_derive(seed, "ac-kmeans"), subsamples
                              from qb_seed_derive(seed, "ac-silhouette") */
} qb_ac_config;

typedef struct qb_ac_class {
    size_t n;          /* samples of the class */
    size_t n_small;    /* samples in its smaller cluster */
    double small_frac; /* n_small / n */
    double silhouette; /* mean silhouette of the 2-clustering (NaN: undefined) */
    int flagged;       /* small_frac < QB_AC_SMALL_FRAC && silhouette > QB_AC_SILHOUETTE */
} qb_ac_class;

/* Run the per-class analysis on activations act (n, dim) with labels (n)
 * in [0, classes): per class, PCA to min(dims, dim) components, 2-means,
 * silhouette, the flag. Classes are processed in order 0..classes-1, each
 * drawing from the same two streams, so results are deterministic.
 * Outputs: cls (classes); in_small (n) 1 where the sample is in the
 * smaller cluster of its class (equal halves: cluster 1 counts as the
 * smaller), else 0. Returns -1 with err when a class has fewer than 3
 * samples or the eigensolver fails (core/pca.h). */
int qb_ac_analyze(const float *act, size_t n, size_t dim, const uint8_t *labels, int classes,
                  const qb_ac_config *cfg, qb_ac_class *cls, uint8_t *in_small, qb_error *err);

#endif
