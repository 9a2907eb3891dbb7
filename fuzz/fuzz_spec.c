/* libFuzzer harness: the spec parser (qb_spec_parse, jobs/spec.h) on the
 * input as the text of a spec file. Seeds: fuzz/corpus/spec/. */
#include <stddef.h>
#include <stdint.h>

#include "jobs/spec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qb_spec s;
    qb_error err;
    if (qb_spec_parse(&s, (const char *)data, size, "fuzz.yaml", &err) == 0) qb_spec_free(&s);
    return 0;
}
