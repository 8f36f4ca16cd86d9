/*
 * pop - POP-before-SMTP through libcurl's POP3 client (see pop.h).
 *
 * This file owns the POP3 handle (URL, TLS, login, deadlines), the reading
 * of the session from libcurl's debug stream (the only place the server's
 * "-ERR" text can be seen), and the per-account record of the last
 * successful login under <msgdir>/pop/.
 */
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/evp.h>

#include "curltls.h"
#include "dialogue_text.h"
#include "log.h"
#include "pop.h"
#include "util.h"

#define POP_PORT_SSL		995
#define POP_PORT_PLAIN		110
#define POP_LOG_LINE		1024	/* one dialogue line in the debug log */
#define POP_REQUEST		"NOOP"	/* with NOBODY: log in, nothing else */

/* One login: the handle and what the dialogue showed. */
struct pop_session {
	const struct config	*cfg;
	CURL			*curl;
	char			*url;
	char			*peer;		/* host:port, for messages */
	struct curltls_ca	*ca;		/* tlscafile, for the store */
	struct pop_dialogue	 dlg;
	char			 errbuf[CURL_ERROR_SIZE];
};

static size_t		 verb_len(const char *, size_t);
static bool		 verb_is(const char *, size_t, const char *);
static void		 dialogue_line(struct pop_dialogue *, const char *,
			    size_t);
static bool		 state_plain(const char *, const char *);
static int		 state_hash(const char *, char *, size_t);
static char		*state_path(const struct config *,
			    const struct account *);
static time_t		 state_last(const struct config *,
			    const struct account *);
static void		 state_record(const struct config *,
			    const struct account *);
static void		 wait_seconds(int);
static size_t		 discard_cb(char *, size_t, size_t, void *);
static void		 debug_log(struct pop_session *, const char *,
			    const char *, size_t);
static int		 debug_cb(CURL *, curl_infotype, char *, size_t,
			    void *);
static int		 session_options(struct pop_session *,
			    const struct account *);
static struct pop_session *session_open(const struct config *,
			    const struct account *, char *, size_t);
static void		 session_close(struct pop_session *);
static void		 session_explain(struct pop_session *, CURLcode, char *,
			    size_t);

/*
 * Pure helpers.
 */

/* state_plain - whether a byte of an account name stays as it is */
static bool
state_plain(const char *account, const char *p)
{
	unsigned char	c = (unsigned char)*p;

	if (c >= 0x80)
		return false;
	if (isalnum(c) || c == '@' || c == '_' || c == '+' || c == '-')
		return true;
	/* a leading '.' would hide the file or name "." and ".." */
	return c == '.' && p != account;
}

/* pop_state_name - the state file name of an account, safe in one folder */
int
pop_state_name(const char *account, char *buf, size_t size)
{
	static const char	hex[] = "0123456789ABCDEF";
	size_t			n = 0;

	if (account == NULL || *account == '\0' || size < POP_STATE_NAME_MAX)
		return -1;
	for (const char *p = account; *p != '\0'; p++)
		n += state_plain(account, p) ? 1 : 3;
	if (n >= POP_STATE_NAME_MAX)
		return state_hash(account, buf, size);

	/* '/', a leading '.', '%', '~' and anything odd become %XX */
	n = 0;
	for (const char *p = account; *p != '\0'; p++) {
		unsigned char	c = (unsigned char)*p;

		if (state_plain(account, p)) {
			buf[n++] = (char)c;
			continue;
		}
		buf[n++] = '%';
		buf[n++] = hex[c >> 4];
		buf[n++] = hex[c & 0xf];
	}
	buf[n] = '\0';
	return 0;
}

/*
 * state_hash - "~" and the SHA-256 of a name too long to escape; "~" is
 * escaped in every other state name, so the two kinds never meet
 */
static int
state_hash(const char *account, char *buf, size_t size)
{
	static const char	hex[] = "0123456789abcdef";
	unsigned char		md[EVP_MAX_MD_SIZE];
	unsigned int		mdlen = 0;
	size_t			n = 0;

	if (EVP_Digest(account, strlen(account), md, &mdlen, EVP_sha256(),
	    NULL) != 1 || 2 * (size_t)mdlen + 2 > size)
		return -1;
	buf[n++] = '~';
	for (unsigned int i = 0; i < mdlen; i++) {
		buf[n++] = hex[md[i] >> 4];
		buf[n++] = hex[md[i] & 0xf];
	}
	buf[n] = '\0';
	return 0;
}

/* pop_login_due - whether the last login is too old to rely on */
bool
pop_login_due(time_t last, time_t now, int checkdelay)
{
	if (last <= 0 || checkdelay <= 0)
		return true;
	/* a login "in the future": the clock was set back; trust nothing */
	if (last > now)
		return true;
	return now - last >= (time_t)checkdelay;
}

/* pop_url - pop3[s]://host:port/ for a host that fits in a URL */
char *
pop_url(const char *host, int port, bool ssl)
{
	char	*h, *url;

	if (!curltls_host_valid(host) || port <= 0 || port > 65535)
		return NULL;
	h = curltls_url_host(host);
	url = xasprintf("%s://%s:%d/", ssl ? "pop3s" : "pop3", h, port);
	free(h);
	return url;
}

/* verb_len - length of the first word of a line */
static size_t
verb_len(const char *line, size_t len)
{
	size_t	n = 0;

	while (n < len && line[n] != ' ')
		n++;
	return n;
}

/* verb_is - whether a line starts with a given command word */
static bool
verb_is(const char *line, size_t len, const char *verb)
{
	size_t	n = verb_len(line, len);

	return strlen(verb) == n && strncasecmp(line, verb, n) == 0;
}

/* pop_dialogue_out - a command went to the server; give its loggable form */
void
pop_dialogue_out(struct pop_dialogue *d, const char *line, size_t len,
    char *shown, size_t size)
{
	len = dialogue_text_line_len(line, len);

	/*
	 * The "-ERR" worth reporting answers the last command before QUIT;
	 * an earlier one (old servers refuse CAPA) is not why a session
	 * failed.
	 */
	if (!verb_is(line, len, "QUIT"))
		d->err[0] = '\0';
	if (d->in_auth) {
		/* a SASL response: credentials, whatever it looks like */
		strlcpy_s(shown, POP_REDACTED, size);
		return;
	}
	if (verb_is(line, len, "AUTH")) {
		d->in_auth = true;
		dialogue_text_show_auth(line, len, shown, size);
		return;
	}
	if (verb_is(line, len, "USER") || verb_is(line, len, "PASS") ||
	    verb_is(line, len, "APOP")) {
		snprintf(shown, size, "%.4s %s", line, POP_REDACTED);
		return;
	}
	dialogue_text_clean(shown, size, line, len);
}

/* pop_dialogue_in - reply lines came from the server */
void
pop_dialogue_in(struct pop_dialogue *d, const char *data, size_t size)
{
	while (size > 0) {
		const char	*nl = memchr(data, '\n', size);
		size_t		 n;

		n = nl != NULL ? (size_t)(nl - data) + 1 : size;
		dialogue_line(d, data, n);
		data += n;
		size -= n;
	}
}

/* dialogue_line - one line from the server */
static void
dialogue_line(struct pop_dialogue *d, const char *line, size_t len)
{
	len = dialogue_text_line_len(line, len);
	if (d->in_auth && !(len == 1 && line[0] == '+') &&
	    !(len >= 2 && line[0] == '+' && line[1] == ' '))
		d->in_auth = false;	/* "+OK" or "-ERR": SASL is over */
	if (len >= 4 && strncmp(line, "-ERR", 4) == 0)
		dialogue_text_clean(d->err, sizeof(d->err), line, len);
}

/*
 * The record of the last login.
 */

/* state_path - <msgdir>/pop/<name> of an account, or NULL */
static char *
state_path(const struct config *cfg, const struct account *acct)
{
	char	name[POP_STATE_NAME_MAX];

	if (cfg->msgdir == NULL ||
	    pop_state_name(acct->name, name, sizeof(name)) == -1)
		return NULL;
	return xasprintf("%s/%s/%s", cfg->msgdir, POP_STATE_DIR, name);
}

/* state_last - when the last login succeeded; 0: never, or unknown */
static time_t
state_last(const struct config *cfg, const struct account *acct)
{
	struct stat	 st;
	char		*path;
	time_t		 last = 0;

	if ((path = state_path(cfg, acct)) == NULL)
		return 0;
	if (stat(path, &st) == 0 && S_ISREG(st.st_mode))
		last = st.st_mtim.tv_sec;
	free(path);
	return last;
}

/* state_record - a login succeeded now; losing this costs one login */
static void
state_record(const struct config *cfg, const struct account *acct)
{
	char	*dir, *path;
	int	 fd;

	if ((path = state_path(cfg, acct)) == NULL) {
		log_warning("POP-before-SMTP [%s]: no place to record the "
		    "login", acct->name);
		return;
	}
	dir = xasprintf("%s/%s", cfg->msgdir, POP_STATE_DIR);
	if (mkdir(dir, 0700) == -1 && errno != EEXIST)
		log_warning("POP-before-SMTP [%s]: cannot create %s: %s",
		    acct->name, dir, strerror(errno));
	fd = open(path, O_WRONLY | O_CREAT | O_NOFOLLOW | O_CLOEXEC |
	    O_NONBLOCK, 0600);
	if (fd == -1 || futimens(fd, NULL) == -1)
		log_warning("POP-before-SMTP [%s]: cannot record the login "
		    "in %s: %s", acct->name, path, strerror(errno));
	if (fd != -1)
		close(fd);
	free(dir);
	free(path);
}

/* pop_forget - the next pop_before_smtp() of this account logs in */
void
pop_forget(const struct config *cfg, const struct account *acct)
{
	char	*path;

	if (!acct->popbeforesmtp || (path = state_path(cfg, acct)) == NULL)
		return;
	if (unlink(path) == -1 && errno != ENOENT)
		log_warning("POP-before-SMTP [%s]: cannot remove %s: %s",
		    acct->name, path, strerror(errno));
	free(path);
}

/* wait_seconds - sleep the whole time, signals or not */
static void
wait_seconds(int seconds)
{
	struct timespec	t;

	if (seconds <= 0)
		return;
	t.tv_sec = seconds;
	t.tv_nsec = 0;
	while (nanosleep(&t, &t) == -1 && errno == EINTR)
		;
}

/*
 * libcurl.
 */

/* discard_cb - the session has no body; should one come, drop it */
static size_t
discard_cb(char *data, size_t size, size_t nmemb, void *arg)
{
	return size * nmemb;
}

/*
 * debug_log - one dialogue line, cleaned.  debuglevel is the admin asking
 * for the dialogue, so it is logged at INFO.
 */
static void
debug_log(struct pop_session *s, const char *dir, const char *data,
    size_t len)
{
	char	line[POP_LOG_LINE];

	dialogue_text_clean(line, sizeof(line), data,
	    dialogue_text_line_len(data, len));
	log_info("pop %s: %s %s", s->peer, dir, line);
}

/* debug_cb - libcurl's account of the session: the only view of replies */
static int
debug_cb(CURL *curl, curl_infotype type, char *data, size_t size, void *arg)
{
	struct pop_session	*s = arg;
	char			 shown[POP_LOG_LINE];

	switch (type) {
	case CURLINFO_HEADER_OUT:
		pop_dialogue_out(&s->dlg, data, size, shown, sizeof(shown));
		if (s->cfg->debuglevel >= 1)
			log_info("pop %s: > %s", s->peer, shown);
		break;
	case CURLINFO_HEADER_IN:
		pop_dialogue_in(&s->dlg, data, size);
		if (s->cfg->debuglevel >= 1)
			debug_log(s, "<", data, size);
		break;
	case CURLINFO_TEXT:
		if (s->cfg->debuglevel >= 2)
			debug_log(s, "*", data, size);
		break;
	default:
		/* TLS records and data are not logged */
		break;
	}
	return 0;
}

/* session_options - URL, login, dialogue, TLS and deadlines */
static int
session_options(struct pop_session *s, const struct account *acct)
{
	CURL	*c = s->curl;
	long	 t = curltls_timeout(s->cfg);
	int	 bad = 0;

	bad |= curl_easy_setopt(c, CURLOPT_URL, s->url) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "pop3,pop3s") !=
	    CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_ERRORBUFFER, s->errbuf) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_VERBOSE, 1L) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_DEBUGFUNCTION, debug_cb) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_DEBUGDATA, s) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, discard_cb) !=
	    CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_USERNAME, acct->popusername) !=
	    CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_PASSWORD,
	    acct->poppassword != NULL ? acct->poppassword : "") != CURLE_OK;
	/* without NOBODY, NOOP waits for a body that never comes */
	bad |= curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, POP_REQUEST) !=
	    CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_NOBODY, 1L) != CURLE_OK;
	/* the connect timeout also covers the greeting */
	bad |= curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
	    curltls_connect_timeout(s->cfg) * 1000) != CURLE_OK;
	bad |= curl_easy_setopt(c, CURLOPT_SERVER_RESPONSE_TIMEOUT, t) !=
	    CURLE_OK;
	/* a login is a few short lines: the whole of it fits in one wait */
	bad |= curl_easy_setopt(c, CURLOPT_TIMEOUT, t) != CURLE_OK;
	/* popssl=false is plain POP3, as configured: no STLS attempt */
	bad |= curl_easy_setopt(c, CURLOPT_USE_SSL, (long)CURLUSESSL_NONE) !=
	    CURLE_OK;
	if (acct->popssl && curltls_options(c, acct->tlsverify,
	    acct->smtpweaktls, s->ca) == -1)
		bad = 1;
	return bad ? -1 : 0;
}

/* session_open - a handle for one login, created in this process */
static struct pop_session *
session_open(const struct config *cfg, const struct account *acct, char *err,
    size_t errlen)
{
	const char		*proto = acct->popssl ? "pop3s" : "pop3";
	struct pop_session	*s;
	char			*host;
	int			 port;

	if (!curltls_has(proto)) {
		snprintf(err, errlen, "POP-before-SMTP: libcurl lacks %s "
		    "support", proto);
		return NULL;
	}
	if (acct->popusername == NULL || acct->popusername[0] == '\0') {
		snprintf(err, errlen, "POP-before-SMTP: popusername not set");
		return NULL;
	}
	port = acct->popport > 0 ? acct->popport :
	    acct->popssl ? POP_PORT_SSL : POP_PORT_PLAIN;
	s = xcalloc(1, sizeof(*s));
	s->cfg = cfg;
	if ((s->url = pop_url(acct->pophost, port, acct->popssl)) == NULL) {
		snprintf(err, errlen, "POP-before-SMTP: invalid pophost "
		    "\"%s\"", acct->pophost != NULL ? acct->pophost : "");
		goto fail;
	}
	host = curltls_url_host(acct->pophost);
	s->peer = xasprintf("%s:%d", host, port);
	free(host);
	if (acct->popssl && acct->tlsverify && acct->tlscafile != NULL &&
	    (s->ca = curltls_ca_load(acct->tlscafile, err, errlen)) == NULL)
		goto fail;
	if ((s->curl = curl_easy_init()) == NULL) {
		snprintf(err, errlen, "POP-before-SMTP: cannot create a "
		    "libcurl handle");
		goto fail;
	}
	if (session_options(s, acct) == -1) {
		snprintf(err, errlen, "POP-before-SMTP: libcurl refused an "
		    "option (%s)", curl_version());
		goto fail;
	}
	return s;
fail:
	session_close(s);
	return NULL;
}

/* session_close - QUIT, then release the handle and the CAs */
static void
session_close(struct pop_session *s)
{
	if (s->curl != NULL)
		curl_easy_cleanup(s->curl);
	curltls_ca_free(s->ca);
	free(s->url);
	free(s->peer);
	free(s);
}

/* session_explain - one line on why a login failed */
static void
session_explain(struct pop_session *s, CURLcode rc, char *err, size_t errlen)
{
	const char	*detail = s->errbuf[0] != '\0' ? s->errbuf :
	    curl_easy_strerror(rc);
	const char	*what = NULL;

	switch (rc) {
	case CURLE_LOGIN_DENIED:
		/* the server's words say it best */
		if (s->dlg.err[0] != '\0') {
			snprintf(err, errlen, "POP login at %s failed: %s",
			    s->peer, s->dlg.err);
			return;
		}
		what = "login denied";
		break;
	case CURLE_PEER_FAILED_VERIFICATION:
		what = "TLS certificate verification failed";
		break;
	case CURLE_SSL_CONNECT_ERROR:
		what = "TLS handshake failed";
		break;
	case CURLE_OPERATION_TIMEDOUT:
		what = "timeout";
		break;
	default:
		break;
	}
	if (what != NULL && s->dlg.err[0] != '\0')
		snprintf(err, errlen, "POP login at %s failed: %s: %s: %s",
		    s->peer, what, detail, s->dlg.err);
	else if (what != NULL)
		snprintf(err, errlen, "POP login at %s failed: %s: %s",
		    s->peer, what, detail);
	else if (s->dlg.err[0] != '\0')
		snprintf(err, errlen, "POP login at %s failed: %s: %s",
		    s->peer, detail, s->dlg.err);
	else
		snprintf(err, errlen, "POP login at %s failed: %s", s->peer,
		    detail);
}

/* pop_before_smtp - log in to the account's POP server when it is due */
int
pop_before_smtp(const struct config *cfg, const struct account *acct,
    char *err, size_t errlen)
{
	struct pop_session	*s;
	CURLcode		 rc;
	time_t			 last, now;

	if (!acct->popbeforesmtp)
		return 0;
	last = state_last(cfg, acct);
	now = time(NULL);
	if (!pop_login_due(last, now, acct->popcheckdelay)) {
		log_debug("POP-before-SMTP [%s]: last login %lld s ago, "
		    "within popcheckdelay %d s", acct->name,
		    (long long)(now - last), acct->popcheckdelay);
		return 0;
	}

	if ((s = session_open(cfg, acct, err, errlen)) == NULL)
		return -1;
	rc = curl_easy_perform(s->curl);
	if (rc != CURLE_OK) {
		session_explain(s, rc, err, errlen);
		session_close(s);
		return -1;
	}
	log_info("POP-before-SMTP [%s]: logged in at %s%s", acct->name,
	    s->peer, acct->popssl ? " (TLS)" : "");
	session_close(s);

	state_record(cfg, acct);
	wait_seconds(cfg->waitafterpop);
	return 0;
}
