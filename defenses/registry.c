/* The registered defenses: the `defense` axis values that run something
 * (`none` is the pipeline's own). jobs/axis_values.c lists the same names
 * with the same parameter tables for the spec parser. */
#include <string.h>

#include "defenses/defense.h"

const qb_defense_entry qb_defenses[] = {
    {"nc", qb_defense_nc, qb_nc_params},
    {"ac", qb_defense_ac, qb_ac_params},
    {"ss", qb_defense_ss, qb_ss_params},
    {"strip", qb_defense_strip, qb_strip_params},
    {"fp", qb_defense_fp, qb_fp_params},
    {"forensics", qb_defense_forensics, qb_forensics_params},
    {NULL, NULL, NULL},
};

const qb_defense_entry *qb_defense_find(const char *name)
{
    for (const qb_defense_entry *e = qb_defenses; e->name; e++)
        if (!strcmp(e->name, name)) return e;
    return NULL;
}
