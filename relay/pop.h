/*
 * pop - POP-before-SMTP: a POP3 login that opens an upstream's SMTP relay
 * for the sending host.  The only module that uses libcurl's POP3 client.
 *
 *   pop_before_smtp(cfg, acct, err, errlen)
 *        0 at once when acct->popbeforesmtp is false, or when this
 *        account's last successful POP login is younger than
 *        acct->popcheckdelay seconds.  Otherwise logs in to
 *        pophost:popport as popusername: pop3s:// (implicit TLS) when
 *        popssl, plain pop3:// otherwise.  TLS is checked as for SMTP
 *        (curltls.h): system store plus tlscafile, host name or IP, SNI;
 *        tlsverify=false turns the check off, smtpweaktls allows old
 *        versions and ciphers here too (an old provider runs both).  The
 *        session is CAPA, the login libcurl picks (SASL when the server
 *        offers it, else APOP or USER/PASS), NOOP, QUIT.  Every network
 *        wait, and the session as a whole, is bounded by cfg->relaytimeout.
 *        On success records the time, then sleeps cfg->waitafterpop
 *        seconds (the upstream may need a moment to open the relay), and
 *        returns 0.  On failure returns -1 with one line in err: where,
 *        what, and the server's own "-ERR ..." line when it sent one.
 *        Nothing is logged on failure (the caller defers and logs err);
 *        with cfg->debuglevel >= 1 the dialogue is logged at INFO, user
 *        names, passwords and SASL lines replaced by "<redacted>".
 *   pop_forget(cfg, acct)
 *        drop the record of the last login: the next call logs in again
 *        (for an SMTP session that was refused although a login was fresh)
 *
 * Last successful login, per account and across processes (delivery runs
 * in short-lived children): the modification time of the empty file
 * <msgdir>/pop/<name>, the folder made with mode 0700 when missing.  <name>
 * is the account's section name with every byte outside [A-Za-z0-9@._+-],
 * and a leading ".", written as %XX; a name that would be longer than
 * POP_STATE_NAME_MAX - 1 bytes is "~" and the SHA-256 of the section name
 * in hex.  A missing or unreadable file means a login is due; a file that
 * cannot be written costs only an extra login next time (a warning).
 *
 * Internals, declared here for the unit tests (none of it needs curl.h):
 *   pop_state_name(account, buf, size)   the state file name above: 0, or
 *        -1 for an empty name or a buffer smaller than POP_STATE_NAME_MAX
 *   pop_login_due(last, now, checkdelay)  whether a login is needed; last 0
 *        is "never", a last in the future counts as due
 *   pop_url(host, port, ssl)   "pop3[s]://host:port/", IPv6 in brackets;
 *        allocated, NULL for a host that cannot go in a URL
 *   pop_dialogue_out(d, line, len, shown, size)   a command went out:
 *        its loggable form in shown (credentials redacted)
 *   pop_dialogue_in(d, data, len)   reply lines came in: the last "-ERR"
 *        line is kept in d->err, the end of a SASL exchange is noted
 */
#ifndef SMTPPROXY_POP_H
#define SMTPPROXY_POP_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "config.h"
#include "dialogue_text.h"

#define POP_STATE_DIR		"pop"
#define POP_STATE_NAME_MAX	200	/* state file name, NUL included */
#define POP_REPLY_MAX		512	/* a server line kept for err */
#define POP_REDACTED		DIALOGUE_TEXT_REDACTED

/* The session as seen through libcurl's debug stream. */
struct pop_dialogue {
	bool	in_auth;		/* lines sent now are credentials */
	char	err[POP_REPLY_MAX];	/* last "-ERR" line, "" if none */
};

int	 pop_before_smtp(const struct config *, const struct account *, char *,
	    size_t);
void	 pop_forget(const struct config *, const struct account *);

int	 pop_state_name(const char *, char *, size_t);
bool	 pop_login_due(time_t, time_t, int);
char	*pop_url(const char *, int, bool);
void	 pop_dialogue_out(struct pop_dialogue *, const char *, size_t, char *,
	    size_t);
void	 pop_dialogue_in(struct pop_dialogue *, const char *, size_t);

#endif
