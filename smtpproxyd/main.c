/*
 * main - smtpproxyd's command line: read and check the configuration,
 * prepare the spool, bind the listening sockets, daemonize, and hand over
 * to the master.
 *
 *   smtpproxyd [-f] [-t] [-c FILE]   |   smtpproxyd -V   |   smtpproxyd -h
 *
 * Exit status: 0 ok, 1 configuration error, 2 usage, 3 cannot start.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "config.h"
#include "deliver.h"
#include "log.h"
#include "master.h"
#include "privdrop.h"
#include "spool.h"
#include "util.h"
#include "version.h"

#define EXIT_CONFIG	1
#define EXIT_USAGE	2
#define EXIT_START	3

/* usage - the short help, to stdout for -h and stderr for mistakes */
static void
usage(FILE *fp)
{
	fprintf(fp,
	    "usage: smtpproxyd [-f] [-t] [-c FILE]\n"
	    "       smtpproxyd -V | -h\n"
	    "  -c FILE  configuration file (default %s);\n"
	    "           *.ini is read as INI, anything else as libconfig\n"
	    "  -f       stay in the foreground and log to stderr\n"
	    "  -t       check the configuration and exit\n"
	    "  -V       print the version and exit\n"
	    "  -h       print this help and exit\n",
	    CONFIG_DEFAULT_PATH);
}

/* write_pidfile - record the master's pid; -1 if it cannot */
static int
write_pidfile(const char *path)
{
	char	buf[32];
	int	fd, n;

	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0)
		return -1;
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (write_all(fd, buf, (size_t)n) < 0) {
		close(fd);
		return -1;
	}
	return close(fd);
}

/*
 * daemonize - detach from the terminal.  The first process waits until the
 * daemon says it is ready (pidfile written) and exits 0 then, or 3 if the
 * daemon died first: `smtpproxyd` returns only when the service is up, which
 * is what init scripts and Type=forking units rely on.  Returns the
 * descriptor to report readiness on (daemon_ready), or -1.
 */
static int
daemonize(void)
{
	pid_t	pid;
	ssize_t	n;
	int	fd, ready[2];
	char	byte = 0;

	if (pipe2(ready, O_CLOEXEC) < 0 || (pid = fork()) < 0)
		return -1;
	if (pid > 0) {
		close(ready[1]);
		do {
			n = read(ready[0], &byte, 1);
		} while (n < 0 && errno == EINTR);
		_exit(n == 1 && byte == 'r' ? 0 : EXIT_START);
	}
	close(ready[0]);
	if (setsid() < 0 || (pid = fork()) < 0)
		return -1;
	if (pid > 0)
		_exit(0);
	if (chdir("/") < 0)
		return -1;
	if ((fd = open("/dev/null", O_RDWR)) >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
	return ready[1];
}

/* daemon_ready - let the waiting first process exit 0 */
static void
daemon_ready(int fd)
{
	if (fd < 0)
		return;
	(void)!write(fd, "r", 1);
	close(fd);
}

/* open_log - stderr in the foreground, else the log file or syslog */
static int
open_log(const struct config *cfg, bool foreground)
{
	log_set_level(cfg->loglevel);
	log_set_rotation(cfg->logsize, cfg->logcount);
	if (foreground)
		return log_open("smtpproxyd", LOG_TO_STDERR, NULL);
	if (cfg->logfile != NULL)
		return log_open("smtpproxyd", LOG_TO_FILE, cfg->logfile);
	return log_open("smtpproxyd", LOG_TO_SYSLOG, NULL);
}

/* warn_readable_secrets - a config with passwords that others may read */
static void
warn_readable_secrets(const struct config *cfg)
{
	struct stat	st;

	if (stat(cfg->path, &st) < 0 || (st.st_mode & S_IROTH) == 0)
		return;
	for (size_t i = 0; i < cfg->naccounts; i++) {
		const struct account	*a = &cfg->accounts[i];

		if (a->smtppassword || a->poppassword || a->localpassword) {
			log_warning("%s holds passwords and is readable by "
			    "every user: chmod 640 (or 600) it", cfg->path);
			return;
		}
	}
}

/* own_spool - the spool belongs to the user the children run as */
static int
own_spool(const struct priv *priv, const struct spool *sp)
{
	const char *const paths[] = { sp->dir, sp->tmp, sp->new, sp->cur,
	    sp->failed, sp->defer, sp->trigger };

	for (size_t i = 0; i < ARRAY_LEN(paths); i++) {
		if (priv_chown(priv, paths[i]) < 0) {
			log_error("cannot give %s to uid %ld: %s", paths[i],
			    (long)priv->uid, strerror(errno));
			return -1;
		}
	}
	return 0;
}

/* prepare_spool - open (and make) the spool, owned by the run-as user */
static int
prepare_spool(const struct config *cfg, const struct priv *priv,
    struct spool *spool)
{
	if (spool_open(spool, cfg->msgdir, true) < 0) {
		log_error("cannot use spool %s: %s", cfg->msgdir,
		    strerror(errno));
		return -1;
	}
	return own_spool(priv, spool);
}

/* go_background - daemonize and move logging off the terminal */
static int
go_background(const struct config *cfg, int *ready_fd)
{
	if ((*ready_fd = daemonize()) < 0) {
		log_error("cannot daemonize: %s", strerror(errno));
		return -1;
	}
	if (open_log(cfg, false) < 0) {
		log_open("smtpproxyd", LOG_TO_SYSLOG, NULL);
		log_error("cannot open log file %s: %s", cfg->logfile,
		    strerror(errno));
	}
	return 0;
}

/*
 * start - everything after the configuration is known to be good.  Takes
 * the configuration; the master may replace it on reload, so *cfgp is the
 * one in force when it returns.
 */
static int
start(struct config **cfgp, bool foreground)
{
	struct config	*cfg = *cfgp;
	struct spool	 spool;
	struct priv	 priv;
	SSL_CTX		*tls_ctx = NULL;
	char		 err[256], *pidfile = NULL;
	int		*fds = NULL;
	size_t		 nfds = 0;
	int		 rc = EXIT_START, ready_fd = -1;

	memset(&spool, 0, sizeof(spool));
	warn_readable_secrets(cfg);
	if (priv_resolve(cfg, &priv, err, sizeof(err)) < 0) {
		log_error("%s", err);
		goto out;
	}
	if (prepare_spool(cfg, &priv, &spool) < 0)
		goto out;
	if (cfg->logfile != NULL && !foreground && priv.switching) {
		(void)priv_chown(&priv, cfg->logfile);
		log_set_owner(priv.uid, priv.gid);
	}
	if (master_tls_context(cfg, &tls_ctx) < 0 ||
	    master_listen(cfg, &fds, &nfds) < 0)
		goto out;
	deliver_global_init();
	if (!foreground && go_background(cfg, &ready_fd) < 0)
		goto out;
	if (cfg->pidfile != NULL) {
		pidfile = xstrdup(cfg->pidfile);
		if (write_pidfile(pidfile) < 0)
			log_warning("cannot write pidfile %s: %s", pidfile,
			    strerror(errno));
	}
	log_info("smtpproxyd %s starting with %s", SMTPPROXY_VERSION,
	    cfg->path);
	daemon_ready(ready_fd);
	rc = master_run(cfgp, fds, nfds, &spool, tls_ctx, &priv);
	tls_ctx = NULL;		/* the master freed it */
	if (pidfile != NULL)
		unlink(pidfile);
	deliver_global_cleanup();
out:
	if (tls_ctx != NULL)
		SSL_CTX_free(tls_ctx);
	for (size_t i = 0; rc == EXIT_START && i < nfds; i++)
		close(fds[i]);
	free(pidfile);
	free(fds);
	spool_close(&spool);
	return rc;
}

int
main(int argc, char **argv)
{
	const char	*path = CONFIG_DEFAULT_PATH;
	struct config	*cfg;
	char		 err[1024];
	bool		 foreground = false, test_only = false;
	int		 ch, rc;

	while ((ch = getopt(argc, argv, "c:fthV")) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'f':
			foreground = true;
			break;
		case 't':
			test_only = true;
			break;
		case 'V':
			printf("smtpproxyd %s\n", SMTPPROXY_VERSION);
			return 0;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_USAGE;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return EXIT_USAGE;
	}
	log_open("smtpproxyd", LOG_TO_STDERR, NULL);
	if (config_load(path, &cfg, err, sizeof(err)) < 0) {
		fprintf(stderr, "%s\n", err);
		return EXIT_CONFIG;
	}
	if (test_only) {
		printf("config OK\n");
		config_free(cfg);
		return 0;
	}
	if (open_log(cfg, foreground) < 0) {
		fprintf(stderr, "smtpproxyd: cannot open log file %s: %s\n",
		    cfg->logfile, strerror(errno));
		config_free(cfg);
		return EXIT_START;
	}
	rc = start(&cfg, foreground);
	config_free(cfg);
	return rc;
}
