#include "tests/testutil_quant.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "quant/precision.h"
#include "tests/testutil.h"

void qb_test_quantize(qb_qmodel *qm, const qb_model *m, const char *prec)
{
    qb_precision p;
    qb_error err;
    assert_int_equal(qb_precision_parse(prec, &p, &err), 0);
    assert_int_equal(qb_qmodel_init(qm, m, &p, 0.0f, 0, &err), 0);
}

void qb_test_lenet_quantized(qb_qmodel *qm, const char *prec, uint64_t seed)
{
    qb_model m;
    qb_test_lenet(&m, seed);
    qb_test_quantize(qm, &m, prec);
    qb_model_free(&m);
}
