/*
 * address - RFC 5321 paths and mailboxes: parse, validate, compare.
 *
 *   address_parse_path(in, out, size, &end)
 *        parse a path at in: "<mailbox>", "<>" (null sender), or a source
 *        route "<@a,@b:mailbox>" (route dropped, RFC 5321 4.1.1.3).  For old
 *        clients a bare "mailbox" without angle brackets is accepted too.
 *        Local parts may be dot-atoms or quoted strings; domains may be
 *        names or address literals ([192.0.2.1], [IPv6:2001:db8::1]).
 *        Writes the mailbox without brackets to out ("" for <>), sets *end
 *        to the first byte after the path.  Returns ADDRESS_OK or an error.
 *        CR, LF, NUL and other control bytes are always syntax errors.
 *        On ADDRESS_NO_DOMAIN out holds the local part and *end is set,
 *        so a caller may serve "<postmaster>" itself; on other errors out
 *        is "" and *end is in.
 *   address_check_mailbox(s)   is s a valid mailbox (config values)
 *   address_domain(mailbox)    pointer to the domain part (after the '@'
 *                              that ends the local part), or NULL
 *   address_equal(a, b)        local parts compared exactly, domains
 *                              case-insensitively
 */
#ifndef SMTPPROXY_ADDRESS_H
#define SMTPPROXY_ADDRESS_H

#include <stdbool.h>
#include <stddef.h>

#define ADDRESS_LOCAL_MAX	64	/* RFC 5321 4.5.3.1.1 */
#define ADDRESS_DOMAIN_MAX	255	/* RFC 5321 4.5.3.1.2 */
#define ADDRESS_PATH_MAX	256	/* RFC 5321 4.5.3.1.3, with <> */
#define ADDRESS_MAX		(ADDRESS_PATH_MAX + 1)	/* buffer for a mailbox */

enum address_error {
	ADDRESS_OK = 0,
	ADDRESS_SYNTAX,		/* not a path/mailbox */
	ADDRESS_TOO_LONG,	/* a part exceeds its RFC 5321 limit */
	ADDRESS_NO_DOMAIN	/* local part only ("postmaster" form) */
};

enum address_error	 address_parse_path(const char *, char *, size_t,
			    const char **);
enum address_error	 address_check_mailbox(const char *);
const char		*address_domain(const char *);
bool			 address_equal(const char *, const char *);
const char		*address_error_text(enum address_error);

#endif
