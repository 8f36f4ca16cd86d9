/*
 * fuzz_session - libFuzzer target: arbitrary client bytes through the
 * in-memory netio into smtp_session_run(), the whole SMTP server side of
 * one connection (commands, AUTH PLAIN/LOGIN, DATA into a real spool).
 *
 * Input layout:
 *   byte 0   bits 6-7: which configuration (00: auth=optional with a
 *            [default] account, 01: auth=off without one, 1x: auth=required
 *            without one); bits 0-5: how the input is cut into reads (0:
 *            all at once, 1..40: that many bytes, 41..63: (n - 40) * 167
 *            bytes), so that lines, AUTH responses and the DATA end marker
 *            are split at odd places
 *   rest     what the client sends
 *
 * The configurations are small INI files written at start into a fresh
 * folder (under $FUZZ_TMPDIR, else /dev/shm, else /tmp) and read with
 * config_load(): maxmessagesize=4096, maxrecipients=5, a fixed hostname,
 * accounts with a plain and an MD5-crypt localpassword, no TLS (STARTTLS
 * answers 502).  The spool lives in the same folder; what a run committed
 * is removed after the run, and the folder when the fuzzer exits (or, if
 * it died, when the next one starts).
 *
 * Beyond the sanitizers, every run checks what a client and the relay
 * rely on, and aborts (a crash for libFuzzer) when one does not hold:
 *   - the replies are whole CRLF lines "DDD text" or "DDD-text", a 4xx or
 *     5xx reply carries an enhanced status code, and nothing follows a
 *     221 or 421;
 *   - tmp/ is empty afterwards (no queue file left behind);
 *   - new/ holds exactly as many files as the session says it accepted,
 *     each with a readable envelope of 1..maxrecipients recipients, only
 *     CRLF line ends (no bare CR or LF reaches the relay: SMTP smuggling),
 *     our Received: line and then a header block of header lines only (up
 *     to an empty line or the end), no client line folded into the
 *     Received:, Date: or Message-ID: we wrote, and no more content than
 *     maxmessagesize allows;
 *   - no descriptor into the spool is left open.
 * With FUZZ_SESSION_VERBOSE set in the environment, each run's replies, the
 * session's log lines and the messages it stored go to stderr (for reading
 * a seed or a crash).
 *
 * The failed-login pause would cap the fuzzer at a few runs per second:
 * the fuzz build defines FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION, and the
 * session skips the pause when it is defined.
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "address.h"
#include "config.h"
#include "log.h"
#include "netio.h"
#include "session.h"
#include "spool.h"

#define FUZZ_HOSTNAME		"fuzz.example.net"
#define FUZZ_CLIENT_IP		"127.0.0.1"
#define FUZZ_MAX_SIZE		4096
#define FUZZ_MAX_RCPTS		5
#define FUZZ_CHUNK_MASK		0x3f	/* bits of byte 0 for the read size */
#define FUZZ_CHUNK_SMALL	40	/* up to this: the read size itself */
#define FUZZ_CHUNK_STEP		167	/* above it: steps of this many bytes */
#define FUZZ_REQUIRED_BIT	0x80	/* byte 0: auth=required */
#define FUZZ_OFF_BIT		0x40	/* byte 0 without the above: auth=off */
#define FUZZ_RECEIVED		"Received: "	/* our trace line, first */
#define FUZZ_PATH_MAX		PATH_MAX
#define FUZZ_DIR_PREFIX		"fuzz_session."	/* then <pid>.XXXXXX */
#define FUZZ_TREE_DEPTH		3	/* our folder, msgs/, msgs/new/ */

/* Envelope, Received:, Date: and Message-ID: come on top of the content. */
#define FUZZ_PREFIX_SLACK \
	((FUZZ_MAX_RCPTS + 2) * (ADDRESS_MAX + 32) + 2 * SPOOL_ID_MAX + 1024)

enum fuzz_config {
	FUZZ_CFG_OPTIONAL,		/* auth=optional, [default] relays all */
	FUZZ_CFG_OFF,			/* auth=off, unknown senders refused */
	FUZZ_CFG_REQUIRED,		/* auth=required, no [default] */
	FUZZ_NCONFIGS
};

static const char *const config_text[FUZZ_NCONFIGS] = {
	[FUZZ_CFG_OPTIONAL] =
	    "[config]\n"
	    "hostname=" FUZZ_HOSTNAME "\n"
	    "msgdir=msgs\n"
	    "maxmessagesize=4096\n"
	    "maxrecipients=5\n"
	    "auth=optional\n"
	    "[logging]\n"
	    "level=NONE\n"
	    "[user@example.com]\n"
	    "smtphost=smtp.example.com\n"
	    "localpassword=secret\n"
	    "[alias@example.com]\n"
	    "use=user@example.com\n"
	    "[hashed@example.com]\n"
	    "smtphost=smtp.example.com\n"
	    "localpassword=$1$fuzzsalt$ld45C3N68bCQn5ZIlNntP/\n"
	    "[@example.org]\n"
	    "smtphost=smtp.example.org\n"
	    "localpassword=orgpass\n"
	    "[locked@example.com]\n"
	    "smtphost=smtp.example.com\n"
	    "localpassword=!secret\n"
	    "[default]\n"
	    "smtphost=smtp.example.net\n",
	[FUZZ_CFG_OFF] =
	    "[config]\n"
	    "hostname=" FUZZ_HOSTNAME "\n"
	    "msgdir=msgs\n"
	    "maxmessagesize=4096\n"
	    "maxrecipients=5\n"
	    "[logging]\n"
	    "level=NONE\n"
	    "[user@example.com]\n"
	    "smtphost=smtp.example.com\n"
	    "[@example.org]\n"
	    "smtphost=smtp.example.org\n",
	[FUZZ_CFG_REQUIRED] =
	    "[config]\n"
	    "hostname=" FUZZ_HOSTNAME "\n"
	    "msgdir=msgs\n"
	    "maxmessagesize=4096\n"
	    "maxrecipients=5\n"
	    "auth=required\n"
	    "[logging]\n"
	    "level=NONE\n"
	    "[user@example.com]\n"
	    "smtphost=smtp.example.com\n"
	    "localpassword=secret\n"
	    "[alias@example.com]\n"
	    "use=user@example.com\n"
	    "[@example.org]\n"
	    "smtphost=smtp.example.org\n"
	    "localpassword=orgpass\n",
};

static const char *const auth_names[] = {
	[CLIENT_AUTH_OFF] = "auth=off",
	[CLIENT_AUTH_OPTIONAL] = "auth=optional",
	[CLIENT_AUTH_REQUIRED] = "auth=required",
};

static char		 fuzz_dir[FUZZ_PATH_MAX];
static struct config	*configs[FUZZ_NCONFIGS];
static struct spool	 spool;
static int		 fd_baseline = -1;
static bool		 verbose;	/* FUZZ_SESSION_VERBOSE: show replies */

int		LLVMFuzzerInitialize(int *, char ***);
int		LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void	fuzz_fail(const char *, ...)
		    __attribute__((format(printf, 1, 2), noreturn));
static void	fuzz_setup(void);
static void	fuzz_cleanup(void);
static void	remove_tree(const char *, int);
static void	sweep_stale(const char *);
static void	write_file(const char *, const char *);
static size_t	chunk_size(uint8_t);
static void	check_replies(const char *, size_t);
static int	check_spool(void);
static void	check_message(const char *, const char *);
static void	check_line_ends(const char *, const char *, size_t);
static void	check_header_block(const char *, const char *, size_t);
static void	check_trace(const char *, const char *, size_t, size_t);
static size_t	next_line(const char *, size_t);
static void	check_descriptors(void);
static int	clear_folder(const char *);
static bool	has_enhanced_code(const char *, size_t);

/* fuzz_fail - a broken invariant: say which, then crash for libFuzzer */
static void
fuzz_fail(const char *fmt, ...)
{
	va_list	ap;

	va_start(ap, fmt);
	fputs("fuzz_session: invariant broken: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	abort();
}

/* write_file - create path with text, or give up */
static void
write_file(const char *path, const char *text)
{
	FILE	*fp;

	if ((fp = fopen(path, "w")) == NULL ||
	    fputs(text, fp) == EOF || fclose(fp) == EOF) {
		fprintf(stderr, "fuzz_session: %s: %s\n", path, strerror(errno));
		exit(1);
	}
}

/* fuzz_setup - folder, configurations and spool, once per process */
static void
fuzz_setup(void)
{
	const char	*base = getenv("FUZZ_TMPDIR");
	char		 path[FUZZ_PATH_MAX], err[1024];

	if (base == NULL || *base == '\0')
		base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	sweep_stale(base);
	snprintf(fuzz_dir, sizeof(fuzz_dir), "%s/" FUZZ_DIR_PREFIX "%ld.XXXXXX",
	    base, (long)getpid());
	if (mkdtemp(fuzz_dir) == NULL) {
		fprintf(stderr, "fuzz_session: mkdtemp %s: %s\n", fuzz_dir,
		    strerror(errno));
		exit(1);
	}
	atexit(fuzz_cleanup);
	verbose = getenv("FUZZ_SESSION_VERBOSE") != NULL;
	log_set_level(verbose ? LOG_LEVEL_DEBUG : LOG_LEVEL_NONE);
	for (int i = 0; i < FUZZ_NCONFIGS; i++) {
		snprintf(path, sizeof(path), "%s/smtpproxy%d.ini", fuzz_dir, i);
		write_file(path, config_text[i]);
		if (config_load(path, &configs[i], err, sizeof(err)) < 0) {
			fprintf(stderr, "fuzz_session: %s\n", err);
			exit(1);
		}
	}
	if (spool_open(&spool, configs[0]->msgdir, true) < 0) {
		fprintf(stderr, "fuzz_session: spool %s: %s\n",
		    configs[0]->msgdir, strerror(errno));
		exit(1);
	}
}

/* remove_tree - remove a folder of ours and what is in it (no symlinks) */
static void
remove_tree(const char *dir, int depth)
{
	DIR		*d;
	struct dirent	*de;
	struct stat	 st;
	char		 path[FUZZ_PATH_MAX];

	if (depth > FUZZ_TREE_DEPTH || (d = opendir(dir)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
			remove_tree(path, depth + 1);
		else
			(void)unlink(path);
	}
	closedir(d);
	(void)rmdir(dir);
}

/*
 * sweep_stale - remove the folders of fuzzers that died: a crash, a leak
 * report or a broken check ends the process without atexit handlers, and
 * each left its folder behind.  The folder name carries the owner's pid.
 */
static void
sweep_stale(const char *base)
{
	DIR		*d;
	struct dirent	*de;
	char		 path[FUZZ_PATH_MAX], *end;
	size_t		 plen = strlen(FUZZ_DIR_PREFIX);
	long		 pid;

	if ((d = opendir(base)) == NULL)
		return;
	while ((de = readdir(d)) != NULL) {
		if (strncmp(de->d_name, FUZZ_DIR_PREFIX, plen) != 0)
			continue;
		pid = strtol(de->d_name + plen, &end, 10);
		if (end == de->d_name + plen || *end != '.' || pid <= 0 ||
		    pid == (long)getpid())
			continue;
		if (kill((pid_t)pid, 0) == 0 || errno != ESRCH)
			continue;
		snprintf(path, sizeof(path), "%s/%s", base, de->d_name);
		remove_tree(path, 0);
	}
	closedir(d);
}

/* fuzz_cleanup - remove the spool and the configurations at exit */
static void
fuzz_cleanup(void)
{
	if (fuzz_dir[0] == '\0')
		return;
	remove_tree(fuzz_dir, 0);
	fuzz_dir[0] = '\0';
}

/* LLVMFuzzerInitialize - libFuzzer's start hook */
int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_setup();
	return 0;
}

/* chunk_size - bytes per read, from the first input byte */
static size_t
chunk_size(uint8_t b)
{
	unsigned	n = b & FUZZ_CHUNK_MASK;

	if (n <= FUZZ_CHUNK_SMALL)
		return n;
	return (size_t)(n - FUZZ_CHUNK_SMALL) * FUZZ_CHUNK_STEP;
}

/* has_enhanced_code - text starts with "C.SSS.DDD " (RFC 3463) */
static bool
has_enhanced_code(const char *p, size_t n)
{
	size_t	i = 0, digits;

	if (n < 6 || (p[0] != '2' && p[0] != '4' && p[0] != '5') || p[1] != '.')
		return false;
	i = 2;
	for (int part = 0; part < 2; part++) {
		for (digits = 0; i < n && p[i] >= '0' && p[i] <= '9'; i++)
			digits++;
		if (digits < 1 || digits > 3 || i >= n)
			return false;
		if (p[i] != (part == 0 ? '.' : ' '))
			return false;
		i++;
	}
	return true;
}

/* check_replies - what the client got is a sequence of proper reply lines */
static void
check_replies(const char *out, size_t len)
{
	size_t	pos = 0;
	bool	closed = false;

	while (pos < len) {
		const char	*line = out + pos;
		const char	*lf = memchr(line, '\n', len - pos);
		size_t		 n;

		if (lf == NULL)
			fuzz_fail("reply without line end at offset %zu", pos);
		n = (size_t)(lf - line);
		if (n < 4 || line[n - 1] != '\r')
			fuzz_fail("reply line without CRLF at offset %zu", pos);
		n--;
		if (memchr(line, '\r', n) != NULL || memchr(line, '\0', n) != NULL)
			fuzz_fail("CR or NUL inside a reply at offset %zu", pos);
		if (closed)
			fuzz_fail("reply after 221/421 at offset %zu", pos);
		if (line[0] < '2' || line[0] > '5' ||
		    line[1] < '0' || line[1] > '9' ||
		    line[2] < '0' || line[2] > '9' ||
		    (line[3] != ' ' && line[3] != '-'))
			fuzz_fail("malformed reply at offset %zu: %.*s", pos,
			    (int)n, line);
		if ((line[0] == '4' || line[0] == '5') &&
		    !has_enhanced_code(line + 4, n - 4))
			fuzz_fail("reply without enhanced status code: %.*s",
			    (int)n, line);
		if (line[3] == ' ' &&
		    (strncmp(line, "221", 3) == 0 || strncmp(line, "421", 3) == 0))
			closed = true;
		pos += (size_t)(lf - line) + 1;
	}
}

/* check_line_ends - only CRLF pairs: no bare CR, no bare LF, CRLF at the end */
static void
check_line_ends(const char *name, const char *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] == '\r' && (i + 1 == n || p[i + 1] != '\n'))
			fuzz_fail("%s: bare CR stored at offset %zu", name, i);
		if (p[i] == '\n' && (i == 0 || p[i - 1] != '\r'))
			fuzz_fail("%s: bare LF stored at offset %zu", name, i);
	}
	if (n < 2 || p[n - 1] != '\n')
		fuzz_fail("%s: does not end with CRLF", name);
}

/*
 * check_header_block - after the envelope lines come our Received: line
 * and the header block: header fields ("Name:" or folded continuations)
 * up to an empty line or the end.  A line of body text in there would be
 * read as a header upstream and by the relay's Reply-To/From rewriting.
 */
static void
check_header_block(const char *name, const char *p, size_t n)
{
	size_t	pos = 0;

	if (n < strlen(FUZZ_RECEIVED) ||
	    strncmp(p, FUZZ_RECEIVED, strlen(FUZZ_RECEIVED)) != 0)
		fuzz_fail("%s: no Received: line after the envelope", name);
	while (pos < n) {
		const char	*line = p + pos;
		const char	*end = memchr(line, '\n', n - pos);
		size_t		 len = (size_t)(end - line) - 1;	/* no CRLF */
		size_t		 i;

		if (len == 0)
			return;
		if (line[0] != ' ' && line[0] != '\t') {
			for (i = 0; i < len && line[i] != ':'; i++)
				if ((unsigned char)line[i] < 33 ||
				    (unsigned char)line[i] > 126)
					break;
			if (i == 0 || i == len || line[i] != ':')
				fuzz_fail("%s: body text in the header block: "
				    "%.*s", name, (int)(len < 80 ? len : 80),
				    line);
		}
		pos += len + 2;
	}
}

/* next_line - the line at p (n bytes left, CRLF ends checked) without CRLF */
static size_t
next_line(const char *p, size_t n)
{
	const char	*end = memchr(p, '\n', n);

	return end != NULL ? (size_t)(end - p) - 1 : n;
}

/*
 * check_trace - no client line folds into the header fields we write:
 * our Received: has 2 continuation lines (3 with "for <rcpt>" when there
 * is one recipient), and a Date: or Message-ID: we added (recognised by
 * its value: the Received: date, the queue ID) has none.
 */
static void
check_trace(const char *name, const char *p, size_t n, size_t nrcpts)
{
	char		 want[SPOOL_ID_MAX + 64];
	const char	*date = "";
	size_t		 pos, len, date_len = 0, dot, conts = 0;

	pos = next_line(p, n) + 2;
	while (pos < n && (p[pos] == '\t' || p[pos] == ' ')) {
		len = next_line(p + pos, n - pos);
		date = p + pos + 1;
		date_len = len - 1;
		pos += len + 2;
		conts++;
	}
	if (conts != 2 + (nrcpts == 1))
		fuzz_fail("%s: Received: has %zu continuation lines", name, conts);
	snprintf(want, sizeof(want), "Date: %.*s", (int)date_len, date);
	len = next_line(p + pos, n - pos);
	if (pos < n && len == strlen(want) && memcmp(p + pos, want, len) == 0) {
		pos += len + 2;
		if (pos < n && (p[pos] == ' ' || p[pos] == '\t'))
			fuzz_fail("%s: client line folded into our Date:", name);
	}
	dot = strcspn(name, ".");
	dot += name[dot] == '.' ? 1 + strcspn(name + dot + 1, ".") : 0;
	snprintf(want, sizeof(want), "Message-ID: <%.*s@%s>", (int)dot, name,
	    FUZZ_HOSTNAME);
	len = next_line(p + pos, n - pos);
	if (pos < n && len == strlen(want) && memcmp(p + pos, want, len) == 0) {
		pos += len + 2;
		if (pos < n && (p[pos] == ' ' || p[pos] == '\t'))
			fuzz_fail("%s: client line folded into our Message-ID:",
			    name);
	}
}

/* check_message - one committed spool file is what the relay expects */
static void
check_message(const char *dir, const char *name)
{
	static char	 buf[FUZZ_MAX_SIZE + FUZZ_PREFIX_SLACK + 1];
	char		 path[FUZZ_PATH_MAX];
	struct envelope	 env;
	struct stat	 st;
	ssize_t		 n;
	size_t		 len = 0, nrcpts;
	off_t		 body;
	int		 fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
		fuzz_fail("%s: %s", path, strerror(errno));
	if (fstat(fd, &st) < 0)
		fuzz_fail("%s: %s", path, strerror(errno));
	if (st.st_size >= (off_t)sizeof(buf))
		fuzz_fail("%s: %lld bytes stored, limit %d", name,
		    (long long)st.st_size, FUZZ_MAX_SIZE);
	if (spool_envelope_read(fd, &env) < 0)
		fuzz_fail("%s: no readable envelope", name);
	if (env.nrcpts < 1 || env.nrcpts > FUZZ_MAX_RCPTS)
		fuzz_fail("%s: %zu recipients", name, env.nrcpts);
	body = env.body_offset;
	nrcpts = env.nrcpts;
	spool_envelope_free(&env);
	while ((n = pread(fd, buf + len, sizeof(buf) - len, (off_t)len)) > 0)
		len += (size_t)n;
	if (n < 0)
		fuzz_fail("%s: %s", path, strerror(errno));
	close(fd);
	if (verbose)
		fprintf(stderr, "--- stored %s\n%.*s", name, (int)len, buf);
	if (len != (size_t)st.st_size || body < 0 || (size_t)body > len)
		fuzz_fail("%s: changed while read", name);
	check_line_ends(name, buf, len);
	check_header_block(name, buf + body, len - (size_t)body);
	check_trace(name, buf + body, len - (size_t)body, nrcpts);
}

/* clear_folder - remove the files in a folder; how many there were */
static int
clear_folder(const char *dir)
{
	DIR		*d;
	struct dirent	*de;
	char		 path[FUZZ_PATH_MAX];
	int		 count = 0;

	if ((d = opendir(dir)) == NULL)
		return -1;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		count++;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		(void)unlink(path);
	}
	closedir(d);
	return count;
}

/* check_spool - check and remove what the session committed; its count */
static int
check_spool(void)
{
	DIR		*d;
	struct dirent	*de;
	int		 count;

	if ((count = clear_folder(spool.tmp)) != 0)
		fuzz_fail("%d file(s) left in tmp/", count);
	if ((d = opendir(spool.new)) == NULL)
		fuzz_fail("%s: %s", spool.new, strerror(errno));
	while ((de = readdir(d)) != NULL)
		if (de->d_name[0] != '.')
			check_message(spool.new, de->d_name);
	closedir(d);
	return clear_folder(spool.new);
}

/*
 * check_descriptors - nothing the session opened in the spool stays open.
 * The lowest free descriptor is compared with the one after the previous
 * run; when it moved, only a descriptor into our folder is a leak (libFuzzer
 * itself may open files between runs).
 */
static void
check_descriptors(void)
{
	char		 link[FUZZ_PATH_MAX], path[FUZZ_PATH_MAX];
	DIR		*d;
	struct dirent	*de;
	ssize_t		 n;
	int		 fd;

	if ((fd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
		return;
	close(fd);
	if (fd == fd_baseline)
		return;
	if (fd_baseline >= 0 && fd > fd_baseline &&
	    (d = opendir("/proc/self/fd")) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			/* the spool keeps new/ open for its fsyncs, on purpose */
			if (atoi(de->d_name) == spool.new_fd)
				continue;
			snprintf(path, sizeof(path), "/proc/self/fd/%s",
			    de->d_name);
			n = readlink(path, link, sizeof(link) - 1);
			if (n <= 0)
				continue;
			link[n] = '\0';
			if (strncmp(link, fuzz_dir, strlen(fuzz_dir)) == 0)
				fuzz_fail("descriptor %s left open on %s",
				    de->d_name, link);
		}
		closedir(d);
	}
	fd_baseline = fd;
}

/* LLVMFuzzerTestOneInput - one client session over the input */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct netio	 io;	/* 24 KiB of buffers: not on the stack */
	struct netio_memory	 mem;
	const struct config	*cfg;
	int			 accepted, stored;

	if (size < 1)
		return 0;
	if (data[0] & FUZZ_REQUIRED_BIT)
		cfg = configs[FUZZ_CFG_REQUIRED];
	else if (data[0] & FUZZ_OFF_BIT)
		cfg = configs[FUZZ_CFG_OFF];
	else
		cfg = configs[FUZZ_CFG_OPTIONAL];
	memset(&mem, 0, sizeof(mem));
	mem.in = (const char *)data + 1;
	mem.inlen = size - 1;
	mem.chunk = chunk_size(data[0]);
	netio_init_memory(&io, &mem);

	accepted = smtp_session_run(&io, cfg, &spool, NULL, FUZZ_CLIENT_IP);

	if (verbose)
		fprintf(stderr, "--- %zu-byte reads, %s, accepted %d\n%.*s",
		    mem.chunk, auth_names[cfg->auth], accepted,
		    (int)mem.outlen, mem.out != NULL ? mem.out : "");
	check_replies(mem.out != NULL ? mem.out : "", mem.outlen);
	free(mem.out);
	stored = check_spool();
	if (stored != accepted)
		fuzz_fail("session accepted %d message(s), new/ holds %d",
		    accepted, stored);
	check_descriptors();
	return 0;
}
