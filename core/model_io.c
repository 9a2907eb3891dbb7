#include "core/model_io.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "core/arch.h"
#include "core/file.h"
#include "core/xalloc.h"

static const char magic[8] = {'Q', 'B', 'L', 'M', 'O', 'D', 'E', 'L'};
#define LAYER_FIELDS 10    /* version 1 */
#define LAYER_FIELDS_V2 12 /* + src, src2 + 1 */
#define FIXED_HEADER (32 + 4 * 5 + 8 + 4)

/* ---- little-endian byte cursor ------------------------------------------- */

static void put_u32(uint8_t **p, uint32_t v)
{
    for (int i = 0; i < 4; i++) *(*p)++ = (uint8_t)(v >> (8 * i));
}
static void put_u64(uint8_t **p, uint64_t v)
{
    for (int i = 0; i < 8; i++) *(*p)++ = (uint8_t)(v >> (8 * i));
}
static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static uint64_t get_u64(const uint8_t *p)
{
    return (uint64_t)get_u32(p) | (uint64_t)get_u32(p + 4) << 32;
}

static uint32_t crc_of(const uint8_t *buf, size_t len)
{
    uLong crc = crc32(0L, Z_NULL, 0);
    while (len > 0) {
        uInt chunk = len > (1u << 30) ? (1u << 30) : (uInt)len;
        crc = crc32(crc, buf, chunk);
        buf += chunk;
        len -= chunk;
    }
    return (uint32_t)crc;
}

static void layer_fields(const qb_layer *l, uint32_t f[LAYER_FIELDS_V2])
{
    const int v[LAYER_FIELDS_V2] = {(int)l->kind, l->in_c,   l->in_h,  l->in_w,
                                    l->out_c,     l->out_h,  l->out_w, l->k,
                                    l->stride,    l->pad,    l->src,   l->src2 + 1};
    for (int i = 0; i < LAYER_FIELDS_V2; i++) f[i] = (uint32_t)v[i];
}

/* Version 1 holds the chains of the first presets; everything else needs
 * version 2's links and architecture text. */
static int needs_v2(const qb_model *m)
{
    return strcmp(m->arch, "lenet") != 0 && strcmp(m->arch, "cnn-small") != 0;
}

/* ---- encode -------------------------------------------------------------- */

int qb_model_encode(const qb_model *m, const char *meta, uint8_t **buf, size_t *len,
                    qb_error *err)
{
    size_t meta_len = meta ? strlen(meta) : 0;
    if (meta_len > QB_MODEL_META_MAX)
        return QB_FAIL(err, "model metadata is %zu bytes; the limit is %u", meta_len,
                       QB_MODEL_META_MAX);
    const int v2 = needs_v2(m);
    const int nf = v2 ? LAYER_FIELDS_V2 : LAYER_FIELDS;
    const char *text = v2 ? qb_arch_text(m->arch) : "";
    if (!text)
        return QB_FAIL(err, "model architecture \"%s\" is not declared: its layers cannot be saved",
                       m->arch);
    size_t text_len = v2 ? 4 + strlen(text) : 0;
    size_t header = FIXED_HEADER + (size_t)m->n_layers * nf * 4 + text_len + meta_len;
    size_t total = 16 + header + 4 * m->n_params + 4;
    uint8_t *b = xmalloc(total, 1), *p = b;
    memcpy(p, magic, 8);
    p += 8;
    put_u32(&p, v2 ? 2u : 1u);
    put_u32(&p, (uint32_t)header);
    memset(p, 0, 32);
    memcpy(p, m->arch, strlen(m->arch));
    p += 32;
    put_u32(&p, (uint32_t)m->in_c);
    put_u32(&p, (uint32_t)m->in_h);
    put_u32(&p, (uint32_t)m->in_w);
    put_u32(&p, (uint32_t)m->classes);
    put_u32(&p, (uint32_t)m->n_layers);
    for (int i = 0; i < m->n_layers; i++) {
        uint32_t f[LAYER_FIELDS_V2];
        layer_fields(&m->layers[i], f);
        for (int j = 0; j < nf; j++) put_u32(&p, f[j]);
    }
    if (v2) {
        put_u32(&p, (uint32_t)strlen(text));
        memcpy(p, text, strlen(text));
        p += strlen(text);
    }
    put_u64(&p, (uint64_t)m->n_params);
    put_u32(&p, (uint32_t)meta_len);
    memcpy(p, meta ? meta : "", meta_len);
    p += meta_len;
    for (size_t i = 0; i < m->n_params; i++) {
        uint32_t u;
        memcpy(&u, &m->params[i], 4);
        put_u32(&p, u);
    }
    put_u32(&p, crc_of(b, (size_t)(p - b)));
    QB_ASSERT((size_t)(p - b) == total);
    *buf = b;
    *len = total;
    return 0;
}

/* ---- decode -------------------------------------------------------------- */

int qb_model_decode(const uint8_t *buf, size_t len, const char *what, qb_model *m, char **meta,
                    qb_error *err)
{
    memset(m, 0, sizeof *m);
    if (meta) *meta = NULL;
    if (len < 16 + FIXED_HEADER + 4)
        return QB_FAIL(err, "%s: not a qblind model: %zu bytes is shorter than the smallest model file",
                       what, len);
    if (memcmp(buf, magic, 8) != 0)
        return QB_FAIL(err, "%s: not a qblind model file (bad magic at offset 0)", what);
    uint32_t version = get_u32(buf + 8);
    if (version != 1 && version != QB_MODEL_FORMAT_VERSION)
        return QB_FAIL(err, "%s: model format version %u at offset 8; this qblind reads versions 1 and %u",
                       what, version, QB_MODEL_FORMAT_VERSION);
    const int nf = version == 1 ? LAYER_FIELDS : LAYER_FIELDS_V2;
    uint64_t header = get_u32(buf + 12);
    if (header < FIXED_HEADER || 16 + header + 4 > len)
        return QB_FAIL(err, "%s: header length %llu at offset 12 does not fit the file (%zu bytes): truncated or corrupt",
                       what, (unsigned long long)header, len);
    const uint8_t *h = buf + 16;
    char arch[QB_ARCH_NAME_MAX + 1];
    memcpy(arch, h, 32);
    arch[32] = '\0';
    if (memchr(h, '\0', 32) == NULL)
        return QB_FAIL(err, "%s: architecture name at offset 16 is not terminated", what);
    uint32_t in_c = get_u32(h + 32), in_h = get_u32(h + 36), in_w = get_u32(h + 40);
    uint32_t classes = get_u32(h + 44), n_layers = get_u32(h + 48);
    if (n_layers > QB_MAX_LAYERS)
        return QB_FAIL(err, "%s: %u layers at offset %d exceeds the limit of %d", what, n_layers,
                       16 + 48, QB_MAX_LAYERS);
    if (in_c > 64 || in_h > 4096 || in_w > 4096 || classes > 256)
        return QB_FAIL(err, "%s: implausible input %ux%ux%u / %u classes at offset 48", what,
                       in_c, in_h, in_w, classes);
    size_t table = (size_t)n_layers * nf * 4;
    if (FIXED_HEADER + table > header)
        return QB_FAIL(err, "%s: layer table (%u layers) overruns the %llu-byte header", what,
                       n_layers, (unsigned long long)header);
    const uint8_t *t = h + 52 + table;
    /* version 2: the architecture text */
    char *text = NULL;
    size_t text_len = 0;
    if (version >= 2) {
        if (FIXED_HEADER + table + 4 > header)
            return QB_FAIL(err, "%s: architecture text length overruns the %llu-byte header", what,
                           (unsigned long long)header);
        uint32_t tl = get_u32(t);
        if (tl > QB_ARCH_TEXT_MAX || FIXED_HEADER + table + 4 + tl > header)
            return QB_FAIL(err, "%s: architecture text of %u bytes at offset %zu overruns the header "
                           "or exceeds %d bytes", what, tl, (size_t)(t - buf), QB_ARCH_TEXT_MAX);
        if (memchr(t + 4, '\0', tl))
            return QB_FAIL(err, "%s: architecture text at offset %zu contains a NUL byte", what,
                           (size_t)(t + 4 - buf));
        text_len = 4 + (size_t)tl;
        text = xmalloc((size_t)tl + 1, 1);
        memcpy(text, t + 4, tl);
        text[tl] = '\0';
        t += text_len;
    }
    uint64_t n_params = get_u64(t);
    uint32_t meta_len = get_u32(t + 8);
    size_t meta_off = (size_t)(t + 12 - buf);
    int rc = 0;
    if (meta_len > QB_MODEL_META_MAX || FIXED_HEADER + table + text_len + meta_len != header)
        rc = QB_FAIL(err, "%s: metadata length %u at offset %zu does not match the header length %llu",
                     what, meta_len, meta_off - 4, (unsigned long long)header);
    else if (n_params > (len / 4))
        rc = QB_FAIL(err, "%s: %llu parameters announced at offset %zu but the file has only %zu bytes: truncated",
                     what, (unsigned long long)n_params, meta_off - 12, len);
    size_t expect = 16 + (size_t)header + 4 * (size_t)n_params + 4;
    if (rc == 0 && len != expect)
        rc = QB_FAIL(err, "%s: file is %zu bytes but its header announces %zu: %s", what, len,
                     expect, len < expect ? "truncated" : "trailing garbage");
    uint32_t stored_crc = rc ? 0 : get_u32(buf + len - 4), crc = rc ? 0 : crc_of(buf, len - 4);
    if (rc == 0 && stored_crc != crc)
        rc = QB_FAIL(err, "%s: checksum mismatch (stored %08x, computed %08x): the file is corrupt",
                     what, stored_crc, crc);

    /* Compare the file with the architecture's own table before
     * allocating anything sized by the file: the preset's, or the one its
     * own text builds (a preset's name with another text is refused). */
    qb_error berr;
    if (rc == 0 && text) {
        const char *known = qb_arch_text(arch);
        if (qb_arch_is_preset(arch) && strcmp(known, text) != 0)
            rc = QB_FAIL(err, "%s: architecture %s's layers in the file differ from qblind's %s", what,
                         arch, arch);
        else if (qb_arch_plan_text(m, arch, text, (int)in_c, (int)in_h, (int)in_w, (int)classes,
                                   NULL, &berr))
            rc = QB_FAIL(err, "%s: its architecture text (offset %zu): %s", what,
                         (size_t)(h + 52 + table + 4 - buf), berr.msg);
        else if (!known && qb_arch_declare(arch, text, &berr))
            rc = QB_FAIL(err, "%s: %s", what, berr.msg);
        else if (known && strcmp(known, text) != 0)
            rc = QB_FAIL(err, "%s: architecture %s's layers in the file differ from the %s declared "
                         "in this run", what, arch, arch);
    } else if (rc == 0) {
        if (qb_model_plan(m, arch, (int)in_c, (int)in_h, (int)in_w, (int)classes, &berr))
            rc = QB_FAIL(err, "%s: %s", what, berr.msg);
        else if (needs_v2(m))
            rc = QB_FAIL(err, "%s: architecture %s needs model format version 2 (offset 8 says 1)",
                         what, arch);
    }
    free(text);
    if (rc) {
        memset(m, 0, sizeof *m);
        return -1;
    }
    if (m->n_layers != (int)n_layers || m->n_params != n_params) {
        QB_FAIL(err, "%s: layer table (%u layers, %llu parameters) does not match architecture %s (%d layers, %zu parameters)",
                what, n_layers, (unsigned long long)n_params, arch, m->n_layers, m->n_params);
        memset(m, 0, sizeof *m);
        return -1;
    }
    for (int i = 0; i < m->n_layers; i++) {
        uint32_t f[LAYER_FIELDS_V2];
        layer_fields(&m->layers[i], f);
        for (int j = 0; j < nf; j++) {
            size_t off = 52 + ((size_t)i * nf + j) * 4;
            if (f[j] != get_u32(h + off)) {
                QB_FAIL(err, "%s: layer %d field %d at offset %zu differs from architecture %s",
                        what, i, j, 16 + off, arch);
                memset(m, 0, sizeof *m);
                return -1;
            }
        }
    }
    m->params = xmalloc(m->n_params, sizeof(float));
    const uint8_t *pp = buf + 16 + header;
    for (size_t i = 0; i < m->n_params; i++) {
        uint32_t u = get_u32(pp + 4 * i);
        memcpy(&m->params[i], &u, 4);
        /* A NaN or Inf weight passes the CRC when it was saved that way,
         * and would make every prediction meaningless (10% CA, no error). */
        if (!isfinite(m->params[i])) {
            QB_FAIL(err, "%s: parameter %zu of %zu at offset %zu is %g: a model with NaN or "
                    "infinite weights cannot be used (was it saved from a diverged training?)",
                    what, i, m->n_params, (size_t)(pp - buf) + 4 * i, (double)m->params[i]);
            qb_model_free(m);
            memset(m, 0, sizeof *m);
            return -1;
        }
    }
    if (meta) {
        *meta = xmalloc((size_t)meta_len + 1, 1);
        memcpy(*meta, buf + meta_off, meta_len);
        (*meta)[meta_len] = '\0';
    }
    return 0;
}

int qb_model_save(const qb_model *m, const char *path, const char *meta, qb_error *err)
{
    uint8_t *buf;
    size_t len;
    if (qb_model_encode(m, meta, &buf, &len, err)) return -1;
    int rc = qb_file_write_atomic(path, buf, len, err);
    free(buf);
    return rc;
}

int qb_model_load(qb_model *m, const char *path, char **meta, qb_error *err)
{
    uint8_t *buf;
    size_t len;
    memset(m, 0, sizeof *m);
    if (qb_file_read_all(path, (size_t)1 << 30, &buf, &len, err)) return -1;
    int rc = qb_model_decode(buf, len, path, m, meta, err);
    free(buf);
    return rc;
}
