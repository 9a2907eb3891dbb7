/* Helpers shared by the libFuzzer harnesses (fuzz/fuzz_*.c): a private
 * temporary directory per process, writing an input into a file there,
 * splitting one input into parts, and re-computing the CRC-32 trailer of
 * the .qbm/.qbq formats so mutations reach the parsers behind the check.
 * Built only with -DQBLIND_FUZZ=ON (fuzz/CMakeLists.txt). */
#ifndef QB_FUZZ_UTIL_H
#define QB_FUZZ_UTIL_H

#include <stddef.h>
#include <stdint.h>

/* The process's temporary directory (made on first use, removed at exit
 * with everything in it). Aborts if it cannot be made. */
const char *qb_fuzz_tmpdir(void);

/* Make dir (and its parents) below qb_fuzz_tmpdir(); returns its full
 * path in buf (n bytes). `rel` may be "" for the directory itself. */
const char *qb_fuzz_path(const char *rel, char *buf, size_t n);
void qb_fuzz_mkdirs(const char *rel);

/* Write len bytes to rel (below the temporary directory), replacing it.
 * Aborts on an I/O error (the harness, not the reader, would be at fault). */
void qb_fuzz_write(const char *rel, const uint8_t *data, size_t len);
/* Remove rel if present. */
void qb_fuzz_remove(const char *rel);

/* Split data at each occurrence of sep (not included in any part) into at
 * most max parts: part[i] = (ptr, len). Returns the number of parts (>= 1;
 * the last part holds the rest, separators included, once max is hit). */
typedef struct qb_fuzz_part {
    const uint8_t *p;
    size_t n;
} qb_fuzz_part;
int qb_fuzz_split(const uint8_t *data, size_t len, const char *sep, qb_fuzz_part *part, int max);

/* Store crc32 of buf[0..len-4) little-endian in the last 4 bytes
 * (nothing if len < 4): the trailer of .qbm and .qbq files. */
void qb_fuzz_fix_crc(uint8_t *buf, size_t len);

#endif
