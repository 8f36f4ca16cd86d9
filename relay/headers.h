/*
 * headers - Reply-To:/From: rewriting inside a message's header block, for
 * the per-account replyto= and forcefrom= keys.  Pure functions over
 * memory; the body is never looked at or touched.
 *
 *   headers_block_length(buf, len)
 *        length of the header block at the start of buf, including the
 *        empty line that ends it; len if buf holds no empty line (a message
 *        that is all header)
 *   headers_rewrite(block, len, replyto, forcefrom, &outlen)
 *        a new header block in which every Reply-To: field (with its folded
 *        continuation lines) is replaced by one "Reply-To: <replyto>" and
 *        every From: field by one "From: <forcefrom>"; a field that was
 *        missing is added at the end of the block, before the empty line.
 *        NULL values leave that field alone.  Returns a malloc'd block.
 *        CRLF line ends are assumed (the spool holds nothing else).
 */
#ifndef SMTPPROXY_HEADERS_H
#define SMTPPROXY_HEADERS_H

#include <stddef.h>

#define HEADERS_BLOCK_MAX	(1024 * 1024)	/* header bytes read for rewriting */

size_t	 headers_block_length(const char *, size_t);
char	*headers_rewrite(const char *, size_t, const char *, const char *,
	    size_t *);

#endif
