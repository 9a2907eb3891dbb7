/* Spec expansion (qb_spec_expand, jobs/spec.h): from the parsed axis lists,
 * exclude and include entries to the task table, its models, ids, the
 * sorted-id index and the spec hash. One function per phase, run in order
 * by qb_spec_expand:
 *
 *   include_sizes     refuse a huge include entry before expanding anything
 *   include_values    complete the value tables with what only include names
 *   product_size      the cartesian product's size, against QB_SPEC_MAX_TASKS
 *   qb_spec_resolve   every table value to what runs it (jobs/spec_resolve.c)
 *   exclude_rows      per axis and value, which exclude entries name it
 *   add_product       the product minus exclude (dataset outermost)
 *   add_include       include tuples that are not tasks yet
 *   assign_models     distinct (dataset, seed, trigger), in order of first use
 *   model_ids, task_ids, sorted_index, spec_hash   (jobs/identity.c texts) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/sort.h"
#include "core/xalloc.h"
#include "jobs/identity.h"
#include "jobs/spec.h"

/* ---- helpers ------------------------------------------------------------------ */

/* Open addressing over uint32 indices; the caller compares keys. */
typedef struct idxtab {
    uint32_t *slot; /* UINT32_MAX: empty */
    size_t mask;
} idxtab;

static void idxtab_init(idxtab *t, size_t expected)
{
    size_t cap = 16;
    while (cap < 2 * expected) cap *= 2;
    t->slot = xmalloc(cap, sizeof *t->slot);
    memset(t->slot, 0xff, cap * sizeof *t->slot);
    t->mask = cap - 1;
}

static uint64_t mix3(uint64_t a, uint64_t b, uint64_t c)
{
    return qb_hash_finish(a * 0x9e3779b97f4a7c15ull ^ qb_hash_finish(b ^ (c << 32)));
}

typedef struct inc_tuples {
    uint32_t n[QB_AXIS_COUNT];
    uint32_t *idx[QB_AXIS_COUNT];
} inc_tuples;

static int cmp_span(const void *a, const void *b)
{
    const qb_seed_span *x = a, *y = b;
    return (x->lo > y->lo) - (x->lo < y->lo);
}

static uint32_t find_name(const qb_spec_axis *ax, const char *name)
{
    for (uint32_t i = 0; i < ax->n; i++)
        if (!strcmp(ax->names[i], name)) return i;
    return UINT32_MAX;
}

/* seed -> table index, for include seeds */
static uint32_t seed_find(const qb_spec_axis *ax, const idxtab *t, uint64_t v, size_t *slot)
{
    size_t i = (size_t)qb_hash_finish(v) & t->mask;
    while (t->slot[i] != UINT32_MAX && ax->seeds[t->slot[i]] != v) i = (i + 1) & t->mask;
    *slot = i;
    return t->slot[i];
}

/* Exclude matching (step 3): for every axis and table value a row of
 * x->xw words, bit e set when exclude entry e names that value or leaves the
 * axis out. A tuple is excluded when the AND of its six rows is not zero, so
 * a task costs xw words (entries / 64), never entries x axis size; the seed
 * axis has a row per class of seeds no entry boundary separates, so its
 * rows do not grow with the seed range. */
typedef struct xrows {
    size_t w;                        /* words per row: ceil(n_exclude / 64) */
    uint64_t *row[QB_AXIS_COUNT];    /* (n_rows[a] * w) */
    uint32_t *seed_class;            /* (seed table) row of each seed */
} xrows;

static const uint64_t *xrow(const xrows *r, int a, uint32_t v)
{
    return r->row[a] + (size_t)(a == QB_AXIS_SEED ? r->seed_class[v] : v) * r->w;
}

/* acc = prev AND the row of value v of axis a; nonzero if any bit is left */
static int xrow_and(const xrows *r, int a, uint32_t v, const uint64_t *prev, uint64_t *acc)
{
    const uint64_t *row = xrow(r, a, v);
    uint64_t any = 0;
    for (size_t k = 0; k < r->w; k++) any |= acc[k] = prev[k] & row[k];
    return any != 0;
}

static int excluded(const xrows *r, const uint32_t *i, uint64_t *acc)
{
    memcpy(acc, xrow(r, 0, i[0]), r->w * sizeof *acc);
    for (int a = 1; a < QB_AXIS_COUNT; a++)
        if (!xrow_and(r, a, i[a], acc, acc)) return 0;
    return 1;
}

static void set_tuple(qb_task *t, const uint32_t *i)
{
    memset(t, 0, sizeof *t);
    t->dataset = (uint16_t)i[QB_AXIS_DATASET];
    t->seed = i[QB_AXIS_SEED];
    t->trigger = (uint16_t)i[QB_AXIS_TRIGGER];
    t->precision = (uint16_t)i[QB_AXIS_PRECISION];
    t->mitigation = (uint16_t)i[QB_AXIS_MITIGATION];
    t->defense = (uint16_t)i[QB_AXIS_DEFENSE];
}

static int same_tuple(const qb_task *t, const uint32_t *i)
{
    for (int a = 0; a < QB_AXIS_COUNT; a++)
        if (qb_task_index(t, a) != i[a]) return 0;
    return 1;
}

/* Where the product's size comes from, for messages: the largest given axis. */
static qb_spec_mark largest_axis(const qb_spec *s, int *axis)
{
    int best = QB_AXIS_DATASET;
    for (int a = 0; a < QB_AXIS_COUNT; a++)
        if (s->axes[a].n_listed > s->axes[best].n_listed) best = a;
    *axis = best;
    qb_spec_mark m = s->axes[best].mark;
    if (!m.file) {
        m.file = s->path;
        m.line = m.col = 1;
    }
    return m;
}


/* The expansion's scratch state, freed by expand_free. */
typedef struct expand {
    qb_spec *s;
    qb_error *err;
    inc_tuples *inc;        /* (n_include) include entries as table indices */
    xrows xr;               /* exclude rows (n_exclude > 0) */
    uint64_t n_product;     /* saturates at UINT64_MAX / 2 */
    uint64_t n_inc_total;   /* tuples the include entries name */
    uint64_t n_inc_seeds;   /* seeds the include entries name */
    qb_u64_pos *ids;        /* (n_tasks) task id, position */
} expand;

static void expand_free(expand *x)
{
    for (size_t e = 0; e < x->s->n_include; e++)
        for (int a = 0; a < QB_AXIS_COUNT; a++) free(x->inc[e].idx[a]);
    free(x->inc);
    for (int a = 0; a < QB_AXIS_COUNT; a++) free(x->xr.row[a]);
    free(x->xr.seed_class);
    free(x->ids);
}

/* 1. include sizes first, so a huge entry is refused before anything is
 *    expanded */
static int include_sizes(expand *x)
{
    const qb_spec *s = x->s;
    for (size_t e = 0; e < s->n_include; e++) {
        const qb_spec_filter *f = &s->include[e];
        uint64_t count = 1;
        for (int a = 0; a < QB_AXIS_COUNT; a++) {
            uint64_t k = f->n[a];
            if (a == QB_AXIS_SEED) {
                k = 0;
                for (uint32_t j = 0; j < f->n[a]; j++) k += f->spans[j].hi - f->spans[j].lo;
                x->n_inc_seeds += k;
            }
            count = k && count > QB_SPEC_MAX_TASKS / k ? (uint64_t)QB_SPEC_MAX_TASKS + 1 : count * k;
        }
        x->n_inc_total += count;
        if (count > QB_SPEC_MAX_TASKS || x->n_inc_total > QB_SPEC_MAX_TASKS)
            return QB_FAIL(x->err, "include entry %zu at %s:%d:%d brings the include entries to more "
                                   "than %u tasks; at most %u are allowed",
                           e + 1, f->mark.file, f->mark.line, f->mark.col, QB_SPEC_MAX_TASKS,
                           QB_SPEC_MAX_TASKS);
    }
    return 0;
}

/* An include entry's seeds as seed-table indices, appending new seeds
 * (the table has room for every include seed: it never moves here). */
static void include_seeds(qb_spec_axis *ax, idxtab *seedtab, const qb_spec_filter *f,
                          inc_tuples *t)
{
    uint64_t k = 0;
    for (uint32_t j = 0; j < f->n[QB_AXIS_SEED]; j++) k += f->spans[j].hi - f->spans[j].lo;
    t->idx[QB_AXIS_SEED] = xmalloc((size_t)k, sizeof(uint32_t));
    for (uint32_t j = 0; j < f->n[QB_AXIS_SEED]; j++)
        for (uint64_t v = f->spans[j].lo; v < f->spans[j].hi; v++) {
            size_t slot;
            uint32_t idx = seed_find(ax, seedtab, v, &slot);
            if (idx == UINT32_MAX) {
                ax->seeds[ax->n] = v;
                idx = seedtab->slot[slot] = ax->n++;
            }
            t->idx[QB_AXIS_SEED][t->n[QB_AXIS_SEED]++] = idx;
        }
}

/* An include entry's values of a named axis as table indices, appending
 * new values. */
static int include_names(expand *x, size_t e, int a)
{
    const qb_spec_filter *f = &x->s->include[e];
    qb_spec_axis *ax = &x->s->axes[a];
    inc_tuples *t = &x->inc[e];
    t->idx[a] = xmalloc(f->n[a], sizeof(uint32_t));
    for (uint32_t j = 0; j < f->n[a]; j++) {
        uint32_t idx = find_name(ax, f->names[a][j]);
        if (idx == UINT32_MAX) {
            if (ax->n >= UINT16_MAX)
                return QB_FAIL(x->err, "include entry %zu at %s:%d:%d: more than %u %s values",
                               e + 1, f->mark.file, f->mark.line, f->mark.col, UINT16_MAX,
                               qb_axis_name((qb_axis)a));
            ax->names = xrealloc(ax->names, (size_t)ax->n + 1, sizeof *ax->names);
            memcpy(ax->names[ax->n], f->names[a][j], QB_AXIS_VALUE_MAX);
            idx = ax->n++;
        }
        t->idx[a][t->n[a]++] = idx;
    }
    return 0;
}

/* 1b. the include entries' values into the value tables */
static int include_values(expand *x)
{
    qb_spec *s = x->s;
    qb_spec_axis *sx = &s->axes[QB_AXIS_SEED];
    if (!s->n_include) return 0;
    idxtab seedtab;
    sx->seeds = xrealloc(sx->seeds, (size_t)sx->n + (size_t)x->n_inc_seeds, sizeof *sx->seeds);
    idxtab_init(&seedtab, (size_t)sx->n + (size_t)x->n_inc_seeds);
    for (uint32_t i = 0; i < sx->n; i++) {
        size_t slot;
        if (seed_find(sx, &seedtab, sx->seeds[i], &slot) == UINT32_MAX) seedtab.slot[slot] = i;
    }
    int rc = 0;
    for (size_t e = 0; e < s->n_include && rc == 0; e++)
        for (int a = 0; a < QB_AXIS_COUNT && rc == 0; a++) {
            if (a == QB_AXIS_SEED)
                include_seeds(sx, &seedtab, &s->include[e], &x->inc[e]);
            else
                rc = include_names(x, e, a);
        }
    free(seedtab.slot);
    return rc;
}

/* 2. the product's size */
static int product_size(expand *x)
{
    const qb_spec *s = x->s;
    x->n_product = 1;
    for (int a = 0; a < QB_AXIS_COUNT; a++) {
        uint64_t k = s->axes[a].n_listed;
        if (a != QB_AXIS_SEED && k > UINT16_MAX)
            return QB_FAIL(x->err, "%s at %s:%d:%d has %llu values; at most %u are allowed",
                           qb_axis_name((qb_axis)a), s->axes[a].mark.file, s->axes[a].mark.line,
                           s->axes[a].mark.col, (unsigned long long)k, UINT16_MAX);
        x->n_product = x->n_product > UINT64_MAX / 2 / k ? UINT64_MAX / 2 : x->n_product * k; /* saturates */
    }
    if (x->n_product + x->n_inc_total <= QB_SPEC_MAX_TASKS) return 0;
    int big;
    qb_spec_mark m = largest_axis(s, &big);
    char total[48];
    if (x->n_product == UINT64_MAX / 2)
        snprintf(total, sizeof total, "more than %llu", (unsigned long long)(UINT64_MAX / 2));
    else
        snprintf(total, sizeof total, "%llu", (unsigned long long)(x->n_product + x->n_inc_total));
    return QB_FAIL(x->err, "the spec expands to %s tasks; at most %u are allowed (the largest axis "
                           "is %s at %s:%d:%d with %u values)",
                   total, QB_SPEC_MAX_TASKS, qb_axis_name((qb_axis)big), m.file, m.line, m.col,
                   s->axes[big].n_listed);
}

/* An exclude entry's seeds as merged, sorted intervals; returns their count. */
static uint32_t merged_spans(const qb_spec_filter *f, qb_seed_span **out)
{
    uint32_t nf = f->n[QB_AXIS_SEED];
    *out = NULL;
    if (nf == 0) return 0; /* the entry leaves seed out */
    qb_seed_span *sp = xmalloc(nf, sizeof *sp);
    memcpy(sp, f->spans, nf * sizeof *sp);
    qsort(sp, nf, sizeof *sp, cmp_span);
    uint32_t k = 0;
    for (uint32_t j = 0; j < nf; j++) {
        if (k && sp[j].lo <= sp[k - 1].hi) {
            if (sp[j].hi > sp[k - 1].hi) sp[k - 1].hi = sp[j].hi;
        } else {
            sp[k++] = sp[j];
        }
    }
    *out = sp;
    return k;
}

/* how many of b[0..n) are <= v */
static size_t count_le(const uint64_t *b, size_t n, uint64_t v)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (b[mid] <= v)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The seed axis's rows: the entries' span ends b (sorted, distinct) cut the
 * seeds into classes (class c: b[c-1] <= seed < b[c]); a row per class,
 * built by toggling each entry's bit where its spans start and stop. */
static void seed_rows(expand *x, qb_seed_span **spans, const uint32_t *nsp, uint64_t *b, size_t nb)
{
    const qb_spec *s = x->s;
    xrows *r = &x->xr;
    const qb_spec_axis *ax = &s->axes[QB_AXIS_SEED];
    uint64_t *row = r->row[QB_AXIS_SEED];
    for (size_t e = 0; e < s->n_exclude; e++)
        for (uint32_t j = 0; j < nsp[e]; j++) {
            uint64_t bit = 1ull << (e % 64);
            row[count_le(b, nb, spans[e][j].lo) * r->w + e / 64] ^= bit;
            row[count_le(b, nb, spans[e][j].hi) * r->w + e / 64] ^= bit;
        }
    for (size_t c = 1; c <= nb; c++)
        for (size_t k = 0; k < r->w; k++) row[c * r->w + k] ^= row[(c - 1) * r->w + k];
    for (size_t e = 0; e < s->n_exclude; e++)
        if (s->exclude[e].n[QB_AXIS_SEED] == 0)
            for (size_t c = 0; c <= nb; c++) row[c * r->w + e / 64] |= 1ull << (e % 64);
    r->seed_class = xmalloc(ax->n ? ax->n : 1, sizeof *r->seed_class);
    for (uint32_t i = 0; i < ax->n; i++) r->seed_class[i] = (uint32_t)count_le(b, nb, ax->seeds[i]);
}

/* 3. the exclude rows; their memory and the matching work are budgeted
 *    before anything is built */
static int exclude_rows(expand *x)
{
    const qb_spec *s = x->s;
    xrows *r = &x->xr;
    const size_t nx = s->n_exclude;
    r->w = (nx + 63) / 64;
    qb_seed_span **spans = xcalloc(nx, sizeof *spans);
    uint32_t *nsp = xcalloc(nx, sizeof *nsp);
    size_t nb = 0;
    for (size_t e = 0; e < nx; e++) {
        nsp[e] = merged_spans(&s->exclude[e], &spans[e]);
        nb += 2 * (size_t)nsp[e];
    }
    uint64_t *b = xmalloc(nb ? nb : 1, sizeof *b);
    nb = 0;
    for (size_t e = 0; e < nx; e++)
        for (uint32_t j = 0; j < nsp[e]; j++) {
            b[nb++] = spans[e][j].lo;
            b[nb++] = spans[e][j].hi;
        }
    qsort(b, nb, sizeof *b, qb_cmp_u64);
    size_t u = 0;
    for (size_t j = 0; j < nb; j++)
        if (!u || b[j] != b[u - 1]) b[u++] = b[j];
    nb = u;
    uint64_t n_rows = nb + 1, tasks = x->n_product + x->n_inc_total;
    for (int a = 0; a < QB_AXIS_COUNT; a++)
        if (a != QB_AXIS_SEED) n_rows += s->axes[a].n;
    int rc = 0;
    if (n_rows * r->w > QB_SPEC_MAX_XWORDS || tasks * r->w > QB_SPEC_MAX_XWORK) {
        const qb_spec_mark m = s->exclude[0].mark;
        rc = QB_FAIL(x->err, "the %zu exclude entries (the first at %s:%d:%d) are too many to match: "
                             "%llu value classes and %llu tasks against them take %llu and %llu "
                             "words; at most %llu and %llu are allowed",
                     nx, m.file, m.line, m.col, (unsigned long long)n_rows,
                     (unsigned long long)tasks, (unsigned long long)(n_rows * r->w),
                     (unsigned long long)(tasks * r->w), (unsigned long long)QB_SPEC_MAX_XWORDS,
                     (unsigned long long)QB_SPEC_MAX_XWORK);
    }
    if (rc == 0) {
        r->row[QB_AXIS_SEED] = xcalloc((nb + 1) * r->w, sizeof(uint64_t));
        seed_rows(x, spans, nsp, b, nb);
    }
    for (int a = 0; a < QB_AXIS_COUNT && rc == 0; a++) {
        if (a == QB_AXIS_SEED) continue;
        const qb_spec_axis *ax = &s->axes[a];
        uint64_t *row = r->row[a] = xcalloc((ax->n ? ax->n : 1) * r->w, sizeof(uint64_t));
        for (size_t e = 0; e < nx; e++) {
            const qb_spec_filter *f = &s->exclude[e];
            uint64_t bit = 1ull << (e % 64);
            if (f->n[a] == 0)
                for (uint32_t v = 0; v < ax->n; v++) row[v * r->w + e / 64] |= bit;
            for (uint32_t j = 0; j < f->n[a]; j++) {
                uint32_t idx = find_name(ax, f->names[a][j]);
                if (idx != UINT32_MAX) row[idx * r->w + e / 64] |= bit;
            }
        }
    }
    for (size_t e = 0; e < nx; e++) free(spans[e]);
    free(spans);
    free(nsp);
    free(b);
    return rc;
}

/* 4. the product minus exclude, dataset outermost: a model's tasks (same
 *    dataset, seed, trigger) are neighbours. s->tasks has room for the
 *    include tuples too. */
static void add_product(expand *x)
{
    qb_spec *s = x->s;
    const size_t nx = s->n_exclude, w = x->xr.w;
    size_t cap = (size_t)(x->n_product + x->n_inc_total), n = 0;
    s->tasks = xmalloc(cap ? cap : 1, sizeof *s->tasks);
    uint32_t nl[QB_AXIS_COUNT], i[QB_AXIS_COUNT];
    for (int a = 0; a < QB_AXIS_COUNT; a++) nl[a] = s->axes[a].n_listed;
    /* acc + a*w: the entries that match the tuple's first a+1 values; a
     * prefix no entry matches skips the rows below it */
    uint64_t *acc = xmalloc(nx ? QB_AXIS_COUNT * w : 1, sizeof *acc);
    int live[QB_AXIS_COUNT] = {0};
    for (i[0] = 0; i[0] < nl[0]; i[0]++) {
        if (nx) {
            memcpy(acc, xrow(&x->xr, 0, i[0]), w * sizeof *acc);
            live[0] = 0;
            for (size_t k = 0; k < w; k++) live[0] |= acc[k] != 0;
        }
        for (i[1] = 0; i[1] < nl[1]; i[1]++) {
            if (nx) live[1] = live[0] && xrow_and(&x->xr, 1, i[1], acc, acc + w);
            for (i[2] = 0; i[2] < nl[2]; i[2]++) {
                if (nx) live[2] = live[1] && xrow_and(&x->xr, 2, i[2], acc + w, acc + 2 * w);
                for (i[3] = 0; i[3] < nl[3]; i[3]++) {
                    if (nx) live[3] = live[2] && xrow_and(&x->xr, 3, i[3], acc + 2 * w, acc + 3 * w);
                    for (i[4] = 0; i[4] < nl[4]; i[4]++) {
                        if (nx) live[4] = live[3] && xrow_and(&x->xr, 4, i[4], acc + 3 * w, acc + 4 * w);
                        for (i[5] = 0; i[5] < nl[5]; i[5]++) {
                            if (nx && live[4] && xrow_and(&x->xr, 5, i[5], acc + 4 * w, acc + 5 * w))
                                continue;
                            set_tuple(&s->tasks[n++], i);
                        }
                    }
                }
            }
        }
    }
    free(acc);
    s->n_tasks = n;
}

/* 5. include: tuples not already tasks (a listed, not excluded tuple is
 *    one already); then the task table is final */
static int add_include(expand *x)
{
    qb_spec *s = x->s;
    const size_t ni = s->n_include, nx = s->n_exclude;
    size_t n = s->n_tasks;
    uint32_t nl[QB_AXIS_COUNT], i[QB_AXIS_COUNT];
    for (int a = 0; a < QB_AXIS_COUNT; a++) nl[a] = s->axes[a].n_listed;
    idxtab inctab = {NULL, 0};
    if (ni) idxtab_init(&inctab, (size_t)x->n_inc_total);
    uint64_t *acc = xmalloc(x->xr.w ? x->xr.w : 1, sizeof *acc);
    for (size_t e = 0; e < ni; e++) {
        const inc_tuples *inc = &x->inc[e];
        uint32_t k[QB_AXIS_COUNT] = {0};
        for (;;) {
            int listed = 1;
            for (int a = 0; a < QB_AXIS_COUNT; a++) {
                i[a] = inc->idx[a][k[a]];
                listed &= i[a] < nl[a];
            }
            if (!(listed && !(nx && excluded(&x->xr, i, acc)))) {
                uint64_t h = mix3((uint64_t)i[0] << 32 | i[2], (uint64_t)i[3] << 32 | i[4],
                                  (uint64_t)i[5] << 32 | i[1]);
                size_t sl = (size_t)h & inctab.mask;
                while (inctab.slot[sl] != UINT32_MAX && !same_tuple(&s->tasks[inctab.slot[sl]], i))
                    sl = (sl + 1) & inctab.mask;
                if (inctab.slot[sl] == UINT32_MAX) {
                    inctab.slot[sl] = (uint32_t)n;
                    set_tuple(&s->tasks[n++], i);
                }
            }
            int a = QB_AXIS_COUNT - 1;
            while (a >= 0 && ++k[a] == inc->n[a]) k[a--] = 0;
            if (a < 0) break;
        }
    }
    free(inctab.slot);
    free(acc);
    s->n_tasks = n;
    if (n == 0) {
        QB_ASSERT(nx > 0); /* every axis has a value: only exclude empties the product */
        const qb_spec_mark m = s->exclude[0].mark;
        return QB_FAIL(x->err, "the spec has no tasks: the exclude entries (the first at %s:%d:%d) "
                               "remove every task of the product (%llu)",
                       m.file, m.line, m.col, (unsigned long long)x->n_product);
    }
    s->tasks = xrealloc(s->tasks, n, sizeof *s->tasks);
    return 0;
}

/* The model slot of (dataset, seed, trigger) in modtab: its index, or an
 * empty slot (UINT32_MAX) where it goes. */
static size_t model_slot(const qb_spec *s, const idxtab *modtab, const qb_task *tk)
{
    size_t sl = (size_t)mix3(tk->dataset, tk->seed, tk->trigger) & modtab->mask;
    for (;;) {
        uint32_t mi = modtab->slot[sl];
        if (mi == UINT32_MAX) return sl;
        const qb_spec_model *mm = &s->models[mi];
        if (mm->dataset == tk->dataset && mm->seed == tk->seed && mm->trigger == tk->trigger)
            return sl;
        sl = (sl + 1) & modtab->mask;
    }
}

/* 6. models: distinct (dataset, seed, trigger), in order of first use */
static void assign_models(qb_spec *s)
{
    const size_t n = s->n_tasks;
    uint64_t bound = (uint64_t)s->axes[QB_AXIS_DATASET].n * s->axes[QB_AXIS_SEED].n *
                     s->axes[QB_AXIS_TRIGGER].n;
    idxtab modtab;
    idxtab_init(&modtab, bound < n ? (size_t)bound : n);
    size_t mcap = 1024;
    s->models = xmalloc(mcap, sizeof *s->models);
    uint32_t last = UINT32_MAX;
    for (size_t t = 0; t < n; t++) {
        qb_task *tk = &s->tasks[t];
        const qb_spec_model *lm = last != UINT32_MAX ? &s->models[last] : NULL;
        if (!lm || lm->dataset != tk->dataset || lm->seed != tk->seed || lm->trigger != tk->trigger) {
            size_t sl = model_slot(s, &modtab, tk);
            if (modtab.slot[sl] == UINT32_MAX) {
                if (s->n_models == mcap) {
                    mcap *= 2;
                    s->models = xrealloc(s->models, mcap, sizeof *s->models);
                }
                qb_spec_model *nm = &s->models[s->n_models];
                memset(nm, 0, sizeof *nm);
                nm->dataset = tk->dataset;
                nm->seed = tk->seed;
                nm->trigger = tk->trigger;
                nm->first_task = (uint32_t)t;
                modtab.slot[sl] = (uint32_t)s->n_models++;
            }
            last = modtab.slot[sl];
        }
        tk->model = last;
        s->models[last].n_tasks++;
    }
    s->models = xrealloc(s->models, s->n_models, sizeof *s->models);
    free(modtab.slot);
}

/* 7. model ids: the hash state after each (dataset, trigger) prefix, then
 *    the seed line per model */
static void model_ids(qb_spec *s)
{
    size_t nd = s->axes[QB_AXIS_DATASET].n, nt = s->axes[QB_AXIS_TRIGGER].n;
    uint64_t *pstate = xmalloc(nd * nt, sizeof *pstate);
    uint8_t *have = xcalloc(nd * nt, 1);
    for (size_t m = 0; m < s->n_models; m++) {
        qb_spec_model *mm = &s->models[m];
        size_t k = (size_t)mm->dataset * nt + mm->trigger;
        if (!have[k]) {
            pstate[k] = qb_id_model_prefix(s, mm->dataset, mm->trigger);
            have[k] = 1;
        }
        mm->id = qb_id_model(pstate[k], s->axes[QB_AXIS_SEED].seeds[mm->seed]);
    }
    free(have);
    free(pstate);
}

/* 8. task ids: the state after the model line, then three short lines
 *    (built once per value) */
static void task_ids(expand *x)
{
    qb_spec *s = x->s;
    static const qb_axis line_axes[3] = {QB_AXIS_PRECISION, QB_AXIS_MITIGATION, QB_AXIS_DEFENSE};
    char **tline[QB_AXIS_COUNT] = {NULL};
    size_t *tlen[QB_AXIS_COUNT] = {NULL};
    uint64_t *mstate = xmalloc(s->n_models, sizeof *mstate);
    for (size_t m = 0; m < s->n_models; m++) mstate[m] = qb_id_task_prefix(s->models[m].id);
    for (int j = 0; j < 3; j++) {
        qb_axis a = line_axes[j];
        tline[a] = xcalloc(s->axes[a].n, sizeof(char *));
        tlen[a] = xcalloc(s->axes[a].n, sizeof(size_t));
        for (uint32_t v = 0; v < s->axes[a].n; v++) tline[a][v] = qb_id_task_line(s, a, v, &tlen[a][v]);
    }
    x->ids = xmalloc(s->n_tasks, sizeof *x->ids);
    for (size_t t = 0; t < s->n_tasks; t++) {
        qb_task *tk = &s->tasks[t];
        uint64_t h = mstate[tk->model];
        h = qb_hash_bytes(h, tline[QB_AXIS_PRECISION][tk->precision], tlen[QB_AXIS_PRECISION][tk->precision]);
        h = qb_hash_bytes(h, tline[QB_AXIS_MITIGATION][tk->mitigation], tlen[QB_AXIS_MITIGATION][tk->mitigation]);
        h = qb_hash_bytes(h, tline[QB_AXIS_DEFENSE][tk->defense], tlen[QB_AXIS_DEFENSE][tk->defense]);
        tk->id = qb_hash_finish(h);
        x->ids[t].v = tk->id;
        x->ids[t].pos = (uint32_t)t;
    }
    for (int j = 0; j < 3; j++) {
        qb_axis a = line_axes[j];
        for (uint32_t v = 0; v < s->axes[a].n; v++) free(tline[a][v]);
        free(tline[a]);
        free(tlen[a]);
    }
    free(mstate);
}

/* 9. the sorted-id index; equal ids of distinct tuples would break resume */
static int sorted_index(expand *x)
{
    qb_spec *s = x->s;
    const size_t n = s->n_tasks;
    qb_u64_pos *ids = x->ids;
    qsort(ids, n, sizeof *ids, qb_cmp_u64_pos);
    for (size_t t = 1; t < n; t++)
        if (ids[t].v == ids[t - 1].v) {
            char a[256], b[256];
            qb_spec_task_tuple(s, ids[t - 1].pos, a, sizeof a);
            qb_spec_task_tuple(s, ids[t].pos, b, sizeof b);
            return QB_FAIL(x->err, "%s: tasks (%s) and (%s) have the same id %016llx; please report this",
                           s->path, a, b, (unsigned long long)ids[t].v);
        }
    s->sorted_ids = xmalloc(n, sizeof *s->sorted_ids);
    s->sorted_pos = xmalloc(n, sizeof *s->sorted_pos);
    for (size_t t = 0; t < n; t++) {
        s->sorted_ids[t] = ids[t].v;
        s->sorted_pos[t] = ids[t].pos;
    }
    return 0;
}

/* 10. the spec hash: settings, task count, the sorted ids (little-endian) */
static void spec_hash(qb_spec *s)
{
    uint64_t h = qb_id_spec_prefix(s, s->n_tasks);
    for (size_t t = 0; t < s->n_tasks; t++) {
        unsigned char le[8];
        for (int b = 0; b < 8; b++) le[b] = (unsigned char)(s->sorted_ids[t] >> (8 * b));
        h = qb_hash_bytes(h, le, 8);
    }
    s->hash = qb_hash_finish(h);
}

int qb_spec_expand(qb_spec *s, qb_error *err)
{
    expand x;
    memset(&x, 0, sizeof x);
    x.s = s;
    x.err = err;
    x.inc = xcalloc(s->n_include ? s->n_include : 1, sizeof *x.inc);
    int rc = include_sizes(&x);
    if (rc == 0) rc = include_values(&x);
    if (rc == 0) rc = product_size(&x);
    if (rc == 0) rc = qb_spec_resolve(s, err);
    if (rc == 0 && s->n_exclude) rc = exclude_rows(&x);
    if (rc == 0) {
        add_product(&x);
        rc = add_include(&x);
    }
    if (rc == 0) {
        assign_models(s);
        model_ids(s);
        task_ids(&x);
        rc = sorted_index(&x);
    }
    if (rc == 0) spec_hash(s);
    expand_free(&x);
    return rc;
}
