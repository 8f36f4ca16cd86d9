/*
 * deliver - upstream SMTP sessions for the messages of one account.  The
 * only module that uses libcurl's SMTP client; callers see just this
 * interface (a message in, an outcome per message and recipient out), so
 * retry policy and its tests never depend on libcurl.  libcurl sets the
 * session up (connect, greeting, EHLO, STARTTLS or implicit TLS with its
 * checks, AUTH); each message then is a transaction of mailtx.h over that
 * connection, pipelined when the server offers PIPELINING.
 *
 *   deliver_global_init()   curl_global_init, once, before any fork
 *   deliver_global_cleanup()
 *   deliver_open(cfg, acct, err, errlen)
 *        A session for one account, or NULL with the reason in err (no
 *        libcurl support, tlscafile unreadable, no OAuth token).  It
 *        connects on the first message: smtp:// for security none/tls
 *        (STARTTLS required for tls, never a fall-back to plain), smtps://
 *        for ssl.  EHLO name: acct->localhostname, else cfg->hostname.
 *        Certificates are verified (host name or IP, SNI) against the
 *        system store plus acct->tlscafile unless acct->tlsverify is false.
 *        With smtpusername set, a session that did not log in never
 *        transmits a message: the attempt fails as temporary.
 *        With smtpauth=xoauth2 the login is AUTH XOAUTH2 as smtpusername
 *        with a token from oauth_access_token().  A token the server
 *        refuses (the 334 error challenge, or a 5xx to AUTH) goes to
 *        oauth_token_rejected(), a new one is fetched once and the message
 *        tried once more on a new connection; refused although just
 *        obtained, it is a configuration problem: TEMPFAIL, logged as such.
 *   deliver_send(session, msg)
 *        One message over the session's connection (one TLS handshake and
 *        one AUTH for all of them; a connection idle for 30 s or that the
 *        server has closed is replaced first, and one that fails before
 *        anything was accepted is replaced once).  Fills
 *        status/code/reply of every recipient and the message fields
 *        below.  Every network wait is bounded by cfg->relaytimeout.
 *   deliver_reusable(session)
 *        False after a connection-level failure (connect, TLS, greeting,
 *        AUTH, no login): later messages would fail the same way, so
 *        deliver_send fails them at once with the same reason.
 *   deliver_close(session)  QUIT if connected; NULL is fine
 *   deliver_fail(msg, reason)
 *        The outcome of a message no session could take: TEMPFAIL.
 *
 * Classification (RFC 5321 reply classes):
 *   recipient accepted and final reply 2xx        -> DELIVERY_DELIVERED
 *   4xx anywhere, connection/TLS/AUTH/timeout      -> DELIVERY_TEMPFAIL
 *   5xx for that recipient, its MAIL or its DATA   -> DELIVERY_PERMFAIL
 *   body sent but no final reply                   -> TEMPFAIL, possible_duplicate
 */
#ifndef SMTPPROXY_DELIVER_H
#define SMTPPROXY_DELIVER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "config.h"

#define DELIVERY_REPLY_MAX	512

enum delivery_status {
	DELIVERY_PENDING = 0,		/* not tried (yet) */
	DELIVERY_DELIVERED,
	DELIVERY_TEMPFAIL,
	DELIVERY_PERMFAIL
};

struct delivery_rcpt {
	const char		*address;
	enum delivery_status	 status;
	int			 code;		/* SMTP reply code, 0 if none */
	char			 reply[DELIVERY_REPLY_MAX];	/* upstream's reply or our reason */
};

struct delivery_msg {
	const char		*id;		/* queue ID, for logs */
	const char		*mail_from;	/* envelope sender upstream, "" = <> */
	struct delivery_rcpt	*rcpts;
	size_t			 nrcpts;

	/* What goes on the wire: prefix, then length bytes of fd from offset. */
	const char		*prefix;	/* rewritten header lines, or NULL */
	size_t			 prefix_len;
	int			 fd;
	off_t			 offset;
	off_t			 length;

	/* Outcome for the message as a whole. */
	enum delivery_status	 status;	/* worst still owed: TEMP > PERM > DELIVERED */
	bool			 possible_duplicate;
	char			 error[DELIVERY_REPLY_MAX];	/* summary for logs/failed reason */
	long			 elapsed_ms;
};

struct deliver_session;

void	deliver_global_init(void);
void	deliver_global_cleanup(void);
struct deliver_session *deliver_open(const struct config *,
	    const struct account *, char *, size_t);
void	deliver_send(struct deliver_session *, struct delivery_msg *);
bool	deliver_reusable(const struct deliver_session *);
void	deliver_close(struct deliver_session *);
void	deliver_fail(struct delivery_msg *, const char *);

/*
 * Internals, declared here for the unit tests (none of it needs curl.h):
 *
 *   deliver_parse_reply(line, len, &code, &last, &text, &textlen)
 *        one reply line "DDD text", "DDD-text" or "DDD": 0, or -1 if the
 *        line is not a reply line.  last: the reply's final line.
 *   deliver_dialogue_begin/out/in
 *        follow the session as libcurl and mailtx report it (each command
 *        sent, each reply line received): the stage reached, the reply to
 *        MAIL, to each RCPT (the k-th RCPT sent is rcpt_map[k]), to DATA
 *        and to the message, whether this connection logged in (a 235 to
 *        AUTH since its greeting and EHLO) and whether its last EHLO
 *        offered PIPELINING and SIZE.  _out also gives the command as it
 *        may be logged: AUTH payloads become "<redacted>".
 *   deliver_classify(msg, attempt)
 *        status, code and reply of every recipient still PENDING, then the
 *        message's status, possible_duplicate and error.
 *   deliver_source_init(src, msg), deliver_source_read(src, buf, size)
 *        the next bytes on the wire: prefix, then length bytes of fd from
 *        offset (pread); 0 at the end, -1 with errno (ENODATA: the file
 *        ends early).  deliver_source_done(src): every byte handed out.
 */

/* How far an attempt got: each stage means its command was sent. */
enum deliver_stage {
	DELIVER_STAGE_CONNECT = 0,	/* greeting, EHLO, STARTTLS, AUTH */
	DELIVER_STAGE_MAIL,
	DELIVER_STAGE_RCPT,
	DELIVER_STAGE_DATA,
	DELIVER_STAGE_BODY,		/* 354 received, message under way */
	DELIVER_STAGE_DONE		/* reply to the message received */
};

/* The command whose reply comes next. */
enum deliver_cmd {
	DELIVER_CMD_NONE = 0,		/* nothing sent yet: the greeting */
	DELIVER_CMD_EHLO,
	DELIVER_CMD_STARTTLS,
	DELIVER_CMD_AUTH,		/* AUTH and its continuation lines */
	DELIVER_CMD_MAIL,
	DELIVER_CMD_RCPT,
	DELIVER_CMD_DATA,
	DELIVER_CMD_BODY,		/* the message, after 354 */
	DELIVER_CMD_QUIT,
	DELIVER_CMD_OTHER
};

/* A reply: its code and its first line, "550 5.1.1 <x@y>: unknown". */
struct deliver_reply {
	int	 code;				/* 0: none */
	char	 text[DELIVERY_REPLY_MAX];
};

/*
 * What one attempt of one message saw.  rc is a CURLcode: libcurl's for
 * the session set-up, and for the transaction the code libcurl gives the
 * same failure (CURLE_SEND_ERROR for a refusal before the message,
 * CURLE_WEIRD_SERVER_REPLY for a refused message, CURLE_OPERATION_TIMEDOUT,
 * CURLE_RECV_ERROR for a lost connection).
 */
struct deliver_attempt {
	int			 rc;		/* CURLcode */
	enum deliver_stage	 stage;
	bool			 auth_sent;
	bool			 token_rejected; /* XOAUTH2 error challenge */
	bool			 body_complete;	/* all of it and its end sent */
	bool			 not_authenticated; /* aborted: no login */
	bool			 read_error;	/* aborted: spool file unread */
	struct deliver_reply	 conn;		/* last reply before MAIL */
	struct deliver_reply	 mail;
	struct deliver_reply	 data;
	struct deliver_reply	 final;		/* reply to the message */
	/* why, for recipients without a reply of their own */
	char			 reason[DELIVERY_REPLY_MAX];
};

/* The session as seen through the debug stream and the transactions. */
struct deliver_dialogue {
	/* the connection: kept between the messages of a session */
	bool			 authenticated;
	bool			 pipelining;	/* the last EHLO offered it */
	bool			 size;		/* and SIZE */
	bool			 in_auth;	/* lines sent now are secret */
	bool			 auth_bearer;	/* that AUTH is XOAUTH2 */
	bool			 auth_answered;	/* and its token went out */
	enum deliver_cmd	 last;
	bool			 in_reply;	/* continuation lines coming */
	struct deliver_reply	 pending;	/* first line of that reply */

	/* the attempt */
	struct deliver_attempt	*attempt;
	struct delivery_msg	*msg;
	const size_t		*rcpt_map;	/* NULL: RCPT k is rcpts[k] */
	size_t			 nmap;
	size_t			 nsent;		/* RCPT commands sent */
};

/* The bytes of one message, in wire order. */
struct deliver_source {
	const char	*prefix;
	size_t		 prefix_len;
	int		 fd;
	off_t		 offset;
	off_t		 length;
	size_t		 prefix_done;
	off_t		 file_done;
};

int	deliver_parse_reply(const char *, size_t, int *, bool *,
	    const char **, size_t *);
void	deliver_dialogue_begin(struct deliver_dialogue *, struct delivery_msg *,
	    const size_t *, size_t, struct deliver_attempt *);
void	deliver_dialogue_out(struct deliver_dialogue *, const char *, size_t,
	    char *, size_t);
void	deliver_dialogue_in(struct deliver_dialogue *, const char *, size_t);
void	deliver_classify(struct delivery_msg *, const struct deliver_attempt *);
void	deliver_source_init(struct deliver_source *,
	    const struct delivery_msg *);
ssize_t	deliver_source_read(struct deliver_source *, char *, size_t);
bool	deliver_source_done(const struct deliver_source *);

#endif
