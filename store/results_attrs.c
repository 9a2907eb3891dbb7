/* Root attributes of a results file as strings (store/results_attrs.h). */
#include "store/results_attrs.h"

#include <hdf5.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"

typedef struct attr_list {
    qb_kv *kv;
    size_t n, cap;
} attr_list;

/* The value of one attribute as a malloc'd string. */
static char *attr_value(hid_t a)
{
    char buf[64];
    hid_t t = H5Aget_type(a), s = H5Aget_space(a);
    char *out = NULL;
    if (t < 0 || s < 0) goto done;
    H5T_class_t cls = H5Tget_class(t);
    hssize_t np = H5Sget_simple_extent_npoints(s);
    if (cls == H5T_STRING && np == 1) {
        if (H5Tis_variable_str(t) > 0) {
            char *v = NULL;
            hid_t mt = H5Tcopy(H5T_C_S1);
            H5Tset_size(mt, H5T_VARIABLE);
            H5Tset_cset(mt, H5Tget_cset(t));
            if (H5Aread(a, mt, &v) >= 0 && v) {
                out = xstrdup(v);
                H5free_memory(v);
            }
            H5Tclose(mt);
        } else {
            size_t len = H5Tget_size(t);
            out = xcalloc(len + 1, 1);
            if (H5Aread(a, t, out) < 0) out[0] = '\0';
        }
    } else if (cls == H5T_INTEGER && np == 1) {
        if (H5Tget_sign(t) == H5T_SGN_NONE) {
            uint64_t v;
            if (H5Aread(a, H5T_NATIVE_UINT64, &v) >= 0) {
                snprintf(buf, sizeof buf, "%" PRIu64, v);
                out = xstrdup(buf);
            }
        } else {
            int64_t v;
            if (H5Aread(a, H5T_NATIVE_INT64, &v) >= 0) {
                snprintf(buf, sizeof buf, "%" PRId64, v);
                out = xstrdup(buf);
            }
        }
    } else if (cls == H5T_FLOAT && np == 1) {
        double v;
        if (H5Aread(a, H5T_NATIVE_DOUBLE, &v) >= 0) {
            snprintf(buf, sizeof buf, "%.17g", v);
            out = xstrdup(buf);
        }
    }
done:
    if (t >= 0) H5Tclose(t);
    if (s >= 0) H5Sclose(s);
    return out ? out : xstrdup("(unsupported type)");
}

static herr_t collect(hid_t loc, const char *name, const H5A_info_t *info, void *data)
{
    (void)info;
    attr_list *l = data;
    hid_t a = H5Aopen(loc, name, H5P_DEFAULT);
    if (a < 0) return -1;
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 16;
        l->kv = xrealloc(l->kv, l->cap, sizeof *l->kv);
    }
    l->kv[l->n].key = xstrdup(name);
    l->kv[l->n].value = attr_value(a);
    l->n++;
    H5Aclose(a);
    return 0;
}

int qb_results_read_attrs(const char *path, qb_kv **attrs, size_t *n, qb_error *err)
{
    *attrs = NULL;
    *n = 0;
    attr_list l = {NULL, 0, 0};
    hid_t file = -1;
    H5E_BEGIN_TRY { file = H5Fopen(path, H5F_ACC_RDONLY, H5P_DEFAULT); }
    H5E_END_TRY;
    if (file < 0) return QB_FAIL(err, "results file %s: cannot open it to read its attributes", path);
    hsize_t idx = 0;
    herr_t e;
    H5E_BEGIN_TRY { e = H5Aiterate2(file, H5_INDEX_NAME, H5_ITER_INC, &idx, collect, &l); }
    H5E_END_TRY;
    H5Fclose(file);
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
