/*
 * ctl - smtpproxyctl, the administrator's view of a configuration and its
 * queue.  It reads the same configuration as the daemon and works on the
 * spool directly, so it also works while the daemon is stopped.
 *
 *   smtpproxyctl [-c FILE] check            like smtpproxyd -t
 *   smtpproxyctl [-c FILE] queue [--failed] one line per message
 *
 * Exit status: 0 ok, 1 configuration or spool error, 2 usage.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "spool.h"
#include "util.h"

/* usage - the command summary */
static int
usage(void)
{
	fprintf(stderr,
	    "usage: smtpproxyctl [-c FILE] check\n"
	    "       smtpproxyctl [-c FILE] queue [--failed]\n");
	return 2;
}

/* print_message - one queue line: ID, age, size, sender, recipients, attempts, next try */
static void
print_message(const char *folder, const struct spool_entry *e, time_t now)
{
	struct envelope	 env;
	struct stat	 st;
	char		*path = xasprintf("%s/%s", folder, e->name);
	int		 fd = open(path, O_RDONLY | O_CLOEXEC);

	free(path);
	if (fd < 0)
		return;		/* delivered while we looked */
	if (fstat(fd, &st) < 0 || spool_envelope_read(fd, &env) < 0) {
		printf("%s  (unreadable)\n", e->id);
		close(fd);
		return;
	}
	printf("%s  age=%llds size=%lld from=<%s> to=", e->id,
	    (long long)(now - e->first_seen), (long long)st.st_size, env.sender);
	for (size_t i = 0; i < env.nrcpts; i++)
		printf("%s<%s>", i ? "," : "", env.rcpts[i]);
	printf(" attempts=%d", e->attempts);
	if (e->next_attempt > now)
		printf(" next=%llds", (long long)(e->next_attempt - now));
	printf("\n");
	spool_envelope_free(&env);
	close(fd);
}

/* list_folder - every message of one spool folder */
static int
list_folder(const char *folder, enum spool_state state, time_t now)
{
	DIR			*dir = opendir(folder);
	struct dirent		*de;
	struct spool_entry	 e;
	int			 n = 0;

	if (dir == NULL) {
		fprintf(stderr, "smtpproxyctl: %s: %s\n", folder,
		    strerror(errno));
		return -1;
	}
	while ((de = readdir(dir)) != NULL) {
		size_t	len = strlen(de->d_name);

		if (len > 7 && strcmp(de->d_name + len - 7, ".reason") == 0)
			continue;
		if (spool_parse_name(de->d_name, state, &e) < 0)
			continue;
		print_message(folder, &e, now);
		n++;
	}
	closedir(dir);
	return n;
}

/* cmd_queue - the queue, or the failed messages */
static int
cmd_queue(const struct config *cfg, bool failed)
{
	struct spool	sp;
	time_t		now = time(NULL);
	int		n = 0, k;

	if (spool_open(&sp, cfg->msgdir, false) < 0) {
		fprintf(stderr, "smtpproxyctl: spool %s: %s\n", cfg->msgdir,
		    strerror(errno));
		return 1;
	}
	if (failed)
		n = list_folder(sp.failed, SPOOL_CUR, now);
	else if ((n = list_folder(sp.new, SPOOL_NEW, now)) >= 0 &&
	    (k = list_folder(sp.cur, SPOOL_CUR, now)) >= 0)
		n += k;
	spool_close(&sp);
	if (n < 0)
		return 1;
	printf("%d message%s\n", n, n == 1 ? "" : "s");
	return 0;
}

int
main(int argc, char **argv)
{
	const char	*path = CONFIG_DEFAULT_PATH;
	struct config	*cfg;
	char		 err[1024];
	int		 ch, rc;

	while ((ch = getopt(argc, argv, "+c:h")) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		default:
			return usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		return usage();
	log_open("smtpproxyctl", LOG_TO_STDERR, NULL);
	if (config_load(path, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return 1;
	}
	if (strcmp(argv[0], "check") == 0 && argc == 1) {
		printf("config OK\n");
		rc = 0;
	} else if (strcmp(argv[0], "queue") == 0 && argc == 1)
		rc = cmd_queue(cfg, false);
	else if (strcmp(argv[0], "queue") == 0 && argc == 2 &&
	    strcmp(argv[1], "--failed") == 0)
		rc = cmd_queue(cfg, true);
	else
		rc = usage();
	config_free(cfg);
	return rc;
}
