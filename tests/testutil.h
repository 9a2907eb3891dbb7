/* Shared helpers for the cmocka suites. */
#ifndef QB_TESTUTIL_H
#define QB_TESTUTIL_H

#include <stddef.h>

/* A fresh empty directory under $TMPDIR (or /tmp), removed by
 * qb_test_tmpdir_remove. Returns a malloc'd path. */
char *qb_test_tmpdir(void);
void qb_test_tmpdir_remove(const char *dir);
/* Write bytes to path (asserts on failure). */
void qb_test_write_file(const char *path, const void *data, size_t len);
/* path of a committed fixture: $QBLIND_FIXTURES/name (malloc'd). */
char *qb_test_fixture_path(const char *name);

#endif
