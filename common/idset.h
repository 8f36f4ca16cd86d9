/*
 * idset - a set of short strings (queue IDs), open addressing with linear
 * probing.  The relay remembers in it which messages it already holds, so
 * a scan does no further work for them.
 *
 *   idset_init(set) / idset_free(set)
 *   idset_add(set, id)       false if it was there already
 *   idset_remove(set, id)    false if it was not there
 *   idset_has(set, id)
 *   idset_count(set)
 */
#ifndef SMTPPROXY_IDSET_H
#define SMTPPROXY_IDSET_H

#include <stdbool.h>
#include <stddef.h>

struct idset {
	char	**slots;	/* NULL empty, IDSET_TOMBSTONE removed, else owned */
	size_t	  cap;		/* power of two */
	size_t	  count;	/* live entries */
	size_t	  used;		/* live + tombstones */
};

void	idset_init(struct idset *);
void	idset_free(struct idset *);
bool	idset_add(struct idset *, const char *);
bool	idset_remove(struct idset *, const char *);
bool	idset_has(const struct idset *, const char *);
size_t	idset_count(const struct idset *);

#endif
