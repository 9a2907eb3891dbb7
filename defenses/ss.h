/* Spectral Signatures (Tran, Li & Madry 2018, "Spectral Signatures in
 * Backdoor Attacks"): the analysis behind qb_defense_ss
 * (defenses/defense.h), exposed so that it can be run on given
 * representations. */
#ifndef QB_SS_H
#define QB_SS_H

#include <stddef.h>
#include <stdint.h>

#include "core/error.h"

/* Fixed values (docs/DESIGN.md): remove the top QB_SS_REMOVE_FACTOR * eps of
 * each class; detected when the removed set of the target class recalls
 * >= QB_SS_RECALL of its poisoned samples, or when some class's ratio
 * sigma1 / sigma2 is above the median with a MAD anomaly index > QB_SS_MAD. */
#define QB_SS_REMOVE_FACTOR 1.5
#define QB_SS_RECALL 0.5
#define QB_SS_MAD 2.0

typedef struct qb_ss_class {
    size_t n;                /* samples of the class */
    size_t n_poisoned;       /* of which poisoned */
    size_t n_removed;        /* round(1.5 eps n) top scores removed */
    size_t removed_poisoned; /* poisoned among the removed */
    double sigma1, sigma2;   /* two largest singular values of the centred class matrix */
    double sv_ratio;         /* sigma1 / sigma2 (+inf when sigma2 = 0) */
    double sv_anomaly;       /* MAD anomaly index of sv_ratio over the classes */
    int sv_outlier;          /* sv_ratio > median and sv_anomaly > QB_SS_MAD */
    double tpr;              /* removed_poisoned / n_poisoned (NaN if none poisoned) */
    double fpr;              /* clean removed / clean samples (NaN if none clean) */
} qb_ss_class;

/* Run the per-class analysis on representations act (n, dim), dim >= 2,
 * with labels (n) in [0, classes) and ground truth is_poisoned (n; NULL:
 * nothing poisoned). Per class: centre, top right singular vector v of the
 * centred matrix (core/pca.c), score_i = ((r_i - mean) . v)^2,
 * remove the round(1.5 * eps * n_c) highest scores (ties: lower sample
 * index first). Outputs: cls (classes); score (n) or NULL; removed (n)
 * 1 where removed. Returns -1 with err when a class has fewer than 3
 * samples or all its representations coincide (no singular direction),
 * or the eigensolver fails. Deterministic (no random draws; the same bits
 * on every CPU, core/pca.h). */
int qb_ss_analyze(const float *act, size_t n, size_t dim, const uint8_t *labels, int classes,
                  const uint8_t *is_poisoned, double eps, qb_ss_class *cls, double *score,
                  uint8_t *removed, qb_error *err);

/* The `detected` rule on an analysis: YES (1) when has_poison and the
 * target class's TPR >= QB_SS_RECALL, or some class is an sv-ratio
 * outlier; else 0. *recall receives the target class's TPR, NaN when
 * !has_poison or the target class has no poisoned samples. */
int qb_ss_detected(const qb_ss_class *cls, int classes, int target, int has_poison,
                   double *recall);

#endif
