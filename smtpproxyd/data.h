/*
 * data - the DATA phase: from client bytes to a spool file.
 *
 * Decoding (pure, unit-tested): only <CR><LF>.<CR><LF> ends the data;
 * a leading dot is removed from every line (dot-unstuffing); a bare LF or a
 * bare CR in the content is stored as CRLF, so that no sequence a client
 * sends can end DATA early here or upstream (SMTP smuggling).
 *
 *   data_decoder_init(d)
 *   data_decode(d, in, n, out, &outlen, &done)
 *        decode up to n bytes of input into out (room for 2*n+4 bytes);
 *        returns the bytes of input used; done is set when the end marker
 *        was consumed (input after it belongs to the next command).
 *
 * Writing (message_writer): holds the header block in memory until it
 * ends, so that a missing Date: or Message-ID: can be added in front of
 * it; after that the content streams to the file through one buffer.
 *
 *   data_receive(io, fd, params, result)
 *        read the content from io until the end marker and write to fd:
 *        params->prefix (envelope and Received lines), the added headers,
 *        then the content.  Enforces params->max_size while reading (the
 *        rest of an over-size message is read and discarded).  Fills result.
 */
#ifndef SMTPPROXY_DATA_H
#define SMTPPROXY_DATA_H

#include <stdbool.h>
#include <stddef.h>

#include "netio.h"

#define DATA_HEADER_BLOCK_MAX	(256 * 1024)	/* header bytes held in memory */
#define DATA_WRITE_BUF		65536

enum data_outcome {
	DATA_OK,		/* stored (not yet committed) */
	DATA_TOO_BIG,		/* more than max_size: 552 */
	DATA_DISK_ERROR,	/* write failed: 451/452, errno in result */
	DATA_NETWORK		/* client gone or timed out: no reply possible */
};

struct data_decoder {
	int	state;
	bool	crlf_bol;	/* the current line began after a real CRLF */
};

struct data_params {
	const char	*prefix;	/* envelope + Received, CRLF lines */
	const char	*message_id;	/* "<id@host>" to add if missing */
	const char	*date;		/* RFC 5322 date to add if missing */
	long long	 max_size;	/* content bytes allowed; 0: no limit */
};

struct data_result {
	enum data_outcome	outcome;
	long long		size;		/* content bytes received */
	int			write_errno;	/* with DATA_DISK_ERROR */
	int			netio_error;	/* with DATA_NETWORK */
	bool			added_date;
	bool			added_message_id;
};

void	data_decoder_init(struct data_decoder *);
size_t	data_decode(struct data_decoder *, const char *, size_t, char *,
	    size_t *, bool *);
void	data_receive(struct netio *, int, const struct data_params *,
	    struct data_result *);

#endif
