/*
 * dialogue_text - dialogue lines cut, cleaned and shown for the logs of
 * the relay's libcurl sessions (see dialogue_text.h).
 */
#include <ctype.h>
#include <stdio.h>

#include "dialogue_text.h"

/* dialogue_text_line_len - length of a line without its trailing CR and LF */
size_t
dialogue_text_line_len(const char *line, size_t len)
{
	while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
		len--;
	return len;
}

/* dialogue_text_clean - bounded copy, no control characters, tabs as blanks */
void
dialogue_text_clean(char *dst, size_t size, const char *src, size_t len)
{
	size_t	n = 0;

	if (size == 0)
		return;
	for (size_t i = 0; i < len && n + 1 < size; i++) {
		unsigned char	c = (unsigned char)src[i];

		if (c == '\t')
			c = ' ';
		if (c < 0x20 || c == 0x7f)
			continue;
		dst[n++] = (char)c;
	}
	dst[n] = '\0';
}

/* dialogue_text_show_auth - "AUTH MECH", its initial response replaced */
void
dialogue_text_show_auth(const char *line, size_t len, char *shown,
    size_t size)
{
	const char	*mech = line + 4;
	size_t		 n = 0;

	while (mech < line + len && *mech == ' ')
		mech++;
	while (mech + n < line + len && n < DIALOGUE_TEXT_MECH_MAX &&
	    (isalnum((unsigned char)mech[n]) || mech[n] == '-' ||
	    mech[n] == '_'))
		n++;
	snprintf(shown, size, "AUTH %.*s%s", (int)n, mech,
	    mech + n < line + len ? " " DIALOGUE_TEXT_REDACTED : "");
}
