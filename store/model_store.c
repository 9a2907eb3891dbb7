#include "store/model_store.h"

#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/model_io.h"
#include "core/sort.h"
#include "core/xalloc.h"

int qb_model_store_open(qb_model_store *s, const char *dir, qb_error *err)
{
    if (strlen(dir) + 32 >= sizeof s->dir)
        return QB_FAIL(err, "model store path too long: %s", dir);
    snprintf(s->dir, sizeof s->dir, "%s", dir);
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return QB_FAIL(err, "cannot create model store %s: %s", dir, strerror(errno));
    struct stat st;
    if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode))
        return QB_FAIL(err, "model store %s is not a directory", dir);
    return 0;
}

void qb_model_store_default_dir(const char *results_path, char *out, size_t out_len)
{
    snprintf(out, out_len, "%s.models", results_path);
}

void qb_model_store_path(const qb_model_store *s, uint64_t id, char *out, size_t out_len)
{
    snprintf(out, out_len, "%s/%016" PRIx64 ".qbm", s->dir, id);
}

/* Move a bad file aside so it is kept for inspection but never loaded. */
static void move_aside(const char *path)
{
    char aside[4200 + 16];
    snprintf(aside, sizeof aside, "%s.corrupt", path);
    if (rename(path, aside) != 0) remove(path);
}

int qb_model_store_get(const qb_model_store *s, uint64_t id, const char *key, qb_model *m,
                       char *note, size_t note_len, qb_error *err)
{
    char path[4200];
    qb_model_store_path(s, id, path, sizeof path);
    if (note_len) note[0] = '\0';
    struct stat st;
    if (stat(path, &st) != 0) {
        if (errno == ENOENT) return QB_STORE_MISSING;
        return QB_FAIL(err, "model store: cannot stat %s: %s", path, strerror(errno));
    }
    char *meta = NULL;
    qb_error lerr;
    if (qb_model_load(m, path, &meta, &lerr)) {
        snprintf(note, note_len, "%s; moved aside, retraining", lerr.msg);
        move_aside(path);
        return QB_STORE_MISSING;
    }
    if (strcmp(meta, key) != 0) {
        snprintf(note, note_len, "%s describes another model; moved aside, retraining", path);
        free(meta);
        qb_model_free(m);
        move_aside(path);
        return QB_STORE_MISSING;
    }
    free(meta);
    return QB_STORE_FOUND;
}

int qb_model_store_put(const qb_model_store *s, uint64_t id, const char *key, const qb_model *m,
                       qb_error *err)
{
    char path[4200];
    qb_model_store_path(s, id, path, sizeof path);
    if (qb_model_save(m, path, key, err)) return qb_error_prefix(err, "model store: ");
    return 0;
}

int qb_model_store_list(const qb_model_store *s, uint64_t **ids, size_t *n, qb_error *err)
{
    DIR *d = opendir(s->dir);
    if (!d) return QB_FAIL(err, "cannot read model store %s: %s", s->dir, strerror(errno));
    size_t cap = 64, k = 0;
    uint64_t *v = xmalloc(cap, sizeof *v);
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *name = e->d_name;
        if (strlen(name) != 20 || strcmp(name + 16, ".qbm") != 0) continue;
        uint64_t id = 0;
        int ok = 1;
        for (int i = 0; i < 16 && ok; i++) {
            char ch = name[i];
            int digit = ch >= '0' && ch <= '9' ? ch - '0' : ch >= 'a' && ch <= 'f' ? ch - 'a' + 10 : -1;
            ok = digit >= 0;
            id = id << 4 | (uint64_t)(digit & 15);
        }
        if (!ok) continue;
        if (k == cap) v = xrealloc(v, cap *= 2, sizeof *v);
        v[k++] = id;
    }
    closedir(d);
    qsort(v, k, sizeof *v, qb_cmp_u64);
    *ids = v;
    *n = k;
    return 0;
}
