/*
 * clientauth - SMTP AUTH PLAIN and LOGIN for local clients; see clientauth.h.
 */
#include <crypt.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "clientauth.h"
#include "address.h"
#include "config.h"
#include "util.h"

#define B64_PAD		'='
#define B64_QUAD	4	/* characters per group */
#define B64_TRIPLE	3	/* bytes per group */
#define B64_ENCODE_MAX	(AUTH_LINE_MAX / B64_QUAD * B64_TRIPLE)

static const char b64_alphabet[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

static int	 b64_value(char);
static int	 b64_decode_group(const char *, size_t, unsigned char *);
static void	 b64_encode_group(const unsigned char *, size_t, char *);
static bool	 username_valid(const char *, size_t);
static bool	 looks_like_crypt(const char *);
static bool	 digest_equal(const char *, const char *);
static bool	 crypt_matches(const char *, const char *);
static void	 spend_like_a_check(const struct config *, const char *);
static const struct account *sender_section(const struct config *,
		    const char *);
static bool	 use_chain_reaches(const struct config *,
		    const struct account *, const struct account *);
static bool	 is_default_section(const struct account *);

/* b64_value - the 6-bit value of a base64 character, or -1 */
static int
b64_value(char c)
{
	const char	*p;

	if (c == '\0' || (p = strchr(b64_alphabet, c)) == NULL)
		return -1;
	return (int)(p - b64_alphabet);
}

/*
 * b64_decode_group - decode four characters, the last pad of them '=', into
 * out; the number of bytes written, or -1.  Pad bits must be zero, so each
 * byte string has exactly one encoding.
 */
static int
b64_decode_group(const char *in, size_t pad, unsigned char *out)
{
	int	 v[B64_QUAD];

	for (size_t i = 0; i < B64_QUAD; i++) {
		if (i >= B64_QUAD - pad)
			v[i] = 0;
		else if ((v[i] = b64_value(in[i])) < 0)
			return -1;
	}
	if (pad == 2 && (v[1] & 0x0f) != 0)
		return -1;
	if (pad == 1 && (v[2] & 0x03) != 0)
		return -1;
	out[0] = (unsigned char)(v[0] << 2 | v[1] >> 4);
	if (pad < 2)
		out[1] = (unsigned char)((v[1] & 0x0f) << 4 | v[2] >> 2);
	if (pad < 1)
		out[2] = (unsigned char)((v[2] & 0x03) << 6 | v[3]);
	return (int)(B64_TRIPLE - pad);
}

/* auth_base64_decode - strict base64 to a new NUL-terminated buffer */
int
auth_base64_decode(const char *in, char **out, size_t *outlen)
{
	unsigned char	*buf;
	size_t		 inlen, cap, pad = 0, len = 0;
	int		 n;

	*out = NULL;
	*outlen = 0;
	if (in == NULL || (inlen = strnlen(in, AUTH_LINE_MAX + 1)) >
	    AUTH_LINE_MAX)
		return -1;
	if (strcmp(in, "=") == 0) {
		*out = xstrdup("");
		return 0;
	}
	if (inlen % B64_QUAD != 0)
		return -1;
	if (inlen > 0 && in[inlen - 1] == B64_PAD)
		pad = in[inlen - 2] == B64_PAD ? 2 : 1;

	cap = inlen / B64_QUAD * B64_TRIPLE + 1;
	buf = xmalloc(cap);
	for (size_t i = 0; i < inlen; i += B64_QUAD) {
		n = b64_decode_group(in + i, i + B64_QUAD == inlen ? pad : 0,
		    buf + len);
		if (n < 0) {
			auth_wipe_free(buf, cap);
			return -1;
		}
		len += (size_t)n;
	}
	buf[len] = '\0';
	*out = (char *)buf;
	*outlen = len;
	return 0;
}

/* b64_encode_group - encode n (1 to 3) bytes as four characters */
static void
b64_encode_group(const unsigned char *in, size_t n, char *out)
{
	unsigned	 b1 = n > 1 ? in[1] : 0, b2 = n > 2 ? in[2] : 0;

	out[0] = b64_alphabet[in[0] >> 2];
	out[1] = b64_alphabet[(in[0] & 0x03) << 4 | b1 >> 4];
	out[2] = n > 1 ? b64_alphabet[(b1 & 0x0f) << 2 | b2 >> 6] : B64_PAD;
	out[3] = n > 2 ? b64_alphabet[b2 & 0x3f] : B64_PAD;
}

/* auth_base64_encode - base64 of len bytes; NULL beyond AUTH_LINE_MAX */
char *
auth_base64_encode(const char *in, size_t len)
{
	const unsigned char	*p = (const unsigned char *)in;
	char			*out;
	size_t			 o = 0;

	if (len > B64_ENCODE_MAX || (in == NULL && len > 0))
		return NULL;
	out = xmalloc((len + B64_TRIPLE - 1) / B64_TRIPLE * B64_QUAD + 1);
	for (size_t i = 0; i < len; i += B64_TRIPLE) {
		b64_encode_group(p + i, len - i < B64_TRIPLE ? len - i :
		    B64_TRIPLE, out + o);
		o += B64_QUAD;
	}
	out[o] = '\0';
	return out;
}

/*
 * username_valid - a user name we may look up and log: 1 to AUTH_USER_MAX
 * bytes, no NUL and no other control character.
 */
static bool
username_valid(const char *s, size_t len)
{
	if (len == 0 || len > AUTH_USER_MAX)
		return false;
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			return false;
	return true;
}

/*
 * auth_plain_parse - split [authzid] NUL authcid NUL passwd (RFC 4616) into
 * two new strings; -1 for anything else, or an authzid other than authcid.
 */
int
auth_plain_parse(const char *msg, size_t len, char **authcid, char **passwd)
{
	const char	*end, *cid, *pw, *nul;

	*authcid = NULL;
	*passwd = NULL;
	if (msg == NULL || (nul = memchr(msg, '\0', len)) == NULL)
		return -1;
	end = msg + len;
	cid = nul + 1;
	if ((nul = memchr(cid, '\0', (size_t)(end - cid))) == NULL)
		return -1;
	pw = nul + 1;
	if (pw == end || memchr(pw, '\0', (size_t)(end - pw)) != NULL)
		return -1;
	if (!username_valid(cid, (size_t)(nul - cid)))
		return -1;
	/* Both authzid and authcid end at a NUL inside msg: C strings. */
	if (msg[0] != '\0' && !address_equal(msg, cid))
		return -1;

	*authcid = xstrndup(cid, (size_t)(nul - cid));
	*passwd = xstrndup(pw, (size_t)(end - pw));
	return 0;
}

/* auth_plain_response - a base64 PLAIN response to authcid and password */
int
auth_plain_response(const char *line, char **authcid, char **passwd)
{
	char	*msg;
	size_t	 len;
	int	 rc;

	*authcid = NULL;
	*passwd = NULL;
	if (auth_base64_decode(line, &msg, &len) == -1)
		return AUTH_ERR_BASE64;
	rc = auth_plain_parse(msg, len, authcid, passwd);
	auth_wipe_free(msg, len);
	return rc == 0 ? AUTH_OK : AUTH_ERR_MESSAGE;
}

/* auth_login_username - a base64 LOGIN response to a user name */
int
auth_login_username(const char *line, char **user)
{
	char	*s;
	size_t	 len;

	*user = NULL;
	if (auth_base64_decode(line, &s, &len) == -1)
		return AUTH_ERR_BASE64;
	if (!username_valid(s, len)) {
		auth_wipe_free(s, len);
		return AUTH_ERR_MESSAGE;
	}
	*user = s;
	return AUTH_OK;
}

/* auth_login_password - a base64 LOGIN response to a password */
int
auth_login_password(const char *line, char **passwd)
{
	char	*s;
	size_t	 len;

	*passwd = NULL;
	if (auth_base64_decode(line, &s, &len) == -1)
		return AUTH_ERR_BASE64;
	if (len == 0 || memchr(s, '\0', len) != NULL) {
		auth_wipe_free(s, len);
		return AUTH_ERR_MESSAGE;
	}
	*passwd = s;
	return AUTH_OK;
}

/* looks_like_crypt - "$id$...", id being lower-case letters and digits */
static bool
looks_like_crypt(const char *s)
{
	size_t	 n;

	if (s[0] != '$')
		return false;
	n = strspn(s + 1, "abcdefghijklmnopqrstuvwxyz0123456789");
	return n > 0 && s[1 + n] == '$';
}

/*
 * digest_equal - compare two strings in constant time.  Comparing their
 * SHA-256 digests makes the time independent of both lengths; the digests
 * are wiped, as a bare digest of a password is a cracking target.
 */
static bool
digest_equal(const char *a, const char *b)
{
	unsigned char	 da[EVP_MAX_MD_SIZE], db[EVP_MAX_MD_SIZE];
	unsigned int	 la = 0, lb = 0;
	bool		 same = false;

	if (EVP_Digest(a, strlen(a), da, &la, EVP_sha256(), NULL) == 1 &&
	    EVP_Digest(b, strlen(b), db, &lb, EVP_sha256(), NULL) == 1 &&
	    la == lb)
		same = CRYPTO_memcmp(da, db, la) == 0;
	explicit_bzero(da, sizeof(da));
	explicit_bzero(db, sizeof(db));
	return same;
}

/*
 * crypt_matches - hash given with the setting in stored and compare.  The
 * crypt_data is on the heap (32 KiB) and per call, so this is thread-safe;
 * it holds the hash of the given password, so it is wiped.
 */
static bool
crypt_matches(const char *given, const char *stored)
{
	struct crypt_data	*cd = xcalloc(1, sizeof(*cd));
	const char		*out;
	bool			 same = false;

	out = crypt_rn(given, stored, cd, (int)sizeof(*cd));
	if (out != NULL && out[0] != '*')
		same = digest_equal(out, stored);
	auth_wipe_free(cd, sizeof(*cd));
	return same;
}

/* auth_password_matches - does given match the stored localpassword */
bool
auth_password_matches(const char *given, const char *stored)
{
	if (given == NULL || stored == NULL || stored[0] == '\0')
		return false;
	if (stored[0] == '*' || stored[0] == '!')
		return false;
	if (stored[0] == '$')
		return looks_like_crypt(stored) && crypt_matches(given, stored);
	return digest_equal(given, stored);
}

/* auth_find_account - the section named user, if it may log in */
const struct account *
auth_find_account(const struct config *cfg, const char *user)
{
	const struct account	*a;

	if (cfg == NULL || user == NULL || user[0] == '\0')
		return NULL;
	if ((a = account_find(cfg, user)) == NULL)
		return NULL;
	if (a->localpassword == NULL || a->localpassword[0] == '\0')
		return NULL;
	return a;
}

/*
 * spend_like_a_check - for a user that cannot log in, do the work a real
 * check would do (hashing against the first hashed localpassword, if any),
 * so the time to answer says little about which user names exist.
 */
static void
spend_like_a_check(const struct config *cfg, const char *passwd)
{
	for (size_t i = 0; i < cfg->naccounts; i++) {
		const char	*stored = cfg->accounts[i].localpassword;

		if (stored != NULL && looks_like_crypt(stored)) {
			(void)crypt_matches(passwd, stored);
			return;
		}
	}
	(void)digest_equal(passwd, "");
}

/* auth_check - the account user logs in as with passwd, or NULL */
const struct account *
auth_check(const struct config *cfg, const char *user, const char *passwd)
{
	const struct account	*a;

	if (cfg == NULL || passwd == NULL)
		return NULL;
	if ((a = auth_find_account(cfg, user)) == NULL) {
		spend_like_a_check(cfg, passwd);
		return NULL;
	}
	return auth_password_matches(passwd, a->localpassword) ? a : NULL;
}

/*
 * sender_section - the section a sender selects before use= is followed:
 * exact address, "@domain", "default" (the order of account_lookup()).
 */
static const struct account *
sender_section(const struct config *cfg, const char *sender)
{
	const struct account	*a = NULL;
	const char		*at;

	if (sender[0] != '\0' && sender[0] != '@')
		a = account_find(cfg, sender);
	if (a == NULL && (at = strrchr(sender, '@')) != NULL && at[1] != '\0')
		a = account_find(cfg, at);
	if (a == NULL)
		a = account_find(cfg, ACCOUNT_DEFAULT_NAME);
	return a;
}

/*
 * use_chain_reaches - does following use= from "from" arrive at "to" (from
 * itself included).  Loops are refused when the config is loaded; the step
 * bound only keeps a hand-made model from spinning.
 */
static bool
use_chain_reaches(const struct config *cfg, const struct account *from,
    const struct account *to)
{
	const struct account	*a = from;

	for (size_t steps = 0; a != NULL && steps <= cfg->naccounts; steps++) {
		if (a == to)
			return true;
		if (a->use == NULL)
			return false;
		a = account_find(cfg, a->use);
	}
	return false;
}

/* is_default_section - is a the "default" section */
static bool
is_default_section(const struct account *a)
{
	return strcmp(a->name, ACCOUNT_DEFAULT_NAME) == 0;
}

/* auth_may_send_as - may a client logged in as authed use sender */
bool
auth_may_send_as(const struct config *cfg, const struct account *authed,
    const char *sender)
{
	const struct account	*s;

	if (cfg == NULL || authed == NULL || sender == NULL)
		return false;
	if ((s = sender_section(cfg, sender)) == NULL)
		return false;
	/* The relay must use authed's upstream for this sender. */
	if (account_lookup(cfg, sender) != authed->target)
		return false;
	if (is_default_section(s) && s != authed)
		return false;
	return use_chain_reaches(cfg, s, authed);
}

/*
 * auth_failure_delay_ms - the pause before answering failure number n of a
 * session: none for the first (a typo), then 500 ms doubling up to 8 s.
 */
unsigned
auth_failure_delay_ms(int failures)
{
	unsigned	 delay = AUTH_DELAY_FIRST_MS;

	if (failures <= 1)
		return 0;
	for (int i = 2; i < failures && delay < AUTH_DELAY_MAX_MS; i++)
		delay *= 2;
	return delay < AUTH_DELAY_MAX_MS ? delay : AUTH_DELAY_MAX_MS;
}

/* auth_secret_free - wipe and free a NUL-terminated secret; NULL is fine */
void
auth_secret_free(char *s)
{
	if (s != NULL)
		auth_wipe_free(s, strlen(s));
}

/* auth_wipe_free - wipe len bytes at p, then free p; NULL is fine */
void
auth_wipe_free(void *p, size_t len)
{
	if (p == NULL)
		return;
	explicit_bzero(p, len);
	free(p);
}
