/* Whole-file reads, atomic writes and directory syncing (core/file.h). */
#include "core/file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/xalloc.h"

int qb_file_read_all(const char *path, size_t max, uint8_t **buf, size_t *len, qb_error *err)
{
    FILE *f = fopen(path, "rb");
    if (!f) return QB_FAIL(err, "cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(f);
        return QB_FAIL(err, "%s is not a regular file", path);
    }
    if ((uint64_t)st.st_size > max) {
        fclose(f);
        return QB_FAIL(err, "%s is %lld bytes; refusing files over %zu bytes", path,
                       (long long)st.st_size, max);
    }
    size_t n = (size_t)st.st_size;
    uint8_t *b = xmalloc(n ? n : 1, 1);
    size_t got = fread(b, 1, n, f);
    int rerr = ferror(f);
    fclose(f);
    if (got != n || rerr) {
        free(b);
        return QB_FAIL(err, "short read of %s at offset %zu of %zu", path, got, n);
    }
    *buf = b;
    *len = n;
    return 0;
}

int qb_file_write_atomic(const char *path, const void *buf, size_t len, qb_error *err)
{
    size_t plen = strlen(path) + 32;
    char *tmp = xmalloc(plen, 1);
    snprintf(tmp, plen, "%s.tmp.%ld", path, (long)getpid());
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        QB_FAIL(err, "cannot create %s: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    const uint8_t *p = buf;
    size_t left = len;
    int rc = 0;
    while (left > 0) {
        ssize_t w = write(fd, p, left);
        if (w < 0) {
            if (errno == EINTR) continue;
            rc = QB_FAIL(err, "writing %s at offset %zu: %s", tmp, len - left, strerror(errno));
            break;
        }
        p += w;
        left -= (size_t)w;
    }
    if (rc == 0 && fsync(fd) != 0)
        rc = QB_FAIL(err, "fsync of %s: %s", tmp, strerror(errno));
    if (close(fd) != 0 && rc == 0) rc = QB_FAIL(err, "closing %s: %s", tmp, strerror(errno));
    if (rc == 0 && rename(tmp, path) != 0)
        rc = QB_FAIL(err, "renaming %s to %s: %s", tmp, path, strerror(errno));
    if (rc != 0) unlink(tmp);
    free(tmp);
    return rc;
}

char *qb_file_dirname(const char *path)
{
    char *dir = xstrdup(path);
    char *slash = strrchr(dir, '/');
    if (!slash) {
        free(dir);
        return xstrdup(".");
    }
    if (slash == dir)
        slash[1] = '\0';
    else
        *slash = '\0';
    return dir;
}

void qb_file_sync_dir(const char *path)
{
    char *dir = qb_file_dirname(path);
    int fd = open(dir, O_RDONLY);
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    free(dir);
}
