/* HDF5 helpers of the results file (store/hdf5_util.h). */
#include "store/hdf5_util.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/xalloc.h"

/* ---- errors and ids ------------------------------------------------------ */

void qb_h5_quiet_begin(qb_h5_quiet *q)
{
    if (H5Eget_auto2(H5E_DEFAULT, &q->fn, &q->data) < 0) {
        q->fn = NULL;
        q->data = NULL;
    }
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
}

void qb_h5_quiet_end(const qb_h5_quiet *q)
{
    H5Eset_auto2(H5E_DEFAULT, q->fn, q->data);
}

/* The innermost entry of the error stack: where HDF5 first saw the problem
 * ("truncated file: eof = 96, ...", "file signature not found"). */
static herr_t innermost_cb(unsigned n, const H5E_error2_t *e, void *data)
{
    if (n != 0) return 0;
    char minor[160] = "";
    H5E_type_t type;
    if (H5Eget_msg(e->min_num, &type, minor, sizeof minor) < 0) minor[0] = '\0';
    if (minor[0])
        snprintf((char *)data, 400, "%s (%s)", e->desc ? e->desc : "", minor);
    else
        snprintf((char *)data, 400, "%s", e->desc ? e->desc : "");
    return 0;
}

int qb_h5_fail_at(qb_error *err, const char *src, int line, const char *path, const char *call,
                  const char *fmt, ...)
{
    char what[256], inner[400] = "";
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost_cb, inner);
    if (inner[0])
        return qb_error_set(err, src, line, "results file %s: %s failed (%s): %s", path, call,
                            what, inner);
    return qb_error_set(err, src, line, "results file %s: %s failed (%s)", path, call, what);
}

void qb_h5_close(hid_t *id)
{
    if (*id < 0) return;
    switch (H5Iget_type(*id)) {
    case H5I_FILE: H5Fclose(*id); break;
    case H5I_GROUP: H5Gclose(*id); break;
    case H5I_DATATYPE: H5Tclose(*id); break;
    case H5I_DATASPACE: H5Sclose(*id); break;
    case H5I_DATASET: H5Dclose(*id); break;
    case H5I_ATTR: H5Aclose(*id); break;
    case H5I_GENPROP_LST: H5Pclose(*id); break;
    default: break;
    }
    *id = H5I_INVALID_HID;
}

int qb_h5_link_exists(hid_t loc, const char *name, const char *path, qb_error *err)
{
    htri_t e = H5Lexists(loc, name, H5P_DEFAULT);
    if (e < 0) return QB_H5_FAIL(err, path, "H5Lexists", "%s", name);
    return e > 0;
}

/* ---- attributes --------------------------------------------------------- */

int qb_h5_attr_exists(hid_t obj, const char *name, const char *path, qb_error *err)
{
    htri_t e = H5Aexists(obj, name);
    if (e < 0) return QB_H5_FAIL(err, path, "H5Aexists", "attribute %s", name);
    return e > 0;
}

int qb_h5_attr_put(hid_t obj, const char *name, hid_t type, hid_t mem_type, const void *value,
                   const char *path, qb_error *err)
{
    int e = qb_h5_attr_exists(obj, name, path, err);
    if (e < 0) return -1;
    if (e) {
        /* Same type and shape: overwrite in place (no new object header
         * space). Otherwise replace the attribute. */
        hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
        if (a < 0) return QB_H5_FAIL(err, path, "H5Aopen", "attribute %s", name);
        hid_t t = H5Aget_type(a), s = H5Aget_space(a);
        int same = t >= 0 && s >= 0 && H5Tequal(t, type) > 0 &&
                   H5Sget_simple_extent_type(s) == H5S_SCALAR;
        if (t >= 0) H5Tclose(t);
        if (s >= 0) H5Sclose(s);
        if (same) {
            int rc = 0;
            if (H5Awrite(a, mem_type, value) < 0)
                rc = QB_H5_FAIL(err, path, "H5Awrite", "attribute %s", name);
            if (H5Aclose(a) < 0 && rc == 0)
                rc = QB_H5_FAIL(err, path, "H5Aclose", "attribute %s", name);
            return rc;
        }
        H5Aclose(a);
        if (H5Adelete(obj, name) < 0)
            return QB_H5_FAIL(err, path, "H5Adelete", "attribute %s", name);
    }
    hid_t space = H5Screate(H5S_SCALAR);
    if (space < 0) return QB_H5_FAIL(err, path, "H5Screate", "attribute %s", name);
    hid_t a = H5Acreate2(obj, name, type, space, H5P_DEFAULT, H5P_DEFAULT);
    H5Sclose(space);
    if (a < 0) return QB_H5_FAIL(err, path, "H5Acreate2", "attribute %s", name);
    if (H5Awrite(a, mem_type, value) < 0) {
        QB_H5_FAIL(err, path, "H5Awrite", "attribute %s", name);
        H5Aclose(a);
        return -1;
    }
    if (H5Aclose(a) < 0) return QB_H5_FAIL(err, path, "H5Aclose", "attribute %s", name);
    return 0;
}

static hid_t vlen_string_type(void)
{
    hid_t t = H5Tcopy(H5T_C_S1);
    if (t < 0) return t;
    if (H5Tset_size(t, H5T_VARIABLE) < 0 || H5Tset_cset(t, H5T_CSET_UTF8) < 0) {
        H5Tclose(t);
        return H5I_INVALID_HID;
    }
    return t;
}

/* 1 if the attribute exists as a string of type vl_type equal to value,
 * else 0 (errors included: the caller then writes it). */
static int str_equals(hid_t obj, const char *name, hid_t vl_type, const char *value)
{
    qb_h5_attr v;
    qb_error ignored;
    if (qb_h5_attr_read(obj, name, &v, "", &ignored) <= 0) return 0;
    int same = H5Tequal(v.type, vl_type) > 0 && v.s && strcmp(v.s, value) == 0;
    qb_h5_attr_free(&v);
    return same;
}

int qb_h5_attr_put_str(hid_t obj, const char *name, const char *value, const char *path,
                       qb_error *err)
{
    hid_t t = vlen_string_type();
    if (t < 0) return QB_H5_FAIL(err, path, "H5Tcopy", "string type for attribute %s", name);
    int rc = 0;
    if (!str_equals(obj, name, t, value)) rc = qb_h5_attr_put(obj, name, t, t, &value, path, err);
    H5Tclose(t);
    return rc;
}

int qb_h5_attr_put_i32(hid_t obj, const char *name, int32_t v, const char *path, qb_error *err)
{
    return qb_h5_attr_put(obj, name, H5T_STD_I32LE, H5T_NATIVE_INT32, &v, path, err);
}

/* The value of a one-element string attribute `a` of type t into v->s. */
static int read_str(hid_t a, hid_t t, qb_h5_attr *v)
{
    if (H5Tis_variable_str(t) > 0) {
        char *s = NULL;
        hid_t mt = H5Tcopy(H5T_C_S1);
        int ok = mt >= 0 && H5Tset_size(mt, H5T_VARIABLE) >= 0 &&
                 H5Tset_cset(mt, H5Tget_cset(t)) >= 0 && H5Aread(a, mt, &s) >= 0 && s;
        if (ok) v->s = xstrdup(s);
        if (s) H5free_memory(s);
        if (mt >= 0) H5Tclose(mt);
        return ok ? 0 : -1;
    }
    v->s = xcalloc(H5Tget_size(t) + 1, 1);
    return H5Aread(a, t, v->s) < 0 ? -1 : 0;
}

int qb_h5_attr_read(hid_t obj, const char *name, qb_h5_attr *v, const char *path, qb_error *err)
{
    memset(v, 0, sizeof *v);
    v->type = H5I_INVALID_HID;
    int e = qb_h5_attr_exists(obj, name, path, err);
    if (e <= 0) return e;
    hid_t a = H5Aopen(obj, name, H5P_DEFAULT);
    if (a < 0) return QB_H5_FAIL(err, path, "H5Aopen", "attribute %s", name);
    hid_t s = H5Aget_space(a);
    v->type = H5Aget_type(a);
    int rc = 1;
    if (v->type < 0 || s < 0) {
        rc = QB_H5_FAIL(err, path, "H5Aget_type", "attribute %s", name);
    } else {
        v->cls = H5Tget_class(v->type);
        v->n_points = H5Sget_simple_extent_npoints(s);
        int bad = 0;
        if (v->n_points == 1 && v->cls == H5T_INTEGER)
            bad = H5Aread(a, H5T_NATIVE_INT64, &v->i) < 0 ||
                  H5Aread(a, H5T_NATIVE_UINT64, &v->u) < 0;
        else if (v->n_points == 1 && v->cls == H5T_FLOAT)
            bad = H5Aread(a, H5T_NATIVE_DOUBLE, &v->f) < 0;
        else if (v->n_points == 1 && v->cls == H5T_STRING)
            bad = read_str(a, v->type, v) < 0;
        if (bad) rc = QB_H5_FAIL(err, path, "H5Aread", "attribute %s", name);
    }
    if (s >= 0) H5Sclose(s);
    H5Aclose(a);
    if (rc < 0) qb_h5_attr_free(v);
    return rc;
}

void qb_h5_attr_free(qb_h5_attr *v)
{
    qb_h5_close(&v->type);
    free(v->s);
    v->s = NULL;
}

int qb_h5_attr_get_int(hid_t obj, const char *name, int is_unsigned, void *out, const char *path,
                       qb_error *err)
{
    qb_h5_attr v;
    int e = qb_h5_attr_read(obj, name, &v, path, err);
    if (e <= 0) return e;
    int rc = 1;
    if (v.cls != H5T_INTEGER || v.n_points != 1)
        rc = QB_FAIL(err, "results file %s: attribute %s is not a single integer", path, name);
    else if (is_unsigned)
        *(uint64_t *)out = v.u;
    else
        *(int64_t *)out = v.i;
    qb_h5_attr_free(&v);
    return rc;
}
