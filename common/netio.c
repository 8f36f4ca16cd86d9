/*
 * netio - bounded, buffered line I/O (see netio.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "netio.h"
#include "util.h"

static ssize_t	socket_recv(struct netio *, void *, size_t);
static ssize_t	socket_send(struct netio *, const void *, size_t);
static int	wait_fd(struct netio *, short);
static int	netio_fill(struct netio *);

static ssize_t	memory_recv(struct netio *, void *, size_t);
static ssize_t	memory_send(struct netio *, const void *, size_t);

static const struct netio_transport socket_transport = {
	socket_recv, socket_send
};

static const struct netio_transport memory_transport = {
	memory_recv, memory_send
};

/*
 * netio_init - buffered I/O over a connected socket.  On a blocking
 * socket the read timeout is the kernel's (SO_RCVTIMEO): one recv() per
 * wait for the client instead of a poll() and a recv(), and a session
 * waits for the client after every reply.
 */
void
netio_init(struct netio *io, int fd, int timeout_ms)
{
	struct timeval	tv = { .tv_sec = timeout_ms / 1000,
	    .tv_usec = (timeout_ms % 1000) * 1000 };
	int		flags;

	memset(io, 0, offsetof(struct netio, rbuf));
	io->fd = fd;
	io->timeout_ms = timeout_ms;
	io->transport = &socket_transport;
	if (timeout_ms > 0 && (flags = fcntl(fd, F_GETFL)) != -1 &&
	    !(flags & O_NONBLOCK) &&
	    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0)
		io->kernel_timeout = true;
}

/* netio_init_memory - buffered I/O against an in-memory peer */
void
netio_init_memory(struct netio *io, struct netio_memory *mem)
{
	memset(io, 0, offsetof(struct netio, rbuf));
	io->fd = -1;
	io->transport = &memory_transport;
	io->ctx = mem;
}

/* memory_recv - the next chunk of the peer's input; 0 at its end */
static ssize_t
memory_recv(struct netio *io, void *buf, size_t len)
{
	struct netio_memory	*mem = io->ctx;
	size_t			 n = mem->inlen - mem->inpos;

	if (mem->chunk > 0 && n > mem->chunk)
		n = mem->chunk;
	if (n > len)
		n = len;
	memcpy(buf, mem->in + mem->inpos, n);
	mem->inpos += n;
	return (ssize_t)n;
}

/* memory_send - collect what we would have sent */
static ssize_t
memory_send(struct netio *io, const void *buf, size_t len)
{
	struct netio_memory	*mem = io->ctx;

	if (mem->outlen + len + 1 > mem->outcap) {
		mem->outcap = (mem->outlen + len + 1) * 2;
		mem->out = xrealloc(mem->out, mem->outcap);
	}
	memcpy(mem->out + mem->outlen, buf, len);
	mem->outlen += len;
	mem->out[mem->outlen] = '\0';
	return (ssize_t)len;
}

/* wait_fd - wait until fd is ready, bounded by the timeout */
static int
wait_fd(struct netio *io, short events)
{
	struct pollfd	pfd = { .fd = io->fd, .events = events };
	int		n;

	do {
		n = poll(&pfd, 1, io->timeout_ms);
	} while (n < 0 && errno == EINTR);
	if (n == 0)
		return NETIO_TIMEOUT;
	if (n < 0)
		return NETIO_ERROR;
	return NETIO_OK;
}

/* socket_recv - read from the socket with a deadline */
static ssize_t
socket_recv(struct netio *io, void *buf, size_t len)
{
	ssize_t	n;
	int	rc;

	for (;;) {
		if (!io->kernel_timeout && (rc = wait_fd(io, POLLIN)) != NETIO_OK)
			return rc;
		n = recv(io->fd, buf, len, 0);
		if (n >= 0)
			return n;
		if (io->kernel_timeout && (errno == EAGAIN ||
		    errno == EWOULDBLOCK))
			return NETIO_TIMEOUT;
		if (errno != EINTR && errno != EAGAIN)
			return NETIO_ERROR;
	}
}

/* socket_send - write to the socket with a deadline per chunk */
static ssize_t
socket_send(struct netio *io, const void *buf, size_t len)
{
	ssize_t	n;
	int	rc;

	for (;;) {
		n = send(io->fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return NETIO_ERROR;
		if ((rc = wait_fd(io, POLLOUT)) != NETIO_OK)
			return rc;
	}
}

/* netio_fill - read more input after compacting; flushes output first */
static int
netio_fill(struct netio *io)
{
	ssize_t	n;

	if (io->error)
		return io->error;
	if (netio_flush(io) != NETIO_OK)
		return io->error;
	if (io->rstart > 0) {
		memmove(io->rbuf, io->rbuf + io->rstart, io->rend - io->rstart);
		io->rend -= io->rstart;
		io->rstart = 0;
	}
	if (io->rend >= NETIO_RBUF)
		return NETIO_TOOLONG;
	n = io->transport->recv(io, io->rbuf + io->rend, NETIO_RBUF - io->rend);
	if (n == 0)
		return io->error = NETIO_EOF;
	if (n == NETIO_TIMEOUT)
		return NETIO_TIMEOUT;	/* not sticky: a 421 can still go out */
	if (n < 0)
		return io->error = (int)n;
	io->rend += (size_t)n;
	return NETIO_OK;
}

/* netio_read_line - next line, bounded by max, line end removed */
int
netio_read_line(struct netio *io, char **line, size_t *len, size_t max)
{
	size_t	scanned = 0;
	int	skipping = 0, rc;

	if (max > NETIO_RBUF - 1)
		max = NETIO_RBUF - 1;
	for (;;) {
		char	*start = io->rbuf + io->rstart;
		size_t	 avail = io->rend - io->rstart;
		char	*lf = memchr(start + scanned, '\n', avail - scanned);

		if (lf != NULL) {
			size_t	n = (size_t)(lf - start);

			io->rstart += n + 1;
			if (skipping)
				return NETIO_TOOLONG;
			if (n > 0 && start[n - 1] == '\r')
				n--;
			start[n] = '\0';
			*line = start;
			*len = n;
			return NETIO_OK;
		}
		if (avail > max) {
			/* Too long: drop what we have and skip to the LF. */
			skipping = 1;
			io->rstart = io->rend;
			avail = 0;
		}
		scanned = avail;
		if ((rc = netio_fill(io)) != NETIO_OK)
			return rc;
	}
}

/* netio_peek - buffered input, reading if none is buffered */
int
netio_peek(struct netio *io, const char **p, size_t *n)
{
	int	rc;

	if (io->rend == io->rstart && (rc = netio_fill(io)) != NETIO_OK)
		return rc;
	*p = io->rbuf + io->rstart;
	*n = io->rend - io->rstart;
	return NETIO_OK;
}

/* netio_consume - drop bytes returned by netio_peek */
void
netio_consume(struct netio *io, size_t n)
{
	io->rstart += n;
	if (io->rstart >= io->rend)
		io->rstart = io->rend = 0;
}

/* netio_pending - input already buffered but not yet consumed */
size_t
netio_pending(const struct netio *io)
{
	return io->rend - io->rstart;
}

/* netio_discard_input - forget buffered input */
void
netio_discard_input(struct netio *io)
{
	io->rstart = io->rend = 0;
}

/* netio_write - append bytes to the output buffer */
int
netio_write(struct netio *io, const void *buf, size_t len)
{
	const char	*p = buf;

	while (len > 0) {
		size_t	n;

		if (io->wlen == NETIO_WBUF && netio_flush(io) != NETIO_OK)
			return io->error;
		n = NETIO_WBUF - io->wlen;
		if (n > len)
			n = len;
		memcpy(io->wbuf + io->wlen, p, n);
		io->wlen += n;
		p += n;
		len -= n;
	}
	return io->error;
}

/* netio_printf - formatted append to the output buffer */
int
netio_printf(struct netio *io, const char *fmt, ...)
{
	char	buf[1024];
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (n < 0)
		return io->error = NETIO_ERROR;
	if ((size_t)n >= sizeof(buf))
		n = sizeof(buf) - 1;
	return netio_write(io, buf, (size_t)n);
}

/* netio_flush - write out everything buffered */
int
netio_flush(struct netio *io)
{
	size_t	off = 0;

	if (io->error)
		return io->error;
	while (off < io->wlen) {
		ssize_t	n = io->transport->send(io, io->wbuf + off,
		    io->wlen - off);

		if (n <= 0) {
			io->wlen = 0;
			return io->error = n < 0 ? (int)n : NETIO_ERROR;
		}
		off += (size_t)n;
	}
	io->wlen = 0;
	return NETIO_OK;
}
