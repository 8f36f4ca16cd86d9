/*
 * spool - the maildir-style queue (see spool.h for the contract).
 *
 * Durability rule: a message is accepted only after its file is fsynced,
 * renamed from tmp/ into new/ and new/ itself is fsynced.  Every later step
 * (claim, defer, rewrite, fail) is a rename, so a crash at any point leaves
 * the message in exactly one folder, never in none.
 *
 * Recycling rule: a free file is only ever renamed, by whoever wins the
 * rename; the shared count is a hint of how many there are, raised before
 * a file is freed and lowered after one is taken, so it errs high, and the
 * hourly walk of tmp/ sets it to what is there.
 */
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

#include "spool.h"
#include "util.h"

#define SPOOL_INFO_SEP		":1,"
#define SPOOL_COPY_BUF		65536
#define SPOOL_ENVELOPE_CHUNK	4096	/* first read of the envelope lines */
#define SPOOL_CREATE_TRIES	100
#define SPOOL_FREE_SPREAD	37	/* odd: spreads pids over the pool */

static void	spool_set_host(struct spool *);
static int	spool_mkdir(const char *);
static int	spool_scan_dir(struct spool *, enum spool_state, time_t,
		    spool_scan_fn, void *, time_t *);
static void	spool_entry_name(struct spool_entry *);
static char	*reason_path(const struct spool *, const struct spool_entry *);
static char	*note_path(const struct spool *, const struct spool_entry *);
static void	 drop_note(struct spool *, const struct spool_entry *);
static int	spool_move(struct spool *, struct spool_entry *,
		    struct spool_entry *);
static bool	is_free_name(const char *);
static bool	is_free_file(const struct dirent *);
static void	free_count_down(int32_t *);
static size_t	free_refill(struct spool *);
static int	free_rename(struct spool *, const char *);
static int	free_take(struct spool *, const char *);
static int	free_put(struct spool *, const char *, const char *);
static int	msg_sync(const struct spool_msg *);

/* spool_set_host - maildir host part: hostname with '/' and ':' escaped */
static void
spool_set_host(struct spool *sp)
{
	char	name[64], *out = sp->host;
	size_t	left = sizeof(sp->host) - 1;

	if (gethostname(name, sizeof(name)) != 0)
		strlcpy_s(name, "localhost", sizeof(name));
	name[sizeof(name) - 1] = '\0';
	for (const char *p = name; *p && left > 0; p++) {
		const char *esc = *p == '/' ? "\\057" : *p == ':' ? "\\072" : NULL;

		if (esc != NULL) {
			if (left < 4)
				break;
			memcpy(out, esc, 4);
			out += 4;
			left -= 4;
		} else {
			*out++ = *p;
			left--;
		}
	}
	*out = '\0';
}

/* spool_mkdir - create a spool folder readable only by its owner */
static int
spool_mkdir(const char *path)
{
	if (mkdir(path, 0700) == 0 || errno == EEXIST)
		return 0;
	return -1;
}

/* spool_open - name (and with create, make) the spool folders */
int
spool_open(struct spool *sp, const char *msgdir, bool create)
{
	struct stat	st;

	memset(sp, 0, sizeof(*sp));
	sp->trigger_wfd = -1;
	sp->new_fd = -1;
	sp->dir = xstrdup(msgdir);
	sp->tmp = xasprintf("%s/tmp", msgdir);
	sp->new = xasprintf("%s/new", msgdir);
	sp->cur = xasprintf("%s/cur", msgdir);
	sp->failed = xasprintf("%s/failed", msgdir);
	sp->defer = xasprintf("%s/defer", msgdir);
	sp->trigger = xasprintf("%s/trigger", msgdir);
	sp->status = xasprintf("%s/status", msgdir);
	spool_set_host(sp);
	if (create) {
		if (spool_mkdir(sp->dir) < 0 || spool_mkdir(sp->tmp) < 0 ||
		    spool_mkdir(sp->new) < 0 || spool_mkdir(sp->cur) < 0 ||
		    spool_mkdir(sp->failed) < 0 || spool_mkdir(sp->defer) < 0)
			return -1;
		if (mkfifo(sp->trigger, 0600) < 0 && errno != EEXIST)
			return -1;
	}
	if (stat(sp->new, &st) < 0 || stat(sp->cur, &st) < 0 ||
	    stat(sp->tmp, &st) < 0 || stat(sp->failed, &st) < 0)
		return -1;
	return 0;
}

/* spool_close - release names and descriptors */
void
spool_close(struct spool *sp)
{
	if (sp->trigger_wfd >= 0)
		close(sp->trigger_wfd);
	if (sp->new_fd >= 0)
		close(sp->new_fd);
	free(sp->dir);
	free(sp->tmp);
	free(sp->new);
	free(sp->cur);
	free(sp->failed);
	free(sp->defer);
	free(sp->trigger);
	free(sp->status);
	free(sp->free_names);
	memset(sp, 0, sizeof(*sp));
	sp->trigger_wfd = -1;
	sp->new_fd = -1;
}

/* spool_new_id - a fresh queue ID */
static void
spool_new_id(struct spool *sp, struct spool_msg *msg)
{
	struct timeval	tv;

	gettimeofday(&tv, NULL);
	snprintf(msg->id, sizeof(msg->id), "%lld.M%06ldP%ldQ%lu.%s",
	    (long long)tv.tv_sec, (long)tv.tv_usec, (long)getpid(),
	    ++sp->seq, sp->host);
}

/*
 * spool_create - open an exclusive file in tmp/ under a fresh queue ID: a
 * recycled one if there is one to take, else a new one
 */
int
spool_create(struct spool *sp, struct spool_msg *msg)
{
	char	*path;

	msg->recycled = false;
	for (int tries = 0; tries < SPOOL_CREATE_TRIES; tries++) {
		spool_new_id(sp, msg);
		if ((msg->fd = free_take(sp, msg->id)) >= 0) {
			msg->recycled = true;
			return 0;
		}
		path = xasprintf("%s/%s", sp->tmp, msg->id);
		msg->fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		    0600);
		free(path);
		if (msg->fd >= 0)
			return 0;
		if (errno != EEXIST)
			return -1;
	}
	errno = EEXIST;
	return -1;
}

/* new_dir_fd - new/, opened once per process for its fsyncs */
static int
new_dir_fd(struct spool *sp)
{
	if (sp->new_fd < 0)
		sp->new_fd = open(sp->new, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	return sp->new_fd;
}

/*
 * spool_share_sync - from now on, processes forked later share fsyncs of
 * new/.  The lock is a flock on each process's own descriptor of new/, so
 * none may be open yet (a descriptor inherited across fork shares its lock).
 */
void
spool_share_sync(struct spool *sp, uint64_t *seq)
{
	if (sp->new_fd >= 0)
		close(sp->new_fd);
	sp->new_fd = -1;
	__atomic_store_n(&seq[SPOOL_SYNC_REQUESTED], 0, __ATOMIC_SEQ_CST);
	__atomic_store_n(&seq[SPOOL_SYNC_DONE], 0, __ATOMIC_SEQ_CST);
	sp->sync_seq = seq;
}

/* sync_publish - renames up to target are durable; never moves back */
static void
sync_publish(uint64_t *done, uint64_t target)
{
	uint64_t	cur = __atomic_load_n(done, __ATOMIC_SEQ_CST);

	while (cur < target && !__atomic_compare_exchange_n(done, &cur, target,
	    false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST))
		;
}

/*
 * sync_new - after a rename into new/: an fsync of new/ that began after
 * it, this process's own or (group commit, see spool.h) another's
 */
static int
sync_new(struct spool *sp)
{
	uint64_t	*seq = sp->sync_seq, mine, target;
	int		 fd, rc;

	if ((fd = new_dir_fd(sp)) < 0)
		return -1;
	if (seq == NULL)
		return fsync(fd);
	mine = __atomic_add_fetch(&seq[SPOOL_SYNC_REQUESTED], 1,
	    __ATOMIC_SEQ_CST);
	if (flock(fd, LOCK_EX) < 0)
		return fsync(fd);
	if (__atomic_load_n(&seq[SPOOL_SYNC_DONE], __ATOMIC_SEQ_CST) >= mine) {
		(void)flock(fd, LOCK_UN);
		return 0;
	}
	target = __atomic_load_n(&seq[SPOOL_SYNC_REQUESTED], __ATOMIC_SEQ_CST);
	if ((rc = fsync(fd)) == 0)
		sync_publish(&seq[SPOOL_SYNC_DONE], target);
	(void)flock(fd, LOCK_UN);
	return rc;
}

/* spool_commit - make a received message durable and visible to the relay */
int
spool_commit(struct spool *sp, struct spool_msg *msg)
{
	char	*from, *to;
	int	 rc = -1, saved;

	from = xasprintf("%s/%s", sp->tmp, msg->id);
	to = xasprintf("%s/%s", sp->new, msg->id);
	if (msg_sync(msg) < 0) {
		saved = errno;
		close(msg->fd);
		goto fail_tmp;
	}
	if (close(msg->fd) < 0) {
		saved = errno;
		goto fail_tmp;
	}
	if (rename(from, to) < 0) {
		saved = errno;
		goto fail_tmp;
	}
	if (sync_new(sp) < 0) {
		/*
		 * The client will be told to try again, so the file must not
		 * stay behind to be sent as well.  If the relay already took
		 * it, a duplicate is possible, a loss is not.
		 */
		saved = errno;
		unlink(to);
		goto out;
	}
	rc = 0;
	goto out;
fail_tmp:
	unlink(from);
out:
	msg->fd = -1;
	free(from);
	free(to);
	if (rc < 0)
		errno = saved;
	return rc;
}

/* spool_abort - drop a message that is not going to be accepted */
void
spool_abort(struct spool *sp, struct spool_msg *msg)
{
	char	*path = xasprintf("%s/%s", sp->tmp, msg->id);

	if (msg->fd >= 0)
		close(msg->fd);
	msg->fd = -1;
	unlink(path);
	free(path);
}

/* trigger_write - one byte into the wake-up FIFO; never blocks */
static void
trigger_write(struct spool *sp, char byte)
{
	if (sp->trigger_wfd < 0) {
		sp->trigger_wfd = open(sp->trigger,
		    O_WRONLY | O_NONBLOCK | O_CLOEXEC);
		if (sp->trigger_wfd < 0)
			return;		/* no relay listening: it scans on its own */
	}
	if (write(sp->trigger_wfd, &byte, 1) < 0 && errno != EAGAIN) {
		/* The relay was restarted: reopen next time. */
		close(sp->trigger_wfd);
		sp->trigger_wfd = -1;
	}
}

/* spool_trigger - wake the relay for a new message */
void
spool_trigger(struct spool *sp)
{
	trigger_write(sp, SPOOL_WAKE_NEW);
}

/* spool_trigger_due - wake the relay to look at cur/ too */
void
spool_trigger_due(struct spool *sp)
{
	trigger_write(sp, SPOOL_WAKE_DUE);
}

/*
 * tmp_used - when a tmp/ file was last in use.  A message being received:
 * its last write (maildir's rule; spool_create touches a file it takes for
 * reuse).  A free file: when it was freed, the change time that its rename
 * into free.* set.
 */
static time_t
tmp_used(const char *name, const struct stat *st)
{
	if (is_free_name(name) && st->st_ctime > st->st_mtime)
		return st->st_ctime;
	return st->st_mtime;
}

/*
 * spool_clean_tmp - remove tmp/ left-overs older than maildir's 36 hours,
 * and free files unused that long, so delivered mail does not linger.  The
 * count of free files becomes the number this walk leaves: that also mends
 * a count gone wrong (a process killed between taking a file and counting
 * it, free files removed by hand).
 */
int
spool_clean_tmp(struct spool *sp, time_t now)
{
	DIR		*dir;
	struct dirent	*de;
	struct stat	 st;
	int		 removed = 0;
	int32_t		 kept = 0;

	if ((dir = opendir(sp->tmp)) == NULL)
		return -1;
	while ((de = readdir(dir)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		if (fstatat(dirfd(dir), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
			continue;
		if (now - tmp_used(de->d_name, &st) <= SPOOL_TMP_MAX_AGE) {
			kept += is_free_name(de->d_name);
			continue;
		}
		if (unlinkat(dirfd(dir), de->d_name, 0) == 0)
			removed++;
	}
	closedir(dir);
	if (sp->free_count != NULL)
		__atomic_store_n(sp->free_count, kept, __ATOMIC_RELAXED);
	return removed;
}

/*
 * spool_recycle - recycle delivered files from now on, counting them in
 * *count, which every process forked later shares.  Free files a previous
 * run left are counted, not removed: they are files like any other of the
 * queue, reusing them spares the inodes this is all about, and the 36 hour
 * rule removes them if they stay unused.
 */
int
spool_recycle(struct spool *sp, int32_t *count)
{
	DIR		*dir;
	struct dirent	*de;
	int32_t		 n = 0;

	if ((dir = opendir(sp->tmp)) == NULL)
		return -1;
	while ((de = readdir(dir)) != NULL)
		if (is_free_file(de))
			n++;
	closedir(dir);
	__atomic_store_n(count, n, __ATOMIC_RELAXED);
	sp->free_count = count;
	return 0;
}

/* is_free_name - tmp/free.<ID>: a delivered file waiting for reuse */
static bool
is_free_name(const char *name)
{
	return strncmp(name, SPOOL_FREE_PREFIX, strlen(SPOOL_FREE_PREFIX)) == 0;
}

/* is_free_file - a directory entry that is a free file */
static bool
is_free_file(const struct dirent *de)
{
	return (de->d_type == DT_REG || de->d_type == DT_UNKNOWN) &&
	    is_free_name(de->d_name);
}

/* free_count_down - one free file fewer; the count never goes below 0 */
static void
free_count_down(int32_t *count)
{
	int32_t	n = __atomic_load_n(count, __ATOMIC_RELAXED);

	while (n > 0 && !__atomic_compare_exchange_n(count, &n, n - 1, false,
	    __ATOMIC_RELAXED, __ATOMIC_RELAXED))
		;
}

/*
 * free_refill - remember up to SPOOL_RECYCLE_CACHE free names from one walk
 * of tmp/.  Name number i lands in slot i % SPOOL_RECYCLE_CACHE until i
 * reaches an offset (from the pid and the queue ID counter) plus the cache
 * size, so each process keeps another window of a large pool and starts at
 * another name of a small one: concurrent listeners seldom reach for the
 * same file.
 */
static size_t
free_refill(struct spool *sp)
{
	size_t		 offset = ((size_t)getpid() + sp->seq) *
	    SPOOL_FREE_SPREAD % SPOOL_RECYCLE_MAX, seen = 0;
	DIR		*dir;
	struct dirent	*de;

	sp->free_left = 0;
	if (sp->free_names == NULL)
		sp->free_names = xcalloc(SPOOL_RECYCLE_CACHE,
		    sizeof(*sp->free_names));
	if ((dir = opendir(sp->tmp)) == NULL)
		return 0;
	while (seen < offset + SPOOL_RECYCLE_CACHE &&
	    (de = readdir(dir)) != NULL) {
		if (!is_free_file(de))
			continue;
		strlcpy_s(sp->free_names[seen % SPOOL_RECYCLE_CACHE],
		    de->d_name, sizeof(*sp->free_names));
		seen++;
	}
	closedir(dir);
	if (seen == 0)
		return 0;
	sp->free_cached = seen < SPOOL_RECYCLE_CACHE ? seen :
	    SPOOL_RECYCLE_CACHE;
	sp->free_left = sp->free_cached;
	sp->free_next = offset % sp->free_cached;
	return sp->free_cached;
}

/*
 * free_rename - move one free file to path, which must not exist; -1 if
 * none could be moved.  Other processes take from the same pool: a name
 * that has gone (ENOENT) was taken by one of them.  Then the names this
 * process remembered are likely gone too, so it walks tmp/ again (once a
 * call) and tries the names of that walk one after the other.
 */
static int
free_rename(struct spool *sp, const char *path)
{
	bool	 walked = false;
	char	*from;
	int	 rc;

	for (;;) {
		if (sp->free_left == 0) {
			if (walked || free_refill(sp) == 0)
				return -1;
			walked = true;
		}
		from = xasprintf("%s/%s", sp->tmp,
		    sp->free_names[sp->free_next]);
		rc = renameat2(AT_FDCWD, from, AT_FDCWD, path,
		    RENAME_NOREPLACE);
		free(from);
		if (rc < 0 && errno != ENOENT)
			break;
		if (rc == 0 || walked) {
			sp->free_next = (sp->free_next + 1) % sp->free_cached;
			sp->free_left--;
		} else
			sp->free_left = 0;
		if (rc == 0)
			return 0;
	}
	/* A file system without RENAME_NOREPLACE: stop trying here. */
	if (errno == EINVAL)
		sp->free_count = NULL;
	return -1;
}

/*
 * free_take - a free file renamed to tmp/<id>, open for writing from its
 * first byte (not truncated: spool_commit cuts it); -1 if there is none.
 * Its times are set to now, or the 36 hour rule could take the mtime of
 * the message it held for that of one being received.
 */
static int
free_take(struct spool *sp, const char *id)
{
	char	*path;
	int	 fd = -1;

	if (sp->free_count == NULL ||
	    __atomic_load_n(sp->free_count, __ATOMIC_RELAXED) <= 0)
		return -1;
	path = xasprintf("%s/%s", sp->tmp, id);
	if (free_rename(sp, path) == 0) {
		free_count_down(sp->free_count);
		fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd >= 0)
			(void)futimens(fd, NULL);
		else
			(void)unlink(path);
	}
	free(path);
	return fd;
}

/*
 * free_put - keep a delivered file as tmp/free.<id>, if it is small and
 * the pool has room; -1: unlink it instead.  The count goes up before the
 * rename, so that processes freeing files at once never overfill the pool.
 * A file with another name is never reused: after a crash on a file system
 * without a journal, a name whose removal never reached the disk can point
 * at a file since reused, and fsck makes the two names links of one file;
 * writing a new message into it would overwrite the other one.
 */
static int
free_put(struct spool *sp, const char *path, const char *id)
{
	struct stat	 st;
	char		*to;
	int		 rc;

	if (sp->free_count == NULL ||
	    __atomic_load_n(sp->free_count, __ATOMIC_RELAXED) >=
	    SPOOL_RECYCLE_MAX)
		return -1;
	if (stat(path, &st) < 0 || !S_ISREG(st.st_mode) || st.st_nlink != 1 ||
	    st.st_size > SPOOL_RECYCLE_SIZE)
		return -1;
	if (__atomic_add_fetch(sp->free_count, 1, __ATOMIC_RELAXED) >
	    SPOOL_RECYCLE_MAX) {
		free_count_down(sp->free_count);
		return -1;
	}
	to = xasprintf("%s/" SPOOL_FREE_PREFIX "%s", sp->tmp, id);
	if ((rc = rename(path, to)) < 0)
		free_count_down(sp->free_count);
	free(to);
	return rc;
}

/*
 * msg_sync - make a written file durable; a recycled one is first cut at
 * the bytes written, so nothing of the message it held before survives.
 * fdatasync: the bytes and what it takes to read them back (size, blocks)
 * reach the disk, its times need not; the name is the directory's fsync.
 */
static int
msg_sync(const struct spool_msg *msg)
{
	off_t	end;

	if (msg->recycled) {
		if ((end = lseek(msg->fd, 0, SEEK_CUR)) < 0 ||
		    ftruncate(msg->fd, end) < 0)
			return -1;
	}
	return fdatasync(msg->fd);
}

/* spool_trigger_fd - the relay's read end of the wake-up FIFO */
int
spool_trigger_fd(struct spool *sp)
{
	int	fd;

	fd = open(sp->trigger, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fd < 0)
		return -1;
	/*
	 * Hold a writer ourselves, so that the FIFO does not report hang-up
	 * each time the last listener closes its end.
	 */
	if (sp->trigger_wfd < 0)
		sp->trigger_wfd = open(sp->trigger,
		    O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	return fd;
}

/* spool_parse_name - split a spool file name into queue ID and retry state */
int
spool_parse_name(const char *name, enum spool_state state,
    struct spool_entry *e)
{
	const char	*info;
	size_t		 idlen;
	char		*end;

	memset(e, 0, sizeof(*e));
	e->state = state;
	if (name[0] == '.' || strlen(name) >= sizeof(e->name))
		return -1;
	strlcpy_s(e->name, name, sizeof(e->name));
	info = strstr(name, SPOOL_INFO_SEP);
	idlen = info ? (size_t)(info - name) : strlen(name);
	if (idlen == 0 || idlen >= sizeof(e->id))
		return -1;
	memcpy(e->id, name, idlen);
	e->id[idlen] = '\0';
	e->first_seen = (time_t)strtoll(e->id, &end, 10);
	if (end == e->id || *end != '.')
		return -1;
	if (info == NULL)
		return 0;
	for (const char *p = info + strlen(SPOOL_INFO_SEP); *p; ) {
		char		 key = *p++;
		long long	 v = strtoll(p, &end, 10);

		if (end == p)
			return -1;
		if (key == 'A')
			e->attempts = (int)v;
		else if (key == 'T')
			e->next_attempt = (time_t)v;
		p = end;
		if (*p == ',')
			p++;
		else if (*p != '\0')
			return -1;
	}
	return 0;
}

/* spool_entry_name - compose the cur/ name from ID and retry state */
static void
spool_entry_name(struct spool_entry *e)
{
	snprintf(e->name, sizeof(e->name), "%s" SPOOL_INFO_SEP "A%d,T%lld",
	    e->id, e->attempts, (long long)e->next_attempt);
}

/* spool_scan_dir - call fn for the due entries of one folder */
static int
spool_scan_dir(struct spool *sp, enum spool_state state, time_t now,
    spool_scan_fn fn, void *arg, time_t *next_due)
{
	DIR			*dir;
	struct dirent		*de;
	struct spool_entry	 e;
	int			 rc = 0;

	dir = opendir(state == SPOOL_NEW ? sp->new : sp->cur);
	if (dir == NULL)
		return -1;
	while ((de = readdir(dir)) != NULL) {
		if (de->d_type != DT_REG && de->d_type != DT_UNKNOWN)
			continue;
		if (spool_parse_name(de->d_name, state, &e) < 0)
			continue;
		/* Not yet due: no further work at all for this file. */
		if (e.next_attempt > now) {
			if (*next_due == 0 || e.next_attempt < *next_due)
				*next_due = e.next_attempt;
			continue;
		}
		if ((rc = fn(&e, arg)) != 0)
			break;
	}
	closedir(dir);
	return rc;
}

/*
 * spool_scan - visit new/ and the due part of cur/; fn returning non-zero
 * stops.  *next_due gets the earliest attempt time still in the future
 * (0 if none), so the relay can sleep exactly until then.
 */
int
spool_scan(struct spool *sp, time_t now, spool_scan_fn fn, void *arg,
    time_t *next_due)
{
	int	rc;

	*next_due = 0;
	rc = spool_scan_dir(sp, SPOOL_CUR, now, fn, arg, next_due);
	if (rc == 0)
		rc = spool_scan_dir(sp, SPOOL_NEW, now, fn, arg, next_due);
	return rc < 0 ? -1 : 0;
}

/* spool_folder - the folder of a state */
static const char *
spool_folder(const struct spool *sp, enum spool_state state)
{
	switch (state) {
	case SPOOL_NEW:
		return sp->new;
	case SPOOL_CUR:
		return sp->cur;
	default:
		return sp->failed;
	}
}

/* spool_scan_new - visit new/ only: what a wake-up for new mail needs */
int
spool_scan_new(struct spool *sp, spool_scan_fn fn, void *arg)
{
	time_t	unused = 0;

	return spool_scan_dir(sp, SPOOL_NEW, 0, fn, arg, &unused) < 0 ? -1 : 0;
}

/* spool_path - full path of an entry in its folder (caller frees) */
char *
spool_path(const struct spool *sp, const struct spool_entry *e)
{
	return xasprintf("%s/%s", spool_folder(sp, e->state), e->name);
}

/* is_reason_file - failed/ holds "<ID>.reason" files beside the messages */
static bool
is_reason_file(const char *name)
{
	size_t	len = strlen(name);

	return len > 7 && strcmp(name + len - 7, ".reason") == 0;
}

/* spool_list - every message of one folder, due or not */
int
spool_list(struct spool *sp, enum spool_state state, spool_scan_fn fn,
    void *arg)
{
	DIR			*dir = opendir(spool_folder(sp, state));
	struct dirent		*de;
	struct spool_entry	 e;
	int			 rc = 0;

	if (dir == NULL)
		return -1;
	while (rc == 0 && (de = readdir(dir)) != NULL) {
		if (is_reason_file(de->d_name) ||
		    spool_parse_name(de->d_name, state, &e) < 0)
			continue;
		rc = fn(&e, arg);
	}
	closedir(dir);
	return rc < 0 ? -1 : 0;
}

struct find_arg {
	const char		*id;
	struct spool_entry	*found;
	bool			 hit;
};

/* find_one - spool_list callback: stop at the wanted ID */
static int
find_one(const struct spool_entry *e, void *arg)
{
	struct find_arg	*fa = arg;

	if (strcmp(e->id, fa->id) != 0)
		return 0;
	*fa->found = *e;
	fa->hit = true;
	return 1;
}

/* spool_find - the message with this queue ID, wherever it is */
int
spool_find(struct spool *sp, const char *id, struct spool_entry *e)
{
	static const enum spool_state	states[] = { SPOOL_NEW, SPOOL_CUR,
	    SPOOL_FAILED };
	struct find_arg			fa = { id, e, false };

	for (size_t i = 0; i < ARRAY_LEN(states) && !fa.hit; i++)
		if (spool_list(sp, states[i], find_one, &fa) < 0)
			return -1;
	if (!fa.hit) {
		errno = ENOENT;
		return -1;
	}
	return 0;
}

/* reason_path - failed/<ID>.reason */
static char *
reason_path(const struct spool *sp, const struct spool_entry *e)
{
	return xasprintf("%s/%s.reason", sp->failed, e->id);
}

/* spool_make_due - try this message at the next relay pass */
int
spool_make_due(struct spool *sp, struct spool_entry *e)
{
	struct spool_entry	 back = *e;
	char			*why;

	if (e->state == SPOOL_NEW)
		return 0;
	if (e->state == SPOOL_CUR)
		return e->next_attempt == 0 ? 0 :
		    spool_defer(sp, e, e->attempts, 0);
	back.state = SPOOL_CUR;
	back.next_attempt = 0;
	why = reason_path(sp, e);
	if (spool_move(sp, e, &back) < 0) {
		free(why);
		return -1;
	}
	(void)unlink(why);
	free(why);
	return 0;
}

/* spool_delete - remove a message for good */
int
spool_delete(struct spool *sp, const struct spool_entry *e)
{
	char	*path = spool_path(sp, e), *why;
	int	 rc = unlink(path);

	free(path);
	if (rc == 0 && e->state == SPOOL_FAILED) {
		why = reason_path(sp, e);
		(void)unlink(why);
		free(why);
	}
	if (rc == 0)
		drop_note(sp, e);
	return rc;
}

/* spool_reason - why it failed, or why its last attempt did; "" if unknown */
void
spool_reason(const struct spool *sp, const struct spool_entry *e, char *buf,
    size_t size)
{
	char	*path = e->state == SPOOL_FAILED ? reason_path(sp, e) :
	    note_path(sp, e);
	FILE	*fp = fopen(path, "r");

	buf[0] = '\0';
	free(path);
	if (fp == NULL)
		return;
	if (fgets(buf, (int)size, fp) != NULL)
		buf[strcspn(buf, "\n")] = '\0';
	fclose(fp);
}

/* spool_move - rename an entry to its new state and name; *e follows */
static int
spool_move(struct spool *sp, struct spool_entry *e, struct spool_entry *moved)
{
	char	*from, *to;
	int	 rc;

	spool_entry_name(moved);
	from = spool_path(sp, e);
	to = spool_path(sp, moved);
	rc = rename(from, to);
	free(from);
	free(to);
	if (rc == 0)
		*e = *moved;
	return rc;
}

/* spool_claim - take ownership of a new/ message by moving it into cur/ */
int
spool_claim(struct spool *sp, struct spool_entry *e)
{
	struct spool_entry	claimed = *e;

	if (e->state == SPOOL_CUR)
		return 0;
	claimed.state = SPOOL_CUR;
	return spool_move(sp, e, &claimed);
}

/* spool_defer - record attempts and the next attempt time in the name */
int
spool_defer(struct spool *sp, struct spool_entry *e, int attempts,
    time_t next)
{
	struct spool_entry	moved = *e;

	moved.attempts = attempts;
	moved.next_attempt = next;
	return spool_move(sp, e, &moved);
}

/* note_path - defer/<ID> */
static char *
note_path(const struct spool *sp, const struct spool_entry *e)
{
	return xasprintf("%s/%s", sp->defer, e->id);
}

/* drop_note - the message is gone or failed: its defer note goes too */
static void
drop_note(struct spool *sp, const struct spool_entry *e)
{
	char	*path = note_path(sp, e);

	(void)unlink(path);
	free(path);
}

/* spool_note - remember why the last attempt failed, for smtpproxyctl */
int
spool_note(struct spool *sp, const struct spool_entry *e, const char *reason)
{
	char	*path = note_path(sp, e);
	int	 fd, rc = -1;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	free(path);
	if (fd < 0)
		return -1;
	if (write_all(fd, reason, strlen(reason)) >= 0 &&
	    write_all(fd, "\n", 1) >= 0)
		rc = 0;
	close(fd);
	return rc;
}

/*
 * spool_done - a delivered message leaves the queue: kept in tmp/ for
 * reuse, or unlinked.  Its defer note goes whatever its attempts say: a
 * crash between moving to failed/ and dropping the note can leave one
 * behind a message that smtpproxyctl then requeues with no attempts.
 */
int
spool_done(struct spool *sp, const struct spool_entry *e)
{
	char	*path = spool_path(sp, e);
	int	 rc = 0;

	if (free_put(sp, path, e->id) < 0)
		rc = unlink(path);
	free(path);
	drop_note(sp, e);
	return rc;
}

/* spool_fail - move to failed/, with the reason in "<ID>.reason" beside it */
int
spool_fail(struct spool *sp, const struct spool_entry *e, const char *reason)
{
	char	*from, *to, *why;
	int	 fd, rc;

	why = reason_path(sp, e);
	fd = open(why, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd >= 0) {
		(void)write_all(fd, reason, strlen(reason));
		(void)write_all(fd, "\n", 1);
		(void)fsync(fd);
		close(fd);
	}
	free(why);
	from = spool_path(sp, e);
	to = xasprintf("%s/%s", sp->failed, e->id);
	rc = rename(from, to);
	free(from);
	free(to);
	if (rc == 0) {
		(void)fsync_dir(sp->failed);
		drop_note(sp, e);
	}
	return rc;
}

/* envelope_value - the address inside "<...>" of a field's value */
static char *
envelope_value(const char *v, size_t len)
{
	while (len > 0 && (v[len - 1] == '\n' || v[len - 1] == '\r'))
		len--;
	if (len >= 2 && v[0] == '<' && v[len - 1] == '>')
		return xstrndup(v + 1, len - 2);
	return xstrndup(v, len);
}

/* has_prefix - does the line of len bytes begin with prefix */
static bool
has_prefix(const char *line, size_t len, const char *prefix)
{
	size_t	plen = strlen(prefix);

	return len >= plen && memcmp(line, prefix, plen) == 0;
}

/* envelope_line - take one line into env; false: it is not an envelope line */
static bool
envelope_line(struct envelope *env, const char *line, size_t len)
{
	size_t	from = strlen(ENVELOPE_FROM_HEADER);
	size_t	to = strlen(ENVELOPE_TO_HEADER);

	if (has_prefix(line, len, ENVELOPE_FROM_HEADER) && env->sender == NULL) {
		env->sender = envelope_value(line + from, len - from);
		return true;
	}
	if (!has_prefix(line, len, ENVELOPE_TO_HEADER))
		return false;
	env->rcpts = xrealloc(env->rcpts, (env->nrcpts + 1) *
	    sizeof(*env->rcpts));
	env->rcpts[env->nrcpts++] = envelope_value(line + to, len - to);
	return true;
}

/*
 * spool_envelope_read - parse the leading envelope lines of a spool file,
 * read with pread from its start in growing chunks (the file offset is
 * left alone)
 */
int
spool_envelope_read(int fd, struct envelope *env)
{
	char	*buf = NULL, *nl;
	size_t	 cap = 0, len = 0, pos = 0, end;
	ssize_t	 n;
	bool	 eof = false;

	memset(env, 0, sizeof(*env));
	for (;;) {
		nl = len > pos ? memchr(buf + pos, '\n', len - pos) : NULL;
		if (nl == NULL && !eof) {
			if (len == cap) {
				cap = cap ? cap * 2 : SPOOL_ENVELOPE_CHUNK;
				buf = xrealloc(buf, cap);
			}
			if ((n = pread(fd, buf + len, cap - len, (off_t)len)) < 0) {
				free(buf);
				spool_envelope_free(env);
				return -1;
			}
			eof = n == 0;
			len += (size_t)n;
			continue;
		}
		end = nl != NULL ? (size_t)(nl - buf) + 1 : len;
		if (end == pos || !envelope_line(env, buf + pos, end - pos))
			break;
		pos = end;
	}
	free(buf);
	env->body_offset = (off_t)pos;
	if (env->sender == NULL || env->nrcpts == 0) {
		spool_envelope_free(env);
		errno = EINVAL;
		return -1;
	}
	return 0;
}

/* spool_envelope_free - release a parsed envelope */
void
spool_envelope_free(struct envelope *env)
{
	for (size_t i = 0; i < env->nrcpts; i++)
		free(env->rcpts[i]);
	free(env->rcpts);
	free(env->sender);
	memset(env, 0, sizeof(*env));
}

/* copy_range - copy the rest of in (from offset) to out */
static int
copy_range(int in, off_t offset, int out)
{
	char	*buf = xmalloc(SPOOL_COPY_BUF);
	ssize_t	 n;
	int	 rc = 0;

	while ((n = pread(in, buf, SPOOL_COPY_BUF, offset)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			rc = -1;
			break;
		}
		if (write_all(out, buf, (size_t)n) < 0) {
			rc = -1;
			break;
		}
		offset += n;
	}
	free(buf);
	return rc;
}

/*
 * spool_rewrite_rcpts - replace a cur/ message by a copy whose envelope
 * lists only the recipients still owed (keep[i] true).  The copy is made in
 * tmp/, fsynced, and renamed over the original, so either version survives a
 * crash, never neither.
 */
int
spool_rewrite_rcpts(struct spool *sp, struct spool_entry *e,
    const struct envelope *env, const bool *keep)
{
	struct spool_msg	 copy;
	char			*src, *dst, *head;
	int			 in, saved, rc = -1;

	src = spool_path(sp, e);
	if ((in = open(src, O_RDONLY | O_CLOEXEC)) < 0) {
		free(src);
		return -1;
	}
	if (spool_create(sp, &copy) < 0) {
		saved = errno;
		goto out;
	}
	head = xasprintf(ENVELOPE_FROM_HEADER "<%s>\r\n", env->sender);
	rc = write_all(copy.fd, head, strlen(head)) < 0 ? -1 : 0;
	free(head);
	for (size_t i = 0; rc == 0 && i < env->nrcpts; i++) {
		if (!keep[i])
			continue;
		head = xasprintf(ENVELOPE_TO_HEADER "<%s>\r\n", env->rcpts[i]);
		rc = write_all(copy.fd, head, strlen(head)) < 0 ? -1 : 0;
		free(head);
	}
	if (rc == 0)
		rc = copy_range(in, env->body_offset, copy.fd);
	if (rc == 0)
		rc = msg_sync(&copy);
	saved = errno;
	close(copy.fd);
	dst = xasprintf("%s/%s", sp->tmp, copy.id);
	if (rc == 0)
		rc = rename(dst, src);
	if (rc < 0) {
		saved = errno;
		unlink(dst);
	} else
		(void)fsync_dir(sp->cur);
	free(dst);
out:
	close(in);
	free(src);
	if (rc < 0)
		errno = saved;
	return rc;
}
