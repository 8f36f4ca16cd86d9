/*
 * data - the DATA phase: decode client bytes, add missing Date: and
 * Message-ID:, write the spool file (see data.h).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "data.h"
#include "util.h"

enum decode_state {
	DS_BOL,		/* at the start of a line */
	DS_TEXT,	/* inside a line */
	DS_CR,		/* saw CR inside a line */
	DS_DOT,		/* saw '.' at the start of a line */
	DS_DOT_CR	/* saw ".<CR>" at the start of a line */
};

struct message_writer {
	int			 fd;
	const struct data_params *params;
	struct data_result	*result;
	bool			 in_headers;
	char			*head;		/* header block so far */
	size_t			 head_len, head_cap, line_start;
	bool			 has_date, has_message_id;
	char			 out[DATA_WRITE_BUF];
	size_t			 out_len;
};

static void	writer_put(struct message_writer *, const char *, size_t);
static void	writer_raw(struct message_writer *, const char *, size_t);
static void	writer_flush(struct message_writer *);
static void	writer_end_headers(struct message_writer *, size_t);
static void	writer_header_line(struct message_writer *);

/* data_decoder_init - a decoder at the start of the content */
void
data_decoder_init(struct data_decoder *d)
{
	d->state = DS_BOL;
	d->crlf_bol = true;
}

/* text_run - how many bytes from p on are neither CR nor LF */
static size_t
text_run(const char *p, size_t n)
{
	const char	*lf = memchr(p, '\n', n);
	size_t		 limit = lf != NULL ? (size_t)(lf - p) : n;
	const char	*cr = memchr(p, '\r', limit);

	return cr != NULL ? (size_t)(cr - p) : limit;
}

/* data_decode - decode input bytes; see data.h for the rules */
size_t
data_decode(struct data_decoder *d, const char *in, size_t n, char *out,
    size_t *outlen, bool *done)
{
	size_t	i = 0, o = 0;

	*done = false;
	while (i < n) {
		char	c = in[i];

		switch (d->state) {
		case DS_BOL:
			if (c == '.') {
				d->state = DS_DOT;
				i++;
				continue;
			}
			d->state = DS_TEXT;
			continue;		/* same byte as text */
		case DS_DOT:
			if (c == '\r') {
				d->state = DS_DOT_CR;
				i++;
				continue;
			}
			if (c == '\n') {	/* ".<LF>": not an end */
				out[o++] = '.';
				d->state = DS_TEXT;
				continue;
			}
			d->state = DS_TEXT;	/* stuffed dot: drop it */
			continue;
		case DS_DOT_CR:
			if (c == '\n' && d->crlf_bol) {
				i++;
				*done = true;
				d->state = DS_BOL;
				d->crlf_bol = true;
				*outlen = o;
				return i;
			}
			out[o++] = '.';
			out[o++] = '\r';
			out[o++] = '\n';
			d->state = DS_BOL;
			d->crlf_bol = c == '\n';
			if (c == '\n')
				i++;
			continue;		/* a bare CR: c starts a line */
		case DS_TEXT: {
			/* the common case, the rest of a line, copied at once */
			size_t	run = text_run(in + i, n - i);

			if (run > 0) {
				memcpy(out + o, in + i, run);
				o += run;
				i += run;
				continue;
			}
			i++;
			if (c == '\r') {
				d->state = DS_CR;
			} else if (c == '\n') {
				out[o++] = '\r';
				out[o++] = '\n';
				d->state = DS_BOL;
				d->crlf_bol = false;
			}
			continue;
		}
		case DS_CR:
			out[o++] = '\r';
			out[o++] = '\n';
			d->state = DS_BOL;
			if (c == '\n') {
				i++;
				d->crlf_bol = true;
			} else
				d->crlf_bol = false;	/* bare CR */
			continue;
		}
	}
	*outlen = o;
	return i;
}

/* is_header_line - "Name:" with printable name, or a folded continuation */
static bool
is_header_line(const char *p, size_t len, bool *continuation)
{
	*continuation = len > 0 && (p[0] == ' ' || p[0] == '\t');
	if (*continuation)
		return true;
	for (size_t i = 0; i < len; i++) {
		unsigned char	c = (unsigned char)p[i];

		if (c == ':')
			return i > 0;
		if (c < 33 || c > 126)
			return false;
	}
	return false;
}

/* header_is - does a header line start with this field name */
static bool
header_is(const char *line, size_t len, const char *name)
{
	size_t	n = strlen(name);

	return len > n && strncasecmp(line, name, n) == 0 && line[n] == ':';
}

/*
 * writer_header_line - inspect the header line just completed.  A line
 * that is not a header field ends the block: an empty line as such; body
 * text (a printer or script sending no header at all) gets the empty line
 * it lacks written in front of it, so it can never be read as a field of
 * ours; so does a continuation line first thing, which would otherwise
 * fold into our own Received:, Date: or Message-ID:.
 */
static void
writer_header_line(struct message_writer *w)
{
	const char	*line = w->head + w->line_start;
	size_t		 len = w->head_len - w->line_start - 2;	/* no CRLF */
	bool		 cont;

	if (len == 0) {
		writer_end_headers(w, w->head_len);
		return;
	}
	if (!is_header_line(line, len, &cont) || (cont && w->line_start == 0)) {
		writer_end_headers(w, w->line_start);
		return;
	}
	if (header_is(line, len, "Date"))
		w->has_date = true;
	else if (header_is(line, len, "Message-ID"))
		w->has_message_id = true;
	w->line_start = w->head_len;
}

/*
 * writer_end_headers - write the added headers, then the held header
 * block: its first fields bytes are header fields, anything after them
 * is body text, which an empty line separates from the fields.
 */
static void
writer_end_headers(struct message_writer *w, size_t fields)
{
	char	*add;

	w->in_headers = false;
	if (!w->has_date && w->params->date != NULL) {
		add = xasprintf("Date: %s\r\n", w->params->date);
		writer_raw(w, add, strlen(add));
		free(add);
		w->result->added_date = true;
	}
	if (!w->has_message_id && w->params->message_id != NULL) {
		add = xasprintf("Message-ID: %s\r\n", w->params->message_id);
		writer_raw(w, add, strlen(add));
		free(add);
		w->result->added_message_id = true;
	}
	writer_raw(w, w->head, fields);
	if (fields < w->head_len) {
		writer_raw(w, "\r\n", 2);
		writer_raw(w, w->head + fields, w->head_len - fields);
	}
	free(w->head);
	w->head = NULL;
	w->head_len = w->head_cap = 0;
}

/* writer_put - content bytes: held while in the header block, else written */
static void
writer_put(struct message_writer *w, const char *p, size_t n)
{
	if (!w->in_headers) {
		writer_raw(w, p, n);
		return;
	}
	for (size_t i = 0; i < n && w->in_headers; i++) {
		if (w->head_len == w->head_cap) {
			w->head_cap = w->head_cap ? w->head_cap * 2 : 4096;
			w->head = xrealloc(w->head, w->head_cap);
		}
		w->head[w->head_len++] = p[i];
		if (p[i] == '\n') {
			writer_header_line(w);
		} else if (w->head_len >= DATA_HEADER_BLOCK_MAX) {
			/* Absurd header block: stop holding it in memory. */
			writer_end_headers(w, w->head_len);
		}
		if (!w->in_headers && i + 1 < n)
			writer_raw(w, p + i + 1, n - i - 1);
	}
}

/* writer_raw - bytes to the file through the write buffer */
static void
writer_raw(struct message_writer *w, const char *p, size_t n)
{
	if (n == 0 || w->result->outcome != DATA_OK)
		return;
	if (n >= sizeof(w->out)) {
		writer_flush(w);
		if (w->result->outcome == DATA_OK &&
		    write_all(w->fd, p, n) < 0) {
			w->result->outcome = DATA_DISK_ERROR;
			w->result->write_errno = errno;
		}
		return;
	}
	if (w->out_len + n > sizeof(w->out))
		writer_flush(w);
	memcpy(w->out + w->out_len, p, n);
	w->out_len += n;
}

/* writer_flush - write out the buffer; a failure is remembered, not retried */
static void
writer_flush(struct message_writer *w)
{
	if (w->out_len == 0 || w->result->outcome != DATA_OK) {
		w->out_len = 0;
		return;
	}
	if (write_all(w->fd, w->out, w->out_len) < 0) {
		w->result->outcome = DATA_DISK_ERROR;
		w->result->write_errno = errno;
	}
	w->out_len = 0;
}

/* data_receive - read the content to its end marker into the spool file */
void
data_receive(struct netio *io, int fd, const struct data_params *params,
    struct data_result *result)
{
	struct message_writer	*w;
	struct data_decoder	 dec;
	char			*decoded;
	bool			 done = false;

	memset(result, 0, sizeof(*result));
	result->outcome = DATA_OK;
	w = xcalloc(1, sizeof(*w));
	w->fd = fd;
	w->params = params;
	w->result = result;
	w->in_headers = true;
	decoded = xmalloc(2 * NETIO_RBUF + 8);
	data_decoder_init(&dec);
	writer_raw(w, params->prefix, strlen(params->prefix));
	while (!done) {
		const char	*in;
		size_t		 avail, used, outlen;
		int		 rc;

		if ((rc = netio_peek(io, &in, &avail)) != NETIO_OK) {
			result->outcome = DATA_NETWORK;
			result->netio_error = rc;
			break;
		}
		used = data_decode(&dec, in, avail, decoded, &outlen, &done);
		netio_consume(io, used);
		result->size += (long long)outlen;
		if (params->max_size > 0 && result->size > params->max_size &&
		    result->outcome == DATA_OK)
			result->outcome = DATA_TOO_BIG;
		writer_put(w, decoded, outlen);
	}
	if (w->in_headers && result->outcome == DATA_OK)
		writer_end_headers(w, w->head_len);
	writer_flush(w);
	free(w->head);
	free(w);
	free(decoded);
}
