/* The registered defenses: the `defense` axis values that run something
 * (`none` is the pipeline's own). The one list: the spec parser
 * (jobs/axis_values.c) reads its names and parameter tables from here. */
#include <string.h>

#include "defenses/defense.h"

const qb_defense_entry qb_defenses[] = {
    /* name       function              parameters           alias_of */
    {"nc", qb_defense_nc, qb_nc_params, NULL},
    {"ac", qb_defense_ac, qb_ac_params, NULL},
    {"ss", qb_defense_ss, qb_ss_params, NULL},
    {"strip", qb_defense_strip, qb_strip_params, NULL},
    {"fp", qb_defense_fp, qb_fp_params, NULL},
    {"forensics", qb_defense_forensics, qb_forensics_params, NULL},
    {NULL, NULL, NULL, NULL},
};

const qb_defense_entry *qb_defense_find(const char *name)
{
    for (const qb_defense_entry *e = qb_defenses; e->name; e++)
        if (!strcmp(e->name, name)) return e->alias_of ? qb_defense_find(e->alias_of) : e;
    return NULL;
}
