/*
 * oauth - OAuth 2.0 access tokens for XOAUTH2 upstream logins
 * (smtpauth=xoauth2): the token store, its refresh, and the first
 * authorisation.  The only module that talks to token endpoints.
 *
 * Store: one JSON file per account, acct->oauthtokenfile or by default
 * <msgdir>/oauth/<account name>.json, holding access_token, expires_at
 * (seconds since the epoch), refresh_token, scope, token_type and
 * refreshed_at (when the endpoint last answered a grant).  Its folder is
 * made 0700, the file is 0600, written to a temporary file, fsynced and
 * renamed.  Beside it: FILE.lock, locked (flock) around check -> refresh
 * -> write, so that parallel delivery children refresh once and the newest
 * refresh token is always the one kept; and FILE.needauth, the mark of an
 * account that needs `smtpproxyctl oauth ACCOUNT` (its text says why).
 * Tokens, codes and client secrets never reach a log or a message here.
 *
 * For the relay:
 *   oauth_access_token(cfg, acct, &tok, err, errlen)
 *        a current access token: from oauthtokencommand (its first line,
 *        bounded in time and size), or from the store, refreshed under the
 *        lock when less than OAUTH_REFRESH_MARGIN seconds remain (client
 *        credentials: a new token is requested).  0 and tok filled (free
 *        with oauth_token_clear), or with err set:
 *          OAUTH_TEMPORARY  network, TLS, timeout, HTTP 5xx/429, local I/O:
 *                           back off like any temporary failure
 *          OAUTH_NEEDAUTH   never authorised, or the endpoint said
 *                           invalid_grant (the account is marked and the
 *                           log says what to run): keep the mail deferred
 *          OAUTH_CONFIG     the endpoint refused the client (bad client ID
 *                           or secret, scope, ...): keep the mail deferred
 *   oauth_token_rejected(cfg, acct, token)
 *        the upstream refused token (XOAUTH2 error challenge, 535): the
 *        store forgets it, so the next oauth_access_token() refreshes,
 *        unless another process has already stored a newer one
 *   oauth_needs_authorisation(cfg, acct, why, whylen)
 *        true when mail of the account cannot go until an administrator
 *        runs `smtpproxyctl oauth ACCOUNT`
 *   oauth_keepalive(cfg)
 *        refresh every stored refresh token not used for
 *        OAUTH_KEEPALIVE_AGE (Microsoft drops those unused for 90 days);
 *        oauth_keepalive_due(cfg, now) tells cheaply whether any is due,
 *        oauth_keepalive_start(cfg) runs it in a child of its own (pid, 0
 *        when nothing is due, -1 when fork failed)
 *
 * For smtpproxyctl:
 *   oauth_authorise(cfg, acct, prompt, err, errlen)
 *        the first authorisation by the account's oauthflow: device code
 *        (prints the URL and code, polls honouring interval, slow_down,
 *        authorization_pending, expired_token), authorisation code with
 *        PKCE S256 and a loopback redirect on 127.0.0.1 (or the redirected
 *        address pasted on prompt->in; state is checked), or client
 *        credentials; stores the tokens and clears the mark.  0 or -1.
 *   oauth_status(cfg, acct, buf, size)  one line on the account's tokens
 *
 * Pure parts, declared for the unit tests: preset endpoints, form and
 * query encoding, token and device responses, the store's JSON, expiry
 * arithmetic, PKCE, the default store path.
 */
#ifndef SMTPPROXY_OAUTH_H
#define SMTPPROXY_OAUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/types.h>
#include <time.h>

#include "config.h"

/* Seconds. */
#define OAUTH_REFRESH_MARGIN	600		/* refresh below this */
#define OAUTH_USABLE_MIN	60		/* old token still usable */
#define OAUTH_DEFAULT_LIFETIME	3600		/* no expires_in */
#define OAUTH_LIFETIME_MAX	(366L * 86400)	/* longest believed */
#define OAUTH_KEEPALIVE_AGE	(6L * 86400)	/* keep-alive after */
#define OAUTH_COMMAND_TIMEOUT	30		/* oauthtokencommand */

/* Bytes. */
#define OAUTH_TOKEN_MAX		16384	/* longest token taken */
#define OAUTH_RESPONSE_MAX	65536	/* longest endpoint reply */
#define OAUTH_STORE_MAX		65536	/* longest token file */
#define OAUTH_SECRET_MAX	4096	/* oauthclientsecretfile line */
#define OAUTH_PKCE_VERIFIER_LEN	43	/* 32 random bytes, b64url */
#define OAUTH_PKCE_CHALLENGE_LEN 43	/* SHA-256, base64url */
#define OAUTH_ERR_MAX		512

enum oauth_result {
	OAUTH_OK = 0,
	OAUTH_TEMPORARY = -1,
	OAUTH_NEEDAUTH = -2,
	OAUTH_CONFIG = -3
};

/* An access token in hand. */
struct oauth_token {
	char	*access;	/* the bearer token; NULL: none */
	time_t	 expires_at;	/* 0: unknown (oauthtokencommand) */
	bool	 fresh;		/* obtained just now */
};

/* How smtpproxyctl talks to the administrator during oauth_authorise. */
struct oauth_prompt {
	FILE	*out;		/* instructions, URL, code */
	int	 in;		/* pasted redirected address; -1 none */
	int	 port;		/* authcode: loopback port, 0: any */
	int	 wait;		/* seconds for the user, 0: default */
};

int	 oauth_access_token(const struct config *, const struct account *,
	    struct oauth_token *, char *, size_t);
void	 oauth_token_clear(struct oauth_token *);
void	 oauth_token_rejected(const struct config *, const struct account *,
	    const char *);
bool	 oauth_needs_authorisation(const struct config *,
	    const struct account *, char *, size_t);
void	 oauth_keepalive(const struct config *);
bool	 oauth_keepalive_due(const struct config *, time_t);
pid_t	 oauth_keepalive_start(const struct config *);
int	 oauth_authorise(const struct config *, const struct account *,
	    const struct oauth_prompt *, char *, size_t);
void	 oauth_status(const struct config *, const struct account *, char *,
	    size_t);

/*
 * Internals, for the unit tests.
 *
 *   oauth_endpoints_resolve(acct, &ep)   presets of oauthprovider, with the
 *        account's overrides; oauth_endpoints_free(&ep)
 *   oauth_form_encode(pairs)     "a=b&c=d" from NULL-terminated name, value
 *        pairs (a NULL value skips its pair), application/x-www-form-
 *        urlencoded; oauth_url_encode(s) the same for one value in a URL
 *        (blank as %20)
 *   oauth_query_get(query, name)   a decoded parameter of a query string
 *        (after '?' if there is one, up to '#'), or NULL
 *   oauth_grant_parse(body, len, &grant)   a token endpoint reply;
 *        oauth_device_parse(body, len, &dev)   a device authorisation reply
 *   oauth_store_decode(text, len, &st) / oauth_store_encode(&st)   the
 *        token file; oauth_store_clear(&st)
 *   oauth_store_update(&st, &grant, now)   a grant folded into the store:
 *        a new refresh token replaces the old one, a missing one keeps it
 *   oauth_expiry(now, expires_in)   when a token expires
 *   oauth_needs_refresh(&st, now), oauth_keepalive_needed(&st, now)
 *   oauth_poll_next(error, &interval)   a device-code poll answer: 1 poll
 *        again (after *interval, raised by slow_down), 0 give up
 *   oauth_token_ok(token)   only RFC 6750 b64token characters
 *   oauth_pkce_verifier(buf) / oauth_pkce_challenge(verifier, buf)
 *        buf of OAUTH_PKCE_..._LEN + 1 bytes
 *   oauth_base64url(in, len, out, outsize)   unpadded base64url
 *   oauth_default_token_path(cfg, acct)   msgdir/oauth/<safe name>.json
 *   oauth_token_path(cfg, acct)   oauthtokenfile or the default
 */
struct oauth_endpoints {
	char	*token_url;
	char	*device_url;	/* NULL: none known */
	char	*auth_url;	/* NULL: none known */
	char	*scope;		/* NULL: none sent */
	bool	 localhost_redirect;	/* localhost, not 127.0.0.1 */
	bool	 refresh_scope;		/* scope in refresh grants */
	bool	 offline_param;		/* access_type=offline */
};

/* What a token endpoint answered. */
struct oauth_grant {
	char	*access_token;
	char	*refresh_token;
	char	*scope;
	char	*token_type;
	long	 expires_in;	/* -1: not given */
	char	*error;		/* an OAuth error code, or NULL */
	char	*error_description;
};

/* What a device authorisation endpoint answered. */
struct oauth_device {
	char	*device_code;
	char	*user_code;
	char	*verification_uri;
	char	*verification_uri_complete;
	long	 expires_in;
	long	 interval;
	char	*error;
	char	*error_description;
};

/* The token file. */
struct oauth_store {
	char	*access_token;
	time_t	 expires_at;
	char	*refresh_token;
	char	*scope;
	char	*token_type;
	time_t	 refreshed_at;
};

int	 oauth_endpoints_resolve(const struct account *,
	    struct oauth_endpoints *);
void	 oauth_endpoints_free(struct oauth_endpoints *);
char	*oauth_form_encode(const char *const *);
char	*oauth_url_encode(const char *);
char	*oauth_query_get(const char *, const char *);
int	 oauth_grant_parse(const char *, size_t, struct oauth_grant *);
void	 oauth_grant_clear(struct oauth_grant *);
int	 oauth_device_parse(const char *, size_t, struct oauth_device *);
void	 oauth_device_clear(struct oauth_device *);
int	 oauth_store_decode(const char *, size_t, struct oauth_store *);
char	*oauth_store_encode(const struct oauth_store *);
void	 oauth_store_update(struct oauth_store *,
	    const struct oauth_grant *, time_t);
void	 oauth_store_clear(struct oauth_store *);
time_t	 oauth_expiry(time_t, long);
bool	 oauth_needs_refresh(const struct oauth_store *, time_t);
bool	 oauth_keepalive_needed(const struct oauth_store *, time_t);
int	 oauth_poll_next(const char *, long *);
bool	 oauth_token_ok(const char *);
int	 oauth_pkce_verifier(char *);
void	 oauth_pkce_challenge(const char *, char *);
size_t	 oauth_base64url(const unsigned char *, size_t, char *, size_t);
char	*oauth_default_token_path(const struct config *,
	    const struct account *);
char	*oauth_token_path(const struct config *, const struct account *);

#endif
