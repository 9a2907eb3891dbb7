/* Sweep specs: `architectures:`, the layer graphs a spec declares
 * (jobs/spec_parse.h; the grammar is core/arch.h's).
 *
 *   architectures:
 *     my-net:
 *       - conv 32 k=3 pad=1 bias=0
 *       - bn
 *       - ...
 *
 * Read in two steps. While the document is read (before any other key, so
 * that `train.arch` may name them): names and lines, and where each line's
 * text starts in the file. After the expansion, when every dataset of the
 * spec is known (include entries can add some): each architecture is
 * planned for each dataset (qb_arch_plan_lines), an error located at the
 * line and column of the layer it is about, then declared for the process
 * (qb_arch_declare): every rank parses the broadcast spec, so every rank
 * knows them before it builds a model. */
#include "jobs/spec_parse.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/arch.h"
#include "core/model.h"
#include "core/xalloc.h"

/* ---- datasets by name --------------------------------------------------------- */

static const struct {
    const char *name;
    qb_spec_dataset_info info;
} dataset_infos[] = {
    {"fashion-mnist", {1, 28, 28, 10, 60000, 10000}},
    {"mnist", {1, 28, 28, 10, 60000, 10000}},
    {"cifar10", {3, 32, 32, 10, 50000, 10000}},
    {"gtsrb", {3, 32, 32, 43, 39209, 12630}}, /* Final_Training, Final_Test */
    {"synthetic", {3, 32, 32, 10, 10000, 2000}},
};

int qb_spec_dataset_info_of(const char *name, qb_spec_dataset_info *out)
{
    for (size_t i = 0; i < sizeof dataset_infos / sizeof dataset_infos[0]; i++)
        if (!strcmp(dataset_infos[i].name, name)) {
            *out = dataset_infos[i].info;
            return 0;
        }
    return -1;
}

/* ---- reading ------------------------------------------------------------------ */

const qb_spec_declared_arch *qb_spec_declared(const qb_spec *s, const char *name)
{
    for (size_t i = 0; i < s->n_archs; i++)
        if (!strcmp(s->archs[i].name, name)) return &s->archs[i];
    return NULL;
}

/* Bytes of text up to the 0-based (line, column) of a libyaml mark, whose
 * column counts characters: the byte offset, or -1 past the end. */
static long byte_of_mark(const char *text, size_t len, size_t line, size_t col)
{
    size_t i = 0;
    for (size_t l = 0; l < line; l++) {
        const char *nl = memchr(text + i, '\n', len - i);
        if (!nl) return -1;
        i = (size_t)(nl - text) + 1;
    }
    for (size_t k = 0; k < col; k++) {
        if (i >= len || text[i] == '\n') return -1;
        i++;
        while (i < len && ((unsigned char)text[i] & 0xC0) == 0x80) i++; /* UTF-8 continuation */
    }
    return (long)i;
}

/* Where the value of scalar n starts, and whether it is written there byte
 * for byte: a plain scalar on one line, or a quoted one without escapes. */
static qb_spec_mark line_start(const pctx *c, const yaml_node_t *n, unsigned char *exact)
{
    qb_spec_mark m = spec_mark_of(c, n);
    *exact = 0;
    const char *text = c->s->text;
    size_t len = c->s->text_len, vlen = n->data.scalar.length;
    if (n->start_mark.line != n->end_mark.line) return m;
    long at = byte_of_mark(text, len, n->start_mark.line, n->start_mark.column);
    if (at < 0) return m;
    const char *src = text + at;
    size_t room = len - (size_t)at;
    const char *v = spec_sval(n);
    for (size_t i = 0; i < vlen; i++)
        if ((unsigned char)v[i] >= 0x80) return m; /* columns count characters */
    yaml_scalar_style_t st = n->data.scalar.style;
    if (st == YAML_PLAIN_SCALAR_STYLE) {
        *exact = vlen <= room && memcmp(src, v, vlen) == 0;
    } else if (st == YAML_SINGLE_QUOTED_SCALAR_STYLE || st == YAML_DOUBLE_QUOTED_SCALAR_STYLE) {
        char q = st == YAML_SINGLE_QUOTED_SCALAR_STYLE ? '\'' : '"';
        *exact = vlen + 2 <= room && src[0] == q && memcmp(src + 1, v, vlen) == 0 &&
                 src[vlen + 1] == q;
        if (*exact) m.col++;
    }
    return m;
}

/* The canonical text of lines: comments dropped, blanks collapsed, empty
 * lines dropped, '\n' between lines. malloc'd. */
static char *canonical_text(char *const *lines, int n)
{
    size_t cap = 1;
    for (int i = 0; i < n; i++) cap += strlen(lines[i]) + 1;
    char *out = xmalloc(cap, 1);
    size_t len = 0;
    for (int i = 0; i < n; i++) {
        size_t start = len;
        int blank = 0;
        for (const char *p = lines[i]; *p && *p != '#'; p++) {
            if (*p == ' ' || *p == '\t' || *p == '\r') {
                blank = len > start;
                continue;
            }
            if (blank) out[len++] = ' ';
            blank = 0;
            out[len++] = *p;
        }
        if (len > start) out[len++] = '\n';
    }
    if (len) len--; /* no '\n' after the last line */
    out[len] = '\0';
    return out;
}

static int valid_name_char(char ch)
{
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '-' || ch == '_' || ch == '.';
}

static int parse_one(pctx *c, const yaml_node_t *k, const yaml_node_t *v, qb_spec_declared_arch *a)
{
    const char *name = spec_sval(k);
    qb_spec_mark km = spec_mark_of(c, k);
    size_t nl = strlen(name);
    int ok = nl >= 1 && nl < QB_ARCH_NAME_MAX;
    for (size_t i = 0; ok && i < nl; i++) ok = valid_name_char(name[i]);
    if (!ok)
        return QB_FAIL(c->err, "invalid architecture name \"%.64s\" at " AT "; expected 1 to %d "
                       "letters, digits, '-', '_' or '.'", name, MARK(km), QB_ARCH_NAME_MAX - 1);
    if (qb_arch_is_preset(name) || !strcmp(name, "auto")) {
        char list[256];
        spec_join(qb_arch_names, list, sizeof list);
        return QB_FAIL(c->err, "architecture \"%s\" at " AT " has the name of a preset; declare "
                       "it under another name (the presets: auto, %s)", name, MARK(km), list);
    }
    snprintf(a->name, sizeof a->name, "%s", name);
    a->mark = km;
    a->list_mark = spec_mark_of(c, v);
    char field[64];
    snprintf(field, sizeof field, "architectures.%s", name);
    static const char exp[] = "a list of layer lines (README \"Architectures\")";
    if (v->type != YAML_SEQUENCE_NODE) return spec_wrong_type(c, v, field, "", exp);
    long n = v->data.sequence.items.top - v->data.sequence.items.start;
    if (n == 0)
        return QB_FAIL(c->err, "empty list for %s at " AT "; give at least one layer", field,
                       MARK(a->list_mark));
    if (n > QB_ARCH_LINES_MAX)
        return QB_FAIL(c->err, "too many layers in %s at " AT ": %ld; at most %d", field,
                       MARK(a->list_mark), n, QB_ARCH_LINES_MAX);
    a->lines = xcalloc((size_t)n, sizeof *a->lines);
    a->line_marks = xcalloc((size_t)n, sizeof *a->line_marks);
    a->exact = xcalloc((size_t)n, 1);
    for (long i = 0; i < n; i++) {
        const yaml_node_t *item = spec_node(c, v->data.sequence.items.start[i]);
        const char *line;
        if (spec_get_scalar(c, item, field, "", "a layer line", &line)) return -1;
        qb_spec_mark im = spec_mark_of(c, item);
        if (strchr(line, '\n'))
            return QB_FAIL(c->err, "invalid %s at " AT ": a layer line holds a line break; write "
                           "one layer per list item", field, MARK(im));
        if (strlen(line) > QB_ARCH_LINE_MAX)
            return QB_FAIL(c->err, "invalid %s at " AT ": a layer line longer than %d bytes",
                           field, MARK(im), QB_ARCH_LINE_MAX);
        a->lines[i] = xstrdup(line);
        a->line_marks[i] = line_start(c, item, &a->exact[i]);
        a->n_lines = (int)i + 1;
    }
    a->text = canonical_text(a->lines, a->n_lines);
    return 0;
}

static int cmp_arch(const void *a, const void *b)
{
    return strcmp(((const qb_spec_declared_arch *)a)->name,
                  ((const qb_spec_declared_arch *)b)->name);
}

int spec_parse_archs(pctx *c, const yaml_node_t *n)
{
    qb_spec *s = c->s;
    if (n->type != YAML_MAPPING_NODE)
        return spec_wrong_type(c, n, "architectures", "", "a mapping of names to layer lists");
    if (spec_check_keys(c, n, "architectures", NULL, "architecture")) return -1;
    long k = n->data.mapping.pairs.top - n->data.mapping.pairs.start;
    s->archs = xcalloc(k ? (size_t)k : 1, sizeof *s->archs);
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        qb_spec_declared_arch *a = &s->archs[s->n_archs++];
        if (parse_one(c, spec_node(c, p->key), spec_node(c, p->value), a)) return -1;
    }
    /* by name: the settings text (the spec hash) lists them in this order */
    qsort(s->archs, s->n_archs, sizeof *s->archs, cmp_arch);
    return 0;
}

/* ---- planning and declaring ---------------------------------------------------- */

static int plan_for(const qb_spec *s, const qb_spec_declared_arch *a, const char *dataset,
                    qb_error *err)
{
    qb_spec_dataset_info di;
    QB_ASSERT(qb_spec_dataset_info_of(dataset, &di) == 0); /* the axis holds known names */
    qb_model m;
    qb_arch_where w;
    qb_error e;
    if (qb_arch_plan_lines(&m, a->name, (const char *const *)a->lines, a->n_lines, di.c, di.h,
                           di.w, di.classes, &w, &e) == 0)
        return 0;
    qb_spec_mark at = a->list_mark;
    if (w.line >= 0 && w.line < a->n_lines) {
        at = a->line_marks[w.line];
        if (a->exact[w.line] && w.col > 0) at.col += w.col;
    }
    if (!at.file) at.file = s->path;
    return QB_FAIL(err, "invalid architectures.%s at " AT ": %s (planned for dataset %s: "
                   "%dx%dx%d, %d classes)", a->name, MARK(at), e.msg, dataset, di.c, di.h, di.w,
                   di.classes);
}

int spec_check_archs(qb_spec *s, qb_error *err)
{
    const qb_spec_axis *ds = &s->axes[QB_AXIS_DATASET];
    for (size_t i = 0; i < s->n_archs; i++)
        for (uint32_t d = 0; d < ds->n; d++)
            if (plan_for(s, &s->archs[i], ds->names[d], err)) return -1;
    for (size_t i = 0; i < s->n_archs; i++) {
        const qb_spec_declared_arch *a = &s->archs[i];
        qb_error e;
        if (qb_arch_declare(a->name, a->text, &e))
            return QB_FAIL(err, "architecture \"%s\" at " AT ": %s (another spec or a model file "
                           "read by this process declared it)", a->name, MARK(a->mark), e.msg);
    }
    return 0;
}

void spec_archs_free(qb_spec *s)
{
    for (size_t i = 0; i < s->n_archs; i++) {
        qb_spec_declared_arch *a = &s->archs[i];
        for (int j = 0; j < a->n_lines; j++) free(a->lines[j]);
        free(a->lines);
        free(a->line_marks);
        free(a->exact);
        free(a->text);
    }
    free(s->archs);
    s->archs = NULL;
    s->n_archs = 0;
}
