/*
 * log - one line per event, to stderr, syslog or a file (see log.h).
 */
#include <sys/file.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
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
static char		*log_path;
static long		log_rotate_size;
static int		log_rotate_count;
static uid_t		log_owner_uid = (uid_t)-1;
static gid_t		log_owner_gid = (gid_t)-1;

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
	free(log_path);
	log_path = NULL;
	if (target == LOG_TO_FILE) {
		log_fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC,
		    0640);
		if (log_fd < 0)
			return -1;
		log_path = xstrdup(path);
	}
	if (target == LOG_TO_SYSLOG)
		openlog(log_ident, LOG_PID | LOG_NDELAY, LOG_MAIL);
	log_target = target;
	return 0;
}

/* log_set_rotation - rotate at size bytes, keeping count files */
void
log_set_rotation(long size, int count)
{
	log_rotate_size = size;
	log_rotate_count = count;
}

/* log_reopen - open the log file's path again (it may have been moved) */
int
log_reopen(void)
{
	int	fd;

	if (log_target != LOG_TO_FILE || log_path == NULL)
		return 0;
	fd = open(log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0)
		return -1;
	if (log_owner_uid != (uid_t)-1 && geteuid() == 0)
		(void)fchown(fd, log_owner_uid, log_owner_gid);
	dup2(fd, log_fd);	/* keep the descriptor number children share */
	close(fd);
	return 0;
}

/* rotate_files - file.(n-1) -> file.n ... file -> file.1 */
static void
rotate_files(void)
{
	char	from[4096], to[4096];

	for (int i = log_rotate_count; i > 0; i--) {
		if (i == 1)
			snprintf(from, sizeof(from), "%s", log_path);
		else
			snprintf(from, sizeof(from), "%s.%d", log_path, i - 1);
		snprintf(to, sizeof(to), "%s.%d", log_path, i);
		(void)rename(from, to);
	}
}

/*
 * log_rotate_check - before a write: rotate if the file is full, or
 * reopen if another process has rotated it already (the file this process
 * holds is then full too).
 */
static void
log_rotate_check(void)
{
	struct stat	mine, named;
	char		lockpath[4096];
	int		lockfd;

	if (log_rotate_size <= 0 || log_rotate_count <= 0 || log_path == NULL)
		return;
	if (fstat(log_fd, &mine) < 0 || mine.st_size < log_rotate_size)
		return;
	snprintf(lockpath, sizeof(lockpath), "%s.lock", log_path);
	/* Readable by all: a lock, not data; any writer of the log may take it. */
	lockfd = open(lockpath, O_RDONLY | O_CREAT | O_CLOEXEC, 0644);
	if (lockfd < 0)
		return;
	if (flock(lockfd, LOCK_EX) == 0) {
		/* Someone else may have won: then only follow the new file. */
		if (stat(log_path, &named) == 0 && named.st_ino == mine.st_ino &&
		    named.st_dev == mine.st_dev)
			rotate_files();
		(void)log_reopen();
	}
	close(lockfd);
}

/* log_set_owner - files made by rotation belong to the unprivileged user */
void
log_set_owner(uid_t uid, gid_t gid)
{
	log_owner_uid = uid;
	log_owner_gid = gid;
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
	/* before the write: a file another process rotated is not written */
	if (log_target == LOG_TO_FILE)
		log_rotate_check();
	(void)write_all(log_target == LOG_TO_FILE ? log_fd : 2, line, len);
	errno = saved_errno;
}
