/* The registered defenses: the `defense` axis values that run something
 * (`none` is the pipeline's own). The one list: the spec parser
 * (jobs/axis_values.c) reads its names and parameter tables from here. */
#include "defenses/defense.h"

const qb_defense_entry qb_defenses[] = {
    /* name, alias_of      function              parameters */
    {{"nc", NULL}, qb_defense_nc, qb_nc_params},
    {{"ac", NULL}, qb_defense_ac, qb_ac_params},
    {{"ss", NULL}, qb_defense_ss, qb_ss_params},
    {{"strip", NULL}, qb_defense_strip, qb_strip_params},
    {{"fp", NULL}, qb_defense_fp, qb_fp_params},
    {{"forensics", NULL}, qb_defense_forensics, qb_forensics_params},
    {{NULL, NULL}, NULL, NULL},
};

const qb_defense_entry *qb_defense_find(const char *name)
{
    return qb_registry_find(qb_defenses, sizeof *qb_defenses, name);
}
