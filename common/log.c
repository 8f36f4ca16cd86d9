/*
 * log - one line per event, to stderr, syslog or a file (see log.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "util.h"

#define LOG_LINE_MAX	2048

static enum log_level	log_threshold = LOG_LEVEL_INFO;
static enum log_target	log_target = LOG_TO_STDERR;
static int		log_fd = -1;
static char		log_ident[32] = "smtpproxyd";

static const char *const level_names[] = {
	[LOG_LEVEL_DEBUG] = "DEBUG",
	[LOG_LEVEL_INFO] = "INFO",
	[LOG_LEVEL_WARNING] = "WARNING",
	[LOG_LEVEL_ERROR] = "ERROR",
	[LOG_LEVEL_CRIT] = "CRITICAL",
};

/* log_open - choose the destination of log lines */
int
log_open(const char *ident, enum log_target target, const char *path)
{
	if (ident != NULL)
		log_set_ident(ident);
	if (log_fd >= 0) {
		close(log_fd);
		log_fd = -1;
	}
	if (target == LOG_TO_FILE) {
		log_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
		    0640);
		if (log_fd < 0)
			return -1;
	}
	if (target == LOG_TO_SYSLOG)
		openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
	log_target = target;
	return 0;
}

/* log_set_level - drop lines below this level */
void
log_set_level(enum log_level level)
{
	log_threshold = level;
}

/* log_set_ident - the program name shown in each line */
void
log_set_ident(const char *ident)
{
	strlcpy_s(log_ident, ident, sizeof(log_ident));
}

/* log_level_parse - map a config level name; -1 if unknown */
int
log_level_parse(const char *name, enum log_level *level)
{
	if (strcmp(name, "NONE") == 0) {
		*level = LOG_LEVEL_NONE;
		return 0;
	}
	for (size_t i = 0; i < ARRAY_LEN(level_names); i++) {
		if (i != LOG_LEVEL_CRIT && strcmp(name, level_names[i]) == 0) {
			*level = (enum log_level)i;
			return 0;
		}
	}
	return -1;
}

/* log_level_name - printable level */
const char *
log_level_name(enum log_level level)
{
	return level_names[level];
}

/* syslog_priority - our level to syslog's */
static int
syslog_priority(enum log_level level)
{
	switch (level) {
	case LOG_LEVEL_DEBUG:
		return LOG_DEBUG;
	case LOG_LEVEL_INFO:
		return LOG_INFO;
	case LOG_LEVEL_WARNING:
		return LOG_WARNING;
	case LOG_LEVEL_ERROR:
		return LOG_ERR;
	default:
		return LOG_CRIT;
	}
}

/* log_msg - format one line and emit it with a single write */
void
log_msg(enum log_level level, const char *fmt, ...)
{
	char		 line[LOG_LINE_MAX];
	char		 stamp[32];
	size_t		 len;
	int		 saved_errno = errno, n;
	va_list		 ap;
	struct tm	 tm;
	time_t		 now;

	if (level < log_threshold)
		return;
	if (log_target == LOG_TO_SYSLOG) {
		va_start(ap, fmt);
		vsnprintf(line, sizeof(line), fmt, ap);
		va_end(ap);
		syslog(syslog_priority(level), "%s: %s", level_names[level],
		    line);
		errno = saved_errno;
		return;
	}
	now = time(NULL);
	localtime_r(&now, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S", &tm);
	n = snprintf(line, sizeof(line), "%s %s[%ld]: %s: ", stamp, log_ident,
	    (long)getpid(), level_names[level]);
	len = n > 0 ? (size_t)n : 0;
	va_start(ap, fmt);
	n = vsnprintf(line + len, sizeof(line) - len - 1, fmt, ap);
	va_end(ap);
	if (n > 0)
		len += (size_t)n;
	if (len > sizeof(line) - 2)
		len = sizeof(line) - 2;
	/* Control characters from peers must not forge log lines. */
	for (size_t i = 0; i < len; i++)
		if ((unsigned char)line[i] < 0x20 && line[i] != '\t')
			line[i] = '?';
	line[len++] = '\n';
	(void)write_all(log_target == LOG_TO_FILE ? log_fd : 2, line, len);
	errno = saved_errno;
}
