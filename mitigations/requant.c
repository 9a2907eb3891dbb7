/* Laundering by re-quantization: the FP32 weights quantized with other
 * parameters than the task's precision (mitigations/mitigation.h). */
#include <stdio.h>
#include <string.h>

#include "core/rng.h"
#include "mitigations/mitigation.h"
#include "quant/requant.h"

const qb_param_def qb_requant_bits_params[] = {
    {"via_bits", QB_PARAM_INT, 0, 0, 8, NULL,
     "bit width of the first quantization (0: 8, or 6 when the precision has 8-bit weights)"},
    {NULL, 0, 0, 0, 0, NULL, NULL},
};

const qb_param_def qb_requant_noise_params[] = {
    {"noise", QB_PARAM_REAL, 0.1, 0, 10, NULL,
     "standard deviation of the weight noise, in units of each tensor's quantization step"},
    {NULL, 0, 0, 0, 0, NULL, NULL},
};

/* The FP32 source as a qb_qmodel (plain copy) for qb_requantize. */
static int quantize_fp32(const qb_defense_input *in, const qb_precision *to, float noise,
                         uint64_t seed, qb_qmodel *out, qb_error *err)
{
    if (!in->fp32) return QB_FAIL(err, "laundering needs the FP32 model");
    return qb_qmodel_init(out, in->fp32, to, noise, seed, err);
}

static void note_precision(qb_details *details, const char *name, const qb_precision *p)
{
    double v[3] = {p->w_bits, p->gran == QB_GRAN_CHANNEL, p->round == QB_ROUND_HALF_AWAY};
    qb_details_add(details, name, v, 3);
}

/* Quantize the FP32 source at *to, the task's precision with one setting
 * flipped, named "<precision><suffix>"; a float precision (nothing to flip)
 * is kept as it is. */
static int requant_flipped(const qb_defense_input *in, qb_precision *to, const char *suffix,
                           qb_qmodel *out, qb_details *details, qb_error *err)
{
    if (qb_precision_is_float(in->precision))
        *to = *in->precision;
    else
        snprintf(to->name, sizeof to->name, "%.24s%s", in->precision->name, suffix);
    note_precision(details, "requant.to", to);
    return quantize_fp32(in, to, 0.0f, 0, out, err);
}

int qb_mitigate_requant_pc(const qb_defense_input *in, qb_qmodel *out, qb_details *details,
                           qb_error *err)
{
    qb_precision to = *in->precision;
    to.gran = to.gran == QB_GRAN_CHANNEL ? QB_GRAN_TENSOR : QB_GRAN_CHANNEL;
    return requant_flipped(in, &to, to.gran == QB_GRAN_CHANNEL ? "+pc" : "+pt", out, details,
                           err);
}

int qb_mitigate_requant_round(const qb_defense_input *in, qb_qmodel *out, qb_details *details,
                              qb_error *err)
{
    qb_precision to = *in->precision;
    to.round = to.round == QB_ROUND_HALF_AWAY ? QB_ROUND_HALF_EVEN : QB_ROUND_HALF_AWAY;
    return requant_flipped(in, &to, to.round == QB_ROUND_HALF_AWAY ? "+away" : "+even", out,
                           details, err);
}

int qb_mitigate_requant_bits(const qb_defense_input *in, qb_qmodel *out, qb_details *details,
                             qb_error *err)
{
    const qb_precision *to = in->precision;
    if (qb_precision_is_float(to)) return quantize_fp32(in, to, 0.0f, 0, out, err);
    int via = qb_params_int(&in->params, "via_bits");
    if (via == 0) via = to->w_bits == 8 ? 6 : 8;
    if (via < 2) return QB_FAIL(err, "requant-bits: via_bits must be 2..8 (or 0)");
    qb_precision mid = *to;
    mid.w_bits = via;
    snprintf(mid.name, sizeof mid.name, "w%d", via);
    qb_qmodel first;
    if (quantize_fp32(in, &mid, 0.0f, 0, &first, err)) return -1;
    int rc = qb_requantize(&first, to, 0.0f, 0, out, err);
    qb_qmodel_free(&first);
    qb_details_add1(details, "requant.via_bits", via);
    return rc;
}

int qb_mitigate_requant_noise(const qb_defense_input *in, qb_qmodel *out, qb_details *details,
                              qb_error *err)
{
    float noise = (float)qb_params_num(&in->params, "noise");
    qb_details_add1(details, "requant.noise", noise);
    return quantize_fp32(in, in->precision, noise, qb_seed_derive(in->seed, "mitigation-noise"),
                         out, err);
}
