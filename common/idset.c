/*
 * idset - a set of queue IDs (see idset.h).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "idset.h"
#include "util.h"

#define IDSET_MIN_CAP	64
static char		 tombstone_mark;
#define IDSET_TOMBSTONE	(&tombstone_mark)

/* hash - FNV-1a over the string */
static uint64_t
hash(const char *s)
{
	uint64_t	h = 1469598103934665603ULL;

	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 1099511628211ULL;
	}
	return h;
}

/* idset_init - an empty set */
void
idset_init(struct idset *set)
{
	memset(set, 0, sizeof(*set));
}

/* idset_free - release the set and its strings */
void
idset_free(struct idset *set)
{
	for (size_t i = 0; i < set->cap; i++)
		if (set->slots[i] != NULL && set->slots[i] != IDSET_TOMBSTONE)
			free(set->slots[i]);
	free(set->slots);
	idset_init(set);
}

/* find - the slot holding id, or the first free slot for it */
static size_t
find(const struct idset *set, const char *id, bool *found)
{
	size_t	mask = set->cap - 1, i = hash(id) & mask, free_slot = SIZE_MAX;

	*found = false;
	for (;; i = (i + 1) & mask) {
		char	*s = set->slots[i];

		if (s == NULL)
			return free_slot != SIZE_MAX ? free_slot : i;
		if (s == IDSET_TOMBSTONE) {
			if (free_slot == SIZE_MAX)
				free_slot = i;
		} else if (strcmp(s, id) == 0) {
			*found = true;
			return i;
		}
	}
}

/* grow - rehash into a larger table when it gets crowded */
static void
grow(struct idset *set)
{
	struct idset	bigger;
	bool		found;

	bigger.cap = set->cap ? set->cap * 2 : IDSET_MIN_CAP;
	if (set->count * 4 < set->cap)
		bigger.cap = set->cap;	/* mostly tombstones: same size */
	bigger.slots = xcalloc(bigger.cap, sizeof(*bigger.slots));
	bigger.count = bigger.used = 0;
	for (size_t i = 0; i < set->cap; i++) {
		char	*s = set->slots[i];

		if (s == NULL || s == IDSET_TOMBSTONE)
			continue;
		bigger.slots[find(&bigger, s, &found)] = s;
		bigger.count++;
		bigger.used++;
	}
	free(set->slots);
	*set = bigger;
}

/* idset_add - insert; false if present */
bool
idset_add(struct idset *set, const char *id)
{
	size_t	i;
	bool	found;

	if ((set->used + 1) * 4 > set->cap * 3)
		grow(set);
	i = find(set, id, &found);
	if (found)
		return false;
	if (set->slots[i] == NULL)
		set->used++;
	set->slots[i] = xstrdup(id);
	set->count++;
	return true;
}

/* idset_remove - delete; false if absent */
bool
idset_remove(struct idset *set, const char *id)
{
	size_t	i;
	bool	found;

	if (set->cap == 0)
		return false;
	i = find(set, id, &found);
	if (!found)
		return false;
	free(set->slots[i]);
	set->slots[i] = IDSET_TOMBSTONE;
	set->count--;
	return true;
}

/* idset_has - membership */
bool
idset_has(const struct idset *set, const char *id)
{
	bool	found;

	if (set->cap == 0)
		return false;
	(void)find(set, id, &found);
	return found;
}

/* idset_count - live entries */
size_t
idset_count(const struct idset *set)
{
	return set->count;
}
