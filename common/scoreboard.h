/*
 * scoreboard - the daemon's shared status: a small file in the spool
 * (msgdir/status) mapped by every process.  The master owns it and assigns
 * the slots; each listener child writes only its own slot (idle/busy); any
 * process bumps the counters; smtpproxyctl maps it read-only for `status`.
 *
 *   scoreboard_create(sb, path, nslots)  master: (re)create and map the file
 *   scoreboard_attach(sb, path)          smtpproxyctl: map an existing one
 *   scoreboard_destroy(sb)               unmap (the file stays for ctl)
 *   scoreboard_claim(sb, pid) / _assign / _release   master: slot bookkeeping
 *   scoreboard_set(sb, slot, state)      child: SLOT_IDLE or SLOT_BUSY
 *   scoreboard_count(sb, state)          slots in a state
 *   scoreboard_longest_idle(sb, now, &slot)  the slot idle longest, and for
 *                                        how many seconds (-1: none idle)
 *   stat_increment(counter, n)           count an event in the board the
 *                                        process inherited (no-op without one)
 *
 * Counters are since the master started.  Every field is written by one
 * side and read with atomic operations, so no lock is needed.  spool_free
 * and spool_sync are the exception: they belong to the spool
 * (spool_recycle, spool_share_sync), which every process changes with
 * atomic read-modify-write operations.
 */
#ifndef SMTPPROXY_SCOREBOARD_H
#define SMTPPROXY_SCOREBOARD_H

#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define SCOREBOARD_MAGIC	0x53505342u	/* "SPSB" */
#define SCOREBOARD_VERSION	2

enum slot_state {
	SLOT_FREE = 0,
	SLOT_STARTING,		/* forked, not yet accepting */
	SLOT_IDLE,
	SLOT_BUSY
};

enum stat_counter {
	STAT_SESSIONS,		/* client connections served */
	STAT_ACCEPTED,		/* messages queued (250 after DATA) */
	STAT_REFUSED,		/* MAIL/RCPT/DATA refused with 5xx/4xx */
	STAT_DELIVERED,		/* messages fully delivered upstream */
	STAT_DEFERRED,		/* attempts that left recipients owed */
	STAT_FAILED,		/* messages moved to failed/ or deleted */
	STAT_COUNTERS
};

struct scoreboard_slot {
	pid_t		pid;
	int		state;		/* enum slot_state, atomic */
	int64_t		since;		/* when the state last changed */
	uint64_t	sessions;
};

struct scoreboard_header {
	uint32_t	magic;
	uint32_t	version;
	pid_t		master_pid;
	pid_t		relay_pid;
	int64_t		started;
	int32_t		nslots;
	int32_t		processes;	/* configured pool bounds */
	int32_t		maxprocesses;
	int32_t		spool_free;	/* tmp/free.* files, approximate */
	uint64_t	counters[STAT_COUNTERS];
	uint64_t	spool_sync[2];	/* new/ group commit (spool.h) */
};

struct scoreboard {
	struct scoreboard_header *hdr;		/* shared mapping */
	struct scoreboard_slot	 *slots;
	int			  nslots;
	size_t			  size;
};

int	scoreboard_create(struct scoreboard *, const char *, int);
int	scoreboard_attach(struct scoreboard *, const char *);
void	scoreboard_destroy(struct scoreboard *);
int	scoreboard_claim(struct scoreboard *, pid_t);
void	scoreboard_assign(struct scoreboard *, int, pid_t);
void	scoreboard_release(struct scoreboard *, int);
void	scoreboard_set(struct scoreboard *, int, enum slot_state);
int	scoreboard_count(const struct scoreboard *, enum slot_state);
long	scoreboard_longest_idle(const struct scoreboard *, time_t, int *);
void	stat_increment(enum stat_counter, uint64_t);

#endif
