/*
 * headers - Reply-To:/From: rewriting in the header block (see headers.h).
 */
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "headers.h"
#include "util.h"

struct out_buf {
	char	*p;
	size_t	 len, cap;
};

/* out_add - append bytes */
static void
out_add(struct out_buf *o, const char *p, size_t n)
{
	if (o->len + n + 1 > o->cap) {
		o->cap = (o->len + n + 1) * 2;
		o->p = xrealloc(o->p, o->cap);
	}
	memcpy(o->p + o->len, p, n);
	o->len += n;
	o->p[o->len] = '\0';
}

/* out_field - append "Name: value" and CRLF */
static void
out_field(struct out_buf *o, const char *name, const char *value)
{
	out_add(o, name, strlen(name));
	out_add(o, ": ", 2);
	out_add(o, value, strlen(value));
	out_add(o, "\r\n", 2);
}

/* line_end - length of the line at p, its line end included */
static size_t
line_end(const char *p, size_t len)
{
	const char	*lf = memchr(p, '\n', len);

	return lf != NULL ? (size_t)(lf - p) + 1 : len;
}

/* field_is - does the line start the named field */
static bool
field_is(const char *line, size_t len, const char *name)
{
	size_t	n = strlen(name);

	return len > n && strncasecmp(line, name, n) == 0 && line[n] == ':';
}

/* headers_block_length - the header block including its empty line */
size_t
headers_block_length(const char *buf, size_t len)
{
	size_t	pos = 0;

	while (pos < len) {
		size_t	n = line_end(buf + pos, len - pos);

		pos += n;
		if (n <= 2 && (buf[pos - 1] == '\n'))
			return pos;	/* "\r\n" or "\n": the empty line */
	}
	return len;
}

/* headers_rewrite - replace or add Reply-To: and From: */
char *
headers_rewrite(const char *block, size_t len, const char *replyto,
    const char *forcefrom, size_t *outlen)
{
	struct out_buf	 o = { 0 };
	bool		 skipping = false, put_replyto = false,
			 put_from = false;
	size_t		 pos = 0, end = len;

	/* The empty line that ends the block comes last, after additions. */
	if (len >= 2 && block[len - 2] == '\r' && block[len - 1] == '\n' &&
	    (len == 2 || block[len - 3] == '\n'))
		end = len - 2;
	while (pos < end) {
		const char	*line = block + pos;
		size_t		 n = line_end(line, end - pos);

		pos += n;
		if (skipping && (line[0] == ' ' || line[0] == '\t'))
			continue;	/* folded part of a replaced field */
		skipping = false;
		if (replyto != NULL && field_is(line, n, "Reply-To")) {
			if (!put_replyto)
				out_field(&o, "Reply-To", replyto);
			put_replyto = skipping = true;
			continue;
		}
		if (forcefrom != NULL && field_is(line, n, "From")) {
			if (!put_from)
				out_field(&o, "From", forcefrom);
			put_from = skipping = true;
			continue;
		}
		out_add(&o, line, n);
	}
	if (replyto != NULL && !put_replyto)
		out_field(&o, "Reply-To", replyto);
	if (forcefrom != NULL && !put_from)
		out_field(&o, "From", forcefrom);
	out_add(&o, block + end, len - end);
	if (o.p == NULL)
		out_add(&o, "", 0);
	*outlen = o.len;
	return o.p;
}
