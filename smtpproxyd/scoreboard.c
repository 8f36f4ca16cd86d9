/*
 * scoreboard - busy/idle slots shared between the master and its listener
 * children (see scoreboard.h).  Each field is written by one side only and
 * read with atomic loads, so no lock is needed.
 */
#include <sys/mman.h>

#include <string.h>

#include "scoreboard.h"

/* scoreboard_create - map the slots shared with every future child */
int
scoreboard_create(struct scoreboard *sb, int nslots)
{
	size_t	size = (size_t)nslots * sizeof(*sb->slots);

	sb->slots = mmap(NULL, size, PROT_READ | PROT_WRITE,
	    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (sb->slots == MAP_FAILED) {
		sb->slots = NULL;
		return -1;
	}
	memset(sb->slots, 0, size);
	sb->nslots = nslots;
	return 0;
}

/* scoreboard_destroy - unmap */
void
scoreboard_destroy(struct scoreboard *sb)
{
	if (sb->slots != NULL)
		munmap(sb->slots, (size_t)sb->nslots * sizeof(*sb->slots));
	sb->slots = NULL;
	sb->nslots = 0;
}

/* scoreboard_claim - a free slot, marked as starting; -1 if all are taken */
int
scoreboard_claim(struct scoreboard *sb, pid_t pid)
{
	for (int i = 0; i < sb->nslots; i++) {
		if (__atomic_load_n(&sb->slots[i].state, __ATOMIC_ACQUIRE) ==
		    SLOT_FREE) {
			scoreboard_assign(sb, i, pid);
			return i;
		}
	}
	return -1;
}

/* scoreboard_assign - record the pid of the child that owns a slot */
void
scoreboard_assign(struct scoreboard *sb, int slot, pid_t pid)
{
	sb->slots[slot].pid = pid;
	sb->slots[slot].sessions = 0;
	sb->slots[slot].since = time(NULL);
	__atomic_store_n(&sb->slots[slot].state, SLOT_STARTING,
	    __ATOMIC_RELEASE);
}

/* scoreboard_release - the slot's child is gone */
void
scoreboard_release(struct scoreboard *sb, int slot)
{
	if (slot < 0 || slot >= sb->nslots)
		return;
	sb->slots[slot].pid = 0;
	__atomic_store_n(&sb->slots[slot].state, SLOT_FREE, __ATOMIC_RELEASE);
}

/* scoreboard_set - a child reports its own state */
void
scoreboard_set(struct scoreboard *sb, int slot, enum slot_state state)
{
	if (sb->slots == NULL || slot < 0 || slot >= sb->nslots)
		return;
	if (state == SLOT_BUSY)
		sb->slots[slot].sessions++;
	sb->slots[slot].since = time(NULL);
	__atomic_store_n(&sb->slots[slot].state, (int)state, __ATOMIC_RELEASE);
}

/* scoreboard_count - slots in a state */
int
scoreboard_count(const struct scoreboard *sb, enum slot_state state)
{
	int	n = 0;

	for (int i = 0; i < sb->nslots; i++)
		if (__atomic_load_n(&sb->slots[i].state, __ATOMIC_ACQUIRE) ==
		    (int)state)
			n++;
	return n;
}

/* scoreboard_longest_idle - seconds the longest idle child has waited */
long
scoreboard_longest_idle(const struct scoreboard *sb, time_t now, int *slot)
{
	long	best = -1;

	*slot = -1;
	for (int i = 0; i < sb->nslots; i++) {
		if (__atomic_load_n(&sb->slots[i].state, __ATOMIC_ACQUIRE) !=
		    SLOT_IDLE)
			continue;
		if ((long)(now - sb->slots[i].since) > best) {
			best = (long)(now - sb->slots[i].since);
			*slot = i;
		}
	}
	return best;
}
