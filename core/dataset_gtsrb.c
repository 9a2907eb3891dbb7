/* GTSRB reader (German Traffic Sign Recognition Benchmark, final set).
 *
 * Layout (as the official zips extract):
 *   dir/Final_Training/Images/000NN/GT-000NN.csv   NN = 00..42, + PPM files
 *   dir/Final_Test/Images/GT-final_test.csv        from GTSRB_Final_Test_GT.zip,
 *                                                  + PPM files (also accepted
 *                                                  as dir/GT-final_test.csv)
 * CSV: one header line "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId",
 * then one line per image. ROI corners are inclusive pixel coordinates.
 * Images are binary PPM (P6, maxval 255). Each is cropped to its ROI and
 * resized bilinearly (pixel centres aligned, as PIL/torch without
 * align_corners) to 3x32x32. Everything read is checked: CSV errors name
 * the file, line and field; PPM errors name the file and byte offset. */
#include "core/dataset.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "core/file.h"
#include "core/xalloc.h"

enum {
    QB_GTSRB_CLASSES = 43,
    QB_GTSRB_SIDE = 32,
    QB_GTSRB_MAX_SIDE = 4096,   /* real images are 15..250 px */
    QB_GTSRB_FIELDS = 8,
    QB_GTSRB_NAME_MAX = 128,    /* image file name length limit */
    QB_GTSRB_PATH_MAX = 1200,
};
/* A CSV is a few hundred kB (the test one: 12630 lines); refuse files that
 * could only be corrupt before reading them into memory. */
#define QB_GTSRB_MAX_CSV_BYTES ((long long)64 << 20)
#define QB_GTSRB_MAX_IMAGES ((size_t)10000000)

static const char *const gt_columns[QB_GTSRB_FIELDS] = {
    "Filename", "Width", "Height", "Roi.X1", "Roi.Y1", "Roi.X2", "Roi.Y2", "ClassId"};

/* One folder of images with its CSV. */
typedef struct gt_source {
    char img_dir[QB_GTSRB_PATH_MAX];
    char csv[QB_GTSRB_PATH_MAX];
} gt_source;

/* One CSV row, checked. */
typedef struct gt_entry {
    char file[QB_GTSRB_NAME_MAX];
    int w, h, x1, y1, x2, y2;
    uint8_t cls;
    uint16_t src;  /* index into the gt_source array */
    uint32_t line; /* CSV line, for messages about the image */
} gt_entry;

typedef struct gt_list {
    gt_entry *e;
    size_t n, cap;
} gt_list;

static void gt_list_push(gt_list *l, const gt_entry *e)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 1024;
        l->e = xrealloc(l->e, l->cap, sizeof *l->e);
    }
    l->e[l->n++] = *e;
}

/* Whole file into a NUL-terminated buffer (size-limited). */
static char *gt_read_text(const char *path, size_t *len, qb_error *err)
{
    FILE *f = qb_file_fopen_regular(path, NULL, err);
    if (!f) return NULL;
    struct stat st;
    if (fstat(fileno(f), &st) != 0) { /* a regular file: qb_file_fopen_regular checked */
        QB_FAIL(err, "%s: cannot stat: %s", path, strerror(errno));
        fclose(f);
        return NULL;
    }
    if ((long long)st.st_size > QB_GTSRB_MAX_CSV_BYTES) {
        QB_FAIL(err, "%s: %lld bytes, larger than the %lld-byte limit for a GTSRB CSV", path,
                (long long)st.st_size, QB_GTSRB_MAX_CSV_BYTES);
        fclose(f);
        return NULL;
    }
    size_t size = (size_t)st.st_size;
    char *buf = xmalloc(size + 1, 1);
    size_t got = fread(buf, 1, size, f);
    if (got != size) {
        QB_FAIL(err, "%s: byte offset %zu: short read (file is %zu bytes)", path, got, size);
        free(buf);
        fclose(f);
        return NULL;
    }
    fclose(f);
    buf[size] = '\0';
    *len = size;
    return buf;
}

/* Non-negative decimal integer of at most 6 digits, nothing else. */
static int gt_parse_uint(const char *s, int *out)
{
    if (!*s || strlen(s) > 6) return -1;
    int v = 0;
    for (const char *p = s; *p; p++) {
        if (*p < '0' || *p > '9') return -1;
        v = v * 10 + (*p - '0');
    }
    *out = v;
    return 0;
}

/* Split line (modified in place) on ';' into at most max fields. Returns the
 * number of fields found (max + 1 means "too many"). */
static int gt_split(char *line, char **fields, int max)
{
    int n = 0;
    char *p = line;
    for (;;) {
        if (n == max) return max + 1;
        fields[n++] = p;
        char *semi = strchr(p, ';');
        if (!semi) return n;
        *semi = '\0';
        p = semi + 1;
    }
}

/* Parse one GT CSV, appending its rows. want_class >= 0 requires every row
 * to have that ClassId (training folders hold one class each). */
static int gt_parse_csv(const gt_source *src, uint16_t src_idx, int want_class, gt_list *out,
                        qb_error *err)
{
    const char *path = src->csv;
    size_t len = 0;
    char *text = gt_read_text(path, &len, err);
    if (!text) return -1;
    if (memchr(text, '\0', len)) {
        QB_FAIL(err, "%s: byte offset %zu: NUL byte in a text file", path,
                (size_t)((char *)memchr(text, '\0', len) - text));
        free(text);
        return -1;
    }
    char *p = text;
    uint32_t line = 0;
    int seen_header = 0;
    while (*p) {
        line++;
        char *nl = strchr(p, '\n');
        char *next = nl ? nl + 1 : p + strlen(p);
        if (nl) *nl = '\0';
        size_t ll = strlen(p);
        if (ll && p[ll - 1] == '\r') p[--ll] = '\0';
        if (ll == 0) { /* blank lines carry nothing */
            p = next;
            continue;
        }
        char *f[QB_GTSRB_FIELDS + 1];
        int nf = gt_split(p, f, QB_GTSRB_FIELDS);
        if (!seen_header) {
            for (int i = 0; i < QB_GTSRB_FIELDS; i++) {
                if (i >= nf || strcmp(f[i], gt_columns[i]) != 0) {
                    QB_FAIL(err, "%s: line %u, field %d: header must be "
                                 "Filename;Width;Height;Roi.X1;Roi.Y1;Roi.X2;Roi.Y2;ClassId "
                                 "(expected '%s', found '%s')",
                            path, line, i + 1, gt_columns[i], i < nf ? f[i] : "(end of line)");
                    goto fail;
                }
            }
            if (nf > QB_GTSRB_FIELDS) {
                QB_FAIL(err, "%s: line %u: header has more than %d fields", path, line,
                        QB_GTSRB_FIELDS);
                goto fail;
            }
            seen_header = 1;
            p = next;
            continue;
        }
        if (nf != QB_GTSRB_FIELDS) {
            QB_FAIL(err, "%s: line %u: %s fields, expected %d separated by ';'", path, line,
                    nf > QB_GTSRB_FIELDS ? "too many" : "too few", QB_GTSRB_FIELDS);
            goto fail;
        }
        gt_entry e;
        memset(&e, 0, sizeof e);
        /* The file name is joined to a directory: no separators, no "..". */
        size_t fl = strlen(f[0]);
        if (fl == 0 || fl >= QB_GTSRB_NAME_MAX || strchr(f[0], '/') || strcmp(f[0], ".") == 0 ||
            strcmp(f[0], "..") == 0) {
            QB_FAIL(err, "%s: line %u, field 1 (Filename): '%.60s' is not a plain file name of "
                         "1..%d characters",
                    path, line, f[0], QB_GTSRB_NAME_MAX - 1);
            goto fail;
        }
        memcpy(e.file, f[0], fl + 1);
        int v[QB_GTSRB_FIELDS];
        for (int i = 1; i < QB_GTSRB_FIELDS; i++) {
            if (gt_parse_uint(f[i], &v[i])) {
                QB_FAIL(err, "%s: line %u, field %d (%s): '%.40s' is not a non-negative integer",
                        path, line, i + 1, gt_columns[i], f[i]);
                goto fail;
            }
        }
        e.w = v[1];
        e.h = v[2];
        e.x1 = v[3];
        e.y1 = v[4];
        e.x2 = v[5];
        e.y2 = v[6];
        if (e.w < 1 || e.w > QB_GTSRB_MAX_SIDE || e.h < 1 || e.h > QB_GTSRB_MAX_SIDE) {
            QB_FAIL(err, "%s: line %u, field %d (%s): image size %dx%d outside 1..%d", path, line,
                    (e.w < 1 || e.w > QB_GTSRB_MAX_SIDE) ? 2 : 3,
                    (e.w < 1 || e.w > QB_GTSRB_MAX_SIDE) ? "Width" : "Height", e.w, e.h,
                    QB_GTSRB_MAX_SIDE);
            goto fail;
        }
        /* ROI corners are inclusive: 0 <= X1 <= X2 < Width, same for Y. */
        static const char *const roi_rule[4] = {"Roi.X1 <= Roi.X2", "Roi.Y1 <= Roi.Y2",
                                                "Roi.X2 < Width", "Roi.Y2 < Height"};
        int bad = e.x1 > e.x2 ? 3 : e.y1 > e.y2 ? 4 : e.x2 >= e.w ? 5 : e.y2 >= e.h ? 6 : 0;
        if (bad) {
            QB_FAIL(err, "%s: line %u, field %d (%s): ROI (%d,%d)-(%d,%d) out of bounds for a "
                         "%dx%d image (need %s)",
                    path, line, bad + 1, gt_columns[bad], e.x1, e.y1, e.x2, e.y2, e.w, e.h,
                    roi_rule[bad - 3]);
            goto fail;
        }
        if (v[7] >= QB_GTSRB_CLASSES || (want_class >= 0 && v[7] != want_class)) {
            if (v[7] >= QB_GTSRB_CLASSES)
                QB_FAIL(err, "%s: line %u, field 8 (ClassId): %d out of range 0..%d", path, line,
                        v[7], QB_GTSRB_CLASSES - 1);
            else
                QB_FAIL(err, "%s: line %u, field 8 (ClassId): %d in the folder of class %d", path,
                        line, v[7], want_class);
            goto fail;
        }
        e.cls = (uint8_t)v[7];
        e.src = src_idx;
        e.line = line;
        if (out->n >= QB_GTSRB_MAX_IMAGES) {
            QB_FAIL(err, "%s: line %u: more than %zu images in total", path, line,
                    QB_GTSRB_MAX_IMAGES);
            goto fail;
        }
        gt_list_push(out, &e);
        p = next;
    }
    if (!seen_header) {
        QB_FAIL(err, "%s: line 1: empty file (expected the GT CSV header)", path);
        goto fail;
    }
    free(text);
    return 0;
fail:
    free(text);
    return -1;
}

/* ---- PPM ----------------------------------------------------------------- */

typedef struct ppm_reader {
    FILE *f;
    const char *path;
    long off; /* bytes consumed */
} ppm_reader;

static int ppm_getc(ppm_reader *r)
{
    int ch = fgetc(r->f);
    if (ch != EOF) r->off++;
    return ch;
}

/* Header number: skip whitespace and '#' comments, then up to 5 digits
 * followed by one whitespace byte. */
static int ppm_number(ppm_reader *r, const char *what, int *out, qb_error *err)
{
    int ch;
    for (;;) {
        ch = ppm_getc(r);
        if (ch == '#') {
            while ((ch = ppm_getc(r)) != EOF && ch != '\n') {}
            if (ch == EOF) break;
            continue;
        }
        if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r' && ch != '\v' && ch != '\f') break;
    }
    long start = r->off - (ch == EOF ? 0 : 1);
    if (ch == EOF)
        return QB_FAIL(err, "%s: byte offset %ld: bad PPM header: file ends before the %s", r->path,
                       start, what);
    int v = 0, digits = 0;
    while (ch >= '0' && ch <= '9') {
        if (++digits > 5)
            return QB_FAIL(err, "%s: byte offset %ld: bad PPM header: %s too large", r->path,
                           start, what);
        v = v * 10 + (ch - '0');
        ch = ppm_getc(r);
    }
    if (digits == 0)
        return QB_FAIL(err, "%s: byte offset %ld: bad PPM header: expected the %s, found byte "
                            "0x%02x",
                       r->path, start, what, (unsigned)ch & 0xff);
    if (ch != ' ' && ch != '\t' && ch != '\n' && ch != '\r' && ch != '\v' && ch != '\f')
        return QB_FAIL(err, "%s: byte offset %ld: bad PPM header: %s not followed by whitespace",
                       r->path, r->off - (ch == EOF ? 0 : 1), what);
    *out = v;
    return 0;
}

/* Read a P6 image of exactly w x h pixels (the size the CSV announced) into
 * rgb (w*h*3 bytes, interleaved). */
static int ppm_read(const char *path, int w, int h, uint8_t *rgb, uint32_t csv_line,
                    const char *csv, qb_error *err)
{
    qb_error oerr;
    ppm_reader r = {.f = qb_file_fopen_regular(path, NULL, &oerr), .path = path, .off = 0};
    if (!r.f) return QB_FAIL(err, "%s (listed in %s line %u)", oerr.msg, csv, csv_line);
    int m0 = ppm_getc(&r), m1 = ppm_getc(&r);
    int pw = 0, ph = 0, maxval = 0;
    if (m0 != 'P' || m1 != '6') {
        QB_FAIL(err, "%s: byte offset 0: bad PPM magic (expected \"P6\", binary RGB)", path);
        goto fail;
    }
    int sep = ppm_getc(&r);
    if (sep != ' ' && sep != '\t' && sep != '\n' && sep != '\r') {
        QB_FAIL(err, "%s: byte offset 2: bad PPM header: no whitespace after \"P6\"", path);
        goto fail;
    }
    if (ppm_number(&r, "width", &pw, err) || ppm_number(&r, "height", &ph, err) ||
        ppm_number(&r, "maxval", &maxval, err))
        goto fail;
    if (maxval != 255) {
        QB_FAIL(err, "%s: byte offset %ld: bad PPM header: maxval %d, only 255 is supported", path,
                r.off, maxval);
        goto fail;
    }
    if (pw != w || ph != h) {
        QB_FAIL(err, "%s: byte offset 3: PPM is %dx%d but %s line %u says %dx%d", path, pw, ph,
                csv, csv_line, w, h);
        goto fail;
    }
    size_t need = (size_t)w * (size_t)h * 3;
    size_t got = fread(rgb, 1, need, r.f);
    if (got != need) {
        QB_FAIL(err, "%s: byte offset %ld: file ends inside the pixel data (%zu of %zu bytes)",
                path, r.off + (long)got, got, need);
        goto fail;
    }
    r.off += (long)need;
    if (fgetc(r.f) != EOF) {
        QB_FAIL(err, "%s: byte offset %ld: unexpected data after the pixels", path, r.off);
        goto fail;
    }
    fclose(r.f);
    return 0;
fail:
    fclose(r.f);
    return -1;
}

/* Crop rgb (h, w, 3 interleaved) to the inclusive ROI and resize bilinearly
 * to out (3, 32, 32) planar. Sample positions use pixel centres:
 * src = (dst + 0.5) * in/out - 0.5, clamped to the crop. */
static void gt_crop_resize(const uint8_t *rgb, int w, int x1, int y1, int x2, int y2,
                           uint8_t *out)
{
    const int cw = x2 - x1 + 1, chh = y2 - y1 + 1, S = QB_GTSRB_SIDE;
    int xs0[QB_GTSRB_SIDE], xs1[QB_GTSRB_SIDE];
    float fx[QB_GTSRB_SIDE];
    for (int o = 0; o < S; o++) {
        float s = ((float)o + 0.5f) * (float)cw / (float)S - 0.5f;
        if (s < 0.0f) s = 0.0f;
        if (s > (float)(cw - 1)) s = (float)(cw - 1);
        int i0 = (int)s;
        xs0[o] = i0;
        xs1[o] = i0 + 1 < cw ? i0 + 1 : cw - 1;
        fx[o] = s - (float)i0;
    }
    for (int oy = 0; oy < S; oy++) {
        float s = ((float)oy + 0.5f) * (float)chh / (float)S - 0.5f;
        if (s < 0.0f) s = 0.0f;
        if (s > (float)(chh - 1)) s = (float)(chh - 1);
        int j0 = (int)s, j1 = j0 + 1 < chh ? j0 + 1 : chh - 1;
        float fy = s - (float)j0;
        const uint8_t *row0 = rgb + ((size_t)(y1 + j0) * (size_t)w + (size_t)x1) * 3;
        const uint8_t *row1 = rgb + ((size_t)(y1 + j1) * (size_t)w + (size_t)x1) * 3;
        for (int ox = 0; ox < S; ox++) {
            for (int c = 0; c < 3; c++) {
                float a = row0[xs0[ox] * 3 + c], b = row0[xs1[ox] * 3 + c];
                float d = row1[xs0[ox] * 3 + c], e = row1[xs1[ox] * 3 + c];
                float top = a + (b - a) * fx[ox], bot = d + (e - d) * fx[ox];
                float v = top + (bot - top) * fy;
                out[((size_t)c * S + (size_t)oy) * S + (size_t)ox] = (uint8_t)lrintf(v);
            }
        }
    }
}

/* Parse every source's CSV, then read and resize every image. */
static int gt_load_split(const gt_source *srcs, int nsrc, int per_folder_class, qb_dataset *out,
                         qb_error *err)
{
    gt_list list = {0};
    for (int i = 0; i < nsrc; i++) {
        if (gt_parse_csv(&srcs[i], (uint16_t)i, per_folder_class ? i : -1, &list, err)) {
            free(list.e);
            return -1;
        }
    }
    if (list.n == 0) {
        QB_FAIL(err, "%s%s: no images listed", srcs[0].csv,
                nsrc > 1 ? " and the other class CSVs" : "");
        return -1;
    }
    qb_dataset_init(out, "gtsrb", list.n, 3, QB_GTSRB_SIDE, QB_GTSRB_SIDE, QB_GTSRB_CLASSES);
    uint8_t *rgb = NULL;
    size_t rgb_cap = 0;
    char path[2 * QB_GTSRB_PATH_MAX];
    for (size_t k = 0; k < list.n; k++) {
        const gt_entry *e = &list.e[k];
        const gt_source *s = &srcs[e->src];
        size_t need = (size_t)e->w * (size_t)e->h * 3;
        if (need > rgb_cap) {
            free(rgb);
            rgb = xmalloc(need, 1);
            rgb_cap = need;
        }
        snprintf(path, sizeof path, "%s/%s", s->img_dir, e->file);
        if (ppm_read(path, e->w, e->h, rgb, e->line, s->csv, err)) {
            free(rgb);
            free(list.e);
            qb_dataset_free(out);
            return -1;
        }
        gt_crop_resize(rgb, e->w, e->x1, e->y1, e->x2, e->y2,
                       out->images + k * qb_dataset_image_size(out));
        out->labels[k] = e->cls;
    }
    free(rgb);
    free(list.e);
    return 0;
}

static int file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0 && S_ISREG(st.st_mode);
}

int qb_gtsrb_load(const char *dir, qb_dataset *train, qb_dataset *test, qb_error *err)
{
    memset(train, 0, sizeof *train);
    memset(test, 0, sizeof *test);
    if (strlen(dir) > QB_GTSRB_PATH_MAX - 64)
        return QB_FAIL(err, "GTSRB directory path too long: %.100s...", dir);
    gt_source *srcs = xcalloc(QB_GTSRB_CLASSES, sizeof *srcs);
    for (int c = 0; c < QB_GTSRB_CLASSES; c++) {
        snprintf(srcs[c].img_dir, sizeof srcs[c].img_dir, "%s/Final_Training/Images/%05d", dir, c);
        snprintf(srcs[c].csv, sizeof srcs[c].csv, "%s/Final_Training/Images/%05d/GT-%05d.csv", dir,
                 c, c);
    }
    int rc = gt_load_split(srcs, QB_GTSRB_CLASSES, 1, train, err);
    free(srcs);
    if (rc) return -1;

    gt_source ts;
    snprintf(ts.img_dir, sizeof ts.img_dir, "%s/Final_Test/Images", dir);
    snprintf(ts.csv, sizeof ts.csv, "%s/Final_Test/Images/GT-final_test.csv", dir);
    if (!file_exists(ts.csv)) {
        char alt[QB_GTSRB_PATH_MAX];
        snprintf(alt, sizeof alt, "%s/GT-final_test.csv", dir);
        if (!file_exists(alt)) {
            qb_dataset_free(train);
            return QB_FAIL(err, "%s: missing (also looked for %s): the test labels come from "
                                "GTSRB_Final_Test_GT.zip; put its GT-final_test.csv there "
                                "(GT-final_test.test.csv has no ClassId column)",
                           ts.csv, alt);
        }
        memcpy(ts.csv, alt, sizeof alt);
    }
    if (gt_load_split(&ts, 1, 0, test, err)) {
        qb_dataset_free(train);
        return -1;
    }
    return 0;
}
