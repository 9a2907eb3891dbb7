/* A defense's verdict on a model: the `detected` column of the results
 * file (store/results.h stores it as an HDF5 enum with these values). */
#ifndef QB_VERDICT_H
#define QB_VERDICT_H

typedef enum qb_detected {
    QB_DETECTED_NA = -1,   /* no defense, or the defense does not apply */
    QB_DETECTED_NO = 0,
    QB_DETECTED_YES = 1,
    QB_DETECTED_ERROR = 2, /* the defense could not run: never "not detected" */
} qb_detected;

#endif
