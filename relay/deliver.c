/*
 * deliver - one upstream SMTP session for a batch of messages of one
 * account (see deliver.h).
 *
 * This file owns the libcurl easy handle of a batch and its options (URL,
 * TLS, login, timeouts), which set the session up and stop there
 * (CURLOPT_CONNECT_ONLY); the reading of that set-up from libcurl's debug
 * stream (the only place the login and the server's extensions can be
 * seen); the connection's bytes for the transactions of mailtx.c, through
 * curl_easy_send and curl_easy_recv, every wait bounded; the safety net
 * against unauthenticated delivery; and the mapping of what happened onto
 * an outcome per recipient and per message.
 */
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "curltls.h"
#include "deliver.h"
#include "dialogue_text.h"
#include "log.h"
#include "mailtx.h"
#include "oauth.h"
#include "util.h"

#define DELIVER_MAXAGE_CONN	30	/* seconds an idle connection is kept */
#define DELIVER_PIPELINING	"PIPELINING"	/* RFC 2920 */
#define DELIVER_SIZE		"SIZE"		/* RFC 1870 */
#define DELIVER_LOG_LINE	1024	/* one dialogue line in the debug log */

/*
 * Mechanisms we log in with.  libcurl 7.88 takes one mechanism per AUTH=
 * key and adds up repeated keys joined by ';' ("AUTH=PLAIN LOGIN" fails
 * with rc 3).  Measured against test servers: this string logs in with
 * PLAIN when offered, with LOGIN when only LOGIN is, and gives rc 67
 * (TEMPFAIL, batch held) when neither is.  "AUTH=*" is not used: with a
 * password it chose CRAM-MD5 over PLAIN when both were offered, and
 * DIGEST-MD5 (historic, RFC 6331) over all others; without a password it
 * tries EXTERNAL.  The mechanism would then follow the server's list, not
 * the configuration.  CRAM-MD5 is allowed as well, for the servers that
 * offer nothing else; when a server offers it next to PLAIN, libcurl
 * prefers it, which costs nothing: the password never crosses the wire.
 */
#define DELIVER_AUTH_OPTIONS	"AUTH=PLAIN;AUTH=LOGIN;AUTH=CRAM-MD5"

/* smtpauth=xoauth2: that mechanism only, never a password fall-back */
#define DELIVER_XOAUTH2_OPTIONS	"AUTH=XOAUTH2"
#define DELIVER_XOAUTH2_MECH	"XOAUTH2"
#define DELIVER_CHALLENGE_MAX	256	/* error challenge shown */

#define DELIVER_NOAUTH \
	"not authenticated upstream (server offered no AUTH?)"

/* One session: the handle and what is known about its connection. */
struct deliver_session {
	const struct config	*cfg;
	const struct account	*acct;
	CURL			*curl;
	char			*url;
	char			*peer;		/* host:port, for messages */
	struct curltls_ca	*ca;		/* tlscafile, for the store */
	bool			 creds;		/* a login is configured */
	bool			 connected;	/* set up, a transaction may follow */
	curl_socket_t		 sock;		/* its socket, for the waits */
	int64_t			 last_used;	/* now_ms() of its last transaction */
	bool			 reused;	/* the last attempt used it */
	bool			 hold;		/* connection-level failure */
	bool			 bearer;	/* smtpauth=xoauth2 */
	bool			 renewed;	/* its token was renewed once */
	bool			 told;		/* config problem logged */
	struct oauth_token	 tok;
	char			 hold_reason[DELIVERY_REPLY_MAX];
	int			 read_errno;
	struct deliver_dialogue	 dlg;
	struct deliver_attempt	 att;
	struct deliver_source	 src;
	char			 errbuf[CURL_ERROR_SIZE];
};

static void		 text_join(char *, size_t, const char *, const char *);
static void		 reply_set(struct deliver_reply *, int, const char *,
			    size_t);
static enum deliver_cmd	 command_of(const char *, size_t);
static void		 stage_reach(struct deliver_attempt *,
			    enum deliver_stage);
static void		 dialogue_line(struct deliver_dialogue *, const char *,
			    size_t);
static void		 dialogue_commit(struct deliver_dialogue *,
			    const struct deliver_reply *);
static void		 rcpt_reply(struct deliver_dialogue *,
			    const struct deliver_reply *);
static enum delivery_status reply_status(int);
static void		 rcpt_set(struct delivery_rcpt *, enum delivery_status,
			    int, const char *);
static void		 rcpt_classify(struct delivery_rcpt *,
			    const struct deliver_attempt *);
static void		 rcpt_accepted(struct delivery_rcpt *,
			    const struct deliver_attempt *);
static int		 status_rank(enum delivery_status);
static void		 message_summarise(struct delivery_msg *,
			    const struct deliver_attempt *);

static bool		 address_ok(const char *, bool);
static void		 ehlo_keyword(struct deliver_dialogue *, const char *,
			    size_t);
static int		 debug_cb(CURL *, curl_infotype, char *, size_t,
			    void *);
static void		 dialogue_sent(void *, const char *, size_t);
static void		 dialogue_got(void *, const char *, size_t);
static int		 conn_wait(struct deliver_session *, short, int64_t);
static int		 conn_write(void *, const char *, size_t);
static ssize_t		 conn_read(void *, char *, size_t);
static ssize_t		 conn_body(void *, char *, size_t);
static void		 conn_io(struct deliver_session *, struct mailtx_io *);
static bool		 conn_stale(struct deliver_session *);
static int		 session_connect(struct deliver_session *);
static void		 session_drop(struct deliver_session *, bool);
static int		 session_handle(struct deliver_session *);
static void		 transaction_run(struct deliver_session *,
			    struct delivery_msg *, const char *const *, size_t);
static void		 transaction_explain(struct deliver_session *,
			    const struct mailtx *, enum mailtx_result);
static void		 debug_log(struct deliver_session *, const char *,
			    const char *, size_t);
static int		 session_url(struct deliver_session *, char *, size_t);
static int		 session_options(struct deliver_session *);
static int		 session_tls(struct deliver_session *);
static int		 session_login(struct deliver_session *);
static void		 message_reset(struct delivery_msg *);
static void		 message_fail(struct delivery_msg *,
			    enum delivery_status, const char *);
static size_t		 rcpt_prepare(struct delivery_msg *,
			    const char **, size_t *);
static void		 rcpt_unsent(struct delivery_msg *, const size_t *,
			    size_t);
static void		 attempt_run(struct deliver_session *, struct delivery_msg *,
			    const char *const *, const size_t *, size_t);
static void		 attempt_explain(struct deliver_session *);
static void		 attempt_explain_connect(struct deliver_session *,
			    const char *);
static bool		 attempt_retryable(const struct deliver_session *,
			    const struct delivery_msg *);
static bool		 attempt_broke_connection(
			    const struct deliver_attempt *);
static bool		 attempt_token_refused(const struct deliver_session *);
static int		 session_renew_token(struct deliver_session *);
static void		 explain_bearer(struct deliver_session *, const char *);
static void		 challenge_text(const char *, char *, size_t);
static bool		 mech_is(const char *, size_t, const char *);
static bool		 auth_has_response(const char *, size_t);
static void		 message_deliver(struct deliver_session *,
			    struct delivery_msg *);

/*
 * Reading the dialogue.
 */

/* text_join - "head: tail", cut to size */
static void
text_join(char *dst, size_t size, const char *head, const char *tail)
{
	size_t	n = strlcpy_s(dst, head, size);

	if (n + 2 >= size)
		return;
	strlcpy_s(dst + n, ": ", size - n);
	strlcpy_s(dst + n + 2, tail, size - n - 2);
}

/* reply_set - store a reply as "CODE text" */
static void
reply_set(struct deliver_reply *r, int code, const char *text, size_t len)
{
	int	n;

	r->code = code;
	n = snprintf(r->text, sizeof(r->text), "%03d", code);
	if (n < 0 || len == 0 || (size_t)n + 1 >= sizeof(r->text))
		return;
	r->text[n++] = ' ';
	dialogue_text_clean(r->text + n, sizeof(r->text) - (size_t)n, text,
	    len);
}

/* deliver_parse_reply - split one reply line into code, kind and text */
int
deliver_parse_reply(const char *line, size_t len, int *code, bool *last,
    const char **text, size_t *textlen)
{
	len = dialogue_text_line_len(line, len);
	if (len < 3 || line[0] < '1' || line[0] > '5' ||
	    !isdigit((unsigned char)line[1]) ||
	    !isdigit((unsigned char)line[2]))
		return -1;
	if (len > 3 && line[3] != ' ' && line[3] != '-')
		return -1;
	*code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
	*last = len == 3 || line[3] == ' ';
	*text = len > 4 ? line + 4 : line + len;
	*textlen = len > 4 ? len - 4 : 0;
	return 0;
}

/* deliver_dialogue_begin - start following one attempt of one message */
void
deliver_dialogue_begin(struct deliver_dialogue *d, struct delivery_msg *msg,
    const size_t *map, size_t nmap, struct deliver_attempt *a)
{
	/*
	 * A reused connection carries on with MAIL; a new one starts with
	 * its greeting, which then is the first reply of this attempt.
	 */
	d->last = DELIVER_CMD_NONE;
	d->in_auth = false;
	d->in_reply = false;
	d->attempt = a;
	d->msg = msg;
	d->rcpt_map = map;
	d->nmap = nmap;
	d->nsent = 0;
}

/* command_of - the command a line sent upstream starts with */
static enum deliver_cmd
command_of(const char *line, size_t len)
{
	static const struct {
		const char		*verb;
		enum deliver_cmd	 cmd;
	} verbs[] = {
		{ "EHLO", DELIVER_CMD_EHLO },
		{ "HELO", DELIVER_CMD_EHLO },
		{ "STARTTLS", DELIVER_CMD_STARTTLS },
		{ "AUTH", DELIVER_CMD_AUTH },
		{ "MAIL", DELIVER_CMD_MAIL },
		{ "RCPT", DELIVER_CMD_RCPT },
		{ "DATA", DELIVER_CMD_DATA },
		{ "QUIT", DELIVER_CMD_QUIT },
	};
	size_t	n = 0;

	while (n < len && line[n] != ' ')
		n++;
	for (size_t i = 0; i < ARRAY_LEN(verbs); i++) {
		if (strlen(verbs[i].verb) == n &&
		    strncasecmp(line, verbs[i].verb, n) == 0)
			return verbs[i].cmd;
	}
	return DELIVER_CMD_OTHER;
}

/* mech_is - does an AUTH command line name this mechanism */
static bool
mech_is(const char *line, size_t len, const char *mech)
{
	size_t	i = 4, n = strlen(mech);

	while (i < len && line[i] == ' ')
		i++;
	return len - i >= n && strncasecmp(line + i, mech, n) == 0 &&
	    (len - i == n || line[i + n] == ' ');
}

/* auth_has_response - does an AUTH command line carry a response */
static bool
auth_has_response(const char *line, size_t len)
{
	size_t	i = 4;

	while (i < len && line[i] == ' ')
		i++;
	while (i < len && line[i] != ' ')
		i++;
	while (i < len && line[i] == ' ')
		i++;
	return i < len;
}

/* stage_reach - move an attempt forward, never back */
static void
stage_reach(struct deliver_attempt *a, enum deliver_stage stage)
{
	if (a->stage < stage)
		a->stage = stage;
}

/* deliver_dialogue_out - a command went upstream; give its loggable form */
void
deliver_dialogue_out(struct deliver_dialogue *d, const char *line,
    size_t len, char *shown, size_t size)
{
	enum deliver_cmd	cmd;

	len = dialogue_text_line_len(line, len);
	d->in_reply = false;
	if (d->in_auth) {
		/* a SASL response: credentials, whatever it looks like */
		d->last = DELIVER_CMD_AUTH;
		d->auth_answered = true;
		strlcpy_s(shown, DIALOGUE_TEXT_REDACTED, size);
		return;
	}
	cmd = command_of(line, len);
	d->last = cmd;
	switch (cmd) {
	case DELIVER_CMD_AUTH:
		d->in_auth = true;
		d->attempt->auth_sent = true;
		d->auth_bearer = mech_is(line, len, DELIVER_XOAUTH2_MECH);
		/* with an initial response the token is on this line */
		d->auth_answered = auth_has_response(line, len);
		dialogue_text_show_auth(line, len, shown, size);
		return;
	case DELIVER_CMD_EHLO:
		/*
		 * EHLO starts every connection and follows STARTTLS, both
		 * before AUTH: a login from before does not count any more,
		 * nor do the extensions offered before.
		 */
		d->authenticated = false;
		d->pipelining = false;
		d->size = false;
		break;
	case DELIVER_CMD_MAIL:
		stage_reach(d->attempt, DELIVER_STAGE_MAIL);
		break;
	case DELIVER_CMD_RCPT:
		stage_reach(d->attempt, DELIVER_STAGE_RCPT);
		d->nsent++;
		break;
	case DELIVER_CMD_DATA:
		stage_reach(d->attempt, DELIVER_STAGE_DATA);
		break;
	default:
		break;
	}
	dialogue_text_clean(shown, size, line, len);
}

/* deliver_dialogue_in - reply lines came from upstream */
void
deliver_dialogue_in(struct deliver_dialogue *d, const char *data, size_t size)
{
	while (size > 0) {
		const char	*nl = memchr(data, '\n', size);
		size_t		 n;

		n = nl != NULL ? (size_t)(nl - data) + 1 : size;
		dialogue_line(d, data, n);
		data += n;
		size -= n;
	}
}

/*
 * dialogue_line - one reply line; a reply counts at its final line and
 * keeps the text of its first (the statement; later lines tend to be
 * links and tracking IDs)
 */
static void
dialogue_line(struct deliver_dialogue *d, const char *line, size_t len)
{
	const char	*text;
	size_t		 textlen;
	int		 code;
	bool		 last;

	if (deliver_parse_reply(line, len, &code, &last, &text, &textlen) == -1)
		return;
	if (d->last == DELIVER_CMD_EHLO && code == 250)
		ehlo_keyword(d, text, textlen);
	if (!d->in_reply)
		reply_set(&d->pending, code, text, textlen);
	d->in_reply = !last;
	if (!last)
		return;
	d->pending.code = code;
	dialogue_commit(d, &d->pending);
}

/* ehlo_keyword - an extension of an EHLO reply line that we use */
static void
ehlo_keyword(struct deliver_dialogue *d, const char *text, size_t len)
{
	size_t	n = 0;

	while (n < len && text[n] != ' ')
		n++;
	if (n == strlen(DELIVER_PIPELINING) &&
	    strncasecmp(text, DELIVER_PIPELINING, n) == 0)
		d->pipelining = true;
	else if (n == strlen(DELIVER_SIZE) &&
	    strncasecmp(text, DELIVER_SIZE, n) == 0)
		d->size = true;
}

/* dialogue_commit - file a complete reply under the command it answers */
static void
dialogue_commit(struct deliver_dialogue *d, const struct deliver_reply *r)
{
	struct deliver_attempt	*a = d->attempt;

	if (d->last == DELIVER_CMD_NONE ||
	    (r->code == 220 && d->last != DELIVER_CMD_STARTTLS)) {
		/* a greeting: a new connection, not logged in */
		d->authenticated = false;
		d->pipelining = false;
		d->size = false;
		d->in_auth = false;
		a->conn = *r;
		return;
	}
	switch (d->last) {
	case DELIVER_CMD_AUTH:
		if (r->code == 334 && d->auth_bearer && d->auth_answered) {
			/* a challenge after the token refuses it (RFC 7628) */
			a->token_rejected = true;
			a->conn = *r;
			return;
		}
		if (r->code == 334)
			return;
		d->in_auth = false;
		d->authenticated = r->code == 235;
		a->conn = *r;
		return;
	case DELIVER_CMD_MAIL:
		a->mail = *r;
		return;
	case DELIVER_CMD_RCPT:
		rcpt_reply(d, r);
		return;
	case DELIVER_CMD_DATA:
		a->data = *r;
		if (r->code == 354) {
			stage_reach(a, DELIVER_STAGE_BODY);
			d->last = DELIVER_CMD_BODY;
		}
		return;
	case DELIVER_CMD_BODY:
		a->final = *r;
		stage_reach(a, DELIVER_STAGE_DONE);
		d->last = DELIVER_CMD_OTHER;
		return;
	case DELIVER_CMD_QUIT:
		return;
	default:
		if (a->stage == DELIVER_STAGE_CONNECT)
			a->conn = *r;
		return;
	}
}

/* rcpt_reply - the reply to the k-th RCPT belongs to the k-th recipient sent */
static void
rcpt_reply(struct deliver_dialogue *d, const struct deliver_reply *r)
{
	struct delivery_rcpt	*rcpt;
	size_t			 k, i;

	if (d->msg == NULL || d->nsent == 0)
		return;
	k = d->nsent - 1;
	if (d->rcpt_map != NULL) {
		if (k >= d->nmap)
			return;
		i = d->rcpt_map[k];
	} else
		i = k;
	if (i >= d->msg->nrcpts)
		return;
	rcpt = &d->msg->rcpts[i];
	rcpt->code = r->code;
	strlcpy_s(rcpt->reply, r->text, sizeof(rcpt->reply));
}

/*
 * Classification.
 */

/* reply_status - what a reply that is not a success means */
static enum delivery_status
reply_status(int code)
{
	return code / 100 == 5 ? DELIVERY_PERMFAIL : DELIVERY_TEMPFAIL;
}

/* rcpt_set - give a recipient its outcome */
static void
rcpt_set(struct delivery_rcpt *r, enum delivery_status status, int code,
    const char *reply)
{
	r->status = status;
	r->code = code;
	strlcpy_s(r->reply, reply, sizeof(r->reply));
}

/* rcpt_classify - the outcome of one recipient from what the attempt saw */
static void
rcpt_classify(struct delivery_rcpt *r, const struct deliver_attempt *a)
{
	if (a->not_authenticated || a->read_error) {
		rcpt_set(r, DELIVERY_TEMPFAIL, 0, a->reason);
		return;
	}
	if (r->code / 100 == 2) {
		rcpt_accepted(r, a);
		return;
	}
	if (r->code != 0) {
		/* refused at RCPT: its own reply says it */
		r->status = reply_status(r->code);
		return;
	}
	if (a->mail.code != 0 && a->mail.code / 100 != 2) {
		rcpt_set(r, reply_status(a->mail.code), a->mail.code,
		    a->mail.text);
		return;
	}
	/* no reply of its own: connection, TLS, AUTH, timeout, ... */
	rcpt_set(r, DELIVERY_TEMPFAIL, 0, a->reason);
}

/* rcpt_accepted - a recipient the server took shares the message's fate */
static void
rcpt_accepted(struct delivery_rcpt *r, const struct deliver_attempt *a)
{
	if (a->final.code != 0) {
		rcpt_set(r, a->final.code / 100 == 2 ? DELIVERY_DELIVERED :
		    reply_status(a->final.code), a->final.code, a->final.text);
		return;
	}
	if (a->rc == 0) {
		/* libcurl read a 250 to the message that we could not parse */
		r->status = DELIVERY_DELIVERED;
		return;
	}
	if (a->data.code != 0 && a->data.code != 354) {
		rcpt_set(r, reply_status(a->data.code), a->data.code,
		    a->data.text);
		return;
	}
	rcpt_set(r, DELIVERY_TEMPFAIL, 0, a->reason);
}

/* status_rank - how much a status still owes: TEMP > PERM > DELIVERED */
static int
status_rank(enum delivery_status status)
{
	switch (status) {
	case DELIVERY_DELIVERED:
		return 0;
	case DELIVERY_PERMFAIL:
		return 1;
	case DELIVERY_TEMPFAIL:
		return 2;
	default:
		return 3;
	}
}

/* message_summarise - the message's status and one line for its log */
static void
message_summarise(struct delivery_msg *msg, const struct deliver_attempt *a)
{
	const struct delivery_rcpt	*worst;
	bool				 mixed = false;

	if (msg->nrcpts == 0) {
		msg->status = DELIVERY_PERMFAIL;
		strlcpy_s(msg->error, "no recipients", sizeof(msg->error));
		return;
	}
	worst = &msg->rcpts[0];
	for (size_t i = 1; i < msg->nrcpts; i++) {
		const struct delivery_rcpt	*r = &msg->rcpts[i];
		int				 d;

		if (r->status != msg->rcpts[0].status)
			mixed = true;
		/* the worst status; among equals, the upstream's own words */
		d = status_rank(r->status) - status_rank(worst->status);
		if (d > 0 || (d == 0 && worst->code == 0 && r->code != 0))
			worst = r;
	}
	msg->status = worst->status == DELIVERY_PENDING ? DELIVERY_TEMPFAIL :
	    worst->status;
	/* sent in full and no answer came: it may have arrived */
	msg->possible_duplicate = a->rc != 0 && a->body_complete &&
	    a->final.code == 0;
	if (mixed) {
		char	addr[DELIVERY_REPLY_MAX];

		/* a log line: an address never breaks it */
		dialogue_text_clean(addr, sizeof(addr),
		    worst->address != NULL ? worst->address : "",
		    worst->address != NULL ? strlen(worst->address) : 0);
		text_join(msg->error, sizeof(msg->error), addr, worst->reply);
	} else
		strlcpy_s(msg->error, worst->reply, sizeof(msg->error));
}

/* deliver_classify - outcome of every open recipient, then of the message */
void
deliver_classify(struct delivery_msg *msg, const struct deliver_attempt *a)
{
	for (size_t i = 0; i < msg->nrcpts; i++) {
		if (msg->rcpts[i].status == DELIVERY_PENDING)
			rcpt_classify(&msg->rcpts[i], a);
	}
	message_summarise(msg, a);
}

/*
 * The message body.
 */

/* deliver_source_init - wire bytes of a message: prefix, then the file */
void
deliver_source_init(struct deliver_source *src, const struct delivery_msg *msg)
{
	memset(src, 0, sizeof(*src));
	src->prefix = msg->prefix;
	src->prefix_len = msg->prefix != NULL ? msg->prefix_len : 0;
	src->fd = msg->fd;
	src->offset = msg->offset;
	src->length = msg->length > 0 ? msg->length : 0;
}

/* deliver_source_read - the next bytes, 0 at the end, -1 on error */
ssize_t
deliver_source_read(struct deliver_source *src, char *buf, size_t size)
{
	size_t	n = 0, want;
	ssize_t	got;

	if (src->prefix_done < src->prefix_len) {
		n = src->prefix_len - src->prefix_done;
		if (n > size)
			n = size;
		memcpy(buf, src->prefix + src->prefix_done, n);
		src->prefix_done += n;
	}
	if (n == size || src->file_done >= src->length)
		return (ssize_t)n;
	want = size - n;
	if ((off_t)want > src->length - src->file_done)
		want = (size_t)(src->length - src->file_done);
	do
		got = pread(src->fd, buf + n, want,
		    src->offset + src->file_done);
	while (got == -1 && errno == EINTR);
	if (got <= 0 && n > 0)
		return (ssize_t)n;	/* the error shows on the next call */
	if (got == 0)
		errno = ENODATA;
	if (got <= 0)
		return -1;
	src->file_done += got;
	return (ssize_t)n + got;
}

/* deliver_source_done - every byte handed out */
bool
deliver_source_done(const struct deliver_source *src)
{
	return src->prefix_done >= src->prefix_len &&
	    src->file_done >= src->length;
}

/*
 * libcurl.
 */

/* deliver_global_init - libcurl's global state, once before any fork */
void
deliver_global_init(void)
{
	const curl_version_info_data	*info;
	CURLcode			 rc;

	rc = curl_global_init(CURL_GLOBAL_DEFAULT);
	if (rc != CURLE_OK) {
		log_error("libcurl initialisation failed: %s",
		    curl_easy_strerror(rc));
		return;
	}
	info = curl_version_info(CURLVERSION_NOW);
	if (!curltls_has("smtp") || !curltls_has("smtps"))
		log_error("libcurl %s lacks SMTP support: no upstream delivery",
		    info->version);
	if (!(info->features & CURL_VERSION_SSL) || info->ssl_version == NULL)
		log_error("libcurl %s lacks TLS support: no upstream delivery "
		    "with smtpsecurity tls or ssl", info->version);
}

/* deliver_global_cleanup - release libcurl's global state */
void
deliver_global_cleanup(void)
{
	curl_global_cleanup();
}

/* address_ok - nothing in an address can break the command line */
static bool
address_ok(const char *addr, bool may_be_empty)
{
	if (addr == NULL)
		return may_be_empty;
	if (*addr == '\0')
		return may_be_empty;
	for (; *addr != '\0'; addr++) {
		if ((unsigned char)*addr < 0x20 || *addr == 0x7f)
			return false;
	}
	return true;
}

/*
 * debug_log - one dialogue line, cleaned.  debuglevel is the admin asking
 * for the dialogue, so it is logged at INFO: no second switch is needed.
 */
static void
debug_log(struct deliver_session *s, const char *dir, const char *data, size_t len)
{
	char	line[DELIVER_LOG_LINE];

	dialogue_text_clean(line, sizeof(line), data,
	    dialogue_text_line_len(data, len));
	log_info("upstream %s: %s %s", s->peer, dir, line);
}

/*
 * dialogue_sent - a command went upstream (libcurl's or a transaction's):
 * follow it, log it if asked
 */
static void
dialogue_sent(void *arg, const char *data, size_t size)
{
	struct deliver_session	*s = arg;
	char			 shown[DELIVER_LOG_LINE];

	deliver_dialogue_out(&s->dlg, data, size, shown, sizeof(shown));
	if (s->cfg->debuglevel >= 1)
		log_info("upstream %s: > %s", s->peer, shown);
}

/* dialogue_got - reply lines came: follow them, log them if asked */
static void
dialogue_got(void *arg, const char *data, size_t size)
{
	struct deliver_session	*s = arg;

	deliver_dialogue_in(&s->dlg, data, size);
	if (s->cfg->debuglevel >= 1)
		debug_log(s, "<", data, size);
}

/* debug_cb - libcurl's account of the set-up: the only view of the login */
static int
debug_cb(CURL *curl, curl_infotype type, char *data, size_t size, void *arg)
{
	struct deliver_session	*s = arg;

	switch (type) {
	case CURLINFO_HEADER_OUT:
		dialogue_sent(s, data, size);
		break;
	case CURLINFO_HEADER_IN:
		dialogue_got(s, data, size);
		break;
	case CURLINFO_TEXT:
		if (s->cfg->debuglevel >= 2)
			debug_log(s, "*", data, size);
		break;
	default:
		/* TLS records are not logged */
		break;
	}
	return 0;
}

/*
 * The connection, for the transactions: bytes through libcurl, so TLS is
 * libcurl's; every wait bounded by relaytimeout.  A failure leaves its
 * words in errbuf.
 */

/*
 * conn_wait - until the socket is ready for events, or ETIMEDOUT once
 * relaytimeout has passed since the last progress (since, in now_ms()).
 * Counting from the last progress, not from this wait, bounds a wait that
 * returns at once without anything to do (TLS wanting the other way).
 */
static int
conn_wait(struct deliver_session *s, short events, int64_t since)
{
	struct pollfd	pfd = { .fd = s->sock, .events = events };
	long		t = curltls_timeout(s->cfg);
	int64_t		left = since + t * 1000 - now_ms();
	int		n = 0;

	while (left > 0 &&
	    (n = poll(&pfd, 1, (int)left)) == -1 && errno == EINTR)
		left = since + t * 1000 - now_ms();
	if (n > 0)
		return 0;
	if (n == 0) {
		snprintf(s->errbuf, sizeof(s->errbuf), "timeout: %s for %ld s",
		    events == POLLIN ? "no reply" : "the server took no data",
		    t);
		errno = ETIMEDOUT;
	}
	return -1;
}

/* conn_write - all of buf, or -1 */
static int
conn_write(void *arg, const char *buf, size_t len)
{
	struct deliver_session	*s = arg;
	int64_t			 since = now_ms();
	size_t			 n;
	CURLcode		 rc;

	while (len > 0) {
		rc = curl_easy_send(s->curl, buf, len, &n);
		if (rc == CURLE_AGAIN) {
			if (conn_wait(s, POLLOUT, since) == -1)
				return -1;
			continue;
		}
		if (rc != CURLE_OK) {
			snprintf(s->errbuf, sizeof(s->errbuf), "connection "
			    "lost while sending: %s", curl_easy_strerror(rc));
			errno = EPIPE;
			return -1;
		}
		buf += n;
		len -= n;
		since = now_ms();
	}
	return 0;
}

/* conn_read - what the server sent: > 0, 0 when it closed, -1 */
static ssize_t
conn_read(void *arg, char *buf, size_t size)
{
	struct deliver_session	*s = arg;
	int64_t			 since = now_ms();
	size_t			 n;
	CURLcode		 rc;

	/* what TLS holds decrypted already shows no sign on the socket */
	while ((rc = curl_easy_recv(s->curl, buf, size, &n)) == CURLE_AGAIN) {
		if (conn_wait(s, POLLIN, since) == -1)
			return -1;
	}
	if (rc != CURLE_OK) {
		snprintf(s->errbuf, sizeof(s->errbuf), "connection lost: %s",
		    curl_easy_strerror(rc));
		errno = ECONNRESET;
		return -1;
	}
	if (n == 0)
		strlcpy_s(s->errbuf, "the server closed the connection",
		    sizeof(s->errbuf));
	return (ssize_t)n;
}

/* conn_body - the message, from the spool file */
static ssize_t
conn_body(void *arg, char *buf, size_t size)
{
	struct deliver_session	*s = arg;
	ssize_t			 n;

	if ((n = deliver_source_read(&s->src, buf, size)) == -1) {
		s->read_errno = errno;
		s->att.read_error = true;
	}
	return n;
}

/* conn_io - the callbacks of mailtx over this session */
static void
conn_io(struct deliver_session *s, struct mailtx_io *io)
{
	io->arg = s;
	io->write = conn_write;
	io->read = conn_read;
	io->body = conn_body;
	io->sent = dialogue_sent;
	io->got = dialogue_got;
}

/*
 * conn_stale - a kept connection that should not carry the next message:
 * idle too long (servers drop idle clients after a while, some without a
 * word), or the server has spoken or closed (a 421 on its way out)
 */
static bool
conn_stale(struct deliver_session *s)
{
	struct pollfd	pfd = { .fd = s->sock, .events = POLLIN };

	if (now_ms() - s->last_used > DELIVER_MAXAGE_CONN * 1000)
		return true;
	return poll(&pfd, 1, 0) != 0;
}

/* session_url - smtp[s]://host:port/<EHLO name>, and host:port for logs */
static int
session_url(struct deliver_session *s, char *err, size_t errlen)
{
	const struct account	*acct = s->acct;
	const char		*ehlo;
	char			*host, *path = NULL;

	if (!curltls_host_valid(acct->smtphost)) {
		snprintf(err, errlen, "invalid smtphost \"%s\"",
		    acct->smtphost != NULL ? acct->smtphost : "");
		return -1;
	}
	ehlo = acct->localhostname != NULL ? acct->localhostname :
	    s->cfg->hostname;
	/* without a path libcurl would say EHLO with gethostname() */
	if (ehlo != NULL &&
	    (path = curl_easy_escape(s->curl, ehlo, 0)) == NULL) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	host = curltls_url_host(acct->smtphost);
	s->url = xasprintf("%s://%s:%d/%s",
	    acct->smtpsecurity == SECURITY_SSL ? "smtps" : "smtp", host,
	    account_port(acct), path != NULL ? path : "");
	s->peer = xasprintf("%s:%d", host, account_port(acct));
	curl_free(path);
	free(host);
	return 0;
}

/*
 * session_options - URL, dialogue and timeouts.  libcurl sets the session
 * up and hands it over: the transactions are ours (mailtx), because its
 * own send one command at a time and cannot pipeline.
 */
static int
session_options(struct deliver_session *s)
{
	CURL	*c = s->curl;
	long	 t = curltls_timeout(s->cfg);
	int	 bad = 0;

	bad |= curl_easy_setopt(c, CURLOPT_URL, s->url) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps") !=
	    CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_CONNECT_ONLY, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_ERRORBUFFER, s->errbuf) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_VERBOSE, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_DEBUGFUNCTION, debug_cb) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_DEBUGDATA, s) != CURLE_OK;
	/* the connect timeout also covers the greeting */
	bad |= curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
	    curltls_connect_timeout(s->cfg) * 1000) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_SERVER_RESPONSE_TIMEOUT, t) !=
	    CURLE_OK;
	return bad ? -1 : 0;
}

/* session_tls - STARTTLS or implicit TLS, versions, verification, CAs */
static int
session_tls(struct deliver_session *s)
{
	const struct account	*acct = s->acct;
	CURL			*c = s->curl;
	int			 bad = 0;

	/* "tls" requires STARTTLS: never CURLUSESSL_TRY, a plain fall-back */
	bad |= curl_easy_setopt(c, CURLOPT_USE_SSL,
	    acct->smtpsecurity == SECURITY_NONE ? (long)CURLUSESSL_NONE :
	    (long)CURLUSESSL_ALL) != CURLE_OK;
	if (acct->smtpsecurity == SECURITY_NONE)
		return bad ? -1 : 0;
	if (curltls_options(c, acct->tlsverify, acct->smtpweaktls,
	    s->ca) == -1)
		bad = 1;
	return bad ? -1 : 0;
}

/* session_login - user, password and the mechanisms allowed */
static int
session_login(struct deliver_session *s)
{
	const struct account	*acct = s->acct;
	CURL			*c = s->curl;
	int			 bad = 0;

	if (!s->creds)
		return 0;
	if (s->bearer) {
		/* without USERNAME libcurl would skip AUTH in silence */
		bad |= curl_easy_setopt(c, CURLOPT_USERNAME,
		    acct->smtpusername) != CURLE_OK;
		bad |= curl_easy_setopt(c, CURLOPT_XOAUTH2_BEARER,
		    s->tok.access) != CURLE_OK;
		bad |= curl_easy_setopt(c, CURLOPT_LOGIN_OPTIONS,
		    DELIVER_XOAUTH2_OPTIONS) != CURLE_OK;
		bad |= curl_easy_setopt(c, CURLOPT_SASL_IR, 1L) != CURLE_OK;
		return bad ? -1 : 0;
	}
	bad |= curl_easy_setopt(c, CURLOPT_USERNAME, acct->smtpusername) !=
	    CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_PASSWORD,
	    acct->smtppassword != NULL ? acct->smtppassword : "") != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_LOGIN_OPTIONS,
	    DELIVER_AUTH_OPTIONS) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_SASL_IR, 1L) != CURLE_OK;
	return bad ? -1 : 0;
}

/* session_handle - a new easy handle with every option of the session */
static int
session_handle(struct deliver_session *s)
{
	if ((s->curl = curl_easy_init()) == NULL)
		return -1;
	if (session_options(s) == -1 || session_tls(s) == -1 ||
	    session_login(s) == -1) {
		curl_easy_cleanup(s->curl);
		s->curl = NULL;
		return -1;
	}
	return 0;
}

/* deliver_open - a session for one account; no connection is made yet */
struct deliver_session *
deliver_open(const struct config *cfg, const struct account *acct, char *err,
    size_t errlen)
{
	const char	*proto = acct->smtpsecurity == SECURITY_SSL ? "smtps" :
	    "smtp";
	struct deliver_session	*s;

	if (!curltls_has(proto)) {
		snprintf(err, errlen, "libcurl lacks %s support", proto);
		return NULL;
	}
	s = xcalloc(1, sizeof(*s));
	s->cfg = cfg;
	s->acct = acct;
	s->sock = CURL_SOCKET_BAD;
	s->creds = acct->smtpusername != NULL && acct->smtpusername[0] != '\0';
	deliver_dialogue_begin(&s->dlg, NULL, NULL, 0, &s->att);
	if (acct->tlscafile != NULL && acct->tlsverify &&
	    acct->smtpsecurity != SECURITY_NONE &&
	    (s->ca = curltls_ca_load(acct->tlscafile, err, errlen)) == NULL)
		goto fail;
	if (acct->smtpauth == SMTPAUTH_XOAUTH2) {
		s->bearer = true;
		if (!s->creds || acct->smtpsecurity == SECURITY_NONE) {
			snprintf(err, errlen, "XOAUTH2 needs smtpusername and "
			    "TLS");
			goto fail;
		}
		if (oauth_access_token(cfg, acct, &s->tok, err, errlen) !=
		    OAUTH_OK)
			goto fail;
	}
	if (session_url(s, err, errlen) == -1)
		goto fail;
	if (session_handle(s) == -1) {
		snprintf(err, errlen, "libcurl refused an option (%s)",
		    curl_version());
		goto fail;
	}
	return s;
fail:
	deliver_close(s);
	return NULL;
}

/*
 * session_connect - set the session up: connect, greeting, EHLO, TLS,
 * AUTH, all by libcurl.  rc and stage CONNECT tell a failure.
 */
static int
session_connect(struct deliver_session *s)
{
	curl_socket_t	sock = CURL_SOCKET_BAD;

	if (s->curl == NULL && session_handle(s) == -1) {
		s->att.rc = CURLE_OUT_OF_MEMORY;
		strlcpy_s(s->errbuf, "libcurl refused an option",
		    sizeof(s->errbuf));
		return -1;
	}
	if ((s->att.rc = (int)curl_easy_perform(s->curl)) != CURLE_OK ||
	    curl_easy_getinfo(s->curl, CURLINFO_ACTIVESOCKET, &sock) !=
	    CURLE_OK || sock == CURL_SOCKET_BAD) {
		if (s->att.rc == CURLE_OK)
			s->att.rc = CURLE_COULDNT_CONNECT;
		session_drop(s, false);
		return -1;
	}
	s->sock = sock;
	s->connected = true;
	s->last_used = now_ms();
	return 0;
}

/*
 * session_drop - end the connection: with QUIT when the session is in a
 * state to take it, else just closed.  The next message makes a new one
 * with a new handle (libcurl cannot set up a second connection on a
 * handle that keeps one for us).
 */
static void
session_drop(struct deliver_session *s, bool polite)
{
	struct mailtx_io	io;

	if (s->connected && polite) {
		conn_io(s, &io);
		/* its reply belongs to no message */
		deliver_dialogue_begin(&s->dlg, NULL, NULL, 0, &s->att);
		mailtx_quit(&io);
	}
	s->connected = false;
	s->sock = CURL_SOCKET_BAD;
	if (s->curl != NULL)
		curl_easy_cleanup(s->curl);
	s->curl = NULL;
}

/* deliver_close - QUIT if connected, then release the handle and the CAs */
void
deliver_close(struct deliver_session *s)
{
	if (s == NULL)
		return;
	session_drop(s, true);
	curltls_ca_free(s->ca);
	oauth_token_clear(&s->tok);
	free(s->url);
	free(s->peer);
	free(s);
}

/* message_reset - nothing known yet about a message */
static void
message_reset(struct delivery_msg *msg)
{
	for (size_t i = 0; i < msg->nrcpts; i++) {
		msg->rcpts[i].status = DELIVERY_PENDING;
		msg->rcpts[i].code = 0;
		msg->rcpts[i].reply[0] = '\0';
	}
	msg->status = DELIVERY_PENDING;
	msg->possible_duplicate = false;
	msg->error[0] = '\0';
	msg->elapsed_ms = 0;
}

/* message_fail - the same outcome and reason for every recipient */
static void
message_fail(struct delivery_msg *msg, enum delivery_status status,
    const char *reason)
{
	struct deliver_attempt	none;

	memset(&none, 0, sizeof(none));
	for (size_t i = 0; i < msg->nrcpts; i++)
		rcpt_set(&msg->rcpts[i], status, 0, reason);
	message_summarise(msg, &none);
}

/* rcpt_prepare - the RCPT list; map[k] is the recipient of the k-th RCPT */
static size_t
rcpt_prepare(struct delivery_msg *msg, const char **list, size_t *map)
{
	size_t	n = 0;

	for (size_t i = 0; i < msg->nrcpts; i++) {
		struct delivery_rcpt	*r = &msg->rcpts[i];

		if (!address_ok(r->address, false)) {
			rcpt_set(r, DELIVERY_PERMFAIL, 0,
			    "invalid recipient address");
			continue;
		}
		list[n] = r->address;
		map[n++] = i;
	}
	return n;
}

/* rcpt_unsent - forget the replies of an attempt that is made again */
static void
rcpt_unsent(struct delivery_msg *msg, const size_t *map, size_t nmap)
{
	for (size_t k = 0; k < nmap; k++) {
		msg->rcpts[map[k]].code = 0;
		msg->rcpts[map[k]].reply[0] = '\0';
	}
}

/*
 * attempt_run - one attempt of one message: over the kept connection, or
 * a new one when there is none or it went stale
 */
static void
attempt_run(struct deliver_session *s, struct delivery_msg *msg,
    const char *const *list, const size_t *map, size_t nmap)
{
	memset(&s->att, 0, sizeof(s->att));
	deliver_dialogue_begin(&s->dlg, msg, map, nmap, &s->att);
	s->errbuf[0] = '\0';
	if (s->connected && conn_stale(s)) {
		log_debug("upstream %s: kept connection idle or closed, "
		    "making a new one", s->peer);
		session_drop(s, false);
	}
	s->reused = s->connected;
	if (!s->connected && session_connect(s) == -1) {
		attempt_explain(s);
		return;
	}
	if (s->creds && !s->dlg.authenticated) {
		/* libcurl goes on without AUTH when the server offers none */
		s->att.not_authenticated = true;
		s->att.rc = CURLE_ABORTED_BY_CALLBACK;
		session_drop(s, true);
		attempt_explain(s);
		return;
	}
	transaction_run(s, msg, list, nmap);
	attempt_explain(s);
}

/* transaction_run - MAIL, RCPT, DATA and the message (mailtx.c) */
static void
transaction_run(struct deliver_session *s, struct delivery_msg *msg,
    const char *const *list, size_t n)
{
	struct mailtx		tx;
	struct mailtx_io	io;
	enum mailtx_result	rc;

	memset(&tx, 0, sizeof(tx));
	deliver_source_init(&s->src, msg);
	tx.from = msg->mail_from != NULL ? msg->mail_from : "";
	tx.rcpts = list;
	tx.nrcpts = n;
	tx.size = s->dlg.size ? (long long)s->src.prefix_len +
	    (long long)s->src.length : -1;
	tx.pipelining = s->dlg.pipelining;
	conn_io(s, &io);
	rc = mailtx_run(&tx, &io);
	s->att.body_complete = tx.body_complete;
	s->last_used = now_ms();
	transaction_explain(s, &tx, rc);
	if (!tx.clean)
		session_drop(s, false);
}

/*
 * transaction_explain - the attempt's rc for what the transaction ended
 * with, the code libcurl gives the same failure, so one classification
 * serves both
 */
static void
transaction_explain(struct deliver_session *s, const struct mailtx *tx,
    enum mailtx_result rc)
{
	struct deliver_attempt	*a = &s->att;
	const char		*what;

	switch (rc) {
	case MAILTX_DONE:
		a->rc = a->final.code / 100 == 2 ? CURLE_OK :
		    CURLE_WEIRD_SERVER_REPLY;
		return;
	case MAILTX_REFUSED:
		a->rc = CURLE_SEND_ERROR;
		if (a->mail.code / 100 != 2)
			what = "MAIL FROM refused";
		else if (a->data.code != 0 && a->data.code != 354)
			what = "DATA refused";
		else
			what = "no recipient accepted";
		strlcpy_s(s->errbuf, what, sizeof(s->errbuf));
		return;
	case MAILTX_BODY:
		a->rc = CURLE_ABORTED_BY_CALLBACK;
		return;
	case MAILTX_IO:
		break;
	}
	if (tx->err == ETIMEDOUT)
		a->rc = CURLE_OPERATION_TIMEDOUT;
	else if (tx->err == EPIPE)
		a->rc = CURLE_SEND_ERROR;
	else if (tx->err == EPROTO) {
		a->rc = CURLE_WEIRD_SERVER_REPLY;
		strlcpy_s(s->errbuf, "the server's answer is no SMTP reply",
		    sizeof(s->errbuf));
	} else
		a->rc = CURLE_RECV_ERROR;
}

/* attempt_explain - the reason for recipients without a reply of their own */
static void
attempt_explain(struct deliver_session *s)
{
	struct deliver_attempt	*a = &s->att;
	const char		*err = s->errbuf[0] != '\0' ? s->errbuf :
	    curl_easy_strerror((CURLcode)a->rc);

	if (a->not_authenticated)
		strlcpy_s(a->reason, DELIVER_NOAUTH, sizeof(a->reason));
	else if (a->read_error)
		snprintf(a->reason, sizeof(a->reason),
		    "cannot read the spool file: %s", strerror(s->read_errno));
	else if (a->rc == CURLE_OK)
		a->reason[0] = '\0';
	else if (a->stage == DELIVER_STAGE_CONNECT)
		attempt_explain_connect(s, err);
	else if (a->stage == DELIVER_STAGE_BODY && a->body_complete)
		snprintf(a->reason, sizeof(a->reason),
		    "no reply after the message was sent: %s", err);
	else if (a->stage == DELIVER_STAGE_BODY)
		snprintf(a->reason, sizeof(a->reason),
		    "message not sent in full: %s", err);
	else
		snprintf(a->reason, sizeof(a->reason), "%s", err);
}

/* attempt_explain_connect - why a session did not get as far as MAIL */
static void
attempt_explain_connect(struct deliver_session *s, const char *err)
{
	struct deliver_attempt	*a = &s->att;
	const char		*what = NULL;

	switch (a->rc) {
	case CURLE_PEER_FAILED_VERIFICATION:
		what = "TLS certificate verification failed";
		break;
	case CURLE_SSL_CONNECT_ERROR:
		what = "TLS handshake failed";
		break;
	case CURLE_USE_SSL_FAILED:
		what = "server offers no STARTTLS (smtpsecurity tls)";
		break;
	case CURLE_OPERATION_TIMEDOUT:
		what = "timeout";
		break;
	case CURLE_LOGIN_DENIED:
		if (s->bearer) {
			explain_bearer(s, err);
			return;
		}
		if (a->auth_sent && a->conn.code != 0) {
			/* a 535 is TEMPFAIL: an admin can fix the password */
			text_join(a->reason, sizeof(a->reason),
			    "authentication failed", a->conn.text);
			return;
		}
		what = "server offers neither AUTH PLAIN nor AUTH LOGIN";
		break;
	case CURLE_WEIRD_SERVER_REPLY:
		if (a->conn.code / 100 == 4 || a->conn.code / 100 == 5) {
			/* the greeting or EHLO refused the session */
			strlcpy_s(a->reason, a->conn.text, sizeof(a->reason));
			return;
		}
		break;
	default:
		break;
	}
	if (what != NULL)
		snprintf(a->reason, sizeof(a->reason), "%s: %s", what, err);
	else
		snprintf(a->reason, sizeof(a->reason), "%s", err);
}

/* challenge_text - the JSON of an XOAUTH2 error challenge, for the log */
static void
challenge_text(const char *reply, char *out, size_t size)
{
	unsigned char	 raw[DELIVER_CHALLENGE_MAX * 2 + 4];
	const char	*b64 = reply + strspn(reply, "0123456789 ");
	size_t		 len = strlen(b64);
	int		 n;

	out[0] = '\0';
	if (len == 0 || len > DELIVER_CHALLENGE_MAX * 2 || len % 4 != 0)
		return;
	if ((n = EVP_DecodeBlock(raw, (const unsigned char *)b64,
	    (int)len)) <= 0)
		return;
	while (n > 0 && raw[n - 1] == '\0')
		n--;
	dialogue_text_clean(out, size, (const char *)raw, (size_t)n);
}

/*
 * explain_bearer - why an XOAUTH2 login failed.  A refusal of a token just
 * obtained is no token problem: the mailbox, tenant or app is not set up
 * for it, and only an administrator can help.
 */
static void
explain_bearer(struct deliver_session *s, const char *err)
{
	struct deliver_attempt	*a = &s->att;
	char			 json[DELIVER_CHALLENGE_MAX];
	char			 said[DELIVERY_REPLY_MAX], *text;

	if (!a->auth_sent) {
		text_join(a->reason, sizeof(a->reason), "server does not offer "
		    "AUTH XOAUTH2", err);
		return;
	}
	if (a->token_rejected) {
		challenge_text(a->conn.text, json, sizeof(json));
		snprintf(said, sizeof(said), "334 error challenge%s%s",
		    json[0] != '\0' ? " " : "", json);
	} else if (a->conn.code != 0)
		strlcpy_s(said, a->conn.text, sizeof(said));
	else
		strlcpy_s(said, err, sizeof(said));
	if (!s->tok.fresh) {
		text_join(a->reason, sizeof(a->reason), "access token refused",
		    said);
		return;
	}
	text = xasprintf("configuration problem: XOAUTH2 login as %s refused "
	    "with a token just obtained (is SMTP AUTH enabled for the "
	    "mailbox, SMTP.Send or SMTP.SendAsApp granted, smtpusername the "
	    "token's mailbox?)", s->acct->smtpusername);
	text_join(a->reason, sizeof(a->reason), text, said);
	free(text);
	if (!s->told)
		log_error("upstream %s: [%s]: %s", s->peer, s->acct->name,
		    a->reason);
	s->told = true;
}

/*
 * attempt_token_refused - an XOAUTH2 login failed with a token that was
 * not obtained just now: worth one new token
 */
static bool
attempt_token_refused(const struct deliver_session *s)
{
	const struct deliver_attempt	*a = &s->att;

	return s->bearer && !s->renewed && !s->tok.fresh &&
	    a->rc == CURLE_LOGIN_DENIED && a->auth_sent &&
	    (a->token_rejected || a->conn.code / 100 == 5);
}

/* session_renew_token - the refused token forgotten, a new one in use */
static int
session_renew_token(struct deliver_session *s)
{
	char	err[DELIVERY_REPLY_MAX];

	s->renewed = true;
	oauth_token_rejected(s->cfg, s->acct, s->tok.access);
	oauth_token_clear(&s->tok);
	if (oauth_access_token(s->cfg, s->acct, &s->tok, err,
	    sizeof(err)) != OAUTH_OK) {
		text_join(s->att.reason, sizeof(s->att.reason),
		    "access token refused, no new one", err);
		return -1;
	}
	/* the refused login dropped the handle: the next one takes this */
	return 0;
}

/*
 * attempt_retryable - a reused connection broke before any recipient was
 * accepted: most likely the server had closed it, so nothing went out.
 * A refusal that left the connection standing was the server's answer.
 */
static bool
attempt_retryable(const struct deliver_session *s, const struct delivery_msg *msg)
{
	const struct deliver_attempt	*a = &s->att;

	if (a->rc == CURLE_OK || !s->reused || s->connected || a->read_error ||
	    a->not_authenticated || a->stage >= DELIVER_STAGE_BODY)
		return false;
	for (size_t i = 0; i < msg->nrcpts; i++) {
		if (msg->rcpts[i].code / 100 == 2)
			return false;
	}
	return true;
}

/*
 * attempt_broke_connection - a failure that every further message of the
 * batch would meet again: connect, TLS, AUTH, greeting, missing login
 */
static bool
attempt_broke_connection(const struct deliver_attempt *a)
{
	if (a->not_authenticated)
		return true;
	return a->rc != CURLE_OK && !a->read_error &&
	    a->stage == DELIVER_STAGE_CONNECT;
}

/* message_deliver - one message over the session, retried once if stale */
static void
message_deliver(struct deliver_session *s, struct delivery_msg *msg)
{
	const char		**list;
	int64_t			 start = now_ms();
	size_t			*map, nmap;

	if (s->hold) {
		message_fail(msg, DELIVERY_TEMPFAIL, s->hold_reason);
		return;
	}
	if (!address_ok(msg->mail_from, true)) {
		message_fail(msg, DELIVERY_PERMFAIL, "invalid sender address");
		return;
	}
	map = xcalloc(msg->nrcpts, sizeof(*map));
	list = xcalloc(msg->nrcpts, sizeof(*list));
	memset(&s->att, 0, sizeof(s->att));
	nmap = rcpt_prepare(msg, list, map);
	if (nmap > 0) {
		attempt_run(s, msg, list, map, nmap);
		if (attempt_retryable(s, msg)) {
			log_debug("upstream %s: %s: reused connection failed "
			    "(%s), trying a new one", s->peer,
			    msg->id != NULL ? msg->id : "-", s->att.reason);
			rcpt_unsent(msg, map, nmap);
			attempt_run(s, msg, list, map, nmap);
		}
		if (attempt_token_refused(s)) {
			log_info("upstream %s: [%s]: %s; fetching a new token",
			    s->peer, s->acct->name, s->att.reason);
			if (session_renew_token(s) == 0) {
				rcpt_unsent(msg, map, nmap);
				attempt_run(s, msg, list, map, nmap);
			}
		}
	}
	deliver_classify(msg, &s->att);
	if (attempt_broke_connection(&s->att)) {
		s->hold = true;
		strlcpy_s(s->hold_reason, s->att.reason,
		    sizeof(s->hold_reason));
	}
	/* QUIT at the end must not reach into this message's recipients */
	deliver_dialogue_begin(&s->dlg, NULL, NULL, 0, &s->att);
	free(list);
	free(map);
	msg->elapsed_ms = (long)(now_ms() - start);
}

/* deliver_send - one message over the session's connection */
void
deliver_send(struct deliver_session *s, struct delivery_msg *msg)
{
	message_reset(msg);
	message_deliver(s, msg);
}

/* deliver_reusable - may more messages follow: no connection-level failure */
bool
deliver_reusable(const struct deliver_session *s)
{
	return !s->hold;
}

/* deliver_fail - the outcome of a message that no session could take */
void
deliver_fail(struct delivery_msg *msg, const char *reason)
{
	message_reset(msg);
	message_fail(msg, DELIVERY_TEMPFAIL, reason);
}
