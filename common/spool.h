/*
 * spool - the maildir-style queue: the only module that names spool paths
 * and renames spool files.
 *
 *   msgdir/tmp      messages being received (left-overs older than 36 h go),
 *                   and free.<ID>: delivered files kept for reuse
 *   msgdir/new      accepted, durable, not yet seen by the relay
 *   msgdir/cur      claimed by the relay; retry state in the name's info part
 *   msgdir/failed   permanently failed, each with a "<name>.reason" beside it
 *   msgdir/defer    "<ID>": why the last attempt of a deferred message failed
 *   msgdir/trigger  FIFO: one byte written after each commit wakes the relay
 *   msgdir/status   the running daemon's scoreboard (see scoreboard.h)
 *
 * A message file begins with envelope lines we own, then our Received:
 * line and the message as the client sent it (CRLF normalised):
 *
 *   X-Envelope-From: <sender>
 *   X-Envelope-To: <rcpt>          (one per recipient still owed)
 *   Received: ...
 *
 * Queue IDs follow maildir: <sec>.M<usec>P<pid>Q<n>.<host>.  In cur/ the
 * name carries ":1,A<attempts>,T<next attempt>,S<first seen>".
 *
 * Recycling: creating a file costs the file system an inode, and on ext4
 * without a journal finding a free inode gets slower with every recently
 * deleted one.  So with a shared counter (spool_recycle) a delivered file
 * of at most SPOOL_RECYCLE_SIZE bytes becomes tmp/free.<ID> instead of
 * being unlinked, up to SPOOL_RECYCLE_MAX of them, and spool_create renames
 * one of those to the new ID and overwrites it in place; spool_commit cuts
 * it at the bytes written.  Without the counter (smtpproxyctl, tests)
 * nothing is recycled.  A free file idle for 36 hours is removed.
 *
 * Writer side (listener):
 *   spool_open(sp, msgdir, create)   open (and with create, make) the folders
 *   spool_create(sp, msg)            tmp/ file, new or reused; msg->id,
 *                                    msg->fd, msg->recycled
 *   spool_commit(sp, msg)            fdatasync file (a reused one cut
 *                                    first), rename into new/, fsync new/
 *                                    (shared: see below); on failure the
 *                                    tmp file is removed
 *   spool_abort(sp, msg)             drop the tmp file
 *   spool_trigger(sp)                wake the relay for new/ (never blocks)
 *   spool_trigger_due(sp)            wake it for cur/ too: something was
 *                                    made due (smtpproxyctl flush, retry)
 *   spool_clean_tmp(sp, now)         remove tmp/ files older than 36 hours
 *                                    and free files idle that long
 *   spool_recycle(sp, counter)       master: share counter (count the free
 *                                    files there are) and recycle from now on
 *   spool_share_sync(sp, seq)        master: share the group commit of new/
 *                                    (seq: two counters, zeroed here)
 *
 * Group commit of new/: every commit needs an fsync of new/ that began
 * after its rename.  With the shared counters, a listener numbers its
 * rename after making it (requested), and whoever holds the lock (flock on
 * new/) fsyncs for every rename numbered so far and publishes that number
 * (synced); a listener that finds its number synced once it has the lock,
 * or before, answers without an fsync of its own.  Concurrent listeners
 * thus share one fsync of new/ instead of queueing one each.
 *
 * Relay side:
 *   spool_trigger_fd(sp)             read end of the FIFO, non-blocking
 *   spool_scan(sp, now, fn, arg, &next)  call fn for new/ files and due cur/
 *                                    files; next: earliest future attempt
 *   spool_scan_new(sp, fn, arg)      call fn for new/ files only
 *   spool_claim(sp, entry)           new/ -> cur/ (atomic ownership)
 *   spool_defer(sp, entry, attempts, next)  rename within cur/ with new state
 *   spool_note(sp, entry, reason)    remember why the last attempt failed
 *                                    (informational: not fsynced)
 *   spool_done(sp, entry)            delivered: recycle or unlink
 *   spool_fail(sp, entry, reason)    move to failed/ with a reason file
 *   spool_envelope_read(fd, env)     parse the leading envelope lines
 *   spool_envelope_free(env)
 *   spool_rewrite_rcpts(sp, entry, env, keep[])  keep only owed recipients
 *
 * Administration (smtpproxyctl):
 *   spool_find(sp, id, entry)        the message with that queue ID, in
 *                                    new/, cur/ or failed/; -1 ENOENT
 *   spool_make_due(sp, entry)        due now: a deferred one in cur/ gets
 *                                    T0; a failed one goes back to cur/
 *                                    (its reason file removed)
 *   spool_delete(sp, entry)          remove a message (and its reason)
 *   spool_reason(sp, entry, buf, n)  the failure reason, or the last
 *                                    attempt's error of a deferred one
 *   spool_list(sp, state, fn, arg)   every message of one folder
 *
 * Errors: -1 with errno set; nothing is logged here, callers decide.
 */
#ifndef SMTPPROXY_SPOOL_H
#define SMTPPROXY_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#define SPOOL_ID_MAX		256
#define SPOOL_NAME_MAX		(SPOOL_ID_MAX + 64)
#define SPOOL_TMP_MAX_AGE	(36 * 3600)
#define SPOOL_ENVELOPE_LINE_MAX	1024
#define SPOOL_RECYCLE_SIZE	(256 * 1024)	/* larger files are unlinked */
#define SPOOL_RECYCLE_MAX	128	/* free files in tmp/ at most */
#define SPOOL_SYNC_REQUESTED	0	/* spool_share_sync: renames numbered */
#define SPOOL_SYNC_DONE		1	/* and the last one known durable */
#define SPOOL_RECYCLE_CACHE	32	/* free names one process remembers */
#define SPOOL_FREE_PREFIX	"free."	/* tmp/free.<ID>: a recycled file */

#define ENVELOPE_FROM_HEADER	"X-Envelope-From: "
#define ENVELOPE_TO_HEADER	"X-Envelope-To: "

#define SPOOL_WAKE_NEW		'm'	/* trigger byte: a message in new/ */
#define SPOOL_WAKE_DUE		'f'	/* trigger byte: cur/ has due mail */

struct spool {
	char	*dir;			/* msgdir, absolute */
	char	*tmp, *new, *cur, *failed, *defer, *trigger, *status;
	int	 trigger_wfd;		/* writer end, opened lazily */
	char	 host[64];		/* maildir host part */
	unsigned long seq;		/* Q<n> counter of this process */
	int32_t	*free_count;		/* shared; NULL: recycle nothing */
	char	(*free_names)[SPOOL_NAME_MAX];	/* this process's cache */
	size_t	 free_left;		/* names not yet tried */
	size_t	 free_next;		/* the next one to try */
	size_t	 free_cached;		/* names in the cache */
	uint64_t *sync_seq;		/* shared [requested, synced]; or NULL */
	int	 new_fd;		/* new/, open for its fsync; -1 */
};

struct spool_msg {
	char	 id[SPOOL_ID_MAX];
	int	 fd;
	bool	 recycled;		/* an older file: cut it at commit */
};

enum spool_state {
	SPOOL_NEW,			/* in new/, never tried */
	SPOOL_CUR,			/* in cur/, claimed */
	SPOOL_FAILED			/* in failed/, given up */
};

struct spool_entry {
	enum spool_state state;
	char	 name[SPOOL_NAME_MAX];	/* file name in its folder */
	char	 id[SPOOL_ID_MAX];	/* queue ID: name without the info part */
	int	 attempts;
	time_t	 next_attempt;		/* 0: due now */
	time_t	 first_seen;		/* when it was queued (from the ID) */
};

struct envelope {
	char	*sender;		/* "" for the null sender */
	char	**rcpts;
	size_t	 nrcpts;
	off_t	 body_offset;		/* first byte after the envelope lines */
};

typedef int (*spool_scan_fn)(const struct spool_entry *, void *);

int	 spool_open(struct spool *, const char *, bool);
void	 spool_close(struct spool *);

int	 spool_create(struct spool *, struct spool_msg *);
int	 spool_commit(struct spool *, struct spool_msg *);
void	 spool_abort(struct spool *, struct spool_msg *);
void	 spool_trigger(struct spool *);
void	 spool_trigger_due(struct spool *);
int	 spool_clean_tmp(struct spool *, time_t);
int	 spool_recycle(struct spool *, int32_t *);
void	 spool_share_sync(struct spool *, uint64_t *);

int	 spool_trigger_fd(struct spool *);
int	 spool_scan(struct spool *, time_t, spool_scan_fn, void *, time_t *);
int	 spool_scan_new(struct spool *, spool_scan_fn, void *);
int	 spool_claim(struct spool *, struct spool_entry *);
int	 spool_defer(struct spool *, struct spool_entry *, int, time_t);
int	 spool_note(struct spool *, const struct spool_entry *, const char *);
int	 spool_done(struct spool *, const struct spool_entry *);
int	 spool_fail(struct spool *, const struct spool_entry *, const char *);
char	*spool_path(const struct spool *, const struct spool_entry *);
int	 spool_parse_name(const char *, enum spool_state, struct spool_entry *);

int	 spool_find(struct spool *, const char *, struct spool_entry *);
int	 spool_make_due(struct spool *, struct spool_entry *);
int	 spool_delete(struct spool *, const struct spool_entry *);
void	 spool_reason(const struct spool *, const struct spool_entry *, char *,
	    size_t);
int	 spool_list(struct spool *, enum spool_state, spool_scan_fn, void *);

int	 spool_envelope_read(int, struct envelope *);
void	 spool_envelope_free(struct envelope *);
int	 spool_rewrite_rcpts(struct spool *, struct spool_entry *,
	    const struct envelope *, const bool *);

#endif
