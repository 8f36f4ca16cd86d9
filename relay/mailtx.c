/*
 * mailtx - one SMTP mail transaction over an established session,
 * pipelined when the server allows it (see mailtx.h).
 *
 * This file owns the order of the commands and replies of a transaction,
 * the decision to go on or stop after each reply, the dot-stuffing of the
 * message and the session reset after a refusal.  What a reply means for
 * each recipient is decided by the caller, from the lines reported.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "deliver.h"
#include "mailtx.h"
#include "util.h"

#define MAILTX_TERMINATOR	".\r\n"
/* what is kept back (< one chunk) plus one chunk stuffed, CRLF and the end */
#define MAILTX_BODY_OUT		(3 * MAILTX_BODY_CHUNK + 8)

/* The commands of one transaction, in one buffer. */
struct command_list {
	char	*buf;
	size_t	 len, cap;
	size_t	*end;		/* end[k]: where command k ends in buf */
	size_t	 n;
	size_t	 answered;	/* commands whose replies were read */
	size_t	 written;	/* commands that went out */
};

static void	commands_add(struct command_list *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static void	commands_build(struct command_list *, const struct mailtx *);
static void	commands_free(struct command_list *);
static int	command_exchange(struct mailtx *, const struct mailtx_io *,
		    struct command_list *);
static void	commands_unanswered(const struct mailtx_io *,
		    const struct command_list *);
static int	reader_line(struct mailtx_reader *, const struct mailtx_io *,
		    char *, size_t *);
static int	reply_read(struct mailtx_reader *, const struct mailtx_io *,
		    int *);
static int	simple_command(struct mailtx_reader *, const struct mailtx_io *,
		    const char *, int *);
static enum mailtx_result transaction_reset(struct mailtx *,
		    const struct mailtx_io *);
static size_t	stuff(const char *, size_t, char *, bool *);
static enum mailtx_result body_send(struct mailtx *, const struct mailtx_io *);
static enum mailtx_result io_failed(struct mailtx *,
		    const struct mailtx_io *, struct command_list *);

/* commands_add - one command line, CRLF added */
static void
commands_add(struct command_list *c, const char *fmt, ...)
{
	va_list	ap;
	int	n;

	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if (c->len + (size_t)n + 3 > c->cap) {
		c->cap = (c->len + (size_t)n + 3) * 2;
		c->buf = xrealloc(c->buf, c->cap);
	}
	va_start(ap, fmt);
	vsnprintf(c->buf + c->len, c->cap - c->len, fmt, ap);
	va_end(ap);
	c->len += (size_t)n;
	memcpy(c->buf + c->len, "\r\n", 3);
	c->len += 2;
	c->end[c->n++] = c->len;
}

/* commands_build - MAIL, one RCPT per recipient, DATA */
static void
commands_build(struct command_list *c, const struct mailtx *tx)
{
	memset(c, 0, sizeof(*c));
	c->end = xcalloc(tx->nrcpts + 2, sizeof(*c->end));
	if (tx->size >= 0)
		commands_add(c, "MAIL FROM:<%s> SIZE=%lld", tx->from,
		    tx->size);
	else
		commands_add(c, "MAIL FROM:<%s>", tx->from);
	for (size_t i = 0; i < tx->nrcpts; i++)
		commands_add(c, "RCPT TO:<%s>", tx->rcpts[i]);
	commands_add(c, "DATA");
}

/* commands_free - release the buffer and its index */
static void
commands_free(struct command_list *c)
{
	free(c->buf);
	free(c->end);
}

/* command_start - where command k begins */
static size_t
command_start(const struct command_list *c, size_t k)
{
	return k == 0 ? 0 : c->end[k - 1];
}

/*
 * command_exchange - the next command and its reply: written now unless
 * it went out with the others (pipelining), reported, its reply read
 */
static int
command_exchange(struct mailtx *tx, const struct mailtx_io *io,
    struct command_list *c)
{
	size_t	k = c->answered, from = command_start(c, k);
	int	code;

	if (c->written <= k) {
		if (io->write(io->arg, c->buf + from, c->end[k] - from) == -1) {
			tx->err = errno;
			return -1;
		}
		c->written = k + 1;
	}
	io->sent(io->arg, c->buf + from, c->end[k] - from);
	c->answered = k + 1;
	if (reply_read(&tx->in, io, &code) == -1) {
		tx->err = errno;
		return -1;
	}
	return code;
}

/* commands_unanswered - report what went out but got no reply */
static void
commands_unanswered(const struct mailtx_io *io, const struct command_list *c)
{
	for (size_t k = c->answered; k < c->written; k++) {
		size_t	from = command_start(c, k);

		io->sent(io->arg, c->buf + from, c->end[k] - from);
	}
}

/*
 * reader_line - the next line from the server into line (at most
 * MAILTX_LINE_MAX bytes kept, its CRLF included when it fits; the rest of
 * a longer line is read and dropped).  0, or -1 with errno (0 when the
 * server closed).
 */
static int
reader_line(struct mailtx_reader *r, const struct mailtx_io *io, char *line,
    size_t *len)
{
	size_t	kept = 0;
	ssize_t	n;

	for (;;) {
		while (r->pos < r->len) {
			char	ch = r->buf[r->pos++];

			if (kept < MAILTX_LINE_MAX)
				line[kept++] = ch;
			if (ch == '\n') {
				*len = kept;
				return 0;
			}
		}
		r->pos = r->len = 0;
		if ((n = io->read(io->arg, r->buf, sizeof(r->buf))) <= 0) {
			if (n == 0)
				errno = 0;
			return -1;
		}
		r->len = (size_t)n;
	}
}

/* reply_read - every line of one reply, reported; its code, or -1 */
static int
reply_read(struct mailtx_reader *r, const struct mailtx_io *io, int *code)
{
	char		 line[MAILTX_LINE_MAX];
	const char	*text;
	size_t		 len, textlen;
	bool		 last = false;

	while (!last) {
		if (reader_line(r, io, line, &len) == -1)
			return -1;
		io->got(io->arg, line, len);
		if (deliver_parse_reply(line, len, code, &last, &text,
		    &textlen) == -1) {
			errno = EPROTO;
			return -1;
		}
	}
	return 0;
}

/* simple_command - a command of its own (RSET, QUIT) and its reply */
static int
simple_command(struct mailtx_reader *r, const struct mailtx_io *io,
    const char *cmd, int *code)
{
	size_t	len = strlen(cmd);

	if (io->write(io->arg, cmd, len) == -1)
		return -1;
	io->sent(io->arg, cmd, len);
	return reply_read(r, io, code);
}

/*
 * transaction_reset - after a refusal: RSET, so the session can carry
 * the next message (the server may still hold the accepted MAIL)
 */
static enum mailtx_result
transaction_reset(struct mailtx *tx, const struct mailtx_io *io)
{
	int	code;

	tx->clean = simple_command(&tx->in, io, "RSET\r\n", &code) == 0 &&
	    code / 100 == 2;
	return MAILTX_REFUSED;
}

/* io_failed - the transaction broke off; the session is not usable */
static enum mailtx_result
io_failed(struct mailtx *tx, const struct mailtx_io *io,
    struct command_list *c)
{
	commands_unanswered(io, c);
	tx->clean = false;
	return MAILTX_IO;
}

/*
 * stuff - n message bytes dot-stuffed into out (room for 2n): a line that
 * starts with a dot gets one more.  Whole lines are copied at once.
 */
static size_t
stuff(const char *in, size_t n, char *out, bool *line_start)
{
	size_t	i = 0, o = 0;

	while (i < n) {
		const char	*lf;
		size_t		 len;

		if (*line_start && in[i] == '.')
			out[o++] = '.';
		lf = memchr(in + i, '\n', n - i);
		len = lf != NULL ? (size_t)(lf - (in + i)) + 1 : n - i;
		memcpy(out + o, in + i, len);
		o += len;
		i += len;
		*line_start = lf != NULL;
	}
	return o;
}

/*
 * body_send - the message, dot-stuffed, its last line ended, then the
 * terminator.  Output is kept back until a chunk's worth is there, so a
 * short message and its terminator are one write.
 */
static enum mailtx_result
body_send(struct mailtx *tx, const struct mailtx_io *io)
{
	char	*raw = xmalloc(MAILTX_BODY_CHUNK);
	char	*out = xmalloc(MAILTX_BODY_OUT);
	size_t	 o = 0;
	bool	 line_start = true, end = false;
	ssize_t	 n;
	enum mailtx_result rc = MAILTX_DONE;

	while (!end) {
		if ((n = io->body(io->arg, raw, MAILTX_BODY_CHUNK)) == -1) {
			/* no terminator: the server must not deliver a part */
			tx->err = errno;
			rc = MAILTX_BODY;
			break;
		}
		o += stuff(raw, (size_t)(n > 0 ? n : 0), out + o, &line_start);
		if ((end = n == 0)) {
			if (!line_start) {
				memcpy(out + o, "\r\n", 2);
				o += 2;
			}
			memcpy(out + o, MAILTX_TERMINATOR, 3);
			o += 3;
		}
		if (!end && o < MAILTX_BODY_CHUNK)
			continue;
		if (io->write(io->arg, out, o) == -1) {
			tx->err = errno;
			rc = MAILTX_IO;
			break;
		}
		o = 0;
		tx->body_complete = end;
	}
	free(raw);
	free(out);
	return rc;
}

/* mailtx_run - the whole transaction of tx over the session */
enum mailtx_result
mailtx_run(struct mailtx *tx, const struct mailtx_io *io)
{
	struct command_list	c;
	int			mail, code, data;
	size_t			accepted = 0;
	enum mailtx_result	rc;

	tx->err = 0;
	tx->clean = false;
	tx->body_complete = false;
	tx->in.len = tx->in.pos = 0;
	commands_build(&c, tx);
	if (tx->pipelining) {
		if (io->write(io->arg, c.buf, c.len) == -1) {
			tx->err = errno;
			commands_free(&c);
			return MAILTX_IO;
		}
		c.written = c.n;
	}

	if ((mail = command_exchange(tx, io, &c)) == -1)
		goto io_error;
	if (mail / 100 != 2 && !tx->pipelining) {
		/* nothing was started: the session is as it was */
		tx->clean = true;
		commands_free(&c);
		return MAILTX_REFUSED;
	}
	for (size_t i = 0; i < tx->nrcpts; i++) {
		if ((code = command_exchange(tx, io, &c)) == -1)
			goto io_error;
		if (code / 100 == 2)
			accepted++;
	}
	if (accepted == 0 && !tx->pipelining) {
		commands_free(&c);
		return transaction_reset(tx, io);
	}
	if ((data = command_exchange(tx, io, &c)) == -1)
		goto io_error;
	commands_free(&c);

	if (data != 354)
		return transaction_reset(tx, io);
	if (mail / 100 != 2 || accepted == 0) {
		/*
		 * Pipelined, DATA went out with the rest and a server took it
		 * although nobody is to receive the message: an empty one
		 * ends it (RFC 2920 3.1), then the session is reset.
		 */
		if (simple_command(&tx->in, io, MAILTX_TERMINATOR, &code) == -1) {
			tx->err = errno;
			return MAILTX_IO;
		}
		return transaction_reset(tx, io);
	}
	if ((rc = body_send(tx, io)) != MAILTX_DONE)
		return rc;
	if (reply_read(&tx->in, io, &code) == -1) {
		tx->err = errno;
		return MAILTX_IO;
	}
	tx->clean = true;
	return MAILTX_DONE;

io_error:
	rc = io_failed(tx, io, &c);
	commands_free(&c);
	return rc;
}

/* mailtx_quit - end the session politely */
void
mailtx_quit(const struct mailtx_io *io)
{
	struct mailtx_reader	r = { .len = 0, .pos = 0 };
	int			code;

	(void)simple_command(&r, io, "QUIT\r\n", &code);
}
