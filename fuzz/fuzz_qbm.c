/* libFuzzer harness: the .qbm model loader (qb_model_decode,
 * core/model_io.h). Each input is decoded as it is (reaching the checksum
 * test) and again with its CRC-32 trailer recomputed, so mutations reach
 * the layer table and the parameters behind the checksum. A decoded model
 * must encode to bytes that decode to the same bytes again.
 * Seeds: fuzz/corpus/qbm/. */
#include <stdlib.h>
#include <string.h>

#include "core/model.h"
#include "core/model_io.h"
#include "fuzz_util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void qbm_roundtrip(const qb_model *m, const char *meta)
{
    uint8_t *a = NULL, *b = NULL;
    size_t na = 0, nb = 0;
    qb_error err;
    if (qb_model_encode(m, meta, &a, &na, &err)) abort();
    qb_model m2;
    char *meta2 = NULL;
    if (qb_model_decode(a, na, "re-encoded", &m2, &meta2, &err)) abort();
    if (qb_model_encode(&m2, meta2, &b, &nb, &err)) abort();
    if (na != nb || memcmp(a, b, na) != 0) abort();
    qb_model_free(&m2);
    free(meta2);
    free(a);
    free(b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qb_model m;
    char *meta = NULL;
    qb_error err;
    if (qb_model_decode(data, size, "fuzz.qbm", &m, &meta, &err) == 0) {
        qb_model_free(&m);
        free(meta);
    }
    uint8_t *copy = malloc(size ? size : 1);
    if (size) memcpy(copy, data, size);
    qb_fuzz_fix_crc(copy, size);
    if (qb_model_decode(copy, size, "fuzz.qbm", &m, &meta, &err) == 0) {
        qbm_roundtrip(&m, meta);
        qb_model_free(&m);
        free(meta);
    }
    free(copy);
    return 0;
}
