/*
 * smtpcmd - parse one SMTP command line into a verb and its arguments.
 * Pure functions: no I/O, no state; the session decides what a command
 * means in its state.
 *
 *   smtpcmd_parse(line, len, cmd)
 *        line is one command without its CRLF (len bytes, may contain NUL
 *        bytes, which are a syntax error).  Verbs are case-insensitive.
 *        line[len] must be a NUL byte, so that the line past its checks
 *        can be read as a C string.  A NUL or other control byte (HTAB
 *        excepted) anywhere in the line answers 500 "5.5.2 Error: control
 *        character in command line"; so does a line over
 *        SMTP_COMMAND_LINE_MAX.  cmd->error stays valid until the next call.
 *        Returns 0 and fills cmd, or an SMTP reply code with cmd->error
 *        set to a static reply text carrying an enhanced status code:
 *          500  unknown command            "5.5.2 Error: command not recognized"
 *          501  bad arguments/addresses    e.g. "5.1.7 Bad sender address syntax"
 *          555  unknown MAIL/RCPT param    "5.5.4 Unsupported option: ..."
 *        For MAIL and RCPT the path is parsed with address_parse_path():
 *        "MAIL FROM:<a@b> SIZE=100 BODY=8BITMIME", also tolerating a space
 *        after the colon as old clients send.  Recognised MAIL parameters:
 *        SIZE=<digits>, BODY=7BIT|8BITMIME (AUTH=<...> accepted and ignored).
 *        RCPT takes no parameters.  HELO/EHLO need a domain or literal
 *        argument; DATA, RSET, QUIT, STARTTLS take none; NOOP, HELP, VRFY,
 *        EXPN take anything.  AUTH takes a mechanism and optional initial
 *        response (cmd->arg points at the mechanism).
 *        Of the HELO/EHLO argument only its presence is checked: printers
 *        and old applications greet with names such as "my_host".
 */
#ifndef SMTPPROXY_SMTPCMD_H
#define SMTPPROXY_SMTPCMD_H

#include <stdbool.h>
#include <stddef.h>

#include "address.h"

#define SMTP_COMMAND_LINE_MAX	2048	/* > RFC 5321's 512 minimum; longer: 500 */

enum smtp_verb {
	CMD_UNKNOWN = 0,
	CMD_HELO, CMD_EHLO, CMD_MAIL, CMD_RCPT, CMD_DATA, CMD_RSET,
	CMD_NOOP, CMD_QUIT, CMD_VRFY, CMD_EXPN, CMD_HELP, CMD_STARTTLS,
	CMD_AUTH
};

enum smtp_body {
	BODY_UNSPECIFIED,
	BODY_7BIT,
	BODY_8BITMIME
};

struct smtp_cmd {
	enum smtp_verb	 verb;
	const char	*arg;			/* after the verb and blanks; "" if none (points into line) */
	char		 path[ADDRESS_MAX];	/* MAIL/RCPT mailbox, "" for <> */
	long long	 size;			/* MAIL SIZE=, -1 if absent */
	enum smtp_body	 body;			/* MAIL BODY= */
	const char	*error;			/* reply text when parse fails */
};

int	smtpcmd_parse(const char *, size_t, struct smtp_cmd *);

#endif
