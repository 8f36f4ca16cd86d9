/*
 * clientauth - SMTP AUTH PLAIN and LOGIN for local clients (RFC 4954,
 * RFC 4616) against the accounts' localpassword.  Pure logic, no I/O: the
 * session reads the client's lines, calls these, and writes the replies.
 *
 *   auth_base64_decode(in, &out, &len)   strict base64 to bytes; "=" alone
 *                         is the empty initial response.  0 or -1.
 *   auth_base64_encode(in, len)          bytes to base64 (334 challenges);
 *                         NULL when longer than AUTH_LINE_MAX would be
 *   auth_plain_parse(msg, len, &authcid, &passwd)
 *                         split a decoded PLAIN message.  0 or -1.
 *   auth_plain_response(line, &authcid, &passwd)   base64 line to PLAIN parts
 *   auth_login_username(line, &user)     base64 line to a LOGIN user name
 *   auth_login_password(line, &passwd)   base64 line to a LOGIN password
 *   auth_password_matches(given, stored) constant-time check of a password
 *   auth_find_account(cfg, user)         the account that user logs in as
 *   auth_check(cfg, user, passwd)        find and check: the account or NULL
 *   auth_may_send_as(cfg, authed, sender) may that client use that sender
 *   auth_failure_delay_ms(failures)      pause before answering a failure
 *   auth_secret_free(s), auth_wipe_free(p, len)   wipe, then free
 *
 * Errors: the *_response/_username/_password functions return
 * AUTH_ERR_BASE64 when the line is not strict base64 (the session answers
 * 501 5.5.2) and AUTH_ERR_MESSAGE when it decodes to something that cannot
 * be credentials (535 5.7.8).  A "*" line cancels the exchange (RFC 4954):
 * it is not base64, so the session checks for it first.  Out of memory
 * aborts, as everywhere in the project.
 *
 * Refused: base64 with white space, bad characters, bad padding or nonzero
 * pad bits, or longer than AUTH_LINE_MAX; an empty user name or password; a
 * NUL inside a user name or password; control characters in a user name
 * (it is logged); a PLAIN authzid other than the authcid (no proxy
 * authorisation).
 *
 * Passwords.  A localpassword is read by its first byte: "$" starts a
 * crypt(3) hash ("$id$...", e.g. $1$ $5$ $6$ $2b$ $y$ $gy$ $7$); "*" or "!"
 * marks a locked entry, as in /etc/shadow, and never matches; anything else
 * is plain text.  A missing or empty localpassword never matches, nor does a
 * hash that crypt(3) cannot compute.  Comparison is of SHA-256 digests with
 * CRYPTO_memcmp, so neither the content nor the length of the stored value
 * leaks through timing.  Every buffer that held a password is wiped before
 * it is freed; callers free what they get with auth_secret_free().
 *
 * Who may send as whom (auth_may_send_as).  Let S be the section the
 * sender's address selects, in the order of account lookup: the exact
 * address (domain part in any case), else "@domain", else "default"; the
 * null sender selects "default".  The authenticated account A may send as
 * the sender when
 *   1. S is A, or S reaches A by following use= (S is an alias of A), and
 *   2. S is not the "default" section, unless A is that section itself.
 * and, as a cross-check, account_lookup() names A's upstream for the sender.
 * So an "@example.com" login may send as any example.com address without a
 * section of its own, but not as one that has its own section (unless that
 * one says use=@example.com); an alias may not send as the account it uses
 * (use= runs one way); and routing "default" through A's upstream does not
 * let A send as every stranger: "default" is a relay choice, not a grant.
 */
#ifndef SMTPPROXY_CLIENTAUTH_H
#define SMTPPROXY_CLIENTAUTH_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"

#define AUTH_LINE_MAX	12288	/* longest base64 line, RFC 4954 */
#define AUTH_USER_MAX	256	/* longest user name: an account name */
#define AUTH_DELAY_FIRST_MS 500	/* pause after the second failure */
#define AUTH_DELAY_MAX_MS 8000	/* the pause stops doubling here */

#define AUTH_OK		0
#define AUTH_ERR_BASE64	(-1)	/* not strict base64: 501 5.5.2 */
#define AUTH_ERR_MESSAGE (-2)	/* not credentials: 535 5.7.8 */

int			 auth_base64_decode(const char *, char **, size_t *);
char			*auth_base64_encode(const char *, size_t);
int			 auth_plain_parse(const char *, size_t, char **,
			    char **);
int			 auth_plain_response(const char *, char **, char **);
int			 auth_login_username(const char *, char **);
int			 auth_login_password(const char *, char **);
bool			 auth_password_matches(const char *, const char *);
const struct account	*auth_find_account(const struct config *,
			    const char *);
const struct account	*auth_check(const struct config *, const char *,
			    const char *);
bool			 auth_may_send_as(const struct config *,
			    const struct account *, const char *);
unsigned		 auth_failure_delay_ms(int);
void			 auth_secret_free(char *);
void			 auth_wipe_free(void *, size_t);

#endif
