/*
 * dialogue_text - how a line of a server dialogue the relay follows
 * through libcurl's debug stream (SMTP upstream, POP-before-SMTP) is cut,
 * cleaned and shown, so every log line and kept reply looks the same.
 * Pure text: no libcurl, no I/O, no allocation.
 *
 *   dialogue_text_line_len(line, len)
 *                           the length of line without its trailing CR
 *                           and LF
 *   dialogue_text_clean(dst, size, src, len)
 *                           a copy of len bytes of src, cut to fit size
 *                           with its NUL; tabs become blanks, other
 *                           control characters are dropped.  Nothing is
 *                           written when size is 0.
 *   dialogue_text_show_auth(line, len, shown, size)
 *                           a line that starts with the verb AUTH as it
 *                           may be logged: "AUTH MECH" (at most
 *                           DIALOGUE_TEXT_MECH_MAX bytes of [A-Za-z0-9_-]
 *                           of the mechanism), and " " DIALOGUE_TEXT_REDACTED
 *                           in place of anything after it (the initial
 *                           response)
 *
 * It never shows a credential: a caller that knows a line is one (a SASL
 * response, a password) shows DIALOGUE_TEXT_REDACTED instead.
 */
#ifndef SMTPPROXY_DIALOGUE_TEXT_H
#define SMTPPROXY_DIALOGUE_TEXT_H

#include <stddef.h>

#define DIALOGUE_TEXT_REDACTED	"<redacted>"	/* a secret, as logged */
#define DIALOGUE_TEXT_MECH_MAX	20	/* SASL mechanism name shown in logs */

size_t	dialogue_text_line_len(const char *, size_t);
void	dialogue_text_clean(char *, size_t, const char *, size_t);
void	dialogue_text_show_auth(const char *, size_t, char *, size_t);

#endif
