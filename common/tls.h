/*
 * tls - the OpenSSL side of the listener's STARTTLS: the server context
 * and a TLS transport for netio.  This module is the only one that talks
 * to OpenSSL for the listener; it owns the SSL_CTX it creates (the caller
 * frees it with SSL_CTX_free) and the SSL * it stores in io->ctx.
 *
 *   tls_server_context(cert, key, err, errlen)
 *        a server context: TLS 1.2 or later, no compression, no
 *        renegotiation, server cipher preference, the PEM chain in cert
 *        and the key in key (checked to match); NULL and a message naming
 *        the file and OpenSSL's reason in err on failure.  An encrypted
 *        key is refused, never prompted for.
 *   tls_netio_start(io, ctx)
 *        flush output still buffered (the 220 reply) in the clear, DISCARD
 *        ALL BUFFERED INPUT, make io->fd non-blocking and run the server
 *        handshake within io->timeout_ms for the whole handshake; then
 *        io reads and writes through TLS.  Discarding is what defeats
 *        STARTTLS command injection: commands a client (or a man in the
 *        middle) pipelined in the clear after STARTTLS are never taken as
 *        if they had come through TLS.  0, or -1: the connection is then
 *        unusable and is to be closed; tls_netio_error() says why.
 *   tls_netio_end(io)
 *        send close_notify if the socket takes it at once (never waits)
 *        and free the TLS state; the caller flushes first and closes the
 *        connection after.  io then fails all I/O with NETIO_ERROR and
 *        the socket stays non-blocking.  Harmless on an io without TLS.
 *   tls_netio_version(io), tls_netio_cipher(io)
 *        "TLSv1.3" and the cipher name, for the Received: line and logs;
 *        NULL when io is not running TLS.
 *   tls_netio_error()
 *        why the last TLS handshake, read or write of this process
 *        failed ("timed out", "unsupported protocol", ...), for the
 *        caller's log line; this module logs nothing itself.
 *
 * Reads and writes keep netio's socket conventions: each call completes
 * within io->timeout_ms (negative: no limit) or fails with NETIO_TIMEOUT;
 * a close_notify or a plain end of stream from the peer is end of
 * stream; any other TLS or socket failure is NETIO_ERROR.  OpenSSL writes
 * to the socket with write(2): the process must ignore SIGPIPE.
 */
#ifndef SMTPPROXY_TLS_H
#define SMTPPROXY_TLS_H

#include <stddef.h>

#include <openssl/ssl.h>

#include "netio.h"

SSL_CTX		*tls_server_context(const char *, const char *, char *,
		    size_t);
int		 tls_netio_start(struct netio *, SSL_CTX *);
void		 tls_netio_end(struct netio *);
const char	*tls_netio_version(const struct netio *);
const char	*tls_netio_cipher(const struct netio *);
const char	*tls_netio_error(void);

#endif
