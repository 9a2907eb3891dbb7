/* Figures of `qblind report` (--plots DIR; inline in the page of --html,
 * report/html.h).
 *
 * SVG written by qblind itself (plain C strings, no library): every figure
 * has a title, axis labels, a legend, font sizes of 12-18 px at its natural
 * size and a viewBox, so it scales in a browser or a document.
 *
 * 1. detection_heatmap: detection rate per row (defense, plus trigger,
 *    mitigation and dataset when they vary among the groups) x precision,
 *    cells colored by the rate with "k/n" and the percentage written in;
 *    beside it the same for clean models (the false-positive rate), when
 *    the file has clean models with a defense.
 * 2. bitwidth: CA and ASR (deployed model, points) versus precision on a
 *    categorical axis ordered by bit width: fp32 (32), then 8 ... 2. The bit
 *    width comes from the name (report/precision_order.h): fpN -> N, intN
 *    and intN-<suffix> -> N, wNaM -> N (the weight bits). Distinct names
 *    are distinct categories: int8-linear is its own category right after
 *    int8 (same width, longer name); a name with no derivable width is left
 *    out and named in a note under the figure. One line per trigger (and dataset/mitigation when
 *    they vary), the bootstrap 95% interval as error bars. When the file
 *    has several mitigations and "none" is one of them only "none" is drawn
 *    here (the mitigations have figure 3).
 * 3. mitigation: when the file has more than one mitigation: per trigger a
 *    panel, one row per mitigation, ASR after mitigation (mean and
 *    bootstrap 95% interval) as a dot per precision (and dataset).
 *
 * Groups follow the report's --by: an axis left out of --by is pooled ("*")
 * and drawn as one category. */
#ifndef QB_REPORT_SVG_H
#define QB_REPORT_SVG_H

#include "core/error.h"
#include "report/report.h"

/* The font stack of the figures (and of the page around them,
 * report/html.c). */
#define QB_REPORT_FONT "DejaVu Sans, Liberation Sans, Arial, Helvetica, sans-serif"

typedef enum qb_report_figure {
    QB_FIG_HEATMAP,
    QB_FIG_BITWIDTH,
    QB_FIG_MITIGATION,
    QB_FIG_COUNT
} qb_report_figure;

/* "detection_heatmap", "bitwidth", "mitigation": the file stem under --plots. */
const char *qb_report_figure_name(qb_report_figure fig);

/* The SVG document of one figure as a NUL-terminated string (caller
 * frees), or NULL when the figure does not apply to this report (no rows
 * with a defense; no CA/ASR values; one mitigation only). */
char *qb_report_svg(const qb_report *r, qb_report_figure fig);

/* Write every applicable figure as DIR/<name>.svg, creating DIR (and
 * parents) if missing, each through a temporary file and a rename. A
 * figure whose path is the file `input` (the results file) is refused
 * before anything is written. Returns the number of files written, -1
 * (err set, naming the file) on an I/O error or a refusal. */
int qb_report_write_plots(const qb_report *r, const char *dir, const char *input,
                          qb_error *err);

#endif
