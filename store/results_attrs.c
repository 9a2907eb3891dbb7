/* Root attributes of a results file as strings (store/results_attrs.h). */
#include "store/results_attrs.h"

#include <hdf5.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/file.h"
#include "core/xalloc.h"
#include "store/hdf5_util.h"

typedef struct attr_list {
    qb_kv *kv;
    size_t n, cap;
    const char *path;
} attr_list;

/* The value of attribute `name` of loc as a malloc'd string. */
static char *attr_value(hid_t loc, const char *name, const char *path)
{
    char buf[64];
    char *out = NULL;
    qb_h5_attr v;
    qb_error ignored;
    if (qb_h5_attr_read(loc, name, &v, path, &ignored) <= 0) return xstrdup("(unsupported type)");
    if (v.n_points == 1 && v.cls == H5T_STRING) {
        out = xstrdup(v.s);
    } else if (v.n_points == 1 && v.cls == H5T_INTEGER) {
        if (H5Tget_sign(v.type) == H5T_SGN_NONE)
            snprintf(buf, sizeof buf, "%" PRIu64, v.u);
        else
            snprintf(buf, sizeof buf, "%" PRId64, v.i);
        out = xstrdup(buf);
    } else if (v.n_points == 1 && v.cls == H5T_FLOAT) {
        snprintf(buf, sizeof buf, "%.17g", v.f);
        out = xstrdup(buf);
    }
    qb_h5_attr_free(&v);
    return out ? out : xstrdup("(unsupported type)");
}

static herr_t collect(hid_t loc, const char *name, const H5A_info_t *info, void *data)
{
    (void)info;
    attr_list *l = data;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->kv = xrealloc(l->kv, l->cap, sizeof *l->kv);
    }
    l->kv[l->n].key = xstrdup(name);
    l->kv[l->n].value = attr_value(loc, name, l->path);
    l->n++;
    return 0;
}

int qb_results_read_attrs(const char *path, qb_kv **attrs, size_t *n, qb_error *err)
{
    *attrs = NULL;
    *n = 0;
    attr_list l = {NULL, 0, 0, path};
    if (qb_file_check_regular(path, "results file", err)) return -1;
    qb_h5_quiet q;
    qb_h5_quiet_begin(&q);
    hid_t file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT);
    if (file < 0) {
        qb_h5_quiet_end(&q);
        return QB_FAIL(err, "results file %s: cannot open it to read its attributes", path);
    }
    hsize_t idx = 0;
    herr_t e = H5Aiterate2(file, H5_INDEX_NAME, H5_ITER_INC, &idx, collect, &l);
    H5Fclose(file);
    qb_h5_quiet_end(&q);
    if (e < 0) {
        qb_results_attrs_free(l.kv, l.n);
        return QB_FAIL(err, "results file %s: cannot read its root attributes", path);
    }
    *attrs = l.kv;
    *n = l.n;
    return 0;
}

void qb_results_attrs_free(qb_kv *attrs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        free((char *)attrs[i].key);
        free((char *)attrs[i].value);
    }
    free(attrs);
}
