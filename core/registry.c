/* Lookups in the axes' registry tables (core/registry.h). */
#include "core/registry.h"

#include <string.h>

/* An entry's key: the entry's first member (C11 6.7.2.1p15), so the
 * pointer to an entry points to its key. */
static const qb_registry_key *key_at(const void *table, size_t entry_size, size_t i)
{
    return (const qb_registry_key *)((const char *)table + i * entry_size);
}

const void *qb_registry_at(const void *table, size_t entry_size, size_t i)
{
    for (size_t k = 0; key_at(table, entry_size, k)->name; k++)
        if (k == i) return key_at(table, entry_size, k);
    return NULL;
}

const void *qb_registry_find(const void *table, size_t entry_size, const char *name)
{
    for (size_t k = 0;; k++) {
        const qb_registry_key *e = key_at(table, entry_size, k);
        if (!e->name) return NULL;
        if (!strcmp(e->name, name))
            return e->alias_of ? qb_registry_find(table, entry_size, e->alias_of) : e;
    }
}
