/* What the registries of the enumerated axes share: the trigger
 * (attacks/registry.h), mitigation (mitigations/mitigation.h) and defense
 * (defenses/defense.h) registries are each a table of entries that start
 * with a qb_registry_key and end with an entry whose name is NULL. The
 * lookups here serve all three (docs/ARCHITECTURE.md, "Registries"). */
#ifndef QB_REGISTRY_H
#define QB_REGISTRY_H

#include <stddef.h>

/* The first member of every registry entry. */
typedef struct qb_registry_key {
    const char *name;     /* the axis value; NULL in the entry that ends the table */
    const char *alias_of; /* NULL, or the canonical name this one spells */
} qb_registry_key;

/* The i-th entry (from 0) of a table of entries entry_size bytes long, or
 * NULL when the table has no more than i entries. */
const void *qb_registry_at(const void *table, size_t entry_size, size_t i);

/* The canonical entry for `name` in such a table: the entry of that name,
 * or for an alias the entry it spells. NULL when no entry has the name. */
const void *qb_registry_find(const void *table, size_t entry_size, const char *name);

#endif
