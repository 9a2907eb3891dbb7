/* STRIP (Gao et al., ACSAC 2019): a triggered input keeps its (target)
 * prediction when other images are superimposed on it, a clean input does
 * not, so the mean entropy of the predictions over N superimposed copies is
 * low for triggered inputs.
 *
 * The steps of qb_defense_strip (defenses/defense.h), exposed here so the
 * tests can check each one:
 *   - superimposition as in the original code (garrisongys/STRIP,
 *     STRIP_CIFAR10DeepArchit_Tb.ipynb): images are float32 in [0, 1]
 *     (x/255) and combined with cv2.addWeighted(x, 1, overlay, 1, 0); on
 *     float arrays OpenCV's saturate_cast is the identity, so the sum is
 *     NOT clipped (pixels reach 2). `clip` = 1 gives min(x + o, 1), what
 *     addWeighted does on uint8 images (saturating at 255);
 *   - N overlays per input drawn uniformly with replacement from a clean
 *     overlay pool (the original: np.random.randint over 10000 held-out
 *     images, per input);
 *   - the entropy of one prediction in bits, the input's entropy = the mean
 *     over its N overlays (the original sums -p log2 p over the N softmax
 *     outputs and divides by N);
 *   - the threshold for a target false rejection rate from clean
 *     calibration entropies (empirical quantile, see qb_strip_threshold),
 *     and the AUROC of triggered against clean entropies. */
#ifndef QB_STRIP_H
#define QB_STRIP_H

#include <stddef.h>
#include <stdint.h>

#include "core/dataset.h"
#include "core/error.h"
#include "core/model.h"

/* Shannon entropy in bits of softmax(logits[0..classes)), computed in
 * double as (ln S - sum_i p_i (z_i - z_max)) / ln 2 with S = sum_i
 * exp(z_i - z_max): equal to -sum p log2 p (0 log 0 = 0) and free of
 * log(0). 0 for a one-hot prediction, log2(classes) for a uniform one.
 * Non-finite logits give a non-finite result. */
double qb_strip_entropy_bits(const float *logits, int classes);

/* out[i] = x[i] + o[i], or min(x[i] + o[i], 1) when clip != 0, for
 * i < len. out may alias x. */
void qb_strip_superimpose(const float *x, const float *o, size_t len, int clip, float *out);

/* The threshold giving a false rejection rate of at most `frr` on the
 * calibration entropies v[0..n) (n >= 1; v is not modified): with v sorted
 * ascending, v_(k) for k = floor(frr * n) (0-based; k = n - 1 if that is
 * larger). Inputs with entropy strictly below the threshold are flagged as
 * trojaned, so at most k of the n calibration inputs are flagged (fewer
 * when values tie at v_(k)): k/n <= frr. For n = 1000 and frr = 0.01 the
 * threshold is the 11th smallest entropy and exactly 10 calibration inputs
 * (1%) lie below it when there are no ties. */
double qb_strip_threshold(const double *v, size_t n, double frr);

/* Fraction of v[0..n) strictly below thr (0 for n = 0). */
double qb_strip_rate_below(const double *v, size_t n, double thr);

/* AUROC of a detector that calls lower scores positive: the probability
 * that a positive's score (pos, e.g. triggered inputs' entropies) is below
 * a negative's (neg, clean), ties counting 1/2 — the Mann-Whitney U
 * statistic over n_pos * n_neg, computed exactly (sorting and counting).
 * NaN if either set is empty. */
double qb_auroc_lower(const double *pos, size_t n_pos, const double *neg, size_t n_neg);

/* STRIP entropies of n inputs (n, isz) under model m (inference mode, the
 * model's hooks: integer kernels for integer precisions), isz = m's input
 * size: for input i, n_per_input overlay indices are drawn from an rng
 * seeded with `seed`, in input order, each uniform in [0, n_overlay) with
 * replacement; out[i] = mean over them of qb_strip_entropy_bits of the
 * prediction on qb_strip_superimpose(input i, overlay, clip), inputs and
 * overlays being pixels in [0, 1] and the superimposed image normalised by
 * norm (NULL: none) before the model. Forward
 * passes run in batches of up to 256 superimposed images, consecutive
 * pairs (input, overlay) in that order: with dynamic (per-batch)
 * activation quantization an image's prediction depends on its batch, and
 * that batching is part of the definition. Returns -1 (err set) if an
 * entropy is not finite. */
int qb_strip_entropies(const qb_model *m, const qb_norm *norm, const float *inputs, size_t n,
                       const float *overlays, size_t n_overlay, int n_per_input, int clip,
                       uint64_t seed, double *out, qb_error *err);

/* Threshold of the original code: the frr-quantile of a normal
 * distribution fitted to v[0..n) (maximum likelihood: mean and the
 * population standard deviation, as scipy.stats.norm.fit), i.e.
 * mean + sd * Phi^-1(frr). Recorded beside the empirical threshold for
 * comparison with the paper; not used for `detected`. n >= 1. */
double qb_strip_threshold_normal(const double *v, size_t n, double frr);

/* Phi^-1(p) for p in (0, 1) (Acklam's rational approximation refined by
 * one Halley step; |error| < 1e-12). */
double qb_normal_quantile(double p);

#endif
