/*
 * address - RFC 5321 paths and mailboxes: parse, validate, compare (see
 * address.h).
 *
 * The grammar is RFC 5321 section 4.1.2, checked byte by byte in the
 * caller's string, without allocation.  Where this module goes beyond it:
 *  - Bytes >= 0x80 are accepted in atoms, quoted strings and domain labels
 *    when they form well-formed UTF-8 (RFC 3629: no overlong forms, no
 *    surrogates, nothing above U+10FFFF), as RFC 6531 extends the grammar.
 *    Legacy applications send such addresses without asking for SMTPUTF8,
 *    and refusing them would lose their mail; malformed sequences (the
 *    overlong NUL C0 80 among them) are refused.  Address literals stay
 *    ASCII.
 *  - A bare mailbox without angle brackets is accepted for old clients; it
 *    ends at a space or at the end of the string.
 * No production admits a control byte (below 0x20, or 0x7f), so CR, LF and
 * NUL always end in ADDRESS_SYNTAX, whatever the lengths.  Lengths are
 * checked once the syntax is known to be right.  Quoted local parts are
 * kept as they came, quotes and backslashes included, so they go upstream
 * unchanged.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>

#include "address.h"

/* RFC 5321 IPv6-address-literal tag; the text after it goes to inet_pton */
#define IPV6_TAG	"IPv6:"
#define IPV6_TAG_LEN	(sizeof(IPV6_TAG) - 1)
#define IPV6_TEXT_MAX	INET6_ADDRSTRLEN	/* with its NUL */
#define SNUM_DIGITS_MAX	3			/* Snum = 1*3DIGIT */
#define SNUM_VALUE_MAX	255
#define IPV4_SNUMS	4

/* A mailbox found in a string: [start, local_end) is the local part; when
 * local_end < end, *local_end is the '@' and the domain runs to end. */
struct mailbox_span {
	const char	*start;
	const char	*local_end;
	const char	*end;
};

typedef bool	 (*ascii_class)(unsigned char);

static bool		 is_alpha(unsigned char);
static bool		 is_digit(unsigned char);
static bool		 is_let_dig(unsigned char);
static bool		 is_ldh(unsigned char);
static bool		 is_atext(unsigned char);
static bool		 is_qtext(unsigned char);
static bool		 is_dcontent(unsigned char);
static unsigned char	 ascii_lower(unsigned char);
static bool		 has_prefix_nocase(const char *, size_t,
			    const char *);
static size_t		 utf8_len(const unsigned char *);
static size_t		 char_len(const char *, ascii_class);
static const char	*scan_dot_string(const char *);
static const char	*scan_quoted_string(const char *);
static const char	*scan_local_part(const char *);
static const char	*scan_sub_domain(const char *);
static const char	*scan_domain(const char *);
static bool		 check_ipv4(const char *, size_t);
static bool		 check_ipv6(const char *, size_t);
static bool		 check_general_literal(const char *, size_t);
static const char	*scan_address_literal(const char *);
static const char	*scan_route(const char *);
static bool		 scan_mailbox(const char *, struct mailbox_span *);
static bool		 scan_bracketed(const char *, struct mailbox_span *);
static enum address_error check_lengths(const struct mailbox_span *, size_t);

/* is_alpha - RFC 5234 ALPHA */
static bool
is_alpha(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* is_digit - RFC 5234 DIGIT */
static bool
is_digit(unsigned char c)
{
	return c >= '0' && c <= '9';
}

/* is_let_dig - RFC 5321 Let-dig */
static bool
is_let_dig(unsigned char c)
{
	return is_alpha(c) || is_digit(c);
}

/* is_ldh - a byte of an RFC 5321 Ldh-str */
static bool
is_ldh(unsigned char c)
{
	return is_let_dig(c) || c == '-';
}

/* is_atext - RFC 5322 atext, ASCII part */
static bool
is_atext(unsigned char c)
{
	return is_let_dig(c) ||
	    (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* is_qtext - RFC 5321 qtextSMTP, ASCII part */
static bool
is_qtext(unsigned char c)
{
	return c >= 32 && c <= 126 && c != '"' && c != '\\';
}

/* is_dcontent - RFC 5321 dcontent */
static bool
is_dcontent(unsigned char c)
{
	return (c >= 33 && c <= 90) || (c >= 94 && c <= 126);
}

/* ascii_lower - fold an ASCII letter, whatever the locale */
static unsigned char
ascii_lower(unsigned char c)
{
	return (c >= 'A' && c <= 'Z') ? c - 'A' + 'a' : c;
}

/* has_prefix_nocase - do the len bytes at text start with prefix, any case */
static bool
has_prefix_nocase(const char *text, size_t len, const char *prefix)
{
	size_t	 i, n = strlen(prefix);

	if (len < n)
		return false;
	for (i = 0; i < n; i++)
		if (ascii_lower((unsigned char)text[i]) !=
		    ascii_lower((unsigned char)prefix[i]))
			return false;
	return true;
}

/* utf8_len - length of the well-formed multi-byte UTF-8 sequence at p, or 0 */
static size_t
utf8_len(const unsigned char *p)
{
	unsigned char	 lo = 0x80, hi = 0xbf;
	size_t		 n, i;

	if (p[0] >= 0xc2 && p[0] <= 0xdf)
		n = 2;
	else if (p[0] >= 0xe0 && p[0] <= 0xef)
		n = 3;
	else if (p[0] >= 0xf0 && p[0] <= 0xf4)
		n = 4;
	else
		return 0;

	/* RFC 3629 section 4: the second byte excludes overlong forms,
	 * surrogates and code points above U+10FFFF. */
	if (p[0] == 0xe0)
		lo = 0xa0;
	else if (p[0] == 0xed)
		hi = 0x9f;
	else if (p[0] == 0xf0)
		lo = 0x90;
	else if (p[0] == 0xf4)
		hi = 0x8f;
	if (p[1] < lo || p[1] > hi)
		return 0;
	/* Stops at the first bad byte, so never reads past a NUL. */
	for (i = 2; i < n; i++)
		if (p[i] < 0x80 || p[i] > 0xbf)
			return 0;
	return n;
}

/* char_len - bytes of the character at s if ok accepts it or it is UTF-8 */
static size_t
char_len(const char *s, ascii_class ok)
{
	const unsigned char	*u = (const unsigned char *)s;

	if (*u >= 0x80)
		return utf8_len(u);
	return ok(*u) ? 1 : 0;
}

/* scan_dot_string - end of the Dot-string at s, or NULL */
static const char *
scan_dot_string(const char *s)
{
	const char	*p = s;
	size_t		 n;

	for (;;) {
		/* Every atom needs one character: this refuses an empty
		 * local part and leading, trailing or double dots. */
		if (char_len(p, is_atext) == 0)
			return NULL;
		while ((n = char_len(p, is_atext)) > 0)
			p += n;
		if (*p != '.')
			return p;
		p++;
	}
}

/* scan_quoted_string - end of the Quoted-string at s, or NULL */
static const char *
scan_quoted_string(const char *s)
{
	const char	*p = s + 1;
	unsigned char	 c;
	size_t		 n;

	for (;;) {
		if (*p == '"')
			return p + 1;
		if (*p == '\\') {
			c = (unsigned char)p[1];
			if (c < 32 || c > 126)
				return NULL;
			p += 2;
			continue;
		}
		if ((n = char_len(p, is_qtext)) == 0)
			return NULL;
		p += n;
	}
}

/* scan_local_part - end of the Local-part at s, or NULL */
static const char *
scan_local_part(const char *s)
{
	if (*s == '"')
		return scan_quoted_string(s);
	return scan_dot_string(s);
}

/* scan_sub_domain - end of the sub-domain at s, or NULL */
static const char *
scan_sub_domain(const char *s)
{
	const char	*p = s;
	size_t		 n;

	if ((n = char_len(p, is_let_dig)) == 0)
		return NULL;
	p += n;
	while ((n = char_len(p, is_ldh)) > 0)
		p += n;
	if (p[-1] == '-')
		return NULL;
	return p;
}

/* scan_domain - end of the Domain (names, not literals) at s, or NULL */
static const char *
scan_domain(const char *s)
{
	const char	*p = s;

	for (;;) {
		if ((p = scan_sub_domain(p)) == NULL)
			return NULL;
		if (*p != '.')
			return p;
		p++;
	}
}

/* check_ipv4 - is text an RFC 5321 IPv4-address-literal (without brackets) */
static bool
check_ipv4(const char *text, size_t len)
{
	const char	*p = text, *e = text + len;
	unsigned int	 value, digits, i;

	for (i = 0; i < IPV4_SNUMS; i++) {
		if (i > 0) {
			if (p == e || *p != '.')
				return false;
			p++;
		}
		value = 0;
		digits = 0;
		while (p < e && is_digit(*p) && digits < SNUM_DIGITS_MAX) {
			value = value * 10 + (unsigned int)(*p - '0');
			digits++;
			p++;
		}
		if (digits == 0 || value > SNUM_VALUE_MAX)
			return false;
	}
	return p == e;
}

/* check_ipv6 - is text (after "IPv6:") an address inet_pton accepts */
static bool
check_ipv6(const char *text, size_t len)
{
	char		 buf[IPV6_TEXT_MAX];
	struct in6_addr	 addr;

	if (len >= sizeof(buf))
		return false;
	memcpy(buf, text, len);
	buf[len] = '\0';
	return inet_pton(AF_INET6, buf, &addr) == 1;
}

/* check_general_literal - is text Standardized-tag ":" 1*dcontent */
static bool
check_general_literal(const char *text, size_t len)
{
	const char	*colon = memchr(text, ':', len);
	size_t		 taglen, i;

	if (colon == NULL)
		return false;
	taglen = (size_t)(colon - text);
	if (taglen == 0 || taglen + 1 == len)
		return false;
	for (i = 0; i < taglen; i++)
		if (!is_ldh((unsigned char)text[i]))
			return false;
	return is_let_dig((unsigned char)colon[-1]);
}

/* scan_address_literal - end of the address-literal at s, or NULL */
static const char *
scan_address_literal(const char *s)
{
	const char	*text = s + 1, *q = text;
	size_t		 len;
	bool		 ok;

	while (is_dcontent((unsigned char)*q))
		q++;
	if (*q != ']')
		return NULL;
	len = (size_t)(q - text);

	if (has_prefix_nocase(text, len, IPV6_TAG))
		ok = check_ipv6(text + IPV6_TAG_LEN, len - IPV6_TAG_LEN);
	else if (memchr(text, ':', len) != NULL)
		ok = check_general_literal(text, len);
	else
		ok = check_ipv4(text, len);
	return ok ? q + 1 : NULL;
}

/* scan_route - end of the A-d-l ":" at s (after the ':'), or NULL */
static const char *
scan_route(const char *s)
{
	const char	*p = s;

	for (;;) {
		if (*p != '@')
			return NULL;
		if ((p = scan_domain(p + 1)) == NULL)
			return NULL;
		if (*p == ':')
			return p + 1;
		if (*p != ',')
			return NULL;
		p++;
	}
}

/* scan_mailbox - find Local-part ["@" (Domain / address-literal)] at s */
static bool
scan_mailbox(const char *s, struct mailbox_span *m)
{
	const char	*at;

	m->start = s;
	if ((at = scan_local_part(s)) == NULL)
		return false;
	m->local_end = at;
	m->end = at;
	if (*at != '@')
		return true;
	if (at[1] == '[')
		m->end = scan_address_literal(at + 1);
	else
		m->end = scan_domain(at + 1);
	return m->end != NULL;
}

/* scan_bracketed - find the mailbox in "<" [A-d-l ":"] Mailbox ">" at s */
static bool
scan_bracketed(const char *s, struct mailbox_span *m)
{
	const char	*p = s + 1;

	/* A source route is checked, then dropped (RFC 5321 4.1.1.3). */
	if (*p == '@' && (p = scan_route(p)) == NULL)
		return false;
	if (!scan_mailbox(p, m))
		return false;
	return *m->end == '>';
}

/* check_lengths - apply the RFC 5321 4.5.3.1 limits to a mailbox */
static enum address_error
check_lengths(const struct mailbox_span *m, size_t pathlen)
{
	if ((size_t)(m->local_end - m->start) > ADDRESS_LOCAL_MAX)
		return ADDRESS_TOO_LONG;
	if (m->end > m->local_end &&
	    (size_t)(m->end - m->local_end - 1) > ADDRESS_DOMAIN_MAX)
		return ADDRESS_TOO_LONG;
	if (pathlen > ADDRESS_PATH_MAX)
		return ADDRESS_TOO_LONG;
	return m->end > m->local_end ? ADDRESS_OK : ADDRESS_NO_DOMAIN;
}

/* address_parse_path - parse a Reverse-path or Forward-path at in */
enum address_error
address_parse_path(const char *in, char *out, size_t size, const char **end)
{
	struct mailbox_span	 m;
	enum address_error	 error;
	const char		*after;
	size_t			 pathlen, len;

	if (size > 0)
		out[0] = '\0';
	if (end != NULL)
		*end = in;

	if (in[0] == '<' && in[1] == '>') {
		if (end != NULL)
			*end = in + 2;
		return ADDRESS_OK;
	}
	if (in[0] == '<') {
		if (!scan_bracketed(in, &m))
			return ADDRESS_SYNTAX;
		after = m.end + 1;
		pathlen = (size_t)(after - in);
	} else {
		if (!scan_mailbox(in, &m) || (*m.end != ' ' && *m.end != '\0'))
			return ADDRESS_SYNTAX;
		after = m.end;
		pathlen = (size_t)(m.end - in) + 2;	/* as if in <> */
	}

	error = check_lengths(&m, pathlen);
	if (error != ADDRESS_OK && error != ADDRESS_NO_DOMAIN)
		return error;
	len = (size_t)(m.end - m.start);
	if (len >= size)
		return ADDRESS_TOO_LONG;
	memcpy(out, m.start, len);
	out[len] = '\0';
	if (end != NULL)
		*end = after;
	return error;
}

/* address_check_mailbox - is the whole of s one valid mailbox */
enum address_error
address_check_mailbox(const char *s)
{
	struct mailbox_span	 m;

	if (!scan_mailbox(s, &m) || *m.end != '\0')
		return ADDRESS_SYNTAX;
	return check_lengths(&m, (size_t)(m.end - s) + 2);
}

/* address_domain - the domain after the '@' that ends the local part */
const char *
address_domain(const char *mailbox)
{
	const char	*p;

	if (mailbox[0] != '"') {
		p = strchr(mailbox, '@');
		return p != NULL ? p + 1 : NULL;
	}
	/* An '@' inside the quotes belongs to the local part. */
	if ((p = scan_quoted_string(mailbox)) == NULL || *p != '@')
		return NULL;
	return p + 1;
}

/* address_equal - same local part (exactly) at the same domain (any case) */
bool
address_equal(const char *a, const char *b)
{
	const char	*da = address_domain(a), *db = address_domain(b);

	if (da == NULL || db == NULL)
		return da == db && strcmp(a, b) == 0;
	if (da - a != db - b || memcmp(a, b, (size_t)(da - a)) != 0)
		return false;
	for (; *da != '\0' && *db != '\0'; da++, db++)
		if (ascii_lower((unsigned char)*da) !=
		    ascii_lower((unsigned char)*db))
			return false;
	return *da == *db;
}

/* address_error_text - a short English phrase for an address error */
const char *
address_error_text(enum address_error error)
{
	switch (error) {
	case ADDRESS_OK:
		return "valid address";
	case ADDRESS_SYNTAX:
		return "address syntax error";
	case ADDRESS_TOO_LONG:
		return "address too long";
	case ADDRESS_NO_DOMAIN:
		return "address without a domain";
	}
	return "unknown address error";
}
