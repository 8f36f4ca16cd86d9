/*
 * smtpcmd - parse one SMTP command line into a verb and its arguments (see
 * smtpcmd.h).  It owns the syntax of commands and of the MAIL and RCPT
 * parameters; the session owns what they mean in its state.
 *
 * Choices beyond the RFC 5321 grammar:
 *  - A NUL, CR, LF or other control byte (HTAB excepted, it is a blank)
 *    anywhere in the line answers 500: the verb of such a line cannot be
 *    trusted, and no control byte may travel on into the spool or a log.
 *  - SP and HTAB both separate words, and blanks after the last word are
 *    ignored ("QUIT " is QUIT), as old clients send them.
 *  - HELO/EHLO only need an argument: its syntax is not checked, because
 *    printers and old applications greet with names such as "my_host".
 *  - A path over the RFC 5321 limits answers 501, as 4.5.3.1.10 says for
 *    "Path too long".
 * Reply texts are static.  The one naming an unsupported option is built
 * in a static buffer and stays valid until the next call.
 */
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "address.h"
#include "smtpcmd.h"

/* Longest option name a 555 reply echoes; that reply's buffer. */
#define OPTION_NAME_MAX		64
#define OPTION_TEXT_MAX		(sizeof(TEXT_UNSUPPORTED) + OPTION_NAME_MAX)

#define TEXT_UNKNOWN		"5.5.2 Error: command not recognized"
#define TEXT_LINE_TOO_LONG	"5.5.2 Error: command line too long"
#define TEXT_CONTROL		\
	"5.5.2 Error: control character in command line"
#define TEXT_MAIL_SYNTAX	"5.5.4 Syntax: MAIL FROM:<address>"
#define TEXT_RCPT_SYNTAX	"5.5.4 Syntax: RCPT TO:<address>"
#define TEXT_BAD_SENDER		"5.1.7 Bad sender address syntax"
#define TEXT_LONG_SENDER	"5.1.7 Sender address too long"
#define TEXT_BAD_RECIPIENT	"5.1.3 Bad recipient address syntax"
#define TEXT_LONG_RECIPIENT	"5.1.3 Recipient address too long"
#define TEXT_PARAM_SYNTAX	"5.5.4 Syntax error in parameters"
#define TEXT_PARAM_DUPLICATE	"5.5.4 Duplicate MAIL parameter"
#define TEXT_BAD_SIZE		"5.5.4 Invalid SIZE parameter"
#define TEXT_BAD_BODY		"5.5.4 Invalid BODY parameter"
#define TEXT_UNSUPPORTED	"5.5.4 Unsupported option: "

enum arg_rule {
	ARG_NONE,		/* nothing may follow the verb */
	ARG_REQUIRED,		/* something must follow, free form */
	ARG_ANY,		/* anything or nothing */
	ARG_MAIL,		/* FROM:path [parameters] */
	ARG_RCPT		/* TO:path */
};

struct verb_rule {
	const char	*name;
	enum smtp_verb	 verb;
	enum arg_rule	 rule;
	const char	*usage;		/* reply if the rule fails */
};

static const struct verb_rule verb_rules[] = {
	{ "HELO", CMD_HELO, ARG_REQUIRED, "5.5.4 Syntax: HELO hostname" },
	{ "EHLO", CMD_EHLO, ARG_REQUIRED, "5.5.4 Syntax: EHLO hostname" },
	{ "MAIL", CMD_MAIL, ARG_MAIL, TEXT_MAIL_SYNTAX },
	{ "RCPT", CMD_RCPT, ARG_RCPT, TEXT_RCPT_SYNTAX },
	{ "DATA", CMD_DATA, ARG_NONE, "5.5.4 Syntax: DATA" },
	{ "RSET", CMD_RSET, ARG_NONE, "5.5.4 Syntax: RSET" },
	{ "NOOP", CMD_NOOP, ARG_ANY, NULL },
	{ "QUIT", CMD_QUIT, ARG_NONE, "5.5.4 Syntax: QUIT" },
	{ "VRFY", CMD_VRFY, ARG_ANY, NULL },
	{ "EXPN", CMD_EXPN, ARG_ANY, NULL },
	{ "HELP", CMD_HELP, ARG_ANY, NULL },
	{ "STARTTLS", CMD_STARTTLS, ARG_NONE, "5.5.4 Syntax: STARTTLS" },
	{ "AUTH", CMD_AUTH, ARG_REQUIRED,
	    "5.5.4 Syntax: AUTH mechanism [initial-response]" },
};

/* One esmtp-param: keyword [ "=" value ]. */
struct param {
	const char	*key;
	size_t		 keylen;
	const char	*value;		/* NULL without "=" */
	size_t		 valuelen;
};

static int		 fail(struct smtp_cmd *, int, const char *);
static bool		 is_blank(char);
static bool		 is_alnum(char);
static char		 ascii_upper(char);
static bool		 equal_nocase(const char *, size_t, const char *);
static const char	*skip_blanks(const char *);
static const char	*skip_word(const char *);
static bool		 has_control(const char *, size_t);
static const struct verb_rule *verb_lookup(const char *, size_t);
static const char	*after_keyword(const char *, const char *);
static const char	*split_param(const char *, struct param *);
static bool		 param_syntax_ok(const struct param *);
static int		 unsupported(struct smtp_cmd *, const struct param *);
static int		 param_size(struct smtp_cmd *, const struct param *);
static int		 param_body(struct smtp_cmd *, const struct param *);
static int		 mail_param(struct smtp_cmd *, const struct param *);
static int		 parse_params(struct smtp_cmd *, const char *, bool);
static int		 parse_mail(struct smtp_cmd *, const char *);
static int		 parse_rcpt(struct smtp_cmd *, const char *);
static int		 check_argument(struct smtp_cmd *,
			    const struct verb_rule *);

/* fail - record a reply text and return its code */
static int
fail(struct smtp_cmd *cmd, int code, const char *text)
{
	cmd->error = text;
	return code;
}

/* is_blank - SP or HTAB */
static bool
is_blank(char c)
{
	return c == ' ' || c == '\t';
}

/* is_alnum - ASCII letter or digit, whatever the locale */
static bool
is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    (c >= '0' && c <= '9');
}

/* ascii_upper - fold an ASCII letter, whatever the locale */
static char
ascii_upper(char c)
{
	return (c >= 'a' && c <= 'z') ? (char)(c - 'a' + 'A') : c;
}

/* equal_nocase - are the len bytes at s the word w, in any case */
static bool
equal_nocase(const char *s, size_t len, const char *w)
{
	size_t	 i;

	if (strlen(w) != len)
		return false;
	for (i = 0; i < len; i++)
		if (ascii_upper(s[i]) != ascii_upper(w[i]))
			return false;
	return true;
}

/* skip_blanks - first byte at or after s that is not a blank */
static const char *
skip_blanks(const char *s)
{
	while (is_blank(*s))
		s++;
	return s;
}

/* skip_word - first blank or NUL at or after s */
static const char *
skip_word(const char *s)
{
	while (*s != '\0' && !is_blank(*s))
		s++;
	return s;
}

/* has_control - does the line hold a control byte other than HTAB */
static bool
has_control(const char *line, size_t len)
{
	unsigned char	 c;
	size_t		 i;

	for (i = 0; i < len; i++) {
		c = (unsigned char)line[i];
		if ((c < 0x20 && c != '\t') || c == 0x7f)
			return true;
	}
	return false;
}

/* verb_lookup - the rule for the verb of len bytes at s, or NULL */
static const struct verb_rule *
verb_lookup(const char *s, size_t len)
{
	size_t	 i;

	for (i = 0; i < sizeof(verb_rules) / sizeof(verb_rules[0]); i++)
		if (equal_nocase(s, len, verb_rules[i].name))
			return &verb_rules[i];
	return NULL;
}

/* after_keyword - s past keyword (any case) and blanks, or NULL */
static const char *
after_keyword(const char *s, const char *keyword)
{
	size_t	 len = strlen(keyword);

	/* equal_nocase stops at a NUL in s: it never matches the keyword. */
	if (!equal_nocase(s, len, keyword))
		return NULL;
	/* Old clients send "MAIL FROM: <a@b>". */
	return skip_blanks(s + len);
}

/* split_param - cut the esmtp-param at s into p; returns the byte after it */
static const char *
split_param(const char *s, struct param *p)
{
	const char	*end = skip_word(s);
	const char	*eq = memchr(s, '=', (size_t)(end - s));

	p->key = s;
	p->keylen = (size_t)((eq != NULL ? eq : end) - s);
	p->value = eq != NULL ? eq + 1 : NULL;
	p->valuelen = eq != NULL ? (size_t)(end - eq - 1) : 0;
	return end;
}

/* param_syntax_ok - RFC 5321 esmtp-keyword ["=" esmtp-value] */
static bool
param_syntax_ok(const struct param *p)
{
	size_t	 i;

	if (p->keylen == 0 || !is_alnum(p->key[0]))
		return false;
	for (i = 1; i < p->keylen; i++)
		if (!is_alnum(p->key[i]) && p->key[i] != '-')
			return false;
	if (p->value == NULL)
		return true;
	/* Control bytes and blanks are gone already; '=' is all that is
	 * left to refuse (RFC 5321 esmtp-value excludes %d61). */
	return p->valuelen > 0 && memchr(p->value, '=', p->valuelen) == NULL;
}

/* unsupported - 555 naming the option, in a bounded static buffer */
static int
unsupported(struct smtp_cmd *cmd, const struct param *p)
{
	static char	 text[OPTION_TEXT_MAX];
	int		 namelen;

	namelen = p->keylen > OPTION_NAME_MAX ?
	    OPTION_NAME_MAX : (int)p->keylen;
	(void)snprintf(text, sizeof(text), "%s%.*s", TEXT_UNSUPPORTED,
	    namelen, p->key);
	return fail(cmd, 555, text);
}

/* param_size - SIZE=<digits>, RFC 1870 */
static int
param_size(struct smtp_cmd *cmd, const struct param *p)
{
	long long	 size = 0;
	int		 digit;
	size_t		 i;

	if (cmd->size != -1)
		return fail(cmd, 501, TEXT_PARAM_DUPLICATE);
	if (p->value == NULL)
		return fail(cmd, 501, TEXT_BAD_SIZE);
	for (i = 0; i < p->valuelen; i++) {
		if (p->value[i] < '0' || p->value[i] > '9')
			return fail(cmd, 501, TEXT_BAD_SIZE);
		digit = p->value[i] - '0';
		if (size > (LLONG_MAX - digit) / 10)
			return fail(cmd, 501, TEXT_BAD_SIZE);
		size = size * 10 + digit;
	}
	cmd->size = size;
	return 0;
}

/* param_body - BODY=7BIT|8BITMIME, RFC 6152 */
static int
param_body(struct smtp_cmd *cmd, const struct param *p)
{
	if (cmd->body != BODY_UNSPECIFIED)
		return fail(cmd, 501, TEXT_PARAM_DUPLICATE);
	if (p->value == NULL)
		return fail(cmd, 501, TEXT_BAD_BODY);
	if (equal_nocase(p->value, p->valuelen, "7BIT"))
		cmd->body = BODY_7BIT;
	else if (equal_nocase(p->value, p->valuelen, "8BITMIME"))
		cmd->body = BODY_8BITMIME;
	else
		return fail(cmd, 501, TEXT_BAD_BODY);
	return 0;
}

/* mail_param - take one MAIL parameter */
static int
mail_param(struct smtp_cmd *cmd, const struct param *p)
{
	if (equal_nocase(p->key, p->keylen, "SIZE"))
		return param_size(cmd, p);
	if (equal_nocase(p->key, p->keylen, "BODY"))
		return param_body(cmd, p);
	/* AUTH=<mailbox> (RFC 4954): the identity is ours to decide. */
	if (equal_nocase(p->key, p->keylen, "AUTH"))
		return 0;
	return unsupported(cmd, p);
}

/* parse_params - the esmtp-params after a path; RCPT takes none */
static int
parse_params(struct smtp_cmd *cmd, const char *s, bool mail)
{
	struct param	 p;
	int		 code;

	for (s = skip_blanks(s); *s != '\0'; s = skip_blanks(s)) {
		s = split_param(s, &p);
		if (!param_syntax_ok(&p))
			return fail(cmd, 501, TEXT_PARAM_SYNTAX);
		if (!mail)
			return unsupported(cmd, &p);
		if ((code = mail_param(cmd, &p)) != 0)
			return code;
	}
	return 0;
}

/* parse_mail - FROM:Reverse-path [SP Mail-parameters] */
static int
parse_mail(struct smtp_cmd *cmd, const char *arg)
{
	const char		*p, *end;
	enum address_error	 error;

	if ((p = after_keyword(arg, "FROM:")) == NULL)
		return fail(cmd, 501, TEXT_MAIL_SYNTAX);
	error = address_parse_path(p, cmd->path, sizeof(cmd->path), &end);
	if (error == ADDRESS_TOO_LONG)
		return fail(cmd, 501, TEXT_LONG_SENDER);
	if (error != ADDRESS_OK || (*end != '\0' && !is_blank(*end)))
		return fail(cmd, 501, TEXT_BAD_SENDER);
	return parse_params(cmd, end, true);
}

/* parse_rcpt - TO:Forward-path, without parameters */
static int
parse_rcpt(struct smtp_cmd *cmd, const char *arg)
{
	const char		*p, *end;
	enum address_error	 error;

	if ((p = after_keyword(arg, "TO:")) == NULL)
		return fail(cmd, 501, TEXT_RCPT_SYNTAX);
	error = address_parse_path(p, cmd->path, sizeof(cmd->path), &end);
	if (error == ADDRESS_TOO_LONG)
		return fail(cmd, 501, TEXT_LONG_RECIPIENT);
	/* The null path "<>" is a sender only. */
	if (error != ADDRESS_OK || cmd->path[0] == '\0' ||
	    (*end != '\0' && !is_blank(*end)))
		return fail(cmd, 501, TEXT_BAD_RECIPIENT);
	return parse_params(cmd, end, false);
}

/* check_argument - apply the verb's argument rule to cmd->arg */
static int
check_argument(struct smtp_cmd *cmd, const struct verb_rule *v)
{
	switch (v->rule) {
	case ARG_NONE:
		return *cmd->arg == '\0' ? 0 : fail(cmd, 501, v->usage);
	case ARG_REQUIRED:
		return *cmd->arg != '\0' ? 0 : fail(cmd, 501, v->usage);
	case ARG_ANY:
		return 0;
	case ARG_MAIL:
		return parse_mail(cmd, cmd->arg);
	case ARG_RCPT:
		return parse_rcpt(cmd, cmd->arg);
	}
	return fail(cmd, 500, TEXT_UNKNOWN);
}

/* smtpcmd_parse - parse one command line of len bytes, line[len] == NUL */
int
smtpcmd_parse(const char *line, size_t len, struct smtp_cmd *cmd)
{
	const struct verb_rule	*v;
	const char		*verb_end;

	cmd->verb = CMD_UNKNOWN;
	cmd->arg = "";
	cmd->path[0] = '\0';
	cmd->size = -1;
	cmd->body = BODY_UNSPECIFIED;
	cmd->error = NULL;

	if (len > SMTP_COMMAND_LINE_MAX)
		return fail(cmd, 500, TEXT_LINE_TOO_LONG);
	/* From here on the line is a C string of exactly len bytes. */
	if (has_control(line, len))
		return fail(cmd, 500, TEXT_CONTROL);

	verb_end = skip_word(line);
	if ((v = verb_lookup(line, (size_t)(verb_end - line))) == NULL)
		return fail(cmd, 500, TEXT_UNKNOWN);
	cmd->verb = v->verb;
	cmd->arg = skip_blanks(verb_end);
	return check_argument(cmd, v);
}
