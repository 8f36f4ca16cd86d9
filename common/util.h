/*
 * util - small helpers with no mail knowledge.
 *
 *   xmalloc/xcalloc/xrealloc/xstrdup/xstrndup  allocate or abort (out of
 *                                  memory is not a condition we can serve mail in)
 *   strlcpy_s             bounded copy that always terminates; returns the
 *                         length it wanted to copy (truncation if >= size)
 *   str_lower             lower-case a string in place (ASCII)
 *   str_trim              strip leading and trailing blanks in place
 *   now_ms                monotonic milliseconds, for durations in logs
 *   write_all             write a whole buffer, retrying on EINTR/partial writes
 *   fsync_dir             fsync a directory given by path
 *   set_cloexec / set_nonblock  descriptor flags
 */
#ifndef SMTPPROXY_UTIL_H
#define SMTPPROXY_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

void	*xmalloc(size_t);
void	*xcalloc(size_t, size_t);
void	*xrealloc(void *, size_t);
char	*xstrdup(const char *);
char	*xstrndup(const char *, size_t);
char	*xasprintf(const char *, ...) __attribute__((format(printf, 1, 2)));

size_t	 strlcpy_s(char *, const char *, size_t);
void	 str_lower(char *);
char	*str_trim(char *);

int64_t	 now_ms(void);
ssize_t	 write_all(int, const void *, size_t);
int	 fsync_dir(const char *);
int	 set_cloexec(int);
int	 set_nonblock(int);

#endif
