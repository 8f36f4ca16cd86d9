/*
 * scoreboard - the daemon's shared status file (see scoreboard.h).
 */
#include <sys/mman.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stddef.h>
#include <string.h>
#include <unistd.h>

#include "scoreboard.h"

/* spool_free sits in what was padding before the counters. */
_Static_assert(offsetof(struct scoreboard_header, counters) == 40,
    "scoreboard header layout");

/* The board this process inherited from the master, for stat_increment. */
static struct scoreboard_header	*process_board;

/* board_size - bytes of a board with n slots */
static size_t
board_size(int nslots)
{
	return sizeof(struct scoreboard_header) +
	    (size_t)nslots * sizeof(struct scoreboard_slot);
}

/* board_map - map fd and point the fields at it */
static int
board_map(struct scoreboard *sb, int fd, size_t size, int prot)
{
	void	*p = mmap(NULL, size, prot, MAP_SHARED, fd, 0);

	if (p == MAP_FAILED)
		return -1;
	sb->hdr = p;
	sb->slots = (struct scoreboard_slot *)(sb->hdr + 1);
	sb->size = size;
	return 0;
}

/* scoreboard_create - a fresh board in a file, shared with every child */
int
scoreboard_create(struct scoreboard *sb, const char *path, int nslots)
{
	size_t	size = board_size(nslots);
	int	fd, saved;

	memset(sb, 0, sizeof(*sb));
	(void)unlink(path);	/* a reader of the old one keeps the old one */
	fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0640);
	if (fd < 0)
		return -1;
	if (ftruncate(fd, (off_t)size) < 0 ||
	    board_map(sb, fd, size, PROT_READ | PROT_WRITE) < 0) {
		saved = errno;
		close(fd);
		unlink(path);
		errno = saved;
		return -1;
	}
	close(fd);
	sb->nslots = nslots;
	sb->hdr->magic = SCOREBOARD_MAGIC;
	sb->hdr->version = SCOREBOARD_VERSION;
	sb->hdr->master_pid = getpid();
	sb->hdr->started = time(NULL);
	sb->hdr->nslots = nslots;
	process_board = sb->hdr;
	return 0;
}

/* scoreboard_attach - map an existing board read-only */
int
scoreboard_attach(struct scoreboard *sb, const char *path)
{
	struct stat	st;
	int		fd, rc = -1;

	memset(sb, 0, sizeof(*sb));
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	if (fstat(fd, &st) == 0 &&
	    (size_t)st.st_size >= sizeof(struct scoreboard_header) &&
	    board_map(sb, fd, (size_t)st.st_size, PROT_READ) == 0) {
		rc = 0;
		if (sb->hdr->magic != SCOREBOARD_MAGIC ||
		    sb->hdr->version != SCOREBOARD_VERSION ||
		    board_size(sb->hdr->nslots) > sb->size) {
			scoreboard_destroy(sb);
			errno = EINVAL;
			rc = -1;
		} else
			sb->nslots = sb->hdr->nslots;
	}
	close(fd);
	return rc;
}

/* scoreboard_destroy - unmap */
void
scoreboard_destroy(struct scoreboard *sb)
{
	if (sb->hdr != NULL)
		munmap(sb->hdr, sb->size);
	if (process_board == sb->hdr)
		process_board = NULL;
	memset(sb, 0, sizeof(*sb));
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
	if (sb->hdr == NULL || slot < 0 || slot >= sb->nslots)
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

/* stat_increment - count an event (every process of the daemon may) */
void
stat_increment(enum stat_counter c, uint64_t n)
{
	if (process_board != NULL)
		__atomic_fetch_add(&process_board->counters[c], n,
		    __ATOMIC_RELAXED);
}
