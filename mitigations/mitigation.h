/* The countermeasures of the study (the `mitigation` axis): what a
 * defender can do to a suspicious model before deploying it.
 *
 *   none           the deployed model is Q_P(fp32), P the task's precision
 *   finetune       clean fine-tuning of the de-quantized model on a small
 *                  clean set, then Q_P again
 *   requant-pc     laundering: quantize the FP32 weights with the other
 *                  granularity (per tensor <-> per channel)
 *   requant-round  ... with the other rounding mode (half even <-> away)
 *   requant-bits   ... through another bit width first: Q_P(Q_via(fp32))
 *   requant-noise  ... after Gaussian weight noise: Q_P(fp32 + n),
 *                  n ~ N(0, (noise * s)^2), s the weight tensor's scale at P
 *   fineprune      Fine-Pruning (defenses/fineprune.h, the `fp` defense's
 *                  procedure), then Q_P of the pruned, fine-tuned model
 *
 * Laundering starts from the FP32 weights the deployed model was quantized
 * from (the model a victim of a quantization-conditioned attack holds):
 * re-quantizing the de-quantized model on its own grid is the identity
 * (tested), and a rounding mode cannot change values already on the grid.
 * The requant-* mitigations end at a variant of P (requant-pc of int8 is
 * int8-pc): CA/ASR after mitigation and the defense are measured there. At
 * fp32 there is no quantizer to vary: requant-* leave the model unchanged.
 *
 * Every mitigation reads its data from a defense input (defenses/defense.h:
 * the defender's clean pool from the test set, the task's seed) and writes
 * a new deployed model. */
#ifndef QB_MITIGATION_H
#define QB_MITIGATION_H

#include "core/details.h"
#include "core/error.h"
#include "defenses/defense.h"
#include "core/params.h"
#include "core/registry.h"
#include "quant/qmodel.h"

/* Build the mitigated, deployed model into *out (a new qb_qmodel,
 * qb_qmodel_free) from in->fp32 / in->qmodel (the model deployed without
 * mitigation); raw results go to `details` ("<mitigation>.<field>").
 * Returns -1 with err set when it cannot run (then nothing is allocated). */
typedef int qb_mitigation_fn(const qb_defense_input *in, qb_qmodel *out, qb_details *details,
                             qb_error *err);

/* One registered mitigation (mitigations/registry.c): name (the
 * `mitigation` axis value), its function, its parameter table
 * (core/params.h: the keys its `mitigations:` block accepts). */
typedef struct qb_mitigation_entry {
    qb_registry_key key; /* name, alias_of (core/registry.h) */
    qb_mitigation_fn *run;
    const qb_param_def *params;
} qb_mitigation_entry;

/* The registered mitigations (not `none`), NULL-name terminated: the one
 * list of the `mitigation` axis, which the spec parser reads. */
extern const qb_mitigation_entry qb_mitigations[];
/* The canonical entry of a name (aliases resolved), or NULL. */
const qb_mitigation_entry *qb_mitigation_find(const char *name);

/* The mitigations (one file per family, each a qb_mitigation_fn) and their
 * parameter tables. */
qb_mitigation_fn qb_mitigate_finetune, qb_mitigate_requant_pc, qb_mitigate_requant_round,
    qb_mitigate_requant_bits, qb_mitigate_requant_noise, qb_mitigate_fineprune;
extern const qb_param_def qb_finetune_params[], qb_requant_bits_params[],
    qb_requant_noise_params[];

/* Fraction of conv/linear weights whose deployed (de-quantized) value
 * differs between a and b; NaN unless they have the same layer table (a
 * deployed model and its mitigated version always do: at a quantized
 * precision both have their batch norms folded). */
double qb_mitigation_weights_changed(const qb_model *a, const qb_model *b);
/* Fraction of integer codes that differ between a and b over the layers
 * both quantize (scales may differ); NaN if they quantize no common layer
 * or their layer tables differ. */
double qb_mitigation_codes_changed(const qb_qmodel *a, const qb_qmodel *b);

#endif
