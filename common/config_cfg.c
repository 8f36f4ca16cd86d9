/*
 * config_cfg - the libconfig syntax, fed into the configuration model
 * (config.c) as the same keys and text values the INI syntax gives:
 *
 *   config = { port = 2525; listen = [ "127.0.0.1", "::1" ]; ... };
 *   logging = { level = "INFO"; ... };
 *   accounts = ( { address = "foo@example.com"; smtphost = "..."; ... },
 *                { address = "default"; ... } );
 *
 * Integers become decimal text, booleans "true"/"false", strings stay as
 * they are, and an array or list of strings becomes one comma-separated
 * value.  Each key keeps the line libconfig read it on.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <libconfig.h>

#include "config.h"
#include "util.h"

#define ACCOUNT_ADDRESS_KEY	"address"

static int	 cfg_top(struct config_loader *, const config_setting_t *);
static int	 cfg_group(struct config_loader *, const config_setting_t *,
		    enum config_section_kind);
static int	 cfg_accounts(struct config_loader *, const config_setting_t *);
static int	 cfg_account(struct config_loader *, const config_setting_t *);
static int	 cfg_members(struct config_loader *, const config_setting_t *,
		    const char *);
static int	 cfg_key(struct config_loader *, const config_setting_t *);
static char	*cfg_text(const config_setting_t *);
static char	*cfg_join(const config_setting_t *);
static int	 cfg_line(const config_setting_t *);

/* config_read_cfg - parse a libconfig file into the model */
int
config_read_cfg(struct config_loader *ld, FILE *fp)
{
	config_t		 c;
	const config_setting_t	*root;
	int			 rc = 0;

	config_init(&c);
	config_set_include_dir(&c, config_dir(ld));
	if (config_read(&c, fp) != CONFIG_TRUE) {
		config_where(ld, config_error_file(&c));
		rc = config_fail(ld, config_error_line(&c), "%s",
		    config_error_text(&c));
		config_where(ld, NULL);
		config_destroy(&c);
		return rc;
	}
	root = config_root_setting(&c);
	for (int i = 0; rc == 0 && i < config_setting_length(root); i++)
		rc = cfg_top(ld, config_setting_get_elem(root, (unsigned)i));
	config_where(ld, NULL);
	config_destroy(&c);
	return rc;
}

/* cfg_top - one setting at the top: config, logging or accounts */
static int
cfg_top(struct config_loader *ld, const config_setting_t *s)
{
	const char	*name = config_setting_name(s);

	config_where(ld, config_setting_source_file(s));
	if (strcmp(name, "config") == 0)
		return cfg_group(ld, s, SECTION_GLOBAL);
	if (strcmp(name, "logging") == 0)
		return cfg_group(ld, s, SECTION_LOGGING);
	if (strcmp(name, "accounts") == 0)
		return cfg_accounts(ld, s);
	config_warn(ld, cfg_line(s), "unknown setting '%s' (expected config, "
	    "logging or accounts), ignored", name);
	return 0;
}

/* cfg_group - "config = { ... };" or "logging = { ... };" */
static int
cfg_group(struct config_loader *ld, const config_setting_t *s,
    enum config_section_kind kind)
{
	const char	*name = config_setting_name(s);

	if (!config_setting_is_group(s))
		return config_fail(ld, cfg_line(s), "'%s' must be a group: "
		    "%s = { ... };", name, name);
	if (config_section(ld, kind, name, cfg_line(s)) == -1)
		return -1;
	return cfg_members(ld, s, NULL);
}

/* cfg_accounts - "accounts = ( { address = ...; ... }, ... );" */
static int
cfg_accounts(struct config_loader *ld, const config_setting_t *s)
{
	if (!config_setting_is_list(s))
		return config_fail(ld, cfg_line(s), "'accounts' must be a list "
		    "of groups: accounts = ( { address = \"...\"; ... } );");
	for (int i = 0; i < config_setting_length(s); i++)
		if (cfg_account(ld, config_setting_get_elem(s, (unsigned)i)) ==
		    -1)
			return -1;
	return 0;
}

/* cfg_account - one account group; its address names the section */
static int
cfg_account(struct config_loader *ld, const config_setting_t *g)
{
	const char	*address = NULL;

	config_where(ld, config_setting_source_file(g));
	if (!config_setting_is_group(g))
		return config_fail(ld, cfg_line(g), "each entry of 'accounts' "
		    "must be a group: { address = \"...\"; ... }");
	if (config_setting_lookup_string(g, ACCOUNT_ADDRESS_KEY, &address) !=
	    CONFIG_TRUE)
		return config_fail(ld, cfg_line(g), "account without an "
		    "address (address = \"foo@example.com\";)");
	if (config_section(ld, SECTION_ACCOUNT, address, cfg_line(g)) == -1)
		return -1;
	return cfg_members(ld, g, ACCOUNT_ADDRESS_KEY);
}

/* cfg_members - every key of a group but skip */
static int
cfg_members(struct config_loader *ld, const config_setting_t *g,
    const char *skip)
{
	for (int i = 0; i < config_setting_length(g); i++) {
		const config_setting_t	*m;

		m = config_setting_get_elem(g, (unsigned)i);
		if (skip != NULL && strcmp(config_setting_name(m), skip) == 0)
			continue;
		if (cfg_key(ld, m) == -1)
			return -1;
	}
	return 0;
}

/* cfg_key - one key of a group, as text, with its line */
static int
cfg_key(struct config_loader *ld, const config_setting_t *m)
{
	const char	*name = config_setting_name(m);
	char		*text;
	int		 rc;

	config_where(ld, config_setting_source_file(m));
	if ((text = cfg_text(m)) == NULL)
		return config_fail(ld, cfg_line(m), "the value of key '%s' "
		    "must be a number, a boolean, a string or a list of "
		    "strings", name);
	rc = config_set(ld, name, text, cfg_line(m));
	free(text);
	return rc;
}

/* cfg_text - a scalar or a list of strings as text; NULL if neither */
static char *
cfg_text(const config_setting_t *m)
{
	switch (config_setting_type(m)) {
	case CONFIG_TYPE_INT:
		return xasprintf("%d", config_setting_get_int(m));
	case CONFIG_TYPE_INT64:
		return xasprintf("%lld", config_setting_get_int64(m));
	case CONFIG_TYPE_FLOAT:
		return xasprintf("%g", config_setting_get_float(m));
	case CONFIG_TYPE_BOOL:
		return xstrdup(config_setting_get_bool(m) ? "true" : "false");
	case CONFIG_TYPE_STRING:
		return xstrdup(config_setting_get_string(m));
	case CONFIG_TYPE_ARRAY:
	case CONFIG_TYPE_LIST:
		return cfg_join(m);
	default:
		return NULL;
	}
}

/* cfg_join - the strings of an array or list joined with ","; NULL if not */
static char *
cfg_join(const config_setting_t *m)
{
	char	*out = xstrdup("");
	size_t	 len = 0;

	for (int i = 0; i < config_setting_length(m); i++) {
		const config_setting_t	*e;
		const char		*s;
		size_t			 slen;

		e = config_setting_get_elem(m, (unsigned)i);
		if (config_setting_type(e) != CONFIG_TYPE_STRING) {
			free(out);
			return NULL;
		}
		s = config_setting_get_string(e);
		slen = strlen(s);
		out = xrealloc(out, len + slen + 2);
		if (len > 0)
			out[len++] = ',';
		memcpy(out + len, s, slen + 1);
		len += slen;
	}
	return out;
}

/* cfg_line - the line libconfig read a setting on */
static int
cfg_line(const config_setting_t *s)
{
	return (int)config_setting_source_line(s);
}
