#include "fuzz_util.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

static char tmpdir[256];

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static void tmpdir_remove(void)
{
    if (tmpdir[0]) nftw(tmpdir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

const char *qb_fuzz_tmpdir(void)
{
    if (!tmpdir[0]) {
        const char *base = getenv("TMPDIR");
        snprintf(tmpdir, sizeof tmpdir, "%s/qblind-fuzz-XXXXXX", base && *base ? base : "/tmp");
        if (!mkdtemp(tmpdir)) {
            perror("fuzz: mkdtemp");
            abort();
        }
        atexit(tmpdir_remove);
    }
    return tmpdir;
}

const char *qb_fuzz_path(const char *rel, char *buf, size_t n)
{
    int len = snprintf(buf, n, "%s%s%s", qb_fuzz_tmpdir(), *rel ? "/" : "", rel);
    if (len < 0 || (size_t)len >= n) abort();
    return buf;
}

void qb_fuzz_mkdirs(const char *rel)
{
    char path[1024];
    qb_fuzz_path(rel, path, sizeof path);
    for (char *p = path + strlen(qb_fuzz_tmpdir()) + 1; *p; p++) {
        if (*p != '/') continue;
        *p = '\0';
        if (mkdir(path, 0700) != 0 && errno != EEXIST) abort();
        *p = '/';
    }
    if (mkdir(path, 0700) != 0 && errno != EEXIST) abort();
}

void qb_fuzz_write(const char *rel, const uint8_t *data, size_t len)
{
    char path[1024];
    qb_fuzz_path(rel, path, sizeof path);
    FILE *f = fopen(path, "wb");
    if (!f || (len && fwrite(data, 1, len, f) != len) || fclose(f) != 0) {
        perror(path);
        abort();
    }
}

void qb_fuzz_remove(const char *rel)
{
    char path[1024];
    remove(qb_fuzz_path(rel, path, sizeof path));
}

int qb_fuzz_split(const uint8_t *data, size_t len, const char *sep, qb_fuzz_part *part, int max)
{
    size_t sl = strlen(sep), start = 0;
    int n = 0;
    for (size_t i = 0; n < max - 1 && sl && i + sl <= len; i++) {
        if (memcmp(data + i, sep, sl) != 0) continue;
        part[n].p = data + start;
        part[n].n = i - start;
        n++;
        start = i + sl;
        i = start - 1;
    }
    part[n].p = data + start;
    part[n].n = len - start;
    return n + 1;
}

void qb_fuzz_fix_crc(uint8_t *buf, size_t len)
{
    if (len < 4) return;
    uint32_t c = (uint32_t)crc32(0L, buf, (uInt)(len - 4));
    buf[len - 4] = (uint8_t)c;
    buf[len - 3] = (uint8_t)(c >> 8);
    buf[len - 2] = (uint8_t)(c >> 16);
    buf[len - 1] = (uint8_t)(c >> 24);
}
