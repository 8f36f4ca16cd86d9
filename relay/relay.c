/*
 * relay - the relay worker loop (see relay.h): scan, claim, group by
 * account, deliver, and settle each message in the spool.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "courier.h"
#include "idset.h"
#include "log.h"
#include "oauth.h"
#include "relay.h"
#include "retry.h"
#include "util.h"

/*
 * A courier (delivery child) and the messages it holds: busy while it has
 * some, idle (its upstream connection kept) from its report until the
 * next batch or RELAY_LINGER_MS later, when its socket is closed.
 */
struct delivery {
	pid_t			  pid;
	int			  sock;		/* -1: closed, waiting to reap */
	char			**ids;
	size_t			  nids;
	int64_t			  idle_since;	/* ms, when it reported idle */
	bool			  readable;	/* poll saw a report */
};

/* The messages of one account: waiting here, or with its couriers. */
struct account_queue {
	const struct account	 *account;
	struct relay_item	**waiting;
	size_t			  nwaiting, cap;
	struct delivery		 *children;
	size_t			  nchildren;
};

struct relay {
	const struct config	 *cfg;
	struct spool		 *sp;
	struct idset		  known;	/* claimed: waiting or in flight */
	struct account_queue	 *queues;
	size_t			  nqueues;
	size_t			  nwaiting;	/* over all queues */
	int			  running;	/* couriers, busy or idle */
	time_t			  cur_due;	/* scan cur/ from then on; 0: now */
	bool			  rescan;	/* new/ may hold mail not yet seen */
	int			  wake[2];	/* SIGCHLD self-pipe */
};

struct relay_pass {
	const struct idset	*known;
	struct spool_entry	*entries;
	size_t			 n, cap, limit;
};

static volatile sig_atomic_t	relay_stop;
static volatile sig_atomic_t	relay_flush;
static int			relay_wake_fd = -1;

static void	relay_signals(void);
static int	collect_due(const struct spool_entry *, void *);
static bool	relay_pass(struct relay *, time_t *, int *);
static void	cur_due_by(struct relay *, time_t);
static void	relay_wait(struct relay *, int, time_t, int);

/* on_term - finish the batches in hand, then leave */
static void
on_term(int sig)
{
	(void)sig;
	relay_stop = 1;
}

/* on_usr1 - make every deferred message due at once */
static void
on_usr1(int sig)
{
	(void)sig;
	relay_flush = 1;
}

/* on_chld - a courier ended: wake the loop */
static void
on_chld(int sig)
{
	int	saved = errno;

	(void)sig;
	if (relay_wake_fd >= 0)
		(void)!write(relay_wake_fd, "c", 1);
	errno = saved;
}

/* relay_signals - this process's own signal handling */
static void
relay_signals(void)
{
	struct sigaction	sa;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_chld;
	sa.sa_flags = SA_RESTART | SA_NOCLDSTOP;
	sigaction(SIGCHLD, &sa, NULL);
	sa.sa_flags = 0;
	sa.sa_handler = SIG_IGN;
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGPIPE, &sa, NULL);
}

/* collect_due - scan callback: remember a due message not held already */
static int
collect_due(const struct spool_entry *e, void *arg)
{
	struct relay_pass	*pass = arg;

	if (idset_has(pass->known, e->id))
		return 0;
	if (pass->n == pass->limit)
		return 1;
	if (pass->n == pass->cap) {
		pass->cap = pass->cap ? pass->cap * 2 : 64;
		pass->entries = xrealloc(pass->entries,
		    pass->cap * sizeof(*pass->entries));
	}
	pass->entries[pass->n++] = *e;
	return 0;
}

/* no_account - a sender whose account vanished from the config: keep it */
static void
no_account(const struct config *cfg, struct spool *sp, struct relay_item *it,
    time_t now)
{
	int	attempts = it->entry.attempts + 1;
	time_t	next = now + retry_delay(attempts, cfg->retrymin, cfg->retrymax);

	log_error("%s: no account for sender <%s> in %s; kept, next try in %lld s",
	    it->entry.id, it->env.sender, cfg->path, (long long)(next - now));
	if (now - it->entry.first_seen >= cfg->queuelifetime) {
		if (spool_fail(sp, &it->entry, "no account for this sender") < 0)
			log_error("%s: cannot move to failed/: %s", it->entry.id,
			    strerror(errno));
		return;
	}
	if (spool_defer(sp, &it->entry, attempts, next) < 0)
		log_error("%s: cannot defer: %s", it->entry.id, strerror(errno));
	else
		(void)spool_note(sp, &it->entry, "no account for this sender");
}

/* queue_for - the queue of an account, made on first use */
static struct account_queue *
queue_for(struct relay *r, const struct account *acct)
{
	for (size_t i = 0; i < r->nqueues; i++)
		if (r->queues[i].account == acct)
			return &r->queues[i];
	r->queues = xrealloc(r->queues, (r->nqueues + 1) * sizeof(*r->queues));
	memset(&r->queues[r->nqueues], 0, sizeof(*r->queues));
	r->queues[r->nqueues].account = acct;
	return &r->queues[r->nqueues++];
}

/* queue_add - a loaded message waits for its account's next session */
static void
queue_add(struct relay *r, struct relay_item *it)
{
	struct account_queue	*q = queue_for(r, it->account);

	if (q->nwaiting == q->cap) {
		q->cap = q->cap ? q->cap * 2 : 16;
		q->waiting = xrealloc(q->waiting, q->cap * sizeof(*q->waiting));
	}
	q->waiting[q->nwaiting++] = it;
	r->nwaiting++;
}

/* take_new - claim and load what the scan found */
static void
take_new(struct relay *r, const struct relay_pass *pass, time_t now)
{
	for (size_t i = 0; i < pass->n; i++) {
		struct relay_item	*it = xcalloc(1, sizeof(*it));

		it->entry = pass->entries[i];
		it->fd = -1;
		if (spool_claim(r->sp, &it->entry) < 0) {
			free(it);	/* gone: an admin or another relay took it */
			continue;
		}
		if (relay_item_load(r->cfg, r->sp, it, false) < 0) {
			log_error("%s: unreadable queue file: %s; moved to failed/",
			    it->entry.id, strerror(errno));
			spool_fail(r->sp, &it->entry, "unreadable queue file");
		} else if (it->account == NULL) {
			no_account(r->cfg, r->sp, it, now);
			cur_due_by(r, now + r->cfg->retrymin);
		} else {
			idset_add(&r->known, it->entry.id);
			queue_add(r, it);
			continue;
		}
		relay_item_free(it);
		free(it);
	}
}

/* cur_due_by - something in cur/ falls due at t: scan it by then */
static void
cur_due_by(struct relay *r, time_t t)
{
	if (r->cur_due == 0 || t < r->cur_due)
		r->cur_due = t;
}

/* delivery_release - a batch is settled: its IDs may be scanned again */
static void
delivery_release(struct relay *r, struct delivery *d)
{
	for (size_t i = 0; i < d->nids; i++) {
		idset_remove(&r->known, d->ids[i]);
		free(d->ids[i]);
	}
	free(d->ids);
	d->ids = NULL;
	d->nids = 0;
}

/* delivery_close - end a courier's wait: it quits upstream and exits */
static void
delivery_close(struct delivery *d)
{
	if (d->sock >= 0)
		close(d->sock);
	d->sock = -1;
}

/* delivery_idle - may this courier take a batch now */
static bool
delivery_idle(const struct delivery *d)
{
	return d->sock >= 0 && d->nids == 0;
}

/*
 * wants_session - may this account get another courier now: it has mail
 * waiting that its idle couriers did not take, a place is free, and either
 * none of its couriers is running or enough is waiting to be worth a
 * parallel session (few messages wait for a running session to take
 * them over the same connection).
 */
static bool
wants_session(const struct relay *r, const struct account_queue *q)
{
	int	sessions = r->cfg->relayprocesses < RELAY_ACCOUNT_SESSIONS ?
	    r->cfg->relayprocesses : RELAY_ACCOUNT_SESSIONS;

	if (q->nwaiting == 0 || r->running >= r->cfg->relayprocesses)
		return false;
	if (q->nchildren == 0)
		return true;
	return q->nchildren < (size_t)sessions &&
	    q->nwaiting >= RELAY_PARALLEL_MIN;
}

/* close_inherited - a new courier keeps none of the relay's descriptors */
static void
close_inherited(struct relay *r)
{
	close(r->wake[0]);
	close(r->wake[1]);
	for (size_t i = 0; i < r->nqueues; i++)
		for (size_t k = 0; k < r->queues[i].nchildren; k++)
			delivery_close(&r->queues[i].children[k]);
}

/* start_delivery - fork an idle courier for an account */
static struct delivery *
start_delivery(struct relay *r, struct account_queue *q)
{
	struct delivery	*d;
	int		 sv[2];
	pid_t		 pid;

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sv) < 0) {
		log_error("socketpair: %s", strerror(errno));
		return NULL;
	}
	if ((pid = fork()) < 0) {
		log_error("fork: %s", strerror(errno));
		close(sv[0]);
		close(sv[1]);
		return NULL;
	}
	if (pid == 0) {
		close_inherited(r);
		close(sv[0]);
		courier_main(r->cfg, r->sp, q->account, sv[1]);
	}
	close(sv[1]);
	q->children = xrealloc(q->children,
	    (q->nchildren + 1) * sizeof(*q->children));
	d = &q->children[q->nchildren++];
	memset(d, 0, sizeof(*d));
	d->pid = pid;
	d->sock = sv[0];
	d->idle_since = now_ms();
	r->running++;
	return d;
}

/* feed - hand an idle courier the next waiting messages of its account */
static int
feed(struct relay *r, struct account_queue *q, struct delivery *d)
{
	size_t	n = q->nwaiting < RELAY_BATCH_MAX ? q->nwaiting :
	    RELAY_BATCH_MAX;

	if (courier_send(d->sock, q->waiting, n) < 0) {
		log_error("cannot hand a batch to delivery process %ld: %s",
		    (long)d->pid, strerror(errno));
		delivery_close(d);
		return -1;
	}
	d->ids = xcalloc(n, sizeof(*d->ids));
	d->nids = n;
	for (size_t k = 0; k < n; k++) {
		d->ids[k] = xstrdup(q->waiting[k]->entry.id);
		relay_item_free(q->waiting[k]);
		free(q->waiting[k]);
	}
	memmove(q->waiting, q->waiting + n,
	    (q->nwaiting - n) * sizeof(*q->waiting));
	q->nwaiting -= n;
	r->nwaiting -= n;
	return 0;
}

/*
 * evict_idle - every place is taken and this account has no courier:
 * close another account's idle courier, whose place is free once it is
 * reaped
 */
static void
evict_idle(struct relay *r, const struct account_queue *q)
{
	for (size_t i = 0; i < r->nqueues; i++) {
		struct account_queue	*other = &r->queues[i];

		if (other == q)
			continue;
		for (size_t k = 0; k < other->nchildren; k++) {
			if (delivery_idle(&other->children[k])) {
				delivery_close(&other->children[k]);
				return;
			}
		}
	}
}

/* dispatch_queue - one account's waiting mail to its couriers */
static void
dispatch_queue(struct relay *r, struct account_queue *q)
{
	struct delivery	*d;

	for (size_t k = 0; k < q->nchildren && q->nwaiting > 0; k++)
		if (delivery_idle(&q->children[k]))
			(void)feed(r, q, &q->children[k]);
	while (wants_session(r, q)) {
		if ((d = start_delivery(r, q)) == NULL || feed(r, q, d) < 0)
			return;
	}
	if (q->nwaiting > 0 && q->nchildren == 0)
		evict_idle(r, q);
}

/* dispatch - give the accounts with mail waiting their couriers */
static void
dispatch(struct relay *r)
{
	for (size_t i = 0; i < r->nqueues && !relay_stop; i++)
		dispatch_queue(r, &r->queues[i]);
}

/* delivery_report - read what a courier wrote: its batch is settled */
static void
delivery_report(struct relay *r, struct delivery *d)
{
	char	buf[16];
	ssize_t	n;

	d->readable = false;
	while ((n = recv(d->sock, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
		if (buf[0] != COURIER_IDLE || d->nids == 0)
			continue;
		delivery_release(r, d);
		cur_due_by(r, time(NULL) + r->cfg->retrymin);
		d->idle_since = now_ms();
	}
	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
		delivery_close(d);	/* it is exiting; reap follows */
}

/*
 * tend_couriers - read the reports poll saw, close couriers idle for
 * RELAY_LINGER_MS; the ms until the next one is due to close (-1: none)
 */
static int
tend_couriers(struct relay *r)
{
	int64_t	now = now_ms(), next = -1;

	for (size_t i = 0; i < r->nqueues; i++) {
		struct account_queue	*q = &r->queues[i];

		for (size_t k = 0; k < q->nchildren; k++) {
			struct delivery	*d = &q->children[k];
			int64_t		 left;

			if (d->readable && d->sock >= 0)
				delivery_report(r, d);
			if (!delivery_idle(d))
				continue;
			left = d->idle_since + RELAY_LINGER_MS - now;
			if (left <= 0 || relay_stop)
				delivery_close(d);
			else if (next < 0 || left < next)
				next = left;
		}
	}
	return (int)next;
}

/* child_done - account for one ended child; false if it was not a courier */
static bool
child_done(struct relay *r, pid_t pid, int status)
{
	for (size_t i = 0; i < r->nqueues; i++) {
		struct account_queue	*q = &r->queues[i];

		for (size_t k = 0; k < q->nchildren; k++) {
			struct delivery	*d = &q->children[k];

			if (d->pid != pid)
				continue;
			if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
				log_error("delivery for %s ended abnormally "
				    "(status %d); its messages will be retried",
				    q->account->name, status);
				r->cur_due = 0;	/* they are in cur/, due */
			} else if (d->nids > 0)
				cur_due_by(r, time(NULL) + r->cfg->retrymin);
			delivery_release(r, d);
			delivery_close(d);
			q->children[k] = q->children[--q->nchildren];
			r->running--;
			return true;
		}
	}
	return false;
}

/* reap - couriers that ended: their messages are settled in the spool */
static void
reap(struct relay *r)
{
	pid_t	pid;
	int	status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		(void)child_done(r, pid, status);
}

/*
 * relay_pass - reap, read the couriers' reports, scan for due messages not
 * already held, claim and queue them per account, hand them out.  Returns
 * true when the scan stopped at its limit, so more is waiting; *linger is
 * the ms until an idle courier is to be closed (-1: none idle).
 */
static bool
relay_pass(struct relay *r, time_t *next_due, int *linger)
{
	struct relay_pass	 pass = { .known = &r->known };
	time_t			 now = time(NULL), next = 0;
	bool			 full, whole;
	int			 rc;

	reap(r);
	(void)tend_couriers(r);
	pass.limit = r->nwaiting < RELAY_WAITING_MAX ?
	    RELAY_WAITING_MAX - r->nwaiting : 0;
	if (pass.limit > RELAY_SCAN_MAX)
		pass.limit = RELAY_SCAN_MAX;
	/*
	 * cur/ holds deferred mail; it is read only when some of it can be
	 * due, so that a wake-up for a new message costs a look at new/
	 * only, however many deferred messages wait.  A wake-up that only
	 * brought couriers' reports costs no look at all.
	 */
	whole = relay_flush || r->cur_due == 0 || now >= r->cur_due;
	if (pass.limit == 0 || (!whole && !r->rescan))
		rc = 0;
	else if (whole)
		rc = spool_scan(r->sp, relay_flush ? (time_t)LLONG_MAX : now,
		    collect_due, &pass, &next);
	else
		rc = spool_scan_new(r->sp, collect_due, &pass);
	if (rc < 0)
		log_error("cannot scan %s: %s", r->sp->dir, strerror(errno));
	full = pass.n == pass.limit && pass.limit == RELAY_SCAN_MAX;
	if (whole && pass.limit > 0)
		r->cur_due = full ? 0 : next != 0 ? next :
		    now + r->cfg->sleeptime;
	relay_flush = 0;
	if (pass.limit > 0)
		r->rescan = full;
	take_new(r, &pass, now);
	free(pass.entries);
	dispatch(r);
	*next_due = r->cur_due;
	*linger = tend_couriers(r);
	return full && r->running < r->cfg->relayprocesses;
}

/*
 * relay_wait - sleep until woken (trigger, a child ended, a courier
 * reported), the next due time, an idle courier's time is up, or
 * sleeptime
 */
static void
relay_wait(struct relay *r, int trigger_fd, time_t next_due, int linger)
{
	struct pollfd	*pfd;
	struct delivery	**polled;
	size_t		 n = 2, max = 2 + (size_t)r->running;
	time_t		 now = time(NULL);
	long long	 wait_ms = (long long)r->cfg->sleeptime * 1000;
	char		 drain[512];

	if (next_due > 0 && (next_due - now) * 1000 < wait_ms)
		wait_ms = next_due > now ? (next_due - now) * 1000 : 0;
	if (linger >= 0 && linger < wait_ms)
		wait_ms = linger;
	pfd = xcalloc(max, sizeof(*pfd));
	polled = xcalloc(max, sizeof(*polled));
	pfd[0] = (struct pollfd){ .fd = trigger_fd, .events = POLLIN };
	pfd[1] = (struct pollfd){ .fd = r->wake[0], .events = POLLIN };
	for (size_t i = 0; i < r->nqueues; i++)
		for (size_t k = 0; k < r->queues[i].nchildren; k++) {
			struct delivery	*d = &r->queues[i].children[k];

			if (d->sock < 0 || n == max)
				continue;
			polled[n] = d;
			pfd[n++] = (struct pollfd){ .fd = d->sock,
			    .events = POLLIN };
		}
	if (poll(pfd, n, (int)wait_ms) <= 0)
		r->rescan = true;	/* sleeptime is up: look anyway */
	else {
		for (size_t i = 2; i < n; i++)
			if (pfd[i].revents != 0)
				polled[i]->readable = true;
		if (pfd[0].revents != 0 || pfd[1].revents != 0)
			r->rescan = true;
		if (trigger_fd >= 0 && (pfd[0].revents & POLLIN)) {
			ssize_t	got;

			while ((got = read(trigger_fd, drain,
			    sizeof(drain))) > 0)
				if (memchr(drain, SPOOL_WAKE_DUE,
				    (size_t)got) != NULL)
					r->cur_due = 0;	/* smtpproxyctl */
		}
		if (pfd[1].revents & POLLIN)
			while (read(r->wake[0], drain, sizeof(drain)) > 0)
				;
	}
	free(polled);
	free(pfd);
}

/* relay_drain - on stop: couriers finish the message in hand and exit */
static void
relay_drain(struct relay *r)
{
	for (size_t i = 0; i < r->nqueues; i++)
		for (size_t k = 0; k < r->queues[i].nchildren; k++) {
			delivery_close(&r->queues[i].children[k]);
			kill(r->queues[i].children[k].pid, SIGTERM);
		}
	while (r->running > 0) {
		int	status;
		pid_t	pid = waitpid(-1, &status, 0);

		if (pid < 0 && errno != EINTR)
			break;
		if (pid > 0)
			(void)child_done(r, pid, status);
	}
}

/* relay_free - release the in-memory queues (the spool keeps everything) */
static void
relay_free(struct relay *r)
{
	for (size_t i = 0; i < r->nqueues; i++) {
		struct account_queue	*q = &r->queues[i];

		for (size_t k = 0; k < q->nwaiting; k++) {
			relay_item_free(q->waiting[k]);
			free(q->waiting[k]);
		}
		for (size_t k = 0; k < q->nchildren; k++) {
			delivery_release(r, &q->children[k]);
			delivery_close(&q->children[k]);
		}
		free(q->waiting);
		free(q->children);
	}
	free(r->queues);
	idset_free(&r->known);
	close(r->wake[0]);
	close(r->wake[1]);
}

/* relay_main - the relay worker's life */
int
relay_main(const struct config *cfg, struct spool *sp)
{
	struct relay	r;
	int		trigger_fd;
	time_t		next_due, last_clean = 0;
	int		linger;

	log_set_ident("smtpproxyd/relay");
	memset(&r, 0, sizeof(r));
	r.cfg = cfg;
	r.sp = sp;
	r.rescan = true;
	idset_init(&r.known);
	if (pipe2(r.wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		log_error("pipe: %s", strerror(errno));
		return 1;
	}
	relay_wake_fd = r.wake[1];
	relay_signals();
	if ((trigger_fd = spool_trigger_fd(sp)) < 0)
		log_warning("cannot open %s: %s; polling every %d s",
		    sp->trigger, strerror(errno), cfg->sleeptime);
	log_info("relay started (up to %d deliveries at once)",
	    cfg->relayprocesses);
	while (!relay_stop) {
		if (time(NULL) - last_clean >= RELAY_CLEAN_INTERVAL) {
			int	n = spool_clean_tmp(sp, time(NULL));

			if (n > 0)
				log_info("removed %d stale files from %s", n,
				    sp->tmp);
			/* refresh tokens unused for days, in a child */
			(void)oauth_keepalive_start(cfg);
			last_clean = time(NULL);
		}
		if (relay_pass(&r, &next_due, &linger))
			continue;	/* more is waiting: no sleep */
		if (!relay_stop && !relay_flush)
			relay_wait(&r, trigger_fd, next_due, linger);
	}
	relay_drain(&r);
	relay_free(&r);
	if (trigger_fd >= 0)
		close(trigger_fd);
	log_info("relay stopped");
	return 0;
}
