/*
 * ctl - smtpproxyctl, the administrator's view of a configuration and its
 * queue.  It reads the same configuration as the daemon and works on the
 * spool and the daemon's status file directly, so everything but `status`
 * also works while the daemon is stopped.
 *
 *   smtpproxyctl [-c FILE] check            like smtpproxyd -t
 *   smtpproxyctl [-c FILE] queue [--failed] one line per message, with the
 *                                           last error or the failure reason
 *   smtpproxyctl [-c FILE] flush            every deferred message due now
 *   smtpproxyctl [-c FILE] retry ID         one message due now (a failed
 *                                           one goes back into the queue)
 *   smtpproxyctl [-c FILE] delete ID        remove a message
 *   smtpproxyctl [-c FILE] status           processes, pool, queue, counters,
 *                                           and the OAuth state of accounts
 *                                           with smtpauth=xoauth2
 *   smtpproxyctl [-c FILE] oauth [--port N] ACCOUNT
 *                                           first OAuth authorisation of an
 *                                           account (its oauthflow); then
 *                                           its deferred mail is due now
 *
 * Exit status: 0 ok, 1 error (configuration, spool, no such message,
 * daemon not running for status), 2 usage.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "config.h"
#include "log.h"
#include "oauth.h"
#include "privdrop.h"
#include "scoreboard.h"
#include "spool.h"
#include "util.h"

struct queue_stats {
	int	count;
	int	due;
	time_t	oldest;		/* first_seen of the oldest, 0 if none */
};

/* usage - the command summary */
static int
usage(void)
{
	fprintf(stderr,
	    "usage: smtpproxyctl [-c FILE] check\n"
	    "       smtpproxyctl [-c FILE] queue [--failed]\n"
	    "       smtpproxyctl [-c FILE] flush\n"
	    "       smtpproxyctl [-c FILE] retry ID\n"
	    "       smtpproxyctl [-c FILE] delete ID\n"
	    "       smtpproxyctl [-c FILE] status\n"
	    "       smtpproxyctl [-c FILE] oauth [--port N] ACCOUNT\n");
	return 2;
}

struct print_arg {
	struct spool	*sp;
	time_t		 now;
	int		 n;
};

/* print_message - one queue line: ID, age, size, sender, recipients, attempts, next try */
static int
print_message(const struct spool_entry *e, void *arg)
{
	struct print_arg	*pa = arg;
	struct envelope		 env;
	struct stat		 st;
	char			*path = spool_path(pa->sp, e), reason[512];
	int			 fd = open(path, O_RDONLY | O_CLOEXEC);

	free(path);
	if (fd < 0)
		return 0;	/* delivered while we looked */
	pa->n++;
	if (fstat(fd, &st) < 0 || spool_envelope_read(fd, &env) < 0) {
		printf("%s  (unreadable)\n", e->id);
		close(fd);
		return 0;
	}
	printf("%s  age=%llds size=%lld from=<%s> to=", e->id,
	    (long long)(pa->now - e->first_seen), (long long)st.st_size,
	    env.sender);
	for (size_t i = 0; i < env.nrcpts; i++)
		printf("%s<%s>", i ? "," : "", env.rcpts[i]);
	printf(" attempts=%d", e->attempts);
	if (e->next_attempt > pa->now)
		printf(" next=%llds", (long long)(e->next_attempt - pa->now));
	spool_reason(pa->sp, e, reason, sizeof(reason));
	if (reason[0] != '\0')
		printf(" %s=\"%s\"", e->state == SPOOL_FAILED ? "reason" :
		    "error", reason);
	printf("\n");
	spool_envelope_free(&env);
	close(fd);
	return 0;
}

/* cmd_queue - the queue, or the failed messages */
static int
cmd_queue(struct spool *sp, bool failed)
{
	struct print_arg	pa = { sp, time(NULL), 0 };

	if (failed) {
		if (spool_list(sp, SPOOL_FAILED, print_message, &pa) < 0)
			goto fail;
	} else if (spool_list(sp, SPOOL_NEW, print_message, &pa) < 0 ||
	    spool_list(sp, SPOOL_CUR, print_message, &pa) < 0)
		goto fail;
	printf("%d message%s\n", pa.n, pa.n == 1 ? "" : "s");
	return 0;
fail:
	fprintf(stderr, "smtpproxyctl: %s: %s\n", sp->dir, strerror(errno));
	return 1;
}

/* due_now - spool_list callback for flush */
static int
due_now(const struct spool_entry *e, void *arg)
{
	struct spool_entry	copy = *e;

	if (spool_make_due(arg, &copy) == 0 && e->next_attempt != 0)
		printf("%s\n", e->id);
	return 0;
}

/* cmd_flush - every deferred message due now, and wake the relay */
static int
cmd_flush(struct spool *sp)
{
	if (spool_list(sp, SPOOL_CUR, due_now, sp) < 0) {
		fprintf(stderr, "smtpproxyctl: %s: %s\n", sp->cur,
		    strerror(errno));
		return 1;
	}
	spool_trigger_due(sp);
	return 0;
}

/* cmd_retry - one message due now */
static int
cmd_retry(struct spool *sp, const char *id)
{
	struct spool_entry	e;

	if (spool_find(sp, id, &e) < 0 || spool_make_due(sp, &e) < 0) {
		fprintf(stderr, "smtpproxyctl: %s: %s\n", id,
		    errno == ENOENT ? "no such message" : strerror(errno));
		return 1;
	}
	spool_trigger_due(sp);
	printf("%s: due now\n", id);
	return 0;
}

/* cmd_delete - remove one message */
static int
cmd_delete(struct spool *sp, const char *id)
{
	struct spool_entry	e;

	if (spool_find(sp, id, &e) < 0 || spool_delete(sp, &e) < 0) {
		fprintf(stderr, "smtpproxyctl: %s: %s\n", id,
		    errno == ENOENT ? "no such message" : strerror(errno));
		return 1;
	}
	printf("%s: deleted\n", id);
	return 0;
}

/* count_entry - spool_list callback for status */
static int
count_entry(const struct spool_entry *e, void *arg)
{
	struct queue_stats	*qs = arg;

	qs->count++;
	if (e->next_attempt <= time(NULL))
		qs->due++;
	if (qs->oldest == 0 || e->first_seen < qs->oldest)
		qs->oldest = e->first_seen;
	return 0;
}

/* alive - does a process of that pid exist */
static bool
alive(pid_t pid)
{
	return pid > 0 && (kill(pid, 0) == 0 || errno == EPERM);
}

/* print_daemon - the part of status that only a running daemon knows */
static int
print_daemon(const struct spool *sp)
{
	static const char *const names[STAT_COUNTERS] = {
		"sessions", "accepted", "refused", "delivered", "deferred",
		"failed"
	};
	struct scoreboard	sb;
	time_t			now = time(NULL);
	int			busy, idle, starting;

	if (scoreboard_attach(&sb, sp->status) < 0 ||
	    !alive(sb.hdr->master_pid)) {
		if (sb.hdr != NULL)
			scoreboard_destroy(&sb);
		printf("daemon: not running\n");
		return 1;
	}
	busy = scoreboard_count(&sb, SLOT_BUSY);
	idle = scoreboard_count(&sb, SLOT_IDLE);
	starting = scoreboard_count(&sb, SLOT_STARTING);
	printf("daemon: running, master pid %ld, relay pid %ld, up %llds\n",
	    (long)sb.hdr->master_pid, (long)sb.hdr->relay_pid,
	    (long long)(now - sb.hdr->started));
	printf("listeners: %d (%d busy, %d idle, %d starting; "
	    "pool %d..%d)\n", busy + idle + starting, busy, idle, starting,
	    sb.hdr->processes, sb.hdr->maxprocesses);
	printf("since start:");
	for (int i = 0; i < STAT_COUNTERS; i++)
		printf(" %s=%llu", names[i], (unsigned long long)
		    __atomic_load_n(&sb.hdr->counters[i], __ATOMIC_RELAXED));
	printf("\n");
	scoreboard_destroy(&sb);
	return 0;
}

/* cmd_status - what the daemon does and what the queue holds */
static int
cmd_status(struct spool *sp)
{
	struct queue_stats	incoming = { 0 }, queued = { 0 }, failed = { 0 };
	time_t			now = time(NULL), oldest;
	int			rc;

	rc = print_daemon(sp);
	if (spool_list(sp, SPOOL_NEW, count_entry, &incoming) < 0 ||
	    spool_list(sp, SPOOL_CUR, count_entry, &queued) < 0 ||
	    spool_list(sp, SPOOL_FAILED, count_entry, &failed) < 0) {
		fprintf(stderr, "smtpproxyctl: %s: %s\n", sp->dir,
		    strerror(errno));
		return 1;
	}
	printf("queue: %d new, %d in cur (%d due, %d deferred), %d failed\n",
	    incoming.count, queued.count, queued.due, queued.count - queued.due,
	    failed.count);
	oldest = incoming.oldest;
	if (queued.oldest != 0 && (oldest == 0 || queued.oldest < oldest))
		oldest = queued.oldest;
	if (oldest != 0)
		printf("oldest message: %llds\n", (long long)(now - oldest));
	return rc;
}

/* print_oauth - for status: each xoauth2 account and its tokens */
static void
print_oauth(const struct config *cfg)
{
	char	line[1024];

	for (size_t i = 0; i < cfg->naccounts; i++) {
		const struct account	*a = &cfg->accounts[i];

		if (a->use != NULL || a->smtpauth != SMTPAUTH_XOAUTH2)
			continue;
		oauth_status(cfg, a, line, sizeof(line));
		printf("oauth [%s]: %s\n", a->name, line);
	}
}

struct resume_arg {
	const struct config	*cfg;
	const struct account	*acct;
	struct spool		*sp;
	int			 n;
};

/* resume_message - spool_list callback: the account's mail due now */
static int
resume_message(const struct spool_entry *e, void *arg)
{
	struct resume_arg	*ra = arg;
	struct spool_entry	 copy = *e;
	struct envelope		 env;
	char			*path = spool_path(ra->sp, e);
	int			 fd = open(path, O_RDONLY | O_CLOEXEC);

	free(path);
	if (fd < 0)
		return 0;
	if (spool_envelope_read(fd, &env) == 0) {
		if (account_lookup(ra->cfg, env.sender) == ra->acct &&
		    e->next_attempt != 0 && spool_make_due(ra->sp, &copy) == 0)
			ra->n++;
		spool_envelope_free(&env);
	}
	close(fd);
	return 0;
}

/*
 * cmd_oauth - authorise an account, then make its deferred mail due; works
 * before the daemon ever ran (no spool yet)
 */
static int
cmd_oauth(const struct config *cfg, int argc, char **argv)
{
	struct oauth_prompt	 pr = { .out = stdout, .in = STDIN_FILENO };
	struct resume_arg	 ra = { .cfg = cfg };
	struct spool		 sp;
	const struct account	*a;
	const char		*name = NULL;
	struct priv		 priv;
	char			 err[1024] = "", *end;
	long			 port;
	int			 rc;

	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--port") == 0 && i + 1 < argc) {
			port = strtol(argv[++i], &end, 10);
			if (*end != '\0' || port < 0 || port > 65535)
				return usage();
			pr.port = (int)port;
		} else if (name == NULL && argv[i][0] != '-')
			name = argv[i];
		else
			return usage();
	}
	if (name == NULL)
		return usage();
	if ((a = account_find(cfg, name)) == NULL) {
		fprintf(stderr, "smtpproxyctl: no account [%s] in %s\n", name,
		    cfg->path);
		return 1;
	}
	a = a->target;
	/* the token file belongs to the user the daemon runs as */
	if (priv_resolve(cfg, &priv, err, sizeof(err)) < 0 ||
	    priv_drop(&priv) < 0) {
		fprintf(stderr, "smtpproxyctl: %s\n", err[0] != '\0' ? err :
		    strerror(errno));
		return 1;
	}
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		fprintf(stderr, "smtpproxyctl: libcurl initialisation "
		    "failed\n");
		return 1;
	}
	rc = oauth_authorise(cfg, a, &pr, err, sizeof(err));
	curl_global_cleanup();
	if (rc != 0) {
		fprintf(stderr, "smtpproxyctl: oauth [%s]: %s\n", a->name, err);
		return 1;
	}
	ra.acct = a;
	ra.sp = &sp;
	if (spool_open(&sp, cfg->msgdir, false) == 0 &&
	    spool_list(&sp, SPOOL_CUR, resume_message, &ra) == 0 && ra.n > 0) {
		spool_trigger_due(&sp);
		printf("%d deferred message%s of [%s] due now\n", ra.n,
		    ra.n == 1 ? "" : "s", a->name);
	}
	spool_close(&sp);
	return 0;
}

/* run - one subcommand against a loaded configuration */
static int
run(const struct config *cfg, int argc, char **argv)
{
	struct spool	sp;
	int		rc;

	if (strcmp(argv[0], "check") == 0 && argc == 1) {
		printf("config OK\n");
		return 0;
	}
	if (strcmp(argv[0], "oauth") == 0)
		return cmd_oauth(cfg, argc, argv);
	if (spool_open(&sp, cfg->msgdir, false) < 0) {
		fprintf(stderr, "smtpproxyctl: spool %s: %s\n", cfg->msgdir,
		    strerror(errno));
		spool_close(&sp);
		return 1;
	}
	if (strcmp(argv[0], "queue") == 0 && argc == 1)
		rc = cmd_queue(&sp, false);
	else if (strcmp(argv[0], "queue") == 0 && argc == 2 &&
	    strcmp(argv[1], "--failed") == 0)
		rc = cmd_queue(&sp, true);
	else if (strcmp(argv[0], "flush") == 0 && argc == 1)
		rc = cmd_flush(&sp);
	else if (strcmp(argv[0], "retry") == 0 && argc == 2)
		rc = cmd_retry(&sp, argv[1]);
	else if (strcmp(argv[0], "delete") == 0 && argc == 2)
		rc = cmd_delete(&sp, argv[1]);
	else if (strcmp(argv[0], "status") == 0 && argc == 1) {
		rc = cmd_status(&sp);
		print_oauth(cfg);
	} else
		rc = usage();
	spool_close(&sp);
	return rc;
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
	rc = run(cfg, argc, argv);
	config_free(cfg);
	return rc;
}
