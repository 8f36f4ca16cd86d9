/*
 * session - SMTP server state machine (see session.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <time.h>

#include "address.h"
#include "clientauth.h"
#include "data.h"
#include "log.h"
#include "scoreboard.h"
#include "session.h"
#include "smtpcmd.h"
#include "tls.h"
#include "util.h"

#define SMTP_HELO_MAX	255
#define SMTP_DATE_MAX	64

enum session_state {
	STATE_CONNECTED,	/* greeting sent, no HELO/EHLO yet */
	STATE_GREETED,		/* ready for MAIL */
	STATE_MAIL,		/* sender given */
	STATE_RCPT		/* at least one recipient */
};

enum session_next {
	NEXT_CONTINUE,
	NEXT_CLOSE
};

struct session {
	struct netio		*io;
	const struct config	*cfg;
	struct spool		*spool;
	SSL_CTX			*tls_ctx;	/* NULL: no STARTTLS offered */
	bool			 tls;		/* TLS is running */
	const struct account	*authed;	/* logged in as, or NULL */
	int			 auth_failures;
	const char		*client_ip;
	enum session_state	 state;
	char			 helo[SMTP_HELO_MAX + 1];
	bool			 esmtp;
	char			 sender[ADDRESS_MAX];
	char			**rcpts;
	size_t			 nrcpts;
	int			 errors;
	int			 accepted;
};

static void	reply(struct session *, int, const char *, ...)
		    __attribute__((format(printf, 3, 4)));
static enum session_next session_command(struct session *, char *, size_t);
static enum session_next cmd_helo(struct session *, const struct smtp_cmd *);
static enum session_next cmd_mail(struct session *, const struct smtp_cmd *);
static enum session_next cmd_rcpt(struct session *, const struct smtp_cmd *);
static enum session_next cmd_data(struct session *);
static enum session_next cmd_starttls(struct session *);
static enum session_next cmd_auth(struct session *, const struct smtp_cmd *);
static void	transaction_reset(struct session *);
static enum session_next bad_command(struct session *, int, const char *);

/* reply - the one place replies are built: "code text" plus CRLF */
static void
reply(struct session *s, int code, const char *fmt, ...)
{
	char	text[512];
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	netio_printf(s->io, "%d %s\r\n", code, text);
}

/* transaction_reset - forget sender and recipients */
static void
transaction_reset(struct session *s)
{
	for (size_t i = 0; i < s->nrcpts; i++)
		free(s->rcpts[i]);
	free(s->rcpts);
	s->rcpts = NULL;
	s->nrcpts = 0;
	s->sender[0] = '\0';
	if (s->state != STATE_CONNECTED)
		s->state = STATE_GREETED;
}

/* bad_command - reply with an error and count it; too many closes */
static enum session_next
bad_command(struct session *s, int code, const char *text)
{
	if (++s->errors >= SMTP_MAX_ERRORS) {
		reply(s, 421, "4.7.0 %s Error: too many errors", s->cfg->hostname);
		log_info("too many errors from %s, closing", s->client_ip);
		return NEXT_CLOSE;
	}
	reply(s, code, "%s", text);
	return NEXT_CONTINUE;
}

/* copy_helo - keep the client's HELO name, printable and bounded */
static void
copy_helo(struct session *s, const char *arg)
{
	size_t	i;

	for (i = 0; arg[i] != '\0' && arg[i] != ' ' && i < SMTP_HELO_MAX; i++) {
		unsigned char	c = (unsigned char)arg[i];

		s->helo[i] = c > 32 && c < 127 ? (char)c : '?';
	}
	s->helo[i] = '\0';
}

/* cmd_helo - HELO and EHLO: name ourselves and list extensions */
static enum session_next
cmd_helo(struct session *s, const struct smtp_cmd *cmd)
{
	transaction_reset(s);
	copy_helo(s, cmd->arg);
	s->esmtp = cmd->verb == CMD_EHLO;
	s->state = STATE_GREETED;
	if (!s->esmtp) {
		reply(s, 250, "%s", s->cfg->hostname);
		return NEXT_CONTINUE;
	}
	netio_printf(s->io, "250-%s\r\n", s->cfg->hostname);
	netio_printf(s->io, "250-PIPELINING\r\n");
	netio_printf(s->io, "250-SIZE %ld\r\n", s->cfg->maxmessagesize);
	netio_printf(s->io, "250-8BITMIME\r\n");
	netio_printf(s->io, "250-ENHANCEDSTATUSCODES\r\n");
	if (s->tls_ctx != NULL && !s->tls)
		netio_printf(s->io, "250-STARTTLS\r\n");
	if (s->cfg->auth != CLIENT_AUTH_OFF)
		netio_printf(s->io, "250-AUTH PLAIN LOGIN\r\n");
	netio_printf(s->io, "250 HELP\r\n");
	return NEXT_CONTINUE;
}

/* cmd_mail - MAIL FROM: a sender must have an account to relay through */
static enum session_next
cmd_mail(struct session *s, const struct smtp_cmd *cmd)
{
	if (s->state == STATE_MAIL || s->state == STATE_RCPT)
		return bad_command(s, 503, "5.5.1 Error: nested MAIL command");
	/*
	 * Old clients may skip HELO in the clear (as Postfix allows); after
	 * STARTTLS the session starts over and a new EHLO is a must.
	 */
	if (s->state == STATE_CONNECTED && s->tls)
		return bad_command(s, 503, "5.5.1 Error: send EHLO first");
	if (s->cfg->auth == CLIENT_AUTH_REQUIRED && s->authed == NULL) {
		reply(s, 530, "5.7.0 Authentication required");
		return NEXT_CONTINUE;
	}
	if (s->authed != NULL &&
	    !auth_may_send_as(s->cfg, s->authed, cmd->path)) {
		log_info("refused sender <%s> for user %s from %s",
		    cmd->path, s->authed->name, s->client_ip);
		reply(s, 550, "5.7.1 <%s>: Sender address not owned by user %s",
		    cmd->path, s->authed->name);
		return NEXT_CONTINUE;
	}
	if (cmd->size >= 0 && s->cfg->maxmessagesize > 0 &&
	    cmd->size > s->cfg->maxmessagesize) {
		reply(s, 552, "5.3.4 Message size exceeds fixed limit");
		return NEXT_CONTINUE;
	}
	if (account_lookup(s->cfg, cmd->path) == NULL) {
		stat_increment(STAT_REFUSED, 1);
		log_info("refused sender <%s> from %s: no account",
		    cmd->path, s->client_ip);
		reply(s, 550, "5.7.1 <%s>: Sender address has no relay account here",
		    cmd->path);
		return NEXT_CONTINUE;
	}
	strlcpy_s(s->sender, cmd->path, sizeof(s->sender));
	s->state = STATE_MAIL;
	reply(s, 250, "2.1.0 Ok");
	return NEXT_CONTINUE;
}

/* cmd_rcpt - RCPT TO: collect a recipient */
static enum session_next
cmd_rcpt(struct session *s, const struct smtp_cmd *cmd)
{
	if (s->state != STATE_MAIL && s->state != STATE_RCPT)
		return bad_command(s, 503, "5.5.1 Error: need MAIL command");
	if (s->cfg->maxrecipients > 0 &&
	    s->nrcpts >= (size_t)s->cfg->maxrecipients) {
		reply(s, 452, "4.5.3 Error: too many recipients");
		return NEXT_CONTINUE;
	}
	s->rcpts = xrealloc(s->rcpts, (s->nrcpts + 1) * sizeof(*s->rcpts));
	s->rcpts[s->nrcpts++] = xstrdup(cmd->path);
	s->state = STATE_RCPT;
	reply(s, 250, "2.1.5 Ok");
	return NEXT_CONTINUE;
}

/* rfc5322_date - the current time as an RFC 5322 date */
static void
rfc5322_date(char *buf, size_t size)
{
	time_t		now = time(NULL);
	struct tm	tm;

	localtime_r(&now, &tm);
	strftime(buf, size, "%a, %d %b %Y %H:%M:%S %z", &tm);
}

/* protocol_name - the "with" of the Received: line (RFC 3848) */
static const char *
protocol_name(const struct session *s)
{
	static const char *const names[2][2][2] = {
		{ { "SMTP", "SMTP" }, { "SMTP", "SMTP" } },
		{ { "ESMTP", "ESMTPA" }, { "ESMTPS", "ESMTPSA" } },
	};

	return names[s->esmtp][s->tls][s->authed != NULL];
}

/* build_prefix - envelope lines and our Received: line */
static char *
build_prefix(struct session *s, const char *id, const char *date)
{
	char	*p, *next;

	p = xasprintf(ENVELOPE_FROM_HEADER "<%s>\r\n", s->sender);
	for (size_t i = 0; i < s->nrcpts; i++) {
		next = xasprintf("%s" ENVELOPE_TO_HEADER "<%s>\r\n", p,
		    s->rcpts[i]);
		free(p);
		p = next;
	}
	next = xasprintf("%sReceived: from %s (%s)\r\n"
	    "\tby %s (smtpproxy) with %s id %s%s%s%s;\r\n\t%s\r\n",
	    p, s->helo[0] ? s->helo : "unknown", s->client_ip, s->cfg->hostname,
	    protocol_name(s), id,
	    s->nrcpts == 1 ? "\r\n\tfor <" : "",
	    s->nrcpts == 1 ? s->rcpts[0] : "",
	    s->nrcpts == 1 ? ">" : "", date);
	free(p);
	return next;
}

/* message_id_for - "<sec.MusecPpidQn@hostname>": the queue ID without its host */
static char *
message_id_for(const struct session *s, const char *id)
{
	const char	*dot = strchr(id, '.');
	const char	*end = dot ? strchr(dot + 1, '.') : NULL;
	int		 len = end ? (int)(end - id) : (int)strlen(id);

	return xasprintf("<%.*s@%s>", len, id, s->cfg->hostname);
}

/* disk_reply - the reply for a spool write failure */
static void
disk_reply(struct session *s, int err)
{
	if (err == ENOSPC || err == EDQUOT)
		reply(s, 452, "4.3.1 Insufficient system storage");
	else
		reply(s, 451, "4.3.0 Error: queue file write error");
}

/* cmd_data - receive the content, commit it, then and only then 250 */
static enum session_next
cmd_data(struct session *s)
{
	struct spool_msg	msg;
	struct data_params	params;
	struct data_result	result;
	char			date[SMTP_DATE_MAX], *prefix, *msgid;

	if (s->state == STATE_MAIL)
		return bad_command(s, 554, "5.5.1 Error: no valid recipients");
	if (s->state != STATE_RCPT)
		return bad_command(s, 503, "5.5.1 Error: need RCPT command");
	if (spool_create(s->spool, &msg) < 0) {
		log_error("cannot create queue file in %s: %s",
		    s->spool->tmp, strerror(errno));
		disk_reply(s, errno);
		return NEXT_CONTINUE;
	}
	reply(s, 354, "End data with <CR><LF>.<CR><LF>");
	rfc5322_date(date, sizeof(date));
	prefix = build_prefix(s, msg.id, date);
	msgid = message_id_for(s, msg.id);
	params.prefix = prefix;
	params.message_id = msgid;
	params.date = date;
	params.max_size = s->cfg->maxmessagesize;
	data_receive(s->io, msg.fd, &params, &result);
	free(prefix);
	free(msgid);
	switch (result.outcome) {
	case DATA_NETWORK:
		spool_abort(s->spool, &msg);
		if (result.netio_error == NETIO_TIMEOUT) {
			log_info("%s: timeout after %d s with %s during DATA",
			    msg.id, s->cfg->timeout, s->client_ip);
			reply(s, 421, "4.4.2 %s Error: timeout exceeded",
			    s->cfg->hostname);
		} else
			log_info("%s: lost connection with %s during DATA",
			    msg.id, s->client_ip);
		return NEXT_CLOSE;
	case DATA_TOO_BIG:
		spool_abort(s->spool, &msg);
		log_info("%s: refused from %s: message too big (> %ld bytes)",
		    msg.id, s->client_ip, s->cfg->maxmessagesize);
		reply(s, 552, "5.3.4 Message size exceeds fixed limit");
		break;
	case DATA_DISK_ERROR:
		spool_abort(s->spool, &msg);
		log_error("%s: queue file write error: %s", msg.id,
		    strerror(result.write_errno));
		disk_reply(s, result.write_errno);
		break;
	case DATA_OK:
		if (spool_commit(s->spool, &msg) < 0) {
			log_error("%s: cannot commit queue file: %s", msg.id,
			    strerror(errno));
			disk_reply(s, errno);
			break;
		}
		/*
		 * The message is durable: the relay starts on it while the
		 * client hears the 250; the log line comes last.
		 */
		spool_trigger(s->spool);
		reply(s, 250, "2.0.0 Ok: queued as %s", msg.id);
		netio_flush(s->io);
		stat_increment(STAT_ACCEPTED, 1);
		s->accepted++;
		log_info("%s: accepted from=<%s> nrcpt=%zu size=%lld client=%s",
		    msg.id, s->sender, s->nrcpts, result.size, s->client_ip);
		break;
	}
	transaction_reset(s);
	return NEXT_CONTINUE;
}

/*
 * cmd_starttls - switch to TLS.  Whatever the client sent after STARTTLS
 * in the clear is discarded by tls_netio_start (command injection), and
 * the session starts over: a new EHLO is needed, nothing learnt before
 * the handshake counts.
 */
static enum session_next
cmd_starttls(struct session *s)
{
	if (s->tls_ctx == NULL)
		return bad_command(s, 502, "5.5.1 Error: command not implemented");
	if (s->tls)
		return bad_command(s, 503, "5.5.1 Error: TLS already active");
	if (s->state == STATE_MAIL || s->state == STATE_RCPT)
		return bad_command(s, 503, "5.5.1 Error: MAIL transaction in progress");
	reply(s, 220, "2.0.0 Ready to start TLS");
	if (tls_netio_start(s->io, s->tls_ctx) < 0) {
		log_info("TLS handshake with %s failed: %s", s->client_ip,
		    tls_netio_error());
		return NEXT_CLOSE;
	}
	s->tls = true;
	s->state = STATE_CONNECTED;
	transaction_reset(s);
	s->helo[0] = '\0';
	s->esmtp = false;
	s->authed = NULL;
	log_debug("TLS with %s: %s %s", s->client_ip,
	    tls_netio_version(s->io), tls_netio_cipher(s->io));
	return NEXT_CONTINUE;
}

/* auth_read - the client's next line of an AUTH exchange, after a 334 */
static int
auth_read(struct session *s, const char *challenge, char **line)
{
	size_t	len;
	int	rc;

	netio_printf(s->io, "334 %s\r\n", challenge);
	rc = netio_read_line(s->io, line, &len, AUTH_LINE_MAX);
	if (rc == NETIO_TOOLONG) {
		*line = NULL;
		return NETIO_OK;
	}
	return rc;
}

#define AUTH_GONE	(AUTH_ERR_MESSAGE - 1)	/* the client went away */

/*
 * auth_step - the client's next response: the initial response when there
 * is one, else a line read after a 334.  AUTH_OK with *out set, AUTH_GONE,
 * AUTH_ERR_BASE64 for an over-long line, AUTH_ERR_MESSAGE with *aborted
 * for "*".
 */
static int
auth_step(struct session *s, const char *challenge, const char *initial,
    const char **out, bool *aborted)
{
	char	*line = NULL;

	if (initial == NULL) {
		if (auth_read(s, challenge, &line) != NETIO_OK)
			return AUTH_GONE;
		if (line == NULL)
			return AUTH_ERR_BASE64;
		initial = line;
	}
	if (strcmp(initial, "*") == 0) {
		*aborted = true;
		return AUTH_ERR_MESSAGE;
	}
	*out = initial;
	return AUTH_OK;
}

/* auth_credentials - run PLAIN or LOGIN; AUTH_OK with user and password */
static int
auth_credentials(struct session *s, const char *mech, const char *initial,
    char **user, char **pass, bool *aborted)
{
	const char	*resp;
	int		 rc;

	*aborted = false;
	*user = *pass = NULL;
	if (strcasecmp(mech, "PLAIN") == 0) {
		if ((rc = auth_step(s, "", initial, &resp, aborted)) != AUTH_OK)
			return rc;
		return auth_plain_response(resp, user, pass);
	}
	if ((rc = auth_step(s, "VXNlcm5hbWU6", initial, &resp, aborted)) !=
	    AUTH_OK || (rc = auth_login_username(resp, user)) != AUTH_OK)
		return rc;
	if ((rc = auth_step(s, "UGFzc3dvcmQ6", NULL, &resp, aborted)) !=
	    AUTH_OK)
		return rc;
	return auth_login_password(resp, pass);
}

/* auth_failed - count a failed login, pause longer each time */
static enum session_next
auth_failed(struct session *s, const char *user)
{
	unsigned	delay = auth_failure_delay_ms(++s->auth_failures);

	log_warning("AUTH failed for %s from %s (%d)", user ? user : "?",
	    s->client_ip, s->auth_failures);
	if (delay > 0) {
		netio_flush(s->io);
#ifndef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
		usleep(delay * 1000);	/* the fuzzer would crawl */
#endif
	}
	if (s->auth_failures >= SMTP_MAX_AUTH_FAILURES) {
		reply(s, 421, "4.7.0 %s Error: too many failed logins",
		    s->cfg->hostname);
		return NEXT_CLOSE;
	}
	reply(s, 535, "5.7.8 Error: authentication failed");
	return NEXT_CONTINUE;
}

/* cmd_auth - AUTH PLAIN or LOGIN against the accounts' localpassword */
static enum session_next
cmd_auth(struct session *s, const struct smtp_cmd *cmd)
{
	char			 mech[32], *user, *pass;
	const char		*initial;
	const struct account	*acct;
	size_t			 n;
	bool			 aborted;
	int			 rc;

	if (s->cfg->auth == CLIENT_AUTH_OFF)
		return bad_command(s, 503, "5.5.1 Error: authentication not enabled");
	if (!s->esmtp)
		return bad_command(s, 503, "5.5.1 Error: send EHLO first");
	if (s->authed != NULL)
		return bad_command(s, 503, "5.5.1 Error: already authenticated");
	if (s->state == STATE_MAIL || s->state == STATE_RCPT)
		return bad_command(s, 503, "5.5.1 Error: MAIL transaction in progress");
	n = strcspn(cmd->arg, " \t");
	if (n >= sizeof(mech))
		n = sizeof(mech) - 1;
	memcpy(mech, cmd->arg, n);
	mech[n] = '\0';
	initial = cmd->arg[n] ? cmd->arg + n + strspn(cmd->arg + n, " \t") :
	    NULL;
	if (initial != NULL && *initial == '\0')
		initial = NULL;
	if (strcasecmp(mech, "PLAIN") != 0 && strcasecmp(mech, "LOGIN") != 0)
		return bad_command(s, 504,
		    "5.5.4 Unsupported authentication mechanism");
	rc = auth_credentials(s, mech, initial, &user, &pass, &aborted);
	if (rc == AUTH_GONE) {
		auth_secret_free(user);
		return NEXT_CLOSE;
	}
	if (aborted) {
		auth_secret_free(user);
		return bad_command(s, 501, "5.0.0 Authentication aborted");
	}
	if (rc == AUTH_ERR_BASE64) {
		auth_secret_free(user);
		return bad_command(s, 501, "5.5.2 Error: invalid base64 data");
	}
	acct = rc == AUTH_OK ? auth_check(s->cfg, user, pass) : NULL;
	auth_secret_free(pass);
	if (acct == NULL) {
		enum session_next	next = auth_failed(s, user);

		auth_secret_free(user);
		return next;
	}
	s->authed = acct;
	log_info("AUTH %s as %s from %s", mech, acct->name, s->client_ip);
	auth_secret_free(user);
	reply(s, 235, "2.7.0 Authentication successful");
	return NEXT_CONTINUE;
}

/* session_command - dispatch one command line in the current state */
static enum session_next
session_command(struct session *s, char *line, size_t len)
{
	struct smtp_cmd	cmd;
	int		code;

	if ((code = smtpcmd_parse(line, len, &cmd)) != 0)
		return bad_command(s, code, cmd.error);
	switch (cmd.verb) {
	case CMD_HELO:
	case CMD_EHLO:
		return cmd_helo(s, &cmd);
	case CMD_MAIL:
		return cmd_mail(s, &cmd);
	case CMD_RCPT:
		return cmd_rcpt(s, &cmd);
	case CMD_DATA:
		return cmd_data(s);
	case CMD_RSET:
		transaction_reset(s);
		reply(s, 250, "2.0.0 Ok");
		return NEXT_CONTINUE;
	case CMD_NOOP:
		reply(s, 250, "2.0.0 Ok");
		return NEXT_CONTINUE;
	case CMD_QUIT:
		reply(s, 221, "2.0.0 Bye");
		return NEXT_CLOSE;
	case CMD_VRFY:
		reply(s, 252, "2.5.2 Cannot VRFY user, but will accept message");
		return NEXT_CONTINUE;
	case CMD_EXPN:
		return bad_command(s, 502, "5.5.1 Error: command not implemented");
	case CMD_HELP:
		reply(s, 214, "2.0.0 Commands: HELO EHLO MAIL RCPT DATA RSET NOOP QUIT VRFY HELP");
		return NEXT_CONTINUE;
	case CMD_STARTTLS:
		return cmd_starttls(s);
	case CMD_AUTH:
		return cmd_auth(s, &cmd);
	case CMD_UNKNOWN:
		break;
	}
	return bad_command(s, 500, "5.5.2 Error: command not recognized");
}

/* smtp_session_run - serve one client until it leaves */
int
smtp_session_run(struct netio *io, const struct config *cfg,
    struct spool *spool, SSL_CTX *tls_ctx, const char *client_ip)
{
	struct session	s;
	char		*line;
	size_t		 len;
	int		 rc;

	memset(&s, 0, sizeof(s));
	s.io = io;
	s.cfg = cfg;
	s.spool = spool;
	s.tls_ctx = tls_ctx;
	s.client_ip = client_ip;
	s.state = STATE_CONNECTED;
	stat_increment(STAT_SESSIONS, 1);
	reply(&s, 220, "%s ESMTP smtpproxy", cfg->hostname);
	for (;;) {
		rc = netio_read_line(io, &line, &len, SMTP_COMMAND_LINE_MAX);
		if (rc == NETIO_TOOLONG) {
			if (bad_command(&s, 500, "5.5.2 Error: line too long") ==
			    NEXT_CLOSE)
				break;
			continue;
		}
		if (rc == NETIO_TIMEOUT) {
			reply(&s, 421, "4.4.2 %s Error: timeout exceeded",
			    cfg->hostname);
			log_info("timeout after %d s with %s", cfg->timeout,
			    client_ip);
			break;
		}
		if (rc != NETIO_OK)
			break;
		if (session_command(&s, line, len) == NEXT_CLOSE)
			break;
	}
	netio_flush(io);
	if (s.tls)
		tls_netio_end(io);
	transaction_reset(&s);
	return s.accepted;
}
