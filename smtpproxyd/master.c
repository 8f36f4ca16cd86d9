/*
 * master - supervision of listener children and the relay worker (see
 * master.h).  The master never talks SMTP and never touches a message: it
 * only forks, waits and signals, so it stays small and hard to crash.
 */
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "master.h"
#include "netio.h"
#include "netmatch.h"
#include "privdrop.h"
#include "relay.h"
#include "scoreboard.h"
#include "session.h"
#include "tls.h"
#include "util.h"

enum child_kind {
	CHILD_LISTENER,
	CHILD_RELAY
};

struct child {
	pid_t		pid;
	enum child_kind	kind;
	unsigned	generation;
	time_t		started;
	int		slot;		/* scoreboard slot of a listener, else -1 */
};

struct master {
	struct config	*cfg;
	int		*fds;
	size_t		 nfds;
	struct spool	*spool;
	struct child	*children;
	size_t		 nchildren, cap;
	unsigned	 generation;
	int		 relay_wanted;
	struct scoreboard sb;
	int		 my_slot;		/* in a listener child: its slot */
	int		 wake[2];		/* children ask for a bigger pool */
	int		 sigfd;			/* the master's signals */
	struct netmatch	*allow;			/* client networks */
	size_t		 nallow;
	SSL_CTX		*tls_ctx;		/* STARTTLS, or NULL */
	struct priv	 priv;			/* who the children run as */
	time_t		 respawn_at[2];		/* per kind: not before */
	int		 backoff[2];		/* per kind: current delay */
};

static volatile sig_atomic_t	listener_stop;

static pid_t	spawn(struct master *, enum child_kind);
static void	pool_adjust(struct master *);
static void	listener_main(struct master *);
static void	reap(struct master *);
static void	top_up(struct master *);
static void	reload(struct master *);
static int	shutdown_children(struct master *);

/* bind_one - one listening socket for one address */
static int
bind_one(const char *addr, int port)
{
	struct addrinfo	 hints, *res;
	char		 portstr[16];
	int		 fd, on = 1, rc;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE;
	snprintf(portstr, sizeof(portstr), "%d", port);
	if ((rc = getaddrinfo(addr, portstr, &hints, &res)) != 0) {
		log_error("listen address %s: %s", addr, gai_strerror(rc));
		return -1;
	}
	fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		log_error("socket for %s: %s", addr, strerror(errno));
		freeaddrinfo(res);
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on));
	if (res->ai_family == AF_INET6)
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
	if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 ||
	    listen(fd, MASTER_LISTEN_BACKLOG) < 0 || set_nonblock(fd) < 0) {
		log_error("cannot listen on %s port %d: %s", addr, port,
		    strerror(errno));
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd;
}

/* master_listen - bind every configured listen address */
int
master_listen(const struct config *cfg, int **fds, size_t *nfds)
{
	*fds = xcalloc(cfg->nlisten, sizeof(**fds));
	*nfds = 0;
	for (size_t i = 0; i < cfg->nlisten; i++) {
		int	fd = bind_one(cfg->listen[i], cfg->port);

		if (fd < 0) {
			while (*nfds > 0)
				close((*fds)[--*nfds]);
			free(*fds);
			*fds = NULL;
			return -1;
		}
		(*fds)[(*nfds)++] = fd;
		log_info("listening on %s port %d", cfg->listen[i], cfg->port);
		if (!netmatch_is_loopback(cfg->listen[i]) &&
		    cfg->auth != CLIENT_AUTH_REQUIRED)
			log_warning("listening on %s, which is not loopback, "
			    "without auth=required: only allow= stands "
			    "between the network and your upstream accounts",
			    cfg->listen[i]);
	}
	return 0;
}

/* on_listener_term - finish the session in hand, then exit */
static void
on_listener_term(int sig)
{
	(void)sig;
	listener_stop = 1;
}

/* stop_pending - has a stop request arrived while it was blocked */
static bool
stop_pending(void)
{
	sigset_t	pending;

	sigpending(&pending);
	return sigismember(&pending, SIGTERM) || sigismember(&pending, SIGINT);
}

/* child_signals - a fresh child's signal state */
static void
child_signals(void (*term)(int))
{
	struct sigaction	sa;
	sigset_t		none;

	memset(&sa, 0, sizeof(sa));
	sigemptyset(&sa.sa_mask);
	sa.sa_handler = term != NULL ? term : SIG_DFL;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	sa.sa_handler = SIG_IGN;
	sigaction(SIGHUP, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	sigaction(SIGPIPE, &sa, NULL);
	sa.sa_handler = SIG_DFL;
	sigaction(SIGCHLD, &sa, NULL);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
}

/* client_address - numeric address of the peer */
static void
client_address(const struct sockaddr_storage *ss, socklen_t len, char *buf,
    size_t size)
{
	if (getnameinfo((const struct sockaddr *)ss, len, buf, (socklen_t)size,
	    NULL, 0, NI_NUMERICHOST) != 0)
		strlcpy_s(buf, "unknown", size);
}

/* serve_one - accept one connection on a ready socket and run its session */
static int
serve_one(struct master *m, int lfd)
{
	struct sockaddr_storage	ss;
	socklen_t		len = sizeof(ss);
	struct netio		*io;
	char			ip[NI_MAXHOST];
	int			fd;

	fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno != EAGAIN && errno != EINTR &&
		    errno != ECONNABORTED)
			log_warning("accept: %s", strerror(errno));
		if (errno == EMFILE || errno == ENFILE)
			sleep(1);	/* let descriptors come back */
		return 0;
	}
	scoreboard_set(&m->sb, m->my_slot, SLOT_BUSY);
	/* No idle listener left: the master may grow the pool.  A pipe, not a
	 * signal, because the child no longer has the right to signal root. */
	if (scoreboard_count(&m->sb, SLOT_IDLE) == 0)
		(void)!write(m->wake[1], "g", 1);
	client_address(&ss, len, ip, sizeof(ip));
	if (!netmatch_any(m->allow, m->nallow, (struct sockaddr *)&ss)) {
		static const char refuse[] = "554 5.7.1 Access denied\r\n";

		log_warning("refused connection from %s: not in allow", ip);
		(void)!write(fd, refuse, sizeof(refuse) - 1);
		close(fd);
		return 0;
	}
	io = xmalloc(sizeof(*io));
	netio_init(io, fd, m->cfg->timeout * 1000);
	smtp_session_run(io, m->cfg, m->spool, m->tls_ctx, ip);
	free(io);
	close(fd);
	return 1;
}

/*
 * listener_wait_set - this child's epoll set over the listening sockets.
 * EPOLLEXCLUSIVE: a new connection wakes one idle listener (or a few),
 * not every one of them, as poll() on the shared sockets would.  A child
 * that is woken and then stops does not strand the connection: a
 * listener that adds the socket later is told of it at once, and the
 * next connection wakes another.
 */
static int
listener_wait_set(const struct master *m)
{
	struct epoll_event	ev;
	int			epfd;

	if ((epfd = epoll_create1(EPOLL_CLOEXEC)) < 0) {
		log_error("epoll_create1: %s", strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < m->nfds; i++) {
		memset(&ev, 0, sizeof(ev));
		ev.events = EPOLLIN | EPOLLEXCLUSIVE;
		ev.data.u32 = (uint32_t)i;
		if (epoll_ctl(epfd, EPOLL_CTL_ADD, m->fds[i], &ev) < 0) {
			log_error("epoll_ctl: %s", strerror(errno));
			close(epfd);
			return -1;
		}
	}
	return epfd;
}

/*
 * listener_main - a listener child: accept and serve, one session at a time.
 * SIGTERM is blocked except while waiting in epoll_pwait(), so a stop
 * request never interrupts a session and never slips in between the check
 * of listener_stop and the wait.
 */
static void
listener_main(struct master *m)
{
	struct epoll_event	*ev;
	sigset_t		 block, waitmask;
	int			 sessions = 0, epfd, n;

	log_set_ident("smtpproxyd/listener");
	child_signals(on_listener_term);
	sigemptyset(&block);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &waitmask);
	sigdelset(&waitmask, SIGTERM);
	sigdelset(&waitmask, SIGINT);
	if ((epfd = listener_wait_set(m)) < 0)
		_exit(1);
	ev = xcalloc(m->nfds, sizeof(*ev));
	while (!listener_stop) {
		if (m->cfg->maxconnectionsperchild > 0 &&
		    sessions >= m->cfg->maxconnectionsperchild)
			break;		/* recycle: the master starts a fresh one */
		scoreboard_set(&m->sb, m->my_slot, SLOT_IDLE);
		n = epoll_pwait(epfd, ev, (int)m->nfds, -1, &waitmask);
		if (n < 0)
			continue;	/* EINTR: look at listener_stop */
		if (stop_pending())
			break;		/* a client came before the signal */
		for (int i = 0; i < n && !listener_stop; i++)
			sessions += serve_one(m, m->fds[ev[i].data.u32]);
	}
	free(ev);
	close(epfd);
	_exit(0);
}

/* relay_child - the relay worker process */
static void
relay_child(struct master *m)
{
	for (size_t i = 0; i < m->nfds; i++)
		close(m->fds[i]);	/* the relay never accepts */
	child_signals(NULL);
	_exit(relay_main(m->cfg, m->spool));
}

/* spawn - fork one child of a kind */
static pid_t
spawn(struct master *m, enum child_kind kind)
{
	int	slot = -1;
	pid_t	pid;

	if (kind == CHILD_LISTENER &&
	    (slot = scoreboard_claim(&m->sb, 0)) < 0)
		return -1;
	if ((pid = fork()) < 0) {
		log_error("fork: %s", strerror(errno));
		scoreboard_release(&m->sb, slot);
		return -1;
	}
	if (pid == 0) {
		m->my_slot = slot;
		close(m->sigfd);
		close(m->wake[0]);
		if (priv_drop(&m->priv) < 0) {
			log_crit("cannot drop privileges to uid %ld gid %ld: %s",
			    (long)m->priv.uid, (long)m->priv.gid,
			    strerror(errno));
			_exit(1);
		}
		if (kind == CHILD_LISTENER)
			listener_main(m);
		relay_child(m);
	}
	if (slot >= 0)
		scoreboard_assign(&m->sb, slot, pid);
	if (kind == CHILD_RELAY)
		m->sb.hdr->relay_pid = pid;
	if (m->nchildren == m->cap) {
		m->cap = m->cap ? m->cap * 2 : 16;
		m->children = xrealloc(m->children,
		    m->cap * sizeof(*m->children));
	}
	m->children[m->nchildren++] = (struct child){ pid, kind,
	    m->generation, time(NULL), slot };
	return pid;
}

/* count_current - children of this generation and kind */
static int
count_current(const struct master *m, enum child_kind kind)
{
	int	n = 0;

	for (size_t i = 0; i < m->nchildren; i++)
		if (m->children[i].kind == kind &&
		    m->children[i].generation == m->generation)
			n++;
	return n;
}

/* count_kind - children of a kind, of any generation */
static int
count_kind(const struct master *m, enum child_kind kind)
{
	int	n = 0;

	for (size_t i = 0; i < m->nchildren; i++)
		if (m->children[i].kind == kind)
			n++;
	return n;
}

/* top_up - start children until the wanted numbers run, respecting back-off */
static void
top_up(struct master *m)
{
	time_t	now = time(NULL);

	/*
	 * One relay at a time, whatever its generation: after a reload the
	 * old relay's deliveries finish the message in hand, and a new relay
	 * started meanwhile would take the same messages from cur/ again.
	 */
	if (now >= m->respawn_at[CHILD_RELAY])
		while (count_kind(m, CHILD_RELAY) < m->relay_wanted &&
		    spawn(m, CHILD_RELAY) > 0)
			;
	if (now >= m->respawn_at[CHILD_LISTENER])
		while (count_current(m, CHILD_LISTENER) < m->cfg->processes &&
		    spawn(m, CHILD_LISTENER) > 0)
			;
}

/* child_died - log a death and decide the back-off for its kind */
static void
child_died(struct master *m, const struct child *c, int status)
{
	const char	*what = c->kind == CHILD_RELAY ? "relay" : "listener";
	time_t		 now = time(NULL);
	int		 k = c->kind;

	if (WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		log_debug("%s %ld exited", what, (long)c->pid);
		return;
	}
	if (WIFSIGNALED(status))
		log_error("%s %ld killed by signal %d", what, (long)c->pid,
		    WTERMSIG(status));
	else
		log_error("%s %ld exited with status %d", what, (long)c->pid,
		    WEXITSTATUS(status));
	if (c->generation != m->generation)
		return;
	if (now - c->started < MASTER_QUICK_DEATH) {
		m->backoff[k] = m->backoff[k] ? m->backoff[k] * 2 : 1;
		if (m->backoff[k] > MASTER_RESPAWN_MAX)
			m->backoff[k] = MASTER_RESPAWN_MAX;
		m->respawn_at[k] = now + m->backoff[k];
		log_warning("%s keeps dying; next start in %d s", what,
		    m->backoff[k]);
	} else
		m->backoff[k] = 0;
}

/* reap - collect dead children */
static void
reap(struct master *m)
{
	pid_t	pid;
	int	status;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		for (size_t i = 0; i < m->nchildren; i++) {
			if (m->children[i].pid != pid)
				continue;
			child_died(m, &m->children[i], status);
			scoreboard_release(&m->sb, m->children[i].slot);
			m->children[i] = m->children[--m->nchildren];
			break;
		}
	}
}

/* signal_children - send a signal to every child of a kind (or all) */
static void
signal_children(struct master *m, int sig, int kind)
{
	for (size_t i = 0; i < m->nchildren; i++)
		if (kind < 0 || m->children[i].kind == (enum child_kind)kind)
			kill(m->children[i].pid, sig);
}

/*
 * pool_adjust - grow while no listener is idle (up to maxprocesses), shrink
 * one child at a time after it idled POOL_SHRINK_IDLE seconds (down to
 * processes).  Growth is prompt: a child that takes the last idle place
 * wakes the master through the wake pipe.
 */
static void
pool_adjust(struct master *m)
{
	int	running = count_current(m, CHILD_LISTENER), slot;
	int	ready = scoreboard_count(&m->sb, SLOT_IDLE) +
	    scoreboard_count(&m->sb, SLOT_STARTING);

	if (ready == 0 && running < m->cfg->maxprocesses &&
	    time(NULL) >= m->respawn_at[CHILD_LISTENER]) {
		if (spawn(m, CHILD_LISTENER) > 0)
			log_debug("pool grown to %d listeners", running + 1);
		return;
	}
	if (running <= m->cfg->processes ||
	    scoreboard_longest_idle(&m->sb, time(NULL), &slot) <
	    POOL_SHRINK_IDLE)
		return;
	for (size_t i = 0; i < m->nchildren; i++) {
		if (m->children[i].slot != slot)
			continue;
		kill(m->children[i].pid, SIGTERM);
		/* Not idle any more as far as growing is concerned. */
		scoreboard_set(&m->sb, slot, SLOT_STARTING);
		log_debug("pool shrinking to %d listeners", running - 1);
		break;
	}
}

/* parse_allow - the allow= networks; the config module has checked them */
static void
parse_allow(struct master *m)
{
	free(m->allow);
	m->allow = xcalloc(m->cfg->nallow, sizeof(*m->allow));
	m->nallow = 0;
	for (size_t i = 0; i < m->cfg->nallow; i++) {
		if (netmatch_parse(m->cfg->allow[i], &m->allow[m->nallow]) < 0)
			log_error("allow: '%s' is not a network, ignored",
			    m->cfg->allow[i]);
		else
			m->nallow++;
	}
}

/* master_tls_context - the STARTTLS context of a config, or NULL without tlscert */
int
master_tls_context(const struct config *cfg, SSL_CTX **ctx)
{
	char	err[512];

	*ctx = NULL;
	if (cfg->tlscert == NULL)
		return 0;
	if ((*ctx = tls_server_context(cfg->tlscert, cfg->tlskey, err,
	    sizeof(err))) == NULL) {
		log_error("STARTTLS: %s", err);
		return -1;
	}
	return 0;
}

/* reload - SIGHUP: a valid new config replaces children; a bad one is refused */
static void
reload(struct master *m)
{
	struct config	*next;
	SSL_CTX		*ctx;
	char		 err[1024];

	if (config_load(m->cfg->path, &next, err, sizeof(err)) < 0) {
		log_error("reload refused, keeping the running config: %s", err);
		return;
	}
	if (master_tls_context(next, &ctx) < 0) {
		log_error("reload refused, keeping the running config");
		config_free(next);
		return;
	}
	if (m->tls_ctx != NULL)
		SSL_CTX_free(m->tls_ctx);
	m->tls_ctx = ctx;
	if (log_reopen() < 0)
		log_error("cannot reopen the log file: %s", strerror(errno));
	log_set_rotation(next->logsize, next->logcount);
	if (next->port != m->cfg->port || next->nlisten != m->cfg->nlisten)
		log_warning("reload: listen/port changes need a restart");
	if (strcmp(next->msgdir, m->cfg->msgdir) != 0)
		log_warning("reload: msgdir changes need a restart");
	log_set_level(next->loglevel);
	/* Sockets and spool stay; the old children finish on the old config. */
	free(next->msgdir);
	next->msgdir = xstrdup(m->cfg->msgdir);
	if (next->maxprocesses * 2 > m->sb.nslots) {
		log_warning("reload: maxprocesses above %d needs a restart",
		    m->sb.nslots / 2);
		next->maxprocesses = m->sb.nslots / 2;
	}
	config_free(m->cfg);
	m->cfg = next;
	m->sb.hdr->processes = next->processes;
	m->sb.hdr->maxprocesses = next->maxprocesses;
	parse_allow(m);
	signal_children(m, SIGTERM, -1);
	m->generation++;
	m->respawn_at[0] = m->respawn_at[1] = 0;
	m->backoff[0] = m->backoff[1] = 0;
	top_up(m);
	log_info("configuration reloaded from %s", m->cfg->path);
}

/* shutdown_children - stop everything, waiting a bounded time */
static int
shutdown_children(struct master *m)
{
	time_t	deadline = time(NULL) + MASTER_STOP_GRACE;

	for (size_t i = 0; i < m->nfds; i++)
		close(m->fds[i]);
	signal_children(m, SIGTERM, -1);
	while (m->nchildren > 0 && time(NULL) < deadline) {
		reap(m);
		if (m->nchildren > 0)
			usleep(50 * 1000);
	}
	if (m->nchildren > 0) {
		log_warning("%zu children still busy after %d s; killing them",
		    m->nchildren, MASTER_STOP_GRACE);
		signal_children(m, SIGKILL, -1);
		while (m->nchildren > 0 && waitpid(-1, NULL, 0) > 0)
			reap(m);
	}
	return 0;
}

/* master_stop - SIGTERM/SIGINT: wind everything down */
static void
master_stop(struct master *m, int sig)
{
	log_info("stopping on signal %d", sig);
	shutdown_children(m);
	free(m->children);
	free(m->allow);
	if (m->tls_ctx != NULL)
		SSL_CTX_free(m->tls_ctx);
	m->sb.hdr->master_pid = 0;	/* not running any more */
	scoreboard_destroy(&m->sb);
	close(m->sigfd);
	close(m->wake[0]);
	close(m->wake[1]);
	log_info("stopped");
}

/* master_wait - the next signal number, or 0 after a tick or a wake-up */
static int
master_wait(struct master *m)
{
	struct pollfd			pfd[2] = {
		{ .fd = m->sigfd, .events = POLLIN },
		{ .fd = m->wake[0], .events = POLLIN },
	};
	struct signalfd_siginfo		info;
	char				drain[64];

	if (poll(pfd, 2, MASTER_TICK_MS) <= 0)
		return 0;
	if (pfd[1].revents & POLLIN)
		while (read(m->wake[0], drain, sizeof(drain)) > 0)
			;
	if ((pfd[0].revents & POLLIN) &&
	    read(m->sigfd, &info, sizeof(info)) == (ssize_t)sizeof(info))
		return (int)info.ssi_signo;
	return 0;
}

/* master_signals - block the master's signals and read them from a descriptor */
static int
master_signals(struct master *m)
{
	sigset_t	set;

	sigemptyset(&set);
	sigaddset(&set, SIGCHLD);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
	m->sigfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (m->sigfd < 0 || pipe2(m->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		log_error("cannot set up signals: %s", strerror(errno));
		return -1;
	}
	return 0;
}

/* master_run - supervise until told to stop */
int
master_run(struct config **cfgp, int *fds, size_t nfds, struct spool *sp,
    SSL_CTX *tls_ctx, const struct priv *priv)
{
	struct config	*cfg = *cfgp;
	struct master	 m;
	int		 sig;

	memset(&m, 0, sizeof(m));
	m.cfg = cfg;
	m.fds = fds;
	m.nfds = nfds;
	m.spool = sp;
	m.relay_wanted = 1;
	m.my_slot = -1;
	m.priv = *priv;
	m.tls_ctx = tls_ctx;
	/* Twice the pool: old children finish while new ones start on reload. */
	if (scoreboard_create(&m.sb, sp->status, 2 * cfg->maxprocesses) < 0 ||
	    master_signals(&m) < 0) {
		log_error("cannot create %s: %s", sp->status, strerror(errno));
		if (tls_ctx != NULL)
			SSL_CTX_free(tls_ctx);
		return 3;
	}
	(void)priv_chown(priv, sp->status);
	/* Before any child is forked: they all share the count. */
	if (spool_recycle(sp, &m.sb.hdr->spool_free) < 0)
		log_warning("not recycling spool files: cannot read %s: %s",
		    sp->tmp, strerror(errno));
	spool_share_sync(sp, m.sb.hdr->spool_sync);
	m.sb.hdr->processes = cfg->processes;
	m.sb.hdr->maxprocesses = cfg->maxprocesses;
	parse_allow(&m);
	top_up(&m);
	log_info("started: %d listeners (up to %d), 1 relay", cfg->processes,
	    cfg->maxprocesses);
	for (;;) {
		switch ((sig = master_wait(&m))) {
		case SIGTERM:
		case SIGINT:
			master_stop(&m, sig);
			*cfgp = m.cfg;
			return 0;
		case SIGHUP:
			reload(&m);
			break;
		case SIGUSR1:
			signal_children(&m, SIGUSR1, CHILD_RELAY);
			break;
		default:
			break;
		}
		reap(&m);
		top_up(&m);
		pool_adjust(&m);
	}
}
