/* IDX reader (MNIST, Fashion-MNIST).
 *
 * Format (big-endian 32-bit words): images = magic 2051, count, rows, cols,
 * then count*rows*cols bytes; labels = magic 2049, count, then count bytes.
 * zlib's gzread reads gzip and plain files alike, so one path serves both.
 * Offsets in messages are offsets into the uncompressed stream. */
#include "core/dataset.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "core/file.h"
#include "core/xalloc.h"

enum {
    QB_IDX_MAGIC_IMAGES = 2051, /* 0x00000803: unsigned byte, 3 dimensions */
    QB_IDX_MAGIC_LABELS = 2049, /* 0x00000801: unsigned byte, 1 dimension */
    QB_IDX_MAX_DIM = 1024,      /* an image side; MNIST is 28 */
    QB_IDX_CLASSES = 10,
};
/* Refuse absurd counts before reading: 10 million images is 7x MNIST-sized
 * ImageNet; anything beyond is a corrupt or hostile header. */
#define QB_IDX_MAX_COUNT 10000000u
/* Buffers grow with the data actually read, at most this much at a time,
 * so a header announcing more than the file holds costs no more memory than
 * the file. */
#define QB_IDX_CHUNK ((size_t)16 << 20)

typedef struct idx_file {
    gzFile f;
    const char *path;
    size_t off; /* uncompressed bytes consumed so far */
} idx_file;

static int idx_open(idx_file *x, const char *path, qb_error *err)
{
    x->path = path;
    x->off = 0;
    int fd = qb_file_open_regular(path, NULL, err);
    if (fd < 0) return -1;
    errno = 0;
    x->f = gzdopen(fd, "rb");
    if (!x->f) {
        QB_FAIL(err, "%s: cannot open: %s", path, errno ? strerror(errno) : "out of memory");
        close(fd);
        return -1;
    }
    return 0;
}

/* Read up to len bytes; returns the number read (short at end of data) or
 * -1 with err set on a read or decompression error. */
static long long idx_read(idx_file *x, void *buf, size_t len, qb_error *err)
{
    size_t got = 0;
    while (got < len) {
        size_t want = len - got;
        if (want > (size_t)INT_MAX / 2) want = (size_t)INT_MAX / 2;
        int r = gzread(x->f, (uint8_t *)buf + got, (unsigned)want);
        if (r < 0) {
            int code = 0;
            const char *m = gzerror(x->f, &code);
            return QB_FAIL(err, "%s: byte offset %zu: read error: %s", x->path, x->off + got,
                           code == Z_ERRNO ? strerror(errno) : m);
        }
        if (r == 0) break;
        got += (size_t)r;
    }
    x->off += got;
    return (long long)got;
}

/* Read exactly len bytes or fail naming the offset where data ran out. */
static int idx_read_exact(idx_file *x, void *buf, size_t len, const char *what, qb_error *err)
{
    size_t start = x->off;
    long long r = idx_read(x, buf, len, err);
    if (r < 0) return -1;
    if ((size_t)r < len)
        return QB_FAIL(err, "%s: byte offset %zu: file ends inside the %s (%zu of %zu bytes from "
                            "offset %zu)",
                       x->path, x->off, what, (size_t)r, len, start);
    return 0;
}

static uint32_t be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

/* Read exactly len payload bytes into a buffer that grows as data arrives.
 * Returns a malloc'd buffer or NULL with err set. */
static uint8_t *idx_read_payload(idx_file *x, size_t len, const char *what, qb_error *err)
{
    size_t cap = len < QB_IDX_CHUNK ? len : QB_IDX_CHUNK;
    uint8_t *buf = xmalloc(cap ? cap : 1, 1);
    size_t have = 0;
    while (have < len) {
        if (have == cap) {
            cap = (len - cap < cap) ? len : 2 * cap;
            buf = xrealloc(buf, cap, 1);
        }
        size_t want = cap - have;
        long long r = idx_read(x, buf + have, want, err);
        if (r < 0) goto fail;
        have += (size_t)r;
        if ((size_t)r < want) {
            QB_FAIL(err, "%s: byte offset %zu: file ends inside the %s: %zu of the announced %zu "
                         "bytes present",
                    x->path, x->off, what, have, len);
            goto fail;
        }
    }
    return buf;
fail:
    free(buf);
    return NULL;
}

/* The file must end exactly where the header says it does. */
static int idx_expect_eof(idx_file *x, qb_error *err)
{
    uint8_t extra;
    long long r = idx_read(x, &extra, 1, err);
    if (r < 0) return -1;
    if (r > 0)
        return QB_FAIL(err, "%s: byte offset %zu: unexpected data after the announced end of file",
                       x->path, x->off - 1);
    return 0;
}

static void idx_close(idx_file *x)
{
    if (x->f) gzclose(x->f);
    x->f = NULL;
}

/* Open path and read its hlen-byte header into h; the magic must be
 * `magic` (an IDX `kind` file: "image" or "label"). On error x is closed. */
static int idx_open_header(idx_file *x, const char *path, uint8_t *h, size_t hlen,
                           uint32_t magic, const char *kind, qb_error *err)
{
    if (idx_open(x, path, err)) return -1;
    char what[48];
    snprintf(what, sizeof what, "%zu-byte IDX %s header", hlen, kind);
    if (idx_read_exact(x, h, hlen, what, err)) goto fail;
    uint32_t got = be32(h);
    if (got != magic) {
        QB_FAIL(err, "%s: byte offset 0: bad magic %u (0x%08x), expected %u for an IDX %s file",
                path, got, got, magic, kind);
        goto fail;
    }
    return 0;
fail:
    idx_close(x);
    return -1;
}

/* After the payload buf: the file must end there. Closes x; on error frees
 * buf and returns -1. */
static int idx_finish(idx_file *x, uint8_t *buf, qb_error *err)
{
    int rc = idx_expect_eof(x, err);
    idx_close(x);
    if (rc) free(buf);
    return rc;
}

/* Images file: header checks, then the pixels. */
static int idx_read_images(const char *path, uint32_t *count, uint32_t *rows, uint32_t *cols,
                           uint8_t **pixels, qb_error *err)
{
    idx_file x;
    uint8_t h[16];
    if (idx_open_header(&x, path, h, sizeof h, QB_IDX_MAGIC_IMAGES, "image", err)) return -1;
    uint32_t n = be32(h + 4), r = be32(h + 8), c = be32(h + 12);
    if (n == 0 || n > QB_IDX_MAX_COUNT) {
        QB_FAIL(err, "%s: byte offset 4: image count %u outside 1..%u", path, n, QB_IDX_MAX_COUNT);
        goto fail;
    }
    if (r == 0 || r > QB_IDX_MAX_DIM) {
        QB_FAIL(err, "%s: byte offset 8: row count %u outside 1..%d", path, r, QB_IDX_MAX_DIM);
        goto fail;
    }
    if (c == 0 || c > QB_IDX_MAX_DIM) {
        QB_FAIL(err, "%s: byte offset 12: column count %u outside 1..%d", path, c, QB_IDX_MAX_DIM);
        goto fail;
    }
    uint8_t *px = idx_read_payload(&x, (size_t)n * r * c, "image data", err);
    if (!px) goto fail;
    if (idx_finish(&x, px, err)) return -1;
    *count = n;
    *rows = r;
    *cols = c;
    *pixels = px;
    return 0;
fail:
    idx_close(&x);
    return -1;
}

static int idx_read_labels(const char *path, uint32_t expect_n, uint8_t **labels, qb_error *err)
{
    idx_file x;
    uint8_t h[8];
    if (idx_open_header(&x, path, h, sizeof h, QB_IDX_MAGIC_LABELS, "label", err)) return -1;
    uint32_t n = be32(h + 4);
    if (n != expect_n) {
        QB_FAIL(err, "%s: byte offset 4: label count %u does not match the image count %u", path,
                n, expect_n);
        goto fail;
    }
    uint8_t *lab = idx_read_payload(&x, n, "label data", err);
    if (!lab) goto fail;
    for (uint32_t i = 0; i < n; i++) {
        if (lab[i] >= QB_IDX_CLASSES) {
            QB_FAIL(err, "%s: byte offset %u: label %u out of range 0..%d (sample %u)", path,
                    8u + i, lab[i], QB_IDX_CLASSES - 1, i);
            free(lab);
            goto fail;
        }
    }
    if (idx_finish(&x, lab, err)) return -1;
    *labels = lab;
    return 0;
fail:
    idx_close(&x);
    return -1;
}

int qb_idx_load(const char *images_path, const char *labels_path, const char *name,
                qb_dataset *out, qb_error *err)
{
    memset(out, 0, sizeof *out);
    uint32_t n = 0, rows = 0, cols = 0;
    uint8_t *px = NULL, *lab = NULL;
    if (idx_read_images(images_path, &n, &rows, &cols, &px, err)) return -1;
    if (idx_read_labels(labels_path, n, &lab, err)) {
        free(px);
        return -1;
    }
    /* Hand the buffers over instead of copying 47 MB. */
    snprintf(out->name, sizeof out->name, "%s", name ? name : "idx");
    out->c = 1;
    out->h = (int)rows;
    out->w = (int)cols;
    out->classes = QB_IDX_CLASSES;
    out->n = n;
    out->images = px;
    out->labels = lab;
    return 0;
}
