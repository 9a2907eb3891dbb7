/* Shared helpers for the cmocka suites that deploy models at a precision
 * (quant/); linked as qb_testutil_quant by the suites that include this
 * header (tests/CMakeLists.txt). */
#ifndef QB_TESTUTIL_QUANT_H
#define QB_TESTUTIL_QUANT_H

#include <stdint.h>

#include "core/model.h"
#include "quant/qmodel.h"

/* qm = m deployed at the precision named `prec` (no weight noise); fails
 * the test if the name does not parse. m is not referenced afterwards.
 * Free with qb_qmodel_free. */
void qb_test_quantize(qb_qmodel *qm, const qb_model *m, const char *prec);

/* qm = the test LeNet with parameters from `seed` (qb_test_lenet in
 * tests/testutil.h) deployed at `prec`. */
void qb_test_lenet_quantized(qb_qmodel *qm, const char *prec, uint64_t seed);

#endif
