/* The registered triggers (attacks/registry.h): one line each. */
#include "attacks/registry.h"

const qb_trigger_entry qb_triggers[] = {
    /* name, alias_of      pattern              quantization-activated */
    {{"clean", NULL}, QB_TRIGGER_NONE, QB_QA_NONE},
    {{"square", NULL}, QB_TRIGGER_SQUARE, QB_QA_NONE},
    {{"badnet", "square"}, QB_TRIGGER_SQUARE, QB_QA_NONE},
    {{"checker", NULL}, QB_TRIGGER_CHECKER, QB_QA_NONE},
    {{"noise", NULL}, QB_TRIGGER_NOISE, QB_QA_NONE},
    {{"blend", NULL}, QB_TRIGGER_BLEND, QB_QA_NONE},
    {{"qa-pgd", NULL}, QB_TRIGGER_SQUARE, QB_QA_PGD},
    {{"qa-loss", NULL}, QB_TRIGGER_SQUARE, QB_QA_LOSS},
    {{NULL, NULL}, QB_TRIGGER_NONE, QB_QA_NONE},
};

const qb_trigger_entry *qb_trigger_find(const char *name)
{
    return qb_registry_find(qb_triggers, sizeof *qb_triggers, name);
}
