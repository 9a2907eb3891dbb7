/* The uniform symmetric quantizer of the study:
 *
 *   Q_b(r; s) = s * clamp(round(r / s), -2^(b-1), 2^(b-1) - 1),
 *   s = max|r| / (2^(b-1) - 1)      (per tensor, or per output channel)
 *
 * for b = 2..8. r / s is a float32 division and round() is, by default,
 * round-half-to-even (rintf under the default FP environment), which is
 * what torch.round does; QB_ROUND_HALF_AWAY (roundf) is the alternative. The
 * mode matters only at cell boundaries, which is exactly where
 * quantization-conditioned attacks place weights.
 *
 * With s from max|r| every code lies in [-(2^(b-1)-1), 2^(b-1)-1]: the
 * lower clamp -2^(b-1) is only reached with an externally given scale.
 * The integer kernels need int8 in [-127, 127]; qb_quantize_symmetric clamps
 * there (qmin = -qmax) for that reason.
 *
 * An all-zero tensor (or channel) has s = 0 and codes 0, and de-quantizes
 * to zeros. */
#ifndef QB_QUANTIZER_H
#define QB_QUANTIZER_H

#include <stddef.h>
#include <stdint.h>

typedef enum qb_round_mode {
    QB_ROUND_HALF_EVEN = 0, /* torch.round, the default */
    QB_ROUND_HALF_AWAY = 1, /* C roundf: 0.5 -> 1, -0.5 -> -1 */
} qb_round_mode;

typedef enum qb_granularity {
    QB_GRAN_TENSOR = 0,  /* one scale for the whole tensor (the paper's) */
    QB_GRAN_CHANNEL = 1, /* one scale per output channel (row) */
} qb_granularity;

/* 2^(bits-1) - 1, bits in 2..8. */
int qb_quant_qmax(int bits);
/* round(v) in the given mode. */
float qb_quant_round(float v, qb_round_mode mode);
/* max|r| / qmax over r[0..n) (0 for an all-zero or empty tensor). */
float qb_quant_scale(const float *r, size_t n, int bits);
/* clamp(round(r / s), -2^(bits-1), qmax); 0 when s == 0. */
int qb_quant_code(float r, float s, int bits, qb_round_mode mode);

/* Quantize a (rows, cols) matrix (rows = output channels: conv weights
 * (OC, C*k*k), linear (OUT, IN)). scales receives 1 value (TENSOR) or rows
 * values (CHANNEL). Codes go to q (rows * cols). Codes are kept in
 * [-qmax, qmax] (symmetric: see above). */
void qb_quantize_symmetric(const float *r, size_t rows, size_t cols, int bits,
                           qb_granularity gran, qb_round_mode mode, int8_t *q, float *scales);

/* out = codes * scale (per row or per tensor). */
void qb_dequantize(const int8_t *q, size_t rows, size_t cols, qb_granularity gran,
                   const float *scales, float *out);

/* out = Q_b(r) (quantize then de-quantize); out may alias r. */
void qb_fake_quant(const float *r, size_t rows, size_t cols, int bits, qb_granularity gran,
                   qb_round_mode mode, float *out);

/* Activation quantization with a given scale: codes in [-qmax, qmax]
 * (out-of-range values clamp). */
void qb_quantize_with_scale(const float *r, size_t n, float s, int bits, qb_round_mode mode,
                            int8_t *q);

/* Storage: codes of bits <= 4 are packed two per byte (element 2i in the
 * low nibble, 2i+1 in the high nibble, two's complement); 5..8 bits are one
 * int8 per code. qb_quant_packed_size gives the bytes for n codes. */
size_t qb_quant_packed_size(size_t n, int bits);
void qb_quant_pack(const int8_t *q, size_t n, int bits, uint8_t *out);
void qb_quant_unpack(const uint8_t *in, size_t n, int bits, int8_t *q);

#endif
