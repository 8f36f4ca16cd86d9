/*
 * log - one line per event, to stderr, syslog (facility mail) or a file.
 *
 *   log_open(ident, target, path)  choose where lines go; the file is opened
 *                                  in append mode, one write() per line so
 *                                  that many processes never interleave
 *   log_set_rotation(size, count)  rotate the file when it reaches size
 *                                  bytes, keeping count old files
 *                                  (file.1 .. file.count); 0 turns it off
 *   log_reopen()                   reopen the file (after logrotate moved it)
 *   log_set_owner(uid, gid)        a file made anew by root belongs to them
 *   log_set_level(level)           drop lines below level
 *   log_set_ident(ident)           change the process name shown (children)
 *   log_msg(level, fmt, ...)       format and emit one line
 *   log_debug/info/warning/error/crit  shorthands
 *   log_level_parse(name, &level)  "DEBUG" "INFO" "WARNING" "ERROR" "NONE"
 *
 * Rotation is safe with many processes writing: whoever sees the file
 * over its size takes a lock (file.lock), and rotates only if nobody did
 * already; the others notice the new file by its inode and reopen.  A line
 * is never split or lost: at worst it lands in file.1.
 *
 * Level NONE keeps only critical lines, as the Python smtpproxy did.
 * Secrets must never be passed here: callers redact.
 */
#ifndef SMTPPROXY_LOG_H
#define SMTPPROXY_LOG_H

#include <sys/types.h>

enum log_level {
	LOG_LEVEL_DEBUG,
	LOG_LEVEL_INFO,
	LOG_LEVEL_WARNING,
	LOG_LEVEL_ERROR,
	LOG_LEVEL_CRIT,
	LOG_LEVEL_NONE = LOG_LEVEL_CRIT	/* config "NONE": criticals only */
};

enum log_target {
	LOG_TO_STDERR,
	LOG_TO_SYSLOG,
	LOG_TO_FILE
};

int	 log_open(const char *ident, enum log_target, const char *path);
void	 log_set_rotation(long, int);
void	 log_set_owner(uid_t, gid_t);
int	 log_reopen(void);
void	 log_set_level(enum log_level);
void	 log_set_ident(const char *);
int	 log_level_parse(const char *, enum log_level *);
const char *log_level_name(enum log_level);

void	 log_msg(enum log_level, const char *, ...)
	    __attribute__((format(printf, 2, 3)));

#define log_debug(...)	 log_msg(LOG_LEVEL_DEBUG, __VA_ARGS__)
#define log_info(...)	 log_msg(LOG_LEVEL_INFO, __VA_ARGS__)
#define log_warning(...) log_msg(LOG_LEVEL_WARNING, __VA_ARGS__)
#define log_error(...)	 log_msg(LOG_LEVEL_ERROR, __VA_ARGS__)
#define log_crit(...)	 log_msg(LOG_LEVEL_CRIT, __VA_ARGS__)

#endif
