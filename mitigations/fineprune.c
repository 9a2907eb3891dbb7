/* `fineprune`: the Fine-Pruning procedure of the `fp` defense as a
 * countermeasure: the pruned, fine-tuned model is quantized to the task's
 * precision and deployed. */
#include "defenses/fineprune.h"
#include "mitigations/mitigation.h"

int qb_mitigate_fineprune(const qb_defense_input *in, qb_qmodel *out, qb_details *details,
                          qb_error *err)
{
    qb_fineprune_result r;
    qb_model tuned;
    if (qb_fineprune_from_input(in, "fineprune", &r, &tuned, err)) return -1;
    int rc = qb_qmodel_init(out, &tuned, in->precision, 0.0f, 0, err);
    qb_details_add1(details, "fineprune.n_pruned", r.n_pruned);
    qb_details_add_int(details, "fineprune.prune_order", r.order, (size_t)r.channels);
    qb_details_add(details, "fineprune.curve_ca", r.curve_ca, (size_t)r.n_steps);
    qb_details_add1(details, "fineprune.ca_pruned", r.ca_pruned);
    qb_details_add1(details, "fineprune.asr_pruned", r.asr_pruned);
    qb_fineprune_result_free(&r);
    qb_model_free(&tuned);
    return rc;
}
