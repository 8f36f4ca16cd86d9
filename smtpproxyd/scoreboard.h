/*
 * scoreboard - shared memory in which listener children say whether they
 * are idle or busy, so the master can grow the pool before clients have to
 * wait and shrink it when it idles.  One slot per possible child; a child
 * writes only its own slot, the master assigns and frees slots.
 *
 *   scoreboard_create(nslots)      shared anonymous mapping (before fork)
 *   scoreboard_claim(sb, pid)      master: a free slot for a new child, -1 if full
 *   scoreboard_release(sb, slot)   master: the child is gone
 *   scoreboard_set(sb, slot, state) child: SLOT_IDLE or SLOT_BUSY
 *   scoreboard_count(sb, state)    how many slots are in a state
 *   scoreboard_longest_idle(sb, now, &slot)  the slot idle the longest, and
 *                                  since how many seconds (-1 if none idle)
 */
#ifndef SMTPPROXY_SCOREBOARD_H
#define SMTPPROXY_SCOREBOARD_H

#include <sys/types.h>
#include <time.h>

enum slot_state {
	SLOT_FREE = 0,
	SLOT_STARTING,		/* forked, not yet accepting */
	SLOT_IDLE,
	SLOT_BUSY
};

struct scoreboard_slot {
	pid_t		pid;
	int		state;		/* enum slot_state, atomic */
	time_t		since;		/* when the state last changed */
	unsigned long	sessions;
};

struct scoreboard {
	int			 nslots;
	struct scoreboard_slot	*slots;		/* shared mapping */
};

int	scoreboard_create(struct scoreboard *, int);
void	scoreboard_destroy(struct scoreboard *);
int	scoreboard_claim(struct scoreboard *, pid_t);
void	scoreboard_assign(struct scoreboard *, int, pid_t);
void	scoreboard_release(struct scoreboard *, int);
void	scoreboard_set(struct scoreboard *, int, enum slot_state);
int	scoreboard_count(const struct scoreboard *, enum slot_state);
long	scoreboard_longest_idle(const struct scoreboard *, time_t, int *);

#endif
