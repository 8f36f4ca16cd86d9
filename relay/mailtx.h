/*
 * mailtx - one SMTP mail transaction over a session that is already set
 * up (greeting, EHLO, TLS and login are done elsewhere): MAIL FROM, one
 * RCPT TO per recipient and DATA, then the message, dot-stuffed (RFC 5321
 * 4.5.2) and ended with <CRLF>.<CRLF>, then its reply.
 *
 * When the server offers PIPELINING (RFC 2920), MAIL, every RCPT and DATA
 * go out in one write and their replies are read afterwards: one round
 * trip instead of two and more per message.  Without it, one command at
 * a time.  Bytes go through the caller's callbacks, so this file has no
 * sockets and no libcurl, and its unit tests use a scripted server.
 *
 *   mailtx_run(tx, io)     the transaction of tx.  Every command and every
 *                          reply line is reported through io->sent and
 *                          io->got in dialogue order: a command just
 *                          before the lines of its reply, the commands
 *                          written but never answered at the end.  The
 *                          message itself is not reported.
 *   mailtx_quit(io)        QUIT and its reply, reported the same way
 *
 * Results:
 *   MAILTX_DONE      the message went out and the server gave its reply
 *                    to it (whatever that reply says)
 *   MAILTX_REFUSED   a reply ended the transaction before the message:
 *                    MAIL refused, no recipient accepted, or DATA refused.
 *                    The session was reset with RSET.
 *   MAILTX_IO        a write or read failed; tx->err is the errno of the
 *                    callback, 0 when the server closed the connection,
 *                    EPROTO for a line that is no SMTP reply
 *   MAILTX_BODY      the message could not be read (tx->err from
 *                    io->body).  Its end was never sent, so the server
 *                    delivers nothing.
 *   tx->clean            the session can carry another transaction
 *   tx->body_complete    every byte of the message and its end went out
 */
#ifndef SMTPPROXY_MAILTX_H
#define SMTPPROXY_MAILTX_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define MAILTX_LINE_MAX		1024	/* a reply line kept; the rest is read */
#define MAILTX_READ_MAX		4096	/* bytes asked of io->read at once */
#define MAILTX_BODY_CHUNK	16384	/* message bytes asked of io->body */

enum mailtx_result {
	MAILTX_DONE = 0,
	MAILTX_REFUSED,
	MAILTX_IO,
	MAILTX_BODY
};

struct mailtx_io {
	void	*arg;
	/* all len bytes: 0, or -1 with errno */
	int	(*write)(void *, const char *, size_t);
	/* some bytes: > 0, 0 when the server closed, -1 with errno */
	ssize_t	(*read)(void *, char *, size_t);
	/* the message: > 0 bytes, 0 at its end, -1 with errno */
	ssize_t	(*body)(void *, char *, size_t);
	/* a command went out, a reply line came in (CRLF included) */
	void	(*sent)(void *, const char *, size_t);
	void	(*got)(void *, const char *, size_t);
};

/* The server's reply lines, as they arrive. */
struct mailtx_reader {
	char	 buf[MAILTX_READ_MAX];
	size_t	 len, pos;
};

struct mailtx {
	/* the envelope, set by the caller */
	const char		*from;		/* "" is MAIL FROM:<> */
	const char *const	*rcpts;
	size_t			 nrcpts;
	long long		 size;		/* SIZE=, when >= 0 */
	bool			 pipelining;	/* the server offers it */

	/* the outcome */
	int			 err;
	bool			 clean;
	bool			 body_complete;

	struct mailtx_reader	 in;
};

enum mailtx_result mailtx_run(struct mailtx *, const struct mailtx_io *);
void	mailtx_quit(const struct mailtx_io *);

#endif
