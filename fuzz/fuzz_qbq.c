/* libFuzzer harness: the .qbq quantized-model loader (qb_qmodel_decode,
 * quant/qmodel_io.h). Each input is decoded as it is and again with both
 * CRC-32 trailers recomputed (the embedded .qbm's, where its offsets fit,
 * then the file's), so mutations reach the parsers behind the checksums.
 * Seeds: fuzz/corpus/qbq/. */
#include <stdlib.h>
#include <string.h>

#include "fuzz_util.h"
#include "quant/qmodel.h"
#include "quant/qmodel_io.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static uint64_t le(const uint8_t *p, int bytes)
{
    uint64_t v = 0;
    for (int i = bytes - 1; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

/* Layout (quant/qmodel_io.c): magic[8] version u32, name length u32, name,
 * float part length u64, float part (a .qbm), ..., crc u32. */
static void qbq_fix_crcs(uint8_t *buf, size_t len)
{
    if (len >= 16) {
        uint64_t plen = le(buf + 12, 4);
        if (plen < len && 16 + plen + 8 <= len) {
            size_t off = 16 + (size_t)plen + 8;
            uint64_t blob = le(buf + off - 8, 8);
            if (blob <= len - off) qb_fuzz_fix_crc(buf + off, (size_t)blob);
        }
    }
    qb_fuzz_fix_crc(buf, len);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qb_qmodel qm;
    qb_error err;
    if (qb_qmodel_decode(data, size, "fuzz.qbq", &qm, &err) == 0) qb_qmodel_free(&qm);
    uint8_t *copy = malloc(size ? size : 1);
    if (size) memcpy(copy, data, size);
    qbq_fix_crcs(copy, size);
    if (qb_qmodel_decode(copy, size, "fuzz.qbq", &qm, &err) == 0) {
        uint8_t *a = NULL;
        size_t na = 0;
        if (qb_qmodel_encode(&qm, &a, &na, &err)) abort();
        qb_qmodel back;
        if (qb_qmodel_decode(a, na, "re-encoded", &back, &err)) abort();
        qb_qmodel_free(&back);
        free(a);
        qb_qmodel_free(&qm);
    }
    free(copy);
    return 0;
}
