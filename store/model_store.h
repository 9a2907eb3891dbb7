/* The model store: trained FP32 models kept beside the results file so
 * that each distinct model of a sweep is trained once, and reused on
 * resume.
 *
 * A store is a directory (by default "<results>.models/"). A model lives
 * in "<model id as 16 hex digits>.qbm", written atomically (temporary file,
 * fsync, rename) in the .qbm format, whose loader checks every size and the
 * CRC. The model's canonical description (what was trained: dataset, seed,
 * trigger, training and attack settings) is stored as the file's metadata
 * and must match on load, so a hash collision or a stray file can never be
 * taken for the model. A file that fails any check is moved aside to
 * "<name>.corrupt" and reported as missing: the caller retrains it. */
#ifndef QB_MODEL_STORE_H
#define QB_MODEL_STORE_H

#include <stdint.h>

#include "core/error.h"
#include "core/model.h"

typedef struct qb_model_store {
    char dir[4096];
} qb_model_store;

/* Use (creating if needed, mode 0755) the directory `dir`. */
int qb_model_store_open(qb_model_store *s, const char *dir, qb_error *err);

/* The default store directory for a results file: "<results>.models". */
void qb_model_store_default_dir(const char *results_path, char *out, size_t out_len);

typedef enum qb_store_lookup {
    QB_STORE_FOUND = 0,
    QB_STORE_MISSING = 1,  /* absent, or present but corrupt (moved aside; see note) */
} qb_store_lookup;

/* Load model `id` whose canonical description is `key`. Returns FOUND
 * (*m is a new model), MISSING, or -1 on an I/O error that is not the
 * file's fault (err). If the file was corrupt or described another model,
 * *note receives why (NUL-terminated, may be empty) and it was moved aside. */
int qb_model_store_get(const qb_model_store *s, uint64_t id, const char *key, qb_model *m,
                       char *note, size_t note_len, qb_error *err);

/* Store model `id` (atomically). */
int qb_model_store_put(const qb_model_store *s, uint64_t id, const char *key, const qb_model *m,
                       qb_error *err);

/* The ids of every model file present (names "<16 hex digits>.qbm"), in
 * ascending order: *ids (malloc'd, free()), *n. One directory read, so a
 * resumed sweep learns what is stored without a stat per model. The files
 * are not checked here (qb_model_store_get does that). */
int qb_model_store_list(const qb_model_store *s, uint64_t **ids, size_t *n, qb_error *err);

/* Path of model `id` in the store. */
void qb_model_store_path(const qb_model_store *s, uint64_t id, char *out, size_t out_len);

#endif
