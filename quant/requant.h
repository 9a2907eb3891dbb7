/* Re-quantization ("laundering"): de-quantize a deployed model and quantize
 * it again with other parameters — bits, granularity, rounding mode, and
 * optionally small Gaussian weight noise before rounding. The mitigation
 * stage calls this; it is the countermeasure studied against
 * quantization-conditioned backdoors. */
#ifndef QB_REQUANT_H
#define QB_REQUANT_H

#include <stdint.h>

#include "core/error.h"
#include "quant/qmodel.h"

/* out = Q_to(deq(src) + noise), noise ~ N(0, (noise_std * s)^2) per weight
 * with s the weight tensor's scale at `to`'s bit width, drawn from `seed`
 * (0 noise_std: none). `src` may be any qb_qmodel, including an fp32 one
 * (then this is plain quantization). Re-quantizing with the parameters
 * the model already has is the identity on codes and scales. On success
 * `out` is a new qb_qmodel (qb_qmodel_free). */
int qb_requantize(const qb_qmodel *src, const qb_precision *to, float noise_std, uint64_t seed,
                  qb_qmodel *out, qb_error *err);

#endif
