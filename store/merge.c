/* Merging shard results files (store/merge.h). */
#include "store/merge.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hdf5.h>

#include "core/file.h"
#include "core/xalloc.h"
#include "store/pending_row.h"

void qb_merge_report_free(qb_merge_report *rep)
{
    if (!rep) return;
    free(rep->missing);
    free(rep->pending_in);
    rep->missing = NULL;
    rep->pending_in = NULL;
}

static int pending_fill(void *ctx, size_t index, qb_task_row *row, qb_error *err)
{
    (void)err;
    qb_spec_pending_row(ctx, index, row);
    return 0;
}

/* 16 lowercase hex digits (how details are named) into *id. */
static int parse_task_hex(const char *name, uint64_t *id)
{
    if (strlen(name) != 16) return -1;
    uint64_t v = 0;
    for (int i = 0; i < 16; i++) {
        char c = name[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v << 4 | (uint64_t)d;
    }
    *id = v;
    return 0;
}

/* Name of link i of group g (malloc'd), or NULL. */
static char *link_name(hid_t g, hsize_t i)
{
    ssize_t len = H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, NULL, 0, H5P_DEFAULT);
    if (len < 0) return NULL;
    char *name = xmalloc((size_t)len + 1, 1);
    if (H5Lget_name_by_idx(g, ".", H5_INDEX_NAME, H5_ITER_INC, i, name, (size_t)len + 1,
                           H5P_DEFAULT) < 0) {
        free(name);
        return NULL;
    }
    return name;
}

/* Copy the /details arrays of `path` that belong to tasks this file
 * finished (owner[idx] == file) into the output. */
static int copy_details(const char *path, const qb_spec *s, const uint32_t *owner, uint32_t file,
                        qb_results *out, qb_merge_report *rep, qb_error *err)
{
    hid_t f = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT), d = H5I_INVALID_HID;
    if (f < 0) return QB_FAIL(err, "shard file %s: cannot open it to read /details", path);
    int rc = -1;
    htri_t has = H5Lexists(f, "details", H5P_DEFAULT);
    if (has <= 0) {
        rc = has == 0 ? 0 : QB_FAIL(err, "shard file %s: cannot look up /details", path);
        goto out;
    }
    H5G_info_t gi;
    if ((d = H5Gopen2(f, "details", H5P_DEFAULT)) < 0 || H5Gget_info(d, &gi) < 0) {
        QB_FAIL(err, "shard file %s: /details is not a readable group", path);
        goto out;
    }
    for (hsize_t i = 0; i < gi.nlinks; i++) {
        char *name = link_name(d, i);
        hid_t g = name ? H5Gopen2(d, name, H5P_DEFAULT) : H5I_INVALID_HID;
        H5G_info_t ni;
        if (g < 0 || H5Gget_info(g, &ni) < 0) {
            QB_FAIL(err, "shard file %s: /details/%s is not a readable group", path,
                    name ? name : "?");
            if (g >= 0) H5Gclose(g);
            free(name);
            goto out;
        }
        int bad = 0;
        for (hsize_t j = 0; j < ni.nlinks && !bad; j++) {
            char *tid = link_name(g, j);
            uint64_t id;
            size_t idx;
            if (!tid) {
                bad = QB_FAIL(err, "shard file %s: cannot list /details/%s", path, name);
                break;
            }
            /* arrays of tasks this file did not finish (or not named by a
             * task id) are not part of the merged sweep */
            if (parse_task_hex(tid, &id) || (idx = qb_spec_find_task(s, id)) == SIZE_MAX ||
                owner[idx] != file) {
                free(tid);
                continue;
            }
            hid_t ds = H5Dopen2(g, tid, H5P_DEFAULT);
            hid_t sp = ds >= 0 ? H5Dget_space(ds) : H5I_INVALID_HID;
            hssize_t np = sp >= 0 ? H5Sget_simple_extent_npoints(sp) : -1;
            if (np < 0 || H5Sget_simple_extent_ndims(sp) != 1) {
                bad = QB_FAIL(err, "shard file %s: /details/%s/%s is not a 1-D array", path, name,
                              tid);
            } else {
                double *v = xmalloc(np ? (size_t)np : 1, sizeof *v);
                if (np > 0 && H5Dread(ds, H5T_NATIVE_DOUBLE, H5S_ALL, H5S_ALL, H5P_DEFAULT, v) < 0)
                    bad = QB_FAIL(err, "shard file %s: cannot read /details/%s/%s", path, name, tid);
                else if (qb_results_write_detail(out, idx, name, v, (size_t)np, err)) {
                    rep->io_failed = 1;
                    bad = -1;
                }
                else
                    rep->n_details++;
                free(v);
            }
            if (sp >= 0) H5Sclose(sp);
            if (ds >= 0) H5Dclose(ds);
            free(tid);
        }
        H5Gclose(g);
        free(name);
        if (bad) goto out;
    }
    rc = 0;
out:
    if (d >= 0) H5Gclose(d);
    H5Fclose(f);
    return rc;
}

/* The shards' headers: all shard files of one spec, one count and
 * selection, each shard at most once, no file twice. */
static int check_inputs(const qb_merge_config *cfg, qb_shard *sh, char **spec_text,
                        qb_merge_report *rep, qb_error *err)
{
    size_t n = cfg->n_shards;
    struct stat *st = xcalloc(n, sizeof *st);
    int rc = -1;
    for (size_t i = 0; i < n; i++) {
        const char *p = cfg->shards[i];
        if (stat(p, &st[i]) != 0) {
            QB_FAIL(err, "shard file %s: %s", p, strerror(errno));
            goto out;
        }
        for (size_t j = 0; j < i; j++)
            if (st[j].st_dev == st[i].st_dev && st[j].st_ino == st[i].st_ino) {
                QB_FAIL(err, "shard files %s and %s are the same file", cfg->shards[j], p);
                goto out;
            }
        uint64_t hash;
        if (qb_shard_read_file(p, &sh[i], &hash, i == 0 ? spec_text : NULL, err)) goto out;
        char a[64], b[64];
        if (sh[i].count == 0) {
            QB_FAIL(err, "%s is not a shard file (a whole-spec results file: it has no "
                    "shard_count attribute); merge combines files written with "
                    "`qblind run --shard i/N`", p);
            goto out;
        }
        if (i == 0) {
            rep->spec_hash = hash;
            rep->shard = sh[0];
            continue;
        }
        if (hash != rep->spec_hash) {
            QB_FAIL(err, "shard file %s was written from a different spec (hash %016" PRIx64
                    ") than %s (hash %016" PRIx64 "); the shards of one sweep share its spec",
                    p, hash, cfg->shards[0], rep->spec_hash);
            goto out;
        }
        if (sh[i].count != sh[0].count || sh[i].by != sh[0].by) {
            QB_FAIL(err, "shard file %s is shard %s but %s is shard %s: the shards of one sweep "
                    "have one count and selection", p, qb_shard_text(&sh[i], a, sizeof a),
                    cfg->shards[0], qb_shard_text(&sh[0], b, sizeof b));
            goto out;
        }
        for (size_t j = 0; j < i; j++)
            if (sh[j].index == sh[i].index) {
                QB_FAIL(err, "shard files %s and %s are both shard %s", cfg->shards[j], p,
                        qb_shard_text(&sh[i], a, sizeof a));
                goto out;
            }
    }
    /* OUT: never one of the inputs, never overwritten without force */
    struct stat so;
    if (stat(cfg->out, &so) == 0) {
        for (size_t i = 0; i < n; i++)
            if (st[i].st_dev == so.st_dev && st[i].st_ino == so.st_ino) {
                QB_FAIL(err, "output %s is one of the shard files; write the merge to a new file",
                        cfg->out);
                goto out;
            }
        if (!cfg->force) {
            QB_FAIL(err, "output %s exists; merge never overwrites a file: remove it, choose "
                    "another name, or pass --force to replace it", cfg->out);
            goto out;
        }
        if (!S_ISREG(so.st_mode)) {
            QB_FAIL(err, "output %s exists and is not a regular file", cfg->out);
            goto out;
        }
    } else if (errno != ENOENT) {
        QB_FAIL(err, "output %s: %s", cfg->out, strerror(errno));
        goto out;
    }
    rc = 0;
out:
    free(st);
    return rc;
}

/* Copy the finished rows of shard file k into the output; owner[idx] = k
 * for each. */
static int copy_rows(const char *path, uint32_t k, const qb_shard *sh, const qb_spec *s,
                     uint32_t *owner, qb_results *out, qb_merge_report *rep, qb_error *err)
{
    qb_task_row *rows;
    size_t n;
    if (qb_results_read(path, &rows, &n, NULL, err)) return -1;
    int rc = -1;
    for (size_t r = 0; r < n; r++) {
        const qb_task_row *row = &rows[r];
        /* an unused row (an interrupted extension of /tasks) reads as id 0 */
        if (row->task_id == 0 && !qb_task_status_finished(row->status)) continue;
        size_t idx = qb_spec_find_task(s, row->task_id);
        if (idx == SIZE_MAX) {
            QB_FAIL(err, "shard file %s: row %zu is task %016" PRIx64 ", which is not a task of "
                    "its spec (damaged or edited file?)", path, r, row->task_id);
            goto out;
        }
        uint32_t want = qb_shard_of(s, idx, sh->count, sh->by);
        if (want != sh->index) {
            QB_FAIL(err, "shard file %s (shard %" PRIu32 "/%" PRIu32 "): row %zu is task %016"
                    PRIx64 " of shard %" PRIu32 " (damaged or edited file?)", path, sh->index,
                    sh->count, r, row->task_id, want);
            goto out;
        }
        /* of two rows of one id, the run used the first finished one */
        if (!qb_task_status_finished(row->status) || owner[idx] != UINT32_MAX) continue;
        if (qb_results_record(out, idx, row, err)) {
            rep->io_failed = 1;
            goto out;
        }
        owner[idx] = k;
        rep->n_finished++;
    }
    rc = 0;
out:
    free(rows);
    return rc;
}

int qb_merge_shards(const qb_merge_config *cfg, qb_merge_report *rep, qb_error *err)
{
    memset(rep, 0, sizeof *rep);
    if (!cfg->out || !cfg->out[0]) return QB_FAIL(err, "merge: no output file given");
    if (cfg->n_shards == 0) return QB_FAIL(err, "merge: no shard files given");
    size_t n = cfg->n_shards;
    rep->pending_in = xcalloc(n, sizeof *rep->pending_in);
    qb_shard *sh = xcalloc(n, sizeof *sh);
    char *text = NULL, *tmp = NULL;
    qb_spec spec;
    memset(&spec, 0, sizeof spec);
    uint32_t *owner = NULL;
    qb_results *res = NULL;
    qb_kv *prov = NULL;
    char *from = NULL;
    int rc = -1;

    if (check_inputs(cfg, sh, &text, rep, err)) goto out;
    if (qb_spec_parse(&spec, text, strlen(text), cfg->shards[0], err)) {
        qb_error_prefix(err, "shard file %s: its spec_text does not parse: ", cfg->shards[0]);
        goto out;
    }
    if (spec.hash != rep->spec_hash) {
        QB_FAIL(err, "shard file %s: its spec_text has hash %016" PRIx64 ", not the file's "
                "spec_hash %016" PRIx64 " (written by another qblind version?)", cfg->shards[0],
                spec.hash, rep->spec_hash);
        goto out;
    }
    rep->n_tasks = spec.n_tasks;

    /* shards with no file */
    uint8_t *have = xcalloc(rep->shard.count, 1);
    for (size_t i = 0; i < n; i++) have[sh[i].index] = 1;
    rep->missing = xmalloc(rep->shard.count, sizeof *rep->missing);
    for (uint32_t i = 0; i < rep->shard.count; i++)
        if (!have[i]) rep->missing[rep->n_missing++] = i;
    free(have);

    /* the output, built beside OUT */
    size_t tlen = strlen(cfg->out) + 32;
    tmp = xmalloc(tlen, 1);
    snprintf(tmp, tlen, "%s.merge.%ld", cfg->out, (long)getpid());
    unlink(tmp); /* a leftover of an earlier merge with our pid: never resumed */
    size_t flen = 64;
    for (size_t i = 0; i < n; i++) flen += strlen(cfg->shards[i]) + 2;
    from = xmalloc(flen, 1);
    int w = snprintf(from, flen, "%zu shard files:", n);
    for (size_t i = 0; i < n; i++) w += snprintf(from + w, flen - (size_t)w, " %s", cfg->shards[i]);
    prov = xmalloc(cfg->n_provenance + 1, sizeof *prov);
    for (size_t i = 0; i < cfg->n_provenance; i++) prov[i] = cfg->provenance[i];
    prov[cfg->n_provenance] = (qb_kv){"merged_from", from};
    qb_results_config rcfg = {tmp, spec.text, spec.hash, 0, 1, prov, cfg->n_provenance + 1, 0};
    if (qb_results_create_or_open_fn(&res, &rcfg, spec.n_tasks, pending_fill, &spec, NULL, err))
        goto out;

    owner = xmalloc(spec.n_tasks ? spec.n_tasks : 1, sizeof *owner);
    for (size_t i = 0; i < spec.n_tasks; i++) owner[i] = UINT32_MAX;
    /* tasks per shard index, for the pending counts */
    size_t *in_shard = xcalloc(rep->shard.count, sizeof *in_shard);
    for (size_t i = 0; i < spec.n_tasks; i++)
        in_shard[qb_shard_of(&spec, i, rep->shard.count, rep->shard.by)]++;
    for (size_t k = 0; k < n; k++) {
        size_t before = rep->n_finished;
        if (copy_rows(cfg->shards[k], (uint32_t)k, &sh[k], &spec, owner, res, rep, err) ||
            copy_details(cfg->shards[k], &spec, owner, (uint32_t)k, res, rep, err)) {
            free(in_shard);
            goto out;
        }
        rep->pending_in[k] = in_shard[sh[k].index] - (rep->n_finished - before);
    }
    free(in_shard);
    rep->n_pending = spec.n_tasks - rep->n_finished;
    qb_results *r = res;
    res = NULL;
    if (qb_results_close(r, err)) {
        rep->io_failed = 1;
        goto out;
    }
    if (cfg->force) {
        if (rename(tmp, cfg->out) != 0) {
            QB_FAIL(err, "output %s: cannot rename %s to it: %s", cfg->out, tmp, strerror(errno));
            goto out;
        }
    } else if (link(tmp, cfg->out) == 0) {
        unlink(tmp);
    } else if (errno == EEXIST) {
        QB_FAIL(err, "output %s appeared while merging (another merge?); not overwritten",
                cfg->out);
        goto out;
    } else if (rename(tmp, cfg->out) != 0) { /* no hard links here */
        QB_FAIL(err, "output %s: cannot rename %s to it: %s", cfg->out, tmp, strerror(errno));
        goto out;
    }
    qb_file_sync_dir(cfg->out);
    rc = 0;
out:
    if (res) {
        qb_error cerr;
        if (qb_results_close(res, &cerr)) rep->io_failed = 1;
    }
    if (rc && tmp) unlink(tmp);
    qb_spec_free(&spec);
    free(text);
    free(tmp);
    free(sh);
    free(owner);
    free(prov);
    free(from);
    return rc;
}
