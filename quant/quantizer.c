#include "quant/quantizer.h"

#include <math.h>
#include <string.h>

#include "core/error.h"

int qb_quant_qmax(int bits)
{
    QB_ASSERT(bits >= 2 && bits <= 8);
    return (1 << (bits - 1)) - 1;
}

float qb_quant_round(float v, qb_round_mode mode)
{
    /* rintf rounds half to even in the default rounding mode, which
     * qblind never changes. */
    return mode == QB_ROUND_HALF_AWAY ? roundf(v) : rintf(v);
}

float qb_quant_scale(const float *r, size_t n, int bits)
{
    float m = 0.0f;
    for (size_t i = 0; i < n; i++) {
        float a = fabsf(r[i]);
        m = a > m ? a : m;
    }
    return m / (float)qb_quant_qmax(bits);
}

int qb_quant_code(float r, float s, int bits, qb_round_mode mode)
{
    if (s == 0.0f) return 0;
    int qmax = qb_quant_qmax(bits), qmin = -qmax - 1;
    float v = qb_quant_round(r / s, mode);
    if (!(v >= (float)qmin)) return v > 0.0f ? qmax : qmin; /* NaN -> qmin is never fed */
    if (v > (float)qmax) return qmax;
    return (int)v;
}

void qb_quantize_with_scale(const float *r, size_t n, float s, int bits, qb_round_mode mode,
                            int8_t *q)
{
    int qmax = qb_quant_qmax(bits);
    for (size_t i = 0; i < n; i++) {
        int c = qb_quant_code(r[i], s, bits, mode);
        q[i] = (int8_t)(c < -qmax ? -qmax : c);
    }
}

void qb_quantize_symmetric(const float *r, size_t rows, size_t cols, int bits,
                           qb_granularity gran, qb_round_mode mode, int8_t *q, float *scales)
{
    if (gran == QB_GRAN_TENSOR) {
        scales[0] = qb_quant_scale(r, rows * cols, bits);
        qb_quantize_with_scale(r, rows * cols, scales[0], bits, mode, q);
        return;
    }
    for (size_t i = 0; i < rows; i++) {
        scales[i] = qb_quant_scale(r + i * cols, cols, bits);
        qb_quantize_with_scale(r + i * cols, cols, scales[i], bits, mode, q + i * cols);
    }
}

void qb_dequantize(const int8_t *q, size_t rows, size_t cols, qb_granularity gran,
                   const float *scales, float *out)
{
    for (size_t i = 0; i < rows; i++) {
        float s = gran == QB_GRAN_CHANNEL ? scales[i] : scales[0];
        for (size_t j = 0; j < cols; j++) out[i * cols + j] = s * (float)q[i * cols + j];
    }
}

void qb_fake_quant(const float *r, size_t rows, size_t cols, int bits, qb_granularity gran,
                   qb_round_mode mode, float *out)
{
    /* row by row so no n-sized temporary is needed */
    float s = gran == QB_GRAN_TENSOR ? qb_quant_scale(r, rows * cols, bits) : 0.0f;
    for (size_t i = 0; i < rows; i++) {
        const float *ri = r + i * cols;
        float si = gran == QB_GRAN_CHANNEL ? qb_quant_scale(ri, cols, bits) : s;
        for (size_t j = 0; j < cols; j++)
            out[i * cols + j] = si * (float)qb_quant_code(ri[j], si, bits, mode);
    }
}

size_t qb_quant_packed_size(size_t n, int bits)
{
    return bits <= 4 ? (n + 1) / 2 : n;
}

void qb_quant_pack(const int8_t *q, size_t n, int bits, uint8_t *out)
{
    if (bits > 4) {
        memcpy(out, q, n);
        return;
    }
    for (size_t i = 0; i < n; i += 2) {
        uint8_t lo = (uint8_t)q[i] & 0x0F;
        uint8_t hi = i + 1 < n ? ((uint8_t)q[i + 1] & 0x0F) : 0;
        out[i / 2] = (uint8_t)(lo | hi << 4);
    }
}

void qb_quant_unpack(const uint8_t *in, size_t n, int bits, int8_t *q)
{
    if (bits > 4) {
        memcpy(q, in, n);
        return;
    }
    for (size_t i = 0; i < n; i++) {
        int nib = (in[i / 2] >> (4 * (i & 1))) & 0x0F;
        q[i] = (int8_t)(nib >= 8 ? nib - 16 : nib); /* sign-extend the nibble */
    }
}
