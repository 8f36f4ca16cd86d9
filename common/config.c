/*
 * config - the configuration model: one table of keys with their defaults
 * and ranges, strict value parsing, validation, use= resolution, path
 * resolution against the config file's folder, and account lookup.
 *
 * The two syntaxes (config_ini.c, config_cfg.c) know nothing of keys: they
 * feed sections and (key, text value, line) in here, so defaults, checks and
 * messages are the same whatever the file looks like.  Errors stop the load
 * at the first one; warnings are logged and the load goes on.  No message
 * ever shows the value of a secret key.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <errno.h>
#include <libgen.h>
#include <limits.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "util.h"

#define CONFIG_MSG_MAX	1024	/* one error or warning, before FILE:LINE */
#define VALUE_SHOWN_MAX	64	/* bytes of a bad value quoted in a message */
#define HOSTNAME_MAX	256	/* gethostname() buffer */
#define NET_TEXT_MAX	(INET6_ADDRSTRLEN + 5)	/* "addr/prefix" */

enum key_type {
	KEY_INT,		/* int: decimal, min..max */
	KEY_SIZE,		/* long: decimal, optional k/M/G suffix */
	KEY_BOOL,		/* bool: true/false/yes/no/on/off/1/0 */
	KEY_ENUM,		/* enum: index into names[] */
	KEY_LEVEL,		/* enum log_level: log_level_parse() */
	KEY_STRING,		/* char * */
	KEY_PATH,		/* char *, absolute against the config folder */
	KEY_LIST,		/* char ** and a size_t count */
	KEY_RETIRED		/* read by old versions, ignored now */
};

#define KEY_SECRET	0x01	/* a password: never shown */
#define KEY_HOST	0x02	/* a host or user name: no blanks */
#define KEY_MAILBOX	0x04	/* local@domain */
#define KEY_ADDRS	0x08	/* list of IP addresses */
#define KEY_NETS	0x10	/* list of networks, address[/prefix] */
#define KEY_URL		0x20	/* https://, http:// to loopback */

struct key {
	const char		*name;
	enum config_section_kind scope;
	enum key_type		 type;
	size_t			 off;		/* in config or account */
	size_t			 count_off;	/* KEY_LIST: its count */
	const char		*def;		/* default text; NULL: unset */
	long			 min, max;	/* KEY_INT, KEY_SIZE */
	const char *const	*names;		/* KEY_ENUM: its values */
	int			 flags;
	const char		*hint;		/* KEY_RETIRED: use instead */
};

#define GLB	SECTION_GLOBAL
#define LOGS	SECTION_LOGGING
#define ACC	SECTION_ACCOUNT
#define C_(f)	offsetof(struct config, f)
#define A_(f)	offsetof(struct account, f)

#define K_INT(s, n, o, d, lo, hi) \
	{ .name = n, .scope = s, .type = KEY_INT, .off = o, .def = d, \
	  .min = lo, .max = hi }
#define K_SIZE(s, n, o, d, lo, hi) \
	{ .name = n, .scope = s, .type = KEY_SIZE, .off = o, .def = d, \
	  .min = lo, .max = hi }
#define K_BOOL(s, n, o, d) \
	{ .name = n, .scope = s, .type = KEY_BOOL, .off = o, .def = d }
#define K_ENUM(s, n, o, d, v) \
	{ .name = n, .scope = s, .type = KEY_ENUM, .off = o, .def = d, \
	  .names = v }
#define K_STR(s, n, o, d, fl) \
	{ .name = n, .scope = s, .type = KEY_STRING, .off = o, .def = d, \
	  .flags = fl }
#define K_PATH(s, n, o, d) \
	{ .name = n, .scope = s, .type = KEY_PATH, .off = o, .def = d }
#define K_LIST(s, n, o, co, d, fl) \
	{ .name = n, .scope = s, .type = KEY_LIST, .off = o, .count_off = co, \
	  .def = d, .flags = fl }
#define K_OLD(s, n, h) \
	{ .name = n, .scope = s, .type = KEY_RETIRED, .hint = h }

static const char *const security_names[] = { "none", "tls", "ssl", NULL };
static const char *const auth_names[] = {
	"off", "optional", "required", NULL
};
static const char *const smtpauth_names[] = { "auto", "xoauth2", NULL };
static const char *const provider_names[] = {
	"microsoft", "google", "custom", NULL
};
static const char *const flow_names[] = {
	"device", "authcode", "clientcredentials", NULL
};

/* Account keys that only mean something with smtpauth=xoauth2. */
static const char *const oauth_key_names[] = {
	"oauthprovider", "oauthflow", "oauthtenant", "oauthclientid",
	"oauthclientsecret", "oauthclientsecretfile", "oauthtokenurl",
	"oauthauthurl", "oauthdeviceurl", "oauthscope", "oauthtokenfile",
	"oauthtokencommand", NULL
};

/*
 * Every key of every section.  The enum tables above are indexed by the
 * values of enum smtp_security and enum client_auth.
 */
static const struct key keys[] = {
	/* [config] of the Python smtpproxy */
	K_INT(GLB, "port", C_(port), "25", 1, 65535),
	K_INT(GLB, "sleeptime", C_(sleeptime), "30", 1, 86400),
	K_INT(GLB, "debuglevel", C_(debuglevel), "0", 0, INT_MAX),
	K_INT(GLB, "waitafterpop", C_(waitafterpop), "5", 0, 3600),
	K_BOOL(GLB, "deleteonerror", C_(deleteonerror), "false"),
	K_PATH(GLB, "msgdir", C_(msgdir), "./msgs"),

	/* [config] keys added here */
	K_LIST(GLB, "listen", C_(listen), C_(nlisten), "127.0.0.1", KEY_ADDRS),
	K_STR(GLB, "hostname", C_(hostname), NULL, KEY_HOST),
	K_INT(GLB, "processes", C_(processes), "4", 1, 1024),
	K_INT(GLB, "maxprocesses", C_(maxprocesses), "16", 1, 4096),
	K_INT(GLB, "maxconnectionsperchild", C_(maxconnectionsperchild),
	    "1000", 1, INT_MAX),
	K_SIZE(GLB, "maxmessagesize", C_(maxmessagesize), "26214400",
	    1, LONG_MAX),
	K_INT(GLB, "maxrecipients", C_(maxrecipients), "100", 1, INT_MAX),
	K_INT(GLB, "timeout", C_(timeout), "300", 1, 86400),
	K_STR(GLB, "user", C_(user), NULL, KEY_HOST),
	K_STR(GLB, "group", C_(group), NULL, KEY_HOST),
	K_PATH(GLB, "pidfile", C_(pidfile), NULL),
	K_LIST(GLB, "allow", C_(allow), C_(nallow), "127.0.0.0/8 ::1/128",
	    KEY_NETS),
	K_PATH(GLB, "tlscert", C_(tlscert), NULL),
	K_PATH(GLB, "tlskey", C_(tlskey), NULL),
	K_ENUM(GLB, "auth", C_(auth), "off", auth_names),
	K_INT(GLB, "retrymin", C_(retrymin), "60", 1, INT_MAX),
	K_INT(GLB, "retrymax", C_(retrymax), "3600", 1, INT_MAX),
	K_INT(GLB, "queuelifetime", C_(queuelifetime), "432000", 1, INT_MAX),
	K_INT(GLB, "relayprocesses", C_(relayprocesses), "4", 1, 1024),
	K_INT(GLB, "relaytimeout", C_(relaytimeout), "300", 1, 86400),

	/* [logging] */
	K_PATH(LOGS, "file", C_(logfile), NULL),
	K_SIZE(LOGS, "size", C_(logsize), "1000000", 0, LONG_MAX),
	K_INT(LOGS, "count", C_(logcount), "10", 0, 1000),
	{ .name = "level", .scope = LOGS, .type = KEY_LEVEL,
	  .off = C_(loglevel), .def = "INFO" },

	/* account sections */
	K_STR(ACC, "localhostname", A_(localhostname), NULL, KEY_HOST),
	K_STR(ACC, "smtphost", A_(smtphost), NULL, KEY_HOST),
	K_INT(ACC, "smtpport", A_(smtpport), "0", 0, 65535),
	K_ENUM(ACC, "smtpsecurity", A_(smtpsecurity), "none", security_names),
	K_STR(ACC, "smtpusername", A_(smtpusername), NULL, 0),
	K_STR(ACC, "smtppassword", A_(smtppassword), NULL, KEY_SECRET),
	K_BOOL(ACC, "smtpweaktls", A_(smtpweaktls), "false"),
	K_BOOL(ACC, "tlsverify", A_(tlsverify), "true"),
	K_PATH(ACC, "tlscafile", A_(tlscafile), NULL),
	K_BOOL(ACC, "popbeforesmtp", A_(popbeforesmtp), "false"),
	K_STR(ACC, "pophost", A_(pophost), NULL, KEY_HOST),
	K_INT(ACC, "popport", A_(popport), "995", 1, 65535),
	K_BOOL(ACC, "popssl", A_(popssl), "true"),
	K_STR(ACC, "popusername", A_(popusername), NULL, 0),
	K_STR(ACC, "poppassword", A_(poppassword), NULL, KEY_SECRET),
	K_INT(ACC, "popcheckdelay", A_(popcheckdelay), "60", 0, INT_MAX),
	K_STR(ACC, "returnpath", A_(returnpath), NULL, KEY_MAILBOX),
	K_STR(ACC, "replyto", A_(replyto), NULL, 0),
	K_STR(ACC, "forcefrom", A_(forcefrom), NULL, KEY_MAILBOX),
	K_STR(ACC, "use", A_(use), NULL, 0),
	K_STR(ACC, "localpassword", A_(localpassword), NULL, KEY_SECRET),
	K_ENUM(ACC, "smtpauth", A_(smtpauth), "auto", smtpauth_names),
	K_ENUM(ACC, "oauthprovider", A_(oauthprovider), "custom",
	    provider_names),
	K_ENUM(ACC, "oauthflow", A_(oauthflow), "device", flow_names),
	K_STR(ACC, "oauthtenant", A_(oauthtenant), NULL, KEY_HOST),
	K_STR(ACC, "oauthclientid", A_(oauthclientid), NULL, KEY_HOST),
	K_STR(ACC, "oauthclientsecret", A_(oauthclientsecret), NULL,
	    KEY_SECRET),
	K_PATH(ACC, "oauthclientsecretfile", A_(oauthclientsecretfile), NULL),
	K_STR(ACC, "oauthtokenurl", A_(oauthtokenurl), NULL, KEY_URL),
	K_STR(ACC, "oauthauthurl", A_(oauthauthurl), NULL, KEY_URL),
	K_STR(ACC, "oauthdeviceurl", A_(oauthdeviceurl), NULL, KEY_URL),
	K_STR(ACC, "oauthscope", A_(oauthscope), NULL, 0),
	K_PATH(ACC, "oauthtokenfile", A_(oauthtokenfile), NULL),
	K_STR(ACC, "oauthtokencommand", A_(oauthtokencommand), NULL, 0),
	K_OLD(ACC, "smtptls", "use smtpsecurity=tls"),
};

#define NKEYS	ARRAY_LEN(keys)

/* KEY_ENUM stores through an int: the enums it fills must be int-sized. */
_Static_assert(sizeof(enum smtp_security) == sizeof(int), "enum size");
_Static_assert(sizeof(enum client_auth) == sizeof(int), "enum size");
_Static_assert(sizeof(enum smtp_auth) == sizeof(int), "enum size");
_Static_assert(sizeof(enum oauth_provider) == sizeof(int), "enum size");
_Static_assert(sizeof(enum oauth_flow) == sizeof(int), "enum size");

struct config_loader {
	struct config	*cfg;
	const char	*file;		/* as given: the FILE of messages */
	const char	*where;		/* config_where(), or NULL */
	char		*err;
	size_t		 errlen;
	bool		 failed;

	bool		 in_section;
	enum config_section_kind kind;
	size_t		 acct;		/* index of the current account */
	int		 global_line;	/* first [config], 0: none yet */
	int		 logging_line;	/* first [logging] */

	int		 seen[NKEYS];	/* [config]/[logging]: line last set */
	int		(*acct_seen)[NKEYS];	/* the same per account */
	size_t		 acct_cap;
};

static const struct key	*key_find(const char *, enum config_section_kind);
static size_t		 key_index(const char *, enum config_section_kind);
static char		*key_base(struct config_loader *, const struct key *);
static int		*key_seen(struct config_loader *, const struct key *);
static int		 key_store(struct config_loader *, const struct key *,
			    char *, const char *, int);
static void		 key_default(struct config_loader *, const struct key *,
			    char *);
static void		 key_clear(const struct key *, char *);
static int		 store_number(struct config_loader *,
			    const struct key *, char *, const char *, int);
static int		 store_bool(struct config_loader *, const struct key *,
			    char *, const char *, int);
static int		 store_enum(struct config_loader *, const struct key *,
			    char *, const char *, int);
static int		 store_level(struct config_loader *,
			    const struct key *, char *, const char *, int);
static int		 store_string(struct config_loader *,
			    const struct key *, char *, const char *, int);
static int		 store_list(struct config_loader *, const struct key *,
			    char *, const char *, int);
static int		 parse_number(const char *, long *);
static int		 parse_size(const char *, long *);
static int		 parse_bool(const char *, bool *);
static bool		 text_has_control(const char *);
static bool		 mailbox_ok(const char *);
static bool		 address_ok(const char *);
static bool		 network_ok(const char *);
static const char	*url_problem(const char *);
static bool		 loopback_host(const char *, size_t);
static char		*path_resolve(const char *, const char *);
static const char	*shown(char *, size_t, const char *);
static const char	*key_shown(char *, size_t, const struct key *,
			    const char *);
static void		 enum_choices(char *, size_t, const char *const *);
static const char	*section_name(const struct config_loader *);
static int		 section_again(struct config_loader *, const char *,
			    int *, int);
static int		 account_begin(struct config_loader *, const char *,
			    int);
static char		*account_name(struct config_loader *, const char *,
			    int);
static bool		 name_equal(const char *, const char *);
static void		 loader_init(struct config_loader *, struct config *,
			    const char *, char *, size_t);
static void		 loader_done(struct config_loader *);
static int		 config_locate(struct config *, const char *);
static int		 config_finish(struct config_loader *);
static int		 globals_check(struct config_loader *);
static int		 account_resolve(struct config_loader *, size_t);
static int		 account_check(struct config_loader *, size_t);
static int		 account_oauth_check(struct config_loader *, size_t);
static int		 oauth_flow_check(struct config_loader *, size_t);
static int		 oauth_keys_unused(struct config_loader *, size_t,
			    const char *);
static int		 account_key_line(const struct config_loader *, size_t,
			    const char *);
static char		*default_hostname(void);
static bool		 is_ini_name(const char *);
static int		 open_failed(const char *, const char *, int, char *,
			    size_t);

/* config_load - read, check and resolve a configuration file */
int
config_load(const char *path, struct config **out, char *err, size_t errlen)
{
	struct config_loader	 ld;
	struct config		*cfg;
	struct stat		 st;
	FILE			*fp;
	int			 rc;

	*out = NULL;
	if (err != NULL && errlen > 0)
		err[0] = '\0';
	if ((fp = fopen(path, "re")) == NULL)
		return open_failed(path, "cannot open", errno, err, errlen);
	if (fstat(fileno(fp), &st) == 0 && S_ISDIR(st.st_mode)) {
		fclose(fp);
		return open_failed(path, "cannot open", EISDIR, err, errlen);
	}
	cfg = xcalloc(1, sizeof(*cfg));
	if (config_locate(cfg, path) == -1) {
		rc = errno;
		fclose(fp);
		config_free(cfg);
		return open_failed(path, "cannot find its folder", rc, err,
		    errlen);
	}
	loader_init(&ld, cfg, path, err, errlen);
	if (is_ini_name(path))
		rc = config_read_ini(&ld, fp);
	else
		rc = config_read_cfg(&ld, fp);
	fclose(fp);
	if (rc == 0 && !ld.failed)
		rc = config_finish(&ld);
	if (ld.failed)
		rc = -1;
	loader_done(&ld);
	if (rc != 0) {
		config_free(cfg);
		return -1;
	}
	*out = cfg;
	return 0;
}

/* config_free - release a model and everything it owns */
void
config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < cfg->naccounts; i++) {
		struct account	*a = &cfg->accounts[i];

		for (size_t k = 0; k < NKEYS; k++)
			if (keys[k].scope == SECTION_ACCOUNT)
				key_clear(&keys[k], (char *)a);
		free(a->name);
	}
	free(cfg->accounts);
	for (size_t k = 0; k < NKEYS; k++)
		if (keys[k].scope != SECTION_ACCOUNT)
			key_clear(&keys[k], (char *)cfg);
	free(cfg->path);
	free(cfg->dir);
	free(cfg);
}

/* account_find - the section of that name, use= not followed */
const struct account *
account_find(const struct config *cfg, const char *name)
{
	for (size_t i = 0; i < cfg->naccounts; i++)
		if (name_equal(cfg->accounts[i].name, name))
			return &cfg->accounts[i];
	return NULL;
}

/* account_lookup - the account relaying for sender: exact, @domain, default */
const struct account *
account_lookup(const struct config *cfg, const char *sender)
{
	const struct account	*a = NULL;
	const char		*at;

	if (sender != NULL && sender[0] != '\0' && sender[0] != '@')
		a = account_find(cfg, sender);
	if (a == NULL && sender != NULL &&
	    (at = strrchr(sender, '@')) != NULL && at[1] != '\0')
		a = account_find(cfg, at);
	if (a == NULL)
		a = account_find(cfg, ACCOUNT_DEFAULT_NAME);
	return a == NULL ? NULL : a->target;
}

/* account_port - smtpport, or 465 for implicit TLS and 25 otherwise */
int
account_port(const struct account *a)
{
	if (a->smtpport != 0)
		return a->smtpport;
	return a->smtpsecurity == SECURITY_SSL ? 465 : 25;
}

/* config_section - a reader starts a section of the given kind */
int
config_section(struct config_loader *ld, enum config_section_kind kind,
    const char *name, int line)
{
	if (ld->failed)
		return -1;
	ld->in_section = true;
	ld->kind = kind;
	switch (kind) {
	case SECTION_GLOBAL:
		return section_again(ld, "config", &ld->global_line, line);
	case SECTION_LOGGING:
		return section_again(ld, "logging", &ld->logging_line, line);
	case SECTION_ACCOUNT:
		return account_begin(ld, name, line);
	}
	return config_fail(ld, line, "unknown kind of section");
}

/* config_set - a reader found key=value on line in the current section */
int
config_set(struct config_loader *ld, const char *name, const char *value,
    int line)
{
	const struct key	*k;
	char			 buf[VALUE_SHOWN_MAX + 8];
	char			*lname;
	int			*seen, rc;

	if (ld->failed)
		return -1;
	if (!ld->in_section)
		return config_fail(ld, line, "key '%s' outside of any section",
		    shown(buf, sizeof(buf), name));
	lname = xstrdup(name);
	str_lower(lname);
	k = key_find(lname, ld->kind);
	if (k == NULL || k->type == KEY_RETIRED) {
		if (k == NULL)
			config_warn(ld, line, "unknown key '%s' in [%s], "
			    "ignored", shown(buf, sizeof(buf), lname),
			    section_name(ld));
		else
			config_warn(ld, line, "retired key '%s' in [%s], "
			    "ignored (%s)", k->name, section_name(ld), k->hint);
		free(lname);
		return 0;
	}
	free(lname);
	seen = key_seen(ld, k);
	if (*seen != 0)
		config_warn(ld, line, "key '%s' given again in [%s] (first at "
		    "line %d), the last one wins", k->name, section_name(ld),
		    *seen);
	rc = key_store(ld, k, key_base(ld, k), value, line);
	if (rc == 0)
		*seen = line;
	return rc;
}

/* config_where - settings now come from file (NULL: the file opened) */
void
config_where(struct config_loader *ld, const char *file)
{
	ld->where = file;
}

/* config_dir - the absolute folder of the file being read */
const char *
config_dir(const struct config_loader *ld)
{
	return ld->cfg->dir;
}

/* config_fail - record the first error as "FILE:LINE: message"; -1 */
int
config_fail(struct config_loader *ld, int line, const char *fmt, ...)
{
	char		 msg[CONFIG_MSG_MAX];
	const char	*file = ld->where != NULL ? ld->where : ld->file;
	va_list		 ap;

	if (ld->failed)
		return -1;
	ld->failed = true;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (ld->err == NULL || ld->errlen == 0)
		return -1;
	if (line > 0)
		snprintf(ld->err, ld->errlen, "%s:%d: %s", file, line, msg);
	else
		snprintf(ld->err, ld->errlen, "%s: %s", file, msg);
	return -1;
}

/* config_warn - log "FILE:LINE: message" as a warning */
void
config_warn(struct config_loader *ld, int line, const char *fmt, ...)
{
	char		 msg[CONFIG_MSG_MAX];
	const char	*file = ld->where != NULL ? ld->where : ld->file;
	va_list		 ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	log_warning("%s:%d: %s", file, line, msg);
}

/* key_find - the key of that (lower-case) name in a kind of section */
static const struct key *
key_find(const char *name, enum config_section_kind scope)
{
	for (size_t i = 0; i < NKEYS; i++)
		if (keys[i].scope == scope && strcmp(keys[i].name, name) == 0)
			return &keys[i];
	return NULL;
}

/* key_index - position of a key in the table; the key must exist */
static size_t
key_index(const char *name, enum config_section_kind scope)
{
	const struct key	*k = key_find(name, scope);

	if (k == NULL)
		abort();
	return (size_t)(k - keys);
}

/* key_base - the struct a key of the current section is stored in */
static char *
key_base(struct config_loader *ld, const struct key *k)
{
	if (k->scope == SECTION_ACCOUNT)
		return (char *)&ld->cfg->accounts[ld->acct];
	return (char *)ld->cfg;
}

/* key_seen - where the current section last set a key (0: never) */
static int *
key_seen(struct config_loader *ld, const struct key *k)
{
	size_t	i = (size_t)(k - keys);

	if (k->scope == SECTION_ACCOUNT)
		return &ld->acct_seen[ld->acct][i];
	return &ld->seen[i];
}

/* key_store - parse a value and store it; an empty string means the default */
static int
key_store(struct config_loader *ld, const struct key *k, char *base,
    const char *value, int line)
{
	switch (k->type) {
	case KEY_INT:
	case KEY_SIZE:
		return store_number(ld, k, base, value, line);
	case KEY_BOOL:
		return store_bool(ld, k, base, value, line);
	case KEY_ENUM:
		return store_enum(ld, k, base, value, line);
	case KEY_LEVEL:
		return store_level(ld, k, base, value, line);
	case KEY_STRING:
	case KEY_PATH:
		return store_string(ld, k, base, value, line);
	case KEY_LIST:
		return store_list(ld, k, base, value, line);
	case KEY_RETIRED:
		break;
	}
	return 0;
}

/* key_default - set a key to its default (unset if it has none) */
static void
key_default(struct config_loader *ld, const struct key *k, char *base)
{
	key_clear(k, base);
	if (k->def == NULL)
		return;
	/* Defaults are valid by construction: a failure is a bug here. */
	if (key_store(ld, k, base, k->def, 0) == -1)
		abort();
}

/* key_clear - free what a string or list key holds and unset it */
static void
key_clear(const struct key *k, char *base)
{
	char	**sp = (char **)(base + k->off);
	char	***lp = (char ***)(base + k->off);
	size_t	 *np = (size_t *)(base + k->count_off);

	switch (k->type) {
	case KEY_STRING:
	case KEY_PATH:
		free(*sp);
		*sp = NULL;
		break;
	case KEY_LIST:
		for (size_t i = 0; i < *np; i++)
			free((*lp)[i]);
		free(*lp);
		*lp = NULL;
		*np = 0;
		break;
	default:
		break;
	}
}

/* store_number - KEY_INT and KEY_SIZE: whole decimal string, in range */
static int
store_number(struct config_loader *ld, const struct key *k, char *base,
    const char *value, int line)
{
	char	 buf[VALUE_SHOWN_MAX + 8];
	long	 v;
	int	 rc;

	rc = k->type == KEY_SIZE ? parse_size(value, &v) :
	    parse_number(value, &v);
	if (rc == -1)
		return config_fail(ld, line, "'%s' is not a number for key "
		    "'%s'%s", key_shown(buf, sizeof(buf), k, value),
		    k->name, k->type == KEY_SIZE ?
		    " (bytes, or with k, M or G)" : "");
	if (rc == -2 || v < k->min || v > k->max)
		return config_fail(ld, line, "%s is out of range for key '%s' "
		    "(%ld..%ld)", key_shown(buf, sizeof(buf), k, value),
		    k->name, k->min, k->max);
	if (k->type == KEY_SIZE)
		*(long *)(base + k->off) = v;
	else
		*(int *)(base + k->off) = (int)v;
	return 0;
}

/* store_bool - KEY_BOOL, the words Python's configparser takes */
static int
store_bool(struct config_loader *ld, const struct key *k, char *base,
    const char *value, int line)
{
	char	buf[VALUE_SHOWN_MAX + 8];
	bool	v;

	if (parse_bool(value, &v) == -1)
		return config_fail(ld, line, "'%s' is not a boolean for key "
		    "'%s' (use true or false)",
		    key_shown(buf, sizeof(buf), k, value), k->name);
	*(bool *)(base + k->off) = v;
	return 0;
}

/* store_enum - KEY_ENUM: one of the names, exactly as written there */
static int
store_enum(struct config_loader *ld, const struct key *k, char *base,
    const char *value, int line)
{
	char	buf[VALUE_SHOWN_MAX + 8], choices[128];

	for (int i = 0; k->names[i] != NULL; i++) {
		if (strcmp(k->names[i], value) == 0) {
			/* enum objects here are int-sized (C11 6.7.2.2) */
			*(int *)(base + k->off) = i;
			return 0;
		}
	}
	enum_choices(choices, sizeof(choices), k->names);
	return config_fail(ld, line, "'%s' is not a valid value for key '%s' "
	    "(use %s)", key_shown(buf, sizeof(buf), k, value), k->name,
	    choices);
}

/* store_level - KEY_LEVEL: DEBUG INFO WARNING ERROR NONE */
static int
store_level(struct config_loader *ld, const struct key *k, char *base,
    const char *value, int line)
{
	char		buf[VALUE_SHOWN_MAX + 8];
	enum log_level	level;

	if (log_level_parse(value, &level) == -1)
		return config_fail(ld, line, "'%s' is not a valid value for "
		    "key '%s' (use DEBUG, INFO, WARNING, ERROR or NONE)",
		    key_shown(buf, sizeof(buf), k, value), k->name);
	*(enum log_level *)(base + k->off) = level;
	return 0;
}

/* store_string - KEY_STRING and KEY_PATH: checked text, paths made absolute */
static int
store_string(struct config_loader *ld, const struct key *k, char *base,
    const char *value, int line)
{
	char	buf[VALUE_SHOWN_MAX + 8];
	char	**sp = (char **)(base + k->off);

	if (value[0] == '\0') {
		key_default(ld, k, base);
		return 0;
	}
	if (text_has_control(value))
		return config_fail(ld, line, "the value of key '%s' contains a "
		    "control character", k->name);
	if ((k->flags & KEY_HOST) && strchr(value, ' ') != NULL)
		return config_fail(ld, line, "'%s' is not a name for key '%s' "
		    "(no blanks)", key_shown(buf, sizeof(buf), k, value),
		    k->name);
	if ((k->flags & KEY_MAILBOX) && !mailbox_ok(value))
		return config_fail(ld, line, "'%s' is not a mail address for "
		    "key '%s' (use local@domain)",
		    key_shown(buf, sizeof(buf), k, value), k->name);
	if ((k->flags & KEY_URL) && url_problem(value) != NULL)
		return config_fail(ld, line, "'%s' for key '%s': %s",
		    key_shown(buf, sizeof(buf), k, value), k->name,
		    url_problem(value));
	free(*sp);
	if (k->type == KEY_PATH)
		*sp = path_resolve(ld->cfg->dir, value);
	else
		*sp = xstrdup(value);
	return 0;
}

/* store_list - KEY_LIST: items separated by commas or blanks, each checked */
static int
store_list(struct config_loader *ld, const struct key *k, char *base,
    const char *value, int line)
{
	static const char	 seps[] = ", \t";
	char			 buf[VALUE_SHOWN_MAX + 8];
	char			**items = NULL, *item;
	size_t			 n = 0;
	const char		*p = value;

	if (text_has_control(value))
		return config_fail(ld, line, "the value of key '%s' contains a "
		    "control character", k->name);
	while (*(p += strspn(p, seps)) != '\0') {
		size_t	len = strcspn(p, seps);

		item = xstrndup(p, len);
		p += len;
		if (((k->flags & KEY_ADDRS) && !address_ok(item)) ||
		    ((k->flags & KEY_NETS) && !network_ok(item))) {
			config_fail(ld, line, "'%s' is not %s for key '%s'",
			    key_shown(buf, sizeof(buf), k, item),
			    (k->flags & KEY_NETS) ? "a network (address or "
			    "address/prefix)" : "an IP address", k->name);
			free(item);
			for (size_t i = 0; i < n; i++)
				free(items[i]);
			free(items);
			return -1;
		}
		items = xrealloc(items, (n + 1) * sizeof(*items));
		items[n++] = item;
	}
	key_clear(k, base);
	if (n == 0) {
		key_default(ld, k, base);
		return 0;
	}
	*(char ***)(base + k->off) = items;
	*(size_t *)(base + k->count_off) = n;
	return 0;
}

/* parse_number - decimal long, whole string; -1 not a number, -2 range */
static int
parse_number(const char *s, long *out)
{
	const char	*p = s;
	char		*end;
	long		 v;

	if (*p == '-')
		p++;
	if (*p == '\0')
		return -1;
	for (; *p != '\0'; p++)
		if (*p < '0' || *p > '9')
			return -1;
	errno = 0;
	v = strtol(s, &end, 10);
	if (errno == ERANGE)
		return -2;
	*out = v;
	return 0;
}

/* parse_size - decimal with an optional k, M or G (binary) multiplier */
static int
parse_size(const char *s, long *out)
{
	static const char	 units[] = "kKmMgG";
	size_t			 len = strlen(s);
	const char		*u;
	char			*num;
	long			 v, mult = 1;
	int			 rc;

	if (len > 1 && (u = strchr(units, s[len - 1])) != NULL) {
		mult = 1L << (10 * (1 + (u - units) / 2));
		len--;
	}
	num = xstrndup(s, len);
	rc = parse_number(num, &v);
	free(num);
	if (rc != 0)
		return rc;
	if (v > LONG_MAX / mult || v < LONG_MIN / mult)
		return -2;
	*out = v * mult;
	return 0;
}

/* parse_bool - the words Python's configparser accepts, any case */
static int
parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };

	for (size_t i = 0; i < ARRAY_LEN(yes); i++) {
		if (strcasecmp(s, yes[i]) == 0) {
			*out = true;
			return 0;
		}
		if (strcasecmp(s, no[i]) == 0) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

/* text_has_control - does s hold a control character (tab included) */
static bool
text_has_control(const char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	return false;
}

/* mailbox_ok - one '@' with something on each side, no blanks or <> */
static bool
mailbox_ok(const char *s)
{
	const char	*at = strchr(s, '@');

	if (at == NULL || at == s || at[1] == '\0' ||
	    strchr(at + 1, '@') != NULL)
		return false;
	for (; *s != '\0'; s++) {
		unsigned char	c = (unsigned char)*s;

		if (c <= ' ' || c == 0x7f || c == '<' || c == '>')
			return false;
	}
	return true;
}

/* address_ok - an IPv4 or IPv6 address literal */
static bool
address_ok(const char *s)
{
	unsigned char	buf[sizeof(struct in6_addr)];

	return inet_pton(AF_INET, s, buf) == 1 ||
	    inet_pton(AF_INET6, s, buf) == 1;
}

/* network_ok - an address, or address/prefix with a prefix that fits */
static bool
network_ok(const char *s)
{
	unsigned char	 addr[sizeof(struct in6_addr)];
	char		 text[NET_TEXT_MAX];
	char		*slash;
	long		 prefix = -1, max;

	if (strlcpy_s(text, s, sizeof(text)) >= sizeof(text))
		return false;
	if ((slash = strchr(text, '/')) != NULL) {
		*slash = '\0';
		if (strlen(slash + 1) > 3 ||
		    parse_number(slash + 1, &prefix) != 0 || prefix < 0)
			return false;
	}
	if (inet_pton(AF_INET, text, addr) == 1)
		max = 32;
	else if (inet_pton(AF_INET6, text, addr) == 1)
		max = 128;
	else
		return false;
	return prefix <= max;
}

/*
 * url_problem - why a token endpoint URL is refused, or NULL: https://
 * with a host, or plain http:// only to this machine (tests, a local
 * token broker); no user name in it, nothing that could bend a request
 */
static const char *
url_problem(const char *url)
{
	const char	*host, *end;
	size_t		 hostlen;
	bool		 plain;

	if (strncasecmp(url, "https://", 8) == 0)
		plain = false;
	else if (strncasecmp(url, "http://", 7) == 0)
		plain = true;
	else
		return "not an https:// URL";
	for (const char *p = url; *p != '\0'; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return "blanks and control characters are not allowed";
	host = url + (plain ? 7 : 8);
	end = host + strcspn(host, "/?#");
	if (memchr(host, '@', (size_t)(end - host)) != NULL)
		return "a user name in the URL is not allowed";
	if (host[0] == '[') {
		const char	*close;

		close = memchr(host, ']', (size_t)(end - host));
		if (close == NULL)
			return "no host in the URL";
		hostlen = (size_t)(close - host) + 1;
	} else
		hostlen = strcspn(host, ":/?#");
	if (hostlen == 0)
		return "no host in the URL";
	if (plain && !loopback_host(host, hostlen))
		return "plain http:// is allowed only to this machine "
		    "(127.0.0.1, ::1, localhost): use https://";
	return NULL;
}

/* loopback_host - localhost, an address in 127.0.0.0/8, or [::1] */
static bool
loopback_host(const char *host, size_t len)
{
	char		text[INET6_ADDRSTRLEN + 2];
	struct in_addr	a4;
	struct in6_addr	a6;

	if (len == 9 && strncasecmp(host, "localhost", 9) == 0)
		return true;
	if (len >= sizeof(text))
		return false;
	memcpy(text, host, len);
	text[len] = '\0';
	if (inet_pton(AF_INET, text, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (len > 2 && text[0] == '[' && text[len - 1] == ']') {
		text[len - 1] = '\0';
		return inet_pton(AF_INET6, text + 1, &a6) == 1 &&
		    IN6_IS_ADDR_LOOPBACK(&a6);
	}
	return false;
}

/* path_resolve - value made absolute against dir ("./" prefixes dropped) */
static char *
path_resolve(const char *dir, const char *value)
{
	size_t	dlen = strlen(dir);

	if (value[0] == '/')
		return xstrdup(value);
	while (value[0] == '.' && value[1] == '/') {
		value += 2;
		value += strspn(value, "/");
	}
	if (value[0] == '\0' || strcmp(value, ".") == 0)
		return xstrdup(dir);
	if (dlen > 0 && dir[dlen - 1] == '/')
		return xasprintf("%s%s", dir, value);
	return xasprintf("%s/%s", dir, value);
}

/* shown - a value fit for a message: shortened, control bytes as '?' */
static const char *
shown(char *buf, size_t size, const char *s)
{
	size_t	i, max = size - 4;

	for (i = 0; s[i] != '\0' && i < max; i++)
		buf[i] = ((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ?
		    '?' : s[i];
	if (s[i] != '\0') {
		memcpy(buf + i, "...", 3);
		i += 3;
	}
	buf[i] = '\0';
	return buf;
}

/* key_shown - a value of key k fit for a message; a secret never is */
static const char *
key_shown(char *buf, size_t size, const struct key *k, const char *s)
{
	if (k->flags & KEY_SECRET)
		return shown(buf, size, "(hidden)");
	return shown(buf, size, s);
}

/* enum_choices - "a, b or c" from a NULL-terminated list of names */
static void
enum_choices(char *buf, size_t size, const char *const *names)
{
	size_t	len = 0;

	buf[0] = '\0';
	for (int i = 0; names[i] != NULL && len < size; i++) {
		const char	*sep = i == 0 ? "" :
		    names[i + 1] == NULL ? " or " : ", ";
		int		 n = snprintf(buf + len, size - len, "%s%s",
		    sep, names[i]);

		if (n < 0)
			break;
		len += (size_t)n;
	}
}

/* section_name - the current section as shown in messages */
static const char *
section_name(const struct config_loader *ld)
{
	switch (ld->kind) {
	case SECTION_GLOBAL:
		return "config";
	case SECTION_LOGGING:
		return "logging";
	case SECTION_ACCOUNT:
		break;
	}
	return ld->cfg->accounts[ld->acct].name;
}

/* section_again - note the first line of [config]/[logging]; warn on repeats */
static int
section_again(struct config_loader *ld, const char *name, int *first,
    int line)
{
	if (*first != 0)
		config_warn(ld, line, "section [%s] given again (first at line "
		    "%d), merged", name, *first);
	else
		*first = line;
	return 0;
}

/* account_begin - start or re-enter the account section of that name */
static int
account_begin(struct config_loader *ld, const char *raw, int line)
{
	struct config	*cfg = ld->cfg;
	struct account	*a;
	char		*name;

	if ((name = account_name(ld, raw, line)) == NULL)
		return -1;
	for (size_t i = 0; i < cfg->naccounts; i++) {
		if (name_equal(cfg->accounts[i].name, name)) {
			config_warn(ld, line, "section [%s] given again (first "
			    "at line %d), merged", name, cfg->accounts[i].line);
			ld->acct = i;
			free(name);
			return 0;
		}
	}
	if (cfg->naccounts == ld->acct_cap) {
		ld->acct_cap = ld->acct_cap ? ld->acct_cap * 2 : 8;
		cfg->accounts = xrealloc(cfg->accounts,
		    ld->acct_cap * sizeof(*cfg->accounts));
		ld->acct_seen = xrealloc(ld->acct_seen,
		    ld->acct_cap * sizeof(*ld->acct_seen));
	}
	ld->acct = cfg->naccounts++;
	a = &cfg->accounts[ld->acct];
	memset(a, 0, sizeof(*a));
	memset(ld->acct_seen[ld->acct], 0, sizeof(ld->acct_seen[0]));
	a->name = name;
	a->line = line;
	a->target = a;
	for (size_t k = 0; k < NKEYS; k++)
		if (keys[k].scope == SECTION_ACCOUNT)
			key_default(ld, &keys[k], (char *)a);
	return 0;
}

/* account_name - a section name trimmed, stray angle brackets removed */
static char *
account_name(struct config_loader *ld, const char *raw, int line)
{
	char	 buf[VALUE_SHOWN_MAX + 8];
	char	*copy, *name, *out;
	size_t	 len;

	copy = xstrdup(raw != NULL ? raw : "");
	name = str_trim(copy);
	len = strlen(name);
	if (len > 0 && (name[0] == '<' || name[len - 1] == '>')) {
		char	*inner = name + (name[0] == '<');

		if (name[len - 1] == '>')
			name[len - 1] = '\0';
		config_warn(ld, line, "angle brackets removed from section "
		    "name '%s', read as [%s]", shown(buf, sizeof(buf), raw),
		    inner);
		name = str_trim(inner);
	}
	if (name[0] == '\0' || text_has_control(name) ||
	    strcmp(name, "config") == 0 || strcmp(name, "logging") == 0) {
		config_fail(ld, line, "'%s' cannot be an account name",
		    shown(buf, sizeof(buf), raw != NULL ? raw : ""));
		free(copy);
		return NULL;
	}
	out = xstrdup(name);
	free(copy);
	return out;
}

/*
 * name_equal - account names compare as addresses: the local part exactly,
 * the domain (after the last '@') without regard to case.
 */
static bool
name_equal(const char *a, const char *b)
{
	const char	*ata = strrchr(a, '@'), *atb = strrchr(b, '@');

	if (ata == NULL || atb == NULL)
		return strcmp(a, b) == 0;
	if (ata - a != atb - b || memcmp(a, b, (size_t)(ata - a)) != 0)
		return false;
	return strcasecmp(ata + 1, atb + 1) == 0;
}

/* loader_init - an empty loader over cfg with every global default set */
static void
loader_init(struct config_loader *ld, struct config *cfg, const char *path,
    char *err, size_t errlen)
{
	memset(ld, 0, sizeof(*ld));
	ld->cfg = cfg;
	ld->file = path;
	ld->err = err;
	ld->errlen = errlen;
	for (size_t k = 0; k < NKEYS; k++)
		if (keys[k].scope != SECTION_ACCOUNT)
			key_default(ld, &keys[k], (char *)cfg);
}

/* loader_done - release what only the loading needed */
static void
loader_done(struct config_loader *ld)
{
	free(ld->acct_seen);
	ld->acct_seen = NULL;
}

/* config_locate - fill cfg->path and cfg->dir, both absolute */
static int
config_locate(struct config *cfg, const char *path)
{
	char	*copy = xstrdup(path);
	char	*dir, *base;

	dir = realpath(dirname(copy), NULL);
	free(copy);
	if (dir == NULL)
		return -1;
	copy = xstrdup(path);
	base = basename(copy);
	cfg->dir = dir;
	cfg->path = strcmp(dir, "/") == 0 ? xasprintf("/%s", base) :
	    xasprintf("%s/%s", dir, base);
	free(copy);
	return 0;
}

/* config_finish - cross-key checks, use= resolution, computed defaults */
static int
config_finish(struct config_loader *ld)
{
	struct config	*cfg = ld->cfg;

	ld->where = NULL;
	if (globals_check(ld) == -1)
		return -1;
	for (size_t i = 0; i < cfg->naccounts; i++)
		if (account_resolve(ld, i) == -1)
			return -1;
	for (size_t i = 0; i < cfg->naccounts; i++)
		if (account_check(ld, i) == -1)
			return -1;
	if (cfg->hostname == NULL)
		cfg->hostname = default_hostname();
	return 0;
}

/* globals_check - pool sizes, retry times and the TLS pair agree */
static int
globals_check(struct config_loader *ld)
{
	struct config	*cfg = ld->cfg;
	int		 maxline = ld->seen[key_index("maxprocesses", GLB)];
	int		 rmaxline = ld->seen[key_index("retrymax", GLB)];
	int		 certline = ld->seen[key_index("tlscert", GLB)];
	int		 keyline = ld->seen[key_index("tlskey", GLB)];

	if (maxline == 0 && cfg->maxprocesses < cfg->processes)
		cfg->maxprocesses = cfg->processes;
	if (cfg->maxprocesses < cfg->processes)
		return config_fail(ld, maxline, "maxprocesses (%d) is less "
		    "than processes (%d)", cfg->maxprocesses, cfg->processes);
	if (cfg->retrymax < cfg->retrymin)
		return config_fail(ld, rmaxline != 0 ? rmaxline :
		    ld->seen[key_index("retrymin", GLB)], "retrymax (%d) is "
		    "less than retrymin (%d)", cfg->retrymax, cfg->retrymin);
	if (cfg->tlscert != NULL && cfg->tlskey == NULL)
		return config_fail(ld, certline, "tlscert is set but tlskey is "
		    "not: give both or neither");
	if (cfg->tlskey != NULL && cfg->tlscert == NULL)
		return config_fail(ld, keyline, "tlskey is set but tlscert is "
		    "not: give both or neither");
	return 0;
}

/* account_resolve - follow use= to its end; a missing name or a loop fails */
static int
account_resolve(struct config_loader *ld, size_t i)
{
	struct config		*cfg = ld->cfg;
	struct account		*a = &cfg->accounts[i];
	const struct account	*cur = a, *next;
	char			 chain[CONFIG_MSG_MAX];
	bool			*visited;
	size_t			 len;
	int			 rc = 0;

	if (a->use == NULL) {
		a->target = a;
		return 0;
	}
	visited = xcalloc(cfg->naccounts, sizeof(*visited));
	visited[i] = true;
	len = (size_t)snprintf(chain, sizeof(chain), "[%s]", a->name);
	while (cur->use != NULL) {
		size_t	ci = (size_t)(cur - cfg->accounts);

		if ((next = account_find(cfg, cur->use)) == NULL) {
			rc = config_fail(ld, account_key_line(ld, ci, "use"),
			    "use=%s in [%s]: there is no account of that name",
			    cur->use, cur->name);
			break;
		}
		if (len < sizeof(chain))
			len += (size_t)snprintf(chain + len,
			    sizeof(chain) - len, " -> [%s]", next->name);
		if (visited[next - cfg->accounts]) {
			rc = config_fail(ld, account_key_line(ld, i, "use"),
			    "use= loop: %s", chain);
			break;
		}
		visited[next - cfg->accounts] = true;
		cur = next;
	}
	free(visited);
	if (rc == 0)
		a->target = cur;
	return rc;
}

/* account_check - what an account that relays itself must have */
static int
account_check(struct config_loader *ld, size_t i)
{
	const struct account	*a = &ld->cfg->accounts[i];
	int			 pbs = account_key_line(ld, i, "popbeforesmtp");

	if (a->use != NULL)
		return 0;
	if (a->smtphost == NULL)
		return config_fail(ld, a->line, "account [%s] has no smtphost",
		    a->name);
	if (account_oauth_check(ld, i) == -1)
		return -1;
	if (a->smtpauth == SMTPAUTH_AUTO && a->smtpusername != NULL &&
	    a->smtppassword == NULL)
		return config_fail(ld, account_key_line(ld, i, "smtpusername"),
		    "smtpusername is set in [%s] but smtppassword is not",
		    a->name);
	if (a->smtppassword != NULL && a->smtpusername == NULL)
		return config_fail(ld, account_key_line(ld, i, "smtppassword"),
		    "smtppassword is set in [%s] but smtpusername is not",
		    a->name);
	if (!a->popbeforesmtp)
		return 0;
	if (a->pophost == NULL)
		return config_fail(ld, pbs, "popbeforesmtp is on in [%s] but "
		    "pophost is not set", a->name);
	if (a->popusername == NULL || a->poppassword == NULL)
		return config_fail(ld, pbs, "popbeforesmtp is on in [%s] but "
		    "popusername and poppassword are not both set", a->name);
	return 0;
}

/*
 * account_oauth_check - smtpauth=xoauth2 and the oauth keys agree: a user
 * name for user=, TLS, and a way to get a token (a command, or a client ID
 * and the endpoints of its flow); oauth keys without xoauth2 are an error,
 * not silently ignored
 */
static int
account_oauth_check(struct config_loader *ld, size_t i)
{
	const struct account	*a = &ld->cfg->accounts[i];
	int			 line = account_key_line(ld, i, "smtpauth");

	if (a->smtpauth != SMTPAUTH_XOAUTH2)
		return oauth_keys_unused(ld, i, "smtpauth is not xoauth2");
	if (line == 0)
		line = a->line;
	if (a->smtpusername == NULL)
		return config_fail(ld, line, "smtpauth=xoauth2 in [%s] needs "
		    "smtpusername (the mailbox the token is for)", a->name);
	if (a->smtppassword != NULL)
		return config_fail(ld, account_key_line(ld, i, "smtppassword"),
		    "smtppassword is not used with smtpauth=xoauth2 in [%s]: "
		    "remove it", a->name);
	if (a->smtpsecurity == SECURITY_NONE)
		return config_fail(ld, line, "smtpauth=xoauth2 in [%s] needs "
		    "smtpsecurity tls or ssl: a token is never sent in the "
		    "clear", a->name);
	if (a->oauthtokencommand != NULL)
		return oauth_keys_unused(ld, i, "oauthtokencommand is set");
	if (a->oauthclientid == NULL)
		return config_fail(ld, line, "smtpauth=xoauth2 in [%s] needs "
		    "oauthclientid (or oauthtokencommand)", a->name);
	if (a->oauthclientsecret != NULL && a->oauthclientsecretfile != NULL)
		return config_fail(ld, account_key_line(ld, i,
		    "oauthclientsecretfile"), "oauthclientsecret and "
		    "oauthclientsecretfile are both set in [%s]: keep one",
		    a->name);
	if (a->oauthtenant != NULL &&
	    a->oauthprovider != OAUTH_PROVIDER_MICROSOFT)
		return config_fail(ld, account_key_line(ld, i, "oauthtenant"),
		    "oauthtenant in [%s] is for oauthprovider=microsoft only",
		    a->name);
	if (a->oauthtenant != NULL &&
	    strspn(a->oauthtenant, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-") !=
	    strlen(a->oauthtenant))
		return config_fail(ld, account_key_line(ld, i, "oauthtenant"),
		    "'%s' is not a tenant for key 'oauthtenant' (a tenant ID "
		    "or a domain such as contoso.onmicrosoft.com)",
		    a->oauthtenant);
	return oauth_flow_check(ld, i);
}

/* oauth_flow_check - the provider and the flow have what they need */
static int
oauth_flow_check(struct config_loader *ld, size_t i)
{
	const struct account	*a = &ld->cfg->accounts[i];
	int			 fline, pline;
	bool			 secret = a->oauthclientsecret != NULL ||
	    a->oauthclientsecretfile != NULL;

	fline = account_key_line(ld, i, "oauthflow");
	pline = account_key_line(ld, i, "oauthprovider");
	if (fline == 0)
		fline = account_key_line(ld, i, "smtpauth");
	if (pline == 0)
		pline = account_key_line(ld, i, "smtpauth");
	if (a->oauthprovider == OAUTH_PROVIDER_CUSTOM) {
		if (a->oauthtokenurl == NULL)
			return config_fail(ld, pline, "smtpauth=xoauth2 in "
			    "[%s] needs oauthprovider (microsoft or google) "
			    "or, for a custom provider, oauthtokenurl",
			    a->name);
		if (a->oauthflow == OAUTH_FLOW_DEVICE &&
		    a->oauthdeviceurl == NULL)
			return config_fail(ld, fline, "oauthflow=device in "
			    "[%s] needs oauthdeviceurl with a custom "
			    "provider", a->name);
		if (a->oauthflow == OAUTH_FLOW_AUTHCODE &&
		    a->oauthauthurl == NULL)
			return config_fail(ld, fline, "oauthflow=authcode in "
			    "[%s] needs oauthauthurl with a custom provider",
			    a->name);
	}
	if (a->oauthprovider == OAUTH_PROVIDER_GOOGLE && !secret)
		return config_fail(ld, pline, "oauthprovider=google in [%s] "
		    "needs oauthclientsecret or oauthclientsecretfile (Google "
		    "gives one with every client ID)", a->name);
	if (a->oauthflow != OAUTH_FLOW_CLIENTCREDENTIALS)
		return 0;
	if (a->oauthprovider == OAUTH_PROVIDER_GOOGLE)
		return config_fail(ld, fline, "oauthflow=clientcredentials in "
		    "[%s]: Google offers no app-only access to Gmail over "
		    "SMTP; use device or authcode", a->name);
	if (!secret)
		return config_fail(ld, fline, "oauthflow=clientcredentials in "
		    "[%s] needs oauthclientsecret or oauthclientsecretfile",
		    a->name);
	if (a->oauthprovider == OAUTH_PROVIDER_MICROSOFT &&
	    (a->oauthtenant == NULL ||
	    strcasecmp(a->oauthtenant, "common") == 0 ||
	    strcasecmp(a->oauthtenant, "organizations") == 0 ||
	    strcasecmp(a->oauthtenant, "consumers") == 0))
		return config_fail(ld, fline, "oauthflow=clientcredentials in "
		    "[%s] needs oauthtenant: the tenant ID or domain of the "
		    "organisation (not common, organizations or consumers)",
		    a->name);
	return 0;
}

/* oauth_keys_unused - an oauth key set where it means nothing: an error */
static int
oauth_keys_unused(struct config_loader *ld, size_t i, const char *why)
{
	const struct account	*a = &ld->cfg->accounts[i];

	for (size_t k = 0; oauth_key_names[k] != NULL; k++) {
		int	line = account_key_line(ld, i, oauth_key_names[k]);

		if (line == 0 || (a->smtpauth == SMTPAUTH_XOAUTH2 &&
		    strcmp(oauth_key_names[k], "oauthtokencommand") == 0))
			continue;
		return config_fail(ld, line, "%s is set in [%s] but %s: it "
		    "is not used", oauth_key_names[k], a->name, why);
	}
	return 0;
}

/* account_key_line - the line that set a key of account i (0: default) */
static int
account_key_line(const struct config_loader *ld, size_t i, const char *name)
{
	return ld->acct_seen[i][key_index(name, ACC)];
}

/* default_hostname - this host's name, fully qualified when DNS knows it */
static char *
default_hostname(void)
{
	struct addrinfo	 hints, *res = NULL;
	char		 name[HOSTNAME_MAX];
	char		*out;

	if (gethostname(name, sizeof(name) - 1) == -1 || name[0] == '\0')
		return xstrdup("localhost");
	name[sizeof(name) - 1] = '\0';
	if (strchr(name, '.') != NULL)
		return xstrdup(name);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_flags = AI_CANONNAME;
	if (getaddrinfo(name, NULL, &hints, &res) != 0 || res == NULL)
		return xstrdup(name);
	if (res->ai_canonname != NULL && strchr(res->ai_canonname, '.') != NULL)
		out = xstrdup(res->ai_canonname);
	else
		out = xstrdup(name);
	freeaddrinfo(res);
	return out;
}

/* is_ini_name - does the file name end in ".ini" */
static bool
is_ini_name(const char *path)
{
	size_t	len = strlen(path);

	return len >= 4 && strcasecmp(path + len - 4, ".ini") == 0;
}

/* open_failed - "FILE: what: reason" into err; -1 */
static int
open_failed(const char *path, const char *what, int errnum, char *err,
    size_t errlen)
{
	if (err != NULL && errlen > 0)
		snprintf(err, errlen, "%s: %s: %s", path, what,
		    strerror(errnum));
	return -1;
}
