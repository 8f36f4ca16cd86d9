/*
 * courier - the relay's delivery child (see courier.h): batches of one
 * account in over a socket, one upstream session kept between them, each
 * message settled in the spool as soon as its outcome is known.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "courier.h"
#include "headers.h"
#include "log.h"
#include "oauth.h"
#include "pop.h"
#include "relay.h"
#include "retry.h"
#include "scoreboard.h"
#include "util.h"

/* A batch on the wire: the spool entries of one account's messages. */
struct courier_batch {
	uint32_t		n;
	struct spool_entry	entries[RELAY_BATCH_MAX];
};

/* The courier's state between batches. */
struct courier {
	const struct config	*cfg;
	struct spool		*sp;
	const struct account	*acct;
	struct deliver_session	*session;	/* NULL until the first batch */
	time_t			 opened;	/* when the session was made */
};

static volatile sig_atomic_t	courier_stop;

/* relay_item_load - read a claimed message's envelope and find its account */
int
relay_item_load(const struct config *cfg, struct spool *sp,
    struct relay_item *it, bool keep_open)
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
	if (rc == 0 && keep_open) {
		it->fd = fd;
		return 0;
	}
	saved = errno;
	close(fd);
	errno = saved;
	return rc;
}

/* relay_item_free - close and release one message */
void
relay_item_free(struct relay_item *it)
{
	if (it->fd >= 0)
		close(it->fd);
	it->fd = -1;
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

/* items_fail - every message fails the same temporary way */
static void
items_fail(struct relay_item **items, size_t n, const char *why)
{
	for (size_t i = 0; i < n; i++)
		deliver_fail(&items[i]->msg, why);
}

/* items_sent_any - did any recipient of these messages get one */
static bool
items_sent_any(struct relay_item *const *items, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct delivery_msg *m = &items[i]->msg;

		for (size_t r = 0; r < m->nrcpts; r++)
			if (m->rcpts[r].status == DELIVERY_DELIVERED)
				return true;
	}
	return false;
}

/* settle - a message's outcome is final: log it, settle it in the spool */
static void
settle(struct courier *c, struct relay_item *it)
{
	log_attempt(it);
	relay_settle(c->cfg, c->sp, it, time(NULL));
}

/*
 * courier_session - the open session, or a new one: none yet, or the old
 * one is too old to reuse (its login and token may be stale).  NULL with
 * the reason in err.
 */
static struct deliver_session *
courier_session(struct courier *c, char *err, size_t errlen)
{
	if (c->session != NULL && time(NULL) - c->opened < COURIER_REUSE_TIME)
		return c->session;
	deliver_close(c->session);
	c->opened = time(NULL);
	c->session = deliver_open(c->cfg, c->acct, err, errlen);
	return c->session;
}

/*
 * send_items - POP-before-SMTP when the account wants it, then the
 * upstream session, each message settled as soon as it is done.  When a
 * POP account's upstream took nothing, the POP login is forgotten, so the
 * next attempt logs in again rather than trust an authorisation the
 * server may have dropped.  Messages not tried because of a stop stay in
 * cur/, due at once.
 */
static void
send_items(struct courier *c, struct relay_item **items, size_t n)
{
	struct deliver_session	*s;
	char			 err[DELIVERY_REPLY_MAX];
	size_t			 i;

	if (pop_before_smtp(c->cfg, c->acct, err, sizeof(err)) < 0) {
		log_warning("POP-before-SMTP for %s: %s; %zu message%s deferred",
		    c->acct->name, err, n, n == 1 ? "" : "s");
		items_fail(items, n, err);
		for (i = 0; i < n && !courier_stop; i++)
			settle(c, items[i]);
		return;
	}
	if ((s = courier_session(c, err, sizeof(err))) == NULL) {
		items_fail(items, n, err);
		for (i = 0; i < n && !courier_stop; i++)
			settle(c, items[i]);
		return;
	}
	for (i = 0; i < n && !courier_stop; i++) {
		deliver_send(s, &items[i]->msg);
		settle(c, items[i]);
	}
	if (c->acct->popbeforesmtp && !items_sent_any(items, i))
		pop_forget(c->cfg, c->acct);
}

/*
 * courier_batch - load, open and send the messages of one batch.  One that
 * cannot be read stays where it is and is retried.
 */
static void
courier_batch(struct courier *c, const struct spool_entry *entries, size_t n)
{
	struct relay_item	*all = xcalloc(n, sizeof(*all));
	struct relay_item	**items = xcalloc(n, sizeof(*items));
	size_t			 count = 0;

	for (size_t i = 0; i < n; i++) {
		struct relay_item	*it = &all[i];

		it->entry = entries[i];
		it->fd = -1;
		if (relay_item_load(c->cfg, c->sp, it, true) < 0) {
			log_error("%s: cannot open queue file: %s",
			    it->entry.id, strerror(errno));
			continue;
		}
		if (it->account != c->acct) {
			log_error("%s: sender <%s> moved to another account; "
			    "left for the next pass", it->entry.id,
			    it->env.sender);
			continue;
		}
		relay_prepare(it);
		items[count++] = it;
	}
	if (count > 0)
		send_items(c, items, count);
	for (size_t i = 0; i < n; i++)
		relay_item_free(&all[i]);
	free(items);
	free(all);
}

/* courier_send - relay side: the next batch for an idle courier */
int
courier_send(int sock, struct relay_item *const *items, size_t n)
{
	struct courier_batch	*b;
	size_t			 len;
	ssize_t			 sent;

	if (n == 0 || n > RELAY_BATCH_MAX) {
		errno = EINVAL;
		return -1;
	}
	len = offsetof(struct courier_batch, entries) + n * sizeof(b->entries[0]);
	b = xmalloc(len);	/* what is sent, not a whole batch's room */
	b->n = (uint32_t)n;
	for (size_t i = 0; i < n; i++)
		b->entries[i] = items[i]->entry;
	sent = send(sock, b, len, MSG_DONTWAIT | MSG_NOSIGNAL);
	free(b);
	if (sent < 0)
		return -1;
	if ((size_t)sent != len) {
		errno = EMSGSIZE;
		return -1;
	}
	return 0;
}

/*
 * courier_receive - wait for the next batch: its size, or 0 at end of
 * file, on a stop, or for a malformed message
 */
static size_t
courier_receive(int sock, struct courier_batch *b)
{
	size_t	head = offsetof(struct courier_batch, entries);
	ssize_t	n;

	for (;;) {
		if (courier_stop)
			return 0;
		n = recv(sock, b, sizeof(*b), 0);
		if (n >= 0 || errno != EINTR)
			break;
	}
	if (n < (ssize_t)head)
		return 0;
	if (b->n == 0 || b->n > RELAY_BATCH_MAX ||
	    (size_t)n != head + b->n * sizeof(b->entries[0])) {
		log_error("malformed batch from the relay (%zd bytes)", n);
		return 0;
	}
	return b->n;
}

/* on_courier_term - finish the message in hand, then stop */
static void
on_courier_term(int sig)
{
	(void)sig;
	courier_stop = 1;
}

/* courier_signals - the child's own signal handling */
static void
courier_signals(void)
{
	struct sigaction	sa;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = SIG_DFL;
	sigaction(SIGCHLD, &sa, NULL);
	sa.sa_handler = on_courier_term;	/* no SA_RESTART: wakes recv */
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
}

/* courier_main - the delivery child's life: batches until told to stop */
void
courier_main(const struct config *cfg, struct spool *sp,
    const struct account *acct, int sock)
{
	struct courier		 c = { cfg, sp, acct, NULL, 0 };
	struct courier_batch	*b = xmalloc(sizeof(*b));
	size_t			 n;
	char			 idle = COURIER_IDLE;

	/* Never outlive the relay: a new relay would send these again. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (getppid() == 1)
		_exit(1);
	courier_signals();
	while ((n = courier_receive(sock, b)) > 0) {
		courier_batch(&c, b->entries, n);
		if (courier_stop || c.session == NULL ||
		    !deliver_reusable(c.session) ||
		    time(NULL) - c.opened >= COURIER_REUSE_TIME)
			break;
		if (send(sock, &idle, 1, MSG_NOSIGNAL) != 1)
			break;
	}
	deliver_close(c.session);
	free(b);
	_exit(0);
}
