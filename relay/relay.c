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
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "deliver.h"
#include "log.h"
#include "relay.h"
#include "retry.h"
#include "util.h"

/* One claimed message on its way upstream. */
struct relay_item {
	struct spool_entry	 entry;
	struct envelope		 env;
	int			 fd;
	off_t			 size;
	const struct account	*account;	/* use= already followed */
	struct delivery_msg	 msg;
};

struct relay_pass {
	struct spool_entry	*entries;
	size_t			 n, cap;
};

static volatile sig_atomic_t	relay_stop;
static volatile sig_atomic_t	relay_flush;

static void	relay_signals(void);
static int	collect_due(const struct spool_entry *, void *);
static int	relay_load(const struct config *, struct spool *,
		    struct relay_item *);
static void	relay_item_free(struct relay_item *);
static void	relay_settle(const struct config *, struct spool *,
		    struct relay_item *, time_t);
static void	relay_group(const struct config *, struct spool *,
		    struct relay_item *, size_t);
static int	relay_pass(const struct config *, struct spool *, time_t *);
static void	relay_wait(const struct config *, int, time_t);

/* on_term - finish the batch in hand, then leave */
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
	sa.sa_handler = SIG_IGN;
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = SIG_DFL;
	sigaction(SIGCHLD, &sa, NULL);
}

/* collect_due - scan callback: remember a due message, up to a pass's worth */
static int
collect_due(const struct spool_entry *e, void *arg)
{
	struct relay_pass	*pass = arg;

	if (pass->n == RELAY_SCAN_MAX)
		return 1;
	if (pass->n == pass->cap) {
		pass->cap = pass->cap ? pass->cap * 2 : 64;
		pass->entries = xrealloc(pass->entries,
		    pass->cap * sizeof(*pass->entries));
	}
	pass->entries[pass->n++] = *e;
	return 0;
}

/* relay_load - open a claimed message, read its envelope, find its account */
static int
relay_load(const struct config *cfg, struct spool *sp, struct relay_item *it)
{
	struct stat	 st;
	char		*path = spool_path(sp, &it->entry);

	it->fd = open(path, O_RDONLY | O_CLOEXEC);
	free(path);
	if (it->fd < 0)
		return -1;
	if (fstat(it->fd, &st) < 0 || spool_envelope_read(it->fd, &it->env) < 0)
		return -1;
	it->size = st.st_size;
	it->account = account_lookup(cfg, it->env.sender);
	return 0;
}

/* relay_item_free - close and release one message */
static void
relay_item_free(struct relay_item *it)
{
	if (it->fd >= 0)
		close(it->fd);
	free(it->msg.rcpts);
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
}

/* reason_text - what failed, for the log and failed/<ID>.reason */
static char *
reason_text(const struct relay_item *it)
{
	char	*text = xstrdup(it->msg.error);

	for (size_t i = 0; i < it->msg.nrcpts; i++) {
		const struct delivery_rcpt *r = &it->msg.rcpts[i];
		char	*next;

		if (r->status == DELIVERY_DELIVERED || r->reply[0] == '\0')
			continue;
		next = xasprintf("%s%s<%s>: %s", text, text[0] ? "\n" : "",
		    r->address, r->reply);
		free(text);
		text = next;
	}
	return text;
}

/* keep_owed - the recipients still owed after this attempt */
static bool *
keep_owed(const struct relay_item *it, bool *changed)
{
	bool	*keep = xcalloc(it->msg.nrcpts, sizeof(*keep));

	*changed = false;
	for (size_t i = 0; i < it->msg.nrcpts; i++) {
		enum delivery_status	st = it->msg.rcpts[i].status;

		keep[i] = st == DELIVERY_TEMPFAIL || st == DELIVERY_PENDING;
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
	for (size_t i = 0; i < it->msg.nrcpts; i++) {
		const struct delivery_rcpt *r = &it->msg.rcpts[i];

		if (r->status == DELIVERY_PERMFAIL && action != RETRY_FAIL)
			log_warning("%s: to=<%s> failed permanently: %s",
			    it->entry.id, r->address, r->reply);
	}
	reason = reason_text(it);
	keep = keep_owed(it, &changed);
	if (action != RETRY_DONE && changed &&
	    spool_rewrite_rcpts(sp, &it->entry, &it->env, keep) < 0)
		log_error("%s: cannot rewrite recipients: %s (all will be retried)",
		    it->entry.id, strerror(errno));
	switch (action) {
	case RETRY_DONE:
		if (spool_done(sp, &it->entry) < 0)
			log_error("%s: cannot remove delivered message: %s",
			    it->entry.id, strerror(errno));
		break;
	case RETRY_DEFER:
		next = now + retry_delay(attempts, cfg->retrymin, cfg->retrymax);
		if (spool_defer(sp, &it->entry, attempts, next) < 0)
			log_error("%s: cannot defer: %s", it->entry.id,
			    strerror(errno));
		else
			log_info("%s: deferred (attempt %d, next in %lld s): %s",
			    it->entry.id, attempts, (long long)(next - now),
			    reason);
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

/* relay_group - deliver the messages of one account, batch by batch */
static void
relay_group(const struct config *cfg, struct spool *sp,
    struct relay_item *items, size_t n)
{
	struct delivery_msg	*msgs;

	for (size_t start = 0; start < n; start += RELAY_BATCH_MAX) {
		size_t	count = n - start < RELAY_BATCH_MAX ?
		    n - start : RELAY_BATCH_MAX;

		msgs = xcalloc(count, sizeof(*msgs));
		for (size_t i = 0; i < count; i++) {
			relay_prepare(&items[start + i]);
			msgs[i] = items[start + i].msg;
		}
		deliver_batch(cfg, items[start].account, msgs, count);
		for (size_t i = 0; i < count; i++) {
			items[start + i].msg = msgs[i];
			log_attempt(&items[start + i]);
			relay_settle(cfg, sp, &items[start + i], time(NULL));
		}
		free(msgs);
	}
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
}

/* by_account - order items so that one account's messages are adjacent */
static int
by_account(const void *a, const void *b)
{
	const struct relay_item	*x = a, *y = b;

	if (x->account == y->account)
		return strcmp(x->entry.id, y->entry.id);
	return x->account < y->account ? -1 : 1;
}

/* relay_pass - one scan: claim, load, group and deliver what is due */
static int
relay_pass(const struct config *cfg, struct spool *sp, time_t *next_due)
{
	struct relay_pass	 pass = { 0 };
	struct relay_item	*items;
	size_t			 n = 0;
	time_t			 now = time(NULL);

	if (spool_scan(sp, relay_flush ? (time_t)LLONG_MAX : now, collect_due,
	    &pass, next_due) < 0) {
		log_error("cannot scan %s: %s", sp->dir, strerror(errno));
		return 0;
	}
	relay_flush = 0;
	items = xcalloc(pass.n, sizeof(*items));
	for (size_t i = 0; i < pass.n; i++) {
		struct relay_item	*it = &items[n];

		it->entry = pass.entries[i];
		it->fd = -1;
		if (spool_claim(sp, &it->entry) < 0)
			continue;	/* gone: another relay or an admin took it */
		if (relay_load(cfg, sp, it) < 0) {
			log_error("%s: unreadable queue file: %s; moved to failed/",
			    it->entry.id, strerror(errno));
			spool_fail(sp, &it->entry, "unreadable queue file");
			relay_item_free(it);
			memset(it, 0, sizeof(*it));
			continue;
		}
		if (it->account == NULL) {
			no_account(cfg, sp, it, now);
			relay_item_free(it);
			memset(it, 0, sizeof(*it));
			continue;
		}
		n++;
	}
	qsort(items, n, sizeof(*items), by_account);
	for (size_t start = 0, end; start < n && !relay_stop; start = end) {
		for (end = start + 1; end < n &&
		    items[end].account == items[start].account; end++)
			;
		relay_group(cfg, sp, items + start, end - start);
	}
	for (size_t i = 0; i < n; i++)
		relay_item_free(&items[i]);
	free(items);
	free(pass.entries);
	return pass.n == RELAY_SCAN_MAX;
}

/* relay_wait - sleep until woken, the next due time, or sleeptime */
static void
relay_wait(const struct config *cfg, int trigger_fd, time_t next_due)
{
	struct pollfd	pfd = { .fd = trigger_fd, .events = POLLIN };
	time_t		now = time(NULL);
	long long	wait_s = cfg->sleeptime;
	char		drain[512];

	if (next_due > 0 && next_due - now < wait_s)
		wait_s = next_due > now ? next_due - now : 0;
	if (trigger_fd < 0) {
		sleep((unsigned)wait_s);
		return;
	}
	if (poll(&pfd, 1, (int)(wait_s * 1000)) > 0)
		while (read(trigger_fd, drain, sizeof(drain)) > 0)
			;
}

/* relay_main - the relay worker's life */
int
relay_main(const struct config *cfg, struct spool *sp)
{
	int	trigger_fd;
	time_t	next_due, last_clean = 0;

	log_set_ident("smtpproxyd/relay");
	relay_signals();
	if ((trigger_fd = spool_trigger_fd(sp)) < 0)
		log_warning("cannot open %s: %s; polling every %d s",
		    sp->trigger, strerror(errno), cfg->sleeptime);
	log_info("relay started");
	while (!relay_stop) {
		if (time(NULL) - last_clean >= RELAY_CLEAN_INTERVAL) {
			int	n = spool_clean_tmp(sp, time(NULL));

			if (n > 0)
				log_info("removed %d stale files from %s", n,
				    sp->tmp);
			last_clean = time(NULL);
		}
		if (relay_pass(cfg, sp, &next_due))
			continue;	/* more is waiting: no sleep */
		if (!relay_stop && !relay_flush)
			relay_wait(cfg, trigger_fd, next_due);
	}
	log_info("relay stopped");
	return 0;
}
