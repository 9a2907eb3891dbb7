/* The precision axis of the report's figures (report/svg.h): the bit
 * width of a precision name and the order it puts precisions in.
 *
 * Read from the name alone, not through qb_precision_parse
 * (quant/precision.h): a results file may hold names the quantizer does
 * not run (int2, fp16, a wNaM out of its range, a suffix it does not know)
 * and the figures still place them. fpN -> N, intN and intN-<suffix> -> N,
 * wNaM and wNaM-<suffix> -> N (the weight bits); N in 1..64. */
#ifndef QB_REPORT_PRECISION_ORDER_H
#define QB_REPORT_PRECISION_ORDER_H

/* The bit width of a precision name (see above), or -1 when it cannot be
 * derived ("fp", "bf16", "int", "w4", "int8x", "*"). */
int qb_report_precision_bits(const char *name);

/* strcmp-like order of the figures' precision axis: wider first (fp32,
 * then 8 ... 2, a name with no width last), then the shorter name (int8
 * before int8-linear), then strcmp. */
int qb_report_precision_cmp(const char *a, const char *b);

#endif
