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
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "deliver.h"
#include "headers.h"
#include "idset.h"
#include "log.h"
#include "oauth.h"
#include "pop.h"
#include "relay.h"
#include "retry.h"
#include "scoreboard.h"
#include "util.h"

/* One claimed message on its way upstream. */
struct relay_item {
	struct spool_entry	 entry;
	struct envelope		 env;
	int			 fd;		/* open only in the delivery child */
	off_t			 size;
	const struct account	*account;	/* use= already followed */
	char			*headers;	/* rewritten header block, or NULL */
	struct delivery_msg	 msg;
};

/* A delivery child and the messages it holds. */
struct delivery {
	pid_t			  pid;
	char			**ids;
	size_t			  nids;
};

/* The messages of one account: waiting here, or with its delivery children. */
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
	int			  running;	/* delivery children */
	time_t			  cur_due;	/* scan cur/ from then on; 0: now */
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
static int	relay_load(const struct config *, struct spool *,
		    struct relay_item *);
static void	relay_item_free(struct relay_item *);
static void	relay_settle(const struct config *, struct spool *,
		    struct relay_item *, time_t);
static void	relay_group(const struct config *, struct spool *,
		    struct relay_item **, size_t);
static bool	relay_pass(struct relay *, time_t *);
static void	cur_due_by(struct relay *, time_t);
static void	relay_wait(struct relay *, int, time_t);

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

/* on_chld - a delivery child ended: wake the loop */
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

/* relay_load - read a claimed message's envelope and find its account */
static int
relay_load(const struct config *cfg, struct spool *sp, struct relay_item *it)
{
	struct stat	 st;
	char		*path = spool_path(sp, &it->entry);
	int		 fd, rc = -1, saved;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (fd < 0)
		return -1;
	if (fstat(fd, &st) == 0 && spool_envelope_read(fd, &it->env) == 0) {
		it->size = st.st_size;
		it->account = account_lookup(cfg, it->env.sender);
		rc = 0;
	}
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

/* relay_item_free - close and release one message */
static void
relay_item_free(struct relay_item *it)
{
	if (it->fd >= 0)
		close(it->fd);
	free(it->msg.rcpts);
	free(it->headers);
	spool_envelope_free(&it->env);
}

/* upstream_sender - envelope sender upstream: returnpath, forcefrom, or the client's */
static const char *
upstream_sender(const struct account *acct, const char *sender)
{
	if (acct->returnpath != NULL)
		return acct->returnpath;
	if (acct->forcefrom != NULL)
		return acct->forcefrom;
	return sender;
}

/*
 * rewrite_headers - for replyto=/forcefrom=: read the header block and
 * send a rewritten copy of it in front of the untouched rest.
 */
static void
rewrite_headers(struct relay_item *it)
{
	struct delivery_msg	*m = &it->msg;
	size_t			 want, block, outlen;
	char			*buf;
	ssize_t			 n;

	want = m->length < HEADERS_BLOCK_MAX ? (size_t)m->length :
	    HEADERS_BLOCK_MAX;
	buf = xmalloc(want + 1);
	n = pread(it->fd, buf, want, m->offset);
	if (n < 0 || (size_t)n != want) {
		log_warning("%s: cannot read headers to rewrite them", m->id);
		free(buf);
		return;
	}
	block = headers_block_length(buf, want);
	if (block == want && (off_t)want < m->length) {
		log_warning("%s: header block over %d bytes, not rewritten",
		    m->id, HEADERS_BLOCK_MAX);
		free(buf);
		return;
	}
	it->headers = headers_rewrite(buf, block, it->account->replyto,
	    it->account->forcefrom, &outlen);
	free(buf);
	m->prefix = it->headers;
	m->prefix_len = outlen;
	m->offset += (off_t)block;
	m->length -= (off_t)block;
}

/* relay_prepare - fill the delivery request of one message */
static void
relay_prepare(struct relay_item *it)
{
	struct delivery_msg	*m = &it->msg;

	memset(m, 0, sizeof(*m));
	m->id = it->entry.id;
	m->mail_from = upstream_sender(it->account, it->env.sender);
	m->rcpts = xcalloc(it->env.nrcpts, sizeof(*m->rcpts));
	m->nrcpts = it->env.nrcpts;
	for (size_t i = 0; i < m->nrcpts; i++)
		m->rcpts[i].address = it->env.rcpts[i];
	m->fd = it->fd;
	m->offset = it->env.body_offset;
	m->length = it->size - it->env.body_offset;
	if (it->account->replyto != NULL || it->account->forcefrom != NULL)
		rewrite_headers(it);
}

/*
 * reason_text - what failed, for the log and failed/<ID>.reason: each
 * recipient not reached with its reply, or the message's error when no
 * recipient has a reply of its own.  One line.
 */
static char *
reason_text(const struct relay_item *it)
{
	char	*text = xstrdup(""), *next;

	for (size_t i = 0; i < it->msg.nrcpts; i++) {
		const struct delivery_rcpt *r = &it->msg.rcpts[i];

		if (r->status == DELIVERY_DELIVERED || r->reply[0] == '\0')
			continue;
		next = xasprintf("%s%s<%s>: %s", text, text[0] ? "; " : "",
		    r->address, r->reply);
		free(text);
		text = next;
	}
	if (text[0] == '\0') {
		free(text);
		text = xstrdup(it->msg.error);
	}
	return text;
}

/*
 * keep_recipients - the recipients a message keeps after this attempt: the
 * ones still owed when it is deferred, every one that did not get it when
 * it fails (so that failed/ shows whom it did not reach).
 */
static bool *
keep_recipients(const struct relay_item *it, enum retry_action action,
    bool *changed)
{
	bool	*keep = xcalloc(it->msg.nrcpts, sizeof(*keep));

	*changed = false;
	for (size_t i = 0; i < it->msg.nrcpts; i++) {
		enum delivery_status	st = it->msg.rcpts[i].status;

		keep[i] = st != DELIVERY_DELIVERED &&
		    (action == RETRY_FAIL || st != DELIVERY_PERMFAIL);
		if (!keep[i])
			*changed = true;
	}
	return keep;
}

/* relay_settle - unlink, defer or fail a message after its attempt */
static void
relay_settle(const struct config *cfg, struct spool *sp, struct relay_item *it,
    time_t now)
{
	enum retry_action	 action;
	bool			*keep, changed;
	char			*reason;
	int			 attempts = it->entry.attempts + 1;
	time_t			 next;

	action = retry_decide(&it->msg, it->entry.first_seen, now,
	    cfg->queuelifetime);
	/* mail waiting for `smtpproxyctl oauth` is never failed for that */
	if (action == RETRY_FAIL && it->msg.status == DELIVERY_TEMPFAIL &&
	    oauth_needs_authorisation(cfg, it->account, NULL, 0))
		action = RETRY_DEFER;
	for (size_t i = 0; i < it->msg.nrcpts; i++) {
		const struct delivery_rcpt *r = &it->msg.rcpts[i];

		if (r->status == DELIVERY_PERMFAIL && action != RETRY_FAIL)
			log_warning("%s: to=<%s> failed permanently: %s",
			    it->entry.id, r->address, r->reply);
	}
	reason = reason_text(it);
	keep = keep_recipients(it, action, &changed);
	if (action != RETRY_DONE && changed &&
	    spool_rewrite_rcpts(sp, &it->entry, &it->env, keep) < 0)
		log_error("%s: cannot rewrite recipients: %s (all will be retried)",
		    it->entry.id, strerror(errno));
	stat_increment(action == RETRY_DONE ? STAT_DELIVERED :
	    action == RETRY_DEFER ? STAT_DEFERRED : STAT_FAILED, 1);
	switch (action) {
	case RETRY_DONE:
		if (spool_done(sp, &it->entry) < 0)
			log_error("%s: cannot remove delivered message: %s",
			    it->entry.id, strerror(errno));
		break;
	case RETRY_DEFER:
		next = now + retry_delay(attempts, cfg->retrymin, cfg->retrymax);
		if (spool_defer(sp, &it->entry, attempts, next) < 0) {
			log_error("%s: cannot defer: %s", it->entry.id,
			    strerror(errno));
			break;
		}
		(void)spool_note(sp, &it->entry, reason);
		log_info("%s: deferred (attempt %d, next in %lld s): %s",
		    it->entry.id, attempts, (long long)(next - now), reason);
		break;
	case RETRY_FAIL:
		if (cfg->deleteonerror) {
			log_warning("%s: failed and deleted (deleteonerror): %s",
			    it->entry.id, reason);
			if (spool_done(sp, &it->entry) < 0)
				log_error("%s: cannot delete: %s", it->entry.id,
				    strerror(errno));
		} else if (spool_fail(sp, &it->entry, reason) < 0) {
			log_error("%s: cannot move to failed/: %s",
			    it->entry.id, strerror(errno));
		} else
			log_warning("%s: failed, moved to failed/: %s",
			    it->entry.id, reason);
		break;
	}
	free(reason);
	free(keep);
}

/* log_attempt - one line per delivery attempt */
static void
log_attempt(const struct relay_item *it)
{
	const struct delivery_msg *m = &it->msg;
	const char	*result = m->status == DELIVERY_DELIVERED ? "sent" :
	    m->status == DELIVERY_PERMFAIL ? "bounced" : "deferred";
	size_t		 sent = 0;

	for (size_t i = 0; i < m->nrcpts; i++)
		if (m->rcpts[i].status == DELIVERY_DELIVERED)
			sent++;
	log_info("%s: from=<%s> relay=%s:%d status=%s sent=%zu/%zu ms=%ld (%s)",
	    it->entry.id, m->mail_from, it->account->smtphost,
	    account_port(it->account), result, sent, m->nrcpts, m->elapsed_ms,
	    m->error[0] ? m->error :
	    m->nrcpts > 0 ? m->rcpts[m->nrcpts - 1].reply : "");
}

/* open_item - the delivery child opens the file of a message */
static int
open_item(struct spool *sp, struct relay_item *it)
{
	char	*path = spool_path(sp, &it->entry);

	it->fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	return it->fd;
}

/* batch_fail - every message of a batch fails the same temporary way */
static void
batch_fail(struct delivery_msg *msgs, size_t n, const char *why)
{
	for (size_t i = 0; i < n; i++) {
		strlcpy_s(msgs[i].error, why, sizeof(msgs[i].error));
		msgs[i].status = DELIVERY_TEMPFAIL;
		for (size_t r = 0; r < msgs[i].nrcpts; r++) {
			msgs[i].rcpts[r].status = DELIVERY_TEMPFAIL;
			strlcpy_s(msgs[i].rcpts[r].reply, why,
			    sizeof(msgs[i].rcpts[r].reply));
		}
	}
}

/* batch_sent_any - did any recipient of the batch get the message */
static bool
batch_sent_any(const struct delivery_msg *msgs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		for (size_t r = 0; r < msgs[i].nrcpts; r++)
			if (msgs[i].rcpts[r].status == DELIVERY_DELIVERED)
				return true;
	return false;
}

/* What a delivery child settles each message with, as soon as it is done. */
struct settle_ctx {
	const struct config	 *cfg;
	struct spool		 *sp;
	struct relay_item	**items;
	struct delivery_msg	 *msgs;
};

static volatile sig_atomic_t	delivery_stop;

/* on_delivery_term - finish the message in hand, then stop the batch */
static void
on_delivery_term(int sig)
{
	(void)sig;
	delivery_stop = 1;
}

/*
 * settle_one - a message's outcome is final: log it and settle it in the
 * spool right away, so that a stop or a crash later in the batch can
 * neither lose it nor send it twice.  False stops the batch.
 */
static bool
settle_one(struct delivery_msg *m, void *arg)
{
	struct settle_ctx	*ctx = arg;
	struct relay_item	*it = ctx->items[m - ctx->msgs];

	it->msg = *m;
	log_attempt(it);
	relay_settle(ctx->cfg, ctx->sp, it, time(NULL));
	return !delivery_stop;
}

/*
 * send_batch - POP-before-SMTP when the account wants it, then the
 * upstream session.  When a POP account's upstream took nothing, the POP
 * login is forgotten, so the next attempt logs in again rather than trust
 * an authorisation the server may have dropped.
 */
static void
send_batch(struct settle_ctx *ctx, const struct account *acct, size_t n)
{
	char	err[DELIVERY_REPLY_MAX];

	if (pop_before_smtp(ctx->cfg, acct, err, sizeof(err)) < 0) {
		log_warning("POP-before-SMTP for %s: %s; %zu message%s deferred",
		    acct->name, err, n, n == 1 ? "" : "s");
		batch_fail(ctx->msgs, n, err);
		for (size_t i = 0; i < n && settle_one(&ctx->msgs[i], ctx); i++)
			;
		return;
	}
	deliver_batch(ctx->cfg, acct, ctx->msgs, n, settle_one, ctx);
	if (acct->popbeforesmtp && !batch_sent_any(ctx->msgs, n))
		pop_forget(ctx->cfg, acct);
}

/*
 * relay_group - in a delivery child: one account's batch; each message is
 * settled as soon as its outcome is known.  Messages not tried because of
 * a stop stay in cur/, due at once.
 */
static void
relay_group(const struct config *cfg, struct spool *sp,
    struct relay_item **items, size_t n)
{
	struct settle_ctx	 ctx = { cfg, sp, items, NULL };
	size_t			 count = 0;

	ctx.msgs = xcalloc(n, sizeof(*ctx.msgs));
	for (size_t i = 0; i < n; i++) {
		if (open_item(sp, items[i]) < 0) {
			log_error("%s: cannot open queue file: %s",
			    items[i]->entry.id, strerror(errno));
			continue;	/* it stays where it is, and is retried */
		}
		relay_prepare(items[i]);
		items[count] = items[i];
		ctx.msgs[count++] = items[i]->msg;
	}
	if (count > 0)
		send_batch(&ctx, items[0]->account, count);
	free(ctx.msgs);
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
		if (relay_load(r->cfg, r->sp, it) < 0) {
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

/* delivery_child - the forked process that delivers one batch */
static void
delivery_child(struct relay *r, struct relay_item **items, size_t n)
{
	struct sigaction	sa;

	/* Never outlive the relay: a new relay would send these again. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1)
		_exit(1);
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = SIG_DFL;
	sigaction(SIGCHLD, &sa, NULL);
	sa.sa_handler = on_delivery_term;	/* the message in hand is finished */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	close(r->wake[0]);
	close(r->wake[1]);
	relay_group(r->cfg, r->sp, items, n);
	_exit(0);
}

/* cur_due_by - something in cur/ falls due at t: scan it by then */
static void
cur_due_by(struct relay *r, time_t t)
{
	if (r->cur_due == 0 || t < r->cur_due)
		r->cur_due = t;
}

/* delivery_release - a delivery is over: its IDs may be scanned again */
static void
delivery_release(struct relay *r, struct account_queue *q, size_t k)
{
	struct delivery	*d = &q->children[k];

	for (size_t i = 0; i < d->nids; i++) {
		idset_remove(&r->known, d->ids[i]);
		free(d->ids[i]);
	}
	free(d->ids);
	q->children[k] = q->children[--q->nchildren];
	r->running--;
}

/*
 * wants_session - may this account get another delivery child now: it has
 * mail waiting, a place is free, and either none of its sessions is running
 * or enough is waiting to be worth a parallel session (few messages wait
 * for the running session to end and take them over the same connection).
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

/* start_delivery - fork a delivery child for the first n waiting messages */
static int
start_delivery(struct relay *r, struct account_queue *q, size_t n)
{
	struct delivery	*d;
	pid_t		 pid;

	if ((pid = fork()) < 0) {
		log_error("fork: %s", strerror(errno));
		return -1;
	}
	if (pid == 0)
		delivery_child(r, q->waiting, n);
	q->children = xrealloc(q->children,
	    (q->nchildren + 1) * sizeof(*q->children));
	d = &q->children[q->nchildren++];
	d->pid = pid;
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
	r->running++;
	return 0;
}

/* dispatch - start delivery children for the accounts with mail waiting */
static void
dispatch(struct relay *r)
{
	for (size_t i = 0; i < r->nqueues && !relay_stop; i++) {
		struct account_queue	*q = &r->queues[i];

		while (wants_session(r, q)) {
			size_t	n = q->nwaiting < RELAY_BATCH_MAX ?
			    q->nwaiting : RELAY_BATCH_MAX;

			if (start_delivery(r, q, n) < 0)
				return;
		}
	}
}

/* child_done - account for one ended child; false if it was not a delivery */
static bool
child_done(struct relay *r, pid_t pid, int status)
{
	for (size_t i = 0; i < r->nqueues; i++) {
		struct account_queue	*q = &r->queues[i];

		for (size_t k = 0; k < q->nchildren; k++) {
			if (q->children[k].pid != pid)
				continue;
			if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
				log_error("delivery for %s ended abnormally "
				    "(status %d); its messages will be retried",
				    q->account->name, status);
				r->cur_due = 0;	/* they are in cur/, due */
			} else
				cur_due_by(r, time(NULL) + r->cfg->retrymin);
			delivery_release(r, q, k);
			return true;
		}
	}
	return false;
}

/* reap - delivery children are done: their messages are settled in the spool */
static void
reap(struct relay *r)
{
	pid_t	pid;
	int	status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0)
		(void)child_done(r, pid, status);
}

/*
 * relay_pass - reap, scan for due messages not already held, claim and
 * queue them per account, start deliveries.  Returns true when the scan
 * stopped at its limit, so more is waiting.
 */
static bool
relay_pass(struct relay *r, time_t *next_due)
{
	struct relay_pass	 pass = { .known = &r->known };
	time_t			 now = time(NULL), next = 0;
	bool			 full, whole;
	int			 rc;

	reap(r);
	pass.limit = r->nwaiting < RELAY_WAITING_MAX ?
	    RELAY_WAITING_MAX - r->nwaiting : 0;
	if (pass.limit > RELAY_SCAN_MAX)
		pass.limit = RELAY_SCAN_MAX;
	/*
	 * cur/ holds deferred mail; it is read only when some of it can be
	 * due, so that a wake-up for a new message costs a look at new/
	 * only, however many deferred messages wait.
	 */
	whole = relay_flush || r->cur_due == 0 || now >= r->cur_due;
	if (pass.limit == 0)
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
	take_new(r, &pass, now);
	free(pass.entries);
	dispatch(r);
	*next_due = r->cur_due;
	return full && r->running < r->cfg->relayprocesses;
}

/* relay_wait - sleep until woken, the next due time, or sleeptime */
static void
relay_wait(struct relay *r, int trigger_fd, time_t next_due)
{
	struct pollfd	pfd[2] = {
		{ .fd = trigger_fd, .events = POLLIN },
		{ .fd = r->wake[0], .events = POLLIN },
	};
	time_t		now = time(NULL);
	long long	wait_s = r->cfg->sleeptime;
	char		drain[512];

	if (next_due > 0 && next_due - now < wait_s)
		wait_s = next_due > now ? next_due - now : 0;
	if (poll(pfd, 2, (int)(wait_s * 1000)) <= 0)
		return;
	if (trigger_fd >= 0 && (pfd[0].revents & POLLIN)) {
		ssize_t	n;

		while ((n = read(trigger_fd, drain, sizeof(drain))) > 0)
			if (memchr(drain, SPOOL_WAKE_DUE, (size_t)n) != NULL)
				r->cur_due = 0;	/* smtpproxyctl made mail due */
	}
	if (pfd[1].revents & POLLIN)
		while (read(r->wake[0], drain, sizeof(drain)) > 0)
			;
}

/* relay_drain - on stop: delivery children finish the message in hand */
static void
relay_drain(struct relay *r)
{
	for (size_t i = 0; i < r->nqueues; i++)
		for (size_t k = 0; k < r->queues[i].nchildren; k++)
			kill(r->queues[i].children[k].pid, SIGTERM);
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
			for (size_t j = 0; j < q->children[k].nids; j++)
				free(q->children[k].ids[j]);
			free(q->children[k].ids);
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

	log_set_ident("smtpproxyd/relay");
	memset(&r, 0, sizeof(r));
	r.cfg = cfg;
	r.sp = sp;
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
		if (relay_pass(&r, &next_due))
			continue;	/* more is waiting: no sleep */
		if (!relay_stop && !relay_flush)
			relay_wait(&r, trigger_fd, next_due);
	}
	relay_drain(&r);
	relay_free(&r);
	if (trigger_fd >= 0)
		close(trigger_fd);
	log_info("relay stopped");
	return 0;
}
