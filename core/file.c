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

/* "a directory", "a FIFO (named pipe)", ... for a non-regular st_mode. */
static const char *file_kind(mode_t mode)
{
    if (S_ISDIR(mode)) return "a directory";
    if (S_ISFIFO(mode)) return "a FIFO (named pipe)";
    if (S_ISCHR(mode)) return "a character device";
    if (S_ISBLK(mode)) return "a block device";
    if (S_ISSOCK(mode)) return "a socket";
    return "not a regular file";
}

int qb_file_open_regular(const char *path, const char *what, qb_error *err)
{
    const char *sp = what && what[0] ? " " : "";
    if (!what) what = "";
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd < 0 && what[0])
        return QB_FAIL(err, "cannot open %s %s: %s", what, path, strerror(errno));
    if (fd < 0) return QB_FAIL(err, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        int e = errno;
        close(fd);
        return QB_FAIL(err, "%s%s%s: cannot stat: %s", what, sp, path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return QB_FAIL(err, "%s%s%s is %s, not a regular file", what, sp, path,
                       file_kind(st.st_mode));
    }
    int flags = fcntl(fd, F_GETFL);
    if (flags < 0 || fcntl(fd, F_SETFL, flags & ~O_NONBLOCK) < 0) {
        int e = errno;
        close(fd);
        return QB_FAIL(err, "%s%s%s: fcntl: %s", what, sp, path, strerror(e));
    }
    return fd;
}

FILE *qb_file_fopen_regular(const char *path, const char *what, qb_error *err)
{
    int fd = qb_file_open_regular(path, what, err);
    if (fd < 0) return NULL;
    FILE *f = fdopen(fd, "rb");
    if (!f) {
        QB_FAIL(err, "%s: cannot open: %s", path, strerror(errno));
        close(fd);
    }
    return f;
}

int qb_file_check_regular(const char *path, const char *what, qb_error *err)
{
    int fd = qb_file_open_regular(path, what, err);
    if (fd < 0) return -1;
    close(fd);
    return 0;
}

int qb_file_check_dir(const char *path, const char *what, qb_error *err)
{
    struct stat st;
    if (stat(path, &st) != 0) return QB_FAIL(err, "%s %s: %s", what, path, strerror(errno));
    if (!S_ISDIR(st.st_mode))
        return QB_FAIL(err, "%s %s is %s, not a directory", what, path,
                       S_ISREG(st.st_mode) ? "a regular file" : file_kind(st.st_mode));
    return 0;
}

int qb_file_check_not_input(const char *out, const char *const *inputs, size_t n_inputs,
                            qb_error *err)
{
    struct stat so, si;
    if (stat(out, &so) != 0) return 0;
    for (size_t i = 0; i < n_inputs; i++)
        if (inputs[i] && stat(inputs[i], &si) == 0 && si.st_dev == so.st_dev &&
            si.st_ino == so.st_ino)
            return QB_FAIL(err, "refusing to write %s: it is the input %s; choose another output",
                           out, inputs[i]);
    return 0;
}

/* "path.tmp.<pid>", malloc'd. */
static char *temp_name(const char *path)
{
    size_t plen = strlen(path) + 32;
    char *tmp = xmalloc(plen, 1);
    snprintf(tmp, plen, "%s.tmp.%ld", path, (long)getpid());
    return tmp;
}

int qb_file_out_open(qb_file_out *o, const char *path, qb_error *err)
{
    o->path = xstrdup(path);
    o->tmp = temp_name(path);
    int fd = open(o->tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    o->f = fd < 0 ? NULL : fdopen(fd, "w");
    if (!o->f) {
        QB_FAIL(err, "cannot create %s: %s", o->tmp, strerror(errno));
        if (fd >= 0) close(fd);
        unlink(o->tmp);
        free(o->tmp);
        free(o->path);
        return -1;
    }
    return 0;
}

void qb_file_out_abort(qb_file_out *o)
{
    if (o->f) fclose(o->f);
    unlink(o->tmp);
    free(o->tmp);
    free(o->path);
    o->f = NULL;
    o->tmp = o->path = NULL;
}

int qb_file_out_commit(qb_file_out *o, qb_error *err)
{
    int rc = 0;
    if (fflush(o->f) != 0 || ferror(o->f))
        rc = QB_FAIL(err, "writing %s: %s", o->tmp, strerror(errno));
    else if (fsync(fileno(o->f)) != 0)
        rc = QB_FAIL(err, "fsync of %s: %s", o->tmp, strerror(errno));
    int closed = fclose(o->f);
    o->f = NULL;
    if (closed != 0 && rc == 0) rc = QB_FAIL(err, "closing %s: %s", o->tmp, strerror(errno));
    if (rc == 0 && rename(o->tmp, o->path) != 0)
        rc = QB_FAIL(err, "renaming %s to %s: %s", o->tmp, o->path, strerror(errno));
    if (rc == 0) qb_file_sync_dir(o->path);
    qb_file_out_abort(o); /* frees; the temporary is gone either way */
    return rc;
}

int qb_file_read_all(const char *path, size_t max, uint8_t **buf, size_t *len, qb_error *err)
{
    FILE *f = qb_file_fopen_regular(path, NULL, err);
    if (!f) return -1;
    struct stat st;
    if (fstat(fileno(f), &st) != 0) {
        fclose(f);
        return QB_FAIL(err, "cannot stat %s: %s", path, strerror(errno));
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
    char *tmp = temp_name(path);
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
