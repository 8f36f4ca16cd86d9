/*
 * oauth - OAuth 2.0 access tokens for XOAUTH2 upstream logins (see
 * oauth.h): presets, the token file and its lock, refresh, the token
 * command, and the first authorisation flows of smtpproxyctl.
 *
 * Every secret (tokens, codes, client secrets, PKCE verifiers) lives in
 * memory only as long as it is needed and is wiped before it is freed;
 * none is ever passed to the log or put into an error message.  Requests
 * to token endpoints are never logged with their bodies.
 */
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/rand.h>
#include <openssl/sha.h>

#include "curltls.h"
#include "log.h"
#include "oauth.h"
#include "util.h"
#include "version.h"

#define MS_BASE		"https://login.microsoftonline.com/"
#define MS_TENANT	"common"
#define MS_SCOPE	"https://outlook.office.com/SMTP.Send offline_access"
#define MS_APP_SCOPE	"https://outlook.office365.com/.default"
#define GOOGLE_TOKEN	"https://oauth2.googleapis.com/token"
#define GOOGLE_DEVICE	"https://oauth2.googleapis.com/device/code"
#define GOOGLE_AUTH	"https://accounts.google.com/o/oauth2/v2/auth"
#define GOOGLE_SCOPE	"https://mail.google.com/"

#define GRANT_DEVICE	"urn:ietf:params:oauth:grant-type:device_code"
#define LOCK_SUFFIX	".lock"
#define MARK_SUFFIX	".needauth"
#define LOCK_POLL_MS	50	/* ms between two tries of the lock */
#define LOCK_EXTRA	30		/* seconds past the HTTP timeout */
#define DESC_MAX	300		/* error_description bytes shown */
#define DEVICE_WAIT	900		/* seconds, expires_in missing */
#define DEVICE_INTERVAL	5		/* seconds, interval missing */
#define AUTHCODE_WAIT	900		/* seconds for the login */
#define REDIRECT_HEAD_MAX 8192		/* request head on the loopback */
#define REDIRECT_TIMEOUT 10		/* seconds for one browser request */
#define PASTE_MAX	8192		/* a pasted address */
#define STATE_BYTES	16
#define PATH_SAFE	"abcdefghijklmnopqrstuvwxyz" \
			"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.@_+-"
#define B64TOKEN_CHARS	"abcdefghijklmnopqrstuvwxyz" \
			"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~+/"
#define UNRESERVED	"abcdefghijklmnopqrstuvwxyz" \
			"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~"

/* A reply of a token endpoint, as read. */
struct http_reply {
	long	 status;
	char	*body;
	size_t	 len;
	bool	 overflow;
};

/* What the authorisation code flow waits for. */
struct authcode_wait {
	const char	*state;		/* the one we sent */
	FILE		*out;
	char		*code;		/* the result */
	char		*error;		/* or the refusal */
};

static void	 secret_free(char *);
static void	 secret_replace(char **, const char *);
static void	 text_clean(char *, size_t, const char *);
static char	*json_str(json_t *, const char *);
static long	 json_num(json_t *, const char *, long);
static char	*url_shown(const char *);
static char	*encode(const char *, bool);
static int	 hexval(char);
static char	*decode(const char *, size_t);
static json_t	*json_opt(const char *);
static bool	 keepalive_path_seen(const struct config *, size_t,
		    const char *);
static int	 client_secret(const struct account *, char **, char *,
		    size_t);
static size_t	 http_write_cb(char *, size_t, size_t, void *);
static int	 http_post(const struct config *, const struct account *,
		    const char *, const char *, struct http_reply *, char *,
		    size_t);
static int	 token_request(const struct config *, const struct account *,
		    const char *, const char *const *, struct oauth_grant *,
		    char *, size_t);
static void	 grant_error_text(const struct oauth_grant *, char *,
		    size_t);
static char	*sibling_path(const char *, const char *);
static int	 store_dir(const char *, char *, size_t);
static int	 store_lock(const struct config *, const char *, char *,
		    size_t);
static void	 store_unlock(int);
static int	 store_read(const char *, struct oauth_store *, char *,
		    size_t);
static int	 store_write(const char *, const struct oauth_store *, char *,
		    size_t);
static int	 mark_set(const char *, const char *);
static void	 mark_clear(const char *);
static bool	 mark_read(const char *, char *, size_t);
static int	 store_refresh(const struct config *, const struct account *,
		    const char *, struct oauth_store *, char *, size_t);
static int	 token_from_store(const struct config *,
		    const struct account *, struct oauth_token *, char *,
		    size_t);
static int	 token_command(const struct config *, const struct account *,
		    struct oauth_token *, char *, size_t);
static int	 command_read(int, pid_t, char **, size_t *, char *, size_t);
static bool	 uses_store(const struct account *);
static void	 say(FILE *, const char *, ...)
		    __attribute__((format(printf, 2, 3)));
static int	 flow_device(const struct config *, const struct account *,
		    const struct oauth_endpoints *,
		    const struct oauth_prompt *, struct oauth_grant *, char *,
		    size_t);
static int	 flow_authcode(const struct config *, const struct account *,
		    const struct oauth_endpoints *,
		    const struct oauth_prompt *, struct oauth_grant *, char *,
		    size_t);
static int	 flow_clientcredentials(const struct config *,
		    const struct account *, const struct oauth_endpoints *,
		    struct oauth_grant *, char *, size_t);
static char	*authcode_url(const struct account *,
		    const struct oauth_endpoints *, const char *, const char *,
		    const char *);
static int	 loopback_listen(int, int *, char *, size_t);
static bool	 authcode_take(struct authcode_wait *, const char *);
static bool	 redirect_serve(int, struct authcode_wait *);
static void	 redirect_answer(int, int, const char *);
static int	 authcode_await(int, const struct oauth_prompt *,
		    struct authcode_wait *, char *, size_t);
static void	 sleep_seconds(long);

/*
 * Small helpers.
 */

/* secret_free - wipe a secret string, then free it */
static void
secret_free(char *s)
{
	if (s == NULL)
		return;
	explicit_bzero(s, strlen(s));
	free(s);
}

/* secret_replace - *dst becomes a copy of src, the old one wiped */
static void
secret_replace(char **dst, const char *src)
{
	secret_free(*dst);
	*dst = src != NULL ? xstrdup(src) : NULL;
}

/* text_clean - a bounded copy fit for a log line: no control characters */
static void
text_clean(char *dst, size_t size, const char *src)
{
	size_t	n = 0;

	if (size == 0)
		return;
	for (; src != NULL && *src != '\0' && n + 1 < size; src++) {
		unsigned char	c = (unsigned char)*src;

		dst[n++] = c < 0x20 || c == 0x7f ? ' ' : (char)c;
	}
	dst[n] = '\0';
}

/* json_str - a string member, copied, or NULL */
static char *
json_str(json_t *o, const char *key)
{
	json_t	*v = json_object_get(o, key);

	return json_is_string(v) ? xstrdup(json_string_value(v)) : NULL;
}

/* json_num - a number member (also as a decimal string), or def */
static long
json_num(json_t *o, const char *key, long def)
{
	json_t		*v = json_object_get(o, key);
	const char	*s;
	char		*end;
	long		 n;

	if (json_is_integer(v))
		return (long)json_integer_value(v);
	if (json_is_real(v))
		return (long)json_real_value(v);
	if (!json_is_string(v))
		return def;
	s = json_string_value(v);
	errno = 0;
	n = strtol(s, &end, 10);
	if (end == s || *end != '\0' || errno != 0)
		return def;
	return n;
}

/* url_shown - a URL without its query, for messages */
static char *
url_shown(const char *url)
{
	return xstrndup(url, strcspn(url, "?#"));
}

/* say - one instruction for the administrator, at once */
static void
say(FILE *out, const char *fmt, ...)
{
	va_list	ap;

	if (out == NULL)
		return;
	va_start(ap, fmt);
	vfprintf(out, fmt, ap);
	va_end(ap);
	fflush(out);
}

/* sleep_seconds - wait, whatever signals come in between */
static void
sleep_seconds(long s)
{
	struct timespec	ts = { .tv_sec = s, .tv_nsec = 0 };

	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

/*
 * Pure parts.
 */

/* oauth_base64url - unpadded base64url of len bytes; its length, 0 if short */
size_t
oauth_base64url(const unsigned char *in, size_t len, char *out, size_t size)
{
	static const char	alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "abcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t			n = 0, need = (len * 4 + 2) / 3;

	if (size < need + 1)
		return 0;
	for (size_t i = 0; i < len; i += 3) {
		unsigned long	v = (unsigned long)in[i] << 16;

		if (i + 1 < len)
			v |= (unsigned long)in[i + 1] << 8;
		if (i + 2 < len)
			v |= in[i + 2];
		out[n++] = alphabet[(v >> 18) & 63];
		out[n++] = alphabet[(v >> 12) & 63];
		if (i + 1 < len)
			out[n++] = alphabet[(v >> 6) & 63];
		if (i + 2 < len)
			out[n++] = alphabet[v & 63];
	}
	out[n] = '\0';
	return n;
}

/* oauth_pkce_verifier - a new code verifier: 32 random bytes, base64url */
int
oauth_pkce_verifier(char *out)
{
	unsigned char	raw[32];

	if (RAND_bytes(raw, sizeof(raw)) != 1)
		return -1;
	oauth_base64url(raw, sizeof(raw), out, OAUTH_PKCE_VERIFIER_LEN + 1);
	explicit_bzero(raw, sizeof(raw));
	return 0;
}

/* oauth_pkce_challenge - S256: base64url(SHA-256(verifier)) (RFC 7636) */
void
oauth_pkce_challenge(const char *verifier, char *out)
{
	unsigned char	digest[SHA256_DIGEST_LENGTH];

	SHA256((const unsigned char *)verifier, strlen(verifier), digest);
	oauth_base64url(digest, sizeof(digest), out,
	    OAUTH_PKCE_CHALLENGE_LEN + 1);
}

/* encode - percent-encode all but unreserved; blank as '+' or "%20" */
static char *
encode(const char *s, bool plus)
{
	static const char	hex[] = "0123456789ABCDEF";
	char			*out = xmalloc(3 * strlen(s) + 1), *p = out;

	for (; *s != '\0'; s++) {
		unsigned char	c = (unsigned char)*s;

		if (c != '\0' && strchr(UNRESERVED, c) != NULL)
			*p++ = (char)c;
		else if (c == ' ' && plus)
			*p++ = '+';
		else {
			*p++ = '%';
			*p++ = hex[c >> 4];
			*p++ = hex[c & 15];
		}
	}
	*p = '\0';
	return out;
}

/* oauth_url_encode - one value for a URL query, blank as %20 */
char *
oauth_url_encode(const char *s)
{
	return encode(s, false);
}

/* oauth_form_encode - name=value&... from pairs; a NULL value is left out */
char *
oauth_form_encode(const char *const *pairs)
{
	char	*out = xstrdup(""), *next, *name, *value;

	for (size_t i = 0; pairs[i] != NULL; i += 2) {
		if (pairs[i + 1] == NULL)
			continue;
		name = encode(pairs[i], true);
		value = encode(pairs[i + 1], true);
		next = xasprintf("%s%s%s=%s", out, out[0] != '\0' ? "&" : "",
		    name, value);
		secret_free(out);
		secret_free(value);
		free(name);
		out = next;
	}
	return out;
}

/* hexval - the value of a hex digit, -1 if it is none */
static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

/* decode - len bytes of a query part, '+' as blank and %XX decoded */
static char *
decode(const char *s, size_t len)
{
	char	*out = xmalloc(len + 1), *p = out;

	for (size_t i = 0; i < len; i++) {
		if (s[i] == '+')
			*p++ = ' ';
		else if (s[i] == '%' && i + 2 < len &&
		    hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
			*p++ = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
			i += 2;
		} else
			*p++ = s[i];
	}
	*p = '\0';
	return out;
}

/* oauth_query_get - a parameter of a query string or URL, decoded */
char *
oauth_query_get(const char *query, const char *name)
{
	const char	*q = strchr(query, '?'), *end;
	size_t		 nlen = strlen(name);

	q = q != NULL ? q + 1 : query;
	end = q + strcspn(q, "#");
	while (q < end) {
		size_t		 len = strcspn(q, "&#");
		const char	*eq = memchr(q, '=', len);
		size_t		 klen = eq != NULL ? (size_t)(eq - q) :
		    len;
		char		*key = decode(q, klen);

		if (strlen(key) == nlen && strcmp(key, name) == 0) {
			free(key);
			return eq != NULL ? decode(eq + 1, len - klen - 1) :
			    xstrdup("");
		}
		free(key);
		q += len;
		if (*q == '&')
			q++;
	}
	return NULL;
}

/* oauth_token_ok - a non-empty b64token (RFC 6750): safe in the SASL string */
bool
oauth_token_ok(const char *t)
{
	size_t	n;

	if (t == NULL || *t == '\0')
		return false;
	n = strspn(t, B64TOKEN_CHARS);
	if (n == 0)
		return false;
	n += strspn(t + n, "=");
	return t[n] == '\0' && n <= OAUTH_TOKEN_MAX;
}

/* oauth_expiry - when a token given now with expires_in seconds expires */
time_t
oauth_expiry(time_t now, long expires_in)
{
	if (expires_in < 0)
		return now + OAUTH_DEFAULT_LIFETIME;
	if (expires_in > OAUTH_LIFETIME_MAX)
		return now + OAUTH_LIFETIME_MAX;
	return now + expires_in;
}

/* oauth_needs_refresh - no access token, or too little validity left */
bool
oauth_needs_refresh(const struct oauth_store *st, time_t now)
{
	return st->access_token == NULL ||
	    st->expires_at - now < OAUTH_REFRESH_MARGIN;
}

/* oauth_keepalive_needed - a refresh token left unused too long */
bool
oauth_keepalive_needed(const struct oauth_store *st, time_t now)
{
	return st->refresh_token != NULL &&
	    now - st->refreshed_at >= OAUTH_KEEPALIVE_AGE;
}

/* oauth_poll_next - go on polling after this device-code answer? */
int
oauth_poll_next(const char *error, long *interval)
{
	if (error == NULL)
		return 0;
	if (strcmp(error, "authorization_pending") == 0)
		return 1;
	if (strcmp(error, "slow_down") == 0) {
		/* RFC 8628 3.5: the interval grows by 5 seconds for good */
		*interval += 5;
		return 1;
	}
	return 0;
}

/* oauth_grant_parse - a token endpoint's JSON reply; -1 if it is none */
int
oauth_grant_parse(const char *body, size_t len, struct oauth_grant *g)
{
	json_t	*o;

	memset(g, 0, sizeof(*g));
	g->expires_in = -1;
	if ((o = json_loadb(body, len, 0, NULL)) == NULL)
		return -1;
	if (!json_is_object(o)) {
		json_decref(o);
		return -1;
	}
	g->access_token = json_str(o, "access_token");
	g->refresh_token = json_str(o, "refresh_token");
	g->scope = json_str(o, "scope");
	g->token_type = json_str(o, "token_type");
	g->expires_in = json_num(o, "expires_in", -1);
	g->error = json_str(o, "error");
	g->error_description = json_str(o, "error_description");
	json_decref(o);
	return 0;
}

/* oauth_grant_clear - wipe and free a grant */
void
oauth_grant_clear(struct oauth_grant *g)
{
	secret_free(g->access_token);
	secret_free(g->refresh_token);
	free(g->scope);
	free(g->token_type);
	free(g->error);
	free(g->error_description);
	memset(g, 0, sizeof(*g));
	g->expires_in = -1;
}

/* oauth_device_parse - a device authorisation reply; -1 if it is no JSON */
int
oauth_device_parse(const char *body, size_t len, struct oauth_device *d)
{
	json_t	*o;

	memset(d, 0, sizeof(*d));
	if ((o = json_loadb(body, len, 0, NULL)) == NULL)
		return -1;
	if (!json_is_object(o)) {
		json_decref(o);
		return -1;
	}
	d->device_code = json_str(o, "device_code");
	d->user_code = json_str(o, "user_code");
	/* RFC 8628 says verification_uri; Google says verification_url */
	d->verification_uri = json_str(o, "verification_uri");
	if (d->verification_uri == NULL)
		d->verification_uri = json_str(o, "verification_url");
	d->verification_uri_complete = json_str(o,
	    "verification_uri_complete");
	d->expires_in = json_num(o, "expires_in", DEVICE_WAIT);
	d->interval = json_num(o, "interval", DEVICE_INTERVAL);
	if (d->interval < 1)
		d->interval = 1;
	if (d->expires_in < 1)
		d->expires_in = DEVICE_WAIT;
	d->error = json_str(o, "error");
	d->error_description = json_str(o, "error_description");
	json_decref(o);
	return 0;
}

/* oauth_device_clear - wipe and free a device authorisation */
void
oauth_device_clear(struct oauth_device *d)
{
	secret_free(d->device_code);
	free(d->user_code);
	free(d->verification_uri);
	free(d->verification_uri_complete);
	free(d->error);
	free(d->error_description);
	memset(d, 0, sizeof(*d));
}

/* oauth_store_decode - the token file's JSON; -1 if it is damaged */
int
oauth_store_decode(const char *text, size_t len, struct oauth_store *st)
{
	json_t	*o;

	memset(st, 0, sizeof(*st));
	if ((o = json_loadb(text, len, 0, NULL)) == NULL)
		return -1;
	if (!json_is_object(o)) {
		json_decref(o);
		return -1;
	}
	st->access_token = json_str(o, "access_token");
	st->refresh_token = json_str(o, "refresh_token");
	st->scope = json_str(o, "scope");
	st->token_type = json_str(o, "token_type");
	st->expires_at = (time_t)json_num(o, "expires_at", 0);
	st->refreshed_at = (time_t)json_num(o, "refreshed_at", 0);
	json_decref(o);
	if ((st->access_token != NULL && !oauth_token_ok(st->access_token)) ||
	    (st->refresh_token != NULL &&
	    !oauth_token_ok(st->refresh_token))) {
		oauth_store_clear(st);
		return -1;
	}
	return 0;
}

/* json_opt - a string or JSON null */
static json_t *
json_opt(const char *s)
{
	json_t	*v = s != NULL ? json_string(s) : NULL;

	return v != NULL ? v : json_null();
}

/* oauth_store_encode - the token file's JSON text, newline-terminated */
char *
oauth_store_encode(const struct oauth_store *st)
{
	json_t		*o = json_object();
	char		*text, *out, when[32] = "";
	struct tm	 tm;
	time_t		 t = st->expires_at;

	if (gmtime_r(&t, &tm) != NULL)
		strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
	json_object_set_new(o, "access_token", json_opt(st->access_token));
	json_object_set_new(o, "token_type", json_opt(st->token_type));
	json_object_set_new(o, "expires_at",
	    json_integer((json_int_t)st->expires_at));
	json_object_set_new(o, "expires", json_string(when));
	json_object_set_new(o, "refresh_token", json_opt(st->refresh_token));
	json_object_set_new(o, "scope", json_opt(st->scope));
	json_object_set_new(o, "refreshed_at",
	    json_integer((json_int_t)st->refreshed_at));
	text = json_dumps(o, JSON_INDENT(2));
	json_decref(o);
	if (text == NULL)
		return NULL;
	out = xasprintf("%s\n", text);
	secret_free(text);
	return out;
}

/* oauth_store_update - fold a grant into the store, the newest kept */
void
oauth_store_update(struct oauth_store *st, const struct oauth_grant *g,
    time_t now)
{
	secret_replace(&st->access_token, g->access_token);
	st->expires_at = oauth_expiry(now, g->expires_in);
	/* endpoints that do not rotate leave the refresh token out */
	if (g->refresh_token != NULL)
		secret_replace(&st->refresh_token, g->refresh_token);
	if (g->scope != NULL) {
		free(st->scope);
		st->scope = xstrdup(g->scope);
	}
	free(st->token_type);
	st->token_type = xstrdup(g->token_type != NULL ? g->token_type :
	    "Bearer");
	st->refreshed_at = now;
}

/* oauth_store_clear - wipe and free the store in memory */
void
oauth_store_clear(struct oauth_store *st)
{
	secret_free(st->access_token);
	secret_free(st->refresh_token);
	free(st->scope);
	free(st->token_type);
	memset(st, 0, sizeof(*st));
}

/* oauth_endpoints_resolve - presets of the provider, then the overrides */
int
oauth_endpoints_resolve(const struct account *a, struct oauth_endpoints *ep)
{
	const char	*tenant = a->oauthtenant != NULL ? a->oauthtenant :
	    MS_TENANT;

	memset(ep, 0, sizeof(*ep));
	switch (a->oauthprovider) {
	case OAUTH_PROVIDER_MICROSOFT:
		ep->token_url = xasprintf(MS_BASE "%s/oauth2/v2.0/token",
		    tenant);
		ep->device_url = xasprintf(MS_BASE "%s/oauth2/v2.0/devicecode",
		    tenant);
		ep->auth_url = xasprintf(MS_BASE "%s/oauth2/v2.0/authorize",
		    tenant);
		ep->scope = xstrdup(a->oauthflow ==
		    OAUTH_FLOW_CLIENTCREDENTIALS ? MS_APP_SCOPE : MS_SCOPE);
		ep->localhost_redirect = true;
		ep->refresh_scope = true;
		break;
	case OAUTH_PROVIDER_GOOGLE:
		ep->token_url = xstrdup(GOOGLE_TOKEN);
		ep->device_url = xstrdup(GOOGLE_DEVICE);
		ep->auth_url = xstrdup(GOOGLE_AUTH);
		ep->scope = xstrdup(GOOGLE_SCOPE);
		ep->offline_param = true;
		break;
	case OAUTH_PROVIDER_CUSTOM:
		ep->refresh_scope = true;
		break;
	}
	if (a->oauthtokenurl != NULL) {
		free(ep->token_url);
		ep->token_url = xstrdup(a->oauthtokenurl);
	}
	if (a->oauthdeviceurl != NULL) {
		free(ep->device_url);
		ep->device_url = xstrdup(a->oauthdeviceurl);
	}
	if (a->oauthauthurl != NULL) {
		free(ep->auth_url);
		ep->auth_url = xstrdup(a->oauthauthurl);
	}
	if (a->oauthscope != NULL) {
		free(ep->scope);
		ep->scope = xstrdup(a->oauthscope);
	}
	return ep->token_url != NULL ? 0 : -1;
}

/* oauth_endpoints_free - release resolved endpoints */
void
oauth_endpoints_free(struct oauth_endpoints *ep)
{
	free(ep->token_url);
	free(ep->device_url);
	free(ep->auth_url);
	free(ep->scope);
	memset(ep, 0, sizeof(*ep));
}

/* oauth_default_token_path - msgdir/oauth/<name, made a safe file name>.json */
char *
oauth_default_token_path(const struct config *cfg, const struct account *a)
{
	char	*name = xstrdup(a->name), *at, *path;

	/* the domain of an address is case-insensitive: one file for it */
	if ((at = strrchr(name, '@')) != NULL)
		str_lower(at);
	for (char *p = name; *p != '\0'; p++)
		if (strchr(PATH_SAFE, *p) == NULL)
			*p = '_';
	if (name[0] == '.')
		name[0] = '_';
	path = xasprintf("%s/oauth/%s.json", cfg->msgdir, name);
	free(name);
	return path;
}

/* oauth_token_path - the token file of an account */
char *
oauth_token_path(const struct config *cfg, const struct account *a)
{
	if (a->oauthtokenfile != NULL)
		return xstrdup(a->oauthtokenfile);
	return oauth_default_token_path(cfg, a);
}

/*
 * Token endpoints.
 */

/* client_secret - oauthclientsecret or the first line of its file */
static int
client_secret(const struct account *a, char **out, char *err, size_t errlen)
{
	char	 buf[OAUTH_SECRET_MAX + 1];
	ssize_t	 n;
	size_t	 len;
	int	 fd;

	*out = NULL;
	if (a->oauthclientsecret != NULL) {
		*out = xstrdup(a->oauthclientsecret);
		return 0;
	}
	if (a->oauthclientsecretfile == NULL)
		return 0;
	if ((fd = open(a->oauthclientsecretfile, O_RDONLY | O_CLOEXEC)) < 0) {
		snprintf(err, errlen, "cannot read oauthclientsecretfile %s: "
		    "%s", a->oauthclientsecretfile, strerror(errno));
		return -1;
	}
	do
		n = read(fd, buf, sizeof(buf) - 1);
	while (n < 0 && errno == EINTR);
	close(fd);
	if (n < 0) {
		snprintf(err, errlen, "cannot read oauthclientsecretfile %s: "
		    "%s", a->oauthclientsecretfile, strerror(errno));
		return -1;
	}
	buf[n] = '\0';
	len = strcspn(buf, "\r\n");
	while (len > 0 && (buf[len - 1] == ' ' || buf[len - 1] == '\t'))
		len--;
	buf[len] = '\0';
	if (len == 0) {
		snprintf(err, errlen, "oauthclientsecretfile %s holds no "
		    "secret on its first line", a->oauthclientsecretfile);
		explicit_bzero(buf, sizeof(buf));
		return -1;
	}
	*out = xstrdup(buf);
	explicit_bzero(buf, sizeof(buf));
	return 0;
}

/* http_write_cb - collect an endpoint's reply, bounded */
static size_t
http_write_cb(char *data, size_t size, size_t n, void *arg)
{
	struct http_reply	*r = arg;
	size_t			 len = size * n;
	char			*grown;

	if (r->len + len > OAUTH_RESPONSE_MAX) {
		r->overflow = true;
		return 0;
	}
	grown = xmalloc(r->len + len + 1);
	if (r->body != NULL) {
		memcpy(grown, r->body, r->len);
		explicit_bzero(r->body, r->len);
		free(r->body);
	}
	memcpy(grown + r->len, data, len);
	r->len += len;
	grown[r->len] = '\0';
	r->body = grown;
	return len;
}

/*
 * http_post - one form POST to an endpoint, verified like the SMTP
 * upstream (system CAs plus the account's tlscafile); 0 with the reply,
 * -1 when no reply came
 */
static int
http_post(const struct config *cfg, const struct account *a, const char *url,
    const char *form, struct http_reply *rep, char *err, size_t errlen)
{
	struct curltls_ca	*ca = NULL;
	struct curl_slist	*hdrs = NULL;
	char			 errbuf[CURL_ERROR_SIZE] = "";
	char			*shown = url_shown(url);
	CURL			*c;
	CURLcode		 rc;
	int			 bad = 0;
	bool			 plain;

	memset(rep, 0, sizeof(*rep));
	plain = strncasecmp(url, "http://", 7) == 0;
	if (a->tlscafile != NULL &&
	    (ca = curltls_ca_load(a->tlscafile, err, errlen)) == NULL) {
		free(shown);
		return -1;
	}
	if ((c = curl_easy_init()) == NULL) {
		snprintf(err, errlen, "cannot create a libcurl handle");
		curltls_ca_free(ca);
		free(shown);
		return -1;
	}
	hdrs = curl_slist_append(NULL, "Accept: application/json");
	bad |= curl_easy_setopt(c, CURLOPT_URL, url) != CURLE_OK;
	/* the config allows http:// to loopback only; never a redirect */
	bad |= curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR,
	    plain ? "http" : "https") != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_POSTFIELDS, form) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(form)) !=
	    CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_USERAGENT,
	    "smtpproxy/" SMTPPROXY_VERSION) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_write_cb) !=
	    CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_WRITEDATA, rep) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT,
	    curltls_connect_timeout(cfg)) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_TIMEOUT, curltls_timeout(cfg)) !=
	    CURLE_OK;
	if (!plain)
		bad |= curltls_options(c, true, false, ca) != 0;
	if (bad || hdrs == NULL) {
		snprintf(err, errlen, "libcurl refused an option (%s)",
		    curl_version());
		rc = CURLE_FAILED_INIT;
	} else
		rc = curl_easy_perform(c);
	if (rc == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &rep->status);
	else if (!bad && hdrs != NULL)
		snprintf(err, errlen, "token endpoint %s: %s", shown,
		    rep->overflow ? "reply too long" : errbuf[0] != '\0' ?
		    errbuf : curl_easy_strerror(rc));
	curl_easy_cleanup(c);
	curl_slist_free_all(hdrs);
	curltls_ca_free(ca);
	free(shown);
	if (rc != CURLE_OK) {
		secret_free(rep->body);
		rep->body = NULL;
		rep->len = 0;
		return -1;
	}
	return 0;
}

/* grant_error_text - "error: description" of an endpoint's refusal */
static void
grant_error_text(const struct oauth_grant *g, char *buf, size_t size)
{
	char	code[64], desc[DESC_MAX];

	text_clean(code, sizeof(code), g->error);
	text_clean(desc, sizeof(desc), g->error_description);
	if (desc[0] != '\0')
		snprintf(buf, size, "%s: %s", code, desc);
	else
		snprintf(buf, size, "%s", code);
}

/*
 * token_request - POST a grant to the token endpoint.  OAUTH_OK with an
 * access token in g; OAUTH_TEMPORARY when no usable answer came (network,
 * 5xx, 429); OAUTH_CONFIG when the endpoint refused (g->error tells why:
 * invalid_grant, authorization_pending, ...)
 */
static int
token_request(const struct config *cfg, const struct account *a,
    const char *url, const char *const *pairs, struct oauth_grant *g,
    char *err, size_t errlen)
{
	struct http_reply	 rep;
	char			*form = oauth_form_encode(pairs);
	char			*shown = url_shown(url);
	char			 why[OAUTH_ERR_MAX];
	int			 rc = OAUTH_OK, parsed;

	memset(g, 0, sizeof(*g));
	g->expires_in = -1;
	if (http_post(cfg, a, url, form, &rep, err, errlen) == -1) {
		secret_free(form);
		free(shown);
		return OAUTH_TEMPORARY;
	}
	secret_free(form);
	parsed = oauth_grant_parse(rep.body != NULL ? rep.body : "", rep.len,
	    g);
	secret_free(rep.body);
	if (rep.status >= 500 || rep.status == 429) {
		snprintf(err, errlen, "token endpoint %s answered HTTP %ld",
		    shown, rep.status);
		rc = OAUTH_TEMPORARY;
	} else if (parsed == -1) {
		snprintf(err, errlen, "token endpoint %s answered HTTP %ld "
		    "without an OAuth reply", shown, rep.status);
		rc = rep.status / 100 == 2 ? OAUTH_TEMPORARY : OAUTH_CONFIG;
	} else if (g->error != NULL || rep.status / 100 != 2) {
		if (g->error == NULL)
			g->error = xstrdup("http_error");
		grant_error_text(g, why, sizeof(why));
		snprintf(err, errlen, "token endpoint %s refused: %s", shown,
		    why);
		/* RFC 6749 5.2 and 4.1.2.1: errors that pass by themselves */
		rc = strcmp(g->error, "temporarily_unavailable") == 0 ||
		    strcmp(g->error, "server_error") == 0 ? OAUTH_TEMPORARY :
		    OAUTH_CONFIG;
	} else if (!oauth_token_ok(g->access_token) ||
	    (g->refresh_token != NULL && !oauth_token_ok(g->refresh_token))) {
		snprintf(err, errlen, "token endpoint %s gave no usable access "
		    "token", shown);
		rc = OAUTH_TEMPORARY;
	} else if (g->token_type != NULL &&
	    strcasecmp(g->token_type, "bearer") != 0) {
		snprintf(err, errlen, "token endpoint %s gave a token of type "
		    "\"%.32s\", not Bearer", shown, g->token_type);
		rc = OAUTH_CONFIG;
	}
	free(shown);
	if (rc == OAUTH_TEMPORARY || (rc == OAUTH_CONFIG && g->error == NULL))
		oauth_grant_clear(g);
	return rc;
}

/*
 * The token file, its lock and its mark.
 */

/* sibling_path - path with a suffix: the lock or the mark beside a file */
static char *
sibling_path(const char *path, const char *suffix)
{
	return xasprintf("%s%s", path, suffix);
}

/* store_dir - the folder of the token file; missing ones are made 0700 */
static int
store_dir(const char *path, char *err, size_t errlen)
{
	char	*copy = xstrdup(path), *dir = dirname(copy), *p;
	int	 rc = 0;

	for (p = dir + 1; rc == 0; p++) {
		bool	last = *p == '\0';

		if (*p != '/' && !last)
			continue;
		*p = '\0';
		if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
			snprintf(err, errlen, "cannot make %s: %s", dir,
			    strerror(errno));
			rc = -1;
		}
		if (last)
			break;
		*p = '/';
	}
	free(copy);
	return rc;
}

/*
 * store_lock - take FILE.lock; waits while another process refreshes
 * (bounded by its own network deadline).  The descriptor, or -1.
 */
static int
store_lock(const struct config *cfg, const char *path, char *err,
    size_t errlen)
{
	char	*lock = sibling_path(path, LOCK_SUFFIX);
	int64_t	 deadline = now_ms() +
	    (curltls_timeout(cfg) + LOCK_EXTRA) * 1000;
	int	 fd;

	fd = open(lock, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "cannot open %s: %s", lock,
		    strerror(errno));
		free(lock);
		return -1;
	}
	while (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		if ((errno != EWOULDBLOCK && errno != EINTR) ||
		    now_ms() >= deadline) {
			snprintf(err, errlen, "cannot lock %s: %s", lock,
			    errno == EWOULDBLOCK ? "held too long by another "
			    "process" : strerror(errno));
			close(fd);
			free(lock);
			return -1;
		}
		poll(NULL, 0, LOCK_POLL_MS);
	}
	free(lock);
	return fd;
}

/* store_unlock - release FILE.lock */
static void
store_unlock(int fd)
{
	if (fd < 0)
		return;
	flock(fd, LOCK_UN);
	close(fd);
}

/* store_read - the token file: 0, 1 when there is none, -1 error, -2 damaged */
static int
store_read(const char *path, struct oauth_store *st, char *err, size_t errlen)
{
	char	*buf;
	size_t	 len = 0;
	ssize_t	 n;
	int	 fd, rc;

	memset(st, 0, sizeof(*st));
	if ((fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW)) < 0) {
		if (errno == ENOENT)
			return 1;
		snprintf(err, errlen, "cannot read %s: %s", path,
		    strerror(errno));
		return -1;
	}
	buf = xmalloc(OAUTH_STORE_MAX + 1);
	while (len < OAUTH_STORE_MAX) {
		n = read(fd, buf + len, OAUTH_STORE_MAX - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	rc = n < 0 ? -1 : 0;
	if (rc == -1)
		snprintf(err, errlen, "cannot read %s: %s", path,
		    strerror(errno));
	close(fd);
	if (rc == 0 && (len == OAUTH_STORE_MAX ||
	    oauth_store_decode(buf, len, st) == -1)) {
		snprintf(err, errlen, "token file %s is damaged", path);
		rc = -2;
	}
	explicit_bzero(buf, len);
	free(buf);
	return rc;
}

/* store_write - the token file replaced: temporary file, fsync, rename */
static int
store_write(const char *path, const struct oauth_store *st, char *err,
    size_t errlen)
{
	char	*text = oauth_store_encode(st);
	char	*tmp = xasprintf("%s.tmp.%ld", path, (long)getpid());
	char	*copy = xstrdup(path);
	int	 fd = -1, rc = -1;

	if (text == NULL) {
		snprintf(err, errlen, "cannot encode the token file");
		goto done;
	}
	unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW,
	    0600);
	if (fd < 0 || write_all(fd, text, strlen(text)) < 0 || fsync(fd) < 0) {
		snprintf(err, errlen, "cannot write %s: %s", tmp,
		    strerror(errno));
		goto done;
	}
	if (close(fd) < 0) {
		fd = -1;
		snprintf(err, errlen, "cannot write %s: %s", tmp,
		    strerror(errno));
		goto done;
	}
	fd = -1;
	if (rename(tmp, path) < 0) {
		snprintf(err, errlen, "cannot rename %s to %s: %s", tmp, path,
		    strerror(errno));
		goto done;
	}
	if (fsync_dir(dirname(copy)) < 0)
		log_warning("oauth: cannot fsync the folder of %s: %s", path,
		    strerror(errno));
	rc = 0;
done:
	if (fd >= 0)
		close(fd);
	if (rc == -1)
		unlink(tmp);
	secret_free(text);
	free(tmp);
	free(copy);
	return rc;
}

/* mark_set - FILE.needauth with the reason: the account needs oauth */
static int
mark_set(const char *path, const char *reason)
{
	char	*mark = sibling_path(path, MARK_SUFFIX);
	char	*line = xasprintf("%s\n", reason);
	int	 fd, rc = 0;

	fd = open(mark, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW,
	    0600);
	if (fd < 0 || write_all(fd, line, strlen(line)) < 0)
		rc = -1;
	if (fd >= 0 && close(fd) < 0)
		rc = -1;
	free(mark);
	free(line);
	return rc;
}

/* mark_clear - the account is authorised again */
static void
mark_clear(const char *path)
{
	char	*mark = sibling_path(path, MARK_SUFFIX);

	unlink(mark);
	free(mark);
}

/* mark_read - is the account marked; its reason into buf */
static bool
mark_read(const char *path, char *buf, size_t size)
{
	char	*mark = sibling_path(path, MARK_SUFFIX);
	char	 line[OAUTH_ERR_MAX];
	FILE	*fp = fopen(mark, "re");

	free(mark);
	if (fp == NULL)
		return false;
	if (fgets(line, sizeof(line), fp) == NULL)
		line[0] = '\0';
	fclose(fp);
	line[strcspn(line, "\r\n")] = '\0';
	if (buf != NULL)
		text_clean(buf, size, line[0] != '\0' ? line :
		    "the token endpoint refused the refresh token");
	return true;
}

/* uses_store - an account whose tokens live in the token file */
static bool
uses_store(const struct account *a)
{
	return a->use == NULL && a->smtpauth == SMTPAUTH_XOAUTH2 &&
	    a->oauthtokencommand == NULL;
}

/*
 * Refresh.
 */

/*
 * store_refresh - a new access token for the store (refresh token, or
 * client credentials), written to the file; the caller holds the lock.
 * invalid_grant (or interaction_required) marks the account.
 */
static int
store_refresh(const struct config *cfg, const struct account *a,
    const char *path, struct oauth_store *st, char *err, size_t errlen)
{
	struct oauth_endpoints	 ep;
	struct oauth_grant	 g;
	char			*secret = NULL, why[OAUTH_ERR_MAX];
	char			 werr[OAUTH_ERR_MAX];
	bool			 app = a->oauthflow ==
	    OAUTH_FLOW_CLIENTCREDENTIALS;
	int			 rc;

	if (oauth_endpoints_resolve(a, &ep) == -1) {
		snprintf(err, errlen, "account [%s] has no oauthtokenurl",
		    a->name);
		return OAUTH_CONFIG;
	}
	if (client_secret(a, &secret, err, errlen) == -1) {
		oauth_endpoints_free(&ep);
		return OAUTH_CONFIG;
	}
	if (!app && st->refresh_token == NULL) {
		snprintf(err, errlen, "no refresh token stored for [%s] (was "
		    "offline access granted?)", a->name);
		mark_set(path, err);
		oauth_endpoints_free(&ep);
		secret_free(secret);
		return OAUTH_NEEDAUTH;
	}
	if (app) {
		const char *const pairs[] = {
			"grant_type", "client_credentials",
			"client_id", a->oauthclientid,
			"client_secret", secret,
			"scope", ep.scope,
			NULL
		};

		rc = token_request(cfg, a, ep.token_url, pairs, &g, err,
		    errlen);
	} else {
		const char *const pairs[] = {
			"grant_type", "refresh_token",
			"refresh_token", st->refresh_token,
			"client_id", a->oauthclientid,
			"client_secret", secret,
			"scope", ep.refresh_scope ? ep.scope : NULL,
			NULL
		};

		rc = token_request(cfg, a, ep.token_url, pairs, &g, err,
		    errlen);
	}
	secret_free(secret);
	oauth_endpoints_free(&ep);
	if (rc == OAUTH_CONFIG && !app && g.error != NULL &&
	    (strcmp(g.error, "invalid_grant") == 0 ||
	    strcmp(g.error, "interaction_required") == 0)) {
		grant_error_text(&g, why, sizeof(why));
		mark_set(path, why);
		log_error("oauth: [%s]: the token endpoint refused the refresh "
		    "token (%s); mail for this account stays queued until an "
		    "administrator runs: smtpproxyctl -c %s oauth %s", a->name,
		    why, cfg->path, a->name);
		snprintf(err, errlen, "OAuth authorisation of [%s] is needed "
		    "(%s): run smtpproxyctl oauth %s", a->name, why, a->name);
		rc = OAUTH_NEEDAUTH;
	}
	if (rc != OAUTH_OK) {
		oauth_grant_clear(&g);
		return rc;
	}
	oauth_store_update(st, &g, time(NULL));
	oauth_grant_clear(&g);
	if (store_write(path, st, werr, sizeof(werr)) == -1)
		log_error("oauth: [%s]: new token not saved, the next refresh "
		    "may need a new authorisation: %s", a->name, werr);
	log_info("oauth: [%s]: access token %s, valid for %lld s", a->name,
	    app ? "obtained" : "refreshed",
	    (long long)(st->expires_at - time(NULL)));
	return OAUTH_OK;
}

/* token_from_store - the stored token, refreshed under the lock if due */
static int
token_from_store(const struct config *cfg, const struct account *a,
    struct oauth_token *tok, char *err, size_t errlen)
{
	struct oauth_store	 st;
	char			*path = oauth_token_path(cfg, a);
	char			 why[OAUTH_ERR_MAX];
	bool			 app = a->oauthflow ==
	    OAUTH_FLOW_CLIENTCREDENTIALS;
	time_t			 now;
	int			 fd, rc;

	if (!app && access(path, F_OK) < 0 && errno == ENOENT) {
		snprintf(err, errlen, "[%s] is not authorised yet: run "
		    "smtpproxyctl oauth %s", a->name, a->name);
		free(path);
		return OAUTH_NEEDAUTH;
	}
	if ((app && store_dir(path, err, errlen) == -1) ||
	    (fd = store_lock(cfg, path, err, errlen)) == -1) {
		free(path);
		return OAUTH_TEMPORARY;
	}
	rc = store_read(path, &st, err, errlen);
	if (rc == -1) {
		rc = OAUTH_TEMPORARY;
		goto done;
	}
	if (!app && mark_read(path, why, sizeof(why))) {
		snprintf(err, errlen, "OAuth authorisation of [%s] is needed "
		    "(%s): run smtpproxyctl oauth %s", a->name, why, a->name);
		rc = OAUTH_NEEDAUTH;
		goto done;
	}
	if (rc == -2 && !app) {
		mark_set(path, "the token file is damaged");
		log_error("oauth: [%s]: %s; mail for this account stays queued "
		    "until an administrator runs: smtpproxyctl -c %s oauth %s",
		    a->name, err, cfg->path, a->name);
		rc = OAUTH_NEEDAUTH;
		goto done;
	}
	if (rc == 1 && !app) {
		snprintf(err, errlen, "[%s] is not authorised yet: run "
		    "smtpproxyctl oauth %s", a->name, a->name);
		rc = OAUTH_NEEDAUTH;
		goto done;
	}
	now = time(NULL);
	tok->fresh = false;
	if (oauth_needs_refresh(&st, now)) {
		rc = store_refresh(cfg, a, path, &st, err, errlen);
		if (rc == OAUTH_OK)
			tok->fresh = true;
		else if (rc != OAUTH_NEEDAUTH && st.access_token != NULL &&
		    st.expires_at - now >= OAUTH_USABLE_MIN) {
			log_warning("oauth: [%s]: refresh failed, the current "
			    "token is used while it lasts (%lld s): %s",
			    a->name, (long long)(st.expires_at - now), err);
			rc = OAUTH_OK;
		}
		if (rc != OAUTH_OK)
			goto done;
	}
	tok->access = xstrdup(st.access_token);
	tok->expires_at = st.expires_at;
	rc = OAUTH_OK;
done:
	oauth_store_clear(&st);
	store_unlock(fd);
	free(path);
	return rc;
}

/* command_read - all of a command's output within its deadline */
static int
command_read(int fd, pid_t pid, char **out, size_t *outlen, char *err,
    size_t errlen)
{
	int64_t	 deadline = now_ms() + OAUTH_COMMAND_TIMEOUT * 1000;
	char	*buf = xmalloc(OAUTH_RESPONSE_MAX + 1);
	size_t	 len = 0;
	int	 rc = 0;

	for (;;) {
		struct pollfd	pfd = { .fd = fd, .events = POLLIN };
		int64_t		left = deadline - now_ms();
		ssize_t		n;

		if (left <= 0) {
			snprintf(err, errlen, "oauthtokencommand took longer "
			    "than %d s", OAUTH_COMMAND_TIMEOUT);
			rc = -1;
			break;
		}
		if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR) {
			snprintf(err, errlen, "poll: %s", strerror(errno));
			rc = -1;
			break;
		}
		if (pfd.revents == 0)
			continue;
		n = read(fd, buf + len, OAUTH_RESPONSE_MAX - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			snprintf(err, errlen, "oauthtokencommand: read: %s",
			    strerror(errno));
			rc = -1;
			break;
		}
		if (n == 0)
			break;
		len += (size_t)n;
		if (len == OAUTH_RESPONSE_MAX) {
			snprintf(err, errlen, "oauthtokencommand printed more "
			    "than %d bytes", OAUTH_RESPONSE_MAX);
			rc = -1;
			break;
		}
	}
	if (rc == -1)
		kill(-pid, SIGKILL);
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	return rc;
}

/* token_command - the first line of oauthtokencommand, bounded */
static int
token_command(const struct config *cfg, const struct account *a,
    struct oauth_token *tok, char *err, size_t errlen)
{
	char		*out = NULL;
	size_t		 len = 0;
	int		 p[2], status = 0, rc;
	pid_t		 pid;
	int64_t		 deadline;

	if (pipe2(p, O_CLOEXEC) < 0) {
		snprintf(err, errlen, "pipe: %s", strerror(errno));
		return OAUTH_TEMPORARY;
	}
	if ((pid = fork()) < 0) {
		snprintf(err, errlen, "fork: %s", strerror(errno));
		close(p[0]);
		close(p[1]);
		return OAUTH_TEMPORARY;
	}
	if (pid == 0) {
		sigset_t	none;
		int		null = open("/dev/null", O_RDWR);

		/* its own group: a hung command goes with its children */
		setpgid(0, 0);
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		signal(SIGPIPE, SIG_DFL);
		signal(SIGCHLD, SIG_DFL);
		if (null < 0 || dup2(null, 0) < 0 || dup2(p[1], 1) < 0)
			_exit(126);
		execl("/bin/sh", "sh", "-c", a->oauthtokencommand,
		    (char *)NULL);
		_exit(127);
	}
	/* set on both sides, so that a kill never misses the group */
	setpgid(pid, pid);
	close(p[1]);
	rc = command_read(p[0], pid, &out, &len, err, errlen);
	close(p[0]);
	deadline = now_ms() + OAUTH_COMMAND_TIMEOUT * 1000;
	while (waitpid(pid, &status, WNOHANG) == 0) {
		if (now_ms() >= deadline) {
			kill(-pid, SIGKILL);
			waitpid(pid, &status, 0);
			if (rc == 0)
				snprintf(err, errlen, "oauthtokencommand took "
				    "longer than %d s", OAUTH_COMMAND_TIMEOUT);
			rc = -1;
			break;
		}
		poll(NULL, 0, 10);
	}
	if (rc == 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
		snprintf(err, errlen, "oauthtokencommand failed (%s %d)",
		    WIFEXITED(status) ? "exit status" : "signal",
		    WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		rc = -1;
	}
	if (rc == 0) {
		out[strcspn(out, "\r\n")] = '\0';
		if (!oauth_token_ok(out)) {
			snprintf(err, errlen, "oauthtokencommand printed no "
			    "token on its first line");
			rc = -1;
		}
	}
	if (rc == 0) {
		tok->access = xstrdup(out);
		tok->expires_at = 0;
		tok->fresh = false;
	}
	explicit_bzero(out, len);
	free(out);
	(void)cfg;
	return rc == 0 ? OAUTH_OK : OAUTH_TEMPORARY;
}

/* oauth_access_token - a current access token for an xoauth2 account */
int
oauth_access_token(const struct config *cfg, const struct account *a,
    struct oauth_token *tok, char *err, size_t errlen)
{
	memset(tok, 0, sizeof(*tok));
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if (a->smtpauth != SMTPAUTH_XOAUTH2) {
		snprintf(err, errlen, "[%s] does not use smtpauth=xoauth2",
		    a->name);
		return OAUTH_CONFIG;
	}
	if (a->oauthtokencommand != NULL)
		return token_command(cfg, a, tok, err, errlen);
	return token_from_store(cfg, a, tok, err, errlen);
}

/* oauth_token_clear - wipe and forget a token in hand */
void
oauth_token_clear(struct oauth_token *tok)
{
	secret_free(tok->access);
	memset(tok, 0, sizeof(*tok));
}

/* oauth_token_rejected - the upstream refused token: let it expire now */
void
oauth_token_rejected(const struct config *cfg, const struct account *a,
    const char *token)
{
	struct oauth_store	 st;
	char			*path, err[OAUTH_ERR_MAX];
	int			 fd;

	if (!uses_store(a) || token == NULL)
		return;
	path = oauth_token_path(cfg, a);
	if ((fd = store_lock(cfg, path, err, sizeof(err))) == -1) {
		log_warning("oauth: [%s]: %s", a->name, err);
		free(path);
		return;
	}
	/* another process may have stored a newer token already: keep it */
	if (store_read(path, &st, err, sizeof(err)) == 0 &&
	    st.access_token != NULL && strcmp(st.access_token, token) == 0) {
		st.expires_at = 0;
		if (store_write(path, &st, err, sizeof(err)) == -1)
			log_warning("oauth: [%s]: %s", a->name, err);
	}
	oauth_store_clear(&st);
	store_unlock(fd);
	free(path);
}

/* oauth_needs_authorisation - must an administrator run smtpproxyctl oauth */
bool
oauth_needs_authorisation(const struct config *cfg, const struct account *a,
    char *why, size_t size)
{
	struct stat	 sb;
	char		*path;
	bool		 needed = false;

	if (!uses_store(a) || a->oauthflow == OAUTH_FLOW_CLIENTCREDENTIALS)
		return false;
	path = oauth_token_path(cfg, a);
	if (mark_read(path, why, size))
		needed = true;
	else if (stat(path, &sb) < 0 && errno == ENOENT) {
		if (why != NULL)
			snprintf(why, size, "not authorised yet");
		needed = true;
	}
	free(path);
	return needed;
}

/* keepalive_path_seen - a token file handled earlier in this round */
static bool
keepalive_path_seen(const struct config *cfg, size_t upto, const char *path)
{
	for (size_t i = 0; i < upto; i++) {
		const struct account	*b = &cfg->accounts[i];
		char			*other;
		bool			 same;

		if (!uses_store(b) || b->oauthflow ==
		    OAUTH_FLOW_CLIENTCREDENTIALS)
			continue;
		other = oauth_token_path(cfg, b);
		same = strcmp(other, path) == 0;
		free(other);
		if (same)
			return true;
	}
	return false;
}

/* oauth_keepalive_due - is any stored refresh token due for a keep-alive */
bool
oauth_keepalive_due(const struct config *cfg, time_t now)
{
	bool	due = false;

	for (size_t i = 0; i < cfg->naccounts && !due; i++) {
		const struct account	*a = &cfg->accounts[i];
		struct oauth_store	 st;
		char			*path, err[OAUTH_ERR_MAX];

		if (!uses_store(a) || a->oauthflow ==
		    OAUTH_FLOW_CLIENTCREDENTIALS)
			continue;
		path = oauth_token_path(cfg, a);
		if (!mark_read(path, NULL, 0) &&
		    store_read(path, &st, err, sizeof(err)) == 0) {
			due = oauth_keepalive_needed(&st, now);
			oauth_store_clear(&st);
		}
		free(path);
	}
	return due;
}

/* oauth_keepalive - refresh every refresh token left unused too long */
void
oauth_keepalive(const struct config *cfg)
{
	for (size_t i = 0; i < cfg->naccounts; i++) {
		const struct account	*a = &cfg->accounts[i];
		struct oauth_store	 st;
		char			*path, err[OAUTH_ERR_MAX];
		int			 fd;

		if (!uses_store(a) || a->oauthflow ==
		    OAUTH_FLOW_CLIENTCREDENTIALS)
			continue;
		path = oauth_token_path(cfg, a);
		if (keepalive_path_seen(cfg, i, path) ||
		    mark_read(path, NULL, 0) ||
		    (fd = store_lock(cfg, path, err, sizeof(err))) == -1) {
			free(path);
			continue;
		}
		if (store_read(path, &st, err, sizeof(err)) == 0 &&
		    oauth_keepalive_needed(&st, time(NULL))) {
			log_info("oauth: [%s]: refresh token unused for %lld "
			    "days, refreshing it", a->name, (long long)
			    ((time(NULL) - st.refreshed_at) / 86400));
			if (store_refresh(cfg, a, path, &st, err,
			    sizeof(err)) == OAUTH_TEMPORARY)
				log_warning("oauth: [%s]: keep-alive refresh "
				    "failed, tried again later: %s", a->name,
				    err);
		}
		oauth_store_clear(&st);
		store_unlock(fd);
		free(path);
	}
}

/* oauth_keepalive_start - oauth_keepalive() in a child, when any is due */
pid_t
oauth_keepalive_start(const struct config *cfg)
{
	pid_t	pid;

	if (!oauth_keepalive_due(cfg, time(NULL)))
		return 0;
	if ((pid = fork()) < 0) {
		log_error("oauth keep-alive: fork: %s", strerror(errno));
		return -1;
	}
	if (pid > 0)
		return pid;
	/* never outlive the relay that started it */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGCHLD, SIG_DFL);
	oauth_keepalive(cfg);
	_exit(0);
}

/* oauth_status - one line on an account's tokens, for smtpproxyctl status */
void
oauth_status(const struct config *cfg, const struct account *a, char *buf,
    size_t size)
{
	struct oauth_store	 st;
	char			*path, why[OAUTH_ERR_MAX];
	char			 err[OAUTH_ERR_MAX];
	time_t			 now = time(NULL);
	int			 rc;

	if (a->oauthtokencommand != NULL) {
		snprintf(buf, size, "tokens from oauthtokencommand");
		return;
	}
	if (oauth_needs_authorisation(cfg, a, why, sizeof(why))) {
		snprintf(buf, size, "NEEDS AUTHORISATION (%s): run "
		    "smtpproxyctl oauth %s", why, a->name);
		return;
	}
	path = oauth_token_path(cfg, a);
	rc = store_read(path, &st, err, sizeof(err));
	free(path);
	if (rc == 1)
		snprintf(buf, size, "no token yet (client credentials: "
		    "requested at the first delivery)");
	else if (rc != 0)
		snprintf(buf, size, "%s", err);
	else if (st.access_token == NULL || st.expires_at <= now)
		snprintf(buf, size, "access token expired, refreshed at the "
		    "next delivery%s", st.refresh_token != NULL ||
		    a->oauthflow == OAUTH_FLOW_CLIENTCREDENTIALS ? "" :
		    " (no refresh token)");
	else
		snprintf(buf, size, "ok, access token valid for %lld s, last "
		    "grant %lld s ago", (long long)(st.expires_at - now),
		    (long long)(now - st.refreshed_at));
	if (rc == 0)
		oauth_store_clear(&st);
}

/*
 * First authorisation (smtpproxyctl oauth).
 */

/* flow_device - RFC 8628: show the code, poll until the user is done */
static int
flow_device(const struct config *cfg, const struct account *a,
    const struct oauth_endpoints *ep, const struct oauth_prompt *pr,
    struct oauth_grant *g, char *err, size_t errlen)
{
	struct oauth_device	 dev;
	struct http_reply	 rep;
	char			*form, *secret = NULL, why[OAUTH_ERR_MAX];
	char			*shown;
	const char		*pairs[] = {
		"client_id", a->oauthclientid, "scope", ep->scope, NULL
	};
	time_t			 deadline;
	long			 interval;
	int			 rc = -1;

	if (ep->device_url == NULL) {
		snprintf(err, errlen, "no device authorisation endpoint: set "
		    "oauthdeviceurl");
		return -1;
	}
	if (client_secret(a, &secret, err, errlen) == -1)
		return -1;
	form = oauth_form_encode(pairs);
	if (http_post(cfg, a, ep->device_url, form, &rep, err, errlen) == -1) {
		free(form);
		secret_free(secret);
		return -1;
	}
	free(form);
	shown = url_shown(ep->device_url);
	if (oauth_device_parse(rep.body != NULL ? rep.body : "", rep.len,
	    &dev) == -1) {
		snprintf(err, errlen, "device endpoint %s answered HTTP %ld "
		    "without an OAuth reply", shown, rep.status);
		goto out;
	}
	if (dev.error != NULL || rep.status / 100 != 2) {
		struct oauth_grant	e = { .error = dev.error,
		    .error_description = dev.error_description };

		if (e.error == NULL)
			e.error = "http_error";
		grant_error_text(&e, why, sizeof(why));
		snprintf(err, errlen, "device endpoint %s refused: %s", shown,
		    why);
		goto out;
	}
	if (dev.device_code == NULL || dev.user_code == NULL ||
	    dev.verification_uri == NULL) {
		snprintf(err, errlen, "device endpoint %s gave no code", shown);
		goto out;
	}
	text_clean(why, sizeof(why), dev.verification_uri);
	say(pr->out, "To authorise %s, open\n\n  %s\n\nin a browser (on any "
	    "machine) and enter the code\n\n  %s\n\n", a->name, why,
	    dev.user_code);
	if (dev.verification_uri_complete != NULL) {
		text_clean(why, sizeof(why), dev.verification_uri_complete);
		say(pr->out, "(or open %s)\n", why);
	}
	say(pr->out, "Waiting for the login (the code expires in %ld min)...\n",
	    (dev.expires_in + 59) / 60);
	deadline = time(NULL) + dev.expires_in;
	if (pr->wait > 0 && time(NULL) + pr->wait < deadline)
		deadline = time(NULL) + pr->wait;
	interval = dev.interval;
	for (;;) {
		const char *const poll_pairs[] = {
			"grant_type", GRANT_DEVICE,
			"device_code", dev.device_code,
			"client_id", a->oauthclientid,
			"client_secret", secret,
			NULL
		};
		int	r;

		if (time(NULL) + interval > deadline) {
			snprintf(err, errlen, "the code expired before the "
			    "login was finished: run smtpproxyctl oauth %s "
			    "again", a->name);
			break;
		}
		sleep_seconds(interval);
		r = token_request(cfg, a, ep->token_url, poll_pairs, g, err,
		    errlen);
		if (r == OAUTH_OK) {
			rc = 0;
			break;
		}
		if (r == OAUTH_TEMPORARY) {
			say(pr->out, "(%s; trying again)\n", err);
			continue;
		}
		if (oauth_poll_next(g->error, &interval)) {
			oauth_grant_clear(g);
			continue;
		}
		if (g->error != NULL && strcmp(g->error, "expired_token") == 0)
			snprintf(err, errlen, "the code expired before the "
			    "login was finished: run smtpproxyctl oauth %s "
			    "again", a->name);
		else if (g->error != NULL &&
		    strcmp(g->error, "access_denied") == 0)
			snprintf(err, errlen, "the login was declined");
		oauth_grant_clear(g);
		break;
	}
out:
	secret_free(rep.body);
	oauth_device_clear(&dev);
	secret_free(secret);
	free(shown);
	return rc;
}

/* authcode_url - the provider's login page with our request in its query */
static char *
authcode_url(const struct account *a, const struct oauth_endpoints *ep,
    const char *redirect, const char *state, const char *challenge)
{
	const char	*names[] = {
		"response_type", "client_id", "redirect_uri", "scope", "state",
		"code_challenge", "code_challenge_method", "access_type",
		"prompt"
	};
	const char	*values[] = {
		"code", a->oauthclientid, redirect, ep->scope, state,
		challenge, "S256", ep->offline_param ? "offline" : NULL,
		ep->offline_param ? "consent" : NULL
	};
	char		*url = xstrdup(ep->auth_url), *next, *v;
	bool		 first = strchr(url, '?') == NULL;

	for (size_t i = 0; i < ARRAY_LEN(names); i++) {
		if (values[i] == NULL)
			continue;
		v = oauth_url_encode(values[i]);
		next = xasprintf("%s%c%s=%s", url, first ? '?' : '&',
		    names[i], v);
		first = false;
		free(v);
		free(url);
		url = next;
	}
	return url;
}

/* loopback_listen - a listening socket on 127.0.0.1 (port 0: any) */
static int
loopback_listen(int port, int *bound, char *err, size_t errlen)
{
	struct sockaddr_in	sin;
	socklen_t		len = sizeof(sin);
	int			fd, one = 1;

	if ((fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0) {
		snprintf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons((uint16_t)port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) < 0 ||
	    listen(fd, 8) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sin, &len) < 0) {
		snprintf(err, errlen, "cannot listen on 127.0.0.1:%d: %s",
		    port, strerror(errno));
		close(fd);
		return -1;
	}
	*bound = ntohs(sin.sin_port);
	return fd;
}

/*
 * authcode_take - look at a redirected address (request target or pasted
 * URL): true when it ends the wait (a code with our state, or a refusal)
 */
static bool
authcode_take(struct authcode_wait *w, const char *where)
{
	char	*state = oauth_query_get(where, "state");
	char	*code = oauth_query_get(where, "code");
	char	*error = oauth_query_get(where, "error");
	bool	 done = false;

	if (state == NULL || strcmp(state, w->state) != 0) {
		if (code != NULL || error != NULL)
			say(w->out, "An address came back with %s state: "
			    "ignored (is it from the latest login link?)\n",
			    state == NULL ? "no" : "another");
	} else if (error != NULL) {
		char	*desc = oauth_query_get(where, "error_description");
		struct oauth_grant	e = { .error = error,
		    .error_description = desc };
		char	why[OAUTH_ERR_MAX];

		grant_error_text(&e, why, sizeof(why));
		w->error = xstrdup(why);
		free(desc);
		done = true;
	} else if (code != NULL && code[0] != '\0') {
		w->code = code;
		code = NULL;
		done = true;
	}
	free(state);
	secret_free(code);
	free(error);
	return done;
}

/* redirect_answer - a small HTML page to the browser */
static void
redirect_answer(int fd, int status, const char *text)
{
	char	*page = xasprintf("<!DOCTYPE html>\n<html><head><meta "
	    "charset=\"utf-8\"><title>smtpproxy</title></head><body><p>%s</p>"
	    "</body></html>\n", text);
	char	*head = xasprintf("HTTP/1.1 %d %s\r\n"
	    "Content-Type: text/html; charset=utf-8\r\n"
	    "Content-Length: %zu\r\nCache-Control: no-store\r\n"
	    "Connection: close\r\n\r\n", status, status == 200 ? "OK" :
	    status == 404 ? "Not Found" : "Bad Request", strlen(page));

	(void)!write_all(fd, head, strlen(head));
	(void)!write_all(fd, page, strlen(page));
	free(head);
	free(page);
}

/* redirect_serve - one browser request on the loopback listener; done? */
static bool
redirect_serve(int lfd, struct authcode_wait *w)
{
	struct timeval	 tv = { .tv_sec = REDIRECT_TIMEOUT };
	char		*head = xmalloc(REDIRECT_HEAD_MAX + 1);
	char		*target, *sp;
	size_t		 len = 0;
	ssize_t		 n;
	int		 fd;
	bool		 done = false;

	if ((fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC)) < 0) {
		free(head);
		return false;
	}
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	head[0] = '\0';
	while (len < REDIRECT_HEAD_MAX && strstr(head, "\r\n\r\n") == NULL &&
	    strstr(head, "\n\n") == NULL) {
		n = read(fd, head + len, REDIRECT_HEAD_MAX - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		head[len] = '\0';
	}
	head[strcspn(head, "\r\n")] = '\0';
	if (strncmp(head, "GET ", 4) != 0) {
		redirect_answer(fd, 400, "Not a login redirect.");
		goto out;
	}
	target = head + 4;
	if ((sp = strchr(target, ' ')) != NULL)
		*sp = '\0';
	if ((done = authcode_take(w, target))) {
		if (w->code != NULL)
			redirect_answer(fd, 200, "smtpproxy received the "
			    "authorisation. You can close this window.");
		else
			redirect_answer(fd, 400, "The login was refused; "
			    "see smtpproxyctl for the reason.");
	} else
		redirect_answer(fd, 404, "Nothing here.");
out:
	explicit_bzero(head, REDIRECT_HEAD_MAX + 1);
	free(head);
	close(fd);
	return done;
}

/*
 * authcode_await - until the browser comes back to the loopback listener
 * or the redirected address is pasted on prompt->in
 */
static int
authcode_await(int lfd, const struct oauth_prompt *pr,
    struct authcode_wait *w, char *err, size_t errlen)
{
	char	*paste = xmalloc(PASTE_MAX + 1);
	size_t	 len = 0;
	int	 in = pr->in;
	time_t	 deadline = time(NULL) + (pr->wait > 0 ? pr->wait :
	    AUTHCODE_WAIT);
	bool	 done = false;

	while (!done) {
		struct pollfd	pfd[2] = {
			{ .fd = lfd, .events = POLLIN },
			{ .fd = in, .events = POLLIN },
		};
		time_t		left = deadline - time(NULL);
		ssize_t		n;
		char		*nl;

		if (left <= 0) {
			snprintf(err, errlen, "no login within %d s: run "
			    "smtpproxyctl oauth again", pr->wait > 0 ?
			    pr->wait : AUTHCODE_WAIT);
			break;
		}
		if (poll(pfd, in >= 0 ? 2 : 1, (int)(left > 1000 ? 1000000 :
		    left * 1000)) < 0 && errno != EINTR) {
			snprintf(err, errlen, "poll: %s", strerror(errno));
			break;
		}
		if (pfd[0].revents & POLLIN)
			done = redirect_serve(lfd, w);
		if (done || in < 0 || pfd[1].revents == 0)
			continue;
		n = read(in, paste + len, PASTE_MAX - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			/* no more input: the browser may still come */
			in = -1;
			continue;
		}
		len += (size_t)n;
		paste[len] = '\0';
		while (!done && (nl = strchr(paste, '\n')) != NULL) {
			*nl = '\0';
			if (strchr(paste, '?') != NULL)
				done = authcode_take(w, paste);
			else if (paste[strspn(paste, " \t\r")] != '\0')
				say(w->out, "That is not the address of the "
				    "redirected page (it has no '?').\n");
			len -= (size_t)(nl + 1 - paste);
			memmove(paste, nl + 1, len + 1);
		}
		if (len == PASTE_MAX)
			len = 0;	/* a line too long for an address */
	}
	explicit_bzero(paste, PASTE_MAX + 1);
	free(paste);
	return done ? 0 : -1;
}

/* flow_authcode - PKCE S256, the browser comes back to 127.0.0.1 */
static int
flow_authcode(const struct config *cfg, const struct account *a,
    const struct oauth_endpoints *ep, const struct oauth_prompt *pr,
    struct oauth_grant *g, char *err, size_t errlen)
{
	struct authcode_wait	 w;
	unsigned char		 raw[STATE_BYTES];
	char			 verifier[OAUTH_PKCE_VERIFIER_LEN + 1];
	char			 challenge[OAUTH_PKCE_CHALLENGE_LEN + 1];
	char			 state[2 * STATE_BYTES + 1];
	char			*redirect = NULL, *url = NULL;
	char			*secret = NULL;
	int			 lfd, port = 0, rc = -1;

	if (ep->auth_url == NULL) {
		snprintf(err, errlen, "no authorisation endpoint: set "
		    "oauthauthurl");
		return -1;
	}
	if (client_secret(a, &secret, err, errlen) == -1)
		return -1;
	if (oauth_pkce_verifier(verifier) == -1 ||
	    RAND_bytes(raw, sizeof(raw)) != 1) {
		snprintf(err, errlen, "no random bytes for PKCE");
		secret_free(secret);
		return -1;
	}
	oauth_pkce_challenge(verifier, challenge);
	oauth_base64url(raw, sizeof(raw), state, sizeof(state));
	if ((lfd = loopback_listen(pr->port, &port, err, errlen)) == -1) {
		explicit_bzero(verifier, sizeof(verifier));
		secret_free(secret);
		return -1;
	}
	redirect = xasprintf("http://%s:%d/", ep->localhost_redirect ?
	    "localhost" : "127.0.0.1", port);
	url = authcode_url(a, ep, redirect, state, challenge);
	say(pr->out, "To authorise %s, open this address in a browser:\n\n"
	    "  %s\n\nAfter the login the browser is sent to %s, where "
	    "smtpproxyctl listens.\nFrom another machine, forward the port "
	    "first: ssh -L %d:127.0.0.1:%d THIS-HOST\nOr paste the address "
	    "the browser shows after the login here and press Enter.\n",
	    a->name, url, redirect, port, port);
	memset(&w, 0, sizeof(w));
	w.state = state;
	w.out = pr->out;
	if (authcode_await(lfd, pr, &w, err, errlen) == 0) {
		if (w.error != NULL)
			snprintf(err, errlen, "the login was refused: %s",
			    w.error);
		else {
			const char *const pairs[] = {
				"grant_type", "authorization_code",
				"code", w.code,
				"redirect_uri", redirect,
				"client_id", a->oauthclientid,
				"code_verifier", verifier,
				"client_secret", secret,
				NULL
			};

			say(pr->out, "Login received, fetching the "
			    "tokens...\n");
			if (token_request(cfg, a, ep->token_url, pairs, g, err,
			    errlen) == OAUTH_OK)
				rc = 0;
			else
				oauth_grant_clear(g);
		}
	}
	close(lfd);
	explicit_bzero(verifier, sizeof(verifier));
	secret_free(w.code);
	free(w.error);
	secret_free(secret);
	free(redirect);
	free(url);
	return rc;
}

/* flow_clientcredentials - app-only: the client's own credentials */
static int
flow_clientcredentials(const struct config *cfg, const struct account *a,
    const struct oauth_endpoints *ep, struct oauth_grant *g, char *err,
    size_t errlen)
{
	char	*secret = NULL;
	int	 rc;

	if (client_secret(a, &secret, err, errlen) == -1)
		return -1;
	{
		const char *const pairs[] = {
			"grant_type", "client_credentials",
			"client_id", a->oauthclientid,
			"client_secret", secret,
			"scope", ep->scope,
			NULL
		};

		rc = token_request(cfg, a, ep->token_url, pairs, g, err,
		    errlen);
	}
	secret_free(secret);
	if (rc != OAUTH_OK) {
		oauth_grant_clear(g);
		return -1;
	}
	return 0;
}

/* oauth_authorise - the first authorisation of an account, tokens stored */
int
oauth_authorise(const struct config *cfg, const struct account *a,
    const struct oauth_prompt *pr, char *err, size_t errlen)
{
	struct oauth_endpoints	 ep;
	struct oauth_grant	 g;
	struct oauth_store	 st;
	char			*path;
	int			 fd, rc = -1;

	memset(&g, 0, sizeof(g));
	if (a->smtpauth != SMTPAUTH_XOAUTH2) {
		snprintf(err, errlen, "[%s] does not use smtpauth=xoauth2",
		    a->name);
		return -1;
	}
	if (a->oauthtokencommand != NULL) {
		snprintf(err, errlen, "[%s] takes its tokens from "
		    "oauthtokencommand: nothing to authorise here", a->name);
		return -1;
	}
	if (oauth_endpoints_resolve(a, &ep) == -1) {
		snprintf(err, errlen, "[%s] has no oauthtokenurl", a->name);
		oauth_endpoints_free(&ep);
		return -1;
	}
	path = oauth_token_path(cfg, a);
	if (store_dir(path, err, errlen) == -1)
		goto out;
	switch (a->oauthflow) {
	case OAUTH_FLOW_DEVICE:
		rc = flow_device(cfg, a, &ep, pr, &g, err, errlen);
		break;
	case OAUTH_FLOW_AUTHCODE:
		rc = flow_authcode(cfg, a, &ep, pr, &g, err, errlen);
		break;
	case OAUTH_FLOW_CLIENTCREDENTIALS:
		rc = flow_clientcredentials(cfg, a, &ep, &g, err, errlen);
		break;
	}
	if (rc == -1)
		goto out;
	rc = -1;
	if ((fd = store_lock(cfg, path, err, errlen)) == -1)
		goto out;
	/* a new authorisation replaces whatever was stored before */
	memset(&st, 0, sizeof(st));
	oauth_store_update(&st, &g, time(NULL));
	if (store_write(path, &st, err, errlen) == 0) {
		mark_clear(path);
		rc = 0;
		say(pr->out, "[%s] is authorised: tokens stored in %s (access "
		    "token valid for %lld min%s).\n", a->name, path,
		    (long long)((st.expires_at - time(NULL)) / 60),
		    st.refresh_token != NULL ? ", refreshed automatically" :
		    a->oauthflow == OAUTH_FLOW_CLIENTCREDENTIALS ?
		    ", renewed automatically" : "; NO refresh token was "
		    "granted: add offline_access to oauthscope");
		log_info("oauth: [%s]: authorised, tokens stored in %s",
		    a->name, path);
	}
	oauth_store_clear(&st);
	store_unlock(fd);
out:
	oauth_grant_clear(&g);
	oauth_endpoints_free(&ep);
	free(path);
	return rc;
}
