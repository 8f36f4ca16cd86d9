/*
 * session - the SMTP server side of one client connection: a state machine
 * over a netio, so that it runs the same over a socket, TLS or a fuzzer's
 * memory buffer.
 *
 *   smtp_session_run(io, cfg, spool, tls_ctx, client_ip)
 *        greet, serve commands until QUIT, end of input, timeout or too many
 *        errors; every accepted message is committed to the spool (fsynced)
 *        before its 250, and the relay is woken.  STARTTLS is offered when
 *        tls_ctx is given, AUTH PLAIN/LOGIN when cfg->auth is not off.
 *        Returns the number of messages accepted.
 *
 * States: CONNECTED -> (HELO/EHLO) GREETED -> (MAIL) MAIL -> (RCPT) RCPT
 * -> (DATA) back to GREETED.  RSET returns to GREETED (or CONNECTED).
 * Replies are built in one place and all carry an enhanced status code.
 */
#ifndef SMTPPROXY_SESSION_H
#define SMTPPROXY_SESSION_H

#include <openssl/ssl.h>

#include "config.h"
#include "netio.h"
#include "spool.h"

#define SMTP_MAX_ERRORS		20	/* bad commands before 421 */
#define SMTP_MAX_AUTH_FAILURES	5	/* failed logins before 421 */

int	smtp_session_run(struct netio *, const struct config *, struct spool *,
	    SSL_CTX *, const char *);

#endif
