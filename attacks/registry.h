/* The values of the `trigger` axis: the one list of the attacks a task can
 * plant (jobs/axis_values.c reads it for the spec parser).
 *
 *   clean     no attack
 *   square    BadNet white square (badnet is another name for it)
 *   checker   black/white checkerboard patch
 *   noise     random-noise patch
 *   blend     whole-image noise blended with weight alpha
 *   qa-pgd    quantization-activated: BadNet, then the cell-constrained
 *             repair (attacks/qa_attack.h)
 *   qa-loss   quantization-activated: Qu-ANTI-zation fine-tuning
 *
 * Every entry names what implements it: the trigger pattern stamped
 * (attacks/trigger.h; the qa-* attacks plant the square) and the
 * quantization-activated mode (attacks/qa_attack.h). Their settings are
 * the spec's shared `attack:` block (jobs/spec.h), not per value. Adding a
 * trigger: its pattern in attacks/trigger.c, one line in attacks/registry.c. */
#ifndef QB_ATTACKS_REGISTRY_H
#define QB_ATTACKS_REGISTRY_H

#include "attacks/qa_attack.h"
#include "attacks/trigger.h"
#include "core/registry.h"

typedef struct qb_trigger_entry {
    qb_registry_key key;  /* name, alias_of */
    qb_trigger_kind kind; /* the pattern planted (QB_TRIGGER_NONE: clean) */
    qb_qa_mode qa;        /* QB_QA_NONE, or the quantization-activated attack */
} qb_trigger_entry;

/* The registered triggers, NULL-name terminated, in the order messages
 * list them ("expected one of: clean, square, badnet, ..."). */
extern const qb_trigger_entry qb_triggers[];

/* The canonical entry of a name (aliases resolved), or NULL. */
const qb_trigger_entry *qb_trigger_find(const char *name);

#endif
