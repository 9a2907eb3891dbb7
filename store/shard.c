/* Shards of a spec and the shard attributes of a results file (store/shard.h). */
#include "store/shard.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <hdf5.h>

#include "core/xalloc.h"
#include "store/hdf5_util.h"

/* A decimal number in [lo, hi] spanning all of s[0..len). */
static int parse_u32(const char *s, size_t len, uint32_t lo, uint32_t hi, uint32_t *out)
{
    if (len == 0 || len > 10) return -1;
    uint64_t v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    if (v < lo || v > hi) return -1;
    *out = (uint32_t)v;
    return 0;
}

int qb_shard_parse(const char *text, qb_shard *sh, qb_error *err)
{
    const char *slash = text ? strchr(text, '/') : NULL;
    uint32_t i, n;
    if (!slash || parse_u32(slash + 1, strlen(slash + 1), 1, QB_SHARD_MAX_COUNT, &n) ||
        parse_u32(text, (size_t)(slash - text), 0, QB_SHARD_MAX_COUNT, &i))
        return QB_FAIL(err, "--shard: expected INDEX/COUNT with 0 <= INDEX < COUNT <= %u "
                       "(e.g. 0/4), got \"%s\"", QB_SHARD_MAX_COUNT, text ? text : "");
    if (i >= n)
        return QB_FAIL(err, "--shard %s: the index must be below the count (shards are "
                       "numbered 0..%u)", text, n - 1);
    sh->index = i;
    sh->count = n;
    return 0;
}

int qb_shard_by_parse(const char *text, qb_shard_by *by, qb_error *err)
{
    if (text && !strcmp(text, "model")) *by = QB_SHARD_BY_MODEL;
    else if (text && !strcmp(text, "task")) *by = QB_SHARD_BY_TASK;
    else return QB_FAIL(err, "--shard-by: expected model or task, got \"%s\"", text ? text : "");
    return 0;
}

const char *qb_shard_by_name(qb_shard_by by)
{
    return by == QB_SHARD_BY_TASK ? "task" : "model";
}

uint32_t qb_shard_of(const qb_spec *s, size_t task, uint32_t count, qb_shard_by by)
{
    QB_ASSERT(task < s->n_tasks && count >= 1);
    const qb_task *t = &s->tasks[task];
    uint64_t key = by == QB_SHARD_BY_TASK ? t->id : s->models[t->model].id;
    /* the ids are already mixed (splitmix64 finaliser): every bit counts */
    return (uint32_t)(key % count);
}

void qb_shard_restrict(qb_spec *s, const qb_shard *sh)
{
    if (sh->count == 0) return;
    size_t n = s->n_tasks, k = 0, nm = 0;
    uint32_t *newpos = xmalloc(n ? n : 1, sizeof *newpos);       /* (n) old -> new or MAX */
    uint32_t *model_map = xmalloc(s->n_models ? s->n_models : 1, sizeof *model_map);
    for (size_t m = 0; m < s->n_models; m++) model_map[m] = UINT32_MAX;
    for (size_t t = 0; t < n; t++) {
        newpos[t] = qb_shard_of(s, t, sh->count, sh->by) == sh->index ? (uint32_t)k++ : UINT32_MAX;
    }
    qb_task *tasks = xmalloc(k ? k : 1, sizeof *tasks);
    qb_spec_model *models = xmalloc(s->n_models ? s->n_models : 1, sizeof *models);
    for (size_t t = 0; t < n; t++) {
        if (newpos[t] == UINT32_MAX) continue;
        qb_task tk = s->tasks[t];
        uint32_t old = tk.model;
        if (model_map[old] == UINT32_MAX) {
            model_map[old] = (uint32_t)nm;
            models[nm] = s->models[old];
            models[nm].n_tasks = 0;
            models[nm].first_task = newpos[t];
            nm++;
        }
        tk.model = model_map[old];
        models[tk.model].n_tasks++;
        tasks[newpos[t]] = tk;
    }
    uint64_t *ids = xmalloc(k ? k : 1, sizeof *ids);
    uint32_t *pos = xmalloc(k ? k : 1, sizeof *pos);
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        uint32_t p = newpos[s->sorted_pos[i]];
        if (p == UINT32_MAX) continue;
        ids[j] = s->sorted_ids[i];
        pos[j++] = p;
    }
    QB_ASSERT(j == k);
    free(s->tasks);
    free(s->models);
    free(s->sorted_ids);
    free(s->sorted_pos);
    s->tasks = tasks;
    s->n_tasks = k;
    s->models = xrealloc(models, nm ? nm : 1, sizeof *models);
    s->n_models = nm;
    s->sorted_ids = ids;
    s->sorted_pos = pos;
    free(newpos);
    free(model_map);
}

size_t qb_shard_provenance(const qb_shard *sh, qb_kv kv[3], char bufs[2][16])
{
    if (sh->count == 0) return 0;
    snprintf(bufs[0], 16, "%" PRIu32, sh->index);
    snprintf(bufs[1], 16, "%" PRIu32, sh->count);
    kv[0] = (qb_kv){"shard_index", bufs[0]};
    kv[1] = (qb_kv){"shard_count", bufs[1]};
    kv[2] = (qb_kv){"shard_by", qb_shard_by_name(sh->by)};
    return 3;
}

const char *qb_shard_text(const qb_shard *sh, char *buf, size_t n)
{
    if (sh->count == 0)
        snprintf(buf, n, "none");
    else
        snprintf(buf, n, "%" PRIu32 "/%" PRIu32 " by %s", sh->index, sh->count,
                 qb_shard_by_name(sh->by));
    return buf;
}

/* ---- reading a file's shard ------------------------------------------------ */

/* A variable-length string attribute of the root: *out malloc'd, or NULL
 * when absent. -1 if present but not a string. */
static int read_str_attr(hid_t file, const char *name, char **out, const char *path,
                         qb_error *err)
{
    *out = NULL;
    qb_h5_attr v;
    int e = qb_h5_attr_read(file, name, &v, path, err);
    if (e <= 0) return e;
    int rc = 0;
    if (v.cls != H5T_STRING || H5Tis_variable_str(v.type) <= 0)
        rc = QB_FAIL(err, "results file %s: attribute %s is not a string", path, name);
    else if (H5Tget_cset(v.type) != H5T_CSET_UTF8 || v.n_points != 1) /* as qblind writes them */
        rc = QB_FAIL(err, "results file %s: cannot read attribute %s", path, name);
    else
        *out = xstrdup(v.s);
    qb_h5_attr_free(&v);
    return rc;
}

int qb_shard_read_file(const char *path, qb_shard *sh, uint64_t *spec_hash, char **spec_text,
                       qb_error *err)
{
    memset(sh, 0, sizeof *sh);
    if (spec_text) *spec_text = NULL;
    size_t counts[QB_STATUS_COUNT];
    uint64_t hash = 0;
    /* checks that it is a qblind results file, names it otherwise */
    if (qb_results_count(path, counts, &hash, err)) return -1;
    if (spec_hash) *spec_hash = hash;
    qb_h5_quiet q;
    qb_h5_quiet_begin(&q);
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    char *idx = NULL, *cnt = NULL, *by = NULL, *text = NULL;
    int rc = -1;
    if (f < 0) {
        QB_FAIL(err, "results file %s: cannot open it", path);
        goto out;
    }
    if (read_str_attr(f, "shard_index", &idx, path, err) ||
        read_str_attr(f, "shard_count", &cnt, path, err) ||
        read_str_attr(f, "shard_by", &by, path, err) ||
        (spec_text && read_str_attr(f, "spec_text", &text, path, err)))
        goto out;
    if (spec_text && !text) {
        QB_FAIL(err, "results file %s has no spec_text attribute", path);
        goto out;
    }
    if (idx || cnt || by) {
        qb_error e2;
        if (!idx || !cnt || !by ||
            parse_u32(cnt, strlen(cnt), 1, QB_SHARD_MAX_COUNT, &sh->count) ||
            parse_u32(idx, strlen(idx), 0, sh->count - 1, &sh->index) ||
            qb_shard_by_parse(by, &sh->by, &e2)) {
            QB_FAIL(err, "results file %s: malformed shard attributes (shard_index \"%s\", "
                    "shard_count \"%s\", shard_by \"%s\")", path, idx ? idx : "(none)",
                    cnt ? cnt : "(none)", by ? by : "(none)");
            memset(sh, 0, sizeof *sh);
            goto out;
        }
    }
    if (spec_text) {
        *spec_text = text;
        text = NULL;
    }
    rc = 0;
out:
    if (f >= 0) H5Fclose(f);
    free(idx);
    free(cnt);
    free(by);
    free(text);
    qb_h5_quiet_end(&q);
    return rc;
}

int qb_shard_check_file(const char *path, const qb_shard *sh, qb_error *err)
{
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT) return 0;
        return QB_FAIL(err, "results file %s: %s", path, strerror(errno));
    }
    qb_shard have;
    if (qb_shard_read_file(path, &have, NULL, NULL, err)) return -1;
    if (have.count == sh->count &&
        (sh->count == 0 || (have.index == sh->index && have.by == sh->by)))
        return 0;
    char a[64], b[64];
    qb_shard_text(&have, a, sizeof a);
    qb_shard_text(sh, b, sizeof b);
    if (have.count == 0)
        return QB_FAIL(err, "results file %s holds the whole spec, not a shard; this run is shard "
                       "%s: write the shard to its own file", path, b);
    if (sh->count == 0)
        return QB_FAIL(err, "results file %s holds shard %s of a sweep; resume it with "
                       "--shard %" PRIu32 "/%" PRIu32 " --shard-by %s, or combine the shards "
                       "with `qblind merge`", path, a, have.index, have.count,
                       qb_shard_by_name(have.by));
    return QB_FAIL(err, "results file %s holds shard %s, this run is shard %s: each shard "
                   "writes its own file", path, a, b);
}
