/*
 * config_ini - the INI syntax of the Python smtpproxy, read with libinih and
 * fed into the configuration model (config.c) with a line for every key.
 *
 * It follows Python's configparser, which the old program used: comments
 * are whole lines starting with ';' or '#', never inline; "key=value" and
 * "key: value"; keys in any case; section names as written.  A value does
 * not continue on the next line.  Lines are read here, counted, and handed
 * to libinih one by one, so a line too long or holding a NUL is an error
 * with its number instead of being split or cut.
 */
#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>

#include <ini.h>

#include "config.h"
#include "util.h"

#define UTF8_BOM	"\xef\xbb\xbf"

struct ini_input {
	struct config_loader	*ld;
	FILE			*fp;
	char			*buf;		/* the line as read */
	size_t			 cap;
	int			 line;		/* last line read */
	bool			 stop;		/* an error is recorded */
	bool			 open_header;	/* last line: '[' without ']' */
};

static char	*ini_next_line(char *, int, void *);
static int	 ini_line_check(struct ini_input *, const char *, size_t,
		    size_t);
static int	 ini_header(struct ini_input *, const char *);
static int	 ini_key(void *, const char *, const char *, const char *);

/* config_read_ini - parse an INI file into the model */
int
config_read_ini(struct config_loader *ld, FILE *fp)
{
	struct ini_input	in = { .ld = ld, .fp = fp };
	int			rc;

	/* Debian's libinih takes its options at run time. */
	ini_allow_inline_comments = false;
	ini_allow_multiline = false;
	ini_allow_no_value = false;
	ini_allow_realloc = false;
	ini_use_stack = false;
	ini_initial_alloc = CONFIG_LINE_MAX + 3;	/* CR, LF and NUL */
	ini_max_line = CONFIG_LINE_MAX + 3;
	ini_stop_on_first_error = true;

	rc = ini_parse_stream(ini_next_line, &in, ini_key, &in);
	free(in.buf);
	if (in.stop)
		return -1;
	if (rc == -2)
		return config_fail(ld, 0, "out of memory");
	if (rc > 0)
		return config_fail(ld, rc, in.open_header ? "syntax error "
		    "(no ']' closes the section name)" : "syntax error");
	return 0;
}

/*
 * ini_next_line - libinih's fgets: the next line, counted and checked.
 * libinih handles a line completely before it asks for the next, so while
 * it calls ini_key() the count is the key's line.
 */
static char *
ini_next_line(char *str, int num, void *arg)
{
	struct ini_input	*in = arg;
	ssize_t			 n;
	const char		*p;
	size_t			 len;

	if (in->stop)
		return NULL;
	errno = 0;
	if ((n = getline(&in->buf, &in->cap, in->fp)) == -1) {
		if (ferror(in->fp)) {
			config_fail(in->ld, in->line + 1, "cannot read: %s",
			    strerror(errno != 0 ? errno : EIO));
			in->stop = true;
		}
		return NULL;
	}
	in->line++;
	p = in->buf;
	len = (size_t)n;
	if (in->line == 1 && len >= 3 && memcmp(p, UTF8_BOM, 3) == 0) {
		p += 3;
		len -= 3;
	}
	if (ini_line_check(in, p, len, num > 0 ? (size_t)num : 0) == -1 ||
	    ini_header(in, p) == -1) {
		in->stop = true;
		return NULL;
	}
	memcpy(str, p, len + 1);
	return str;
}

/* ini_line_check - refuse NUL bytes and lines over CONFIG_LINE_MAX */
static int
ini_line_check(struct ini_input *in, const char *p, size_t len, size_t room)
{
	size_t	text = len;

	if (memchr(p, '\0', len) != NULL)
		return config_fail(in->ld, in->line, "line holds a NUL byte");
	if (text > 0 && p[text - 1] == '\n')
		text--;
	if (text > 0 && p[text - 1] == '\r')
		text--;
	if (text > CONFIG_LINE_MAX || len + 1 > room)
		return config_fail(in->ld, in->line, "line longer than %d "
		    "bytes", CONFIG_LINE_MAX);
	return 0;
}

/*
 * ini_header - start a section when the line is "[name]".  The name is
 * taken here, not from libinih, which cuts names at 50 bytes and never
 * reports a section that has no keys.  The test mirrors libinih's: first
 * non-blank '[', then the first ']'.
 */
static int
ini_header(struct ini_input *in, const char *line)
{
	enum config_section_kind	 kind = SECTION_ACCOUNT;
	const char			*end;
	char				*copy, *name;
	int				 rc;

	while (isspace((unsigned char)*line))
		line++;
	in->open_header = false;
	if (*line != '[')
		return 0;
	if ((end = strchr(line + 1, ']')) == NULL) {
		in->open_header = true;
		return 0;
	}
	copy = xstrndup(line + 1, (size_t)(end - line - 1));
	name = str_trim(copy);
	if (strcmp(name, "config") == 0)
		kind = SECTION_GLOBAL;
	else if (strcmp(name, "logging") == 0)
		kind = SECTION_LOGGING;
	rc = config_section(in->ld, kind, name, in->line);
	free(copy);
	return rc;
}

/* ini_key - libinih's handler: one key=value of the current section */
static int
ini_key(void *arg, const char *section, const char *name, const char *value)
{
	struct ini_input	*in = arg;

	if (name[0] == '\0') {
		config_fail(in->ld, in->line, "syntax error (no key before "
		    "'=' or ':')");
		in->stop = true;
		return 0;
	}
	if (config_set(in->ld, name, value, in->line) == -1) {
		in->stop = true;
		return 0;
	}
	return 1;
}
