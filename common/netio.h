/*
 * netio - bounded, buffered line I/O over a socket (or, through the
 * transport hooks, over TLS or an in-memory buffer for fuzzing).
 *
 *   netio_init(io, fd, timeout_ms)  plain socket transport; every wait
 *                           for input or room to write is bounded by
 *                           timeout_ms (on a blocking socket, reads by
 *                           the kernel: SO_RCVTIMEO)
 *   netio_read_line(io, &line, &len, max)
 *        next line without its line end (LF or CRLF), NUL-terminated in
 *        the read buffer and valid until the next read.  A line longer
 *        than max is skipped up to its LF and reported as NETIO_TOOLONG.
 *        Output still buffered is flushed before blocking for input, which
 *        is what makes PIPELINING answer in order without extra writes.
 *   netio_peek(io, &p, &n)  buffered input, reading more if there is none
 *   netio_consume(io, n)    drop n bytes of buffered input
 *   netio_pending(io)       bytes of input already buffered
 *   netio_discard_input(io) forget buffered input (STARTTLS injection)
 *   netio_write/netio_printf  append to the output buffer
 *   netio_flush(io)         write out the output buffer
 *   netio_init_memory(io, mem)  transport over memory: input is served in
 *                           chunks of mem->chunk bytes, output collected
 *                           in mem->out (for tests and the fuzzer)
 *
 * Results: NETIO_OK, or NETIO_EOF / NETIO_TIMEOUT / NETIO_ERROR /
 * NETIO_TOOLONG.  Errors are sticky: once the peer is gone every call
 * fails the same way.
 */
#ifndef SMTPPROXY_NETIO_H
#define SMTPPROXY_NETIO_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#define NETIO_RBUF	16384
#define NETIO_WBUF	8192

enum netio_result {
	NETIO_OK = 0,
	NETIO_EOF = -1,
	NETIO_TIMEOUT = -2,
	NETIO_ERROR = -3,
	NETIO_TOOLONG = -4
};

struct netio;

struct netio_transport {
	/* >0 bytes, 0 end of stream, or a negative enum netio_result */
	ssize_t	(*recv)(struct netio *, void *, size_t);
	ssize_t	(*send)(struct netio *, const void *, size_t);
};

struct netio {
	int				 fd;
	int				 timeout_ms;
	bool				 kernel_timeout; /* SO_RCVTIMEO set */
	const struct netio_transport	*transport;
	void				*ctx;		/* transport state (SSL *, fuzz input) */
	int				 error;		/* sticky enum netio_result */
	size_t				 rstart, rend;
	size_t				 wlen;
	char				 rbuf[NETIO_RBUF + 1];
	char				 wbuf[NETIO_WBUF];
};

/* An in-memory peer: what it sends, and what it got back. */
struct netio_memory {
	const char	*in;
	size_t		 inlen, inpos;
	size_t		 chunk;		/* bytes per recv; 0: all at once */
	char		*out;		/* malloc'd, caller frees */
	size_t		 outlen, outcap;
};

void	netio_init(struct netio *, int, int);
void	netio_init_memory(struct netio *, struct netio_memory *);
int	netio_read_line(struct netio *, char **, size_t *, size_t);
int	netio_peek(struct netio *, const char **, size_t *);
void	netio_consume(struct netio *, size_t);
size_t	netio_pending(const struct netio *);
void	netio_discard_input(struct netio *);
int	netio_write(struct netio *, const void *, size_t);
int	netio_printf(struct netio *, const char *, ...)
	    __attribute__((format(printf, 2, 3)));
int	netio_flush(struct netio *);

#endif
