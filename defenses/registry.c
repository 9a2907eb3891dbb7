/* The registered defenses: the `defense` axis values that run something
 * (`none` is the pipeline's own). jobs/axis_values.c lists the same names
 * with the same parameter tables for the spec parser. */
#include <string.h>

#include "defenses/defense.h"

const qb_defense_entry qb_defenses[] = {
    {"forensics", qb_defense_forensics, qb_forensics_params},
    {NULL, NULL, NULL},
};

const qb_defense_entry *qb_defense_find(const char *name)
{
    for (const qb_defense_entry *e = qb_defenses; e->name; e++)
        if (!strcmp(e->name, name)) return e;
    return NULL;
}
