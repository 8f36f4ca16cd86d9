/*
 * config - the configuration model, its validation and account lookup.
 *
 * One model, two syntaxes: config_load() reads FILE as INI (libinih) when its
 * name ends in ".ini", otherwise as libconfig.  Both loaders feed every
 * setting as (section, key, value text, line) into one table of keys, so both
 * syntaxes give the same model, the same defaults and the same errors.
 *
 *   config_load(path, &cfg, err, errlen)  read, check and resolve a file;
 *                         0 or -1 with "FILE:LINE: message" in err.
 *                         Warnings (unknown keys, ...) are logged with
 *                         FILE:LINE through log_warning().
 *   config_free(cfg)      release a model
 *   account_lookup(cfg, sender)   the account that relays for a sender:
 *                         exact address (domain part case-insensitive), then
 *                         "@domain", then "default"; use= already followed.
 *                         NULL when none applies.
 *   account_find(cfg, name)  the section of that name (no use= following)
 *   account_port(acct)    smtpport or the default for its security mode
 *
 * Relative paths in the file (msgdir, log file, certificates) are resolved
 * against the folder of the config file, never the working directory.
 */
#ifndef SMTPPROXY_CONFIG_H
#define SMTPPROXY_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "log.h"

#define CONFIG_DEFAULT_PATH	"/etc/smtpproxy/smtpproxy.ini"
#define ACCOUNT_DEFAULT_NAME	"default"

enum smtp_security {
	SECURITY_NONE,		/* plain SMTP */
	SECURITY_TLS,		/* STARTTLS required */
	SECURITY_SSL		/* implicit TLS */
};

enum client_auth {
	CLIENT_AUTH_OFF,
	CLIENT_AUTH_OPTIONAL,
	CLIENT_AUTH_REQUIRED
};

enum smtp_auth {
	SMTPAUTH_AUTO,		/* PLAIN/LOGIN with smtppassword, if set */
	SMTPAUTH_XOAUTH2	/* an OAuth 2.0 bearer token (relay/oauth.h) */
};

enum oauth_provider {
	OAUTH_PROVIDER_MICROSOFT,	/* Entra ID, Microsoft 365 */
	OAUTH_PROVIDER_GOOGLE,		/* Gmail, Google Workspace */
	OAUTH_PROVIDER_CUSTOM		/* every endpoint from the config */
};

enum oauth_flow {
	OAUTH_FLOW_DEVICE,		/* device code (RFC 8628) */
	OAUTH_FLOW_AUTHCODE,		/* authorisation code, PKCE, loopback */
	OAUTH_FLOW_CLIENTCREDENTIALS	/* app-only, no user, no refresh token */
};

struct account {
	char			*name;		/* section: address, @domain, default */
	int			 line;		/* where the section starts */
	char			*use;		/* use= target name, or NULL */
	const struct account	*target;	/* use= followed to the end; self if none */

	char			*localhostname;	/* EHLO name upstream; NULL: cfg hostname */
	char			*smtphost;	/* required (unless use=) */
	int			 smtpport;	/* 0: 25 for none/tls, 465 for ssl */
	enum smtp_security	 smtpsecurity;	/* none */
	char			*smtpusername;
	char			*smtppassword;
	bool			 smtpweaktls;	/* false */
	bool			 tlsverify;	/* true */
	char			*tlscafile;	/* absolute path or NULL */

	bool			 popbeforesmtp;	/* false */
	char			*pophost;	/* required when popbeforesmtp */
	int			 popport;	/* 995 */
	bool			 popssl;	/* true */
	char			*popusername;
	char			*poppassword;
	int			 popcheckdelay;	/* 60 seconds */

	char			*returnpath;	/* envelope sender upstream */
	char			*replyto;	/* Reply-To: replaced */
	char			*forcefrom;	/* From: replaced */

	char			*localpassword;	/* client AUTH: plain or crypt(3) */

	/* OAuth 2.0 upstream login (smtpauth=xoauth2), see relay/oauth.h */
	enum smtp_auth		 smtpauth;	/* auto */
	enum oauth_provider	 oauthprovider;	/* custom */
	enum oauth_flow		 oauthflow;	/* device */
	char			*oauthtenant;	/* microsoft; NULL: "common" */
	char			*oauthclientid;
	char			*oauthclientsecret;
	char			*oauthclientsecretfile;	/* absolute path */
	char			*oauthtokenurl;	/* NULL: the provider's */
	char			*oauthauthurl;	/* NULL: the provider's */
	char			*oauthdeviceurl;	/* NULL: the provider's */
	char			*oauthscope;	/* NULL: the provider's */
	char			*oauthtokenfile;	/* NULL: msgdir/oauth/NAME.json */
	char			*oauthtokencommand;	/* prints an access token */
};

struct config {
	char		*path;			/* the file read */
	char		*dir;			/* its folder, absolute */

	/* [config] of the Python smtpproxy */
	int		 port;			/* 25 */
	int		 sleeptime;		/* 30 s */
	int		 debuglevel;		/* 0 */
	int		 waitafterpop;		/* 5 s */
	bool		 deleteonerror;		/* false (old default: true) */
	char		*msgdir;		/* "./msgs", made absolute */

	/* [config] keys added here */
	char		**listen;		/* addresses; default {"127.0.0.1"} */
	size_t		 nlisten;
	char		*hostname;		/* greeting/Received name; default gethostname() */
	int		 processes;		/* 4 */
	int		 maxprocesses;		/* 16 */
	int		 maxconnectionsperchild;/* 1000 */
	long		 maxmessagesize;	/* 26214400 bytes (25 MiB) */
	int		 maxrecipients;		/* 100 */
	int		 timeout;		/* 300 s idle client */
	char		*user;			/* NULL: keep the starting user */
	char		*group;
	char		*pidfile;		/* NULL: none */
	char		**allow;		/* client networks; default loopback */
	size_t		 nallow;
	char		*tlscert;		/* STARTTLS for clients */
	char		*tlskey;
	enum client_auth auth;			/* off */
	int		 retrymin;		/* 60 s */
	int		 retrymax;		/* 3600 s */
	int		 queuelifetime;		/* 432000 s (5 days) */
	int		 relayprocesses;	/* 4 */
	int		 relaytimeout;		/* 300 s */

	/* [logging] */
	char		*logfile;		/* NULL: stderr (-f) or syslog */
	long		 logsize;		/* 1000000 */
	int		 logcount;		/* 10 */
	enum log_level	 loglevel;		/* INFO */

	struct account	*accounts;		/* every section that is not config/logging */
	size_t		 naccounts;
};

int			 config_load(const char *, struct config **, char *, size_t);
void			 config_free(struct config *);
const struct account	*account_lookup(const struct config *, const char *);
const struct account	*account_find(const struct config *, const char *);
int			 account_port(const struct account *);

/*
 * Loader side, for config_ini.c and config_cfg.c only.  config_load() opens
 * the file and hands it to one reader; the reader calls config_section() at
 * the start of each section (or account group) and config_set() for each
 * key with its text value and line, and reports its own syntax errors with
 * config_fail().  Both return 0, or -1 once an error is recorded: the reader
 * then stops.  config_where() names the file settings come from when it is
 * not the one opened (a libconfig @include); NULL returns to that one.
 */
#define CONFIG_LINE_MAX		4096	/* longest INI line, without CR LF */

enum config_section_kind {
	SECTION_GLOBAL,			/* [config], config = { } */
	SECTION_LOGGING,		/* [logging], logging = { } */
	SECTION_ACCOUNT			/* any other section, accounts = ( ) */
};

struct config_loader;

int	 config_read_ini(struct config_loader *, FILE *);
int	 config_read_cfg(struct config_loader *, FILE *);
int	 config_section(struct config_loader *, enum config_section_kind,
	    const char *, int);
int	 config_set(struct config_loader *, const char *, const char *, int);
void	 config_where(struct config_loader *, const char *);
const char *config_dir(const struct config_loader *);
int	 config_fail(struct config_loader *, int, const char *, ...)
	    __attribute__((format(printf, 3, 4)));
void	 config_warn(struct config_loader *, int, const char *, ...)
	    __attribute__((format(printf, 3, 4)));

#endif
