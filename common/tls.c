/*
 * tls - server context and the TLS transport of netio (see tls.h).
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "netio.h"
#include "tls.h"
#include "util.h"

#define TLS_REASON_MAX	256	/* an OpenSSL reason or a system error */

static int		 no_password(char *, int, int, void *);
static const char	*ssl_reason(char *, size_t);
static void		 clear_errors(void);
static void		 set_error(const char *, ...)
			    __attribute__((format(printf, 1, 2)));
static int		 context_defaults(SSL_CTX *);
static int		 context_load(SSL_CTX *, const char *, const char *,
			    char *, size_t);
static int		 tls_active(const struct netio *);
static int64_t		 deadline_after(int);
static int		 time_left(int64_t);
static int		 wait_until(int, short, int64_t);
static int		 tls_wait(SSL *, int, int, int64_t);
static int		 tls_handshake(SSL *, int, int);
static int		 start_failed(SSL *);
static ssize_t		 tls_recv(struct netio *, void *, size_t);
static ssize_t		 tls_send(struct netio *, const void *, size_t);

static const struct netio_transport tls_transport = {
	tls_recv, tls_send
};

/* One session at a time per process: the last failure is kept here. */
static char	last_error[TLS_REASON_MAX] = "no TLS failure";

/* no_password - refuse encrypted keys instead of prompting on a tty */
static int
no_password(char *buf, int size, int rwflag, void *arg)
{
	return 0;
}

/* ssl_reason - text of the earliest queued OpenSSL error; clears the queue */
static const char *
ssl_reason(char *buf, size_t len)
{
	unsigned long	 e = ERR_peek_error();
	const char	*r;

	/* The earliest error is the cause; the later ones only wrap it. */
	if (e == 0)
		strlcpy_s(buf, "unknown error", len);
	else if (ERR_SYSTEM_ERROR(e))
		strlcpy_s(buf, strerror(ERR_GET_REASON(e)), len);
	else if ((r = ERR_reason_error_string(e)) != NULL)
		strlcpy_s(buf, r, len);
	else
		ERR_error_string_n(e, buf, len);
	ERR_clear_error();
	return buf;
}

/* clear_errors - forget old errors so SSL_get_error sees only the next call */
static void
clear_errors(void)
{
	ERR_clear_error();
	errno = 0;
}

/* set_error - remember why the last TLS operation failed */
static void
set_error(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	vsnprintf(last_error, sizeof(last_error), fmt, ap);
	va_end(ap);
}

/* tls_netio_error - why the last TLS operation of this process failed */
const char *
tls_netio_error(void)
{
	return last_error;
}

/* context_defaults - protocol floor and options every session gets */
static int
context_defaults(SSL_CTX *ctx)
{
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1)
		return -1;
	/*
	 * An end of stream without close_notify is taken as a plain end of
	 * stream: many clients hang up that way after 221, and SMTP marks
	 * the end of a message itself, so a truncation cannot pass for a
	 * complete message.
	 */
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE |
	    SSL_OP_IGNORE_UNEXPECTED_EOF);
	/*
	 * A listener child serves one session at a time and forgets its
	 * cache when it recycles: a stateful cache would only grow.  Session
	 * tickets still let clients resume.
	 */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_default_passwd_cb(ctx, no_password);
	if (SSL_CTX_set_dh_auto(ctx, 1) != 1)
		return -1;
	return 0;
}

/* context_load - certificate chain and matching key into ctx */
static int
context_load(SSL_CTX *ctx, const char *certfile, const char *keyfile,
    char *err, size_t errlen)
{
	char	why[TLS_REASON_MAX];

	if (SSL_CTX_use_certificate_chain_file(ctx, certfile) != 1) {
		snprintf(err, errlen, "certificate file %s: %s", certfile,
		    ssl_reason(why, sizeof(why)));
		return -1;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, keyfile, SSL_FILETYPE_PEM) != 1) {
		snprintf(err, errlen, "key file %s: %s", keyfile,
		    ssl_reason(why, sizeof(why)));
		return -1;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
		snprintf(err, errlen, "key file %s does not match "
		    "certificate file %s: %s", keyfile, certfile,
		    ssl_reason(why, sizeof(why)));
		return -1;
	}
	return 0;
}

/* tls_server_context - a server context for STARTTLS, or NULL and err */
SSL_CTX *
tls_server_context(const char *certfile, const char *keyfile, char *err,
    size_t errlen)
{
	SSL_CTX	*ctx;
	char	 why[TLS_REASON_MAX];

	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		snprintf(err, errlen, "cannot create a TLS context: %s",
		    ssl_reason(why, sizeof(why)));
		return NULL;
	}
	if (context_defaults(ctx) == -1) {
		snprintf(err, errlen, "cannot set TLS defaults: %s",
		    ssl_reason(why, sizeof(why)));
		SSL_CTX_free(ctx);
		return NULL;
	}
	if (context_load(ctx, certfile, keyfile, err, errlen) == -1) {
		SSL_CTX_free(ctx);
		return NULL;
	}
	return ctx;
}

/* tls_active - whether io currently runs over TLS */
static int
tls_active(const struct netio *io)
{
	return io->transport == &tls_transport && io->ctx != NULL;
}

/* deadline_after - monotonic time timeout_ms from now; -1: none */
static int64_t
deadline_after(int timeout_ms)
{
	if (timeout_ms < 0)
		return -1;
	return now_ms() + timeout_ms;
}

/* time_left - milliseconds until deadline for poll: -1 none, 0 past */
static int
time_left(int64_t deadline)
{
	int64_t	left;

	if (deadline < 0)
		return -1;
	left = deadline - now_ms();
	if (left <= 0)
		return 0;
	return left > INT_MAX ? INT_MAX : (int)left;
}

/* wait_until - wait for fd to be ready, at the latest until deadline */
static int
wait_until(int fd, short events, int64_t deadline)
{
	struct pollfd	pfd = { .fd = fd, .events = events };
	int		left, n;

	for (;;) {
		if ((left = time_left(deadline)) == 0)
			break;
		if ((n = poll(&pfd, 1, left)) > 0)
			return NETIO_OK;
		if (n == 0)
			break;
		if (errno != EINTR) {
			set_error("poll: %s", strerror(errno));
			return NETIO_ERROR;
		}
	}
	set_error("timed out");
	return NETIO_TIMEOUT;
}

/* tls_wait - after an SSL call returned ret, wait for what it needs */
static int
tls_wait(SSL *ssl, int fd, int ret, int64_t deadline)
{
	char	why[TLS_REASON_MAX];
	int	saved = errno;

	switch (SSL_get_error(ssl, ret)) {
	case SSL_ERROR_WANT_READ:
		return wait_until(fd, POLLIN, deadline);
	case SSL_ERROR_WANT_WRITE:
		return wait_until(fd, POLLOUT, deadline);
	case SSL_ERROR_ZERO_RETURN:
		set_error("connection closed by peer");
		return NETIO_EOF;
	case SSL_ERROR_SYSCALL:
		if (ERR_peek_error() != 0)
			break;
		if (saved == 0) {
			set_error("connection closed by peer");
			return NETIO_EOF;
		}
		set_error("%s", strerror(saved));
		return NETIO_ERROR;
	default:
		break;
	}
	set_error("%s", ssl_reason(why, sizeof(why)));
	return NETIO_ERROR;
}

/* tls_handshake - run the server handshake, all of it within timeout_ms */
static int
tls_handshake(SSL *ssl, int fd, int timeout_ms)
{
	int64_t	deadline = deadline_after(timeout_ms);
	int	ret, rc;

	/* One deadline for all of it: a dripping peer cannot stretch it. */
	for (;;) {
		clear_errors();
		if ((ret = SSL_do_handshake(ssl)) == 1)
			return NETIO_OK;
		if ((rc = tls_wait(ssl, fd, ret, deadline)) != NETIO_OK)
			return rc;
	}
}

/* start_failed - clean up after a failed tls_netio_start */
static int
start_failed(SSL *ssl)
{
	SSL_free(ssl);
	ERR_clear_error();
	return -1;
}

/* tls_netio_start - discard buffered input, handshake, switch io to TLS */
int
tls_netio_start(struct netio *io, SSL_CTX *ctx)
{
	char	 why[TLS_REASON_MAX];
	SSL	*ssl;

	if (tls_active(io)) {
		set_error("TLS is already active");
		return -1;
	}
	/* Whatever came in the clear after STARTTLS must never count. */
	netio_discard_input(io);
	if (netio_flush(io) != NETIO_OK) {
		set_error("cannot send the reply before the handshake");
		return -1;
	}
	if (set_nonblock(io->fd) == -1) {
		set_error("%s", strerror(errno));
		return -1;
	}
	ERR_clear_error();
	if ((ssl = SSL_new(ctx)) == NULL || SSL_set_fd(ssl, io->fd) != 1) {
		set_error("%s", ssl_reason(why, sizeof(why)));
		return start_failed(ssl);
	}
	SSL_set_accept_state(ssl);
	if (tls_handshake(ssl, io->fd, io->timeout_ms) != NETIO_OK)
		return start_failed(ssl);
	io->transport = &tls_transport;
	io->ctx = ssl;
	return 0;
}

/* tls_recv - decrypted bytes, 0 at end of stream, or a netio error */
static ssize_t
tls_recv(struct netio *io, void *buf, size_t len)
{
	SSL	*ssl = io->ctx;
	int64_t	 deadline = deadline_after(io->timeout_ms);
	size_t	 n;
	int	 ret, rc;

	if (ssl == NULL)
		return NETIO_ERROR;
	/*
	 * Read first, poll only when OpenSSL asks for more: bytes already
	 * decrypted (SSL_pending) leave nothing on the socket to wake poll.
	 */
	for (;;) {
		clear_errors();
		if ((ret = SSL_read_ex(ssl, buf, len, &n)) == 1)
			return (ssize_t)n;
		if ((rc = tls_wait(ssl, io->fd, ret, deadline)) != NETIO_OK)
			break;
	}
	if (rc == NETIO_EOF)
		return 0;
	/* A timed-out read leaves the session intact: a 421 can go out. */
	if (rc != NETIO_TIMEOUT)
		SSL_set_quiet_shutdown(ssl, 1);
	return rc;
}

/* tls_send - encrypt and send buf, all of it or a netio error */
static ssize_t
tls_send(struct netio *io, const void *buf, size_t len)
{
	SSL	*ssl = io->ctx;
	int64_t	 deadline = deadline_after(io->timeout_ms);
	size_t	 n;
	int	 ret, rc;

	if (ssl == NULL)
		return NETIO_ERROR;
	for (;;) {
		clear_errors();
		if ((ret = SSL_write_ex(ssl, buf, len, &n)) == 1)
			return (ssize_t)n;
		if ((rc = tls_wait(ssl, io->fd, ret, deadline)) != NETIO_OK)
			break;
	}
	/* A record may be half sent: no close_notify may follow it. */
	SSL_set_quiet_shutdown(ssl, 1);
	return rc == NETIO_TIMEOUT ? NETIO_TIMEOUT : NETIO_ERROR;
}

/* tls_netio_end - close_notify if it goes out at once, free the session */
void
tls_netio_end(struct netio *io)
{
	if (!tls_active(io))
		return;
	/* Non-blocking socket: SSL_shutdown sends what it can and returns. */
	ERR_clear_error();
	(void)SSL_shutdown(io->ctx);
	ERR_clear_error();
	SSL_free(io->ctx);
	io->ctx = NULL;
	/* Nothing may reach the transport again: the connection is closed. */
	io->error = NETIO_ERROR;
}

/* tls_netio_version - protocol version of the TLS session, or NULL */
const char *
tls_netio_version(const struct netio *io)
{
	if (!tls_active(io))
		return NULL;
	return SSL_get_version(io->ctx);
}

/* tls_netio_cipher - cipher name of the TLS session, or NULL */
const char *
tls_netio_cipher(const struct netio *io)
{
	if (!tls_active(io))
		return NULL;
	return SSL_CIPHER_get_name(SSL_get_current_cipher(io->ctx));
}
