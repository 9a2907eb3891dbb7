#include "quant/requant.h"

int qb_requantize(const qb_qmodel *src, const qb_precision *to, float noise_std, uint64_t seed,
                  qb_qmodel *out, qb_error *err)
{
    /* src->model.params already hold the de-quantized weights */
    return qb_qmodel_init(out, &src->model, to, noise_std, seed, err);
}
