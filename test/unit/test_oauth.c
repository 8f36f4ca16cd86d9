/*
 * test_oauth - unit tests of relay/oauth.c without a token endpoint: PKCE
 * (RFC 7636 vector), base64url, form and query encoding, token and device
 * replies, the token file's JSON, expiry arithmetic, presets, the default
 * store path; then the store on disk (marks, a refused token, a refresh
 * that cannot reach its endpoint) and oauthtokencommand; and the XOAUTH2
 * error challenge as relay/deliver.c reads it from the dialogue.
 */
#include <sys/stat.h>

#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "config.h"
#include "deliver.h"
#include "log.h"
#include "oauth.h"

#define ERR_MAX		512
#define JWT_LIKE	"eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9." \
			"eyJhdWQiOiJ4In0.c2lnbmF0dXJl-_~+/"

static char		tmpdir[PATH_MAX];
static struct config	cfg;
static struct account	acc;
static char		err[ERR_MAX];

static void		 setup(void);
static void		 teardown(void);
static int		 remove_entry(const char *, const struct stat *, int,
			    struct FTW *);
static void		 write_text(const char *, const char *);
static char		*read_text(const char *);
static void		 store_token(const char *, time_t, const char *);
static char		*token_file(void);
static void		 dialogue_setup(void);
static void		 dout(const char *);
static void		 din(const char *);
static Suite		*oauth_suite(void);

/* setup - a temporary msgdir and a custom-provider xoauth2 account */
static void
setup(void)
{
	char	templ[] = "/tmp/test_oauth.XXXXXX";

	ck_assert_ptr_nonnull(mkdtemp(templ));
	ck_assert_ptr_nonnull(realpath(templ, tmpdir));
	memset(&cfg, 0, sizeof(cfg));
	memset(&acc, 0, sizeof(acc));
	cfg.path = "/etc/smtpproxy/test.ini";
	cfg.msgdir = tmpdir;
	cfg.relaytimeout = 5;
	acc.name = "app@Example.COM";
	acc.target = &acc;
	acc.smtpsecurity = SECURITY_TLS;
	acc.smtpusername = "app@example.com";
	acc.smtpauth = SMTPAUTH_XOAUTH2;
	acc.oauthprovider = OAUTH_PROVIDER_CUSTOM;
	acc.oauthflow = OAUTH_FLOW_DEVICE;
	acc.oauthclientid = "client-1";
	/* nothing listens on port 1: every request fails at once */
	acc.oauthtokenurl = "http://127.0.0.1:1/token";
	acc.oauthdeviceurl = "http://127.0.0.1:1/device";
	err[0] = '\0';
	ck_assert_int_eq(log_open(NULL, LOG_TO_FILE, "/dev/null"), 0);
}

/* teardown - the folder removed, logging back to stderr */
static void
teardown(void)
{
	log_open(NULL, LOG_TO_STDERR, NULL);
	nftw(tmpdir, remove_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* remove_entry - nftw callback removing one file or folder */
static int
remove_entry(const char *path, const struct stat *st, int type,
    struct FTW *ftw)
{
	(void)st;
	(void)type;
	(void)ftw;
	remove(path);
	return 0;
}

/* write_text - a file with that text */
static void
write_text(const char *path, const char *text)
{
	FILE	*fp = fopen(path, "w");

	ck_assert_ptr_nonnull(fp);
	ck_assert_int_ge(fputs(text, fp), 0);
	ck_assert_int_eq(fclose(fp), 0);
}

/* read_text - a whole small file, allocated */
static char *
read_text(const char *path)
{
	char	*buf = calloc(1, 65536);
	FILE	*fp = fopen(path, "r");

	ck_assert_ptr_nonnull(fp);
	ck_assert_int_gt(fread(buf, 1, 65535, fp), 0);
	fclose(fp);
	return buf;
}

/* token_file - the account's default token file */
static char *
token_file(void)
{
	return oauth_token_path(&cfg, &acc);
}

/* store_token - a token file with this access token and expiry */
static void
store_token(const char *access, time_t expires_at, const char *refresh)
{
	struct oauth_store	 st;
	char			*path = token_file(), *dir, *text;

	dir = strdup(path);
	*strrchr(dir, '/') = '\0';
	mkdir(dir, 0700);
	memset(&st, 0, sizeof(st));
	st.access_token = (char *)access;
	st.expires_at = expires_at;
	st.refresh_token = (char *)refresh;
	st.refreshed_at = time(NULL);
	text = oauth_store_encode(&st);
	ck_assert_ptr_nonnull(text);
	write_text(path, text);
	free(text);
	free(dir);
	free(path);
}

/* PKCE and base64url */

START_TEST(test_pkce_challenge_matches_rfc7636_appendix_b)
{
	char	challenge[OAUTH_PKCE_CHALLENGE_LEN + 1];

	oauth_pkce_challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk",
	    challenge);
	ck_assert_str_eq(challenge,
	    "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM");
}
END_TEST

START_TEST(test_pkce_verifier_is_43_unreserved_characters_and_new_each_time)
{
	char	a[OAUTH_PKCE_VERIFIER_LEN + 1];
	char	b[OAUTH_PKCE_VERIFIER_LEN + 1];

	ck_assert_int_eq(oauth_pkce_verifier(a), 0);
	ck_assert_int_eq(oauth_pkce_verifier(b), 0);
	ck_assert_uint_eq(strlen(a), 43);
	ck_assert_uint_eq(strspn(a, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_"), 43);
	ck_assert_str_ne(a, b);
}
END_TEST

START_TEST(test_base64url_has_no_padding_and_url_alphabet)
{
	const unsigned char	bytes[] = { 0xfb, 0xff };
	char			out[16];

	ck_assert_uint_eq(oauth_base64url((const unsigned char *)"f", 1, out,
	    sizeof(out)), 2);
	ck_assert_str_eq(out, "Zg");
	oauth_base64url((const unsigned char *)"fo", 2, out, sizeof(out));
	ck_assert_str_eq(out, "Zm8");
	oauth_base64url((const unsigned char *)"foob", 4, out, sizeof(out));
	ck_assert_str_eq(out, "Zm9vYg");
	oauth_base64url(bytes, sizeof(bytes), out, sizeof(out));
	ck_assert_str_eq(out, "-_8");
}
END_TEST

START_TEST(test_base64url_refuses_a_short_buffer)
{
	char	out[4];

	ck_assert_uint_eq(oauth_base64url((const unsigned char *)"foob", 4,
	    out, sizeof(out)), 0);
}
END_TEST

/* form and query encoding */

START_TEST(test_form_encoding_escapes_reserved_and_uses_plus_for_blank)
{
	const char *const pairs[] = {
		"grant_type", "refresh_token",
		"scope", "https://outlook.office.com/SMTP.Send offline_access",
		"secret", "a&b=c+d%é",
		NULL
	};
	char	*form = oauth_form_encode(pairs);

	ck_assert_str_eq(form, "grant_type=refresh_token&scope=https%3A%2F%2F"
	    "outlook.office.com%2FSMTP.Send+offline_access&secret=a%26b%3Dc"
	    "%2Bd%25%C3%A9");
	free(form);
}
END_TEST

START_TEST(test_form_encoding_leaves_out_pairs_without_value)
{
	const char *const pairs[] = {
		"a", NULL, "b", "1", "c", NULL, "d", "x y", NULL
	};
	char	*form = oauth_form_encode(pairs);

	ck_assert_str_eq(form, "b=1&d=x+y");
	free(form);
}
END_TEST

START_TEST(test_url_encoding_writes_blank_as_percent_20)
{
	char	*v = oauth_url_encode("https://mail.google.com/ openid");

	ck_assert_str_eq(v, "https%3A%2F%2Fmail.google.com%2F%20openid");
	free(v);
}
END_TEST

START_TEST(test_query_parameter_of_a_pasted_url_is_decoded)
{
	const char	*url = "http://localhost:8400/?code=M.R3_BAY%2Fx+y"
	    "&state=abc&session_state=1#code=wrong";
	char		*code = oauth_query_get(url, "code");
	char		*state = oauth_query_get(url, "state");

	ck_assert_str_eq(code, "M.R3_BAY/x y");
	ck_assert_str_eq(state, "abc");
	free(code);
	free(state);
}
END_TEST

START_TEST(test_query_parameter_missing_or_empty)
{
	char	*v;

	ck_assert_ptr_null(oauth_query_get("/?code=1", "state"));
	ck_assert_ptr_null(oauth_query_get("/?codex=1", "code"));
	ck_assert_ptr_null(oauth_query_get("/#code=1", "code"));
	v = oauth_query_get("/?state&code=", "state");
	ck_assert_str_eq(v, "");
	free(v);
	v = oauth_query_get("error=access_denied&x=%zz", "x");
	ck_assert_str_eq(v, "%zz");
	free(v);
}
END_TEST

/* endpoint replies */

START_TEST(test_microsoft_token_reply_is_parsed)
{
	const char		 body[] = "{\"token_type\":\"Bearer\","
	    "\"scope\":\"https://outlook.office.com/SMTP.Send\","
	    "\"expires_in\":3599,\"ext_expires_in\":3599,"
	    "\"access_token\":\"" JWT_LIKE "\",\"refresh_token\":\"0.AX-r\"}";
	struct oauth_grant	 g;

	ck_assert_int_eq(oauth_grant_parse(body, strlen(body), &g), 0);
	ck_assert_str_eq(g.access_token, JWT_LIKE);
	ck_assert_str_eq(g.refresh_token, "0.AX-r");
	ck_assert_str_eq(g.token_type, "Bearer");
	ck_assert_str_eq(g.scope, "https://outlook.office.com/SMTP.Send");
	ck_assert_int_eq(g.expires_in, 3599);
	ck_assert_ptr_null(g.error);
	oauth_grant_clear(&g);
}
END_TEST

START_TEST(test_expires_in_as_a_string_is_read)
{
	const char		 body[] = "{\"access_token\":\"a\","
	    "\"expires_in\":\"3600\"}";
	struct oauth_grant	 g;

	ck_assert_int_eq(oauth_grant_parse(body, strlen(body), &g), 0);
	ck_assert_int_eq(g.expires_in, 3600);
	oauth_grant_clear(&g);
}
END_TEST

START_TEST(test_error_reply_is_parsed)
{
	const char		 body[] = "{\"error\":\"invalid_grant\","
	    "\"error_description\":\"AADSTS70008: expired\","
	    "\"error_codes\":[70008]}";
	struct oauth_grant	 g;

	ck_assert_int_eq(oauth_grant_parse(body, strlen(body), &g), 0);
	ck_assert_str_eq(g.error, "invalid_grant");
	ck_assert_str_eq(g.error_description, "AADSTS70008: expired");
	ck_assert_ptr_null(g.access_token);
	ck_assert_int_eq(g.expires_in, -1);
	oauth_grant_clear(&g);
}
END_TEST

START_TEST(test_reply_that_is_no_json_object_is_refused)
{
	struct oauth_grant	g;

	ck_assert_int_eq(oauth_grant_parse("<html>", 6, &g), -1);
	ck_assert_int_eq(oauth_grant_parse("[1]", 3, &g), -1);
	ck_assert_int_eq(oauth_grant_parse("", 0, &g), -1);
}
END_TEST

START_TEST(test_google_device_reply_uses_verification_url)
{
	const char		 body[] = "{\"device_code\":\"AH-1\","
	    "\"user_code\":\"GQVQ-JKEC\",\"verification_url\":"
	    "\"https://www.google.com/device\",\"expires_in\":1800,"
	    "\"interval\":5}";
	struct oauth_device	 d;

	ck_assert_int_eq(oauth_device_parse(body, strlen(body), &d), 0);
	ck_assert_str_eq(d.device_code, "AH-1");
	ck_assert_str_eq(d.user_code, "GQVQ-JKEC");
	ck_assert_str_eq(d.verification_uri, "https://www.google.com/device");
	ck_assert_int_eq(d.expires_in, 1800);
	ck_assert_int_eq(d.interval, 5);
	oauth_device_clear(&d);
}
END_TEST

START_TEST(test_device_reply_without_interval_polls_every_5_seconds)
{
	const char		 body[] = "{\"device_code\":\"d\","
	    "\"user_code\":\"U\",\"verification_uri\":\"https://x/device\","
	    "\"verification_uri_complete\":\"https://x/device?c=U\"}";
	const char		 zero[] = "{\"interval\":0,\"expires_in\":0}";
	struct oauth_device	 d;

	ck_assert_int_eq(oauth_device_parse(body, strlen(body), &d), 0);
	ck_assert_int_eq(d.interval, 5);
	ck_assert_int_eq(d.expires_in, 900);
	ck_assert_str_eq(d.verification_uri_complete, "https://x/device?c=U");
	oauth_device_clear(&d);
	ck_assert_int_eq(oauth_device_parse(zero, strlen(zero), &d), 0);
	ck_assert_int_eq(d.interval, 1);
	ck_assert_int_eq(d.expires_in, 900);
	oauth_device_clear(&d);
}
END_TEST

START_TEST(test_device_poll_answers)
{
	long	interval = 5;

	ck_assert_int_eq(oauth_poll_next("authorization_pending", &interval),
	    1);
	ck_assert_int_eq(interval, 5);
	ck_assert_int_eq(oauth_poll_next("slow_down", &interval), 1);
	ck_assert_int_eq(interval, 10);
	ck_assert_int_eq(oauth_poll_next("slow_down", &interval), 1);
	ck_assert_int_eq(interval, 15);
	ck_assert_int_eq(oauth_poll_next("expired_token", &interval), 0);
	ck_assert_int_eq(oauth_poll_next("access_denied", &interval), 0);
	ck_assert_int_eq(oauth_poll_next(NULL, &interval), 0);
}
END_TEST

/* tokens */

START_TEST(test_token_characters_are_b64token_only)
{
	char	*big = malloc(OAUTH_TOKEN_MAX + 2);

	ck_assert(oauth_token_ok(JWT_LIKE));
	ck_assert(oauth_token_ok("ya29.a0AfB_byC=="));
	ck_assert(!oauth_token_ok(""));
	ck_assert(!oauth_token_ok(NULL));
	ck_assert(!oauth_token_ok("a b"));
	ck_assert(!oauth_token_ok("a\001auth=Bearer x"));
	ck_assert(!oauth_token_ok("a=b"));
	ck_assert(!oauth_token_ok("=="));
	memset(big, 'a', OAUTH_TOKEN_MAX);
	big[OAUTH_TOKEN_MAX] = '\0';
	ck_assert(oauth_token_ok(big));
	big[OAUTH_TOKEN_MAX] = 'a';
	big[OAUTH_TOKEN_MAX + 1] = '\0';
	ck_assert(!oauth_token_ok(big));
	free(big);
}
END_TEST

START_TEST(test_expiry_arithmetic)
{
	ck_assert_int_eq(oauth_expiry(1000, 3599), 4599);
	ck_assert_int_eq(oauth_expiry(1000, -1), 1000 + OAUTH_DEFAULT_LIFETIME);
	ck_assert_int_eq(oauth_expiry(1000, 0), 1000);
	ck_assert_int_eq(oauth_expiry(1000, 99999999999L),
	    1000 + OAUTH_LIFETIME_MAX);
}
END_TEST

START_TEST(test_refresh_when_less_than_ten_minutes_remain)
{
	struct oauth_store	st = { .access_token = "a" };

	st.expires_at = 10000 + 601;
	ck_assert(!oauth_needs_refresh(&st, 10000));
	st.expires_at = 10000 + 600;
	ck_assert(!oauth_needs_refresh(&st, 10000));
	st.expires_at = 10000 + 599;
	ck_assert(oauth_needs_refresh(&st, 10000));
	st.expires_at = 5000;
	ck_assert(oauth_needs_refresh(&st, 10000));
	st.access_token = NULL;
	st.expires_at = 99999;
	ck_assert(oauth_needs_refresh(&st, 10000));
}
END_TEST

START_TEST(test_keepalive_after_six_days_without_a_grant)
{
	struct oauth_store	st = { .refresh_token = "r" };
	time_t			now = 100L * 86400;

	st.refreshed_at = now - 5 * 86400;
	ck_assert(!oauth_keepalive_needed(&st, now));
	st.refreshed_at = now - 6 * 86400;
	ck_assert(oauth_keepalive_needed(&st, now));
	st.refresh_token = NULL;
	ck_assert(!oauth_keepalive_needed(&st, now));
}
END_TEST

START_TEST(test_store_round_trip)
{
	struct oauth_store	 a = {
		.access_token = JWT_LIKE, .expires_at = 1893456000,
		.refresh_token = "1//0g-r", .scope = "https://mail.google.com/",
		.token_type = "Bearer", .refreshed_at = 1893452400
	};
	struct oauth_store	 b;
	char			*text = oauth_store_encode(&a);

	ck_assert_ptr_nonnull(text);
	ck_assert_ptr_nonnull(strstr(text,
	    "\"expires\": \"2030-01-01T00:00:00Z\""));
	ck_assert_int_eq(oauth_store_decode(text, strlen(text), &b), 0);
	ck_assert_str_eq(b.access_token, a.access_token);
	ck_assert_str_eq(b.refresh_token, a.refresh_token);
	ck_assert_str_eq(b.scope, a.scope);
	ck_assert_str_eq(b.token_type, "Bearer");
	ck_assert_int_eq(b.expires_at, a.expires_at);
	ck_assert_int_eq(b.refreshed_at, a.refreshed_at);
	oauth_store_clear(&b);
	free(text);
}
END_TEST

START_TEST(test_damaged_store_is_refused)
{
	struct oauth_store	st;
	const char		bad[] = "{\"access_token\":\"a b\"}";

	ck_assert_int_eq(oauth_store_decode("{\"access", 9, &st), -1);
	ck_assert_int_eq(oauth_store_decode("42", 2, &st), -1);
	ck_assert_int_eq(oauth_store_decode(bad, strlen(bad), &st), -1);
	ck_assert_ptr_null(st.access_token);
}
END_TEST

START_TEST(test_rotated_refresh_token_replaces_the_old_one)
{
	struct oauth_store	st;
	struct oauth_grant	g = { .access_token = "new",
	    .expires_in = 3599, .refresh_token = "r2" };

	memset(&st, 0, sizeof(st));
	st.access_token = strdup("old");
	st.refresh_token = strdup("r1");
	st.scope = strdup("s");
	oauth_store_update(&st, &g, 5000);
	ck_assert_str_eq(st.access_token, "new");
	ck_assert_str_eq(st.refresh_token, "r2");
	ck_assert_str_eq(st.scope, "s");
	ck_assert_str_eq(st.token_type, "Bearer");
	ck_assert_int_eq(st.expires_at, 5000 + 3599);
	ck_assert_int_eq(st.refreshed_at, 5000);
	oauth_store_clear(&st);
}
END_TEST

START_TEST(test_refresh_reply_without_refresh_token_keeps_the_old_one)
{
	struct oauth_store	st;
	struct oauth_grant	g = { .access_token = "new", .expires_in = -1,
	    .scope = "s2", .token_type = "bearer" };

	memset(&st, 0, sizeof(st));
	st.refresh_token = strdup("r1");
	oauth_store_update(&st, &g, 5000);
	ck_assert_str_eq(st.refresh_token, "r1");
	ck_assert_str_eq(st.scope, "s2");
	ck_assert_str_eq(st.token_type, "bearer");
	ck_assert_int_eq(st.expires_at, 5000 + OAUTH_DEFAULT_LIFETIME);
	oauth_store_clear(&st);
}
END_TEST

/* presets */

START_TEST(test_microsoft_preset_with_default_tenant)
{
	struct oauth_endpoints	ep;

	acc.oauthprovider = OAUTH_PROVIDER_MICROSOFT;
	acc.oauthtokenurl = acc.oauthdeviceurl = NULL;
	ck_assert_int_eq(oauth_endpoints_resolve(&acc, &ep), 0);
	ck_assert_str_eq(ep.token_url,
	    "https://login.microsoftonline.com/common/oauth2/v2.0/token");
	ck_assert_str_eq(ep.device_url,
	    "https://login.microsoftonline.com/common/oauth2/v2.0/devicecode");
	ck_assert_str_eq(ep.auth_url,
	    "https://login.microsoftonline.com/common/oauth2/v2.0/authorize");
	ck_assert_str_eq(ep.scope,
	    "https://outlook.office.com/SMTP.Send offline_access");
	ck_assert(ep.localhost_redirect);
	ck_assert(ep.refresh_scope);
	oauth_endpoints_free(&ep);
}
END_TEST

START_TEST(test_microsoft_client_credentials_preset_uses_default_scope)
{
	struct oauth_endpoints	ep;

	acc.oauthprovider = OAUTH_PROVIDER_MICROSOFT;
	acc.oauthflow = OAUTH_FLOW_CLIENTCREDENTIALS;
	acc.oauthtenant = "contoso.onmicrosoft.com";
	acc.oauthtokenurl = acc.oauthdeviceurl = NULL;
	ck_assert_int_eq(oauth_endpoints_resolve(&acc, &ep), 0);
	ck_assert_str_eq(ep.token_url, "https://login.microsoftonline.com/"
	    "contoso.onmicrosoft.com/oauth2/v2.0/token");
	ck_assert_str_eq(ep.scope, "https://outlook.office365.com/.default");
	oauth_endpoints_free(&ep);
}
END_TEST

START_TEST(test_google_preset)
{
	struct oauth_endpoints	ep;

	acc.oauthprovider = OAUTH_PROVIDER_GOOGLE;
	acc.oauthtokenurl = acc.oauthdeviceurl = NULL;
	ck_assert_int_eq(oauth_endpoints_resolve(&acc, &ep), 0);
	ck_assert_str_eq(ep.token_url, "https://oauth2.googleapis.com/token");
	ck_assert_str_eq(ep.device_url,
	    "https://oauth2.googleapis.com/device/code");
	ck_assert_str_eq(ep.auth_url,
	    "https://accounts.google.com/o/oauth2/v2/auth");
	ck_assert_str_eq(ep.scope, "https://mail.google.com/");
	ck_assert(!ep.localhost_redirect);
	ck_assert(!ep.refresh_scope);
	ck_assert(ep.offline_param);
	oauth_endpoints_free(&ep);
}
END_TEST

START_TEST(test_account_overrides_the_preset)
{
	struct oauth_endpoints	ep;

	acc.oauthprovider = OAUTH_PROVIDER_GOOGLE;
	acc.oauthtokenurl = "https://proxy.example/token";
	acc.oauthscope = "https://mail.google.com/ openid";
	ck_assert_int_eq(oauth_endpoints_resolve(&acc, &ep), 0);
	ck_assert_str_eq(ep.token_url, "https://proxy.example/token");
	ck_assert_str_eq(ep.device_url, "http://127.0.0.1:1/device");
	ck_assert_str_eq(ep.auth_url,
	    "https://accounts.google.com/o/oauth2/v2/auth");
	ck_assert_str_eq(ep.scope, "https://mail.google.com/ openid");
	oauth_endpoints_free(&ep);
}
END_TEST

START_TEST(test_custom_provider_has_only_what_is_configured)
{
	struct oauth_endpoints	ep;

	acc.oauthdeviceurl = NULL;
	ck_assert_int_eq(oauth_endpoints_resolve(&acc, &ep), 0);
	ck_assert_str_eq(ep.token_url, "http://127.0.0.1:1/token");
	ck_assert_ptr_null(ep.device_url);
	ck_assert_ptr_null(ep.auth_url);
	ck_assert_ptr_null(ep.scope);
	oauth_endpoints_free(&ep);
	acc.oauthtokenurl = NULL;
	ck_assert_int_eq(oauth_endpoints_resolve(&acc, &ep), -1);
	oauth_endpoints_free(&ep);
}
END_TEST

START_TEST(test_default_token_path_is_a_safe_name_in_msgdir)
{
	char	*p, want[PATH_MAX + 64];

	p = oauth_default_token_path(&cfg, &acc);
	snprintf(want, sizeof(want), "%s/oauth/app@example.com.json", tmpdir);
	ck_assert_str_eq(p, want);
	free(p);
	acc.name = "../we ird/@x";
	p = oauth_default_token_path(&cfg, &acc);
	snprintf(want, sizeof(want), "%s/oauth/_._we_ird_@x.json", tmpdir);
	ck_assert_str_eq(p, want);
	free(p);
	acc.oauthtokenfile = "/var/lib/smtpproxy/t.json";
	p = oauth_token_path(&cfg, &acc);
	ck_assert_str_eq(p, "/var/lib/smtpproxy/t.json");
	free(p);
}
END_TEST

/* the store on disk */

START_TEST(test_valid_stored_token_is_used_without_a_request)
{
	struct oauth_token	tok;

	store_token("stored-token", time(NULL) + 3000, "r1");
	ck_assert_int_eq(oauth_access_token(&cfg, &acc, &tok, err,
	    sizeof(err)), OAUTH_OK);
	ck_assert_str_eq(tok.access, "stored-token");
	ck_assert(!tok.fresh);
	oauth_token_clear(&tok);
	ck_assert_ptr_null(tok.access);
}
END_TEST

START_TEST(test_account_never_authorised_needs_authorisation)
{
	struct oauth_token	tok;
	char			why[128];

	ck_assert_int_eq(oauth_access_token(&cfg, &acc, &tok, err,
	    sizeof(err)), OAUTH_NEEDAUTH);
	ck_assert_ptr_nonnull(strstr(err,
	    "smtpproxyctl oauth app@Example.COM"));
	ck_assert_ptr_null(tok.access);
	ck_assert(oauth_needs_authorisation(&cfg, &acc, why, sizeof(why)));
	ck_assert_str_eq(why, "not authorised yet");
}
END_TEST

START_TEST(test_marked_account_needs_authorisation_even_with_a_token)
{
	struct oauth_token	 tok;
	char			*path, *mark, why[128], line[256];

	store_token("stored-token", time(NULL) + 3000, "r1");
	path = token_file();
	mark = malloc(strlen(path) + 16);
	sprintf(mark, "%s.needauth", path);
	write_text(mark, "invalid_grant: AADSTS70008\n");
	ck_assert_int_eq(oauth_access_token(&cfg, &acc, &tok, err,
	    sizeof(err)), OAUTH_NEEDAUTH);
	ck_assert_ptr_nonnull(strstr(err, "invalid_grant: AADSTS70008"));
	ck_assert(oauth_needs_authorisation(&cfg, &acc, why, sizeof(why)));
	ck_assert_str_eq(why, "invalid_grant: AADSTS70008");
	oauth_status(&cfg, &acc, line, sizeof(line));
	ck_assert_ptr_nonnull(strstr(line, "NEEDS AUTHORISATION"));
	free(mark);
	free(path);
}
END_TEST

START_TEST(test_refused_token_is_forgotten_but_a_newer_one_is_kept)
{
	struct oauth_store	 st;
	char			*path = token_file(), *text;

	store_token("tok-A", time(NULL) + 3000, "r1");
	oauth_token_rejected(&cfg, &acc, "tok-OTHER");
	text = read_text(path);
	ck_assert_int_eq(oauth_store_decode(text, strlen(text), &st), 0);
	ck_assert_int_gt(st.expires_at, time(NULL));
	oauth_store_clear(&st);
	free(text);
	oauth_token_rejected(&cfg, &acc, "tok-A");
	text = read_text(path);
	ck_assert_int_eq(oauth_store_decode(text, strlen(text), &st), 0);
	ck_assert_int_eq(st.expires_at, 0);
	ck_assert_str_eq(st.refresh_token, "r1");
	oauth_store_clear(&st);
	free(text);
	free(path);
}
END_TEST

START_TEST(test_unreachable_endpoint_is_temporary_and_marks_nothing)
{
	struct oauth_token	tok;

	store_token("tok-A", time(NULL) - 10, "r1");
	ck_assert_int_eq(oauth_access_token(&cfg, &acc, &tok, err,
	    sizeof(err)), OAUTH_TEMPORARY);
	ck_assert_ptr_nonnull(strstr(err, "http://127.0.0.1:1/token"));
	ck_assert(!oauth_needs_authorisation(&cfg, &acc, NULL, 0));
}
END_TEST

START_TEST(test_failed_refresh_keeps_using_a_token_that_still_lasts)
{
	struct oauth_token	tok;

	store_token("tok-A", time(NULL) + 300, "r1");
	ck_assert_int_eq(oauth_access_token(&cfg, &acc, &tok, err,
	    sizeof(err)), OAUTH_OK);
	ck_assert_str_eq(tok.access, "tok-A");
	ck_assert(!tok.fresh);
	oauth_token_clear(&tok);
}
END_TEST

START_TEST(test_stored_files_are_private)
{
	struct stat	 sb;
	char		*path = token_file(), *lock;

	store_token("tok-A", time(NULL) + 300, "r1");
	chmod(path, 0644);
	/* a refused token rewrites the file: temporary file and rename */
	oauth_token_rejected(&cfg, &acc, "tok-A");
	ck_assert_int_eq(stat(path, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0600);
	lock = malloc(strlen(path) + 8);
	sprintf(lock, "%s.lock", path);
	ck_assert_int_eq(stat(lock, &sb), 0);
	ck_assert_int_eq(sb.st_mode & 0777, 0600);
	free(lock);
	free(path);
}
END_TEST

START_TEST(test_status_of_a_valid_token)
{
	char	line[256];

	store_token("tok-A", time(NULL) + 3000, "r1");
	oauth_status(&cfg, &acc, line, sizeof(line));
	ck_assert_msg(strncmp(line, "ok, access token valid for", 26) == 0,
	    "%s", line);
	ck_assert_ptr_null(strstr(line, "tok-A"));
}
END_TEST

/* oauthtokencommand */

START_TEST(test_token_command_first_line_is_the_token)
{
	struct oauth_token	tok;

	acc.oauthtokencommand = "printf 'cmd-token_1.2\\nsecond line\\n'";
	ck_assert_int_eq(oauth_access_token(&cfg, &acc, &tok, err,
	    sizeof(err)), OAUTH_OK);
	ck_assert_str_eq(tok.access, "cmd-token_1.2");
	oauth_token_clear(&tok);
}
END_TEST

START_TEST(test_token_command_failure_is_temporary)
{
	struct oauth_token	tok;

	acc.oauthtokencommand = "echo tok; exit 3";
	ck_assert_int_eq(oauth_access_token(&cfg, &acc, &tok, err,
	    sizeof(err)), OAUTH_TEMPORARY);
	ck_assert_str_eq(err, "oauthtokencommand failed (exit status 3)");
	acc.oauthtokencommand = "echo 'not a token'";
	ck_assert_int_eq(oauth_access_token(&cfg, &acc, &tok, err,
	    sizeof(err)), OAUTH_TEMPORARY);
	ck_assert_ptr_null(tok.access);
	acc.oauthtokencommand = "head -c 70000 /dev/zero | tr '\\0' a";
	ck_assert_int_eq(oauth_access_token(&cfg, &acc, &tok, err,
	    sizeof(err)), OAUTH_TEMPORARY);
	ck_assert_ptr_nonnull(strstr(err, "more than"));
}
END_TEST

/* the XOAUTH2 error challenge in the dialogue (relay/deliver.c) */

static struct deliver_attempt	datt;
static struct deliver_dialogue	ddlg;
static char			dshown[256];

/* dialogue_setup - a new connection after EHLO */
static void
dialogue_setup(void)
{
	memset(&datt, 0, sizeof(datt));
	memset(&ddlg, 0, sizeof(ddlg));
	deliver_dialogue_begin(&ddlg, NULL, NULL, 0, &datt);
	deliver_dialogue_in(&ddlg, "220 mx\r\n", 8);
	deliver_dialogue_out(&ddlg, "EHLO me\r\n", 9, dshown, sizeof(dshown));
	deliver_dialogue_in(&ddlg, "250 AUTH XOAUTH2\r\n", 18);
}

/* dout - a command went out */
static void
dout(const char *line)
{
	deliver_dialogue_out(&ddlg, line, strlen(line), dshown, sizeof(dshown));
}

/* din - a reply came in */
static void
din(const char *line)
{
	deliver_dialogue_in(&ddlg, line, strlen(line));
}

START_TEST(test_error_challenge_after_initial_response_is_a_refused_token)
{
	dialogue_setup();
	dout("AUTH XOAUTH2 dXNlcj1hAWF1dGg9QmVhcmVyIHQBAQ==\r\n");
	ck_assert_str_eq(dshown, "AUTH XOAUTH2 <redacted>");
	din("334 eyJzdGF0dXMiOiI0MDEifQ==\r\n");
	ck_assert(datt.token_rejected);
	ck_assert_int_eq(datt.conn.code, 334);
	ck_assert(!ddlg.authenticated);
}
END_TEST

START_TEST(test_empty_334_before_a_long_token_is_no_refusal)
{
	dialogue_setup();
	dout("AUTH XOAUTH2\r\n");
	ck_assert_str_eq(dshown, "AUTH XOAUTH2");
	din("334 \r\n");
	ck_assert(!datt.token_rejected);
	dout("dXNlcj1hAWF1dGg9QmVhcmVyIHQBAQ==\r\n");
	ck_assert_str_eq(dshown, "<redacted>");
	din("235 2.7.0 Accepted\r\n");
	ck_assert(!datt.token_rejected);
	ck_assert(ddlg.authenticated);
}
END_TEST

START_TEST(test_error_challenge_after_a_long_token_is_a_refused_token)
{
	dialogue_setup();
	dout("AUTH XOAUTH2\r\n");
	din("334 \r\n");
	dout("dXNlcj1hAWF1dGg9QmVhcmVyIHQBAQ==\r\n");
	din("334 eyJzdGF0dXMiOiI0MDEifQ==\r\n");
	ck_assert(datt.token_rejected);
	dout("\r\n");
	ck_assert_str_eq(dshown, "<redacted>");
	din("535 5.7.8 Username and Password not accepted\r\n");
	ck_assert(datt.token_rejected);
	ck_assert_int_eq(datt.conn.code, 535);
}
END_TEST

START_TEST(test_login_challenges_are_not_token_refusals)
{
	dialogue_setup();
	dout("AUTH LOGIN dXNlcg==\r\n");
	din("334 UGFzc3dvcmQ6\r\n");
	ck_assert(!datt.token_rejected);
	dout("cGFzcw==\r\n");
	din("235 ok\r\n");
	ck_assert(ddlg.authenticated);
}
END_TEST

/* oauth_suite - every test case */
static Suite *
oauth_suite(void)
{
	Suite	*s = suite_create("oauth");
	TCase	*pure = tcase_create("pure");
	TCase	*store = tcase_create("store");
	TCase	*dialogue = tcase_create("dialogue");

	tcase_add_checked_fixture(pure, setup, teardown);
	tcase_add_test(pure, test_pkce_challenge_matches_rfc7636_appendix_b);
	tcase_add_test(pure,
	    test_pkce_verifier_is_43_unreserved_characters_and_new_each_time);
	tcase_add_test(pure, test_base64url_has_no_padding_and_url_alphabet);
	tcase_add_test(pure, test_base64url_refuses_a_short_buffer);
	tcase_add_test(pure,
	    test_form_encoding_escapes_reserved_and_uses_plus_for_blank);
	tcase_add_test(pure, test_form_encoding_leaves_out_pairs_without_value);
	tcase_add_test(pure, test_url_encoding_writes_blank_as_percent_20);
	tcase_add_test(pure, test_query_parameter_of_a_pasted_url_is_decoded);
	tcase_add_test(pure, test_query_parameter_missing_or_empty);
	tcase_add_test(pure, test_microsoft_token_reply_is_parsed);
	tcase_add_test(pure, test_expires_in_as_a_string_is_read);
	tcase_add_test(pure, test_error_reply_is_parsed);
	tcase_add_test(pure, test_reply_that_is_no_json_object_is_refused);
	tcase_add_test(pure, test_google_device_reply_uses_verification_url);
	tcase_add_test(pure,
	    test_device_reply_without_interval_polls_every_5_seconds);
	tcase_add_test(pure, test_device_poll_answers);
	tcase_add_test(pure, test_token_characters_are_b64token_only);
	tcase_add_test(pure, test_expiry_arithmetic);
	tcase_add_test(pure, test_refresh_when_less_than_ten_minutes_remain);
	tcase_add_test(pure, test_keepalive_after_six_days_without_a_grant);
	tcase_add_test(pure, test_store_round_trip);
	tcase_add_test(pure, test_damaged_store_is_refused);
	tcase_add_test(pure, test_rotated_refresh_token_replaces_the_old_one);
	tcase_add_test(pure,
	    test_refresh_reply_without_refresh_token_keeps_the_old_one);
	tcase_add_test(pure, test_microsoft_preset_with_default_tenant);
	tcase_add_test(pure,
	    test_microsoft_client_credentials_preset_uses_default_scope);
	tcase_add_test(pure, test_google_preset);
	tcase_add_test(pure, test_account_overrides_the_preset);
	tcase_add_test(pure, test_custom_provider_has_only_what_is_configured);
	tcase_add_test(pure, test_default_token_path_is_a_safe_name_in_msgdir);

	tcase_add_checked_fixture(store, setup, teardown);
	tcase_set_timeout(store, 30);
	tcase_add_test(store,
	    test_valid_stored_token_is_used_without_a_request);
	tcase_add_test(store,
	    test_account_never_authorised_needs_authorisation);
	tcase_add_test(store,
	    test_marked_account_needs_authorisation_even_with_a_token);
	tcase_add_test(store,
	    test_refused_token_is_forgotten_but_a_newer_one_is_kept);
	tcase_add_test(store,
	    test_unreachable_endpoint_is_temporary_and_marks_nothing);
	tcase_add_test(store,
	    test_failed_refresh_keeps_using_a_token_that_still_lasts);
	tcase_add_test(store, test_stored_files_are_private);
	tcase_add_test(store, test_status_of_a_valid_token);
	tcase_add_test(store, test_token_command_first_line_is_the_token);
	tcase_add_test(store, test_token_command_failure_is_temporary);

	tcase_add_test(dialogue,
	    test_error_challenge_after_initial_response_is_a_refused_token);
	tcase_add_test(dialogue,
	    test_empty_334_before_a_long_token_is_no_refusal);
	tcase_add_test(dialogue,
	    test_error_challenge_after_a_long_token_is_a_refused_token);
	tcase_add_test(dialogue, test_login_challenges_are_not_token_refusals);

	suite_add_tcase(s, pure);
	suite_add_tcase(s, store);
	suite_add_tcase(s, dialogue);
	return s;
}

int
main(void)
{
	SRunner	*sr = srunner_create(oauth_suite());
	int	 failed;

	curl_global_init(CURL_GLOBAL_DEFAULT);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	curl_global_cleanup();
	return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
