#include "quant/qmodel_io.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/file.h"
#include "core/model_io.h"
#include "core/xalloc.h"

static const char magic[8] = {'Q', 'B', 'L', 'Q', 'U', 'A', 'N', 'T'};

/* ---- a growable little-endian writer and a bounds-checked reader --------- */

typedef struct writer {
    uint8_t *buf;
    size_t len, cap;
} writer;

static void w_bytes(writer *w, const void *p, size_t n)
{
    if (w->len + n > w->cap) {
        w->cap = (w->len + n) * 2;
        w->buf = xrealloc(w->buf, w->cap, 1);
    }
    memcpy(w->buf + w->len, p, n);
    w->len += n;
}
static void w_u32(writer *w, uint32_t v)
{
    uint8_t b[4] = {(uint8_t)v, (uint8_t)(v >> 8), (uint8_t)(v >> 16), (uint8_t)(v >> 24)};
    w_bytes(w, b, 4);
}
static void w_u64(writer *w, uint64_t v)
{
    w_u32(w, (uint32_t)v);
    w_u32(w, (uint32_t)(v >> 32));
}
static void w_f32(writer *w, float f)
{
    uint32_t u;
    memcpy(&u, &f, 4);
    w_u32(w, u);
}

typedef struct reader {
    const uint8_t *buf;
    size_t len, off;
    const char *what;
    qb_error *err;
} reader;

static int r_need(reader *r, size_t n, const char *field)
{
    if (n > r->len - r->off)
        return QB_FAIL(r->err, "%s: truncated: %s at offset %zu needs %zu bytes, %zu left", r->what,
                       field, r->off, n, r->len - r->off);
    return 0;
}
static int r_u32(reader *r, uint32_t *v, const char *field)
{
    if (r_need(r, 4, field)) return -1;
    const uint8_t *p = r->buf + r->off;
    *v = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
    r->off += 4;
    return 0;
}
static int r_u64(reader *r, uint64_t *v, const char *field)
{
    uint32_t lo, hi;
    if (r_u32(r, &lo, field) || r_u32(r, &hi, field)) return -1;
    *v = (uint64_t)hi << 32 | lo;
    return 0;
}

/* ---- encode ---------------------------------------------------------------- */

int qb_qmodel_encode(const qb_qmodel *qm, uint8_t **buf, size_t *len, qb_error *err)
{
    /* the float part: the deployed model with quantized weights zeroed */
    qb_model fl;
    qb_model_copy(&fl, &qm->model);
    fl.hooks = NULL;
    int nq = 0;
    for (int i = 0; i < fl.n_layers; i++)
        if (qm->ql[i].active) {
            memset(fl.params + fl.layers[i].w_off, 0, fl.layers[i].w_len * sizeof(float));
            nq++;
        }
    uint8_t *blob;
    size_t blob_len;
    int rc = qb_model_encode(&fl, "qblind quantized model: float part", &blob, &blob_len, err);
    qb_model_free(&fl);
    if (rc) return -1;

    writer w = {NULL, 0, 0};
    w_bytes(&w, magic, 8);
    w_u32(&w, QB_QMODEL_FORMAT_VERSION);
    w_u32(&w, (uint32_t)strlen(qm->prec.name));
    w_bytes(&w, qm->prec.name, strlen(qm->prec.name));
    w_u64(&w, blob_len);
    w_bytes(&w, blob, blob_len);
    free(blob);
    w_u32(&w, (uint32_t)nq);
    for (int i = 0; i < qm->model.n_layers; i++) {
        const qb_qlayer *q = &qm->ql[i];
        if (!q->active) continue;
        size_t ns = qm->prec.gran == QB_GRAN_CHANNEL ? q->rows : 1;
        w_u32(&w, (uint32_t)i);
        w_u32(&w, (uint32_t)q->rows);
        w_u32(&w, (uint32_t)q->cols);
        w_u32(&w, (uint32_t)ns);
        for (size_t k = 0; k < ns; k++) w_f32(&w, q->scales[k]);
        size_t n = q->rows * q->cols, plen = qb_quant_packed_size(n, qm->prec.w_bits);
        uint8_t *packed = xmalloc(plen, 1);
        qb_quant_pack(q->codes, n, qm->prec.w_bits, packed);
        w_bytes(&w, packed, plen);
        free(packed);
    }
    w_u32(&w, (uint32_t)crc32(0L, w.buf, (uInt)w.len));
    *buf = w.buf;
    *len = w.len;
    return 0;
}

/* ---- decode ---------------------------------------------------------------- */

int qb_qmodel_decode(const uint8_t *buf, size_t len, const char *what, qb_qmodel *qm,
                     qb_error *err)
{
    memset(qm, 0, sizeof *qm);
    reader r = {buf, len, 0, what, err};
    if (len < 8 + 4 + 4 + 4 || memcmp(buf, magic, 8) != 0)
        return QB_FAIL(err, "%s: not a qblind quantized model (bad magic at offset 0)", what);
    if (len > (size_t)UINT32_MAX)
        return QB_FAIL(err, "%s: %zu bytes is larger than any quantized model", what, len);
    uint32_t stored = (uint32_t)buf[len - 4] | (uint32_t)buf[len - 3] << 8 |
                      (uint32_t)buf[len - 2] << 16 | (uint32_t)buf[len - 1] << 24;
    uint32_t crc = (uint32_t)crc32(0L, buf, (uInt)(len - 4));
    r.len = len - 4; /* the reader must end exactly at the CRC */
    r.off = 8;
    uint32_t version, plen;
    if (r_u32(&r, &version, "version")) return -1;
    if (version != QB_QMODEL_FORMAT_VERSION)
        return QB_FAIL(err, "%s: quantized model format version %u at offset 8; this qblind reads %u",
                       what, version, QB_QMODEL_FORMAT_VERSION);
    if (r_u32(&r, &plen, "precision name length")) return -1;
    if (plen < 1 || plen >= QB_PRECISION_NAME_MAX)
        return QB_FAIL(err, "%s: precision name length %u at offset 12 out of range", what, plen);
    if (r_need(&r, plen, "precision name")) return -1;
    char name[QB_PRECISION_NAME_MAX];
    memcpy(name, buf + r.off, plen);
    name[plen] = '\0';
    r.off += plen;
    if (stored != crc)
        return QB_FAIL(err, "%s: checksum mismatch (stored %08x, computed %08x): the file is corrupt",
                       what, stored, crc);
    qb_precision prec;
    qb_error perr;
    if (qb_precision_parse(name, &prec, &perr))
        return QB_FAIL(err, "%s: offset 16: %s", what, perr.msg);
    if (qb_precision_is_float(&prec))
        return QB_FAIL(err, "%s: precision fp32 is not a quantized model", what);
    uint64_t blob_len;
    if (r_u64(&r, &blob_len, "float part length")) return -1;
    if (blob_len > r.len - r.off)
        return QB_FAIL(err, "%s: float part of %llu bytes at offset %zu overruns the file", what,
                       (unsigned long long)blob_len, r.off);
    size_t blob_off = r.off;
    char where[512];
    snprintf(where, sizeof where, "%s (float part at offset %zu)", what, blob_off);
    if (qb_model_decode(buf + blob_off, (size_t)blob_len, where, &qm->model, NULL, err)) return -1;
    r.off += (size_t)blob_len;
    qm->prec = prec;

    int expect = 0;
    for (int i = 0; i < qm->model.n_layers; i++)
        expect += qb_precision_quantizes_layer(&prec, &qm->model, i);
    uint32_t nq;
    int rc = r_u32(&r, &nq, "number of quantized layers");
    if (rc == 0 && nq != (uint32_t)expect)
        rc = QB_FAIL(err, "%s: %u quantized layers at offset %zu; precision %s on %s quantizes %d",
                     what, nq, r.off - 4, name, qm->model.arch, expect);
    const int qmax = qb_quant_qmax(prec.w_bits);
    for (int i = 0; rc == 0 && i < qm->model.n_layers; i++) {
        if (!qb_precision_quantizes_layer(&prec, &qm->model, i)) continue;
        const qb_layer *l = &qm->model.layers[i];
        qb_qlayer *q = &qm->ql[i];
        size_t at = r.off;
        uint32_t idx, rows, cols, ns;
        if ((rc = r_u32(&r, &idx, "layer index")) || (rc = r_u32(&r, &rows, "rows")) ||
            (rc = r_u32(&r, &cols, "cols")) || (rc = r_u32(&r, &ns, "number of scales")))
            break;
        size_t want_ns = prec.gran == QB_GRAN_CHANNEL ? (size_t)l->out_c : 1;
        if (idx != (uint32_t)i || rows != (uint32_t)l->out_c ||
            (size_t)rows * cols != l->w_len || ns != want_ns) {
            rc = QB_FAIL(err, "%s: quantized layer record at offset %zu (layer %u, %ux%u, %u scales) does not match layer %d of %s (%dx%zu, %zu scales)",
                         what, at, idx, rows, cols, ns, i, qm->model.arch, l->out_c,
                         l->w_len / (size_t)l->out_c, want_ns);
            break;
        }
        size_t n = (size_t)rows * cols, pl = qb_quant_packed_size(n, prec.w_bits);
        if ((rc = r_need(&r, 4 * (size_t)ns + pl, "scales and codes"))) break;
        q->rows = rows;
        q->cols = cols;
        q->scales = xmalloc(ns, sizeof(float));
        for (uint32_t k = 0; k < ns; k++) {
            uint32_t u = 0;
            r_u32(&r, &u, "scale"); /* cannot fail: r_need above */
            memcpy(&q->scales[k], &u, 4);
            if (!isfinite(q->scales[k]) || q->scales[k] < 0.0f) {
                rc = QB_FAIL(err, "%s: layer %d scale %u at offset %zu is %g (must be finite, >= 0)",
                             what, i, k, r.off - 4, (double)q->scales[k]);
                break;
            }
        }
        q->active = 1; /* from here on owned buffers are freed by qb_qmodel_free */
        if (rc) break;
        q->codes = xmalloc(n, 1);
        qb_quant_unpack(buf + r.off, n, prec.w_bits, q->codes);
        for (size_t k = 0; k < n; k++)
            if (q->codes[k] < -qmax || q->codes[k] > qmax) {
                rc = QB_FAIL(err, "%s: layer %d code %zu (in the code block at offset %zu) is %d, outside [-%d, %d] for %d bits",
                             what, i, k, r.off, q->codes[k], qmax, qmax, prec.w_bits);
                break;
            }
        r.off += pl;
    }
    if (rc == 0 && r.off != r.len)
        rc = QB_FAIL(err, "%s: %zu bytes of trailing garbage at offset %zu before the checksum", what,
                     r.len - r.off, r.off);
    if (rc) {
        qb_qmodel_free(qm);
        return -1;
    }
    qb_qmodel_finish(qm);
    return 0;
}

int qb_qmodel_save(const qb_qmodel *qm, const char *path, qb_error *err)
{
    uint8_t *buf;
    size_t len;
    if (qb_qmodel_encode(qm, &buf, &len, err)) return -1;
    int rc = qb_file_write_atomic(path, buf, len, err);
    free(buf);
    return rc;
}

int qb_qmodel_load(qb_qmodel *qm, const char *path, qb_error *err)
{
    uint8_t *buf;
    size_t len;
    memset(qm, 0, sizeof *qm);
    if (qb_file_read_all(path, (size_t)1 << 30, &buf, &len, err)) return -1;
    int rc = qb_qmodel_decode(buf, len, path, qm, err);
    free(buf);
    return rc;
}
